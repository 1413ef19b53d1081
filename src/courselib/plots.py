"""Figures the chapters share: learning curves, image grids, per-layer statistics,
histograms, kernels and feature maps. Each function draws on new (or given) axes and
returns them; nothing here calls ``plt.show``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from torch import Tensor

from .data import CLASS_NAMES
from .probes import LayerStats
from .train import History

__all__ = ["plot_history", "show_images", "plot_layer_stats", "plot_histograms",
           "show_kernels", "show_feature_maps"]


def _runs(history: History | Mapping[str, History]) -> dict[str, History]:
    return {"": history} if isinstance(history, History) else dict(history)


def plot_history(history: History | Mapping[str, History], metrics: Sequence[str] = ("loss", "acc"),
                 axes: Sequence[Axes] | None = None) -> np.ndarray:
    """Learning curves: one panel per metric, train solid and validation dashed, one colour per run."""
    runs = _runs(history)
    if axes is None:
        _, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.5), squeeze=False)
        axes = axes[0]
    labels = {"loss": "loss", "acc": "accuracy"}
    for ax, metric in zip(axes, metrics):
        for i, (name, h) in enumerate(runs.items()):
            colour = f"C{i}"
            prefix = f"{name} " if name else ""
            ax.plot(h.epoch, getattr(h, f"train_{metric}"), color=colour, marker="o", ms=3,
                    label=f"{prefix}train")
            if getattr(h, f"val_{metric}"):
                ax.plot(h.epoch, getattr(h, f"val_{metric}"), color=colour, ls="--", marker="o", ms=3,
                        label=f"{prefix}validation")
        ax.set(xlabel="epoch", ylabel=labels.get(metric, metric), title=labels.get(metric, metric).capitalize())
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    plt.tight_layout()
    return np.asarray(axes)


def _as_hw_images(images: Tensor) -> Tensor:
    x = images.detach().cpu().float()
    if x.ndim == 4:
        if x.shape[1] != 1:
            raise ValueError(f"expected 1 channel, got shape {tuple(x.shape)}")
        x = x[:, 0]
    if x.ndim != 3:
        raise ValueError(f"images must be (N, H, W) or (N, 1, H, W), got {tuple(images.shape)}")
    return x


def show_images(images: Tensor, labels: Tensor | Sequence[int] | None = None,
                preds: Tensor | Sequence[int] | None = None, class_names: Sequence[str] = CLASS_NAMES,
                ncols: int = 8, scale: float = 1.4) -> np.ndarray:
    """Grid of greyscale images (N, H, W) or (N, 1, H, W) titled with class names.

    With ``preds``, titles read "pred (true)" and wrong predictions are red.
    """
    x = _as_hw_images(images)
    n = len(x)
    nrows = max(1, -(-n // ncols))
    _, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, scale * nrows * 1.15), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(x[i].numpy(), cmap="gray_r")
        if labels is not None:
            true = class_names[int(labels[i])]
            if preds is None:
                ax.set_title(true, fontsize=8)
            else:
                p = class_names[int(preds[i])]
                ax.set_title(f"{p}\n({true})", fontsize=7, color="black" if p == true else "red")
    plt.tight_layout()
    return axes


def plot_layer_stats(stats: Sequence[LayerStats] | Mapping[str, Sequence[LayerStats]],
                     fields: Sequence[str] = ("act_std", "grad_std"), logy: bool = True,
                     axes: Sequence[Axes] | None = None) -> np.ndarray:
    """One panel per statistic (e.g. activation std, gradient std) against layer depth, one line per run."""
    runs = {"": stats} if not isinstance(stats, Mapping) else dict(stats)
    if axes is None:
        _, axes = plt.subplots(1, len(fields), figsize=(5 * len(fields), 3.5), squeeze=False)
        axes = axes[0]
    titles = {"act_std": "activation std", "act_mean": "activation mean",
              "act_zero_frac": "fraction of zero activations",
              "grad_std": "gradient std (w.r.t. layer output)", "grad_mean": "gradient mean",
              "grad_zero_frac": "fraction of zero gradients"}
    for ax, f in zip(axes, fields):
        for name, st in runs.items():
            ax.plot(range(1, len(st) + 1), [getattr(s, f) for s in st], marker="o", ms=3, label=name or None)
        ax.set(xlabel="layer", ylabel=titles.get(f, f), title=titles.get(f, f))
        if logy and not f.endswith("zero_frac"):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if len(runs) > 1:
            ax.legend(fontsize="small")
    plt.tight_layout()
    return np.asarray(axes)


def plot_histograms(values: Mapping[str, Tensor], bins: int = 60, ncols: int = 4,
                    range_: tuple[float, float] | None = None, sharex: bool = True) -> np.ndarray:
    """One histogram per named tensor (e.g. each layer's activations), in a grid."""
    n = len(values)
    if n == 0:
        raise ValueError("nothing to plot: values is empty")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    _, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.4 * nrows), squeeze=False, sharex=sharex)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, (name, t) in zip(axes.flat, values.items()):
        ax.hist(t.detach().cpu().float().flatten().numpy(), bins=bins, range=range_, color="C0")
        ax.set_title(name, fontsize=9)
        ax.set_yticks([])
    plt.tight_layout()
    return axes


def _grid(maps: Tensor, ncols: int, titles: Sequence[str] | None, cmap: str, symmetric: bool) -> np.ndarray:
    n = len(maps)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    _, axes = plt.subplots(nrows, ncols, figsize=(1.3 * ncols, 1.4 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            m = maps[i].numpy()
            lim = np.abs(m).max() or 1.0
            ax.imshow(m, cmap=cmap, vmin=-lim if symmetric else None, vmax=lim if symmetric else None)
            if titles is not None:
                ax.set_title(titles[i], fontsize=7)
    plt.tight_layout()
    return axes


def show_kernels(weight: Tensor, ncols: int = 8, in_channel: int | None = None) -> np.ndarray:
    """Conv kernels of weight: (C_out, C_in, kH, kW), red positive / blue negative.

    With several input channels, shows their mean unless ``in_channel`` picks one.
    """
    w = weight.detach().cpu().float()
    if w.ndim != 4:
        raise ValueError(f"weight must be (C_out, C_in, kH, kW), got {tuple(w.shape)}")
    w = w.mean(1) if in_channel is None else w[:, in_channel]
    return _grid(w, ncols, [f"#{i}" for i in range(len(w))], "RdBu_r", symmetric=True)


def show_feature_maps(fmap: Tensor, ncols: int = 8, max_maps: int = 32) -> np.ndarray:
    """Feature maps of one image: (C, H, W) or (1, C, H, W); at most ``max_maps`` shown."""
    f = fmap.detach().cpu().float()
    if f.ndim == 4:
        if f.shape[0] != 1:
            raise ValueError(f"pass the maps of one image, got batch of {f.shape[0]}")
        f = f[0]
    if f.ndim != 3:
        raise ValueError(f"fmap must be (C, H, W) or (1, C, H, W), got {tuple(fmap.shape)}")
    f = f[:max_maps]
    return _grid(f, ncols, [f"ch {i}" for i in range(len(f))], "viridis", symmetric=False)

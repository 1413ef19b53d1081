"""Per-layer activation and gradient statistics, recorded with forward/backward hooks.

Used by the initialization and normalization chapters to *see* signal flow::

    with ActivationProbe(model) as probe:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
    probe.stats()        # one LayerStats per probed layer, in forward order
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["LayerStats", "ActivationProbe", "layer_stats", "weight_grad_stats"]

DEFAULT_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class LayerStats:
    """Statistics of one layer's output (``act_*``) and of the loss gradient w.r.t. it (``grad_*``).

    ``*_zero_frac`` is the fraction of entries exactly equal to 0. Gradient fields are
    NaN when no backward pass ran.
    """

    name: str
    act_mean: float
    act_std: float
    act_zero_frac: float
    grad_mean: float = float("nan")
    grad_std: float = float("nan")
    grad_zero_frac: float = float("nan")


def _summary(t: Tensor) -> tuple[float, float, float]:
    t = t.detach().float()
    return t.mean().item(), t.std().item() if t.numel() > 1 else 0.0, (t == 0).float().mean().item()


class ActivationProbe:
    """Context manager recording output and output-gradient statistics of chosen layers.

    ``layers``: None probes every submodule whose type is in ``types`` (default: linear
    and conv layers); a sequence of names (as in ``model.named_modules()``) probes those.
    Only the most recent forward/backward pass is kept. Hooks are removed on exit.
    """

    def __init__(self, model: nn.Module, layers: Sequence[str] | None = None,
                 types: tuple[type[nn.Module], ...] = DEFAULT_TYPES) -> None:
        named = dict(model.named_modules())
        if layers is None:
            self.names = [n for n, m in named.items() if n and isinstance(m, types)]
        else:
            missing = [n for n in layers if n not in named]
            if missing:
                raise KeyError(f"no submodule named {missing}; choose from {[n for n in named if n]}")
            self.names = list(layers)
        if not self.names:
            raise ValueError(f"nothing to probe: the model has no submodule of type {types}")
        self._modules = [named[n] for n in self.names]
        self._act: dict[str, tuple[float, float, float]] = {}
        self._grad: dict[str, tuple[float, float, float]] = {}
        self.activations: dict[str, Tensor] = {}
        self.keep_tensors = False
        self._handles: list = []

    def __enter__(self) -> ActivationProbe:
        for name, module in zip(self.names, self._modules):
            self._handles.append(module.register_forward_hook(self._forward_hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _forward_hook(self, name: str) -> Callable:
        def hook(_m: nn.Module, _inp, out: Tensor) -> None:
            self._act[name] = _summary(out)
            self._grad.pop(name, None)
            if self.keep_tensors:
                self.activations[name] = out.detach().clone()
            if out.requires_grad:  # record dLoss/d(output) when backward reaches this tensor
                out.register_hook(lambda g: self._grad.__setitem__(name, _summary(g)))
        return hook

    def stats(self) -> list[LayerStats]:
        """One :class:`LayerStats` per probed layer that ran, in the order given at construction."""
        out = []
        for name in self.names:
            if name in self._act:
                out.append(LayerStats(name, *self._act[name], *self._grad.get(name, (float("nan"),) * 3)))
        if not out:
            raise RuntimeError("no statistics yet: run a forward pass inside the `with` block")
        return out


def layer_stats(model: nn.Module, x: Tensor, y: Tensor | None = None,
                loss_fn: Callable[[Tensor, Tensor], Tensor] = nn.functional.cross_entropy,
                layers: Sequence[str] | None = None,
                types: tuple[type[nn.Module], ...] = DEFAULT_TYPES) -> list[LayerStats]:
    """One forward pass (and a backward pass when ``y`` is given) with an :class:`ActivationProbe`.

    x: (B, ...) input batch; y: (B,) targets for ``loss_fn``. Parameter gradients are
    cleared afterwards so the model is left as it was.
    """
    with ActivationProbe(model, layers, types) as probe:
        if y is None:
            with torch.no_grad():
                model(x)
        else:
            loss_fn(model(x), y).backward()
            model.zero_grad(set_to_none=True)
    return probe.stats()


def weight_grad_stats(model: nn.Module, types: tuple[type[nn.Module], ...] = DEFAULT_TYPES
                      ) -> dict[str, float]:
    """Std of each probed layer's weight gradient (after a backward pass), keyed by layer name."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, types) and getattr(m, "weight", None) is not None and m.weight.grad is not None:
            out[name] = m.weight.grad.detach().float().std().item()
    if not out:
        raise RuntimeError("no weight gradients: call loss.backward() first")
    return out

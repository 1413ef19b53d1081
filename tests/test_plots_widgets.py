import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch
from ipywidgets import IntSlider

from courselib import plots, widgets
from courselib.probes import LayerStats
from courselib.train import History


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def hist(n=3):
    return History(epoch=list(range(1, n + 1)), train_loss=[1.0, 0.8, 0.6][:n], train_acc=[0.5, 0.6, 0.7][:n],
                   val_loss=[1.1, 0.9, 0.8][:n], val_acc=[0.45, 0.55, 0.6][:n])


def test_plot_history_draws_train_and_val_per_run():
    axes = plots.plot_history({"a": hist(), "b": hist()})
    assert len(axes) == 2
    lines = axes[0].get_lines()
    assert len(lines) == 4  # 2 runs x (train, val)
    assert list(lines[0].get_ydata()) == [1.0, 0.8, 0.6]
    assert axes[1].get_ylabel() == "accuracy" and axes[0].get_xlabel() == "epoch"


def test_show_images_titles_and_marks_errors():
    imgs = torch.rand(5, 1, 28, 28)
    axes = plots.show_images(imgs, labels=[0, 1, 2, 3, 4], preds=[0, 1, 9, 3, 4], ncols=4)
    assert axes.shape == (2, 4)
    assert axes[0, 2].title.get_color() == "red" and axes[0, 0].title.get_color() == "black"
    assert "Ankle boot" in axes[0, 2].get_title()
    with pytest.raises(ValueError, match="1 channel"):
        plots.show_images(torch.rand(2, 3, 8, 8))


def test_plot_layer_stats_and_histograms():
    st = [LayerStats(str(i), 0.0, 2.0 ** -i, 0.5, 0.0, 1.0, 0.0) for i in range(4)]
    axes = plots.plot_layer_stats({"x": st, "y": st})
    assert axes[0].get_yscale() == "log"
    assert list(axes[0].get_lines()[0].get_ydata()) == [1, 0.5, 0.25, 0.125]
    axes = plots.plot_histograms({"a": torch.randn(100), "b": torch.randn(100), "c": torch.randn(10)}, ncols=2)
    assert axes.shape == (2, 2) and not axes[1, 1].axison
    with pytest.raises(ValueError):
        plots.plot_histograms({})


def test_kernels_and_feature_maps():
    axes = plots.show_kernels(torch.randn(6, 3, 3, 3), ncols=3)
    assert axes.shape == (2, 3)
    img = axes[0, 0].get_images()[0]
    lo, hi = img.get_clim()
    assert lo == -hi  # symmetric colour scale: sign is visible
    assert plots.show_feature_maps(torch.randn(1, 40, 7, 7), max_maps=16).size == 16
    with pytest.raises(ValueError):
        plots.show_kernels(torch.randn(3, 3))
    with pytest.raises(ValueError, match="one image"):
        plots.show_feature_maps(torch.randn(2, 4, 5, 5))


def test_interactive_figure_static_default_and_live_redraw(monkeypatch):
    shown = []

    class Handle:
        def update(self, obj):
            shown.append(("update", obj))

    def fake_display(obj, display_id=None):
        shown.append(("display", obj))
        return Handle() if display_id else None

    monkeypatch.setattr(widgets, "display", fake_display)
    calls = []

    def draw(depth):
        calls.append(depth)
        fig, ax = plt.subplots()
        ax.plot(range(depth))
        return fig

    slider = IntSlider(value=3, min=1, max=10)
    box = widgets.interactive_figure(draw, depth=slider)
    assert calls == [3]
    assert isinstance(shown[0][1], widgets.LiveControls)
    assert isinstance(shown[1][1], matplotlib.figure.Figure)
    bundle = box._repr_mimebundle_()
    assert "Interactive controls" in bundle["text/html"]
    assert "application/vnd.jupyter.widget-view+json" in bundle
    slider.value = 7
    assert calls == [3, 7] and shown[-1][0] == "update"
    with pytest.raises(ValueError, match="at least one control"):
        widgets.interactive_figure(draw)

"""Interactive figures that still make sense on a static website.

:func:`interactive_figure` draws the figure for the controls' default values as an
ordinary (static) output, then shows the controls. In JupyterLab or Colab moving a
control redraws that same output in place; on the website, which has no kernel, the
reader sees the default figure and a note instead of dead sliders.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import matplotlib.pyplot as plt
from IPython.display import display
from ipywidgets import VBox, Widget

__all__ = ["interactive_figure", "LiveControls"]

STATIC_NOTE = ("<p class='courselib-widget-note'><em>Interactive controls: run this notebook "
               "in JupyterLab or Colab to change the settings. The figure shows the default "
               "setting.</em></p>")


class LiveControls(VBox):
    """A VBox whose static (HTML) rendering is a short note rather than an empty widget."""

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        if isinstance(bundle, tuple):  # (data, metadata)
            bundle = bundle[0]
        return {**bundle, "text/html": STATIC_NOTE, "text/plain": "Interactive controls (run the notebook)."}


def _render(plot: Callable[..., Any], values: dict[str, Any]):
    plt.close("all")
    result = plot(**values)
    fig = result if isinstance(result, plt.Figure) else plt.gcf()
    plt.close(fig)  # stop the inline backend from showing it a second time
    return fig


def interactive_figure(plot: Callable[..., Any], **controls: Widget) -> LiveControls:
    """Show ``plot(**values)`` for the controls' defaults, then the live controls.

    ``plot`` draws a matplotlib figure (returning it, or leaving it current) from keyword
    arguments named like ``controls`` (e.g. ``depth=IntSlider(10, 1, 50)``). Returns the
    controls box (already displayed); its ``.figure_handle`` updates the figure in place.
    """
    if not controls:
        raise ValueError("give at least one control, e.g. depth=ipywidgets.IntSlider(...)")
    values = {name: w.value for name, w in controls.items()}
    box = LiveControls(children=list(controls.values()))
    display(box)
    handle = display(_render(plot, values), display_id=True)

    def redraw(_change: dict) -> None:
        handle.update(_render(plot, {name: w.value for name, w in controls.items()}))

    for w in controls.values():
        w.observe(redraw, names="value")
    box.figure_handle = handle
    return box

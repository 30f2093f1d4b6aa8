"""The one way the labs' explorers show a figure: controls, a line of text, an image.

An explorer is a set of controls and a *draw* function ``draw(fig, **values)`` that
draws the controls' values into ``fig`` (a figure kept for the explorer's life, outside
pyplot) and returns what to show next to it: text above the figure, :class:`Table` s
(or anything with ``_repr_html_``) below it. Every change of a control calls
:meth:`Explorer.refresh`, which draws, renders the figure to PNG with Agg
(:func:`kvmlab.figures.png_bytes`) and sets the value of one ``ipywidgets.Image``.

Why not an ``Output`` widget and ``display(fig)``: ``interactive_output`` clears the
output (``clear_output(wait=True)``) and then lets the notebook back-end show whatever
pyplot figures are open, from every callback, so changes that follow each other closely
can leave the output blank, half drawn or with an older figure in it. Here nothing is
cleared and nothing goes through pyplot: each change replaces the image's bytes in one
step, and there is always exactly one figure.

Examples
--------
>>> from kvmlab.figures import is_blank
>>> def draw(fig, n):
...     ax = fig.gca()
...     ax.clear()
...     ax.plot(range(n))
...     return f"{n} points"
>>> view = View(draw, figsize=(4, 3))
>>> png, above, below = view.update(n=5)
>>> png[:4], above
(b'\\x89PNG', '<p>5 points</p>')
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from kvmlab.errors import KvmlabError

if TYPE_CHECKING:                  # matplotlib loads when an explorer is made, not before
    from matplotlib.figure import Figure

__all__ = ["Drawer", "Explorer", "View", "explorer", "to_html"]

Drawer = Callable[..., Any]
"""``draw(fig, **values)``: draw into ``fig``; return text, tables, or a sequence of them."""


def to_html(shown: Any) -> tuple[str, str]:
    """What a draw function returned, as HTML: (text above the figure, tables below it).

    Strings become paragraphs (a string of several lines a preformatted block); anything
    with ``_repr_html_`` goes below the figure; ``None`` shows nothing.

    Examples
    --------
    >>> from kvmlab.display import Table
    >>> above, below = to_html(["a < b", Table([{"x": 1}])])
    >>> above, below.startswith("<table>")
    ('<p>a &lt; b</p>', True)
    """
    items = [] if shown is None else [shown] if isinstance(shown, str) or hasattr(
        shown, "_repr_html_") else list(shown)
    above, below = [], []
    for item in items:
        if item is None:
            continue
        if hasattr(item, "_repr_html_"):
            below.append(item._repr_html_())
        elif "\n" in str(item):
            above.append(f"<pre>{html.escape(str(item))}</pre>")
        else:
            above.append(f"<p>{html.escape(str(item))}</p>")
    return "".join(above), "".join(below)


class View:
    """The part of an explorer that needs no widgets: a kept figure and its draw function.

    Parameters
    ----------
    draw : callable
        ``draw(fig, **values)``; see the module.
    figsize : (float, float)
        The figure's size in inches (it stays that size).
    layout : str or None
        The figure's layout engine (``"constrained"`` by default; ``None`` is faster for a
        draw function that places its axes itself).
    """

    def __init__(self, draw: Drawer, figsize: tuple[float, float] = (7.0, 4.0),
                 layout: str | None = "constrained") -> None:
        self.draw = draw
        from kvmlab.figures import new_figure

        self.figure: Figure = new_figure(figsize, layout=layout)
        self.renders = 0

    def update(self, **values: Any) -> tuple[bytes, str, str]:
        """Draw ``values``; return the PNG and the HTML above and below it.

        Raises whatever the draw function raises (the figure may then be half drawn;
        the next update starts it again).
        """
        shown = self.draw(self.figure, **values)
        from kvmlab.figures import png_bytes

        png = png_bytes(self.figure)
        self.renders += 1
        return (png, *to_html(shown))


class Explorer:
    """Controls above one text line, one image and the tables, kept in step.

    Parameters
    ----------
    controls : mapping of str to ipywidgets control
        The draw function's keyword arguments, by name.
    draw : callable
        ``draw(fig, **values)``.
    figsize, layout
        As for :class:`View`.
    arrange : callable, optional
        Lays out the controls (default: one ``HBox`` of them all).

    Attributes
    ----------
    box : ipywidgets.VBox
        Controls, text, image and tables (``box.children[0]`` the controls).
    image : ipywidgets.Image
        The figure, as PNG.
    """

    def __init__(self, controls: Mapping[str, Any], draw: Drawer,
                 figsize: tuple[float, float] = (7.0, 4.0),
                 layout: str | None = "constrained",
                 arrange: Callable[[Iterable[Any]], Any] | None = None) -> None:
        import ipywidgets as w

        self.controls = dict(controls)
        self.view = View(draw, figsize, layout)
        self.above, self.below = w.HTML(), w.HTML()
        self.image = w.Image(format="png", layout=w.Layout(max_width="100%", height="auto"))
        self.error = ""
        top = (arrange or (lambda cs: w.HBox(list(cs))))(self.controls.values())
        self.box = w.VBox([top, self.above, self.image, self.below])
        for control in self.controls.values():
            control.observe(self.refresh, names="value")
        self.refresh()

    def values(self) -> dict[str, Any]:
        """The controls' current values, by name."""
        return {name: control.value for name, control in self.controls.items()}

    def refresh(self, _change: Any = None) -> None:
        """Draw the controls' current values and show the result (a refused value: why)."""
        try:
            png, above, below = self.view.update(**self.values())
        except KvmlabError as exc:
            self.error = str(exc)
            self.above.value = f"<p>Cannot show that: {html.escape(self.error)}</p>"
            self.below.value = ""
            self.image.layout.display = "none"
            return
        self.error = ""
        self.image.value = png
        self.image.layout.display = None
        self.above.value, self.below.value = above, below


def explorer(controls: Mapping[str, Any], draw: Drawer, **options: Any) -> Any:
    """An :class:`Explorer`'s box (``box.explorer`` is the explorer), ready to display."""
    made = Explorer(controls, draw, **options)
    box = made.box
    box.explorer = made
    return box

"""Figures that read well in a notebook: text size, blank checks and fast PNG rendering.

A notebook shows a figure at most :data:`NOTEBOOK_WIDTH_IN` inches wide; a wider figure is
scaled down, and its text with it. :func:`smallest_text_pt` says how large the smallest
visible text of a figure comes out at that width (the labs keep it at
:data:`MIN_TEXT_PT` or more); :func:`ink_fraction` and :func:`is_blank` say whether a
rendered figure shows anything; :func:`png_bytes` renders a figure with Agg (no pyplot,
no notebook back-end), which is what the explorers (:mod:`kvmlab.explorer`) show.

Examples
--------
>>> fig = new_figure((6, 3))
>>> ax = fig.add_subplot()
>>> _ = ax.plot([0, 1], [0, 1])
>>> _ = ax.set_title("a title", fontsize=12)
>>> smallest_text_pt(fig) >= MIN_TEXT_PT, is_blank(fig)
(True, False)
>>> is_blank(new_figure((6, 3)))
True
>>> png_bytes(fig)[:4]
b'\\x89PNG'
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

__all__ = ["MIN_TEXT_PT", "NOTEBOOK_WIDTH_IN", "ink_fraction", "is_blank", "new_figure",
           "png_bytes", "shown_scale", "small_texts", "smallest_text_pt"]

NOTEBOOK_WIDTH_IN = 10.0
"""The widest a figure is shown in a notebook (JupyterLab's output area, at 100 dpi, is
about 1000 px): a wider figure is scaled down to this width."""
MIN_TEXT_PT = 9.0
"""The smallest text a lab's figure may show, at the size it is shown."""
PNG_OPTIONS = {"compress_level": 1}
"""Fast PNG compression: a figure's PNG is a little larger and encodes several times
faster than at the default level."""
PNG_TEXT = {"text.hinting": "no_hinting"}
"""How :func:`png_bytes` renders text: without FreeType's auto-hinter, which spends a
fifth of an explorer's drawing on text; at 100 dpi the letters look the same."""


def new_figure(figsize: tuple[float, float], *, dpi: float = 100,
               layout: str | None = "constrained") -> Figure:
    """A figure with an Agg canvas, outside pyplot (no back-end shows or closes it).

    Examples
    --------
    >>> fig = new_figure((4, 2))
    >>> type(fig.canvas).__name__, fig.get_size_inches().tolist()
    ('FigureCanvasAgg', [4.0, 2.0])
    """
    fig = Figure(figsize=figsize, dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def shown_scale(fig: Figure, width_in: float = NOTEBOOK_WIDTH_IN) -> float:
    """How much a notebook scales ``fig`` down (1.0 when it fits in ``width_in`` inches).

    Examples
    --------
    >>> shown_scale(new_figure((20, 4)))
    0.5
    """
    return min(1.0, width_in / float(fig.get_figwidth()))


def _texts(fig: Figure) -> Iterator[Text]:
    """Every visible, non-empty text artist that a drawing of ``fig`` shows."""
    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()
    for artist in fig.findobj(Text):
        if not artist.get_visible() or not artist.get_text().strip():
            continue
        axes = artist.axes
        if axes is not None and not axes.get_visible():
            continue
        if artist.get_window_extent(renderer).width <= 0:
            continue
        yield artist


def small_texts(fig: Figure, min_pt: float = MIN_TEXT_PT,
                width_in: float = NOTEBOOK_WIDTH_IN) -> list[tuple[str, float]]:
    """The texts of ``fig`` smaller than ``min_pt`` points as shown: (text, size) pairs.

    Examples
    --------
    >>> fig = new_figure((5, 3))
    >>> _ = fig.text(0.5, 0.5, "tiny", fontsize=6)
    >>> small_texts(fig)
    [('tiny', 6.0)]
    """
    scale = shown_scale(fig, width_in)
    return [(t.get_text(), round(t.get_fontsize() * scale, 2)) for t in _texts(fig)
            if t.get_fontsize() * scale < min_pt]


def smallest_text_pt(fig: Figure, width_in: float = NOTEBOOK_WIDTH_IN) -> float:
    """The size in points of the smallest visible text of ``fig``, as a notebook shows it.

    Every text artist counts (titles, labels, tick labels, legends, annotations), and a
    figure wider than ``width_in`` inches has its sizes scaled down as the notebook scales
    the figure. A figure without text gives ``inf``.

    Examples
    --------
    >>> fig = new_figure((20, 3))              # shown at half its size
    >>> _ = fig.text(0.5, 0.5, "big", fontsize=14)
    >>> smallest_text_pt(fig)
    7.0
    >>> smallest_text_pt(new_figure((2, 2)))
    inf
    """
    scale = shown_scale(fig, width_in)
    return min((t.get_fontsize() * scale for t in _texts(fig)), default=float("inf"))


def rgba(fig: Figure) -> np.ndarray:
    """The figure drawn by Agg, as an array of RGBA pixels (rows, columns, 4)."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())


def ink_fraction(fig: Figure) -> float:
    """The fraction of the figure's pixels that differ from its background colour.

    Examples
    --------
    >>> fig = new_figure((2, 2))
    >>> ink_fraction(fig)
    0.0
    >>> _ = fig.add_subplot().plot([0, 1], [0, 1])
    >>> 0 < ink_fraction(fig) < 0.5
    True
    """
    pixels = rgba(fig)
    background = pixels[0, 0]
    return float(np.any(pixels != background, axis=-1).mean())


def is_blank(fig: Figure, threshold: float = 0.001) -> bool:
    """Whether ``fig`` draws (next to) nothing: less than ``threshold`` of its pixels inked."""
    return ink_fraction(fig) < threshold


def png_bytes(fig: Figure) -> bytes:
    """``fig`` drawn by Agg and encoded as PNG (fast compression), without pyplot.

    The figure is drawn once (text as :data:`PNG_TEXT` says); its size is kept (no tight
    bounding box), so a figure that an explorer redraws keeps its place on the page.
    """
    from matplotlib import rc_context

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    with rc_context(PNG_TEXT):
        canvas.print_png(buffer, pil_kwargs=dict(PNG_OPTIONS))
    return buffer.getvalue()

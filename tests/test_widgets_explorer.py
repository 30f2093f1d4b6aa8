"""The shared explorer: every change draws a whole, non-blank figure, and only one."""

from __future__ import annotations

import io

import ipywidgets as w
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import matplotlib.image as mpimg
import matplotlib.pyplot as plt

from kvmlab.cpu import widgets as cpu_widgets
from kvmlab.errors import ScenarioError
from kvmlab.explorer import View, explorer, to_html
from kvmlab.memory import widgets as memory_widgets
from kvmlab.storage import load_scenario
from kvmlab.storage import widgets as storage_widgets


def inked(png: bytes) -> float:
    """The fraction of the PNG's pixels that differ from its top-left pixel."""
    pixels = mpimg.imread(io.BytesIO(png), format="png")
    return float(np.any(pixels != pixels[0, 0], axis=-1).mean())


def images(box: w.Widget) -> list[w.Widget]:
    found = []
    for child in getattr(box, "children", ()):
        found += [child] if isinstance(child, (w.Image, w.Output)) else images(child)
    return found


def fire(box: w.Widget, changes: list[tuple[int, object]]) -> list[bytes]:
    """Set controls one after the other; the image after each change."""
    controls = [c for c in box.explorer.controls.values()]
    shown = []
    for index, value in changes:
        controls[index].value = value
        shown.append(box.explorer.image.value)
    return shown


@pytest.mark.parametrize(("make", "changes"), [
    (memory_widgets.walk_explorer, [(0, "2M"), (1, "1G"), (2, 5), (0, "4K"), (1, "4K"),
                                    (0, "1G"), (2, 4)]),
    (lambda: memory_widgets.tlb_explorer(accesses=300),
     [(0, 2048), (1, 128), (2, "2M"), (3, "sequential"), (0, 64), (2, "4K"), (0, 65536)]),
    (lambda: cpu_widgets.explorer(duration_s=0.2),
     [(0, 3), (1, 4), (2, 1), (0, 8), (4, "round-robin"), (3, 0.5), (0, 2), (1, 2)]),
    (lambda: storage_widgets.io_explorer(count=32),
     [(0, "overlay"), (1, "random"), (2, 4096), (3, "read"), (4, "hdd"), (5, True),
      (0, "raw")]),
    (lambda: storage_widgets.cluster_slider(load_scenario("storage-several-writes")),
     [(0, 1), (0, 2), (0, 6), (0, 3), (0, 0), (0, 5)]),
], ids=["walk", "tlb", "cpu", "io", "clusters"])
def test_every_change_in_a_row_draws_one_whole_figure(make, changes):
    box = make()
    before = box.explorer.view.renders
    shown = fire(box, changes)
    assert box.explorer.view.renders == before + len(changes)     # one drawing per change
    assert len(images(box)) == 1 and isinstance(images(box)[0], w.Image)   # never an Output
    for png in shown:
        assert png[:4] == b"\x89PNG" and inked(png) > 0.02
    assert len({bytes(p) for p in shown}) > 1                      # the figure follows
    assert not plt.get_fignums()                                   # nothing left in pyplot


def test_a_refused_value_says_why_and_the_next_change_draws_again():
    slider = w.IntSlider(3, min=-5, max=10)

    def draw(fig, n):
        if n < 0:
            raise ScenarioError(f"n must be 0 or more, not {n}")
        fig.clear()
        fig.add_subplot().bar(range(n + 1), range(n + 1))
        return f"{n} bars"

    box = explorer({"n": slider}, draw, figsize=(3, 2))
    slider.value = -1
    assert "Cannot show that: n must be 0 or more, not -1" in box.explorer.above.value
    assert box.explorer.image.layout.display == "none"
    slider.value = 4
    assert box.explorer.above.value == "<p>4 bars</p>" and box.explorer.error == ""
    assert box.explorer.image.layout.display is None and inked(box.explorer.image.value) > 0


def test_a_view_keeps_its_figure_and_size():
    def draw(fig, n):
        fig.clear()
        fig.add_subplot().plot(range(n))
        return ["line one", "two\nlines"]

    view = View(draw, figsize=(4, 2), layout=None)
    first, above, below = view.update(n=3)
    again, _, _ = view.update(n=30)
    assert view.figure.get_size_inches().tolist() == [4.0, 2.0] and view.renders == 2
    assert above == "<p>line one</p><pre>two\nlines</pre>" and below == ""
    assert mpimg.imread(io.BytesIO(first)).shape[:2] == (200, 400) and first != again


def test_to_html_puts_tables_below_and_skips_nothing_else():
    class Html:
        def _repr_html_(self):
            return "<b>t</b>"

    assert to_html(None) == ("", "")
    assert to_html([None, "x", Html()]) == ("<p>x</p>", "<b>t</b>")

"""The storage explorers: their pure functions are the model, and their controls re-run them."""

from __future__ import annotations

import matplotlib
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from kvmlab.errors import ScenarioError
from kvmlab.figures import MIN_TEXT_PT, is_blank, new_figure, small_texts, smallest_text_pt
from kvmlab.storage import StorageScenario
from kvmlab.storage import plot as storage_plot
from kvmlab.storage import widgets as storage_widgets
from kvmlab.storage.model import simulate_io
from kvmlab.storage.qcow2 import Qcow2Model
from kvmlab.storage.scenario import IoWorkload
from kvmlab.storage.widgets import (
    IO_FIGSIZE,
    cluster_slider,
    describe_write,
    draw_clusters,
    draw_io,
    io_compare,
    io_explorer,
    io_summary,
    io_workload,
    layout_after,
)

MiB = 1024 * 1024
SEED_SCENARIO = {"virtual_size": 10 * MiB, "cluster_size": 65536,
                 "writes": [[MiB, 65536], [100, 10], [MiB + 4096, 100]]}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@st.composite
def scenarios(draw):
    size = draw(st.sampled_from([1, 8])) * MiB
    cluster = draw(st.sampled_from([4096, 65536]))
    writes = []
    for _ in range(draw(st.integers(0, 8))):
        offset = draw(st.integers(0, size - 1))
        writes.append([offset, draw(st.integers(1, min(size - offset, 2 * cluster)))])
    return StorageScenario.from_dict({"virtual_size": size, "cluster_size": cluster,
                                      "writes": writes})


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_layout_after_is_the_model_of_the_first_writes_and_only_grows(s):
    previous = None
    for n in range(len(s.writes) + 1):
        got = layout_after(s, n)
        prefix = StorageScenario(virtual_size=s.virtual_size, cluster_size=s.cluster_size,
                                 writes=s.writes[:n])
        assert got == Qcow2Model.from_scenario(prefix).layout()
        if previous is not None:
            assert got[:len(previous)] == previous          # nothing moves
        previous = got
    assert layout_after(s, len(s.writes)) == Qcow2Model.from_scenario(s).layout()


def test_layout_after_takes_dicts_and_checks_the_count():
    assert len(layout_after(SEED_SCENARIO, 0)) == 4
    with pytest.raises(ScenarioError, match="between 0 and 3"):
        layout_after(SEED_SCENARIO, 4)
    with pytest.raises(ScenarioError):
        layout_after(SEED_SCENARIO, -1)


def test_describe_write_says_what_each_write_added():
    assert describe_write(SEED_SCENARIO, 0).startswith("The empty image: header")
    first = " ".join(describe_write(SEED_SCENARIO, 1).split())
    assert "write 0: 64.00 KiB at guest offset 1,048,576 (guest cluster 16)" in first
    assert "cluster 4 (L2 table), cluster 5 (data of guest cluster 16)" in first
    assert "393,216 bytes (6 clusters)" in first
    third = " ".join(describe_write(SEED_SCENARIO, 3).split())
    assert "Nothing new" in third and "overwritten in place" in third


def test_cluster_slider_redraws_as_writes_arrive(monkeypatch):
    import ipywidgets as w

    calls = []
    real = storage_plot.cluster_map

    def spy(image, **kwargs):
        calls.append({"upto_write": image.writes_applied, **kwargs})
        return real(image, **kwargs)

    monkeypatch.setattr(storage_plot, "cluster_map", spy)
    box = cluster_slider(SEED_SCENARIO, columns=8)
    slider, line, image, _tables = box.children
    assert isinstance(slider, w.IntSlider) and isinstance(image, w.Image)
    assert not any(isinstance(c, w.Output) for c in box.children)
    assert (slider.min, slider.max, slider.value) == (0, 3, 0)
    drawn_into = calls[-1].pop("ax")
    assert drawn_into.figure is box.explorer.view.figure       # the explorer's one figure
    assert calls[-1] == {"upto_write": 0, "columns": 8, "min_clusters": 7}
    shown = [bytes(image.value)]
    for n in (2, 3, 1):
        slider.value = n
        assert calls[-1]["upto_write"] == n
        shown.append(bytes(image.value))
        assert line.value.startswith(f"<pre>write {n - 1}:") or line.value.startswith(
            f"<p>write {n - 1}:")
    assert len(set(shown)) == 4
    assert not plt.get_fignums()


@pytest.mark.parametrize("name", ["storage-first-writes", "storage-several-writes",
                                  "storage-snapshots", "storage-qcow2-compressed"])
def test_every_moment_of_a_slider_is_readable_in_one_figure(name):
    from kvmlab.storage import load_scenario
    from kvmlab.storage.model import image_after
    from kvmlab.storage.plot import cluster_map_layout

    s = load_scenario(name)

    size, _rect = cluster_map_layout(image_after(s), 16, 0)
    assert size[0] <= 10
    fig = new_figure(size, layout=None)
    for n in range(len(s.writes) + 1):
        draw_clusters(fig, s, n)
        assert not is_blank(fig)
        assert smallest_text_pt(fig) >= MIN_TEXT_PT, small_texts(fig)
        renderer = fig.canvas.get_renderer()
        box = fig.axes[0].get_tightbbox(renderer)
        assert fig.bbox.padded(1).contains(box.x0, box.y0)      # nothing cut off
        assert fig.bbox.padded(1).contains(box.x1, box.y1)


def test_io_workload_maps_the_controls_onto_a_workload():
    w = io_workload("overlay", "random", 4096, "mixed (half reads)", "hdd", count=12,
                    prefill=True, queue_depth=2)
    assert w == IoWorkload(format="overlay", pattern="random", request_size=4096,
                           read_fraction=0.5, disk=w.disk, count=12, prefill=True,
                           queue_depth=2)
    assert w.disk.name == "hdd"
    with pytest.raises(ScenarioError, match="operation must be one of"):
        io_workload(operation="trim")
    with pytest.raises(ScenarioError, match="request_size"):
        io_workload(request_size=100)


def test_io_compare_puts_the_raw_baseline_first():
    w = io_workload("qcow2", "random", 4096, count=20)
    raw, qcow2 = io_compare(w, seed=3)
    assert raw == simulate_io(w.replace(format="raw"), seed=3)
    assert qcow2 == simulate_io(w, seed=3)
    assert len(io_compare(w.replace(format="raw"))) == 1


def test_io_summary_names_the_figures():
    r = simulate_io(io_workload("qcow2", count=8))
    text = io_summary(r)
    assert text.startswith("qcow2, sequential write on ssd: 8 requests of 64.00 KiB")
    assert f"{r.metadata_writes} metadata writes" in text
    empty = simulate_io(io_workload("qcow2", operation="read", count=2))
    assert "no disk I/O at all" in io_summary(empty)


def test_io_explorer_has_the_controls_and_reruns_on_change(monkeypatch):
    import ipywidgets as w

    calls = []
    real = storage_widgets.io_compare

    def spy(workload, seed=0):
        calls.append((workload, seed))
        return real(workload, seed=seed)

    monkeypatch.setattr(storage_widgets, "io_compare", spy)
    box = io_explorer(count=10, seed=5, virtual_size=64 * MiB)
    controls = {c.description: c for col in box.children[0].children for c in col.children}
    assert set(controls) == {"format", "pattern", "request size", "operation", "disk",
                             "image already full"}
    assert isinstance(box.children[2], w.Image)
    assert not any(isinstance(c, w.Output) for c in box.children)
    workload, seed = calls[-1]
    assert (workload.format, workload.count, workload.virtual_size, seed) == (
        "qcow2", 10, 64 * MiB, 5)
    controls["format"].value = "overlay"
    controls["request size"].value = 4096
    assert (calls[-1][0].format, calls[-1][0].request_size) == ("overlay", 4096)
    assert "overlay, sequential write" in box.explorer.above.value
    assert "<table>" in box.explorer.below.value
    assert not plt.get_fignums()


def test_io_explorer_says_why_it_refuses_and_draws_again_after(monkeypatch):
    box = io_explorer(count=1000, virtual_size=4096 * MiB)   # 1000 writes x 65,536 clusters
    assert "Cannot show that:" in box.explorer.above.value
    assert "more than the explorer simulates at once" in box.explorer.error
    assert box.explorer.image.layout.display == "none"
    controls = {c.description: c for col in box.children[0].children for c in col.children}
    controls["format"].value = "raw"                          # no clusters to look over
    assert box.explorer.error == "" and box.explorer.image.layout.display is None
    assert box.explorer.above.value.startswith("<p>raw, sequential write")
    assert box.explorer.above.value.count("<p>") == 1           # one run: raw only


def test_io_compare_keeps_its_results():
    w = io_workload("overlay", "random", 4096, count=30)
    assert io_compare(w, seed=2) is io_compare(w, seed=2)
    assert io_compare(w, seed=3) is not io_compare(w, seed=2)


def test_draw_io_is_readable_and_fits_its_figure():
    fig = new_figure(IO_FIGSIZE, layout=None)
    for fmt in ("raw", "qcow2", "overlay"):
        *lines, table = draw_io(fig, io_compare(io_workload(fmt, "random", count=32)))
        assert [line.split(",")[0] for line in lines] == (
            ["raw"] if fmt == "raw" else ["raw", fmt])
        assert table._repr_html_().startswith("<table>")
        assert not is_blank(fig) and smallest_text_pt(fig) >= MIN_TEXT_PT, small_texts(fig)
        renderer = fig.canvas.get_renderer()
        for artist in [*fig.axes, fig.axes[0].get_legend()]:
            box = artist.get_tightbbox(renderer)
            assert fig.bbox.padded(1).contains(box.x0, box.y0), artist
            assert fig.bbox.padded(1).contains(box.x1, box.y1), artist
    with pytest.raises(ScenarioError, match="IoResults"):
        draw_io(fig, "raw")

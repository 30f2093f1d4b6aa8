"""The storage lab's figures draw what the model says: a patch per cluster, per map entry."""

from __future__ import annotations

import matplotlib
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.colors import to_rgba

from kvmlab.errors import ScenarioError
from kvmlab.storage import StorageScenario, image_after, plot, simulate
from kvmlab.storage.model import model_after, simulate_io
from kvmlab.storage.plot import (
    KIND_COLOURS,
    UNALLOCATED_COLOUR,
    allocation_colour,
    cluster_map,
    depth_colour,
    guest_map,
    plot_io,
    write_colour,
)
from kvmlab.storage.qcow2 import Qcow2Model
from kvmlab.storage.scenario import IoWorkload

MiB = 1024 * 1024
SEED_SCENARIO = {"virtual_size": 10 * MiB, "cluster_size": 65536,
                 "writes": [[MiB, 65536], [100, 10]]}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@st.composite
def scenarios(draw, with_backing=False):
    size = draw(st.sampled_from([1, 4, 16])) * MiB
    cluster = draw(st.sampled_from([4096, 65536]))

    def writes():
        out = []
        for _ in range(draw(st.integers(0, 8))):
            offset = draw(st.integers(0, size - 1))
            out.append([offset, draw(st.integers(1, min(size - offset, 3 * cluster)))])
        return out

    data = {"virtual_size": size, "cluster_size": cluster, "writes": writes()}
    if with_backing:
        data["backing"] = {"virtual_size": size, "cluster_size": cluster, "writes": writes()}
    return StorageScenario.from_dict(data)


def facecolours(ax):
    return [p.get_facecolor() for p in ax.patches]


# -- cluster map ---------------------------------------------------------------------------
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_one_patch_per_cluster_coloured_by_kind(s):
    plt.close("all")
    model = Qcow2Model.from_scenario(s)
    ax = cluster_map(model, columns=8)
    layout = model.layout()
    assert len(ax.patches) == len(layout) == model.next_free
    for patch, a in zip(ax.patches, layout, strict=True):
        want = write_colour(a.write) if a.kind == "data" else KIND_COLOURS[a.kind]
        assert patch.get_facecolor() == pytest.approx(to_rgba(want))
        row, col = divmod(a.cluster, 8)
        assert patch.get_xy() == (col, row)


def test_the_seed_scenario_draws_metadata_then_data():
    ax = cluster_map(image_after(SEED_SCENARIO))
    kinds = [p.get_gid().split(": ")[1] for p in ax.patches]
    assert kinds == ["header", "refcount table", "refcount block", "L1", "L2", "data", "data"]
    assert facecolours(ax)[5] == pytest.approx(to_rgba(write_colour(0)))
    assert facecolours(ax)[6] == pytest.approx(to_rgba(write_colour(1)))
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["H", "RT", "RB", "L1", "L2", "g16", "g0"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "L2 table" in legend and "data of write 1: 10 B at 100 B" in legend
    assert "458,752 bytes" in ax.get_title(loc="left")


def test_upto_write_draws_the_image_as_it_was_and_outlines_the_new_clusters():
    empty = cluster_map(image_after(SEED_SCENARIO, 0))
    assert len(empty.patches) == 4
    assert all(p.get_linewidth() == 1.0 for p in empty.patches)
    one = cluster_map(image_after(SEED_SCENARIO, 1), min_clusters=7)
    assert len(one.patches) == 6
    assert [p.get_linewidth() for p in one.patches] == [1.0] * 4 + [2.0] * 2
    assert one.get_xlim() == (0, 7)                      # room for the final 7 clusters
    assert "after 1 of 2 writes" in one.get_title(loc="left")


def test_cluster_map_draws_an_image_and_does_not_replay_a_scenario():
    with pytest.raises(ScenarioError, match=r"image_after\(scenario, n_writes\), which replays"):
        cluster_map(SEED_SCENARIO)
    with pytest.raises(ScenarioError, match="between 0 and 2"):
        image_after(SEED_SCENARIO, 3)
    with pytest.raises(ScenarioError, match="columns"):
        cluster_map(image_after(SEED_SCENARIO), columns=0)
    assert len(cluster_map(Qcow2Model(MiB, 4096)).patches) == 4


def test_cluster_map_draws_into_a_given_axes():
    _fig, ax = plt.subplots()
    assert cluster_map(image_after(SEED_SCENARIO), ax=ax) is ax
    assert image_after(SEED_SCENARIO).plot(ax=ax) is ax


def test_allocation_colour_and_model_after_agree_with_the_model():
    s = StorageScenario.from_dict(SEED_SCENARIO)
    assert [allocation_colour(a) for a in model_after(s).layout()][:2] == [
        KIND_COLOURS["header"], KIND_COLOURS["refcount table"]]
    assert model_after(s, 1).map() == Qcow2Model.from_scenario(
        StorageScenario.from_dict({**SEED_SCENARIO, "writes": SEED_SCENARIO["writes"][:1]})
    ).map()


# -- guest map -----------------------------------------------------------------------------
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(with_backing=True))
def test_one_patch_per_map_entry_coloured_by_depth(s):
    plt.close("all")
    result = simulate(s)
    ax = guest_map(result)
    assert len(ax.patches) == len(result.map)
    for patch, e in zip(ax.patches, result.map, strict=True):
        want = depth_colour(e["depth"]) if e["data"] else UNALLOCATED_COLOUR
        assert patch.get_facecolor() == pytest.approx(to_rgba(want))
        assert (patch.get_x(), patch.get_width()) == (e["start"], e["length"])
    assert ax.get_xlim() == (0, s.virtual_size)


def test_an_overlay_shows_both_depths_in_its_legend():
    s = {"virtual_size": 4 * MiB, "cluster_size": 65536, "writes": [[0, 65536]],
         "backing": {"virtual_size": 4 * MiB, "cluster_size": 65536, "writes": [[MiB, MiB]]}}
    ax = guest_map(simulate(s).map)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["this image (depth 0)", "backing file (depth 1)",
                      "in no image: reads as zeros"]
    assert "26.6% of it held" in ax.get_title(loc="left")        # 64 KiB + 1 MiB of 4 MiB


def test_guest_map_rejects_what_is_not_a_map():
    with pytest.raises(ScenarioError, match="guest_map draws a map"):
        guest_map(42)
    with pytest.raises(ScenarioError, match="empty"):
        guest_map([])


# -- I/O -----------------------------------------------------------------------------------
def test_plot_io_bars_are_throughputs_and_markers_latencies():
    w = IoWorkload(request_size=4096, count=64)
    results = [simulate_io(w.replace(format=f)) for f in ("raw", "qcow2", "overlay")]
    ax = plot_io(results)
    heights = [b.get_height() for b in ax.containers[0]]
    assert heights == pytest.approx([r.throughput_bytes_per_s / 1e6 for r in results])
    assert heights[0] > heights[1] > heights[2]
    right = ax.figure.axes[-1]
    means = next(line for line in right.get_lines() if line.get_label() == "mean latency")
    scale = 1e6 if "µs" in right.get_ylabel() else 1e3
    assert list(means.get_ydata()) == pytest.approx([r.mean_latency_s * scale for r in results])
    assert ax.get_xticklabels()[0].get_text() == "raw\nsequential write"


def test_plot_io_takes_labels_and_marks_runs_without_disk_io():
    empty = simulate_io(IoWorkload(read_fraction=1.0, count=4))       # an empty qcow2 image
    ax = plot_io({"empty image": empty})
    assert [b.get_height() for b in ax.containers[0]] == [0.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["empty image"]
    assert any(t.get_text() == "no disk I/O" for t in ax.texts)
    with pytest.raises(ScenarioError, match="at least one"):
        plot_io([])


def test_sizes_are_shown_in_binary_units():
    ax = cluster_map(image_after({**SEED_SCENARIO, "cluster_size": 4096}), columns=4)
    assert ax.get_xlabel() == "cluster within the row (4.00 KiB each)"
    assert [t.get_text() for t in ax.get_yticklabels()][:2] == ["0 B", "16.00 KiB"]


def test_a_snapshot_shows_as_hatched_shared_clusters_and_its_tables():
    s = {"virtual_size": 10 * MiB, "cluster_size": 65536,
         "writes": [[0, 65536], [3 * MiB, 4096]],
         "snapshots": [{"after": 1, "name": "a"}, {"after": 1, "name": "b"}]}
    ax = plot.cluster_map(image_after(s, 2))
    gids = [patch.get_gid() for patch in ax.patches]
    assert "cluster 5: data (refcount 3)" in gids
    assert any(g.startswith("cluster 6: snapshot L1") for g in gids)
    # the last write reused the freed snapshot table (cluster 7) for its L2 copy
    outlined = [patch.get_gid() for patch in ax.patches if patch.get_linewidth() == 2.0]
    assert outlined == ["cluster 7: L2", "cluster 10: data"]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("shared with a snapshot" in t for t in labels)
    assert "snapshots: a, b" in ax.get_title(loc="left")
    plt.close("all")


def test_a_raw_image_has_no_cluster_map():
    with pytest.raises(ScenarioError, match="raw image has no clusters"):
        image_after({"format": "raw", "virtual_size": MiB})

"""The CPU lab's figures draw what the results say, and the overcommit sweep is right."""

from __future__ import annotations

import itertools
import json
from collections import namedtuple

import matplotlib
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from kvmlab.cpu import CpuResult, CpuScenario, VcpuStats, compare, load_scenario, simulate
from kvmlab.cpu.plot import (
    gantt,
    plot_comparison,
    plot_shares,
    plot_wait_vs_overcommit,
    side_by_side,
    vcpu_colors,
)
from kvmlab.cpu.recordings import (
    compare_recorded,
    comparison_rows,
    overcommit_points,
    recorded_points,
    scheduler_fit,
)
from kvmlab.cpu.scenario import busy_scenario, overcommit_scenario
from kvmlab.errors import ScenarioError
from kvmlab.experiments import sweep

RATIOS = [0.5, 1, 1.5, 2, 2.5, 3]


def sweep_points(ratios=RATIOS, duration_s=2.0, seeds=(0,), **grid):
    """The wait-versus-overcommit points of the one sweep engine, on the model."""
    table = sweep("cpu-overcommit", {"ratio": list(ratios), "duration_s": duration_s, **grid},
                  seeds=seeds, executor="serial", progress=False)
    return overcommit_points(table)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def seed_result() -> CpuResult:
    return simulate(load_scenario("cpu-seed-example").with_duration(1.0), seed=3)


def measured_copy(result: CpuResult, nudge: float = 0.0) -> CpuResult:
    """A 'measured' result of the same scenario: shares moved by ``nudge``, no timeline."""
    vcpus = tuple(VcpuStats(v.vm, v.vcpu, v.run_s * (1 - nudge), v.wait_s * (1 + nudge),
                            v.slices, v.duration_s) for v in result.vcpus)
    return CpuResult(result.scenario, "measured", vcpus, result.duration_s,
                     provenance={"host": "testhost", "accelerator": "tcg"})


def bars(ax):
    """(pcpu, start, end, label) of every bar in a Gantt chart (a collection per vCPU)."""
    out = []
    for collection in ax.collections:
        for path in collection.get_paths():
            (x0, y0), (x1, y1) = path.vertices.min(axis=0), path.vertices.max(axis=0)
            out.append((round((y0 + y1) / 2), x0, x1, collection.get_label()))
    return out


# -- Gantt -----------------------------------------------------------------------------
def test_gantt_has_one_bar_per_slice_with_its_extent(seed_result):
    ax = gantt(seed_result)
    expected = sorted((s.pcpu, s.start_s, s.end_s, f"{s.vm}/{s.vcpu}")
                      for s in seed_result.timeline)
    got = sorted(bars(ax))
    assert len(got) == len(seed_result.timeline)
    for (p1, a1, b1, l1), (p2, a2, b2, l2) in zip(got, expected, strict=True):
        assert (p1, l1) == (p2, l2)
        assert a1 == pytest.approx(a2) and b1 == pytest.approx(b2)
    assert ax.get_xlim() == pytest.approx((0, seed_result.duration_s))


def test_gantt_until_cuts_the_window(seed_result):
    ax = gantt(seed_result, until_s=0.05)
    got = bars(ax)
    inside = [s for s in seed_result.timeline if s.start_s < 0.05]
    assert len(got) == len(inside)
    assert max(end for _, _, end, _ in got) == pytest.approx(0.05)
    assert ax.get_xlim() == pytest.approx((0, 0.05))


def test_gantt_rows_never_overlap(seed_result):
    ax = gantt(seed_result, until_s=0.3)
    by_row: dict[int, list[tuple[float, float]]] = {}
    for pcpu, start, end, _ in bars(ax):
        by_row.setdefault(pcpu, []).append((start, end))
    assert set(by_row) == {0, 1}
    for spans in by_row.values():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end - 1e-9


def test_gantt_legend_names_every_vcpu_and_rows_are_pcpus(seed_result):
    ax = gantt(seed_result, until_s=0.1)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["vm1/0", "vm1/1", "vm2/0", "vm2/1", "vm2/2", "vm2/3"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["pCPU 0", "pCPU 1"]


def test_gantt_colours_are_per_vcpu(seed_result):
    ax = gantt(seed_result, until_s=0.1)
    colours = vcpu_colors(seed_result.scenario)
    assert len(set(colours.values())) == 6
    assert ax.collections and not ax.containers
    for collection in ax.collections:
        vm, vcpu = collection.get_label().split("/")
        faces = collection.get_facecolor()
        assert len(faces) == 1 and faces[0][:3] == pytest.approx(colours[vm, int(vcpu)])


def test_gantt_refuses_results_without_a_timeline(seed_result):
    with pytest.raises(ScenarioError, match=r"no timeline.*measured"):
        gantt(measured_copy(seed_result))
    bare = simulate(seed_result.scenario, record_timeline=False)
    with pytest.raises(ScenarioError, match="record_timeline=False"):
        gantt(bare)


def test_gantt_draws_into_a_given_axes(seed_result):
    _fig, ax = plt.subplots()
    assert gantt(seed_result, ax=ax, until_s=0.02) is ax


small_scenarios = st.builds(
    lambda pcpus, sizes, load, pin: CpuScenario.from_dict({
        "pcpus": pcpus, "duration_s": 0.3,
        "vms": [{"name": f"vm{i}", "vcpus": n, "load": load,
                 **({"pin": [0]} if pin and i == 0 else {})}
                for i, n in enumerate(sizes)]}),
    st.integers(1, 3), st.lists(st.integers(1, 3), min_size=1, max_size=3),
    st.sampled_from([1.0, 0.5, 0.3]), st.booleans())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=small_scenarios, seed=st.integers(0, 1000),
       scheduler=st.sampled_from(["fair", "round-robin"]))
def test_gantt_property_bars_are_the_timeline(scenario, seed, scheduler):
    result = simulate(scenario, seed=seed, scheduler=scheduler)
    if not result.timeline:
        return
    ax = gantt(result, until_s=0.2)
    got = bars(ax)
    assert len(got) == sum(1 for s in result.timeline if s.start_s < 0.2)
    by_row: dict[int, list[tuple[float, float]]] = {}
    for pcpu, start, end, _ in got:
        assert 0 <= pcpu < scenario.pcpus
        assert 0 <= start < end <= 0.2 + 1e-9
        by_row.setdefault(pcpu, []).append((start, end))
    for spans in by_row.values():
        spans.sort()
        assert all(b[0] >= a[1] - 1e-9 for a, b in itertools.pairwise(spans))
    plt.close("all")


# -- shares ----------------------------------------------------------------------------
def test_share_bars_are_run_then_wait_on_top(seed_result):
    ax = plot_shares(seed_result)
    run, wait = ax.containers[0], ax.containers[1]
    assert len(run) == len(wait) == len(seed_result.vcpus)
    for v, r, w in zip(seed_result.vcpus, run, wait, strict=True):
        assert r.get_height() == pytest.approx(v.run_share)
        assert w.get_y() == pytest.approx(v.run_share)
        assert w.get_height() == pytest.approx(v.wait_share)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["vm1/0", "vm1/1", "vm2/0", "vm2/1", "vm2/2", "vm2/3"]


def test_share_plot_marks_the_closed_form_only_where_it_applies(seed_result):
    ax = plot_shares(seed_result)
    ticks = ax.collections[0].get_segments()
    assert [round(float(seg[0][1]), 3) for seg in ticks] == [0.5, 0.5, 0.25, 0.25, 0.25, 0.25]
    run_bars = ax.containers[0]
    for seg, bar in zip(ticks, run_bars, strict=True):   # each tick spans its own bar
        assert seg[0][0] < bar.get_x() + bar.get_width() / 2 < seg[1][0]
    duty = simulate(load_scenario("cpu-duty-cycle").with_duration(0.5))
    assert not plot_shares(duty).collections     # no closed form for partly busy vCPUs


def test_side_by_side_shares_one_axis_per_result(seed_result):
    rr = simulate(seed_result.scenario, scheduler="round-robin")
    axes = side_by_side([seed_result, rr])
    assert len(axes) == 2
    assert axes[1].containers[0][0].get_height() == pytest.approx(rr.vcpus[0].run_share)
    gantts = side_by_side([seed_result, rr], kind="gantt", until_s=0.05)
    assert len(gantts) == 2 and gantts[0].get_xlim() == pytest.approx((0, 0.05))
    with pytest.raises(ScenarioError):
        side_by_side([seed_result], kind="pie")


# -- comparison ------------------------------------------------------------------------
def test_comparison_bars_equal_the_shares_and_errors_are_written(seed_result):
    comparison = compare(seed_result, measured_copy(seed_result, nudge=0.1))
    ax = plot_comparison(comparison)
    series = {c.get_label(): [b.get_height() for b in c] for c in ax.containers}
    rows = comparison.rows
    assert series["simulated run"] == pytest.approx([r.simulated_run for r in rows])
    assert series["measured run"] == pytest.approx([r.measured_run for r in rows])
    assert series["simulated wait"] == pytest.approx([r.simulated_wait for r in rows])
    assert series["measured wait"] == pytest.approx([r.measured_wait for r in rows])
    texts = [t.get_text() for t in ax.texts]
    for r in rows:
        assert f"{r.run_error:+.3f}" in texts and f"{r.wait_error:+.3f}" in texts
    assert f"{comparison.max_error:.3f}" in ax.get_title(loc="left")


def test_comparison_plot_method_uses_it(seed_result):
    comparison = compare(seed_result, measured_copy(seed_result))
    ax = comparison.plot()
    assert {c.get_label() for c in ax.containers} == {
        "simulated run", "measured run", "simulated wait", "measured wait"}


# -- wait against overcommit ------------------------------------------------------------
def test_wait_plot_draws_one_line_per_source_in_overcommit_order():
    points = [{"overcommit": 2, "wait_share": 0.5, "source": "simulated"},
              {"overcommit": 1, "wait_share": 0.0, "source": "simulated"},
              {"overcommit": 3, "wait_share": 0.6, "source": "measured"},
              {"overcommit": 2, "wait_share": 0.45, "source": "measured"}]
    ax = plot_wait_vs_overcommit(points)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["simulated"].get_xdata()) == [1, 2]
    assert list(lines["simulated"].get_ydata()) == [0.0, 0.5]
    assert list(lines["measured"].get_xdata()) == [2, 3]
    assert list(lines["measured"].get_ydata()) == [0.45, 0.6]
    flat = [line.get_ydata()[0] for line in ax.get_lines()
            if len(set(line.get_ydata())) == 1 and len(line.get_ydata()) == 2]
    assert 0.05 in flat and 0.10 in flat
    texts = " ".join(t.get_text() for t in ax.texts)
    assert "5 % ready" in texts and "10 % ready" in texts


def test_wait_plot_accepts_records_and_splits_loads():
    Point = namedtuple("Point", "overcommit wait_share source load")
    points = [Point(1, 0.0, "simulated", 1.0), Point(2, 0.5, "simulated", 1.0),
              Point(1, 0.0, "simulated", 0.5), Point(2, 0.1, "simulated", 0.5)]
    labels = [line.get_label() for line in plot_wait_vs_overcommit(points).get_lines()]
    assert "simulated, vCPUs busy 100%" in labels and "simulated, vCPUs busy 50%" in labels


# -- the sweep -------------------------------------------------------------------------
def test_sweep_of_busy_vms_matches_the_closed_form():
    points = sweep_points(duration_s=1.0)
    assert [p["overcommit"] for p in points] == RATIOS
    for p in points:
        assert p["source"] == "simulated"
        assert p["wait_share"] == pytest.approx(max(0.0, 1 - 1 / p["overcommit"]), abs=0.01)
        assert p["run_share"] + p["wait_share"] == pytest.approx(1.0, abs=1e-6)


def test_sweep_builds_vms_of_the_asked_size_and_refuses_ratios_of_part_vcpus():
    s = busy_scenario(3, 7, 3, load=0.5)
    assert [vm.vcpus for vm in s.vms] == [3, 3, 1]
    assert {vm.load for vm in s.vms} == {0.5}
    (p,) = sweep_points(pcpus=3, ratios=(4 / 3,), duration_s=0.2)
    assert p["overcommit"] == pytest.approx(4 / 3) and p["ratio"] == 4 / 3
    assert [vm.vcpus for vm in overcommit_scenario(4 / 3, pcpus=3).vms] == [2, 2]
    for ratio, vcpus in ((1.2, "3.6"), (0.1, "0.2")):      # never rounded to whole vCPUs
        with pytest.raises(ScenarioError, match=f"is {vcpus} vCPUs; a ratio times pcpus "
                                                "must be a whole number"):
            sweep_points(pcpus=3 if ratio == 1.2 else 2, ratios=(ratio,), duration_s=0.2)


def test_sweep_is_deterministic_and_partly_busy_vcpus_wait_less():
    busy = sweep_points(ratios=(2,), duration_s=1.0)
    half = sweep_points(ratios=(2,), duration_s=1.0, load=0.5, seeds=range(2))
    assert half == sweep_points(ratios=(2,), duration_s=1.0, load=0.5, seeds=range(2))
    assert 0 < half[0]["wait_share"] < busy[0]["wait_share"]
    assert half[0]["seeds"] == 2 and half[0]["load"] == 0.5


def test_round_robin_sweep_also_waits():
    (p,) = sweep_points(ratios=(3,), duration_s=0.5, scheduler="round-robin")
    assert p["scheduler"] == "round-robin"
    assert p["wait_share"] == pytest.approx(2 / 3, abs=0.01)


@pytest.fixture
def data_with_recordings(tmp_path, monkeypatch):
    """A data directory with two shipped scenarios and fake 'measured' recordings."""
    from kvmlab.data import data_dir

    (tmp_path / "scenarios").mkdir()
    (tmp_path / "recorded").mkdir()
    for name in ("cpu-overcommit-2x", "cpu-seed-example", "cpu-duty-cycle"):
        src = data_dir() / "scenarios" / f"{name}.json"
        (tmp_path / "scenarios" / f"{name}.json").write_text(src.read_text())
    for name in ("cpu-overcommit-2x", "cpu-seed-example", "cpu-duty-cycle"):
        scenario = load_scenario(name).with_duration(0.5)
        data = simulate(scenario, seed=9, record_timeline=False).to_dict()
        data |= {"source": "measured", "provenance": {"host": "fake", "accelerator": "tcg"}}
        (tmp_path / "recorded" / f"{name}.json").write_text(json.dumps(data))
    monkeypatch.setenv("KVMLAB_DATA_DIR", str(tmp_path))
    return tmp_path


def test_recorded_points_pick_the_busy_recordings(data_with_recordings):
    points = recorded_points()
    assert [p["name"] for p in points] == ["cpu-overcommit-2x", "cpu-seed-example"]
    assert all(p["source"] == "measured" for p in points)
    assert points[0]["overcommit"] == 2 and points[1]["overcommit"] == 3
    assert points[1]["wait_share"] == pytest.approx(2 / 3, abs=0.02)


def test_recorded_points_are_empty_without_recordings(tmp_path, monkeypatch):
    monkeypatch.setenv("KVMLAB_DATA_DIR", str(tmp_path))
    assert recorded_points() == []
    assert compare_recorded() == {}


def test_compare_recorded_pairs_each_recording_with_a_simulation(data_with_recordings):
    comparisons = compare_recorded()
    assert sorted(comparisons) == ["cpu-duty-cycle", "cpu-overcommit-2x", "cpu-seed-example"]
    rows = comparison_rows(comparisons)
    assert {r.accelerator for r in rows} == {"tcg"}
    seed_row = next(r for r in rows if r.scenario == "cpu-seed-example")
    assert seed_row.overcommit == 3 and seed_row.largest_error < 0.05


def test_scheduler_fit_prefers_the_scheduler_that_made_the_data(seed_result):
    flat = simulate(seed_result.scenario, seed=2, scheduler="round-robin")
    looks_flat = measured_copy(flat)
    fit = scheduler_fit(looks_flat)
    assert fit["round-robin"] < 0.02 < fit["fair"]
    fit = scheduler_fit(measured_copy(seed_result))
    assert fit["fair"] < 0.02 < fit["round-robin"]

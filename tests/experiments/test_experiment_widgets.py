"""The seeds slider: its pure functions, and the widget redrawing when it moves."""

from __future__ import annotations

import matplotlib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from kvmlab.errors import ScenarioError
from kvmlab.experiments import SweepTable, recorded_sweep, sweep
from kvmlab.experiments.widgets import band_widths, first_seeds, seed_explorer

TABLE = sweep("cpu-overcommit", {"ratio": [1.5, 2], "load": 0.6, "duration_s": 1},
              seeds=range(8), executor="serial", progress=False)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 8))
def test_first_seeds_keeps_the_smallest_seeds_of_every_point(n):
    part = first_seeds(TABLE, n)
    assert sorted(set(part["seed"])) == list(range(n))
    assert len(part) == 2 * n
    assert all(row in TABLE.rows for row in part)


def test_a_slider_needs_two_seeds():
    with pytest.raises(ScenarioError, match="at least two seeds"):
        seed_explorer(first_seeds(TABLE, 1), "ratio", "wait_share")


@pytest.mark.parametrize("n", [0, 9, 2.0, True])
def test_first_seeds_names_the_range(n):
    with pytest.raises(ScenarioError, match="from 1 to 8"):
        first_seeds(TABLE, n)


@pytest.mark.parametrize("n", [2, 5, 8])
def test_a_band_is_twice_t_times_the_standard_error(n):
    import math
    import statistics

    from kvmlab.experiments import t_quantile

    part = first_seeds(TABLE, n)
    values = [r["wait_share"] for r in part.where(ratio=2)]
    expected = 2 * t_quantile(0.975, n - 1) * statistics.stdev(values) / math.sqrt(n)
    assert band_widths(part, "ratio", "wait_share")[2] == pytest.approx(expected, abs=2e-6)


def test_the_slider_redraws_with_the_seeds_it_says(monkeypatch):
    from kvmlab.experiments import widgets

    calls = []
    real = widgets.first_seeds
    monkeypatch.setattr(widgets, "first_seeds", lambda t, n: calls.append(n) or real(t, n))
    box = seed_explorer(TABLE, "ratio", "wait_share")
    slider, _out = box.children
    assert (slider.value, slider.min, slider.max) == (2, 2, 8)
    assert calls == [2]
    slider.value = 8
    assert calls == [2, 8]
    assert not plt.get_fignums()        # each figure is shown once, then closed


def test_the_recorded_host_sweep_is_whole_and_close_to_the_model_for_busy_vcpus():
    host = recorded_sweep("sweep-cpu-overcommit")
    assert len(host) == 6 * 2 * 3 and set(host["source"]) == {"measured"}
    assert host.parameters == ["ratio", "load", "duration_s"]
    busy = host.where(load=1.0).without("duration_s")
    model = sweep("cpu-overcommit", {"ratio": sorted(set(busy["ratio"]))}, seeds=[0],
                  executor="serial", progress=False)
    expected = {r["ratio"]: r["wait_share"] for r in model}
    for point in busy.summary("wait_share"):
        assert abs(point["wait_share"] - expected[point["ratio"]]) < 0.03, point


def test_a_missing_recording_lists_the_ones_there_are():
    with pytest.raises(ScenarioError, match="sweep-cpu-overcommit"):
        recorded_sweep("nope")


def test_without_refuses_a_column_that_is_not_a_parameter():
    with pytest.raises(ScenarioError, match="not a parameter"):
        SweepTable([], ["a"], ["y"]).without("y")

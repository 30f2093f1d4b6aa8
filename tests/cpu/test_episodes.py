"""Run shares over time, measured and modelled (kvmlab.cpu.episodes)."""

import dataclasses
import math
import statistics

import matplotlib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmlab.cpu.agreement import per_vm, recorded_repetitions
from kvmlab.cpu.episodes import (
    STARVED_BELOW,
    VmSeries,
    main_loop_hold,
    plot_vm_series,
    vm_series,
)
from kvmlab.cpu.linux import simulate_linux
from kvmlab.cpu.model import simulate
from kvmlab.cpu.result import recorded_result
from kvmlab.cpu.threads import SAMPLES
from kvmlab.errors import ScenarioError

matplotlib.use("Agg")

shares = st.lists(st.floats(0, 1), min_size=1, max_size=40)


@given(st.dictionaries(st.sampled_from(["vm1", "vm2", "vm3"]), shares, min_size=1),
       st.floats(0.01, 2))
def test_spells_cover_exactly_the_starved_intervals(series, step):
    s = VmSeries(step, {vm: tuple(x) for vm, x in series.items()}, "simulated")
    spells = s.spells()
    for vm, x in series.items():
        starved = sum(1 for share in x if share < STARVED_BELOW)
        # (each spell is rounded to the millisecond)
        assert sum(spells[vm]) == pytest.approx(starved * step, abs=5e-4 * len(spells[vm]) + 1e-9)
        assert len(spells[vm]) <= math.ceil(len(x) / 2)
    summary = s.summary()
    assert 0 <= summary["starved_share"] <= 1
    assert summary["spells"] == sum(len(v) for v in spells.values())


def test_a_measured_series_adds_up_to_the_runs_shares():
    """The readings of a recorded 3x run, interval by interval, average to its totals."""
    run = recorded_repetitions("cpu-overcommit-3x")[-1]
    series = vm_series(run)
    assert series.source == "measured" and set(series.shares) == {"vm1", "vm2", "vm3"}
    assert series.step_s == pytest.approx(run.duration_s / SAMPLES, abs=0.01)
    for vm, share in per_vm(run).items():
        assert statistics.fmean(series.shares[vm]) == pytest.approx(share, abs=0.02)


def test_a_simulated_series_adds_up_to_the_runs_shares():
    run = simulate_linux(recorded_result("cpu-overcommit-3x").scenario.with_duration(1.2),
                         seed=2, record_timeline=True)
    series = vm_series(run, step_s=0.3)
    assert all(len(x) == 4 for x in series.shares.values())
    for vm, share in per_vm(run).items():
        assert statistics.fmean(series.shares[vm]) == pytest.approx(share, abs=0.01)


def test_the_linux_models_readings_agree_with_its_timeline():
    """The model's threads read as a host's are: the same shares as its timeline gives."""
    scenario = recorded_result("cpu-overcommit-3x").scenario.with_duration(2)
    run = simulate_linux(scenario, seed=5, record_timeline=True)
    read = vm_series(dataclasses.replace(run, timeline=()))
    timed = vm_series(run, step_s=read.step_s)
    assert read.step_s == pytest.approx(0.1) and read.source == "simulated"
    for vm in read.shares:
        assert read.shares[vm] == pytest.approx(timed.shares[vm], abs=0.002)


def test_a_run_without_readings_over_time_says_how_to_get_them():
    with pytest.raises(ScenarioError, match="record it again"):
        vm_series(recorded_result("earlier-cpu-overcommit-3x"))   # before run_series
    fair = simulate(recorded_result("cpu-overcommit-3x").scenario.with_duration(0.1),
                    record_timeline=False)
    with pytest.raises(ScenarioError, match="record_timeline=True"):
        vm_series(fair)
    with pytest.raises(ScenarioError, match="step_s must be"):
        vm_series(fair, step_s=0)


def test_one_panel_per_series_and_titles_must_match():
    a = VmSeries(0.5, {"vm1": (0.5, 0.0), "vm2": (0.5, 1.0)}, "measured")
    axes = plot_vm_series([a, a])
    assert len(axes) == 2 and [len(ax.lines) for ax in axes] == [2, 2]
    with pytest.raises(ScenarioError, match="1 titles for 2 series"):
        plot_vm_series([a, a], ["one"])
    with pytest.raises(ScenarioError, match="at least one series"):
        plot_vm_series([])


def _with_threads(threads):
    run = recorded_repetitions("cpu-overcommit-3x")[-1]
    return dataclasses.replace(run, provenance={**run.provenance, "threads": threads})


def test_the_hold_compares_vcpus_beside_their_main_loop_with_the_others():
    main = {"role": "main-loop", "cpu_series": [0, 0, 1, 1], "run_series": [0.01] * 3}
    near = {"role": "vcpu0", "cpu_series": [0, 0, 0, 1], "run_series": [0.9, 0.5, 0.7]}
    far = {"role": "vcpu1", "cpu_series": [1, 1, 1, 1], "run_series": [0.1, 0.3, 0.2]}
    hold = main_loop_hold(_with_threads({"a": [main, near, far]}))
    # interval 0: main on 0, near beside it (0.9), far apart (0.1); interval 1: the main
    # loop moved (skipped); interval 2: main on 1, near moved (skipped), far beside it (0.2)
    assert hold == {"with_main_loop": 0.55, "apart": 0.1, "intervals_with": 2,
                    "intervals_apart": 1, "run_on_main_loop_cpu": round(1.1 / 1.2, 3)}


def test_the_hold_needs_readings_of_cpus():
    old = {"role": "main-loop", "run_series": [0.01]}
    with pytest.raises(ScenarioError, match="record it again"):
        main_loop_hold(_with_threads({"a": [old]}))
    with pytest.raises(ScenarioError, match="a measured run, or one of the linux model"):
        main_loop_hold(simulate(recorded_result("cpu-overcommit-3x").scenario
                                .with_duration(0.1)))


def test_the_linux_model_holds_a_vcpu_on_its_main_loops_pcpu_too():
    """The model's reweights favour the VM whose main loop wakes on a pCPU, as the host's do."""
    scenario = recorded_result("cpu-unequal-shares-unpinned").scenario.with_duration(3)
    holds = [main_loop_hold(simulate_linux(scenario, seed=seed)) for seed in range(8)]
    with_main = [h["with_main_loop"] for h in holds if h["with_main_loop"] is not None]
    apart = [h["apart"] for h in holds if h["apart"] is not None]
    assert with_main and apart
    assert statistics.fmean(with_main) > statistics.fmean(apart) + 0.2


@settings(max_examples=40, deadline=None)
@given(duration=st.floats(0.05, 1.0), step=st.floats(0.01, 0.5))
def test_a_timeline_is_cut_into_steps_whatever_the_rounding(duration, step):
    """Every slice lands in a step, also where n steps of duration / n add up to a hair
    less than the duration (a recorded run's 10.003992 s did, and the cut never ended)."""
    s = {"pcpus": 1, "duration_s": duration, "vms": [{"name": "a", "vcpus": 1},
                                                    {"name": "b", "vcpus": 1}]}
    run = simulate(s, record_timeline=True)
    series = vm_series(run, step_s=step)
    for vm in ("a", "b"):
        ran = sum(p.end_s - p.start_s for p in run.timeline if p.vm == vm)
        assert sum(series.shares[vm]) * series.step_s == pytest.approx(ran, abs=1e-3)

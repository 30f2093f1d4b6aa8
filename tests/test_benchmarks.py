"""Smoke tests of the benchmarks: tiny sizes, structure and sanity, never speed."""

from __future__ import annotations

import gc
import importlib
import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kvmlab.cpu.model import simulate
from kvmlab.cpu.scenario import MAX_PCPUS, overcommit_scenario
from kvmlab.errors import ScenarioError

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:          # `benchmarks` is not installed; it lives next to tests/
    sys.path.insert(0, str(ROOT))
bench_cpu = importlib.import_module("benchmarks.bench_cpu")
bench_main = importlib.import_module("benchmarks.__main__")

TINY_SIZES = (2, 4, 8)
TINY_DURATION_S = 0.06
ONCE = bench_cpu.Repeats(times=1, min_total_s=0.0)


def _check_timing(timing: dict[str, Any], events: int) -> None:
    assert timing["events"] == events
    assert timing["repeats"] == len(timing["times_s"]) >= 1
    assert all(t > 0 for t in timing["times_s"])
    assert 0 < timing["best_s"] <= timing["median_s"]
    assert timing["events_per_s"] > 0 and timing["us_per_event"] > 0


def _check_row(row: dict[str, Any]) -> None:
    scenario = bench_cpu.busy_scenario(row["vcpus"], row["duration_s"])
    expected = simulate(scenario, record_timeline=False, scheduler=row["scheduler"])
    assert row["events"] == sum(v.slices for v in expected.vcpus) > 0
    assert row["pcpus"] == row["vcpus"] // 2 and row["vms"] == row["vcpus"] // 2
    _check_timing(row["model"], row["events"])
    _check_timing(row["bare"], row["events"])       # the bare loop made as many events
    assert row["model"]["repeats"] == row["bare"]["repeats"]     # paired rounds
    for key in ("ratio", "paired_ratio"):
        assert row[key] > 0 and math.isfinite(row[key])


def test_busy_scenario_is_2x_overcommit_in_vms_of_two() -> None:
    s = bench_cpu.busy_scenario(10, 1.0)
    assert (s.total_vcpus, s.pcpus, len(s.vms), s.overcommit) == (10, 5, 5, 2.0)
    assert all(vm.vcpus == 2 and vm.load == 1.0 for vm in s.vms)
    with pytest.raises(ValueError, match="even"):
        bench_cpu.busy_scenario(3, 1.0)


def test_busy_scenario_is_the_sweeps_and_goes_beyond_the_scenario_bounds() -> None:
    small = bench_cpu.busy_scenario(8, 0.3)
    assert replace(small, name="") == replace(overcommit_scenario(2, pcpus=4, duration_s=0.3),
                                              name="")
    big = bench_cpu.busy_scenario(2 * MAX_PCPUS + 2, 0.3)      # too many pCPUs for a scenario
    assert (big.pcpus, big.total_vcpus, big.name) == (MAX_PCPUS + 1, 2 * MAX_PCPUS + 2,
                                                      f"bench-{2 * MAX_PCPUS + 2}-vcpus")
    assert big.vms[:4] == bench_cpu.busy_scenario(8, 0.3).vms


def test_model_events_are_the_sum_of_slices_and_bare_loop_matches() -> None:
    scenario = bench_cpu.busy_scenario(6, TINY_DURATION_S)
    events, timing = bench_cpu.time_model(scenario, bench_cpu.Repeats(times=2, min_total_s=0))
    result = simulate(scenario, record_timeline=False)
    assert events == sum(v.slices for v in result.vcpus) == timing.events
    assert len(timing.times_s) == 2
    done, bare = bench_cpu.time_bare(scenario.pcpus, events, scenario.slice_ms / 1000, ONCE)
    assert done == bare.events == events


@pytest.mark.parametrize(("processes", "events"), [(1, 1), (3, 10), (4, 4), (5, 3)])
def test_bare_loop_does_exactly_the_events_asked(processes: int, events: int) -> None:
    assert bench_cpu.bare_loop(processes, events, 0.003) == events


def test_measure_turns_gc_off_while_timing_and_restores_it() -> None:
    assert gc.isenabled()
    seen: list[bool] = []
    value, times = bench_cpu.measure(lambda: seen.append(gc.isenabled()) or 7,
                                     bench_cpu.Repeats(times=3, min_total_s=0))
    assert (value, len(times), seen) == (7, 3, [False, False, False])
    assert gc.isenabled()


@pytest.mark.parametrize(("repeats", "runs"), [
    (bench_cpu.Repeats(times=5, budget_s=0.0), 1),               # out of budget at once
    (bench_cpu.Repeats(times=2, min_total_s=10.0, max_times=7), 7),  # short runs: more
    (bench_cpu.Repeats(times=4, min_total_s=0.0), 4),
])
def test_measure_repeats_as_told(repeats: Any, runs: int) -> None:
    assert len(bench_cpu.measure(lambda: None, repeats)[1]) == runs


def test_repeats_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        bench_cpu.Repeats(times=0)


def test_loglog_slope() -> None:
    assert bench_cpu.loglog_slope([1, 10, 100], [2.0, 20.0, 200.0]) == pytest.approx(1.0)
    assert bench_cpu.loglog_slope([1, 10], [1.0, 100.0]) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        bench_cpu.loglog_slope([5, 5], [1.0, 2.0])


def test_scaling_structure_and_sanity() -> None:
    out = bench_cpu.bench_scaling(TINY_SIZES, TINY_DURATION_S, repeats=ONCE)
    assert [r["vcpus"] for r in out["sizes"]] == list(TINY_SIZES)
    for row in out["sizes"]:
        _check_row(row)
    events = [r["events"] for r in out["sizes"]]
    assert events == sorted(events) and len(set(events)) == len(events)  # grows with vCPUs
    assert math.isfinite(out["slope"]) and math.isfinite(out["bare_slope"])
    assert [(x["from_vcpus"], x["to_vcpus"]) for x in out["local_slopes"]] == [(2, 4), (4, 8)]


def test_quick_run_is_json_ready_and_tabulates() -> None:
    result = bench_cpu.run(quick=True)
    assert set(result) == {"environment", "scheduler", "overhead", "scaling"}
    assert result["scheduler"] == result["scaling"]["scheduler"] == "fair"
    _check_row(result["overhead"])
    assert json.loads(json.dumps(result)) == result
    table = bench_cpu.format_table(result)
    assert "ratio" in table and "slope" in table
    for row in result["scaling"]["sizes"]:
        assert f"{row['events']:,}" in table


def test_command_line_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "out" / "bench.json"
    assert bench_main.main(["cpu", "--quick", "--sizes", "2,4", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert set(data["benchmarks"]) == {"cpu"}
    assert [r["vcpus"] for r in data["benchmarks"]["cpu"]["scaling"]["sizes"]] == [2, 4]
    assert "ratio (model / bare simpy" in capsys.readouterr().out


def test_command_line_names_the_scheduler(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bench.json"
    assert bench_main.main(["cpu", "--quick", "--sizes", "2,4", "--scheduler", "round-robin",
                            "--json", str(path)]) == 0
    cpu = json.loads(path.read_text())["benchmarks"]["cpu"]
    assert cpu["scheduler"] == cpu["overhead"]["scheduler"] == "round-robin"
    for row in cpu["scaling"]["sizes"]:
        assert row["scheduler"] == "round-robin"
        _check_row(row)                       # as many events as a round-robin run makes
    assert "round-robin scheduler" in capsys.readouterr().out


def test_an_unknown_scheduler_is_refused_before_anything_runs(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        bench_main.parse_args(["cpu", "--scheduler", "lottery"])
    assert "--scheduler lottery: scheduler 'lottery' is not one of" in capsys.readouterr().err
    with pytest.raises(ScenarioError, match="not one of"):
        bench_cpu.run(quick=True, scheduler="lottery")


@pytest.mark.parametrize("argv", [["nope"], ["--sizes", "3,5"], ["--sizes", "4"],
                                  ["memory", "--scheduler", "fair"]])
def test_command_line_rejects_bad_arguments(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        bench_main.parse_args(argv)


bench_memory = importlib.import_module("benchmarks.bench_memory")


def test_memory_benchmark_times_the_tlb_model_and_the_dict_loop_on_one_trace() -> None:
    out = bench_memory.bench_translations(accesses=3000, repeats=ONCE)
    from kvmlab.memory.machine import identity_machine
    from kvmlab.memory.tlb import run, trace

    guest, host = identity_machine(bench_memory.WORKING_SET)
    expected = run(trace("random", 3000, bench_memory.WORKING_SET, seed=0), guest, host,
                   bench_memory.TLB_ENTRIES, bench_memory.PWC_ENTRIES)
    assert (out["tlb_misses"], out["hit_rate"]) == (expected.tlb_misses, expected.hit_rate)
    _check_timing(out["model"], 3000)
    _check_timing(out["dict_loop"], 3000)
    assert out["ratio"] > 0 and out["paired_ratio"] > 0


def test_the_dict_loop_translates_like_the_tables() -> None:
    from kvmlab.memory.machine import identity_machine

    guest, _ = identity_machine(8 * 4096)
    table = {p: guest.walk(p * 4096).address for p in range(0x4000_0000_0000 // 4096,
                                                            0x4000_0000_0000 // 4096 + 8)}
    va = 0x4000_0000_0000 + 3 * 4096 + 17
    assert bench_memory.dict_loop([va], table) == guest.walk(va).address


def test_memory_quick_run_tabulates() -> None:
    result = bench_memory.run(quick=True)
    assert json.loads(json.dumps(result)) == result
    assert "ratio (model / dict loop" in bench_memory.format_table(result)


bench_experiments = importlib.import_module("benchmarks.bench_experiments")


def test_sweep_benchmark_times_every_executor_on_the_same_runs() -> None:
    out = bench_experiments.bench_sweep(bench_experiments.QUICK_GRID, range(2), ONCE,
                                        use_dask=True)
    assert out["runs"] == 2 * 2 * 2 and out["same_results"] is True
    for name in ("serial", "processes", "dask"):
        _check_timing(out[name], out["runs"])
        assert out[name]["speedup"] > 0
    assert out["serial"]["speedup"] == 1.0
    assert out["speedup"] == out["processes"]["speedup"]
    assert out["efficiency"] == round(out["speedup"] / min(out["workers"], out["runs"]), 3)


def test_sweep_benchmark_grid_has_200_runs_and_the_quick_run_tabulates() -> None:
    grid = bench_experiments.GRID
    assert len(grid["ratio"]) * len(grid["load"]) * len(bench_experiments.SEEDS) == 200
    result = bench_experiments.run(quick=True)
    assert json.loads(json.dumps(result)) == result
    assert "speed-up on processes" in bench_experiments.format_table(result)


bench_widgets = importlib.import_module("benchmarks.bench_widgets")


def test_widget_benchmark_times_every_explorer_against_a_plain_plot() -> None:
    result = bench_widgets.run(quick=True)
    assert json.loads(json.dumps(result)) == result
    assert [w["widget"] for w in result["widgets"]] == list(bench_widgets.WIDGETS)
    for w in result["widgets"]:
        assert w["changes"] == len(w["times_ms"]) >= 1
        assert 0 < w["median_ms"] <= w["p95_ms"] and w["baseline_ms"] > 0
        assert w["ratio"] == round(w["median_ms"] / w["baseline_ms"], 2) or w["ratio"] > 0
    assert "median ms" in bench_widgets.format_table(result)

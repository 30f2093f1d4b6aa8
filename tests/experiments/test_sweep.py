"""Sweeps on the model: grids, seeds, executors (processes, threads, dask), errors, resume."""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kvmlab
from kvmlab.errors import ExperimentFailed, ScenarioError
from kvmlab.experiments import (
    ResultStore,
    Scenario,
    SweepTable,
    check_seeds,
    expand,
    read_table,
    run_key,
    scenario_for,
    sweep,
    sweep_on_host,
)
from kvmlab.experiments.scenarios import cpu_overcommit, tlb_working_set
from tests.fakes import Recorder

GRID = {"ratio": [0.5, 1, 2, 3], "load": [1.0, 0.6], "duration_s": 1}
SEEDS = range(3)


def noisy(x: float = 1.0, *, seed: int = 0) -> dict[str, float]:
    """A scenario of the test's own: a seeded number, so every seed differs."""
    import random

    return {"y": x + random.Random(seed).random()}


def broken(x: int = 1, *, seed: int = 0) -> dict[str, float]:
    return {"y": 1 / (x - 1)}


CALLS: list[tuple[float, int]] = []


def counted(x: float = 1.0, *, seed: int = 0) -> dict[str, float]:
    """``noisy``, remembering each call (serial sweeps run in this process)."""
    CALLS.append((x, seed))
    return noisy(x, seed=seed)


def slower_first(x: int = 0, *, seed: int = 0) -> dict[str, float]:
    """Runs submitted first take longest, so they finish last."""
    time.sleep(0.04 * x)
    return {"y": float(x)}


def whose(x: int = 0, *, seed: int = 0) -> dict[str, int]:
    """Which process ran this run."""
    return {"pid": os.getpid()}


def numpy_figures(x: int = 0, *, seed: int = 0) -> dict[str, object]:
    import numpy as np

    return {"mean": np.float64(x) / 2, "count": np.int64(x)}


# -- grids and seeds -------------------------------------------------------------------
@given(st.dictionaries(st.sampled_from("abcde"),
                       st.lists(st.integers(-5, 5), min_size=1, max_size=3, unique=True),
                       max_size=4))
def test_a_grid_has_every_combination_once(grid):
    points = expand(grid)
    expected = 1
    for values in grid.values():
        expected *= len(values)
    assert len(points) == expected
    assert len({run_key(p, 0) for p in points}) == expected
    for name, values in grid.items():
        assert {p[name] for p in points} == set(values)


@pytest.mark.parametrize(("grid", "rule"), [
    ({"ratio": []}, "has no values"),
    ({"ratio": [1, 1]}, "lists a value twice"),
    ({"ratio": [object()]}, "values must be numbers, strings, booleans or None"),
    ({"seed": [1]}, r"pass seeds=\[...\] instead"),
    ({"not a name": [1]}, "are Python names"),
    ([1, 2], "maps parameter names to lists of values"),
])
def test_a_bad_grid_names_the_rule(grid, rule):
    with pytest.raises(ScenarioError, match=rule):
        expand(grid)


@pytest.mark.parametrize(("seeds", "rule"), [
    (5, "such as range"), ([], "is empty"), ([1, 1], "twice"), ([-1], "at least 0"),
    ([0.5], "whole numbers"), ("01", "such as range")])
def test_bad_seeds_name_the_rule(seeds, rule):
    with pytest.raises(ScenarioError, match=rule):
        check_seeds(seeds)


def test_numpy_seeds_are_whole_numbers_and_its_booleans_are_not():
    np = pytest.importorskip("numpy")
    assert check_seeds(np.arange(3)) == (0, 1, 2)
    assert all(type(s) is int for s in check_seeds(np.arange(3)))
    with pytest.raises(ScenarioError, match="whole numbers"):
        check_seeds([np.bool_(True)])
    with pytest.raises(ScenarioError, match="whole numbers"):
        check_seeds([True])


def test_an_unknown_parameter_is_named_with_a_suggestion():
    with pytest.raises(ScenarioError, match=r"no parameter 'ratoi'; did you mean 'ratio'\?"):
        sweep("cpu-overcommit", {"ratoi": [1, 2]}, progress=False)


def test_a_run_that_breaks_a_rule_is_named():
    with pytest.raises(ScenarioError, match=r"cpu-overcommit with \{'ratio': 0.1\}, seed 0: "
                                            r"ratio 0.1 on 2 pCPU\(s\) is 0.2 vCPUs"):
        sweep("cpu-overcommit", {"ratio": [1, 0.1]}, executor="serial", progress=False)


def test_a_bug_in_a_scenario_function_becomes_an_experiment_failure_with_its_cause():
    with pytest.raises(ExperimentFailed, match=r"broken with \{'x': 1\}, seed 0 raised "
                                               "ZeroDivisionError") as info:
        sweep(broken, {"x": [2, 1]}, progress=False)
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_a_function_must_return_figures():
    with pytest.raises(ScenarioError, match="must return a dict of figures"):
        sweep(lambda seed=0: 3, executor="serial", progress=False)


def test_unknown_scenarios_and_executors_are_refused():
    with pytest.raises(ScenarioError, match="the scenarios are cpu-overcommit, tlb-working-set"):
        scenario_for("cpu")
    with pytest.raises(ScenarioError, match=r"must be a concurrent\.futures\.Executor"):
        sweep(noisy, {"x": [1, 2]}, executor="threads", progress=False)


# -- what a sweep computes ---------------------------------------------------------------
def test_each_row_is_the_model_run_with_its_parameters_and_seed():
    table = sweep("cpu-overcommit", GRID, SEEDS, executor="serial", progress=False)
    assert len(table) == 4 * 2 * 3
    assert table.parameters == ["ratio", "load", "duration_s"]
    assert {"wait_share", "run_share", "ready_pct"} <= set(table.figures)
    for row in table:
        params = {k: row[k] for k in table.parameters}
        assert {k: row[k] for k in table.figures} == cpu_overcommit(**params, seed=row["seed"])
        assert row["source"] == "simulated"
    busy = table.where(load=1.0)
    assert [r["wait_share"] for r in busy.where(seed=0)] == [0.0, 0.0, 0.5, 0.666667]


def test_the_rows_come_in_grid_order_whatever_order_runs_finish(tmp_path):
    save = tmp_path / "runs.jsonl"
    table = sweep(slower_first, {"x": [3, 2, 1, 0]}, seeds=[0], save=save, max_workers=2,
                  progress=False)
    assert table["x"] == [3, 2, 1, 0]
    finished = [json.loads(line)["params"]["x"] for line in save.read_text().splitlines()[1:]]
    assert finished != [3, 2, 1, 0] and sorted(finished) == [0, 1, 2, 3]


def test_generator_seeds_and_grid_values_are_read_once():
    table = sweep(noisy, {"x": (v for v in [1, 2])}, seeds=iter([0, 1]), executor="serial",
                  progress=False)
    assert [(r["x"], r["seed"]) for r in table] == [(1, 0), (1, 1), (2, 0), (2, 1)]


def test_a_ratio_must_make_whole_vcpus():
    with pytest.raises(ScenarioError, match=r"ratio 1\.25 on 2 pCPU\(s\) is 2\.5 vCPUs; a "
                                            r"ratio times pcpus must be a whole number"):
        sweep("cpu-overcommit", {"ratio": [1, 1.25]}, executor="serial", progress=False)


def test_numpy_figures_are_saved_as_plain_numbers(tmp_path):
    table = sweep(numpy_figures, {"x": [3]}, save=tmp_path / "r.jsonl", progress=False)
    assert table.rows[0]["mean"] == 1.5 and type(table.rows[0]["count"]) is int


@pytest.mark.parametrize(("kwargs", "rule"), [
    ({"max_workers": 0}, "max_workers is a whole number of at least 1"),
    ({"max_workers": -2}, "max_workers is a whole number of at least 1"),
])
def test_bad_sweep_arguments_name_the_rule(kwargs, rule):
    with pytest.raises(ScenarioError, match=rule):
        sweep(noisy, {"x": [1, 2]}, progress=False, **kwargs)


def test_a_lambda_cannot_be_saved_and_resumed(tmp_path):
    with pytest.raises(ScenarioError, match="define the function with def"):
        sweep(lambda seed=0: {"y": 1}, save=tmp_path / "r.jsonl", progress=False)


def test_a_serial_sweep_saves_each_run_before_the_next(tmp_path):
    save = tmp_path / "runs.jsonl"
    with pytest.raises(ExperimentFailed, match=r"broken with \{'x': 1\}"):
        sweep(broken, {"x": [3, 2, 1, 0]}, executor="serial", save=save, progress=False)
    saved = [json.loads(line)["params"]["x"] for line in save.read_text().splitlines()[1:]]
    assert saved == [3, 2]                               # the run after the failure never ran


@pytest.mark.parametrize("make", [
    lambda: None,
    lambda: cf.ThreadPoolExecutor(3),
    lambda: cf.ProcessPoolExecutor(2),
], ids=["default-processes", "threads", "own-processes"])
def test_every_executor_gives_the_in_process_result(make):
    serial = sweep("tlb-working-set", {"working_set_kib": [64, 512, 4096], "accesses": 3000},
                   SEEDS, executor="serial", progress=False)
    executor = make()
    try:
        assert sweep("tlb-working-set", {"working_set_kib": [64, 512, 4096],
                                         "accesses": 3000}, SEEDS, executor=executor,
                     progress=False) == serial
    finally:
        if executor is not None:
            executor.shutdown()


def test_a_dask_cluster_gives_the_in_process_result():
    """The same sweep on a local dask cluster (two worker processes) and in this process."""
    distributed = pytest.importorskip("distributed", reason="dask.distributed is in the dev "
                                      "extras: pip install -e '.[dev]'")
    serial = sweep("cpu-overcommit", GRID, SEEDS, executor="serial", progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        assert sweep("cpu-overcommit", GRID, SEEDS, executor=client, progress=False) == serial
        assert sweep("cpu-overcommit", GRID, SEEDS, executor=client.get_executor(),
                     progress=False) == serial
        workers = set(client.run(os.getpid).values())
        ran = set(sweep(whose, {"x": list(range(8))}, executor=client, progress=False)["pid"])
    assert len(workers) == 2 and os.getpid() not in workers
    assert ran <= workers and ran


def test_seeds_matter_where_the_model_is_random_and_not_where_it_is_not():
    table = sweep("cpu-overcommit", {"ratio": 2, "load": [1.0, 0.6], "duration_s": 1},
                  seeds=range(4), executor="serial", progress=False)
    spread = {load: len({r["wait_share"] for r in table.where(load=load)})
              for load in (1.0, 0.6)}
    assert spread == {1.0: 1, 0.6: 4}


def test_the_tlb_scenario_loses_hits_past_the_tlb_reach():
    table = sweep("tlb-working-set", {"working_set_kib": [128, 256, 1024, 8192],
                                      "accesses": 5000}, [0], executor="serial",
                  progress=False)
    rates = table["hit_rate"]
    assert rates[0] > 0.99 and rates[1] > 0.98          # 32 and 64 pages: within reach
    assert rates == sorted(rates, reverse=True) and rates[3] < 0.05
    huge = tlb_working_set(working_set_kib=8192, page="2M", host_page="2M", accesses=5000)
    assert huge["hit_rate"] > 0.99                      # 2 MiB pages reach 128 MiB


def test_a_progress_bar_counts_every_run(capsys):
    sweep(noisy, {"x": [1, 2]}, seeds=[0, 1], executor="serial", progress=True)
    err = capsys.readouterr().err
    assert "noisy" in err and "4/4" in err




def test_a_bar_of_ones_own_is_told_every_run_and_left_open(tmp_path):
    bar = Recorder()
    sweep(noisy, {"x": [1, 2]}, seeds=[0, 1], executor="serial", progress=bar)
    assert (bar.total, bar.done) == (4, 4)
    again = Recorder()                    # a resumed sweep counts the saved runs at once
    sweep(noisy, {"x": [1, 2]}, seeds=[0], executor="serial", save=tmp_path / "r.jsonl",
          progress=False)
    sweep(noisy, {"x": [1, 2]}, seeds=[0, 1], executor="serial", save=tmp_path / "r.jsonl",
          progress=again)
    assert (again.total, again.done) == (4, 4)


def test_a_progress_that_is_no_bar_is_refused():
    with pytest.raises(ScenarioError, match="tqdm-like"):
        sweep(noisy, {"x": [1]}, executor="serial", progress=lambda *_: None)


def fake_host(x: int = 0, *, uri: str | None = None, progress=None) -> dict[str, object]:
    """A 'real host' run that reports its steps the way every lab's run_on_host does."""
    from kvmlab.progress import progress_bar

    with progress_bar(progress, total=2, desc="fake", unit="step") as bar:
        bar.set_postfix_str(f"booting on {uri}")
        bar.update(1)
        bar.set_postfix_str("measuring")
        bar.update(1)
    return {"y": x * 10}


def fake_model(x: int = 0, *, seed: int = 0) -> dict[str, object]:
    return {"y": x * 10}


def test_a_host_sweep_shows_each_runs_steps_beside_its_bar(tmp_path):
    bar = Recorder()
    spec = Scenario("fake", fake_model, fake_host)
    table = sweep_on_host(spec, {"x": [1, 2]}, seeds=[0], uri="test:///default",
                          save=tmp_path / "host.jsonl", progress=bar)
    assert [(r["x"], r["y"], r["source"]) for r in table] == [(1, 10, "measured"),
                                                             (2, 20, "measured")]
    assert (bar.total, bar.done) == (2, 2)       # runs, not the runs' own steps
    assert "{'x': 1}, seed 0: booting on test:///default" in bar.notes
    assert "{'x': 2}, seed 0: measuring" in bar.notes


def test_files_saved_with_the_older_source_words_still_resume(tmp_path):
    path = tmp_path / "old.jsonl"
    sweep(noisy, {"x": [1]}, seeds=[0], executor="serial", save=path, progress=False)
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["source"] == "simulated"
    path.write_text("\n".join([json.dumps({**header, "source": "model"}), *lines[1:]]) + "\n")
    table = sweep(noisy, {"x": [1]}, seeds=[0, 1], executor="serial", save=path,
                  progress=False)
    assert len(table) == 2 and set(table["source"]) == {"simulated"}
    assert set(read_table(path)["source"]) == {"simulated"}


# -- saved and resumed -----------------------------------------------------------------
def test_saved_runs_are_not_run_again(tmp_path):
    path = tmp_path / "runs.jsonl"
    CALLS.clear()
    first = sweep(counted, {"x": [1, 2]}, seeds=[0], executor="serial", save=path,
                  progress=False)
    more = sweep(counted, {"x": [1, 2, 3]}, seeds=[0, 1], executor="serial", save=path,
                 progress=False)
    assert sorted(CALLS) == [(1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (3, 1)]
    assert more.where(seed=0).rows[:2] == first.rows
    assert len(path.read_text().splitlines()) == 1 + 6


def test_a_file_of_another_scenario_is_refused(tmp_path):
    path = tmp_path / "runs.jsonl"
    sweep(noisy, {"x": [1]}, save=path, progress=False)
    with pytest.raises(ScenarioError, match="holds runs of scenario 'noisy'"):
        sweep("cpu-overcommit", {"ratio": [1]}, save=path, progress=False)
    with pytest.raises(ScenarioError, match="differ from this sweep's in scenario, function"):
        sweep(counted, {"x": [1]}, save=path, progress=False)        # another function
    (tmp_path / "other.txt").write_text("hello\n")
    (tmp_path / "binary").write_bytes(bytes(range(256)) + b"\n")
    for name in ("other.txt", "binary"):
        with pytest.raises(ScenarioError, match="is not a kvmlab sweep file"):
            sweep(noisy, {"x": [1]}, save=tmp_path / name, progress=False)
    assert (tmp_path / "other.txt").read_text() == "hello\n"           # left as it was


def test_a_line_cut_short_by_a_kill_is_dropped(tmp_path):
    path = tmp_path / "runs.jsonl"
    sweep(noisy, {"x": [1, 2]}, save=path, progress=False)
    with path.open("a") as f:
        f.write('{"params": {"x": 3}, "se')
    header = json.loads(path.read_text().splitlines()[0])
    store = ResultStore(path, {k: v for k, v in header.items() if k != "format"})
    assert store.dropped_partial_line and len(store.results) == 2
    assert path.read_text().endswith("}\n")


SLOW_SWEEP = textwrap.dedent("""
    import sys, time
    from kvmlab.experiments import sweep

    def slow(x: int = 0, *, seed: int = 0) -> dict:
        with open(sys.argv[2], "a") as log:
            log.write(f"{x}\\n")
        time.sleep(0.3)
        return {"y": x * x + seed}

    if __name__ == "__main__":
        sweep(slow, {"x": list(range(12))}, seeds=[0], save=sys.argv[1], max_workers=2,
              progress=False)
""")


def test_a_sweep_killed_halfway_resumes_without_redoing_finished_runs(tmp_path):
    script, save, log = tmp_path / "slow.py", tmp_path / "runs.jsonl", tmp_path / "calls.log"
    script.write_text(SLOW_SWEEP)
    proc = subprocess.Popen([sys.executable, str(script), str(save), str(log)],
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
                not save.exists() or len(save.read_text().splitlines()) < 1 + 4):
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)                  # no chance to tidy up
    finally:
        proc.wait(10)
    finished = {json.loads(line)["params"]["x"] for line in save.read_text().splitlines()[1:]}
    assert 4 <= len(finished) < 12, "the kill did not land halfway"
    log.write_text("")
    subprocess.run([sys.executable, str(script), str(save), str(log)], check=True, timeout=120)
    rerun = {int(x) for x in log.read_text().split()}
    assert rerun == set(range(12)) - finished               # nothing finished ran again
    rows = [json.loads(line) for line in save.read_text().splitlines()[1:]]
    assert sorted(r["params"]["x"] for r in rows) == list(range(12))
    assert all(r["figures"]["y"] == r["params"]["x"] ** 2 for r in rows)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_ending_a_sweep_ends_its_worker_processes(tmp_path, sig):
    psutil = pytest.importorskip("psutil", reason="psutil comes with dask.distributed")
    script, save, log = tmp_path / "slow.py", tmp_path / "runs.jsonl", tmp_path / "calls.log"
    script.write_text(SLOW_SWEEP)
    proc = subprocess.Popen([sys.executable, str(script), str(save), str(log)])
    alive: list = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
                not save.exists() or len(save.read_text().splitlines()) < 2):
            time.sleep(0.05)
        workers = psutil.Process(proc.pid).children(recursive=True)
        assert len(workers) == 2
        proc.send_signal(sig)                         # the sweep's process alone, not its group
        proc.wait(30)
        _gone, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, f"workers outlived the sweep: {alive}"
    finally:
        if proc.poll() is None:
            proc.kill()
        for worker in alive:                         # a failed run leaves none behind
            worker.kill()


# -- the table ---------------------------------------------------------------------------
def test_the_table_is_tidy_and_exports(tmp_path):
    table = kvmlab.sweep("cpu-overcommit", {"ratio": [1, 2]}, seeds=[0, 1],
                         executor="serial", progress=False)
    assert isinstance(table, SweepTable)
    assert table.columns[:3] == ["ratio", "seed", "source"]
    csv = table.to_csv(tmp_path / "t.csv").read_text().splitlines()
    assert csv[0].split(",") == table.columns and len(csv) == 1 + 4
    assert "<table>" in table._repr_html_() and "wait_share" in str(table)
    with pytest.raises(KeyError, match="no column 'x'"):
        table["x"]


def test_one_seed_has_no_band():
    (point,) = SweepTable([{"p": 1, "seed": 0, "y": 0.5}], ["p"], ["y"]).summary("y")
    assert point["y"] == 0.5 and math.isnan(point["y_low"]) and math.isnan(point["y_high"])


@settings(deadline=None, max_examples=30)
@given(st.lists(st.floats(0, 1), min_size=2, max_size=12))
def test_a_summary_mean_lies_in_its_band(values):
    rows = [{"p": 1, "seed": s, "y": v} for s, v in enumerate(values)]
    (point,) = SweepTable(rows, ["p"], ["y"]).summary("y")
    assert point["n"] == len(values)
    assert point["y_low"] - 1e-6 <= point["y"] <= point["y_high"] + 1e-6
    assert min(values) - 1e-6 <= point["y"] <= max(values) + 1e-6


def test_the_band_narrows_with_more_seeds():
    table = sweep("cpu-overcommit", {"ratio": 2, "load": 0.6, "duration_s": 1},
                  seeds=range(12), executor="serial", progress=False)
    few, many = (SweepTable(table.rows[:n], table.parameters, table.figures).summary(
        "wait_share")[0] for n in (3, 12))
    assert many["wait_share_high"] - many["wait_share_low"] < (
        few["wait_share_high"] - few["wait_share_low"])


@pytest.mark.parametrize(("df", "table_value"), [(1, 12.706), (2, 4.303), (3, 3.182),
                                                 (4, 2.776), (5, 2.571), (9, 2.262),
                                                 (29, 2.045), (120, 1.980)])
def test_t_quantiles_match_the_printed_tables(df, table_value):
    assert kvmlab.experiments.t_quantile(0.975, df) == pytest.approx(table_value, rel=5e-3)


def test_plotting_draws_a_line_and_a_band_per_value_and_refuses_mixed_points():
    import matplotlib

    matplotlib.use("Agg")
    table = sweep("cpu-overcommit", {"ratio": [1, 2, 3], "load": [1.0, 0.6],
                                     "duration_s": 1}, seeds=range(3), progress=False)
    ax = table.plot("ratio", "wait_share", by="load")
    assert len(ax.lines) == 2 and len(ax.collections) == 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["load=0.6", "load=1.0"]
    busy = ax.lines[1].get_ydata()
    assert list(busy) == pytest.approx([0.0, 0.5, 2 / 3], abs=1e-6)
    with pytest.raises(ScenarioError, match="parameter 'load' varies too"):
        table.plot("ratio", "wait_share")
    with pytest.raises(ScenarioError, match="not a figure of this sweep"):
        table.where(load=1.0).plot("ratio", "speed")


def test_a_model_and_a_host_table_plot_together(tmp_path):
    model = sweep("cpu-overcommit", {"ratio": [1, 2]}, seeds=[0], progress=False)
    host = SweepTable([{**r, "source": "measured", "wait_share": r["wait_share"] + 0.1}
                       for r in model], model.parameters, model.figures, model.name)
    ax = SweepTable.concat([model, host]).plot("ratio", "wait_share", by="source")
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["measured", "simulated"]


def test_a_save_file_in_a_new_folder_starts_with_its_header(tmp_path: Path):
    path = tmp_path / "deep" / "folder" / "runs.jsonl"
    sweep(noisy, {"x": [1]}, save=path, progress=False)
    assert json.loads(path.read_text().splitlines()[0])["scenario"] == "noisy"

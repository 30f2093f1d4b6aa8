"""Model against repeated host runs (kvmlab.cpu.agreement), the reproducer's sweeps on the
model (kvmlab.cpu.repro_sweeps) and the one-queue demonstration (kvmlab.cpu.mechanism)."""

from __future__ import annotations

import json

import matplotlib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmlab.cpu import mechanism, repro_sweeps
from kvmlab.cpu.agreement import (
    Agreement,
    agreement,
    per_vm,
    recorded_agreement,
    recorded_repetitions,
    repetition_name,
    spread,
    summary_rows,
)
from kvmlab.cpu.eevdf import Kernel
from kvmlab.cpu.model import simulate
from kvmlab.cpu.recordings import NOISE_PREFIX
from kvmlab.cpu.scenario import load_scenario
from kvmlab.data import recorded_names, save_recorded, scenario_names
from kvmlab.errors import ScenarioError

matplotlib.use("Agg")


def test_every_shipped_cpu_scenario_has_at_least_three_recorded_runs():
    for name in scenario_names("cpu-"):
        runs = recorded_repetitions(name)
        assert len(runs) >= 3, name
        assert {r.provenance["accelerator"] for r in runs} <= {"tcg", "kvm"}
        assert all(r.scenario == runs[0].scenario for r in runs), name


def test_repetitions_are_found_in_order_and_names_are_checked(tmp_path, monkeypatch):
    monkeypatch.delenv("KVMLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    base = recorded_repetitions("cpu-seed-example")
    for k in (3, 2, 10):
        save_recorded(repetition_name("cpu-seed-example", k), base[0].to_dict())
    names = [n for n in recorded_names("cpu-seed-example") if n.startswith("cpu-seed-example")]
    assert {"cpu-seed-example.r2", "cpu-seed-example.r3", "cpu-seed-example.r10"} <= set(names)
    assert len(recorded_repetitions("cpu-seed-example")) >= 4
    with pytest.raises(ScenarioError, match="not a path"):
        repetition_name("../x", 2)
    with pytest.raises(ScenarioError, match="repetition"):
        repetition_name("x", 0)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3), st.integers(256, 4096)), min_size=1, max_size=4),
       st.integers(1, 3))
def test_spread_and_per_vm_shares_of_any_simulation(vms, pcpus):
    s = {"pcpus": pcpus, "duration_s": 0.3,
         "vms": [{"name": f"v{i}", "vcpus": n, "shares": w} for i, (n, w) in enumerate(vms)]}
    r = simulate(s, record_timeline=False)
    shares = per_vm(r)
    assert set(shares) == {f"v{i}" for i in range(len(vms))}
    assert spread(r) == pytest.approx(max(shares.values()) - min(shares.values()), abs=1e-6)
    assert 0 <= spread(r) <= 1


def test_an_agreement_of_a_model_with_itself_agrees():
    scenario = load_scenario("cpu-overcommit-3x").with_duration(1)
    runs = [simulate(scenario, seed=k, scheduler="linux", record_timeline=False)
            for k in range(3)]
    a = agreement("cpu-overcommit-3x", scheduler="linux", seeds=3, repetitions=runs,
                  duration_s=1)
    assert a.run_error == 0 and a.spread_error == 0 and a.agrees
    assert json.loads(json.dumps(a.to_dict()))["agrees"] is True
    far = Agreement("x", "fair", 3, 3, {"a": 0.5}, {"a": 0.2}, {"a": 0.5}, {"a": 0.8}, 0.0, 0.0)
    assert far.run_error == 0.3 and not far.agrees


def test_simulated_sweep_rows_and_plot():
    rows = repro_sweeps.simulate_sweep([0, 3000], ["none", "flat"], window_s=0.5, seeds=1)
    assert [(r["layout"], r["rate"]) for r in rows] == [
        ("none", 0), ("none", 3000), ("flat", 0), ("flat", 3000)]
    assert all(r["source"] == "simulated" and 0 <= r["spread"] <= 1 for r in rows)
    ax = repro_sweeps.plot_rate_sweep(rows, linestyle="--", suffix=" (model)")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["none (model)",
                                                                  "flat (model)"]
    with pytest.raises(ScenarioError, match="layout"):
        repro_sweeps.simulate_sweep([0], ["deep"])


def test_the_recorded_sweep_shows_starvation_only_with_cgroups_and_frequent_wakes():
    rows = {(r["layout"], r["rate"]): r for r in repro_sweeps.recorded_sweep()}
    for layout in ("none", "flat", "nested"):
        assert rows[(layout, 0)]["spread"] < 0.05            # busy processes alone: fair
    assert all(rows[("none", rate)]["spread"] < 0.15 for rate in (250, 500, 1000, 2000))
    assert rows[("flat", 2000)]["spread"] > rows[("none", 2000)]["spread"] + 0.2
    assert rows[("flat", 2000)]["spread"] > rows[("flat", 250)]["spread"] + 0.2


@pytest.mark.parametrize("places", [True, False])
def test_one_queue_starves_two_vms_only_on_the_buggy_kernel(places):
    q = mechanism.one_queue(reweights_per_s=2000, seconds=0.3,
                            kernel=Kernel(reweight_places=places))
    assert sum(q.shares) == pytest.approx(1, abs=1e-3)
    assert (min(q.shares) < 0.05) is places
    assert len(q.times_ms) == len(q.running) == len(q.lags_ms)
    ax = mechanism.plot_one_queue(q)
    assert ax.get_title().startswith("2000 reweights/s")


def test_one_queue_refuses_rates_out_of_bounds():
    with pytest.raises(ScenarioError, match="reweights_per_s"):
        mechanism.one_queue(reweights_per_s=-1)


@pytest.mark.parametrize("scheduler", ["fair", "linux"])
def test_the_shipped_agreement_table_is_what_the_model_computes_today(scheduler):
    """``kvmlab cpu agreement --seeds 10 --save`` made the table notebook 01 shows; a
    change of the model that changes a figure must re-make it."""
    table = recorded_agreement()
    name = "cpu-pinned-unequal"
    (shipped,) = [r for r in table["rows"] if r["name"] == name and r["scheduler"] == scheduler]
    assert agreement(name, scheduler=scheduler, seeds=table["seeds"]).to_dict() == shipped


def test_the_shipped_agreement_table_covers_every_recorded_scenario():
    rows = recorded_agreement()["rows"]
    recorded = {m for n in scenario_names("cpu-") for m in (n, NOISE_PREFIX + n)
                if m in recorded_names(m)}
    assert {"noise-cpu-overcommit-3x", "cpu-overcommit-3x"} <= recorded
    assert {(r["name"], r["scheduler"]) for r in rows} == {
        (n, s) for n in recorded for s in ("fair", "linux")}
    assert [r["scenario"] for r in summary_rows(rows)] == [r["name"] for r in rows]

"""The starvation reproducer's rules, results and clean-up, without cgroups (no root)."""

import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvmlab.cli import main
from kvmlab.cpu import repro
from kvmlab.cpu.probe import CpuController, cpu_controller, cpu_weight, owner_gone
from kvmlab.cpu.repro import (
    COMM,
    PREFIX,
    ReproCgroups,
    ReproParams,
    ReproResult,
    ReproRun,
    rate_sweep,
    remove_stale_cgroups,
    run_repro,
)
from kvmlab.cpu.repro_sweeps import plot_rate_sweep
from kvmlab.cpu.threads import ThreadTimes
from kvmlab.errors import ExperimentFailed, ScenarioError


# -- the rules -----------------------------------------------------------------------------
@pytest.mark.parametrize(("change", "message"), [
    ({"vms": 0}, "vms must be from 1 to 16, not 0"),
    ({"vms": 17}, "vms must be from 1 to 16, not 17"),
    ({"vcpus": 9}, r"vcpus \(per VM\) must be from 1 to 8, not 9"),
    ({"vcpus": 1.5}, r"vcpus \(per VM\) must be a whole number, not 1.5"),
    ({"rate": -1}, r"rate \(emulator wake-ups per second\) must be from 0 to 20000"),
    ({"rate": 20001}, r"rate \(emulator wake-ups per second\) must be from 0 to 20000"),
    ({"rate": "1000"}, r"rate \(emulator wake-ups per second\) must be a finite number"),
    ({"window_s": 0.1}, "window_s must be from 0.2 to 120 s, not 0.1"),
    ({"window_s": 121}, "window_s must be from 0.2 to 120 s, not 121.0"),
    ({"settle_s": -1}, "settle_s must be from 0 to 60 s"),
    ({"repetitions": 0}, "repetitions must be from 1 to 100, not 0"),
    ({"layout": "tree"}, "layout must be one of none, flat, nested, not 'tree'"),
    ({"shares": [1024, 512]}, r"shares must give one value per VM \(3\), not 2"),
    ({"shares": [1024, 512, 1]}, "shares of vm3 must be from 2 to 262144, not 1"),
    ({"shares": [1024] * 3, "layout": "none"}, "shares need cgroups: use layout 'flat' or"),
    ({"pcpus": [0, 0]}, r"pcpus must name each CPU once, not \[0, 0\]"),
    ({"pcpus": []}, r"pcpus must have at least 1 item\(s\), not 0"),
    ({"vm": 3}, "unknown key 'vm' in the reproducer's parameters; did you mean 'vms'?"),
])
def test_a_parameter_that_breaks_a_rule_is_named(change, message):
    with pytest.raises(ScenarioError, match=message):
        ReproParams.from_dict({"layout": "flat", **change})


@given(st.integers(1, 16), st.integers(1, 8), st.floats(0, 20000),
       st.sampled_from(["none", "flat", "nested"]), st.floats(0.2, 120))
def test_parameters_within_the_bounds_are_taken_and_round_trip(vms, vcpus, rate, layout,
                                                               window):
    p = ReproParams(vms=vms, vcpus=vcpus, rate=rate, layout=layout, window_s=window)
    assert ReproParams.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    assert p.roles() == [f"vcpu{c}" for c in range(vcpus)] + (["emulator"] if rate else [])
    assert 1 <= p.steps <= p.samples
    assert window / p.steps >= 0.02 - 1e-9 or p.steps == 1


@given(st.integers().filter(lambda n: not 1 <= n <= 16))
def test_any_vm_count_outside_the_bounds_is_refused(vms):
    with pytest.raises(ScenarioError, match="vms must be from 1 to 16"):
        ReproParams(vms=vms)


def test_shares_become_cgroup_v2_weights_as_the_kernel_converts_them():
    assert [cpu_weight(s) for s in (2, 512, 1024, 2048, 10240, 262144)] == [
        1, 50, 100, 200, 1000, 10000]


def test_a_run_refuses_cpus_it_may_not_use_before_starting_anything():
    with pytest.raises(ScenarioError, match=r"pcpus \[4095\] are not CPUs this process"):
        run_repro(layout="none", pcpus=[4095])
    with pytest.raises(ScenarioError, match="vms must be from 1 to 16"):
        run_repro(vms=99)


def test_a_sweep_checks_every_combination_before_running_any():
    with pytest.raises(ScenarioError, match="rates must have at least 1 item"):
        rate_sweep([], ["none"])
    with pytest.raises(ScenarioError, match="layout must be one of"):
        rate_sweep([0, 1000], ["none", "tree"])
    with pytest.raises(ScenarioError, match="shares need cgroups"):
        rate_sweep([1000], ["flat", "none"], shares=[1024, 512, 256])


# -- the results ---------------------------------------------------------------------------
def _times(role, run, window=1.0):
    return ThreadTimes(1, COMM, window, run, window - run, 0.0, 0.0, 10.0, 3, 0.5, 0.01,
                       {"0": 21}, pid=1, role=role)


@given(st.lists(st.lists(st.floats(0, 1), min_size=1, max_size=4), min_size=1, max_size=6))
def test_the_spread_is_the_range_of_the_vms_mean_vcpu_run_shares(shares):
    vcpus = [_times(f"vm{v + 1}/vcpu{c}", s) for v, vm in enumerate(shares)
             for c, s in enumerate(vm)]
    run = ReproRun((*vcpus, _times("vm1/emulator", 0.9)))
    means = [sum(round(s, 6) for s in vm) / len(vm) for vm in shares]
    assert run.spread == pytest.approx(max(means) - min(means), abs=1e-5)
    assert run.spread >= 0 and set(run.vm_run_shares()) == {f"vm{v + 1}"
                                                             for v in range(len(shares))}


def test_a_result_is_json_and_comes_back():
    params = ReproParams(vms=2, vcpus=1, layout="flat", repetitions=2, shares=(1024, 512))
    runs = (ReproRun((_times("vm1/vcpu0", 0.9), _times("vm2/vcpu0", 0.1))),
            ReproRun((_times("vm1/vcpu0", 0.5), _times("vm2/vcpu0", 0.5))))
    result = ReproResult(params, runs, "6.18.44", "v1 /sys/fs/cgroup/cpu", (0, 1), "today")
    data = json.loads(json.dumps(result.to_dict()))
    assert (data["spreads"], data["spread"], data["max_spread"]) == ([0.8, 0.0], 0.4, 0.8)
    assert data["fair_share"] == 1.0 and data["runs"][0]["vm_run_shares"] == {
        "vm1": 0.9, "vm2": 0.1}
    assert data["runs"][0]["processes"][0]["role"] == "vm1/vcpu0"
    assert ReproResult.from_dict(data).to_dict() == data
    assert "repetition 1: vm1=0.900 vm2=0.100  spread 0.800" in result.table()


def test_the_sweep_plot_has_a_line_per_layout():
    import matplotlib

    matplotlib.use("Agg")
    rows = [{"layout": x, "rate": r, "spread": s, "spread_min": s, "spread_max": s}
            for x, s in (("none", 0.02), ("nested", 0.5)) for r in (0, 250, 1000)]
    ax = plot_rate_sweep(rows)
    assert [len(bars.lines[0].get_xdata()) for bars in ax.containers] == [3, 3]
    assert ax.get_xlabel() == "emulator wake-ups per second"


# -- cgroups and their owners, on folders that stand for them ------------------------------
def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_cgroup_whose_owner_ended_or_whose_pid_was_reused_is_stale(tmp_path):
    dead = tmp_path / f"{PREFIX}{_dead_pid()}"
    mine = tmp_path / f"{PREFIX}{os.getpid()}"
    reused = tmp_path / f"{PREFIX}1"                       # pid 1 started long before
    for d in (dead, mine, reused):
        d.mkdir()
    os.utime(reused, (1, 1))                               # made in 1970: not by pid 1
    assert owner_gone(dead) and owner_gone(reused) and not owner_gone(mine)
    assert not owner_gone(tmp_path / "kvmlab-repro")


def test_stale_cgroups_are_removed_and_nothing_else(tmp_path):
    stale = tmp_path / f"{PREFIX}{_dead_pid()}"
    (stale / "vm1" / "vcpu0").mkdir(parents=True)
    (stale / "vm1" / "emulator").mkdir()
    live = tmp_path / f"{PREFIX}{os.getpid()}"
    other = tmp_path / "kvmlab-repro"                       # not one of ours: no owner pid
    for d in (live, other):
        d.mkdir()
    assert remove_stale_cgroups(CpuController(1, tmp_path)) == [stale]
    assert not stale.exists() and live.exists() and other.exists()


def test_the_cgroup_layouts_are_libvirts(tmp_path):
    for layout, expected in (("flat", ["vm1", "vm2"]),
                             ("nested", ["vm1", "vm1/emulator", "vm1/vcpu0", "vm1/vcpu1",
                                         "vm2", "vm2/emulator", "vm2/vcpu0", "vm2/vcpu1"])):
        params = ReproParams(vms=2, layout=layout)
        with ReproCgroups(CpuController(1, tmp_path), params) as cgroups:
            top = cgroups.top
            assert top.name == f"{PREFIX}{os.getpid()}"
            assert sorted(str(p.relative_to(top)) for p in top.rglob("*")) == expected
        assert not top.exists()


def test_where_the_cpu_controller_is(tmp_path):
    assert cpu_controller(f"cgroup {tmp_path} cgroup rw,nosuid,cpu 0 0\n") == CpuController(
        1, tmp_path)
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory\n")
    assert cpu_controller(f"cgroup2 {tmp_path} cgroup2 rw 0 0\n") == CpuController(2, tmp_path)
    with pytest.raises(ExperimentFailed, match=r"no cpu controller: .* What to do: mount one"):
        cpu_controller(f"cgroup2 {tmp_path / 'none'} cgroup2 rw 0 0\n")


# -- a run without cgroups (no root needed), and its clean-up ----------------------------------
def test_a_small_run_without_cgroups_measures_its_processes():
    result = run_repro(vms=2, vcpus=1, layout="none", rate=500, window_s=0.4, settle_s=0.1,
                       pcpus=[min(os.sched_getaffinity(0))], wait_for_lock_s=120)
    [run] = result.runs
    assert [t.role for t in run.processes] == ["vm1/vcpu0", "vm1/emulator", "vm2/vcpu0",
                                               "vm2/emulator"]
    for t in run.processes:
        assert t.name == COMM and t.run_s + t.wait_s + t.sleep_s == pytest.approx(t.window_s)
    vcpus = [t for t in run.processes if "vcpu" in t.role]
    assert all(t.run_share + t.wait_share > 0.9 for t in vcpus)
    emulators = [t for t in run.processes if "emulator" in t.role]
    assert all(100 < t.wakes_per_s < 600 and t.run_share < 0.2 for t in emulators)
    assert result.cgroup == "" and result.fair_share == 0.5 and result.kernel == os.uname()[2]
    assert multiprocessing.active_children() == []


def test_an_error_mid_window_kills_every_process(monkeypatch):
    seen = []

    def broken(ids, *args, **kwargs):
        seen.extend(pid for pid, _ in ids)
        raise RuntimeError("reading failed")

    monkeypatch.setattr(repro, "measure_threads", broken)
    with pytest.raises(RuntimeError, match="reading failed"):
        run_repro(vms=2, vcpus=1, layout="none", window_s=0.2, settle_s=0,
                  wait_for_lock_s=120)
    assert len(seen) == 4 and multiprocessing.active_children() == []
    time.sleep(0.05)
    assert not [pid for pid in seen if Path(f"/proc/{pid}").exists()]


def test_the_command_line_names_a_broken_rule(capsys):
    assert main(["cpu", "repro", "--vms", "17"]) == 2
    assert "vms must be from 1 to 16, not 17" in capsys.readouterr().err
    assert main(["cpu", "repro", "--shares", "1,x"]) == 2
    assert "--shares takes comma-separated numbers, not '1,x'" in capsys.readouterr().err
    assert main(["cpu", "repro", "--pcpus", "a-b"]) == 2
    assert "--pcpus takes a CPU list" in capsys.readouterr().err


def test_the_command_line_runs_the_reproducer(capsys):
    assert main(["cpu", "repro", "--layout", "none", "--vms", "1", "--vcpus", "1",
                 "--rate", "0", "--window", "0.3", "--settle", "0"]) == 0
    out = capsys.readouterr()
    data = json.loads(out.out)
    assert data["params"]["layout"] == "none" and len(data["runs"][0]["processes"]) == 1
    assert "repetition 1: vm1=" in out.err

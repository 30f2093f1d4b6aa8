"""Reading the scheduler's trace: who woke a main loop, how, and what moved threads."""

from __future__ import annotations

import statistics
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvmlab.cpu import load_scenario, run_on_host
from kvmlab.cpu.agreement import recorded_repetitions
from kvmlab.cpu.linux import simulate_linux
from kvmlab.cpu.model import simulate
from kvmlab.cpu.recordings import TRACED_PREFIX
from kvmlab.cpu.sched_trace import StateSampler, compare_rows, summarise, summarise_states
from kvmlab.errors import ScenarioError

# VM a: main loop 10, vCPUs 11 and 12; VM b: main loop 20, vCPU 21
THREADS = {10: ("a", "main-loop"), 11: ("a", "vcpu0"), 12: ("a", "vcpu1"),
           20: ("b", "main-loop"), 21: ("b", "vcpu0")}
COMM = {10: "qemu-system-x86", 11: "CPU 0/TCG", 12: "CPU 1/TCG", 20: "qemu-system-x86",
        21: "CPU 0/TCG", 0: "<idle>", 99: "bash"}


def _line(pid: int, cpu: int, t: float, event: str, rest: str, flags: str = "d..2.") -> str:
    return f" {COMM[pid]}-{pid} [{cpu:03d}] {flags} {t:.6f}: {event}: {rest}"


def switch(cpu: int, t: float, prev: int, nxt: int) -> str:
    return _line(prev, cpu, t, "sched_switch",
                 f"prev_comm={COMM[prev]} prev_pid={prev} prev_prio=120 prev_state=R ==> "
                 f"next_comm={COMM[nxt]} next_pid={nxt} next_prio=120")


def waking(cpu: int, t: float, waker: int, wakee: int, irq: bool = False) -> str:
    return _line(waker, cpu, t, "sched_waking",
                 f"comm={COMM[wakee]} pid={wakee} prio=120 target_cpu={cpu:03d}",
                 "d.h2." if irq else "d..3.")


def stack(cpu: int, t: float, waker: int, function: str) -> list[str]:
    return [f" {COMM[waker]}-{waker} [{cpu:03d}] d..3. {t:.6f}: <stack trace>",
            " => try_to_wake_up", f" => {function}", " => do_syscall_64"]


def migrate(cpu: int, t: float, context: int, tid: int, to: int, flags: str = "dNs2.") -> str:
    return _line(context, cpu, t, "sched_migrate_task",
                 f"comm={COMM[tid]} pid={tid} prio=120 orig_cpu={1 - to} dest_cpu={to}", flags)


def test_a_wake_up_is_told_by_its_waker_and_its_kernel_stack():
    lines = [switch(1, 1.0, 10, 11),                    # a's main loop sleeps on CPU 1
             switch(0, 1.0, 0, 12),                     # a's vCPU 1 runs on CPU 0
             waking(1, 1.001, 11, 10), *stack(1, 1.001, 11, "eventfd_write"),
             switch(1, 1.002, 11, 10), switch(1, 1.0021, 10, 11),
             waking(0, 1.003, 12, 10),
             migrate(1, 1.0031, 99, 99, 0),             # another CPU's line before the stack
             *stack(0, 1.003, 12, "futex_wake"),
             waking(1, 1.004, 11, 10, irq=True), *stack(1, 1.004, 11, "hrtimer_wakeup"),
             waking(1, 1.005, 21, 10), *stack(1, 1.005, 21, "pollwake"),
             switch(0, 1.010, 12, 0), switch(1, 1.010, 11, 0)]
    loop = summarise("\n".join(lines), THREADS)["main_loops"]["a"]
    assert loop["wakers"] == {"own vCPU, same CPU": 1, "own vCPU, other CPU": 1, "timer": 1,
                              "other": 1}
    assert loop["paths"] == {"eventfd": 1, "futex": 1, "timer": 1, "other": 1}
    # vCPU 0 ran on the main loop's CPU 1 from 1.0 to 1.002 and 1.0021 to 1.010;
    # vCPU 1 on CPU 0 from 1.0 to 1.010
    assert loop["vcpu_run_s"] == {"with_main_loop": pytest.approx(0.0099),
                                  "apart": pytest.approx(0.010)}
    assert loop["wakes_per_vcpu_ms"]["apart"] == pytest.approx(0.1)


def test_a_move_inside_a_wake_up_is_wake_up_placement_and_any_other_is_balancing():
    lines = [switch(0, 1.0, 0, 21),
             waking(0, 1.001, 21, 11), migrate(0, 1.001, 21, 11, 0, "d..3."),
             switch(0, 1.002, 21, 11),
             migrate(1, 1.003, 0, 12, 1),                # the balancer's softirq
             migrate(1, 1.004, 99, 20, 1), migrate(1, 1.005, 99, 99, 0)]
    assert summarise("\n".join(lines), THREADS)["migrations"] == {
        "main-loop": {"balancing": 1}, "vcpu": {"balancing": 1, "wake-up": 1}}


EVENTS = st.lists(st.tuples(st.sampled_from(["switch", "wake", "wake-irq", "move"]),
                            st.sampled_from([0, 1]), st.sampled_from(sorted(COMM)),
                            st.sampled_from(sorted(COMM)),
                            st.sampled_from(["eventfd_write", "futex_wake", "hrtimer_wakeup",
                                             "pollwake", None])),
                  max_size=60)


@given(EVENTS)
def test_every_wake_up_of_a_main_loop_is_counted_once_by_waker_and_once_by_path(events):
    lines, t, loops_woken, moves = [], 1.0, {"a": 0, "b": 0}, 0
    for kind, cpu, x, y, function in events:
        t += 0.001
        if kind == "switch":
            lines.append(switch(cpu, t, x, y))
        elif kind == "move":
            lines.append(migrate(cpu, t, x, y, cpu))
            moves += y in THREADS
        else:
            lines.append(waking(cpu, t, x, y, irq=kind == "wake-irq"))
            if function is not None:
                lines += stack(cpu, t, x, function)
            if THREADS.get(y, ("", ""))[1] == "main-loop":
                loops_woken[THREADS[y][0]] += 1
    summary = summarise("\n".join(lines), THREADS)
    for vm, loop in summary["main_loops"].items():
        assert loop["wakes"] == loops_woken[vm]
        assert sum(loop["wakers"].values()) == sum(loop["paths"].values()) == loop["wakes"]
        assert loop["vcpu_run_s"]["with_main_loop"] >= 0 and loop["vcpu_run_s"]["apart"] >= 0
    assert sum(sum(c.values()) for c in summary["migrations"].values()) == moves


def _traced(name: str):
    runs = recorded_repetitions(TRACED_PREFIX + name)
    assert all("sched_trace" in r.provenance for r in runs)
    return runs


@pytest.mark.parametrize("name", ["cpu-overcommit-3x", "cpu-unequal-shares-unpinned"])
def test_on_the_recorded_host_a_vcpu_wakes_its_main_loop_and_runs_on_its_pcpu(name):
    """What the traced recordings say (TCG guests), and what the readings say alike."""
    for run in _traced(name):
        trace = run.provenance["sched_trace"]
        for vm, loop in trace["main_loops"].items():
            own = loop["wakers"].get("own vCPU, same CPU", 0) + loop["wakers"].get(
                "own vCPU, other CPU", 0)
            assert own > 0.5 * loop["wakes"], (vm, loop["wakers"])
            assert loop["paths"].get("other", 0) < 0.05 * loop["wakes"], (vm, loop["paths"])
        rows = {r["what"]: r for r in compare_rows(run, [run_model(run)])}
        with_loop = sum(loop["vcpu_run_s"]["with_main_loop"]
                        for loop in trace["main_loops"].values())
        ran = with_loop + sum(loop["vcpu_run_s"]["apart"] for loop in trace["main_loops"].values())
        # the readings 0.3 s apart and the trace event by event tell the same
        assert rows["vCPU run time on the main loop's pCPU"]["host"] == pytest.approx(
            with_loop / ran, abs=0.06)


def run_model(run):
    return simulate_linux(run.scenario.with_duration(2), seed=0)


def test_the_linux_model_beside_a_traced_run_and_its_refusals():
    host = _traced("cpu-overcommit-3x")[-1]
    models = [simulate_linux(host.scenario.with_duration(2), seed=s) for s in range(2)]
    rows = {r["what"]: r for r in compare_rows(host, models)}
    assert rows["of them by its own vCPU threads"]["linux model"] == 0.0   # on a clock
    assert rows["of them by its own vCPU threads"]["host"] > 0.5
    moves = rows["vCPU moves a second, by load balancing"]["linux model"]
    assert moves == pytest.approx(statistics.fmean(
        m.provenance["moves_per_s"]["vcpu"]["balancing"] for m in models), abs=0.01)
    untraced = recorded_repetitions("cpu-overcommit-3x")[0]
    with pytest.raises(ScenarioError, match="was not traced"):
        compare_rows(untraced, models)
    with pytest.raises(ScenarioError, match="linux model"):
        compare_rows(host, [simulate(host.scenario.with_duration(0.1))])


def test_the_linux_model_counts_each_move_by_its_cause():
    run = simulate_linux(recorded_repetitions("cpu-unequal-shares-unpinned")[0]
                         .scenario.with_duration(3), seed=0)
    moves = run.provenance["moves_per_s"]
    total = sum(row["migrations_per_s"] for rows in run.provenance["threads"].values()
                for row in rows)
    assert sum(sum(by.values()) for by in moves.values()) == pytest.approx(total, abs=0.01)


def test_tracing_a_remote_host_is_refused_before_anything_starts():
    with pytest.raises(ScenarioError, match="remote host"):
        run_on_host(load_scenario("cpu-seed-example"), uri="qemu+ssh://root@lab2/system",
                    trace=True)
    with pytest.raises(ScenarioError, match="trace"):
        run_on_host(load_scenario("cpu-seed-example"), uri="test:///default", trace="yes")


def test_the_state_sampler_reads_until_the_block_ends(tmp_path):
    debug = tmp_path / "debug"
    debug.write_text("cfs_rq[0]:/\n  .load_avg : 900\ncfs_rq[1]:/\n  .load_avg : 600\n")
    with StateSampler(debug) as sampler:
        time.sleep(0.35)
    count = len(sampler.samples)
    assert 2 <= count <= 4 and sampler.samples[0] == {"loads": [900.0, 600.0], "weights": {}}
    time.sleep(0.2)
    assert len(sampler.samples) == count                    # it stopped with the block
    assert summarise_states(sampler.samples)["loads_apart"] == 1.0
    with pytest.raises(OSError), StateSampler(tmp_path / "missing"):
        pass


def test_the_linux_model_reads_its_state_as_a_traced_host_run_does():
    scenario = recorded_repetitions("cpu-overcommit-3x")[0].scenario.with_duration(1)
    state = simulate_linux(scenario, seed=0).provenance["sched_state"]
    assert state["readings"] == 10                 # every 0.1 s of the 1-s window, from its start
    assert set(state["weights"]) == {"vm", "vcpu", "emulator"}
    assert all(0 < q["p10"] <= q["p50"] <= q["p90"] <= 1024
               for q in state["weights"].values())


def test_with_load_following_threads_the_models_group_weights_are_the_hosts():
    """On the traced host a vCPU's group (one thread) weighs 1024 on its pCPU; the model
    counts load a group left behind with ``Kernel(load_follows=False)``."""
    from kvmlab.cpu.linux import Kernel

    for run in _traced("cpu-overcommit-3x"):
        host = run.provenance["sched_trace"]["state"]["weights"]
        assert host["vcpu"]["p10"] >= 1000 and host["emulator"]["p50"] == 1024
    scenario = _traced("cpu-overcommit-3x")[0].scenario.with_duration(2)
    following = [simulate_linux(scenario, seed=s) for s in range(3)]
    staying = [simulate_linux(scenario, seed=s, kernel=Kernel(load_follows=False))
               for s in range(3)]
    assert all(r.provenance["sched_state"]["weights"]["vcpu"]["p10"] >= 1000 for r in following)
    assert min(r.provenance["sched_state"]["weights"]["vcpu"]["p10"] for r in staying) < 1000

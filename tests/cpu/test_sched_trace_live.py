"""The scheduler's trace of real guests, and that tracing leaves nothing behind (live)."""


import time

import pytest

from kvmlab.cpu import load_scenario, run_on_host
from kvmlab.host.cleanup import find_host_leftovers, remove_leftovers
from kvmlab.host.tracefs import INSTANCE_PREFIX, find_tracefs, trace_events

pytestmark = [pytest.mark.live]


def _instances() -> list[str]:
    return sorted(p.name for p in (find_tracefs() / "instances").iterdir()
                  if p.name.startswith(INSTANCE_PREFIX))


def test_a_trace_is_read_and_its_instance_removed_also_when_the_block_fails():
    with trace_events(["sched/sched_switch"]) as out:
        assert len(_instances()) == 1
        time.sleep(0.05)                                 # this thread switches out
    assert "sched_switch:" in out.text and _instances() == []
    with pytest.raises(RuntimeError), trace_events(["sched/sched_switch"]):
        raise RuntimeError("the run failed")
    assert _instances() == []


def test_cleanup_removes_the_trace_a_killed_run_left(live_uri):
    dead = find_tracefs() / "instances" / f"{INSTANCE_PREFIX}1-0"   # pid 1 started later
    dead.mkdir()
    try:
        found = [x for x in find_host_leftovers() if x.kind == "trace"]
        assert [(x.name, x.left_over) for x in found] == [(dead.name, True)]
        assert dead.name in {x.name for x in remove_leftovers(live_uri)}
        assert not dead.exists()
    finally:
        if dead.exists():
            dead.rmdir()


def test_a_traced_run_tells_who_wakes_each_main_loop(live_uri, guest_image, no_leftovers):
    """On this host (TCG guests), a VM's main loop is woken mostly by its own vCPU threads
    (an eventfd write or QEMU's big lock), in a system call, and otherwise by a timer."""
    scenario = load_scenario("cpu-unequal-shares-unpinned").with_duration(1)
    run = run_on_host(scenario, uri=live_uri, trace=True)
    trace = run.provenance["sched_trace"]
    assert trace["window_s"] > 0.7
    for vm, loop in trace["main_loops"].items():
        own = sum(n for who, n in loop["wakers"].items() if who.startswith("own vCPU"))
        assert own > 0.5 * loop["wakes"] > 100, (vm, loop)
        assert loop["paths"].get("eventfd", 0) + loop["paths"].get("futex", 0) >= own * 0.9
    state = trace["state"]                  # the scheduler's state, read every 0.1 s
    assert state["readings"] >= 5 and 0 <= state["loads_apart"] <= 1
    assert {"vm", "vcpu"} <= set(state["weights"])
    assert _instances() == []

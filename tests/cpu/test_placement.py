"""The wake-placement experiment: its tally, its bad input, and the real kernel."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvmlab.cpu.placement import tally, wake_placement
from kvmlab.errors import ScenarioError


@given(st.lists(st.integers(0, 1), max_size=200))
def test_every_wake_is_counted_once_and_moves_are_changes_of_cpu(cpus):
    p = tally(cpus, idle_cpu=1)
    assert p.on_idle + p.on_busy == len(cpus)
    assert p.on_idle == cpus.count(1)
    assert p.moves == sum(cpus[i] != cpus[i - 1] for i in range(1, len(cpus)))
    assert 0 <= p.idle_share <= 1


def test_bad_cpus_and_numbers_are_refused_with_the_rule():
    cpus = sorted(os.sched_getaffinity(0))
    with pytest.raises(ScenarioError, match="two different CPUs"):
        wake_placement(busy_cpu=cpus[0], idle_cpu=cpus[0])
    with pytest.raises(ScenarioError, match="two different CPUs"):
        wake_placement(busy_cpu=cpus[0], idle_cpu=max(cpus) + 1)
    with pytest.raises(ScenarioError, match="wakes at least 1"):
        wake_placement(wakes=0)


@pytest.mark.live
@pytest.mark.alone
def test_a_short_thread_wakes_on_the_idle_cpu_as_the_linux_model_places_it():
    """The ``linux`` model's wake-up placement (its last CPU unless another is idle) on
    the real kernel: also on a host with a packing option (sched_vcpu_pack)."""
    if len(os.sched_getaffinity(0)) < 2:
        if os.environ.get("CI") == "true":
            pytest.fail("this test needs two CPUs")
        pytest.skip("this test needs two CPUs")
    busy, idle = sorted(os.sched_getaffinity(0))[:2]
    for run_us, period_us in [(20, 1000), (200, 800)]:
        p = wake_placement(run_us, period_us, wakes=500, busy_cpu=busy, idle_cpu=idle)
        assert p.idle_share > 0.9, (run_us, period_us, p)
        assert p.moves <= 25, p               # it moved there and stayed


def test_a_killed_run_leaves_no_process_behind():
    """SIGKILL to the owner: both of its processes end with it (PR_SET_PDEATHSIG)."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("this test needs two CPUs")
    busy, idle = sorted(os.sched_getaffinity(0))[:2]
    owner = subprocess.Popen([sys.executable, "-c",
                              "from kvmlab.cpu.placement import wake_placement; "
                              f"wake_placement(wakes=10**6, busy_cpu={busy}, idle_cpu={idle})"])
    children = Path(f"/proc/{owner.pid}/task/{owner.pid}/children")
    deadline = time.monotonic() + 30
    while len(children.read_text().split()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = [int(p) for p in children.read_text().split()]
    assert len(pids) >= 2, pids               # the busy loop and the short process
    owner.kill()
    owner.wait()
    deadline = time.monotonic() + 5
    while any(Path(f"/proc/{p}").exists() for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if Path(f"/proc/{p}").exists()], pids

"""Delayed dequeue in the ``linux`` model (``Kernel(delay_dequeue=True)``)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmlab.cpu.agreement import agreement, recorded_repetitions
from kvmlab.cpu.eevdf import Entity, Kernel, RunQueue, enqueue
from kvmlab.cpu.linux import QemuThreads, simulate_linux
from kvmlab.cpu.linux_delay import Delayed
from kvmlab.cpu.scenario import CpuScenario
from kvmlab.errors import ScenarioError

DELAY = Kernel(delay_dequeue=True)


def three_vms(duration_s=0.5):
    return recorded_repetitions("cpu-overcommit-3x")[0].scenario.with_duration(duration_s)


def test_off_by_default_nothing_is_held():
    result = simulate_linux(three_vms(), seed=0)
    assert result.provenance["kernel"]["delay_dequeue"] is False
    assert result.provenance["delayed_dequeues"] == {"held": 0, "finished": 0, "requeued": 0,
                                                     "still_held": 0}


def test_a_group_that_sleeps_ahead_stays_queued_but_a_short_sleeper_seldom_is():
    result = simulate_linux(three_vms(), seed=0, kernel=DELAY)
    counts = result.provenance["delayed_dequeues"]
    simulated_s = result.duration_s + 1.0                      # the window and the warm-up
    main_loop_sleeps = 3 * QemuThreads().main_loop_wakes_per_s * simulated_s
    # some groups are held, and leave later or are woken again; but a main loop that
    # runs some microseconds a millisecond is owed time when it sleeps: most sleeps
    # dequeue its group at once
    assert counts["held"] > 10 and counts["requeued"] > 0 and counts["finished"] > 0, counts
    assert counts["held"] < 0.1 * main_loop_sleeps, (counts, main_loop_sleeps)


@st.composite
def small_scenarios(draw):
    pcpus = draw(st.integers(1, 2))
    vms = [{"name": f"vm{i}", "vcpus": draw(st.integers(1, 2)),
            "shares": draw(st.sampled_from([512, 1024, 2048])),
            "load": draw(st.sampled_from([1.0, 0.5]))}
           for i in range(draw(st.integers(1, 3)))]
    return CpuScenario.from_dict({"pcpus": pcpus, "duration_s": 0.2, "vms": vms})


@settings(max_examples=15, deadline=None)
@given(scenario=small_scenarios(), seed=st.integers(0, 1000))
def test_every_held_entity_leaves_is_queued_again_or_is_still_held(scenario, seed):
    result = simulate_linux(scenario, seed=seed, kernel=DELAY, warmup_s=0.1)
    c = result.provenance["delayed_dequeues"]
    assert c["held"] == c["finished"] + c["requeued"] + c["still_held"], c
    # no CPU time made up: the vCPUs never run more than the pCPUs can give
    assert sum(v.run_share for v in result.vcpus) <= scenario.pcpus + 1e-9
    assert all(0 <= v.run_share <= 1 and 0 <= v.wait_share <= 1 for v in result.vcpus)


def test_a_group_owed_time_is_not_held_and_one_ahead_is():
    kernel = DELAY
    rq = RunQueue(None, 0)
    ahead = Entity("ahead", my_rq=RunQueue(None, 0))
    behind = Entity("behind", my_rq=RunQueue(None, 0))
    for e in (ahead, behind):
        enqueue(rq, e, kernel)
    ahead.vruntime += 0.002                          # it ran 2 ms more than its share
    rq.avg_sum += ahead.weight * 0.002
    delayed = Delayed(kernel)
    assert not delayed.hold(rq, behind)              # owed time: it leaves
    assert delayed.hold(rq, ahead) and ahead in delayed
    delayed.finish(rq, ahead, 0.0, lambda *_: None)
    assert not ahead.on_rq and ahead not in delayed and ahead.vlag <= 0
    assert delayed.counts() == {"held": 1, "finished": 1, "requeued": 0, "still_held": 0}


def test_agreement_takes_the_kernel_of_the_linux_scheduler_only():
    with pytest.raises(ScenarioError, match="kernel settings are for the linux scheduler"):
        agreement("cpu-overcommit-3x", scheduler="fair", kernel=DELAY)
    found = agreement("cpu-unequal-shares-unpinned", seeds=2, duration_s=1.0, kernel=DELAY)
    assert found.seeds == 2 and found.model

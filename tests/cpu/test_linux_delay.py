"""Delayed dequeue in the ``linux`` model (``Kernel(delay_dequeue=True)``)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmlab.cpu.agreement import agreement, recorded_repetitions
from kvmlab.cpu.eevdf import Entity, Group, Kernel, RunQueue, avg_vruntime, enqueue
from kvmlab.cpu.linux import QemuThreads, _LinuxHost, simulate_linux
from kvmlab.cpu.linux_delay import Delayed
from kvmlab.cpu.scenario import CpuScenario
from kvmlab.errors import ScenarioError

DELAY = Kernel(delay_dequeue=True)


def three_vms(duration_s=0.5):
    return recorded_repetitions("cpu-overcommit-3x")[0].scenario.with_duration(duration_s)


@pytest.mark.parametrize("layout", ["flat", "none"])
def test_only_the_nested_layout_holds_entities(layout):
    """Elsewhere a thread shares its group, and the kernel would hold the thread's own
    entity, which the model does not: those layouts run without delayed dequeue."""
    result = simulate_linux(three_vms(), seed=0, kernel=DELAY, layout=layout)
    assert result.provenance["kernel"]["delay_dequeue"] is False
    assert result.provenance["delayed_dequeues"]["held"] == 0


def test_on_by_default_as_on_the_recordings_kernel_and_off_holds_nothing():
    assert simulate_linux(three_vms(), seed=0).provenance["kernel"]["delay_dequeue"] is True
    result = simulate_linux(three_vms(), seed=0, kernel=Kernel(delay_dequeue=False))
    assert result.provenance["kernel"]["delay_dequeue"] is False
    assert result.provenance["delayed_dequeues"] == {"held": 0, "finished": 0, "requeued": 0,
                                                     "still_held": 0}


def test_a_group_that_sleeps_ahead_stays_queued_but_a_short_sleeper_seldom_is():
    # vCPUs that sleep now and then on their own, and main loops on a clock of their
    # own, so that some held vCPU groups are picked before they wake (with the measured
    # behaviour a held group is nearly always woken first)
    qemu = QemuThreads(vcpu_sleeps_per_cpu_s=20, lock_contention=0, woken_by_vcpu=0)
    result = simulate_linux(three_vms(), seed=0, kernel=DELAY, qemu=qemu)
    counts = result.provenance["delayed_dequeues"]
    simulated_s = result.duration_s + 1.0                      # the window and the warm-up
    main_loop_sleeps = 3 * qemu.main_loop_wakes_per_s * simulated_s
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


def test_at_the_end_every_held_entity_is_queued_with_nothing_below_it():
    scenario = three_vms(0.3)
    host = _LinuxHost(scenario, 3, DELAY, QemuThreads(), "nested", 0.2, False)
    host.run()
    entities = {se for t in host.threads for chain in t.levels.values() for _rq, se in chain}
    held = [se for se in entities if se.delayed]
    assert all(se.on_rq and se.my_rq is not None and not se.my_rq.entities for se in held)
    assert len(held) == host.delayed.counts()["still_held"]
    assert host.delayed.held > 0


def queue_of_two(kernel=DELAY):
    """A queue with two group entities; ``ahead`` has run 2 ms more than its share."""
    rq = RunQueue(None, 0)
    ahead = Entity("ahead", my_rq=RunQueue(None, 0))
    other = Entity("other", my_rq=RunQueue(None, 0))
    for e in (ahead, other):
        enqueue(rq, e, kernel)
    ahead.vruntime += 0.002
    rq.avg_sum += ahead.weight * 0.002
    return rq, ahead, other


def test_a_group_owed_time_is_not_held_and_a_woken_one_keeps_its_place_unless_owed():
    rq, ahead, other = queue_of_two()
    delayed = Delayed(DELAY)
    assert not delayed.hold(rq, other)               # owed time: it would leave at once
    assert delayed.hold(rq, ahead)
    before = ahead.vruntime
    delayed.requeue(rq, ahead, 0.0)                  # still behind V: stays where it was
    assert ahead.vruntime == before and not ahead.delayed and ahead.on_rq
    assert delayed.hold(rq, ahead)
    ahead.vruntime -= 0.004                          # meanwhile it came to be owed time:
    rq.avg_sum -= ahead.weight * 0.004
    delayed.requeue(rq, ahead, 0.0)                  # DELAY_ZERO: placed at V, lag dropped
    assert ahead.vruntime == pytest.approx(avg_vruntime(rq)) and ahead.vlag == 0
    assert delayed.counts() == {"held": 2, "finished": 0, "requeued": 2, "still_held": 0}


def vm_with_a_held_emulator(parent_ahead: bool):
    """A VM's queue holding only its emulator group's entity, held; the VM's entity on the
    root queue beside another VM's, 2 ms ahead of it (``parent_ahead``) or behind."""
    vm_rq = Group("vm", parent=Group("/")).rq(0)
    root = vm_rq.parent
    emulator = Entity("emulator", my_rq=RunQueue(None, 0))
    enqueue(vm_rq, emulator, DELAY)
    other = Entity("other vm", my_rq=RunQueue(None, 0))
    for se in (vm_rq.se, other):
        enqueue(root, se, DELAY)
    step = 0.002 if parent_ahead else -0.002         # ahead of the other VM, or behind it
    vm_rq.se.vruntime += step
    root.avg_sum += vm_rq.se.weight * step
    host = _LinuxHost(three_vms(0.1), 0, DELAY, QemuThreads(), "nested", 0.0, False)
    emulator.delayed, host.delayed.held = True, 1   # as a sleep of its main loop left it
    return host, vm_rq, emulator


@pytest.mark.parametrize("parent_ahead", [False, True])
def test_a_picked_group_leaves_and_its_emptied_parent_leaves_or_is_held(parent_ahead):
    host, vm_rq, emulator = vm_with_a_held_emulator(parent_ahead)
    delayed = host.delayed
    host._finish_delayed(vm_rq, emulator, 0.0)
    assert not emulator.on_rq and not emulator.delayed and emulator.vlag <= 0
    vm_se = vm_rq.se
    if parent_ahead:                                 # ran ahead: held in turn, lag kept
        assert vm_se.on_rq and vm_se.delayed
        assert delayed.counts() == {"held": 2, "finished": 1, "requeued": 0, "still_held": 1}
    else:                                            # owed time: leaves, keeping its lag
        assert not vm_se.on_rq and not vm_se.delayed and vm_se.vlag > 0
        assert delayed.counts()["still_held"] == 0
    assert host.reweights == 0                       # nothing above the root to reweight


def test_agreement_takes_the_kernel_of_the_linux_scheduler_only():
    with pytest.raises(ScenarioError,
                       match="kernel settings and machine_group are for the linux scheduler"):
        agreement("cpu-overcommit-3x", scheduler="fair", kernel=DELAY)
    found = agreement("cpu-overcommit-3x", seeds=2, duration_s=1.0,
                      kernel=Kernel(delay_dequeue=False))
    default = agreement("cpu-overcommit-3x", seeds=2, duration_s=1.0)
    assert found.seeds == 2 and found.model != default.model     # the kernel was used

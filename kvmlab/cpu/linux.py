"""The ``linux`` CPU model: what a Linux host with libvirt guests really does (simpy).

The ``fair`` model (:mod:`kvmlab.cpu.model`) is the textbook: one ideal queue,
weights honoured exactly. This model follows the real kernel instead, closely
enough to show why real guests share CPUs less fairly than the textbook says:

* **one run queue per CPU**, with EEVDF on every queue (:mod:`kvmlab.cpu.eevdf`);
* **libvirt's cgroups**: every VM a group, and in it a group per vCPU thread and one
  for QEMU's other threads (``machine/qemu-N-NAME.libvirt-qemu/{vcpu0,...,emulator}``);
  a group's weight on a CPU is its shares times that CPU's part of its load;
* **QEMU's threads as they behave**: besides the vCPU threads, a main-loop thread
  that wakes hundreds of times a second for a few microseconds, and vCPU threads
  that now and then sleep briefly on QEMU's big lock (:class:`QemuThreads`; the
  defaults were measured on TCG guests);
* **wake-up placement and load balancing** between CPUs: a thread wakes where it
  last ran unless another allowed CPU is idle; an idle CPU pulls a waiting thread;
  every CPU periodically pulls load from the busiest one when the imbalance is
  over 17 %;
* **the kernel's pick**: the *next buddy* first (a group whose thread just slept while it
  kept others queued, ``Kernel(pick_buddy=True)``), and at a switch only the levels that
  change are put back, as ``pick_next_task_fair()`` does.

Each wake-up or sleep of a VM's thread changes the VM's weight on that CPU, and
the kernel *reweights* the VM's entity. On kernels 6.13 to 6.18.44 that re-places
the entity when it is the running one, which keeps the running VM eligible for as
long as its main loop keeps waking (``Kernel(reweight_places=True)``, the default:
the kernel the lab's recordings were made on). ``Kernel(reweight_places=False)``
is the corrected kernel. 6.12's delayed dequeue (:mod:`kvmlab.cpu.linux_delay`) is on,
as on that kernel, in libvirt's nested layout (``Kernel(delay_dequeue=False)``: off).

Examples
--------
Three 2-vCPU VMs on 2 pCPUs. On the buggy kernel one VM gets far less than the
others; on the corrected kernel all get about 1/3 of a pCPU per vCPU:

>>> from kvmlab.cpu.scenario import CpuScenario
>>> s = CpuScenario.from_dict({"pcpus": 2, "duration_s": 2,
...     "vms": [{"name": f"vm{i}", "vcpus": 2} for i in (1, 2, 3)]})
>>> from statistics import fmean
>>> from kvmlab.cpu.agreement import spread
>>> def mean_spread(kernel):
...     return round(fmean(spread(simulate_linux(s, seed=k, kernel=kernel))
...                        for k in range(6)), 2)
>>> mean_spread(Kernel()), mean_spread(Kernel(reweight_places=False))
(0.37, 0.04)
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections.abc import Callable, Generator, Mapping
from dataclasses import asdict, replace
from typing import Any

import simpy
from mypy_extensions import mypyc_attr

from kvmlab.cpu.eevdf import (
    Entity,
    Group,
    Kernel,
    RunQueue,
    dequeue,
    eligible,
    enqueue,
    group_shares,
    pick_eevdf,
    reweight,
    set_curr,
    set_next_buddy,
    update_curr,
)
from kvmlab.cpu.linux_balance import Cpu, LoadBalancing
from kvmlab.cpu.linux_delay import Delayed
from kvmlab.cpu.linux_load import take_load
from kvmlab.cpu.linux_qemu import QemuThreads, QemuWorkload, Thread
from kvmlab.cpu.linux_readings import Readings, States, moves_per_s
from kvmlab.cpu.noise import HostNoise, noise_bursts
from kvmlab.cpu.result import CpuResult, Slice, VcpuStats
from kvmlab.cpu.scenario import CpuScenario, VmSpec, as_scenario
from kvmlab.errors import ScenarioError
from kvmlab.lab import SIMULATED
from kvmlab.progress import ProgressArg, progress_bar

__all__ = ["LAYOUTS", "MAX_LINUX_COST", "Kernel", "QemuThreads", "linux_cost", "simulate_linux"]

LAYOUTS = ("nested", "flat", "none")
"""Where the model puts a VM's threads: libvirt's nested groups, one group per VM, or
no groups at all (every thread directly in the root group, like QEMU started by hand)."""


def _chain(rq: RunQueue, se: Entity) -> list[tuple[RunQueue, Entity]]:
    """(queue, entity) from ``se`` on ``rq`` up to the root queue of ``rq``'s CPU."""
    chain = [(rq, se)]
    while rq.se is not None:
        parent = rq.parent
        assert parent is not None
        chain.append((parent, rq.se))
        rq = parent
    return chain


def _holds(picked: list[tuple[RunQueue, Entity]], se: Entity) -> bool:
    """Whether ``se`` is one of the entities in ``picked``."""
    return any(p is se for _rq, p in picked)


@mypyc_attr(allow_interpreted_subclasses=True)  # the tests watch the model through subclasses
class _LinuxHost(QemuWorkload, LoadBalancing):
    def __init__(self, scenario: CpuScenario, seed: int, kernel: Kernel, qemu: QemuThreads,
                 layout: str, warmup_s: float, record_timeline: bool,
                 noise: HostNoise | None = None, machine_group: bool = False) -> None:
        self.scenario, self.kernel, self.qemu = scenario, kernel, qemu
        self.rng = random.Random(seed)
        self.env = simpy.Environment()
        self.start = warmup_s
        self.end = warmup_s + scenario.duration_s
        self.cpus = [Cpu(i) for i in range(scenario.pcpus)]
        self.idle = list(range(scenario.pcpus))    # the CPUs running no thread, in order
        self.root = Group("/")
        self.threads: list[Thread] = []
        self.by_entity: dict[Entity, Thread] = {}
        self.vcpus_of: dict[str, list[Thread]] = {vm.name: [] for vm in scenario.vms}
        self.timeline: list[Slice] | None = [] if record_timeline else None
        self.reweights = 0
        self.delayed = Delayed(kernel)
        self.balanced = {"vcpu": 0, "main": 0, "noise": 0}   # moves in the window by balancing
        every = tuple(range(scenario.pcpus))
        first = self.rng.randrange(scenario.pcpus)
        # The VMs are set up, and their threads first wake, in an order the seed picks:
        # no VM owes its share to its place in the scenario.
        order = list(range(len(scenario.vms)))
        self.rng.shuffle(order)
        # libvirt's machine group, which holds all its guests' groups (machine.slice where
        # systemd runs), is a layer between the VMs and the root group
        top = Group("machine", parent=self.root) if machine_group else self.root
        for place, k in enumerate(order):
            vm = scenario.vms[k]
            vm_group = self.root if layout == "none" else Group(vm.name, vm.shares, top)
            for i in range(vm.vcpus):
                group = vm_group if layout != "nested" else Group(f"{vm.name}/vcpu{i}",
                                                                  parent=vm_group)
                self._add(Thread(f"{vm.name}/vcpu{i}", vm.name, i, "vcpu", group,
                                  every if vm.pin is None else vm.allowed(i, scenario.pcpus)),
                          vm)
            if qemu.main_loop_wakes_per_s > 0:
                group = vm_group if layout != "nested" else Group(f"{vm.name}/emulator",
                                                                  parent=vm_group)
                main = Thread(f"{vm.name}/emulator", vm.name, -1, "main", group,
                              vm.emulator_pin or every)
                self._add(main, vm)
                # Guests boot one after another on a mostly idle host, and each main loop
                # starts on a CPU that is idle then: the main loops of the recorded runs'
                # VMs sit on different CPUs (two VMs, two CPUs), so they start spread here;
                # where some must share a CPU, which ones is left to the seed.
                main.cpu = (first + place) % scenario.pcpus
                if main.cpu not in main.allowed:
                    main.cpu = main.allowed[(first + place) % len(main.allowed)]
        self.noise: Thread | None = None            # other work on the host, in the root group
        self.noise_due = 0                          # its bursts due while it was busy
        self.noise_burst_s = 0.0
        if noise is not None and noise.bursts_per_s > 0:
            self.noise = Thread("host/noise", "", -1, "noise", self.root, every)
            self.noise.everywhere = True
            self.by_entity[self.noise.se] = self.noise
            self.noise_burst_s = noise.burst_ms / 1000
            self.env.process(noise_bursts(self.env, self.rng, noise, self._noise_burst))
        rank = {vm.name: k for k, vm in enumerate(scenario.vms)}
        self.threads.sort(key=lambda t: rank[t.vm])      # reported in the scenario's order
        for cpu in self.cpus:
            self.env.process(self._ticks(cpu))
            self.env.process(self._balancing(cpu))

    def _add(self, t: Thread, vm: VmSpec) -> None:
        t.everywhere = len(t.allowed) == len(self.cpus)
        t.cpu = self.rng.choice(t.allowed)
        self.threads.append(t)
        self.by_entity[t.se] = t
        if t.kind == "vcpu":
            self.vcpus_of[vm.name].append(t)
            self.env.process(self._vcpu_workload(t, vm))
        else:
            self.env.process(self._main_loop(t))

    def _noise_burst(self, burst_s: float) -> None:
        t = self.noise
        assert t is not None
        if t.state == "sleep":
            t.work_left = burst_s
            self.wake(t, self.env.now)
        else:                                       # it runs when the one before is done
            self.noise_due += 1

    def _done_cb(self, t: Thread, token: int) -> Callable[[simpy.Event], None]:
        """A callback for a simpy event: ``_done(t, token)`` when it fires."""
        def done(_event: simpy.Event) -> None:
            self._done(t, token)
        return done

    def _done(self, t: Thread, token: int) -> None:
        super()._done(t, token)
        if t is self.noise and self.noise_due and t.state == "sleep":
            self.noise_due -= 1
            t.work_left = self.noise_burst_s
            self.wake(t, self.env.now)

    # -- the groups a thread sits in on one CPU -----------------------------------------
    def _levels(self, t: Thread, cpu: int) -> list[tuple[RunQueue, Entity]]:
        """(queue, entity) from the thread up to the root queue of ``cpu`` (cached)."""
        if t.levels_cpu == cpu:                     # the CPU asked for last time
            return t.levels_last
        levels = t.levels.get(cpu)
        if levels is None:
            levels = t.levels[cpu] = _chain(t.group.rq(cpu), t.se)
        t.levels_cpu, t.levels_last = cpu, levels
        return levels

    def _update_group(self, rq: RunQueue, se: Entity, now: float) -> None:
        """``update_cfs_group()``: give a group entity its current share of its group."""
        my_rq = se.my_rq
        if my_rq is None or not my_rq.entities:
            return
        shares = group_shares(my_rq, now, self.kernel)
        if shares != se.weight:
            self.reweights += 1
            reweight(rq, se, shares, self.kernel, now)

    def _charge(self, cpu: Cpu, now: float) -> bool:
        """Charge the running chain on ``cpu``; True if the running entity should yield."""
        t = cpu.thread
        if t is None:
            return False
        resched = False
        kernel = self.kernel
        for rq, se in self._levels(t, cpu.index):
            ended = update_curr(rq, now, kernel)
            if rq.curr is se and len(rq.entities) > 1 and (ended or se.vruntime >= se.vprot):
                resched = True                      # the slice ended, or is not protected()
        return resched

    # -- thread states -------------------------------------------------------------------
    def _set_state(self, t: Thread, state: str, now: float) -> None:
        start = t.since if t.since >= self.start else self.start      # the part of
        end = now if now <= self.end else self.end                    # [since, now] in
        spent = end - start if end > start else 0.0                   # the window
        if t.state == "run":
            t.run_s += spent
            t.work_left -= now - t.since
            t.last_ran = now
            if self.timeline is not None and spent > 0 and t.kind == "vcpu":
                self.timeline.append(Slice(t.cpu, t.vm, t.vcpu, start - self.start,
                                           end - self.start))
        elif t.state == "wait":
            t.wait_s += spent
        t.state = state
        t.since = now

    def _select_cpu(self, t: Thread, now: float, waker: Thread | None = None) -> int:
        """``select_task_rq_fair()``, simplified: an idle CPU if there is one, the waker's
        CPU if ``wake_affine()`` takes it, or else the CPU the thread last ran on."""
        prev = t.cpu if t.everywhere or t.cpu in t.allowed else self.rng.choice(t.allowed)
        target = prev
        if waker is not None and waker.cpu != prev and (t.everywhere or waker.cpu in t.allowed):
            target = self._wake_affine(t, waker.cpu, prev, now)
        if self.cpus[target].thread is None:
            return target
        if self.cpus[prev].thread is None:
            return prev
        idle = self.idle if t.everywhere else [      # no scan of every CPU if allowed on all
            c for c in t.allowed if self.cpus[c].thread is None]
        return self.rng.choice(idle) if idle else target

    def _idle(self, cpu: Cpu, idle: bool) -> None:
        """Keep ``cpu`` in the sorted list of idle CPUs exactly while ``idle``."""
        if cpu.listed_idle == idle:
            return
        cpu.listed_idle = idle
        k = bisect_left(self.idle, cpu.index)
        if idle:
            self.idle.insert(k, cpu.index)
        else:
            del self.idle[k]

    def _enqueue_thread(self, t: Thread, cpu: Cpu, now: float) -> None:
        if t.cpu != cpu.index and self.start <= now < self.end:
            t.migrations += 1                       # moved between CPUs in the window
        if t.cpu != cpu.index and self.kernel.load_follows:
            take_load(self._levels(t, t.cpu), self._levels(t, cpu.index), now, self.kernel)
        t.cpu = cpu.index
        cpu.queued[t] = None
        for rq, se in self._levels(t, cpu.index):
            if se.on_rq:
                if se.delayed:
                    self.delayed.requeue(rq, se, now)
                self._update_group(rq, se, now)
                continue
            if se.my_rq is not None:
                se.weight = group_shares(se.my_rq, now, self.kernel)
            enqueue(rq, se, self.kernel, now)

    def _dequeue_thread(self, t: Thread, cpu: Cpu, now: float, sleeps: bool = False) -> None:
        del cpu.queued[t]
        self._dequeue_chain(self._levels(t, cpu.index), now, sleeps)

    def _dequeue_chain(self, chain: list[tuple[RunQueue, Entity]], now: float,
                       sleeps: bool, left: bool = False) -> None:
        """``dequeue_entities()`` up ``chain``: each entity whose own queue emptied leaves,
        or is held if it ran ahead (a group's entity, also when its thread moves to
        another CPU: the kernel dequeues the levels above a thread as at a sleep); the
        groups above are reweighted. At a sleep (``sleeps``), the first group that stays
        queued above one that left becomes the next buddy (``left``: the entity below
        ``chain`` has just left)."""
        held = False                                # a group entity below stays queued
        for rq, se in chain:
            if held or (se.my_rq is not None and se.my_rq.entities):
                if left and sleeps and self.kernel.pick_buddy:
                    set_next_buddy(se)
                left = False
                self._update_group(rq, se, now)
            elif self.delayed.hold(rq, se):
                held, left = True, False
            else:
                dequeue(rq, se, self.kernel, now)
                left = True

    def _finish_delayed(self, rq: RunQueue, se: Entity, now: float) -> None:
        """A held entity was picked: it leaves, and the groups above it are dequeued as at
        a sleep (``finish_delayed_dequeue_entity()``, then ``dequeue_entities()``)."""
        self.delayed.finish(rq, se, now)
        if rq.se is not None and rq.parent is not None:
            self._dequeue_chain(_chain(rq.parent, rq.se), now, sleeps=True, left=True)

    def wake(self, t: Thread, now: float, waker: Thread | None = None) -> None:
        cpu = self.cpus[self._select_cpu(t, now, waker)]
        self._charge(cpu, now)
        self._enqueue_thread(t, cpu, now)
        self._set_state(t, "wait", now)
        if cpu.thread is None or self._preempts(t, cpu):
            self._schedule(cpu, now)

    def _preempts(self, t: Thread, cpu: Cpu) -> bool:
        """``check_preempt_wakeup_fair()``: would EEVDF pick the waker's side now?"""
        curr = cpu.thread
        assert curr is not None
        mine, theirs = self._levels(t, cpu.index), self._levels(curr, cpu.index)
        # from the root down, the first queue where the two chains part (a queue's
        # groups are as deep as the queue, so both chains hold it at the same depth)
        for k in range(1, min(len(mine), len(theirs)) + 1):
            rq, se = mine[-k]
            other_rq, other = theirs[-k]
            if rq is not other_rq:
                return False
            if se is not other:
                return pick_eevdf(rq, self.kernel) is se
        return False

    def sleep(self, t: Thread, now: float) -> None:
        cpu = self.cpus[t.cpu]
        self._charge(cpu, now)
        running = cpu.thread is t
        self._dequeue_thread(t, cpu, now, sleeps=True)
        self._set_state(t, "sleep", now)
        t.gen += 1
        if running:
            cpu.thread = None
            self._idle(cpu, True)
            self._schedule(cpu, now, slept=t)

    def _schedule(self, cpu: Cpu, now: float, slept: Thread | None = None) -> None:
        """``schedule()``: pick from the root down, then switch the CPU to that thread.

        The caller has charged ``cpu``'s running chain up to ``now`` (``_charge``).
        ``slept`` is the thread that ran until it slept just now: as the kernel does, the
        pick sees its chain's entities as they were (a group entity that still holds
        other threads is still its queue's current one) and only then are they put back."""
        picked: list[tuple[RunQueue, Entity]] = []
        rq: RunQueue | None = self.root.rq(cpu.index)
        while rq is not None:
            se = rq.next                            # pick_next_entity(): the buddy first
            if se is None or not eligible(rq, se):
                se = pick_eevdf(rq, self.kernel)
            if se is None:
                break
            if se.delayed:                          # a held entity leaves instead of running
                self._finish_delayed(rq, se, now)
                picked.clear()
                rq = self.root.rq(cpu.index)
                continue
            picked.append((rq, se))
            rq = se.my_rq
        prev = cpu.thread
        nxt = self.by_entity[picked[-1][1]] if picked else None
        gone = prev or slept
        if gone is not None and gone is not nxt:
            # put_prev_entity() where the chains differ; the groups both sit in keep
            # their current entity (pick_next_task_fair() touches only what changes)
            for rq, se in self._levels(gone, cpu.index):
                if rq.curr is se and not _holds(picked, se):
                    rq.curr = None
        if nxt is None and self._pull(cpu, now):
            return                                  # the pulled thread was scheduled
        if prev is not None and prev is not nxt:
            self._set_state(prev, "wait", now)
            prev.gen += 1
        for rq, se in picked:
            if rq.curr is not se:
                set_curr(rq, se, now)
        cpu.thread = nxt
        self._idle(cpu, nxt is None)
        if nxt is not None and nxt is not prev:
            self._set_state(nxt, "run", now)
            nxt.slices += 1
            if nxt.work_left < math.inf:
                token = nxt.gen
                ev = self.env.timeout(max(0.0, nxt.work_left))
                ev.callbacks.append(self._done_cb(nxt, token))
            if nxt.kind == "main":
                self._main_loop_runs(nxt, now)

    # -- processes ------------------------------------------------------------------------
    def _ticks(self, cpu: Cpu) -> Generator[simpy.Event, Any, None]:
        tick = self.kernel.tick_s
        yield self.env.timeout(self.rng.uniform(0, tick))
        while True:
            now = self.env.now
            t = cpu.thread
            if t is not None:
                resched = self._charge(cpu, now)
                for rq, se in self._levels(t, cpu.index):
                    self._update_group(rq, se, now)
                if resched or self._charge(cpu, now):
                    self._schedule(cpu, now)
            yield self.env.timeout(tick)

    def run(self) -> list[VcpuStats]:
        self.env.run(until=self.end)
        for t in self.threads:
            self._set_state(t, t.state, self.end)
        return [VcpuStats(t.vm, t.vcpu, run_s=t.run_s, wait_s=t.wait_s, slices=t.slices,
                          duration_s=self.end - self.start)
                for t in self.threads if t.kind == "vcpu"]


MAX_LINUX_COST = 300_000
"""The most work the ``linux`` model is given: its scheduling slices (pcpus x simulated
ms / slice_ms) plus its main loops' wake-ups (VMs x wakes per second x simulated s). From
source it does 12,000 to 28,000 of them a second on a 2-core x86_64 machine (Python 3.11),
so a run at the bound ends within about 25 s; compiled (:mod:`kvmlab.cpu.native`, as
``make`` installs it) about 7 times as many, within about 4 s.
(:data:`kvmlab.cpu.scenario.MAX_MODEL_COST` bounds the ``fair`` model, 4 to 8 times cheaper
than the compiled ``linux`` model and some fifty times cheaper than its source.)"""


def linux_cost(scenario: CpuScenario, qemu: QemuThreads, warmup_s: float) -> tuple[float, float]:
    """The scheduling slices and main-loop wake-ups the ``linux`` model simulates.

    >>> s = CpuScenario.from_dict({"pcpus": 2, "duration_s": 10,
    ...                            "vms": [{"name": "a", "vcpus": 2}]})
    >>> linux_cost(s, QemuThreads(), warmup_s=1.0)
    (7333.333333333333, 8250.0)
    """
    simulated_s = scenario.duration_s + warmup_s
    return (scenario.pcpus * simulated_s * 1000 / scenario.slice_ms,
            len(scenario.vms) * qemu.main_loop_wakes_per_s * simulated_s)


def simulate_linux(scenario: CpuScenario | Mapping[str, Any], *, seed: int = 0,
                   progress: ProgressArg = None, kernel: Kernel | None = None,
                   qemu: QemuThreads | None = None, layout: str = "nested",
                   warmup_s: float = 1.0, record_timeline: bool = False,
                   max_cost: float | None = MAX_LINUX_COST,
                   noise: HostNoise | None = None, machine_group: bool = False) -> CpuResult:
    """Simulate a CPU scenario on the ``linux`` model; see the module docstring.

    Parameters
    ----------
    scenario : CpuScenario or dict
    seed : int
        The same seed gives the same result.
    progress : None, bool or a tqdm-like bar
        Percent of the simulated time (see :mod:`kvmlab.progress`).
    kernel : Kernel, optional
        Scheduler settings; the default is the recordings' host (6.18.44). Delayed
        dequeue is modelled in the ``nested`` layout only; the others run without it
        (``provenance['kernel']`` says what ran).
    qemu : QemuThreads, optional
        How QEMU's threads sleep and wake.
    layout : {'nested', 'flat', 'none'}
        libvirt's nested cgroups, one cgroup per VM, or none.
    warmup_s : float
        Simulated time before the measured window starts.
    record_timeline : bool
        Keep who ran where and when.
    max_cost : float or None
        Refuse a scenario whose :func:`linux_cost` adds up to more (None: no bound).
    noise : HostNoise, optional
        Other work on the host, as one task in the root group (default: none; see
        :mod:`kvmlab.cpu.noise`).
    machine_group : bool
        Put the VMs' groups in one ``machine`` group (weight 1024), as libvirt does, so
        that other work in the root group competes with all guests together, not with
        each VM. Off by default: with it the model ends lock-ins more often than the
        recordings' host does (notebook 01, *Other work on the host ends a lock-in*). Not
        for layout ``none``.

    Returns
    -------
    CpuResult
        ``provenance['scheduler']`` is ``'linux'``; ``provenance['context_switches']``
        counts the times a pCPU switched to another thread, of any kind, warm-up included.

    Raises
    ------
    ScenarioError
        For an unknown ``layout``, a scenario over ``max_cost``, or ``qemu.sleeping_vms``
        naming a VM the scenario has not.
    """
    scenario = as_scenario(scenario)
    if layout not in LAYOUTS:
        raise ScenarioError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    kernel = kernel or Kernel()
    if kernel.delay_dequeue and layout != "nested":
        kernel = replace(kernel, delay_dequeue=False)      # modelled where threads sit alone
    qemu = qemu or QemuThreads()
    names = [vm.name for vm in scenario.vms]
    if isinstance(qemu.sleeping_vms, str):
        raise ScenarioError(f"sleeping_vms takes a tuple of VM names, as ({qemu.sleeping_vms!r},), "
                            "not one string")
    unknown = sorted(set(qemu.sleeping_vms or ()) - set(names))
    if unknown:
        raise ScenarioError(f"sleeping_vms names {', '.join(unknown)}, not a VM of the "
                            f"scenario (its VMs: {', '.join(names)})")
    slices, wakes = linux_cost(scenario, qemu, warmup_s)
    if max_cost is not None and slices + wakes > max_cost:
        raise ScenarioError(
            f"this scenario is too large for the linux model: {slices:.3g} scheduling slices "
            f"(pcpus x simulated ms / slice_ms) and {wakes:.3g} main-loop wake-ups (VMs x "
            f"{qemu.main_loop_wakes_per_s:g} a second); it takes at most {max_cost:.3g} of "
            "both together (4 s compiled, 25 s from source). Shorten duration_s, or use "
            "scheduler='fair' (4 to 8 times cheaper than the compiled linux model)")
    if machine_group and layout == "none":
        raise ScenarioError("machine_group needs the VMs' groups: layout 'none' has none "
                            "(use 'nested' or 'flat')")
    if noise is not None and not isinstance(noise, HostNoise):
        raise ScenarioError(f"noise must be a HostNoise, not {type(noise).__name__}")
    host = _LinuxHost(scenario, seed, kernel, qemu, layout, warmup_s, record_timeline, noise,
                      machine_group)
    readings, states = Readings(host), States(host)
    host.env.process(readings.process())
    host.env.process(states.process())
    desc = f"simulating {scenario.name or 'a CPU scenario'} (linux)"
    with progress_bar(progress, total=100, desc=desc, unit="%") as bar:
        if progress is not None and progress is not False:
            def report() -> Generator[simpy.Event, Any, None]:
                for step in range(1, 101):
                    yield host.env.timeout(host.end * step / 100 - host.env.now)
                    bar.update(1)
            host.env.process(report())
        vcpus = host.run()
    provenance = {"model": "kvmlab.cpu.linux", "scheduler": "linux", "seed": seed,
                  "layout": layout, "machine_group": machine_group, "kernel": kernel.settings(),
                  "qemu": asdict(qemu),
                  "noise": asdict(noise or HostNoise()),
                  "reweights_per_s": round(host.reweights / host.end, 1),
                  "context_switches": sum(t.slices for t in host.threads),
                  "delayed_dequeues": host.delayed.counts(),
                  "moves_per_s": moves_per_s(host), "sched_state": states.summary(),
                  "threads": readings.table()}
    return CpuResult(scenario=scenario, source=SIMULATED, vcpus=tuple(vcpus),
                     duration_s=scenario.duration_s, provenance=provenance,
                     timeline=tuple(host.timeline or ()))

"""A discrete-event model (simpy) of a host scheduling the vCPU threads of its VMs.

Each vCPU is a thread. Each physical CPU (pCPU) repeatedly picks a runnable
thread that is allowed to run on it, runs it for one time slice (or until it
goes idle), and picks again. Two schedulers:

``"fair"`` (default)
    What Linux does with libvirt guests. libvirt puts every VM in a cgroup of its
    own, so the host shares the CPUs *between VMs first*, in proportion to their
    ``shares``, and then equally between the vCPUs of each VM. (Measured on a real
    host: a 2-vCPU VM and a 4-vCPU VM, all busy, on 2 pCPUs get one pCPU each, so
    the 2-vCPU VM's vCPUs run half the time and the other VM's a quarter.) This is
    modelled as weighted fair queuing on two levels: the VM with the least
    *virtual runtime* (run time divided by weight) goes first, then its vCPU with
    the least run time.
``"round-robin"``
    The textbook contrast: all threads of all VMs in one queue, each gets a slice
    in turn, weights and VMs ignored.

The fair scheduler is the *ideal*: every pCPU picks from one common queue. Linux
keeps a run queue per CPU and balances load between them, so on a real host the
ideal holds well when the VMs that compete share the same pCPUs (or all pCPUs),
and only roughly when they do not: with three busy VMs on two pCPUs, with
unequal shares left unpinned, or with vCPU i of several VMs pinned to pCPU i, a
real host can favour one VM or starve one vCPU for seconds (the CPU notebook
shows recordings of it).

A vCPU's thread is *runnable* while its workload wants the CPU (always, for a
busy loop; during the busy part of each period, for a duty cycle). Time it is
runnable but not running is its wait time: the guest's *steal* time.

Examples
--------
The seed article's example: VM1 with 2 vCPUs and VM2 with 4 vCPUs on 2 pCPUs.

>>> from kvmlab.cpu.scenario import CpuScenario
>>> seed_example = CpuScenario.from_dict({"pcpus": 2, "duration_s": 2,
...     "vms": [{"name": "vm1", "vcpus": 2}, {"name": "vm2", "vcpus": 4}]})
>>> fair = simulate(seed_example, seed=1)
>>> [round(v.run_share, 2) for v in fair.vcpus]
[0.5, 0.5, 0.25, 0.25, 0.25, 0.25]
>>> rr = simulate(seed_example, seed=1, scheduler="round-robin")
>>> [round(v.run_share, 2) for v in rr.vcpus]
[0.33, 0.33, 0.33, 0.33, 0.33, 0.33]
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

import simpy

from kvmlab.cpu.result import CpuResult, Slice, VcpuStats
from kvmlab.cpu.scenario import DEFAULT_SHARES, CpuScenario, VmSpec, as_scenario
from kvmlab.errors import ScenarioError
from kvmlab.lab import SIMULATED
from kvmlab.progress import Progress, ProgressArg, progress_bar

__all__ = ["PROGRESS_STEPS", "SCHEDULERS", "simulate"]

SCHEDULERS = ("fair", "round-robin")
PROGRESS_STEPS = 100
"""A simulation reports its progress this many times (each time 1 % of the run)."""


class _Group:
    """A VM's cgroup: its weight, virtual runtime and queue of waiting threads."""

    __slots__ = ("active", "key", "n_waiting", "name", "vruntime", "waiting", "weight")

    def __init__(self, name: str, weight: int) -> None:
        self.name = name
        self.weight = weight
        self.vruntime = 0.0
        self.waiting: list[tuple[float, int, _Thread]] = []
        self.n_waiting = 0
        self.active = 0            # threads runnable (waiting or running)
        self.key: tuple[float, int] | None = None


class _Thread:
    """A vCPU thread."""

    __slots__ = ("allowed", "group", "index", "key", "off_at", "run_s", "runnable",
                 "running", "slices", "vm", "vruntime", "wait_s", "waiting_since")

    def __init__(self, vm: VmSpec, index: int, group: _Group,
                 allowed: frozenset[int] | None) -> None:
        self.vm = vm.name
        self.index = index
        self.group = group
        self.allowed = allowed     # None: any pCPU
        self.runnable = False
        self.running = False
        self.off_at = math.inf     # when the current busy stretch ends
        self.vruntime = 0.0
        self.key: tuple[float, int] | None = None
        self.run_s = 0.0
        self.wait_s = 0.0
        self.waiting_since: float | None = None
        self.slices = 0


class _HostModel:
    def __init__(self, scenario: CpuScenario, seed: int, scheduler: str,
                 record_timeline: bool, progress: Progress | None) -> None:
        self.scenario = scenario
        self.rng = random.Random(seed)
        self.env = simpy.Environment()
        self.end = scenario.duration_s
        self.slice = scenario.slice_ms / 1000
        self.fair = scheduler == "fair"
        self.seq = itertools.count()
        self.groups = {vm.name: _Group(vm.name, vm.shares) for vm in scenario.vms}
        self.group_heap: list[tuple[float, int, _Group]] = []
        self.rr_queue: deque[_Thread] = deque()
        self.idle: dict[int, simpy.Event] = {}      # idle pCPUs, waiting for work
        self.timeline: list[Slice] | None = [] if record_timeline else None
        self.last_slice: list[int | None] = [None] * scenario.pcpus   # index in timeline
        self.progress = progress
        self.threads: list[_Thread] = []
        # the pCPUs each VM may use (None: all of them)
        self._reach = {vm.name: None if vm.pin is None else
                       frozenset(p for cpus in vm.pin for p in cpus) for vm in scenario.vms}
        # each pCPU's pace: the virtual runtime of the VM it picked last (inf while idle)
        self.pace = [math.inf] * scenario.pcpus
        self.pace_heap: list[tuple[float, int]] = []
        order = []
        for vm in scenario.vms:
            for i in range(vm.vcpus):
                pinned = None if vm.pin is None else frozenset(vm.allowed(i, scenario.pcpus))
                t = _Thread(vm, i, self.groups[vm.name], pinned)
                self.threads.append(t)
                order.append((t, vm))
        self.rng.shuffle(order)                # who is first in line at time 0
        # The vCPUs of one VM start their cycles together (one script starts them all);
        # different VMs are out of phase by a random amount.
        phase = {vm.name: self.rng.uniform(0, sum(b + i for b, i in vm.segments_ms()) / 1000)
                 for vm in scenario.vms}
        for t, vm in order:
            self.env.process(self._workload(t, vm, phase[vm.name]))
        for p in range(scenario.pcpus):
            self.env.process(self._pcpu(p))
        if progress is not None:
            self.env.process(self._report_progress())

    # -- workloads -------------------------------------------------------------------
    def _pattern(self, vm: VmSpec, offset: float) -> Iterator[tuple[float, float]]:
        """The (busy_s, idle_s) stretches of one vCPU, starting ``offset`` s into its cycle."""
        segments = [(b / 1000, i / 1000) for b, i in vm.segments_ms()]
        for busy, idle in itertools.cycle(segments):
            if offset >= busy + idle:
                offset -= busy + idle
                continue
            if offset:
                cut_busy = min(offset, busy)
                busy, idle = busy - cut_busy, idle - (offset - cut_busy)
                offset = 0.0
            yield busy, idle

    def _workload(self, t: _Thread, vm: VmSpec, phase: float) -> Iterator[simpy.Event]:
        env = self.env
        if vm.busy_fraction >= 1:
            self._wake(t, math.inf)
            return
        if vm.busy_fraction <= 0:
            return
        for busy, idle in self._pattern(vm, phase):
            if busy > 0:
                self._wake(t, env.now + busy)
                yield env.timeout(busy)
                # A thread still waiting in the queue stays there: it has to run once
                # to notice that its busy stretch is over (a real loop reads the clock).
                t.runnable = False
            if env.now >= self.end:
                return
            if idle > 0:
                yield env.timeout(idle)

    def _wake(self, t: _Thread, off_at: float) -> None:
        t.off_at = off_at
        if t.runnable:
            return
        t.runnable = True
        if not t.running and t.key is None:
            self._enqueue(t, waking=True)

    def _kick_idle(self, t: _Thread) -> None:
        """Wake an idle pCPU that ``t`` (just queued) may run on, if there is one."""
        if not self.idle:
            return
        if t.allowed is None:
            p = next(iter(self.idle))           # the pCPU that has been idle longest
        else:
            p = next((c for c in sorted(t.allowed) if c in self.idle), -1)
            if p < 0:
                return
        self.idle.pop(p).succeed()

    # -- run queues --------------------------------------------------------------------
    def _enqueue(self, t: _Thread, waking: bool) -> None:
        t.waiting_since = self.env.now
        if not self.fair:
            self.rr_queue.append(t)
            t.key = (0.0, 0)
            self._kick_idle(t)
            return
        g = t.group
        if waking:
            g.active += 1
            if g.active == 1:                  # a VM waking up joins the others' pace
                g.vruntime = max(g.vruntime, self._least_vruntime(g))
        entry = (t.vruntime, next(self.seq), t)
        t.key = entry[:2]
        heapq.heappush(g.waiting, entry)
        g.n_waiting += 1
        self._queue_group(g)
        self._kick_idle(t)

    def _least_vruntime(self, waking: _Group) -> float:
        """The slowest pace of the busy pCPUs ``waking`` may use: a VM that slept joins
        there, and may not claim the time it did not use."""
        reach = self._reach[waking.name]
        if reach is not None:
            least = min(self.pace[p] for p in reach)
        else:
            heap = self.pace_heap
            while heap and self.pace[heap[0][1]] != heap[0][0]:
                heapq.heappop(heap)             # stale
            least = heap[0][0] if heap else math.inf
        return waking.vruntime if least == math.inf else least

    def _set_pace(self, p: int, value: float) -> None:
        self.pace[p] = value
        if value != math.inf:
            heapq.heappush(self.pace_heap, (value, p))

    def _queue_group(self, g: _Group) -> None:
        entry = (g.vruntime, next(self.seq), g)
        g.key = entry[:2]
        heapq.heappush(self.group_heap, entry)

    def _pick(self, p: int) -> _Thread | None:
        return self._pick_fair(p) if self.fair else self._pick_rr(p)

    def _pick_rr(self, p: int) -> _Thread | None:
        q = self.rr_queue
        for i, t in enumerate(q):
            if t.allowed is None or p in t.allowed:
                del q[i]
                t.key = None
                return t
        return None

    def _pick_fair(self, p: int) -> _Thread | None:
        heap, stash, found = self.group_heap, [], None
        while heap:
            vr, sq, g = heapq.heappop(heap)
            if g.key != (vr, sq):
                continue                        # stale entry
            t = self._pick_in_group(g, p)
            if t is None:
                stash.append((vr, sq, g))       # nothing of this VM may run on p
                continue
            found = t
            if g.n_waiting:
                heapq.heappush(heap, (vr, sq, g))
            else:
                g.key = None
            self._set_pace(p, vr)
            break
        for entry in stash:
            heapq.heappush(heap, entry)
        return found

    def _pick_in_group(self, g: _Group, p: int) -> _Thread | None:
        heap, stash, found = g.waiting, [], None
        while heap:
            vr, sq, t = heapq.heappop(heap)
            if t.key != (vr, sq):
                continue
            if t.allowed is not None and p not in t.allowed:
                stash.append((vr, sq, t))
                continue
            found = t
            t.key = None
            g.n_waiting -= 1
            break
        for entry in stash:
            heapq.heappush(heap, entry)
        return found

    # -- physical CPUs ---------------------------------------------------------------
    def _pcpu(self, p: int) -> Iterator[simpy.Event]:
        env = self.env
        while env.now < self.end - 1e-9:        # (sums of slices carry rounding errors)
            t = self._pick(p)
            if t is None:
                self._set_pace(p, math.inf)
                event = env.event()
                self.idle[p] = event
                yield event | env.timeout(self.end - env.now)
                self.idle.pop(p, None)
                continue
            start = env.now
            t.wait_s += start - t.waiting_since
            t.waiting_since = None
            dt = max(0.0, min(self.slice, t.off_at - start, self.end - start))
            t.running = True
            t.slices += dt > 0                  # a late waiter only looks at the clock
            yield env.timeout(dt)
            t.running = False
            t.run_s += dt
            if dt > 0:
                self._record(p, t, start, env.now)
            if self.fair:
                g = t.group
                t.vruntime += dt
                g.vruntime += dt * DEFAULT_SHARES / g.weight
                if g.key is not None:          # its other threads wait: re-key the VM
                    self._queue_group(g)
            if t.runnable and env.now < t.off_at:
                self._enqueue(t, waking=False)
            elif self.fair:
                t.group.active -= 1

    def _record(self, p: int, t: _Thread, start: float, end: float) -> None:
        if self.timeline is None:
            return
        at = self.last_slice[p]
        last = self.timeline[at] if at is not None else None
        if last is not None and (last.vm, last.vcpu) == (t.vm, t.index) \
                and abs(last.end_s - start) < 1e-12:
            self.timeline[at] = Slice(p, t.vm, t.index, last.start_s, end)   # one longer run
            return
        self.last_slice[p] = len(self.timeline)
        self.timeline.append(Slice(p, t.vm, t.index, start, end))

    def _report_progress(self) -> Iterator[simpy.Event]:
        """One step of the bar each time 1 % of the simulated time has passed."""
        assert self.progress is not None
        for step in range(1, PROGRESS_STEPS + 1):
            yield self.env.timeout(self.end * step / PROGRESS_STEPS - self.env.now)
            self.progress.update(1)

    def run(self) -> list[VcpuStats]:
        self.env.run(until=self.end + self.slice)
        for t in self.threads:                  # still waiting when the run ends
            if t.waiting_since is not None:
                t.wait_s += max(0.0, self.end - t.waiting_since)
        return [VcpuStats(t.vm, t.index, run_s=t.run_s, wait_s=t.wait_s,
                          slices=t.slices, duration_s=self.end)
                for t in self.threads]              # built in scenario order


def simulate(scenario: CpuScenario | Mapping[str, Any], *, seed: int = 0,
             progress: ProgressArg = None, scheduler: str = "fair",
             record_timeline: bool = True) -> CpuResult:
    """Simulate a CPU scenario; return per-vCPU run and wait times.

    Parameters
    ----------
    scenario : CpuScenario or dict
        The scenario (its JSON form is accepted too).
    seed : int
        Seeds the model's own random generator (start order, duty-cycle phases).
        The same seed gives the same result.
    progress : None, bool or a tqdm-like bar
        See :mod:`kvmlab.progress`. The unit is percent of the simulated time: the bar
        goes to :data:`PROGRESS_STEPS` (100) in steps of one.
    scheduler : {'fair', 'round-robin'}
        ``fair`` shares CPUs between VMs by weight, then between their vCPUs, as
        Linux does with libvirt guests; ``round-robin`` is one flat queue.
    record_timeline : bool
        Keep who ran where and when (for Gantt charts).

    Returns
    -------
    CpuResult
        With ``source`` :data:`kvmlab.lab.SIMULATED`.

    Raises
    ------
    ScenarioError
        If the scenario breaks a rule or the scheduler is unknown.
    """
    scenario = as_scenario(scenario)
    if scheduler not in SCHEDULERS:
        raise ScenarioError(f"scheduler {scheduler!r} is not one of {SCHEDULERS}")
    desc = f"simulating {scenario.name or 'a CPU scenario'}"
    with progress_bar(progress, total=PROGRESS_STEPS, desc=desc, unit="%") as bar:
        reporting = progress is not None and progress is not False
        model = _HostModel(scenario, seed, scheduler, record_timeline,
                           bar if reporting else None)
        vcpus = model.run()
    return CpuResult(scenario=scenario, source=SIMULATED, vcpus=tuple(vcpus),
                     duration_s=scenario.duration_s,
                     provenance={"model": "kvmlab.cpu.model", "scheduler": scheduler,
                                 "seed": seed, "slice_ms": scenario.slice_ms},
                     timeline=tuple(model.timeline or ()))

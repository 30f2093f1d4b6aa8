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

The fair scheduler is the *ideal*: every pCPU picks from one common queue. Linux has
a run queue per CPU, and kernels 6.13 to 6.18.44 re-place a VM's group entity each
time one of its QEMU threads wakes or sleeps (:mod:`kvmlab.cpu.linux`). So on a real
host the ideal holds when the VMs that compete share one pCPU, and only roughly when
they do not: with three busy VMs on two pCPUs a real host starves one VM after
another for a second or so at a time, and unequal shares left unpinned make no
difference (the CPU notebook shows recordings of both).

With pinning, a thread queued while an idle pCPU may run it goes there at once, before
any busy pCPU picks: no pCPU idles while a thread it may run waits, and none takes a
thread that an idle one could run while a thread only it may run waits.

A vCPU's thread is *runnable* while its workload wants the CPU (always, for a
busy loop; during the busy part of each period, for a duty cycle). Time it is
runnable but not running is its wait time: the guest's *steal* time.

simpy keeps the time, and the order of what happens at the same instant. Each vCPU's
workload is a simpy process; each pCPU is a chain of simpy events, one per slice, except
that the pCPUs whose slices end at the same instant wake in *one* event, in the order
simpy would have woken them one by one (see :class:`_Env`). On a busy host that is every
pCPU at every slice: one simpy event per instant instead of one per decision, and the
same decisions.

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
from simpy.events import NORMAL, EventPriority

from kvmlab.cpu.result import CpuResult, Slice, VcpuStats
from kvmlab.cpu.scenario import DEFAULT_SHARES, CpuScenario, VmSpec, as_scenario
from kvmlab.errors import ScenarioError
from kvmlab.lab import SIMULATED
from kvmlab.progress import Progress, ProgressArg, progress_bar

__all__ = ["PROGRESS_STEPS", "SCHEDULERS", "simulate"]

SCHEDULERS = ("fair", "linux", "round-robin")
PROGRESS_STEPS = 100
"""A simulation reports its progress this many times (each time 1 % of the run)."""

_EPS = 1e-9          # sums of slices carry rounding errors: a pCPU stops this close to the end


class _Env(simpy.Environment):
    """simpy's environment, knowing which batches of pCPUs may still take members.

    ``open_batches`` maps an instant to the pCPUs (in the order they started their
    slices) that wake together in one event then. On their own, their events would
    have the same time and priority and stand next to each other in simpy's queue,
    so simpy would process them one after the other in that order, as the batch
    does, unless another event for that instant was scheduled in between. So
    scheduling any other event for that instant closes the batch: a pCPU whose slice
    ends then later starts a batch of its own, after that event.

    Examples
    --------
    >>> env = _Env()
    >>> env.open_batches[0.5] = [0, 1]
    >>> _ = env.timeout(0.5)            # another event at 0.5 closes that batch
    >>> env.open_batches
    {}
    """

    def __init__(self) -> None:
        super().__init__()
        self.open_batches: dict[float, list[int]] = {}

    def schedule(self, event: simpy.Event, priority: EventPriority = NORMAL,
                 delay: float = 0) -> None:
        if self.open_batches:
            self.open_batches.pop(self.now + delay, None)
        super().schedule(event, priority, delay)


class _Group:
    """A VM's cgroup: its weight, virtual runtime and queue of waiting threads.

    ``key`` is the sequence number of the group's live entry in the heap of VMs
    (None: not queued); entries with another number are stale and skipped.
    """

    __slots__ = ("active", "key", "n_waiting", "name", "vruntime", "waiting", "weight")

    def __init__(self, name: str, weight: int) -> None:
        self.name = name
        self.weight = weight
        self.vruntime = 0.0
        self.waiting: list[tuple[float, int, _Thread]] = []
        self.n_waiting = 0
        self.active = 0            # threads runnable (waiting or running)
        self.key: int | None = None


class _Thread:
    """A vCPU thread. ``key`` is not None while it waits in a queue (at most once)."""

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
        self.key: int | None = None
        self.run_s = 0.0
        self.wait_s = 0.0
        self.waiting_since: float | None = None
        self.slices = 0


class _HostModel:
    def __init__(self, scenario: CpuScenario, seed: int, scheduler: str,
                 record_timeline: bool, progress: Progress | None) -> None:
        pcpus = scenario.pcpus
        self.scenario = scenario
        self.rng = random.Random(seed)
        self.env = _Env()
        self.end = scenario.duration_s
        self.stop = self.end - _EPS             # a pCPU picks only before this
        self.slice = scenario.slice_ms / 1000
        self.fair = scheduler == "fair"
        self.seq = itertools.count()
        self.groups = {vm.name: _Group(vm.name, vm.shares) for vm in scenario.vms}
        self.group_heap: list[tuple[float, int, _Group]] = []
        self.rr_queue: deque[_Thread] = deque()
        self.idle: dict[int, simpy.Event] = {}      # idle pCPUs, waiting for work
        self.timeline: list[Slice] | None = [] if record_timeline else None
        self.last_slice: list[int | None] = [None] * pcpus   # index in timeline
        self.progress = progress
        self.threads: list[_Thread] = []
        # each pCPU's slice: the thread running, when it started and how long it runs
        self.running: list[_Thread | None] = [None] * pcpus
        self.started = [0.0] * pcpus
        self.length = [0.0] * pcpus
        # the pCPUs each VM may use (None: all of them)
        self._reach = {vm.name: None if vm.pin is None else
                       frozenset(p for cpus in vm.pin for p in cpus) for vm in scenario.vms}
        # each pCPU's pace: the virtual runtime of the VM it picked last (inf while idle);
        # the heap of paces is brought up to date (from the pCPUs changed) only when read
        self.pace = [math.inf] * pcpus
        self.pace_heap: list[tuple[float, int]] = []
        self.pace_changed: set[int] = set()
        order = []
        for vm in scenario.vms:
            for i in range(vm.vcpus):
                pinned = None if vm.pin is None else frozenset(vm.allowed(i, pcpus))
                t = _Thread(vm, i, self.groups[vm.name], pinned)
                self.threads.append(t)
                order.append((t, vm))
        self.pinned_to = [0] * pcpus            # how many pinned threads may use each pCPU
        for t in self.threads:
            for p in t.allowed or ():
                self.pinned_to[p] += 1
        self.pinned = any(self.pinned_to)
        self.rng.shuffle(order)                # who is first in line at time 0
        # The vCPUs of one VM start their cycles together (one script starts them all);
        # different VMs are out of phase by a random amount.
        phase = {vm.name: self.rng.uniform(0, sum(b + i for b, i in vm.segments_ms()) / 1000)
                 for vm in scenario.vms}
        for t, vm in order:
            self.env.process(self._workload(t, vm, phase[vm.name]))
        self.env.process(self._start_pcpus())
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
        """Wake an idle pCPU that ``t`` (just queued) may run on, if there is one.

        Without pinning, the pCPU idle longest, and simpy wakes it later at this instant.
        With pinning, the one that the fewest pinned threads may use, and it picks at once
        (``t``: nothing else it may run waits), before a busy pCPU picking at this instant
        takes ``t`` and leaves it idle while a thread that only the busy one may run waits.
        """
        idle = self.idle
        if not idle:
            return
        if not self.pinned:
            idle.pop(next(iter(idle))).succeed()
            return
        may = list(idle) if t.allowed is None else [c for c in sorted(t.allowed) if c in idle]
        if may and self.env.now < self.stop:   # its idle event is left to expire at the end
            p = min(may, key=self.pinned_to.__getitem__)
            del idle[p]
            self._decide(p, self.env.now)

    # -- run queues --------------------------------------------------------------------
    def _enqueue(self, t: _Thread, waking: bool) -> None:
        t.waiting_since = self.env.now
        if not self.fair:
            self.rr_queue.append(t)
            t.key = 0
            self._kick_idle(t)
            return
        g = t.group
        if waking:
            g.active += 1
            if g.active == 1:                  # a VM waking up joins the others' pace
                g.vruntime = max(g.vruntime, self._least_vruntime(g))
        sq = next(self.seq)
        t.key = sq
        heapq.heappush(g.waiting, (t.vruntime, sq, t))
        g.n_waiting += 1
        self._queue_group(g)
        self._kick_idle(t)

    def _least_vruntime(self, waking: _Group) -> float:
        """The slowest pace of the busy pCPUs ``waking`` may use: a VM that slept joins
        there, and may not claim the time it did not use."""
        reach, pace = self._reach[waking.name], self.pace
        if reach is not None:
            least = min(pace[p] for p in reach)
        else:
            heap = self.pace_heap
            if len(heap) > 2 * len(pace) + 16:  # mostly stale: start again
                heap[:] = [(v, p) for p, v in enumerate(pace) if v != math.inf]
                heapq.heapify(heap)
            else:
                for p in self.pace_changed:
                    if pace[p] != math.inf:
                        heapq.heappush(heap, (pace[p], p))
            self.pace_changed.clear()
            while heap and pace[heap[0][1]] != heap[0][0]:
                heapq.heappop(heap)             # stale
            least = heap[0][0] if heap else math.inf
        return waking.vruntime if least == math.inf else least

    def _set_pace(self, p: int, value: float) -> None:
        self.pace[p] = value
        self.pace_changed.add(p)

    def _queue_group(self, g: _Group) -> None:
        sq = next(self.seq)
        g.key = sq
        heapq.heappush(self.group_heap, (g.vruntime, sq, g))

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
            entry = heapq.heappop(heap)
            g = entry[2]
            if g.key != entry[1]:
                continue                        # stale entry
            t = self._pick_in_group(g, p)
            if t is None:
                stash.append(entry)             # nothing of this VM may run on p
                continue
            found = t
            if g.n_waiting:
                heapq.heappush(heap, entry)
            else:
                g.key = None
            self._set_pace(p, entry[0])
            break
        for entry in stash:
            heapq.heappush(heap, entry)
        return found

    def _pick_in_group(self, g: _Group, p: int) -> _Thread | None:
        heap, stash, found = g.waiting, [], None
        while heap:
            entry = heapq.heappop(heap)
            t = entry[2]
            if t.allowed is not None and p not in t.allowed:
                stash.append(entry)
                continue
            found = t
            t.key = None
            g.n_waiting -= 1
            break
        for entry in stash:
            heapq.heappush(heap, entry)
        return found

    # -- physical CPUs ---------------------------------------------------------------
    def _start_pcpus(self) -> Iterator[simpy.Event]:
        """Every pCPU picks its first thread once the workloads have started: in order, but
        those that fewer pinned threads may use first (they have fewer to choose from)."""
        for p in sorted(range(self.scenario.pcpus), key=self.pinned_to.__getitem__):
            self._decide(p, 0.0)
        yield from ()

    def _decide(self, p: int, now: float) -> None:
        """pCPU ``p`` picks a thread and runs it for a slice, or waits idle for work."""
        t = self._pick(p)
        if t is None:
            self._set_pace(p, math.inf)
            self.running[p] = None
            event = self.env.event()
            self.idle[p] = event
            (event | self.env.timeout(self.end - now)).callbacks.append(
                lambda _, p=p: self._idle_over(p))
            return
        self._start(p, t, now)

    def _start(self, p: int, t: _Thread, now: float) -> None:
        """Run ``t`` on ``p`` for a slice from ``now``: join the pCPUs that wake then."""
        t.wait_s += now - t.waiting_since
        t.waiting_since = None
        dt = self.slice                         # min(slice, off_at - now, end - now), >= 0
        if t.off_at - now < dt:
            dt = t.off_at - now
        if self.end - now < dt:
            dt = self.end - now
        if dt > 0.0:
            t.slices += 1
        else:                                   # a late waiter only looks at the clock
            dt = 0.0
        t.running = True
        self.running[p], self.started[p], self.length[p] = t, now, dt
        batches = self.env.open_batches
        members = batches.get(now + dt)
        if members is None:
            members = [p]
            simpy.Timeout(self.env, dt, members).callbacks.append(self._slices_end)
            batches[now + dt] = members
        else:
            members.append(p)

    def _idle_over(self, p: int) -> None:
        self.idle.pop(p, None)
        now = self.env.now
        if now < self.stop:
            self._decide(p, now)

    def _finish(self, p: int, t: _Thread, now: float) -> None:
        """The slice of ``t`` on ``p`` ends now: account it and queue ``t`` again."""
        dt = self.length[p]
        t.running = False
        t.run_s += dt
        if dt > 0 and self.timeline is not None:
            self._record(p, t, self.started[p], now)
        if self.fair:
            g = t.group
            t.vruntime += dt
            g.vruntime += dt * DEFAULT_SHARES / g.weight
            if g.key is not None:              # its other threads wait: re-key the VM
                self._queue_group(g)
        if t.runnable and now < t.off_at:
            self._enqueue(t, waking=False)
        elif self.fair:
            t.group.active -= 1

    def _slices_end(self, event: simpy.Event) -> None:
        """The slices of the pCPUs in ``event.value`` end now; each pCPU picks again."""
        members: list[int] = event.value
        now = self.env.now
        batches = self.env.open_batches
        if batches.get(now) is members:
            del batches[now]
        if not self.fair or self.pinned:
            for p in members:
                t = self.running[p]
                assert t is not None
                self._finish(p, t, now)
                if now < self.stop:
                    self._decide(p, now)
            return
        self._fair_slices_end(members, now)

    def _fair_slices_end(self, members: list[int], now: float) -> None:
        """:meth:`_finish` and :meth:`_decide` for the fair scheduler without pinning, in
        one loop (the model's hot path): no VM has a thread that may not run on a pCPU."""
        running, started, length, timeline = self.running, self.started, self.length, \
            self.timeline
        pace, changed = self.pace, self.pace_changed
        heap, heappush, heappop = self.group_heap, heapq.heappush, heapq.heappop
        seq, idle, stop = self.seq, self.idle, self.stop
        for p in members:
            t = running[p]
            assert t is not None
            dt = length[p]
            t.running = False
            t.run_s += dt
            if dt > 0 and timeline is not None:
                self._record(p, t, started[p], now)
            g = t.group
            t.vruntime += dt
            g.vruntime += dt * DEFAULT_SHARES / g.weight
            if t.runnable and now < t.off_at:
                # _enqueue(t), which re-keys the VM; the re-key _finish makes before it
                # would be stale at once (sequence numbers only order the entries)
                t.waiting_since = now
                sq = next(seq)
                t.key = sq
                heappush(g.waiting, (t.vruntime, sq, t))
                g.n_waiting += 1
                sq = next(seq)
                g.key = sq
                heappush(heap, (g.vruntime, sq, g))
                if idle:
                    self._kick_idle(t)
            else:
                if g.key is not None:
                    self._queue_group(g)
                g.active -= 1
            if now >= stop:
                continue
            # _pick_fair(p): the first live VM's first thread (a queued VM has one)
            while heap:
                vr, sq, g = heap[0]
                if g.key != sq:
                    heappop(heap)               # stale entry
                    continue
                t = heappop(g.waiting)[2]
                t.key = None
                g.n_waiting -= 1
                if not g.n_waiting:
                    heappop(heap)
                    g.key = None
                pace[p] = vr
                changed.add(p)
                break
            else:
                self._decide(p, now)            # nothing waits: idle
                continue
            self._start(p, t, now)

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
    scheduler : {'fair', 'linux', 'round-robin'}
        ``fair`` shares CPUs between VMs by weight, then between their vCPUs: the
        ideal that libvirt's cgroups promise. ``linux`` is what a real Linux host does
        (per-CPU run queues, libvirt's nested groups, QEMU's threads waking; see
        :mod:`kvmlab.cpu.linux`). ``round-robin`` is one flat queue. ``linux`` agrees with
        more recorded sets (13 of 15 against 11; the CLI's default) but costs 4 to 8 times
        as much (compiled; 50 from source): ``fair`` stays the default, for the sliders.
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
        raise ScenarioError(f"scheduler {scheduler!r} is not one of {', '.join(SCHEDULERS)}")
    if scheduler == "linux":
        from kvmlab.cpu.linux import simulate_linux
        return simulate_linux(scenario, seed=seed, progress=progress,
                              record_timeline=record_timeline)
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

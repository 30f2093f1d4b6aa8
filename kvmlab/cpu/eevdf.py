"""The rules of Linux's fair scheduler (EEVDF, since 6.6) on one run queue, in plain Python.

This is the arithmetic the ``linux`` CPU model (:mod:`kvmlab.cpu.linux`) runs on; it
has no clock of its own and knows nothing of simpy. Names follow the kernel's
``kernel/sched/fair.c`` so that a reader can put the two side by side.

Every physical CPU has one *run queue* per control group (cgroup) that has runnable
threads on that CPU. A queue holds *entities*: threads, or, for a child group, the
group's own entity on that CPU, which stands for everything queued below it. So a
libvirt guest is three levels deep: the root queue holds one entity per VM; a VM's
queue holds its ``vcpuN`` and ``emulator`` groups; each of those holds its thread(s).

On each queue EEVDF keeps, per entity:

``vruntime``
    run time divided by weight (``delta * 1024 / weight``): the service received.
``lag``
    ``V - vruntime``, where ``V`` is the weighted average vruntime of the queue
    (:func:`avg_vruntime`): what the entity is owed. An entity with lag >= 0 is
    *eligible*.
``deadline``
    ``vruntime + slice * 1024 / weight``: among eligible entities, the earliest
    deadline runs (:func:`pick_eevdf`).

A group entity's *weight* on a CPU is the group's ``cpu.shares`` spread over the
CPUs in proportion to its load there (:func:`group_shares`). The load is a
running average (PELT, half-life 32 ms) of the weight queued there, but never less
than the weight queued right now, so that weight changes each time one of the
group's threads wakes or sleeps on that CPU. The group entity is then *reweighted*
(:func:`reweight`), and this is where kernels differ:

``reweight_places=True`` (Linux 6.13 to 6.18.44)
    ``reweight_entity()`` calls ``place_entity()``, which scales the entity's lag
    up by ``(W + w) / W`` as if the entity were joining the queue. For the
    *running* entity that is wrong, because ``W`` already counts it: every reweight
    of the running entity moves it further back in virtual time, keeping it eligible
    with an early deadline, and the other entities on that queue wait (upstream
    commit 6d71a9c61604, reverted by 101f3498b4bd; the revert is in 6.18.45).
``reweight_places=False`` (before 6.13, and 6.18.45 on)
    The lag is kept (scaled by old weight / new weight), so a reweight neither helps
    nor hurts the entity.

Examples
--------
Two threads on one queue, one of them running for 3 ms:

>>> rq = RunQueue(None, 0)
>>> a, b = Entity("a"), Entity("b")
>>> for e in (a, b):
...     enqueue(rq, e, Kernel())
>>> set_curr(rq, a, now=0.0)
>>> _ = update_curr(rq, now=0.003, kernel=Kernel())
>>> round(a.vruntime, 6), round(avg_vruntime(rq), 6)
(0.003, 0.0015)
>>> pick_eevdf(rq, Kernel()) is b      # a has used its slice: b is owed time
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from math import exp as _exp

__all__ = ["NICE_0_LOAD", "Entity", "Group", "Kernel", "RunQueue", "avg_vruntime",
           "clear_buddies", "dequeue", "eligible", "enqueue", "group_shares", "pelt", "pelt_at",
           "pick_eevdf", "reweight", "set_curr", "set_next_buddy", "update_curr",
           "update_tg_load"]

NICE_0_LOAD = 1024
"""The weight of a nice-0 thread, and the default ``cpu.shares`` of a cgroup."""
MIN_SHARES = 2
"""The smallest weight a group entity gets on a CPU (``MIN_SHARES`` in the kernel)."""


@dataclass(frozen=True)
class Kernel:
    """The scheduler settings and behaviour the model follows.

    The defaults are those of the host the CPU lab's recordings were made on:
    Linux 6.18.44, ``HZ=250``, two CPUs (so a base slice of 0.7 ms x (1 + log2 2)).

    Attributes
    ----------
    hz : int
        Timer ticks per second.
    base_slice_ms : float
        ``sysctl_sched_base_slice``: the time an entity may run before its deadline.
    reweight_places : bool
        Whether reweighting an entity re-places it (see the module docstring).
    run_to_parity : bool
        ``RUN_TO_PARITY``: the running entity keeps the CPU until its deadline.
    place_lag : bool
        ``PLACE_LAG``: a waking entity keeps the lag it had when it slept.
    pelt_halflife_ms : float
        Half-life of the load averages.
    balance_ms : float
        Interval of periodic load balancing per CPU on a busy two-CPU host
        (``min_interval`` of 2 ms x ``busy_factor`` 16); larger hosts scale it.
    imbalance_pct : int
        Load on the busiest CPU must exceed the local one's by this percentage
        before load balancing moves a thread.
    migration_cost_ms : float
        ``sysctl_sched_migration_cost``: a thread that ran less than this long ago is
        *cache-hot*, and balancing leaves it where it is ...
    cache_nice_tries : int
        ... unless more than this many balances in a row failed.
    pelt_period_us : float
        Load averages move only when a period of this length ends (0: continuously).
    tg_update_ms : float
        A queue passes a change of its load average on to its group's total at most
        this often, and only a change of over 1/64 (``update_tg_load_avg()``; 0: always).
    load_follows : bool
        A moving thread takes its load along, and load a group left on a CPU decays out
        of its total, as in the kernel (:mod:`kvmlab.cpu.linux_load`). Off, a group
        keeps in its total the load it left behind, and its weight on the CPU it uses
        stays below its shares.
    delay_dequeue : bool
        ``DELAY_DEQUEUE`` (on in the kernel since 6.12, so on the recordings' host): a
        group entity that sleeps while owed no time stays queued until it would be picked
        (:mod:`kvmlab.cpu.linux_delay`; modelled in libvirt's nested layout only).
    pick_buddy : bool
        ``PICK_BUDDY`` (on in ``features.h`` of 6.12 and 7.2): a queue's *next buddy* runs
        next if it is eligible. When a thread sleeps and its group keeps other entities
        queued on that CPU, the group becomes the buddy on every level up
        (``set_next_buddy()`` in ``dequeue_entities()``), so the VM whose main loop just
        slept keeps the CPU (:func:`set_next_buddy`).
    """

    hz: int = 250
    base_slice_ms: float = 1.4
    reweight_places: bool = True
    run_to_parity: bool = True
    place_lag: bool = True
    pelt_halflife_ms: float = 32.0
    balance_ms: float = 32.0
    imbalance_pct: int = 117
    migration_cost_ms: float = 0.5
    cache_nice_tries: int = 1
    pelt_period_us: float = 1024.0
    tg_update_ms: float = 1.0
    load_follows: bool = True
    delay_dequeue: bool = True
    pick_buddy: bool = True

    # derived from the settings once, as the model reads them at every step
    tick_s: float = field(init=False, repr=False, compare=False)
    slice_s: float = field(init=False, repr=False, compare=False)
    migration_cost_s: float = field(init=False, repr=False, compare=False)
    pelt_period_s: float = field(init=False, repr=False, compare=False)
    tg_update_s: float = field(init=False, repr=False, compare=False)
    pelt_tau_s: float = field(init=False, repr=False, compare=False)
    vslice_load: float = field(init=False, repr=False, compare=False)
    """The slice in virtual time of a weight-1 entity (divide by the weight)."""
    lag_limit_load: float = field(init=False, repr=False, compare=False)
    """The largest lag of a weight-1 entity (divide by the weight)."""

    def __post_init__(self) -> None:
        tick_s = 1.0 / self.hz
        slice_s = self.base_slice_ms / 1000
        derived = (("tick_s", tick_s), ("slice_s", slice_s),
                   ("migration_cost_s", self.migration_cost_ms / 1000),
                   ("pelt_period_s", self.pelt_period_us / 1e6),
                   ("tg_update_s", self.tg_update_ms / 1000),
                   ("pelt_tau_s", self.pelt_halflife_ms / 1000 / math.log(2)),
                   ("vslice_load", slice_s * NICE_0_LOAD),
                   ("lag_limit_load", max(2 * slice_s, tick_s) * NICE_0_LOAD))
        for name, value in derived:
            object.__setattr__(self, name, value)        # the way a frozen dataclass can

    def settings(self) -> dict[str, object]:
        """The settings the kernel was made with (not what is derived from them).

        >>> Kernel(hz=100).settings()["hz"], "tick_s" in Kernel().settings()
        (100, False)
        """
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init}


class Averaged:
    """Something with a load average (see :func:`pelt`): an entity's is the PELT of its
    weight while queued, a queue's that of the weight queued on it."""

    __slots__ = ("load_avg", "load_run", "load_t")

    def __init__(self) -> None:
        self.load_avg = 0.0
        self.load_run = 0.0
        self.load_t = 0.0


class Entity(Averaged):
    """A schedulable entity: a thread, or a group's stand-in on one CPU."""

    __slots__ = ("deadline", "delayed", "exec_start", "my_rq",
                 "name", "on_rq", "rq", "vlag", "vprot", "vruntime", "weight")

    def __init__(self, name: str, weight: int = NICE_0_LOAD,
                 my_rq: RunQueue | None = None) -> None:
        super().__init__()
        self.name = name
        self.weight = weight
        self.vruntime = 0.0
        self.deadline = 0.0
        self.vprot = 0.0           # protected until vruntime reaches this (RUN_TO_PARITY)
        self.vlag = 0.0            # lag kept while not queued
        self.delayed = False       # sched_delayed: queued, but only until picked (DELAY_DEQUEUE)
        self.on_rq = False
        self.rq: RunQueue | None = None
        self.my_rq = my_rq         # the group's queue this entity stands for (None: a thread)
        self.exec_start = 0.0

    def __repr__(self) -> str:
        return f"Entity({self.name!r}, w={self.weight})"


class Group:
    """A control group: its ``cpu.shares`` and its run queue and entity on each CPU."""

    __slots__ = ("load_sum", "name", "parent", "rqs", "shares")

    def __init__(self, name: str, shares: int = NICE_0_LOAD,
                 parent: Group | None = None) -> None:
        self.name = name
        self.shares = shares
        self.parent = parent
        self.rqs: dict[int, RunQueue] = {}
        self.load_sum = 0.0        # tg->load_avg: the sum of the queues' contributions

    def rq(self, cpu: int) -> RunQueue:
        """The group's run queue on ``cpu`` (made on first use)."""
        rq = self.rqs.get(cpu)
        if rq is None:
            rq = self.rqs[cpu] = RunQueue(self, cpu)
            if self.parent is not None:
                rq.se = Entity(f"{self.name}@{cpu}", self.shares, my_rq=rq)
        return rq


class RunQueue(Averaged):
    """One group's queue on one CPU (a ``cfs_rq``)."""

    __slots__ = ("avg_load", "avg_sum", "contrib", "contrib_t", "cpu", "curr", "entities",
                 "group", "h_load", "next", "parent", "se",
                 "weight_sum", "zero_v")

    def __init__(self, group: Group | None, cpu: int) -> None:
        super().__init__()
        self.group = group
        self.cpu = cpu
        self.entities: dict[Entity, None] = {}   # queued entities, running one included
        # avg_vruntime() kept up to date as the kernel keeps it: the sum of the queued
        # entities' weights, and of weight * (vruntime - zero_v)
        self.avg_load = 0
        self.avg_sum = 0.0
        self.curr: Entity | None = None
        self.next: Entity | None = None          # the next buddy (PICK_BUDDY)
        self.weight_sum = 0                      # load.weight
        self.contrib = 0.0                       # what this queue adds to its group's load_sum
        self.contrib_t = -math.inf               # when it last changed
        self.h_load = 0.0
        self.se: Entity | None = None            # the group's entity in the parent queue
        self.zero_v = 0.0                        # V when the queue was last non-empty
        # the queue this queue's group entity sits in (None for a root queue)
        self.parent: RunQueue | None = None
        if group is not None and group.parent is not None:
            self.parent = group.parent.rq(cpu)


def pelt(obj: Averaged, now: float, target: float, tau: float,
         period: float = 0.0) -> None:
    """Bring the load average of ``obj`` up to ``now``, the load having been ``target``
    since the last call.

    The average runs on continuously (``load_run``); ``load_avg``, what the scheduler
    reads, follows it at the end of each ``period`` (seconds; the kernel's PELT uses
    1,024 us), so a group's weight changes at most once per period from its average.

    >>> rq = RunQueue(None, 0)
    >>> pelt(rq, 0.032, 1024, Kernel().pelt_tau_s)   # one half-life at full load
    >>> round(rq.load_avg)
    512
    >>> pelt(rq, 0.0325, 1024, Kernel().pelt_tau_s, period=0.001)
    >>> round(rq.load_avg), round(rq.load_run)       # no period ended since 32 ms
    (512, 518)
    """
    start = obj.load_t
    if now <= start:
        return
    before = obj.load_run
    obj.load_run = run = target + (before - target) * _exp((start - now) / tau)
    obj.load_t = now
    if not period:
        obj.load_avg = run
        return
    edge = (now // period) * period
    if edge > start:
        obj.load_avg = target + (before - target) * _exp((start - edge) / tau)


class _Load(Averaged):
    """A copy of an object's load average, for :func:`pelt_at`."""

    __slots__ = ()

    def __init__(self, obj: Averaged) -> None:
        super().__init__()
        self.load_avg, self.load_run, self.load_t = obj.load_avg, obj.load_run, obj.load_t


def pelt_at(obj: Entity | RunQueue, now: float, target: float, tau: float,
            period: float = 0.0) -> tuple[float, float]:
    """``(load_run, load_avg)`` that :func:`pelt` would give ``obj`` at ``now``; ``obj``
    itself is left as it is (a reading that must not change the run)."""
    copy = _Load(obj)
    pelt(copy, now, target, tau, period)
    return copy.load_run, copy.load_avg


def avg_vruntime(rq: RunQueue) -> float:
    """``V``: the weighted mean vruntime of the queued entities (the running one included).

    Kept as two running sums (``rq.avg_load`` and ``rq.avg_sum``), as the kernel
    keeps them, so that it costs the same however many entities are queued.
    """
    if not rq.avg_load:
        return rq.zero_v
    return rq.zero_v + rq.avg_sum / rq.avg_load


def _join(rq: RunQueue, se: Entity) -> None:
    """``se``, with its weight and vruntime as they are now, counts in ``V``."""
    rq.entities[se] = None
    rq.avg_load += se.weight
    rq.avg_sum += se.weight * (se.vruntime - rq.zero_v)


def _leave(rq: RunQueue, se: Entity) -> None:
    """``se`` no longer counts in ``V``."""
    del rq.entities[se]
    rq.avg_load -= se.weight
    if rq.entities:
        rq.avg_sum -= se.weight * (se.vruntime - rq.zero_v)
    else:
        rq.avg_load, rq.avg_sum = 0, 0.0


def eligible(rq: RunQueue, se: Entity, v_avg: float | None = None) -> bool:
    """Whether ``se`` is owed time (lag >= 0) on ``rq``."""
    if v_avg is None:
        v_avg = avg_vruntime(rq)
    return se.vruntime <= v_avg + 1e-15


def _vslice(se: Entity, kernel: Kernel) -> float:
    return kernel.vslice_load / se.weight


def update_curr(rq: RunQueue, now: float, kernel: Kernel) -> bool:
    """Charge the running entity for the time since it last was; True if its slice ended."""
    curr = rq.curr
    if curr is None:
        return False
    delta = now - curr.exec_start
    if delta <= 0:
        return False
    curr.exec_start = now
    step = delta * NICE_0_LOAD / curr.weight
    if curr.on_rq and curr.rq is rq:
        rq.avg_sum += curr.weight * step
    curr.vruntime += step
    if curr.vruntime >= curr.deadline:
        curr.deadline = curr.vruntime + _vslice(curr, kernel)
        if len(rq.entities) > 1:
            clear_buddies(rq, curr)        # its slice is over: no longer anyone's favourite
        return True
    return False


def protected(se: Entity) -> bool:
    """``protect_slice()``: the running entity has not yet used up the slice it was picked for."""
    return se.vruntime < se.vprot


def set_next_buddy(se: Entity) -> None:
    """``set_next_buddy()``: ``se``, and every group entity above it, becomes its queue's
    next buddy, picked next while eligible (``Kernel.pick_buddy``).

    >>> root = Group("/")
    >>> vm = Group("vm", parent=root)
    >>> rq, vm_se = vm.rq(0), vm.rq(0).se
    >>> enqueue(root.rq(0), vm_se, Kernel())
    >>> set_next_buddy(vm_se)
    >>> root.rq(0).next is vm_se
    True
    >>> clear_buddies(root.rq(0), vm_se)
    >>> root.rq(0).next is None
    True
    """
    e: Entity | None = se
    while e is not None and e.on_rq and e.rq is not None:
        e.rq.next = e
        e = e.rq.se


def clear_buddies(rq: RunQueue, se: Entity) -> None:
    """``clear_buddies()``: if ``se`` is ``rq``'s next buddy, it is no longer, nor are the
    group entities above it that are buddies for its sake."""
    if rq.next is not se:
        return
    e: Entity | None = se
    while e is not None and e.rq is not None and e.rq.next is e:
        e.rq.next = None
        e = e.rq.se


def set_curr(rq: RunQueue, se: Entity, now: float) -> None:
    """``set_next_entity()``: ``se`` starts running on its queue."""
    clear_buddies(rq, se)
    rq.curr = se
    se.exec_start = now
    se.vprot = se.deadline


def _vruntime(se: Entity) -> float:
    return se.vruntime


def pick_eevdf(rq: RunQueue, kernel: Kernel) -> Entity | None:
    """The entity EEVDF runs next: the eligible one with the earliest deadline.

    The running entity keeps the CPU while it is eligible and (with ``RUN_TO_PARITY``)
    has not reached the deadline it was picked with.
    """
    entities = rq.entities
    if not entities:
        return None
    limit = avg_vruntime(rq) + 1e-15              # eligible: vruntime at most V
    running = curr = rq.curr
    if curr is not None and (not curr.on_rq or curr.vruntime > limit):
        curr = None
    if curr is not None and kernel.run_to_parity and curr.vruntime < curr.vprot:
        return curr                                # protected()
    best = None
    for e in entities:
        if e is running or e.vruntime > limit:
            continue
        if best is None or e.deadline < best.deadline:
            best = e
    if best is None or (curr is not None and curr.deadline < best.deadline):
        best = curr
    if best is None:                       # rounding: take the least vruntime
        best = min(rq.entities, key=_vruntime)
    return best


def _place(rq: RunQueue, se: Entity, kernel: Kernel, *, initial: bool = False,
           rel_deadline: float | None = None) -> None:
    """``place_entity()``: put ``se`` at ``V - lag``, the lag scaled as for a joining entity.

    ``se`` must not be counted in ``rq.entities`` unless it is the running entity
    being reweighted, the case the scaling gets wrong (see the module docstring).
    """
    v_avg = avg_vruntime(rq)
    lag = 0.0
    if kernel.place_lag and rq.entities and se.vlag:
        load = rq.avg_load                          # the tree plus the running entity
        lag = se.vlag * (load + se.weight) / load
    if se in rq.entities:                           # the running entity, reweighted
        rq.avg_sum += se.weight * (v_avg - lag - se.vruntime)
    se.vruntime = v_avg - lag
    if rel_deadline is not None:
        se.deadline = se.vruntime + rel_deadline
    else:
        vslice = _vslice(se, kernel)
        se.deadline = se.vruntime + (vslice / 2 if initial else vslice)


def _update_lag(rq: RunQueue, se: Entity, kernel: Kernel) -> None:
    limit = kernel.lag_limit_load / se.weight
    lag = avg_vruntime(rq) - se.vruntime
    se.vlag = limit if lag > limit else (-limit if lag < -limit else lag)


def _add(rq: RunQueue, se: Entity, now: float, tau: float, period: float) -> None:
    pelt(rq, now, rq.weight_sum, tau, period)
    pelt(se, now, 0.0, tau, period)
    _join(rq, se)
    rq.weight_sum += se.weight
    se.on_rq = True
    se.rq = rq


def _remove(rq: RunQueue, se: Entity, now: float, tau: float, period: float) -> None:
    pelt(rq, now, rq.weight_sum, tau, period)
    pelt(se, now, se.weight, tau, period)
    _leave(rq, se)
    rq.weight_sum -= se.weight
    se.on_rq = False
    if rq.curr is se:
        rq.curr = None
    if not rq.entities:
        rq.zero_v = se.vruntime


def enqueue(rq: RunQueue, se: Entity, kernel: Kernel, now: float = 0.0, *,
            initial: bool = False) -> None:
    """``enqueue_entity()``: ``se`` joins ``rq``, placed by the lag it left with."""
    _place(rq, se, kernel, initial=initial)
    _add(rq, se, now, kernel.pelt_tau_s, kernel.pelt_period_s)


def dequeue(rq: RunQueue, se: Entity, kernel: Kernel, now: float = 0.0) -> None:
    """``dequeue_entity()``: ``se`` leaves ``rq`` and keeps its (clamped) lag."""
    clear_buddies(rq, se)
    _update_lag(rq, se, kernel)
    _remove(rq, se, now, kernel.pelt_tau_s, kernel.pelt_period_s)


def reweight(rq: RunQueue, se: Entity, weight: int, kernel: Kernel, now: float) -> None:
    """``reweight_entity()``: give queued entity ``se`` a new weight.

    With ``kernel.reweight_places`` the entity is re-placed as the kernels from 6.13
    to 6.18.44 do; otherwise its lag and relative deadline are rescaled by the
    weight ratio and ``V`` stays where it was.
    """
    old = se.weight
    if old == weight:
        return
    tau, period = kernel.pelt_tau_s, kernel.pelt_period_s
    pelt(rq, now, rq.weight_sum, tau, period)
    pelt(se, now, old, tau, period)
    if kernel.reweight_places:
        _update_lag(rq, se, kernel)
        rel_deadline = (se.deadline - se.vruntime) * old / weight
        se.vlag = se.vlag * old / weight
        curr = rq.curr is se
        if curr:                             # it stays counted in V, with its new weight
            rq.avg_load += weight - old
            rq.avg_sum += (weight - old) * (se.vruntime - rq.zero_v)
        else:
            _leave(rq, se)
        rq.weight_sum += weight - old
        se.weight = weight
        _place(rq, se, kernel, rel_deadline=rel_deadline)
        if not curr:
            _join(rq, se)
        return
    v_avg = avg_vruntime(rq)                 # kept: w' * (V - v') == w * (V - v)
    rel_deadline = (se.deadline - se.vruntime) * old / weight
    rq.avg_sum -= old * (se.vruntime - rq.zero_v)
    se.vruntime = v_avg - (v_avg - se.vruntime) * old / weight
    se.deadline = se.vruntime + rel_deadline
    rq.weight_sum += weight - old
    se.weight = weight
    rq.avg_load += weight - old
    rq.avg_sum += weight * (se.vruntime - rq.zero_v)


def update_tg_load(rq: RunQueue, now: float, kernel: Kernel) -> None:
    """``update_tg_load_avg()``: bring ``rq``'s load average up to ``now`` and pass a
    large enough change of it on to its group's total (``tg->load_avg``), at most once
    per ``kernel.tg_update_ms``.

    What is passed on is a whole number, as the kernel's load averages are: load that
    decays where nothing runs reaches 0 and leaves the total, where a real number
    would leave a trace in it for ever."""
    group = rq.group
    assert group is not None
    pelt(rq, now, rq.weight_sum, kernel.pelt_tau_s, kernel.pelt_period_s)
    change = math.floor(rq.load_avg) - rq.contrib
    if now - rq.contrib_t >= kernel.tg_update_s and (
            not kernel.tg_update_s or abs(change) > rq.contrib / 64):
        group.load_sum += change
        rq.contrib += change
        rq.contrib_t = now


def group_shares(rq: RunQueue, now: float, kernel: Kernel) -> int:
    """``calc_group_shares()``: the weight of ``rq``'s group entity on ``rq``'s CPU.

    The group's ``shares`` times this CPU's part of the group's load, where this
    CPU's load is the larger of its average and what is queued right now.

    >>> g = Group("vm", 1024, parent=Group("root"))
    >>> group_shares(g.rq(0), 0.0, Kernel())       # nothing queued anywhere
    1024
    """
    group = rq.group
    assert group is not None
    update_tg_load(rq, now, kernel)
    load = rq.weight_sum
    average = int(rq.load_avg)
    if average > load:
        load = average
    total = group.load_sum - rq.contrib + load
    if total <= 0:
        return group.shares
    shares = int(group.shares * load / total)
    return MIN_SHARES if shares < MIN_SHARES else min(group.shares, shares)

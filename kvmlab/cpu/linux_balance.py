"""Load balancing in the ``linux`` CPU model: where the kernel moves threads between pCPUs.

:class:`LoadBalancing` is the part of the ``linux`` model's host
(``kvmlab.cpu.linux._LinuxHost``) that compares the pCPUs' loads as the kernel's fair
scheduler does: a thread's load as its pCPU's root queue sees it (``task_h_load()``),
``wake_affine()`` at a wake-up, an idle pCPU pulling a waiting thread, and the periodic
balance that pulls load from the busiest pCPU when it is over 17 % above the local one,
leaving a *cache-hot* thread where it is.

Examples
--------
>>> from kvmlab.cpu.linux import simulate_linux
>>> s = {"pcpus": 2, "duration_s": 1, "vms": [{"name": "a", "vcpus": 3}]}
>>> moves = simulate_linux(s, seed=0).provenance["moves_per_s"]["vcpu"]
>>> moves["balancing"] > 0                       # three busy vCPUs on two pCPUs
True
"""

from __future__ import annotations

import random
from collections.abc import Generator
from typing import Any

import simpy
from mypy_extensions import mypyc_attr, trait

from kvmlab.cpu.eevdf import Entity, Group, Kernel, RunQueue, pelt
from kvmlab.cpu.linux_load import update_blocked
from kvmlab.cpu.linux_qemu import Thread

__all__ = ["Cpu", "LoadBalancing"]


class Cpu:
    """One pCPU of the ``linux`` model: the thread it runs and the threads queued on it."""

    __slots__ = ("failed", "index", "listed_idle", "queued", "thread")

    def __init__(self, index: int) -> None:
        self.index = index
        self.listed_idle = True                     # in the host's list of idle CPUs
        self.failed = 0                             # nr_balance_failed
        self.thread: Thread | None = None
        self.queued: dict[Thread, None] = {}      # runnable threads here, running one included


@trait        # a mixin: mypyc compiles a class with two bases only if one is a trait
@mypyc_attr(allow_interpreted_subclasses=True)
class LoadBalancing:
    """Load balancing between the pCPUs of a host that can charge, dequeue, enqueue and
    schedule threads (:class:`kvmlab.cpu.linux._LinuxHost`)."""

    env: simpy.Environment
    rng: random.Random
    kernel: Kernel
    root: Group
    cpus: list[Cpu]
    threads: list[Thread]
    balanced: dict[str, int]                       # moves in the window by balancing
    start: float
    end: float

    def _levels(self, t: Thread, cpu: int) -> list[tuple[RunQueue, Entity]]:
        raise NotImplementedError

    def _charge(self, cpu: Cpu, now: float) -> bool:
        raise NotImplementedError

    def _enqueue_thread(self, t: Thread, cpu: Cpu, now: float) -> None:
        raise NotImplementedError

    def _dequeue_thread(self, t: Thread, cpu: Cpu, now: float, sleeps: bool = False) -> None:
        raise NotImplementedError

    def _schedule(self, cpu: Cpu, now: float, slept: Thread | None = None) -> None:
        raise NotImplementedError

    def _wake_affine(self, t: Thread, this: int, prev: int, now: float) -> int:
        """``wake_affine()``: the waker's CPU ``this`` if ``prev`` is busy and ``this``,
        with the thread's load added, stays below ``prev`` without it (by half the
        imbalance margin)."""
        if self.cpus[prev].thread is None:
            return prev
        task = self._h_load(t, now)
        this_load = self._cpu_load(self.cpus[this], now) + task
        prev_load = self._cpu_load(self.cpus[prev], now) - task
        margin = 100 + (self.kernel.imbalance_pct - 100) // 2
        return this if this_load * 100 < prev_load * margin else prev

    def _cpu_load(self, cpu: Cpu, now: float) -> float:
        rq = self.root.rq(cpu.index)
        pelt(rq, now, rq.weight_sum, self.kernel.pelt_tau_s, self.kernel.pelt_period_s)
        return rq.load_avg

    def _h_load(self, t: Thread, now: float) -> float:
        """``task_h_load()``: the thread's load as its CPU's root queue sees it."""
        tau, period = self.kernel.pelt_tau_s, self.kernel.pelt_period_s
        h = -1.0
        for rq, se in reversed(self._levels(t, t.cpu)):      # from the root down
            pelt(rq, now, rq.weight_sum, tau, period)
            pelt(se, now, se.weight if se.on_rq else 0.0, tau, period)
            if h < 0:
                h = rq.load_avg
            h = h * se.load_avg / (rq.load_avg + 1)
        return h

    def _movable(self, src: Cpu, dst: Cpu, now: float) -> list[Thread]:
        """``can_migrate_task()``: the waiting threads allowed on ``dst``, least recently
        run first; a *cache-hot* one (it ran less than ``migration_cost`` ago) only
        after more than ``cache_nice_tries`` balances of ``dst`` failed in a row."""
        hot_ok = dst.failed > self.kernel.cache_nice_tries
        cost = self.kernel.migration_cost_s
        ts = [t for t in src.queued if t is not src.thread
              and (t.everywhere or dst.index in t.allowed)
              and (hot_ok or now - t.last_ran >= cost)]
        ts.sort(key=lambda t: t.last_ran)
        return ts

    def _migrate(self, t: Thread, src: Cpu, dst: Cpu, now: float) -> None:
        self.balanced[t.kind] += self.start <= now < self.end
        self._charge(src, now)
        self._dequeue_thread(t, src, now)
        self._charge(dst, now)
        self._enqueue_thread(t, dst, now)

    def _pull(self, cpu: Cpu, now: float) -> bool:
        """Idle balance: an idle CPU takes a waiting thread from the busiest CPU."""
        best = None
        most = 1                                    # the longest queue with a movable thread
        for src in self.cpus:                       # (the first one of that length)
            if src is cpu or len(src.queued) <= most:
                continue
            movable = self._movable(src, cpu, now)
            if movable:
                best, most = (src, movable[0]), len(src.queued)
        if best is None:
            return False
        src, t = best
        self._migrate(t, src, cpu, now)
        self._schedule(cpu, now)
        return True

    def _balance(self, cpu: Cpu, now: float) -> None:
        """Periodic balance: pull load from the busiest CPU if it is out of balance.

        A thread moves if its load, halved for each balance that failed in a row
        (``nr_balance_failed``), is at most the imbalance.
        """
        if self.kernel.load_follows:
            update_blocked([t.levels.get(cpu.index, ()) for t in self.threads], now, self.kernel)
        local = self._cpu_load(cpu, now)
        busiest, most = None, local
        for other in self.cpus:
            if other is not cpu:
                load = self._cpu_load(other, now)
                if load > most:
                    busiest, most = other, load
        if busiest is None or most * 100 <= self.kernel.imbalance_pct * local:
            return
        imbalance = (most - local) / 2
        moved = False
        for t in self._movable(busiest, cpu, now):
            load = self._h_load(t, now)
            if load / 2 ** cpu.failed > imbalance:   # a thread too big (less so each failure)
                continue
            self._migrate(t, busiest, cpu, now)
            moved = True
            imbalance -= load
            if imbalance <= 0:
                break
        cpu.failed = 0 if moved else cpu.failed + 1
        if moved and (cpu.thread is None or self._charge(cpu, now)):
            self._schedule(cpu, now)

    def _balancing(self, cpu: Cpu) -> Generator[simpy.Event, Any, None]:
        every = self.kernel.balance_ms / 1000 * max(1, len(self.cpus) / 2)
        yield self.env.timeout(self.rng.uniform(0, every))
        while True:
            self._balance(cpu, self.env.now)
            yield self.env.timeout(every)

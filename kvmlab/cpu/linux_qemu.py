"""QEMU's threads in the ``linux`` CPU model: what they are, and when they sleep and wake.

A QEMU process has one thread per vCPU and a main-loop thread (the ``emulator``
threads in libvirt's cgroups). Under TCG, measured on the lab's recording host, a busy
vCPU thread runs nearly all the time and sleeps now and then, briefly, on QEMU's big
lock; the main loop wakes hundreds of times a second and runs for some microseconds
each time (:class:`QemuThreads` holds those rates). :class:`QemuWorkload` is the part of
the ``linux`` model's host (``kvmlab.cpu.linux._LinuxHost``) that makes them do so:
simpy processes that wake the threads and put them to sleep, through the host's
``wake`` and ``sleep``.

Examples
--------
>>> q = QemuThreads()
>>> q.main_loop_wakes_per_s, q.main_loop_run_us
(750.0, 20.0)
>>> from kvmlab.cpu.eevdf import Group
>>> t = Thread("vm1/vcpu0", "vm1", 0, "vcpu", Group("vm1/vcpu0"), allowed=(0, 1))
>>> t.state, t.cpu
('sleep', 0)
"""

from __future__ import annotations

import math
import random
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import simpy
from mypy_extensions import mypyc_attr

from kvmlab.cpu.eevdf import NICE_0_LOAD, Entity, Group, RunQueue
from kvmlab.cpu.scenario import VmSpec

__all__ = ["QemuThreads", "QemuWorkload", "Thread"]


def _index_below(rng: random.Random, n: int) -> int:
    """``rng.choice()``'s draw of an index below ``n`` (> 0), without its Python calls.

    >>> _index_below(random.Random(7), 10) == random.Random(7).choice(range(10))
    True
    """
    k = n.bit_length()
    r: int = rng.getrandbits(k)
    while r >= n:
        r = rng.getrandbits(k)
    return r


@mypyc_attr(native_class=False)     # a plain class: simulate_linux() checks its fields
@dataclass(frozen=True)
class QemuThreads:
    """How a QEMU process's threads sleep and wake (defaults: TCG guests, QEMU 7.2).

    Attributes
    ----------
    main_loop_wakes_per_s : float
        Wake-ups per second of the main-loop thread, when it gets the CPU it asks
        for (its voluntary context switches; 700 to 950 per busy TCG guest measured,
        fewer when it has to wait). 0: no main-loop thread.
    main_loop_run_us : float
        CPU time the main loop uses per wake-up (measured: 13 to 27 us).
    vcpu_sleeps_per_cpu_s : float
        Short sleeps of a vCPU thread per second it runs, whatever the other threads
        of its VM do (default 0: the measured sleeps are those of ``lock_contention``).
    sleeping_vms : tuple of str, optional
        The VMs whose vCPU threads make those sleeps (default: every VM).
    vcpu_sleep_us : float
        How long such a sleep lasts.
    lock_contention : float
        The chance that a running vCPU thread wants QEMU's big lock while its main
        loop, which holds the lock for a wake-up, runs on another pCPU; the vCPU then
        sleeps until the wake-up ends. Measured on the recordings' host: a busy 1-vCPU
        guest alone on 2 pCPUs, its vCPU pinned to pCPU 0 and its main loop held on
        pCPU 1 (``emulator_pin``; 500 wake-ups a second), slept 2.75 to 132 times a
        second over 11 runs of 4 to 8 s (0.0055 to 0.26 per wake-up; the default,
        0.03, is the mean of the first 8). With the main loop on pCPU 0 it never slept.
    woken_by_vcpu : float
        The share of a main loop's wake-ups that a running vCPU thread of its VM makes
        (an eventfd write or the big lock's futex; traced: about two thirds), where one
        runs; the others are timers. A wake-up by a vCPU may move the main loop to that
        vCPU's pCPU (the kernel's ``wake_affine()``).
    """

    main_loop_wakes_per_s: float = 750.0
    main_loop_run_us: float = 20.0
    vcpu_sleeps_per_cpu_s: float = 0.0
    sleeping_vms: tuple[str, ...] | None = None
    vcpu_sleep_us: float = 50.0
    lock_contention: float = 0.03
    woken_by_vcpu: float = 0.67


class Thread:
    """One thread of a QEMU process in the ``linux`` model: its place in the groups, its
    state (``run``, ``wait`` or ``sleep``) and what it has done so far."""


    __slots__ = ("allowed", "busy_until", "cpu", "everywhere", "gen", "group", "kind",
                 "last_ran", "levels", "levels_cpu", "levels_last", "migrations", "name",
                 "run_s", "se", "since", "slices",
                 "state", "vcpu", "vm", "wait_s", "work_left")

    def __init__(self, name: str, vm: str, vcpu: int, kind: str, group: Group,
                 allowed: tuple[int, ...]) -> None:
        self.name, self.vm, self.vcpu, self.kind = name, vm, vcpu, kind
        self.group = group
        self.allowed = allowed
        self.everywhere = False    # allowed on every CPU of its host (the host says)
        self.se = Entity(name, NICE_0_LOAD)
        self.levels: dict[int, list[tuple[RunQueue, Entity]]] = {}   # by CPU (see _levels)
        self.levels_cpu = -1                        # the CPU of the levels asked for last
        self.levels_last: list[tuple[RunQueue, Entity]] = []
        self.cpu = allowed[0]
        self.state = "sleep"
        self.since = 0.0
        self.run_s = self.wait_s = 0.0
        self.slices = 0
        self.migrations = 0
        self.work_left = math.inf
        self.busy_until = -math.inf
        self.gen = 0
        self.last_ran = -1.0


@mypyc_attr(allow_interpreted_subclasses=True)  # the tests watch the model through subclasses
class QemuWorkload:
    """The simpy processes of QEMU's threads, for a host that can ``wake`` and ``sleep``
    a thread (:class:`kvmlab.cpu.linux._LinuxHost`)."""

    env: simpy.Environment
    rng: random.Random
    qemu: QemuThreads
    vcpus_of: dict[str, list[Thread]]              # each VM's vCPU threads

    def wake(self, t: Thread, now: float, waker: Thread | None = None) -> None:
        raise NotImplementedError

    def sleep(self, t: Thread, now: float) -> None:
        raise NotImplementedError

    def _done(self, t: Thread, token: int) -> None:
        """The running thread used its work: it sleeps (a vCPU wakes again shortly)."""
        if t.gen != token or t.state != "run":
            return
        t.work_left = 0.0
        if t.kind == "vcpu":
            self._sleep_on_lock(t, self.qemu.vcpu_sleep_us / 1e6)
        else:
            self.sleep(t, self.env.now)

    def _sleep_on_lock(self, t: Thread, seconds: float) -> None:
        """The vCPU ``t`` sleeps on the big lock, and wakes after ``seconds`` if still busy."""
        self.sleep(t, self.env.now)
        ev = self.env.timeout(max(0.0, seconds))
        token = t.gen

        def wake(_event: simpy.Event) -> None:
            self._bql_wake(t, token)
        ev.callbacks.append(wake)

    def _main_loop_runs(self, main: Thread, now: float) -> None:
        """``main`` got a pCPU for a wake-up: a vCPU of its VM running on another pCPU
        may want the big lock meanwhile, and sleeps until the wake-up ends."""
        chance = self.qemu.lock_contention
        if chance <= 0:
            return
        for t in self.vcpus_of[main.vm]:
            if t.state == "run" and t.cpu != main.cpu and self.rng.random() < chance:
                self._sleep_on_lock(t, main.work_left)

    def _waker(self, main: Thread) -> Thread | None:
        """Who wakes ``main``: a running vCPU of its VM (``woken_by_vcpu`` of the time,
        where one runs), or a timer (None)."""
        running = [t for t in self.vcpus_of[main.vm] if t.state == "run"]
        if running and self.rng.random() < self.qemu.woken_by_vcpu:
            return running[_index_below(self.rng, len(running))]
        return None

    def _bql_wake(self, t: Thread, token: int) -> None:
        if t.gen == token and t.state == "sleep" and self.env.now < t.busy_until:
            t.work_left = self._bql_work(t)
            self.wake(t, self.env.now)

    def _bql_work(self, t: Thread) -> float:
        """CPU time the vCPU ``t`` runs before its next short sleep."""
        q = self.qemu
        rate = q.vcpu_sleeps_per_cpu_s
        if rate <= 0 or (q.sleeping_vms is not None and t.vm not in q.sleeping_vms):
            return math.inf
        return self.rng.expovariate(rate)

    def _vcpu_workload(self, t: Thread, vm: VmSpec) -> Generator[simpy.Event, Any, None]:
        """Busy and idle stretches by the wall clock, as the guest's duty-cycle loop does."""
        env = self.env
        segments = [(b / 1000, i / 1000) for b, i in vm.segments_ms()]
        always = all(i == 0 for _b, i in segments)
        cycle = sum(b + i for b, i in segments)
        if not always:
            yield env.timeout(self.rng.uniform(0, cycle))
        while True:
            for busy, idle in segments:
                t.busy_until = math.inf if always else env.now + busy
                t.work_left = self._bql_work(t)
                if t.state == "sleep":
                    self.wake(t, env.now)
                if always:
                    return
                yield env.timeout(busy)
                t.busy_until = -math.inf
                if t.state != "sleep":
                    self.sleep(t, env.now)
                if idle > 0:
                    yield env.timeout(idle)

    def _main_loop(self, t: Thread) -> Generator[simpy.Event, Any, None]:
        """Wakes about ``main_loop_wakes_per_s`` times a second for ``main_loop_run_us``."""
        env, q = self.env, self.qemu
        period = 1 / q.main_loop_wakes_per_s
        yield env.timeout(self.rng.uniform(0, period))
        while True:
            if t.state == "sleep":
                t.work_left = q.main_loop_run_us / 1e6
                self.wake(t, env.now, self._waker(t))
            yield env.timeout(period * (0.5 + 1.0 * self.rng.random()))   # uniform(0.5, 1.5)

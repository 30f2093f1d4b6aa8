"""Work on a host besides its guests, in the model and on a real host.

A host never runs its guests alone: kernel threads, libvirt's daemons and whatever else
runs there wake now and then and take a pCPU for a moment. Such a task sits in the
host's root group, beside libvirt's ``machine`` group, so while it runs every guest
thread on that pCPU waits, and every group entity on it stops being the running one.
That is enough to end a *lock-in* (one VM starved while the others keep its pCPU,
see :mod:`kvmlab.cpu.linux`): measured on the lab's recording host (TCG guests, 2 pCPUs,
``cpu-overcommit-3x``), the mean spread between the three VMs fell from 0.31 on a quiet
host (25 runs) to 0.22 with 20 bursts of 1.4 ms a second added (6 runs).

:class:`HostNoise` says how much such work there is: bursts a second and each burst's
length. The ``linux`` model runs it as one task in the root group
(``simulate_linux(..., noise=HostNoise(...))``); on a real host :class:`NoiseProcess`
runs it as a process of its own (``run_on_host(..., noise=HostNoise(...))``).

Examples
--------
>>> noise = HostNoise(bursts_per_s=20, burst_ms=1.4)
>>> noise.load_pcpus
0.028
>>> HostNoise(bursts_per_s=-1)
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: bursts_per_s must be a number from 0 to 1000, not -1
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import random
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import simpy

from kvmlab.errors import ScenarioError
from kvmlab.host.signals import die_with_owner, signals_deferred

__all__ = ["MAX_NOISE_PCPUS", "NOISE_PREFIX", "HostNoise", "NoiseProcess", "noise_bursts"]

NOISE_PREFIX = "noise-"
"""Runs with noise are recorded as ``noise-NAME``, ``noise-NAME.r2``, ...: apart from the
runs of ``NAME``, and beside them in the agreement table."""
MAX_NOISE_PCPUS = 0.5
"""The most CPU time noise may take, in pCPUs: more is a workload of its own."""


def _number(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ScenarioError(f"{name} must be a number from {low:g} to {high:g}, not {value!r}")
    return float(value)


@dataclass(frozen=True)
class HostNoise:
    """Other work on the host: ``bursts_per_s`` bursts a second (at random moments, a
    Poisson process), each ``burst_ms`` of CPU time, in the host's root group.

    The default burst is one base time slice of the recording host (1.4 ms): the
    kernel threads seen there (``kdamond``, a ``tokio`` worker) ran that long each time
    they woke, 3 to 5 times a second together.

    Raises
    ------
    ScenarioError
        For a negative rate, a burst not over 0 or over 100 ms, or more than
        :data:`MAX_NOISE_PCPUS` of CPU time in all.
    """

    bursts_per_s: float = 0.0
    burst_ms: float = 1.4

    def __post_init__(self) -> None:
        _number(self.bursts_per_s, "bursts_per_s", 0, 1000)
        _number(self.burst_ms, "burst_ms", 0, 100)
        if self.burst_ms <= 0:
            raise ScenarioError(f"burst_ms must be over 0, not {self.burst_ms!r}")
        if self.load_pcpus > MAX_NOISE_PCPUS:
            raise ScenarioError(
                f"noise of {self.bursts_per_s:g} bursts of {self.burst_ms:g} ms a second "
                f"takes {self.load_pcpus:g} pCPUs; at most {MAX_NOISE_PCPUS:g} is noise")

    @property
    def load_pcpus(self) -> float:
        """The CPU time the noise takes, in pCPUs."""
        return round(self.bursts_per_s * self.burst_ms / 1000, 6)


def noise_bursts(env: simpy.Environment, rng: random.Random, noise: HostNoise,
                 wake: Any) -> Generator[simpy.Event, Any, None]:
    """A simpy process: at random moments, ``wake(burst_s)`` a task for one burst (the
    ``linux`` model's host wakes its noise task, or gives it the burst to do next)."""
    while True:
        yield env.timeout(rng.expovariate(noise.bursts_per_s))
        wake(noise.burst_ms / 1000)


def _burst_loop(owner: int, bursts_per_s: float, burst_ms: float, seed: int) -> None:
    die_with_owner(owner)
    rng = random.Random(seed)
    due = time.monotonic()
    while True:
        due += rng.expovariate(bursts_per_s)        # a burst due while one runs comes after it
        time.sleep(max(0.0, due - time.monotonic()))
        began = time.thread_time()
        while time.thread_time() - began < burst_ms / 1000:
            pass


class NoiseProcess:
    """:class:`HostNoise` on this host, while the ``with`` block runs: a process of its
    own (``kvmlab-noise``, in the caller's cgroup), ended when the block ends and with
    its owner, however that ends.

    >>> with NoiseProcess(HostNoise(bursts_per_s=50, burst_ms=1)) as p:
    ...     p.alive
    True
    >>> p.alive
    False
    """

    def __init__(self, noise: HostNoise, seed: int = 0) -> None:
        self.noise = noise
        ctx = mp.get_context("fork")
        self._proc = ctx.Process(target=_burst_loop, name="kvmlab-noise", daemon=True,
                                 args=(os.getpid(), noise.bursts_per_s, noise.burst_ms, seed))

    @property
    def alive(self) -> bool:
        return self._proc.pid is not None and self._proc.is_alive()

    def __enter__(self) -> NoiseProcess:
        if self.noise.bursts_per_s > 0:
            with signals_deferred():      # never a child that the clean-up misses
                self._proc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc.pid is None:
            return
        self._proc.kill()
        with contextlib.suppress(Exception):
            self._proc.join(timeout=5)

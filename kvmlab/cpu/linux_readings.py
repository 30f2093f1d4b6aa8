"""The ``linux`` model's threads read the way the host's are (:mod:`kvmlab.cpu.threads`).

A run on a real host reads every QEMU thread a number of times over its window and keeps,
per thread, its run, wait and sleep shares, its moves between pCPUs, its run share
between consecutive readings (``run_series``) and the pCPU it was on at each reading
(``cpu_series``). :class:`Readings` takes the same readings of the model's threads at
the same moments of the window, so that what reads a measured run
(:func:`kvmlab.cpu.episodes.main_loop_hold`, :func:`kvmlab.cpu.episodes.vm_series`)
reads a simulated one alike.

Examples
--------
>>> from kvmlab.cpu.linux import simulate_linux
>>> from kvmlab.cpu.scenario import CpuScenario
>>> s = CpuScenario.from_dict({"pcpus": 1, "duration_s": 1,
...                            "vms": [{"name": "a", "vcpus": 1}]})
>>> [t["role"] for t in simulate_linux(s).provenance["threads"]["a"]]
['vcpu0', 'main-loop']
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from kvmlab.cpu.eevdf import pelt_at
from kvmlab.cpu.sched_trace import STATE_EVERY_S, summarise_states
from kvmlab.cpu.threads import SAMPLES, run_shares

__all__ = ["Readings", "States", "moves_per_s"]


def _role(t: Any) -> str:
    return f"vcpu{t.vcpu}" if t.kind == "vcpu" else "main-loop"


class Readings:
    """``SAMPLES + 1`` readings of every thread of a ``linux`` model host over its window.

    ``host`` is the model's host (:mod:`kvmlab.cpu.linux`): its ``env``, ``start``,
    ``end`` and ``threads`` (each with ``vm``, ``kind``, ``vcpu``, ``cpu``, ``state``,
    ``since``, ``run_s``, ``wait_s`` and ``migrations``).
    """

    def __init__(self, host: Any) -> None:
        self.host = host
        self.run: dict[Any, list[float]] = {t: [] for t in host.threads}
        self.cpus: dict[Any, list[int]] = {t: [] for t in host.threads}

    def _ran(self, t: Any, now: float) -> float:
        """The thread's run time in the window up to ``now``."""
        if t.state != "run":
            return t.run_s
        return t.run_s + max(0.0, now - max(t.since, self.host.start))

    def process(self) -> Generator[simpy.Event, Any, None]:
        """A simpy process that takes the readings (the last at the window's end)."""
        host = self.host
        step = (host.end - host.start) / SAMPLES
        yield host.env.timeout(host.start)
        for k in range(SAMPLES + 1):
            if k:
                yield host.env.timeout(host.start + k * step - host.env.now)
            for t in host.threads:
                self.run[t].append(self._ran(t, host.env.now))
                self.cpus[t].append(t.cpu)

    def table(self) -> dict[str, list[dict[str, Any]]]:
        """Per VM, every thread's shares, moves per second and series, as a host run has.

        Call it after the run: the reading at the window's end, where simpy stops
        before it, is the threads' final times.
        """
        host = self.host
        span = host.end - host.start
        at = [host.start + span * k / SAMPLES for k in range(SAMPLES + 1)]
        out: dict[str, list[dict[str, Any]]] = {}
        for t in host.threads:
            ran, cpus = [*self.run[t][:SAMPLES], t.run_s], [*self.cpus[t][:SAMPLES], t.cpu]
            series = [round(x, 3) for x in run_shares(at, ran)]
            out.setdefault(t.vm, []).append({
                "name": t.name, "role": _role(t), "window_s": round(span, 6),
                "run_share": round(t.run_s / span, 4), "wait_share": round(t.wait_s / span, 4),
                "sleep_share": round(max(0.0, 1 - (t.run_s + t.wait_s) / span), 4),
                "migrations_per_s": round(t.migrations / span, 3), "cpu": t.cpu,
                "run_series": series, "cpu_series": cpus})
        return out


def moves_per_s(host: Any) -> dict[str, dict[str, float]]:
    """Moves between CPUs a second in the window of a ``linux`` model run, per kind of
    thread (``vcpu``, ``main-loop``) and cause (``balancing``: the load balancer pulled it;
    ``wake-up``: it woke on another CPU), as :mod:`kvmlab.cpu.sched_trace` tells them
    apart on a real host."""
    span = host.end - host.start
    out = {}
    for kind, role in (("vcpu", "vcpu"), ("main", "main-loop")):
        moved = sum(t.migrations for t in host.threads if t.kind == kind)
        out[role] = {"balancing": round(host.balanced[kind] / span, 3),
                     "wake-up": round((moved - host.balanced[kind]) / span, 3)}
    return out


class States:
    """The model's scheduler state every :data:`~kvmlab.cpu.sched_trace.STATE_EVERY_S` over
    its window, read as a traced host run reads the kernel's (each pCPU's load, and the
    weights of the groups with something queued: :func:`kvmlab.cpu.sched_trace.parse_sched_debug`).
    Reading changes nothing in the run."""

    def __init__(self, host: Any) -> None:
        self.host = host
        self.samples: list[dict[str, Any]] = []
        self.groups: dict[Any, str] = {}
        for t in host.threads:
            group = t.group
            if group.parent is None:                       # layout "none": no groups
                continue
            if group.name == t.vm:                         # layout "flat": the VM's own
                self.groups[group] = "vm"
            else:
                self.groups[group] = "vcpu" if t.kind == "vcpu" else "emulator"
                self.groups[group.parent] = "vm"

    def process(self) -> Generator[simpy.Event, Any, None]:
        """A simpy process that reads the state until the window ends."""
        host, kernel = self.host, self.host.kernel
        yield host.env.timeout(host.start)
        while True:
            now = host.env.now
            roots = [host.root.rqs.get(cpu.index) for cpu in host.cpus]
            loads = [pelt_at(rq, now, rq.weight_sum, kernel.pelt_tau_s,
                             kernel.pelt_period_s)[1] if rq is not None else 0.0
                     for rq in roots]
            weights: dict[str, list[float]] = {}
            for group, kind in self.groups.items():
                for rq in group.rqs.values():
                    if rq.weight_sum > 0 and rq.se is not None:
                        weights.setdefault(kind, []).append(float(rq.se.weight))
            self.samples.append({"loads": loads, "weights": weights})
            yield host.env.timeout(STATE_EVERY_S)

    def summary(self) -> dict[str, Any]:
        """:func:`kvmlab.cpu.sched_trace.summarise_states` of the readings."""
        return summarise_states(self.samples)

"""Who wakes a QEMU main loop, and what moves threads between CPUs: the kernel's trace.

:mod:`kvmlab.cpu.threads` reads counters (run, wait, sleep, moves) of every QEMU thread.
Counters cannot say *who* woke a thread, *how*, or *why* a thread changed CPU. The
scheduler's trace events can: ``sched_waking`` (written by the waker, on the waker's
CPU), ``sched_switch`` and ``sched_migrate_task``. With a kernel stack recorded at each
wake-up of a main loop, a run tells:

* who wakes each VM's main loop: its own vCPU threads (in a system call: an eventfd
  write, QEMU's ``aio_notify``, or a futex, QEMU's big lock), a timer, or anything else;
* whether that vCPU shared the main loop's CPU, and how many wake-ups each millisecond
  of a vCPU's run time brings, on the main loop's CPU and elsewhere;
* what moved threads between CPUs: wake-up placement (a move inside a wake-up) or load
  balancing (any other move).

The trace goes to a tracefs instance of kvmlab's own (:mod:`kvmlab.host.tracefs`),
removed when the run ends; ``kvmlab cleanup`` removes one that a killed run left.

Examples
--------
A main loop (thread 10) woken by its VM's vCPU 0 (thread 12) through an eventfd, on CPU 1:

>>> lines = [
...     " qemu-system-x86-10 [001] d..2. 1.000000: sched_switch: prev_comm=qemu-system-x86"
...     " prev_pid=10 prev_prio=120 prev_state=S ==> next_comm=CPU 0/TCG next_pid=12",
...     " CPU 0/TCG-12 [001] d..3. 1.002000: sched_waking: comm=qemu-system-x86 pid=10"
...     " prio=120 target_cpu=001",
...     " CPU 0/TCG-12 [001] d..3. 1.002001: <stack trace>",
...     " => try_to_wake_up",
...     " => eventfd_write",
...     " CPU 0/TCG-12 [001] d..2. 1.004000: sched_switch: prev_comm=CPU 0/TCG prev_pid=12"
...     " prev_prio=120 prev_state=R ==> next_comm=qemu-system-x86 next_pid=10"]
>>> s = summarise("\\n".join(lines), {10: ("vm1", "main-loop"), 12: ("vm1", "vcpu0")})
>>> s["main_loops"]["vm1"]["wakers"], s["main_loops"]["vm1"]["paths"]
({'own vCPU, same CPU': 1}, {'eventfd': 1})
>>> s["main_loops"]["vm1"]["vcpu_run_s"]
{'with_main_loop': 0.004, 'apart': 0.0}
"""

from __future__ import annotations

import contextlib
import re
import statistics
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kvmlab.cpu.eevdf import Kernel
from kvmlab.cpu.result import CpuResult
from kvmlab.errors import ScenarioError
from kvmlab.host.tracefs import TraceText, trace_events

__all__ = ["EVENTS", "SCHED_DEBUG", "STATE_EVERY_S", "StateSampler", "compare_rows",
           "parse_sched_debug", "sched_trace", "summarise", "summarise_states"]

EVENTS = ("sched/sched_switch", "sched/sched_waking", "sched/sched_migrate_task")
"""The events a scheduler trace records."""
SCHED_DEBUG = Path("/sys/kernel/debug/sched/debug")
"""The scheduler's state, every run queue of every CPU (debugfs; root)."""
STATE_EVERY_S = 0.1
"""How often a traced run reads :data:`SCHED_DEBUG` (and the model its own state)."""
IMBALANCE_PCT = Kernel().imbalance_pct
"""The load balancer acts when the busiest pCPU's load is over this percentage of the
local one's (``imbalance_pct`` of a 2-CPU domain, as the ``linux`` model's
:class:`kvmlab.cpu.eevdf.Kernel` has it)."""
_SECTION = re.compile(r"^cfs_rq\[(\d+)\]:(\S+)\n(.*?)(?=^\S|\Z)", re.M | re.S)
_VALUE = re.compile(r"^\s+\.(\S+)\s+:\s+(-?[\d.]+)", re.M)

_LINE = re.compile(r"^\s*(.+?)-(\d+)\s+\[(\d+)\]\s+(\S+)\s+([\d.]+): (\w+|<stack trace>):?(.*)$")
_FIELD = re.compile(r"(\w+)=(\S+)")
#: The first of these functions in a wake-up's kernel stack names how the thread was woken.
_PATHS = {"eventfd_write": "eventfd", "futex_wake": "futex", "hrtimer_wakeup": "timer"}


def sched_trace(stack_tids: Sequence[int], *,
                root: Path | None = None) -> contextlib.AbstractContextManager[TraceText]:
    """Trace the scheduler while the block runs (:func:`kvmlab.host.tracefs.trace_events`),
    with a kernel stack at each wake-up of the threads ``stack_tids`` (the main loops).

    Raises
    ------
    ExperimentFailed
        Without tracefs or root (before anything is traced).
    """
    condition = " || ".join(f"pid == {tid}" for tid in stack_tids)
    triggers = {"sched/sched_waking": f"stacktrace if {condition}"} if stack_tids else {}
    return trace_events(EVENTS, triggers=triggers, root=root)


class _Summary:
    """The counts :func:`summarise` gathers while it reads a trace, line by line.

    Events of different CPUs interleave in the trace, so a wake-up waiting for its
    kernel stack, and a wake-up inside which a move counts as wake-up placement, are
    kept per CPU (the waker's: the CPU whose lines they are).
    """

    def __init__(self, threads: Mapping[int, tuple[str, str]]) -> None:
        self.threads = threads
        self.main = {vm: tid for tid, (vm, role) in threads.items() if role == "main-loop"}
        self.main_cpu: dict[str, int] = {}
        self.running: dict[int, tuple[int, float]] = {}
        self.wakers: dict[str, Counter[str]] = {vm: Counter() for vm in self.main}
        self.paths: dict[str, Counter[str]] = {vm: Counter() for vm in self.main}
        self.run = {vm: [0.0, 0.0] for vm in self.main}      # vCPU run: with, apart
        self.kicks = {vm: [0, 0] for vm in self.main}        # own vCPU wakes: with, apart
        self.moves: Counter[tuple[str, str]] = Counter()
        self.waking: dict[int, int] = {}           # CPU -> the thread it is waking
        self.unstacked: dict[int, str] = {}        # CPU -> VM whose main loop's stack is due
        self.stack: tuple[int, str] | None = None  # the stack being read: (CPU, VM)
        self.path = ""
        self.first: float | None = None
        self.last: float | None = None

    def kind(self, tid: int) -> str:
        role = self.threads[tid][1]
        return "vcpu" if role.startswith("vcpu") else role

    def line(self, cpu: int, ts: float, event: str, pid: int, flags: str,
             f: Mapping[str, str]) -> None:
        self.end_stack()
        self.first = ts if self.first is None else self.first
        self.last = ts
        if event == "<stack trace>":
            if cpu in self.unstacked:
                self.stack = (cpu, self.unstacked.pop(cpu))
        elif event == "sched_switch":
            self.waking.pop(cpu, None)
            self.switch(cpu, ts, f)
        elif event == "sched_waking":
            self.waking[cpu] = int(f["pid"])
            self.woken(int(f["pid"]), pid, cpu, flags)
        elif event == "sched_migrate_task":
            self.migrate(cpu, f)

    def switch(self, cpu: int, ts: float, f: Mapping[str, str]) -> None:
        prev, nxt = int(f["prev_pid"]), int(f["next_pid"])
        if cpu in self.running:
            tid, since = self.running[cpu]
            if tid in self.threads and self.kind(tid) == "vcpu":
                vm = self.threads[tid][0]
                if vm in self.run:
                    self.run[vm][0 if self.main_cpu.get(vm) == cpu else 1] += ts - since
        self.running[cpu] = (nxt, ts)
        for tid in (prev, nxt):
            if tid in self.threads and self.kind(tid) == "main-loop":
                self.main_cpu[self.threads[tid][0]] = cpu

    def woken(self, wakee: int, waker: int, cpu: int, flags: str) -> None:
        if wakee not in self.threads or self.kind(wakee) != "main-loop":
            return
        vm = self.threads[wakee][0]
        if len(flags) > 2 and flags[2] in "hsH":         # in an interrupt: a timer's
            who = "timer"
        elif (waker in self.threads and self.threads[waker][0] == vm
              and self.kind(waker) == "vcpu"):
            same = self.main_cpu.get(vm, cpu) == cpu
            who = "own vCPU, same CPU" if same else "own vCPU, other CPU"
            self.kicks[vm][0 if same else 1] += 1
        else:
            who = "other"
        self.wakers[vm][who] += 1
        if cpu in self.unstacked:                         # the last one had no stack
            self.paths[self.unstacked[cpu]]["other"] += 1
        self.unstacked[cpu] = vm

    def stack_line(self, function: str) -> None:
        if self.stack is not None and not self.path:
            self.path = _PATHS.get(function, "")

    def end_stack(self) -> None:
        if self.stack is not None:
            self.paths[self.stack[1]][self.path or "other"] += 1
            self.stack, self.path = None, ""

    def migrate(self, cpu: int, f: Mapping[str, str]) -> None:
        tid = int(f["pid"])
        if tid not in self.threads:
            return
        cause = "wake-up" if self.waking.get(cpu) == tid else "balancing"
        self.moves[(self.kind(tid), cause)] += 1
        if self.kind(tid) == "main-loop":
            self.main_cpu[self.threads[tid][0]] = int(f["dest_cpu"])

    def result(self) -> dict[str, Any]:
        self.end_stack()
        for vm in self.unstacked.values():
            self.paths[vm]["other"] += 1
        window = self.last - self.first if self.first is not None and self.last else 0.0
        loops = {}
        for vm in self.main:
            with_s, apart_s = self.run[vm]
            with_n, apart_n = self.kicks[vm]
            loops[vm] = {
                "wakes": sum(self.wakers[vm].values()),
                "wakers": dict(self.wakers[vm]), "paths": dict(self.paths[vm]),
                "vcpu_run_s": {"with_main_loop": round(with_s, 6), "apart": round(apart_s, 6)},
                "wakes_per_vcpu_ms": {
                    "with_main_loop": round(with_n / (with_s * 1000), 3) if with_s else None,
                    "apart": round(apart_n / (apart_s * 1000), 3) if apart_s else None}}
        moves: dict[str, dict[str, int]] = {}
        for (kind, cause), n in sorted(self.moves.items()):
            moves.setdefault(kind, {})[cause] = n
        return {"window_s": round(window, 6), "main_loops": loops, "migrations": moves}


def summarise(text: str, threads: Mapping[int, tuple[str, str]]) -> dict[str, Any]:
    """Read a trace of :func:`sched_trace` for the QEMU threads ``threads``.

    Parameters
    ----------
    text : str
        The trace (tracefs's ``trace`` file).
    threads : mapping
        Thread id -> (VM, role): roles ``vcpuN``, ``main-loop`` or any other name
        (:func:`kvmlab.cpu.probe.qemu_thread_role`).

    Returns
    -------
    dict
        ``window_s``, the traced time; ``main_loops``, per VM: ``wakes``, ``wakers``
        (``own vCPU, same CPU``, ``own vCPU, other CPU``, ``timer`` (woken in an
        interrupt), ``other``), ``paths`` (``eventfd``, ``futex``, ``timer``, ``other``:
        from the kernel stack), ``vcpu_run_s`` (its vCPUs' run time on the main loop's
        CPU and elsewhere) and ``wakes_per_vcpu_ms`` (own-vCPU wake-ups per ms of that
        run time, None without any); ``migrations``, per kind of thread (``vcpu``,
        ``main-loop``, ...) the moves at a ``wake-up`` and by ``balancing``.
    """
    s = _Summary(threads)
    for line in text.splitlines():
        if line.lstrip().startswith("=>"):
            s.stack_line(line.split("=>", 1)[1].strip())
            continue
        match = _LINE.match(line)
        if match is not None:
            _comm, pid, cpu, flags, ts, event, rest = match.groups()
            s.line(int(cpu), float(ts), event, int(pid), flags, dict(_FIELD.findall(rest)))
    return s.result()


def _part(counts: Mapping[str, int], keys: Sequence[str]) -> float | None:
    total = sum(counts.values())
    return round(sum(counts.get(k, 0) for k in keys) / total, 3) if total else None


def compare_rows(host: CpuResult, models: Sequence[CpuResult]) -> list[dict[str, Any]]:
    """A traced host run beside runs of the ``linux`` model, as rows of a table.

    Parameters
    ----------
    host : CpuResult
        A run measured with ``trace=True`` (``provenance['sched_trace']``).
    models : sequence of CpuResult
        Runs of :func:`kvmlab.cpu.linux.simulate_linux` (their means are shown).

    Returns
    -------
    list of dict
        ``what``, ``host`` and ``linux model``: who wakes the main loops, how much of
        the vCPUs' run time is on their main loop's pCPU, how often threads move
        between pCPUs, by cause, and (where the host run read the scheduler's state)
        how often the pCPUs' loads were far enough apart for the load balancer, and the
        groups' weights (the model's per run).

    Raises
    ------
    ScenarioError
        If ``host`` was not traced, or a model run is not one of the ``linux`` model.

    Examples
    --------
    >>> from kvmlab.cpu.agreement import recorded_repetitions
    >>> from kvmlab.cpu.linux import simulate_linux
    >>> traced = recorded_repetitions("trace-cpu-overcommit-3x")[-1]
    >>> model = simulate_linux(traced.scenario.with_duration(1), seed=0)
    >>> [row["what"] for row in compare_rows(traced, [model])][:2]
    ['main-loop wake-ups a second, per VM', 'of them by its own vCPU threads']
    """
    from kvmlab.cpu.episodes import main_loop_hold

    trace = host.provenance.get("sched_trace")
    if not isinstance(trace, Mapping):
        raise ScenarioError("this run was not traced: run it with trace=True "
                            "(kvmlab cpu record --trace)")
    if not models or any(m.provenance.get("scheduler") != "linux" for m in models):
        raise ScenarioError("compare_rows needs at least one run of the linux model")
    loops = trace["main_loops"].values()
    window = trace["window_s"] or 1.0
    wakers: Counter[str] = Counter()
    for loop in loops:
        wakers.update(loop["wakers"])

    def moves(kind: str, cause: str) -> tuple[float, float]:
        real = trace["migrations"].get(kind, {}).get(cause, 0) / window
        model = statistics.fmean(m.provenance["moves_per_s"][kind][cause] for m in models)
        return round(real, 2), round(model, 2)

    def held(run: CpuResult) -> float | None:
        return main_loop_hold(run)["run_on_main_loop_cpu"]

    model_held = [h for h in map(held, models) if h is not None]
    rows = [
        ("main-loop wake-ups a second, per VM",
         round(statistics.fmean(loop["wakes"] for loop in loops) / window),
         statistics.fmean(m.provenance["qemu"]["main_loop_wakes_per_s"] for m in models)),
        ("of them by its own vCPU threads",
         _part(wakers, ("own vCPU, same CPU", "own vCPU, other CPU")), 0.0),
        ("of them in an interrupt (a timer)", _part(wakers, ("timer",)), 1.0),
        ("vCPU run time on the main loop's pCPU", held(host),
         round(statistics.fmean(model_held), 3) if model_held else None),
        ("vCPU moves a second, by load balancing", *moves("vcpu", "balancing")),
        ("vCPU moves a second, at wake-up", *moves("vcpu", "wake-up")),
        ("main-loop moves a second, by load balancing", *moves("main-loop", "balancing")),
        ("main-loop moves a second, at wake-up", *moves("main-loop", "wake-up")),
    ]
    state = trace.get("state")
    if isinstance(state, Mapping):
        model_states = [m.provenance["sched_state"] for m in models]
        apart = [s["loads_apart"] for s in model_states if s["loads_apart"] is not None]
        rows.append(("pCPU loads over 17 % apart (share of readings)", state["loads_apart"],
                     round(statistics.fmean(apart), 3) if apart else None))
        for kind, label in (("vm", "a VM's"), ("vcpu", "a vCPU group's"),
                            ("emulator", "the main-loop group's")):
            rows.append((f"{label} weight on a pCPU, median (10-90 %)",
                         _spread_text(state["weights"].get(kind)),
                         "; ".join(_spread_text(s["weights"].get(kind)) for s in model_states)))
    return [{"what": what, "host": real, "linux model": model} for what, real, model in rows]


def _spread_text(q: Mapping[str, float] | None) -> str:
    """``p50 (p10-p90)`` of a weight summary, or ``-``."""
    return f"{q['p50']:g} ({q['p10']:g}-{q['p90']:g})" if q else "-"


def _group_kind(path: str) -> str:
    """``vm``, ``vcpu`` or ``emulator`` for a libvirt cgroup path of a guest."""
    leaf = path.rstrip("/").rsplit("/", 1)[-1]
    return "vm" if leaf.endswith(".libvirt-qemu") else leaf.rstrip("0123456789")


def parse_sched_debug(text: str, marker: str = "kvmlab-") -> dict[str, Any]:
    """One reading of :data:`SCHED_DEBUG`: each CPU's load (its root queue's ``load_avg``,
    what the load balancer compares) and the weights (``se->load.weight`` / 1024) of the
    guests' groups (paths holding ``marker``) that have something queued.

    >>> text = "\\n".join(["cfs_rq[0]:/", "  .load_avg : 700", "cfs_rq[1]:/",
    ...     "  .load_avg : 500", "cfs_rq[1]:/machine/qemu-1-kvmlab-cpu-vm1.libvirt-qemu",
    ...     "  .load : 1048576", "  .se->load.weight : 524288", "cpu#2", ""])
    >>> parse_sched_debug(text)
    {'loads': [700.0, 500.0], 'weights': {'vm': [512.0]}}
    """
    loads: dict[int, float] = {}
    weights: dict[str, list[float]] = {}
    for match in _SECTION.finditer(text):
        cpu, path, body = int(match.group(1)), match.group(2), match.group(3)
        values = dict(_VALUE.findall(body))
        if path == "/":
            loads[cpu] = float(values.get("load_avg", 0))
        elif marker in path and float(values.get("load", 0)) > 0:
            weights.setdefault(_group_kind(path), []).append(
                round(float(values.get("se->load.weight", 0)) / 1024, 1))
    return {"loads": [loads[c] for c in sorted(loads)], "weights": weights}


class StateSampler:
    """Reads :data:`SCHED_DEBUG` every :data:`STATE_EVERY_S` in a thread of its own while
    the ``with`` block runs; ``samples`` holds what :func:`parse_sched_debug` made of each."""

    def __init__(self, path: Path = SCHED_DEBUG) -> None:
        self.path = path
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(STATE_EVERY_S):
            with contextlib.suppress(OSError):
                self.samples.append(parse_sched_debug(self.path.read_text(errors="replace")))

    def __enter__(self) -> StateSampler:
        self.path.read_text()                 # fails here, before the window, if unreadable
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def summarise_states(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """How often the pCPUs' loads were far enough apart for the balancer to act, and the
    spread of each kind of group's weight, over readings of :func:`parse_sched_debug`
    (or the model's own, of the same shape).

    >>> summarise_states([{"loads": [700, 500], "weights": {"vm": [512, 1024]}},
    ...                   {"loads": [500, 510], "weights": {"vm": [341]}}])
    {'readings': 2, 'loads_apart': 0.5, 'weights': {'vm': {'p10': 341, 'p50': 512, 'p90': 1024}}}
    """
    apart = [max(s["loads"]) * 100 > IMBALANCE_PCT * min(s["loads"])
             for s in samples if len(s["loads"]) > 1 and min(s["loads"]) > 0]
    weights: dict[str, list[float]] = {}
    for sample in samples:
        for kind, values in sample["weights"].items():
            weights.setdefault(kind, []).extend(values)
    return {"readings": len(samples),
            "loads_apart": round(sum(apart) / len(apart), 3) if apart else None,
            "weights": {kind: {f"p{q}": round(_quantile(sorted(v), q / 100))
                               for q in (10, 50, 90)} for kind, v in sorted(weights.items())}}


def _quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of sorted ``values`` (nearest rank)."""
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]

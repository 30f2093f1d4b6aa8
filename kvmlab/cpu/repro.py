"""The starvation reproducer: QEMU's thread layout with plain processes, in real cgroups.

Three 2-vCPU guests on 2 host CPUs should get a third of a CPU per vCPU each; under
libvirt one VM can starve. QEMU is not needed for that: per "VM" the reproducer starts
``vcpus`` busy processes (the vCPUs) and one *emulator* process that wakes up ``rate``
times a second and sleeps again (QEMU's main loop wakes about 500 times a second), in
cgroups of the ``cpu`` controller laid out as ``none`` (no cgroups), ``flat`` (one per VM)
or ``nested`` (libvirt's: ``VM/vcpu0``, ``VM/vcpu1``, ..., ``VM/emulator``).

Each wake-up or sleep of the emulator changes its VM group's weight on that CPU, so the
kernel reweights the group entity. On kernels 6.13 to 6.18.44 a reweight of the *running*
group entity re-places it (upstream 6d71a9c61604, reverted by 101f3498b4bd in 6.18.45),
which keeps it eligible: its VM keeps the CPU, another starves.

The cgroups are ``kvmlab-repro-PID`` (PID: this process) under the ``cpu`` controller
(v1 ``/sys/fs/cgroup/cpu/`` or v2 ``/sys/fs/cgroup/``, where ``shares`` become
``cpu.weight``, see :func:`kvmlab.cpu.probe.cpu_weight`). They and the processes go when
the run ends, also on an exception, SIGINT or SIGTERM; the processes die with this one
even on SIGKILL, and the next run removes cgroups whose owner is gone. Run, wait and
sleep of each process come from :mod:`kvmlab.cpu.threads`.

Examples
--------
>>> p = ReproParams(layout="flat", shares=(1024, 512, 256))
>>> p.vms, p.vcpus, p.rate, p.window_s
(3, 2, 1000.0, 5.0)
>>> ReproParams(layout="none", shares=(1024, 512, 256))
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: shares need cgroups: use layout 'flat' or 'nested', not 'none'
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import multiprocessing
import os
import platform
import re
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from kvmlab.cpu.probe import (
    CpuController,
    cpu_controller,
    cpu_weight,
    host_busy_s,
    owner_gone,
)
from kvmlab.cpu.threads import ThreadTimes, measure_threads
from kvmlab.cpu.twin import measuring_lock
from kvmlab.errors import ExperimentFailed, ScenarioError
from kvmlab.host.signals import (
    Transient,
    die_with_owner,
    signals_deferred,
    stop_signals_as_exit,
    wake_on_time,
)
from kvmlab.progress import ProgressArg, progress_bar
from kvmlab.validate import check_keys, list_of, mapping, real_number, text, whole_number

__all__ = ["COMM", "LAYOUTS", "PREFIX", "ReproCgroups", "ReproParams", "ReproProcesses",
           "ReproResult", "ReproRun", "rate_sweep",
           "remove_stale_cgroups", "run_repro"]

LAYOUTS = ("none", "flat", "nested")
"""No cgroups; one cgroup per VM; libvirt's VM/vcpuN + VM/emulator."""
PREFIX = "kvmlab-repro-"
COMM = "kvmlab-repro"
"""The name (``/proc/PID/comm``) of every reproducer process."""
MAX_VMS, MAX_VCPUS, MAX_RATE = 16, 8, 20000.0
MIN_WINDOW_S, MAX_WINDOW_S, MAX_SETTLE_S, MAX_REPETITIONS = 0.2, 120.0, 60.0, 100
MIN_SHARES, MAX_SHARES = 2, 262144               # cgroup v1's bounds of cpu.shares
MIN_STEP_S = 0.02                                # readings at most this often (> a tick)
START_TIMEOUT_S = 60.0
BUSY_PCPUS = 0.3                                 # other load that marks a run disturbed
_NAME = re.compile(re.escape(PREFIX) + r"(\d+)$")


@dataclass(frozen=True)
class ReproParams:
    """What to run: see the module's text. ``pcpus``: the host CPUs to confine to (default
    all this process may use); ``samples``: readings per window (at most one per 20 ms)."""

    vms: int = 3
    vcpus: int = 2
    layout: str = "nested"
    rate: float = 1000.0
    shares: tuple[int, ...] | None = None
    pcpus: tuple[int, ...] | None = None
    window_s: float = 5.0
    settle_s: float = 1.0
    repetitions: int = 1
    samples: int = 20

    def __post_init__(self) -> None:
        put = object.__setattr__
        for name, what, high in (("vms", "vms", MAX_VMS), ("vcpus", "vcpus (per VM)", MAX_VCPUS),
                                 ("repetitions", "repetitions", MAX_REPETITIONS),
                                 ("samples", "samples", 1000)):
            put(self, name, whole_number(getattr(self, name), what, low=1, high=high))
        if text(self.layout, "layout") not in LAYOUTS:
            raise ScenarioError(f"layout must be one of {', '.join(LAYOUTS)}, not "
                                f"{self.layout!r}")
        put(self, "rate", real_number(self.rate, "rate (emulator wake-ups per second)",
                                      low=0, high=MAX_RATE))
        put(self, "window_s", real_number(self.window_s, "window_s", low=MIN_WINDOW_S,
                                          high=MAX_WINDOW_S, unit="s"))
        put(self, "settle_s", real_number(self.settle_s, "settle_s", low=0, high=MAX_SETTLE_S,
                                          unit="s"))
        if self.shares is not None:
            if self.layout == "none":
                raise ScenarioError("shares need cgroups: use layout 'flat' or 'nested', "
                                    "not 'none'")
            shares = list_of(self.shares, "shares")
            if len(shares) != self.vms:
                raise ScenarioError(f"shares must give one value per VM ({self.vms}), not "
                                    f"{len(shares)}")
            put(self, "shares", tuple(whole_number(s, f"shares of vm{i + 1}", low=MIN_SHARES,
                                                   high=MAX_SHARES)
                                      for i, s in enumerate(shares)))
        if self.pcpus is not None:
            cpus = tuple(whole_number(c, "a pCPU", low=0, high=4095)
                         for c in list_of(self.pcpus, "pcpus", low=1, high=4096))
            if len(set(cpus)) != len(cpus):
                raise ScenarioError(f"pcpus must name each CPU once, not {list(cpus)}")
            put(self, "pcpus", tuple(sorted(cpus)))

    @property
    def steps(self) -> int:
        """Readings per window: ``samples``, fewer if they would come closer than 20 ms."""
        return max(1, min(self.samples, int(self.window_s / MIN_STEP_S)))

    def roles(self) -> list[str]:
        """The processes of one VM: ``vcpu0``, ... and ``emulator`` (if ``rate > 0``)."""
        return [f"vcpu{c}" for c in range(self.vcpus)] + (["emulator"] if self.rate else [])

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (lists for the tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReproParams:
        """Parameters from a dict; an unknown key is a ScenarioError that suggests one."""
        data = mapping(data, "the reproducer's parameters")
        check_keys(data, [f.name for f in cls.__dataclass_fields__.values()],
                   "the reproducer's parameters")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def _tree(top: Path) -> list[Path]:
    """``top`` and the cgroups below it, deepest first."""
    return sorted((Path(d) for d, _, _ in os.walk(top)), key=lambda p: -len(p.parts))


def _procs(cgroup: Path) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(x) for x in (cgroup / "cgroup.procs").read_text().split()]
    return []


def _remove_tree(top: Path, timeout_s: float = 3.0) -> None:
    """rmdir ``top`` and its cgroups; a cgroup whose killed tasks still exit is retried."""
    deadline = time.monotonic() + timeout_s
    for cgroup in _tree(top):
        while cgroup.exists():
            try:
                cgroup.rmdir()
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    break
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise ExperimentFailed(f"could not remove cgroup {cgroup}: {exc}; what to "
                                           f"do: end its processes ({_procs(cgroup)}) and "
                                           f"rmdir it") from None
                time.sleep(0.02)


def remove_stale_cgroups(controller: CpuController | None = None) -> list[Path]:
    """Remove the ``kvmlab-repro-PID`` cgroups whose owner has ended; return them.

    A process still in one is killed only if it is a reproducer's process (its name
    is :data:`COMM`; it normally dies with its owner); else it stays, and so
    does its cgroup.
    """
    removed = []
    for top in sorted((controller or cpu_controller()).root.glob(PREFIX + "*")):
        if not top.is_dir() or not _NAME.match(top.name) or not owner_gone(top):
            continue
        strangers = False
        for pid in (pid for cgroup in _tree(top) for pid in _procs(cgroup)):
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() != COMM:
                    strangers = True
                else:
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ExperimentFailed):
            if not strangers:
                _remove_tree(top)
                removed.append(top)
    return removed


class ReproCgroups(Transient):
    """The cgroups of one run: ``kvmlab-repro-PID/vmN[/ROLE]``, made and removed as a block."""

    def __init__(self, controller: CpuController, params: ReproParams) -> None:
        self.controller, self.params = controller, params
        self.top = controller.root / f"{PREFIX}{os.getpid()}"

    def _enable_cpu(self, cgroup: Path) -> None:
        if self.controller.version == 2:
            control = cgroup / "cgroup.subtree_control"
            if "cpu" not in control.read_text().split():
                control.write_text("+cpu")

    def start(self) -> None:
        if self.top.exists():       # an earlier run of this very process left it
            _remove_tree(self.top)
        try:
            self._enable_cpu(self.controller.root)
            self.top.mkdir()
            self._enable_cpu(self.top)
            for vm in range(1, self.params.vms + 1):
                group = self.top / f"vm{vm}"
                group.mkdir()
                if self.params.shares is not None:
                    shares = self.params.shares[vm - 1]
                    if self.controller.version == 1:
                        (group / "cpu.shares").write_text(str(shares))
                    else:
                        (group / "cpu.weight").write_text(str(cpu_weight(shares)))
                if self.params.layout == "nested":
                    self._enable_cpu(group)
                    for role in self.params.roles():
                        (group / role).mkdir()
        except OSError as exc:
            raise ExperimentFailed(f"could not make the cgroups under {self.controller.root}: "
                                   f"{exc}. What to do: run as root on a host whose cpu "
                                   "controller is writable, or use layout 'none'") from None

    def place(self, pid: int, vm: int, role: str) -> str:
        """Move process ``pid`` (``role`` of VM ``vm``, from 1) into its cgroup; return
        that cgroup's path below the controller's root."""
        cgroup = self.top / f"vm{vm}" / (role if self.params.layout == "nested" else "")
        (cgroup / "cgroup.procs").write_text(str(pid))
        return "/" + str(cgroup.relative_to(self.controller.root))

    def close(self) -> None:
        _remove_tree(self.top)


# -- the processes -----------------------------------------------------------------------
def _process(role: str, rate: float, cpus: tuple[int, ...], parent: int, ready: Any,
             go: Any, theirs: tuple[Any, ...]) -> None:
    """A reproducer process (forked; it takes no lock a thread of the owner may hold): a
    busy loop (a vCPU) or ``rate`` wake-ups a second (the emulator)."""
    die_with_owner(parent)                            # it dies with its owner, always
    for conn in theirs:                               # the owner's ends of the pipes
        conn.close()
    with contextlib.suppress(OSError):
        Path("/proc/self/comm").write_text(COMM)      # known by name: remove_stale_cgroups
    signal.signal(signal.SIGINT, signal.SIG_IGN)      # Ctrl-C is the owner's to handle
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())  # forked with them held back
    os.sched_setaffinity(0, cpus)
    ready.send_bytes(role.encode())
    ready.close()
    go.poll(None)                                     # the owner closes it: all start at once
    if role != "emulator":
        while True:
            pass
    wake_on_time()                                    # not 50 us late
    period, clock, nap = 1.0 / rate, time.monotonic, time.sleep
    due = clock()
    while True:
        due += period
        left = due - clock()
        if left > 0:
            nap(left)
        else:
            due = clock()           # it waited for a CPU: go on from now, no burst


class ReproProcesses(Transient):
    """The processes of one run, started together; killed and reaped on close. Forked, not
    spawned: a spawned child would import the caller's main script again."""

    def __init__(self, params: ReproParams, cpus: tuple[int, ...],
                 cgroups: ReproCgroups | None) -> None:
        self.params, self.cpus, self.cgroups = params, cpus, cgroups
        self.procs: list[tuple[int, str, Any, str]] = []      # vm, role, process, cgroup

    def start(self) -> None:
        ctx = multiprocessing.get_context("fork")
        ready_r, ready_w = ctx.Pipe(duplex=False)
        go_r, go_w = ctx.Pipe(duplex=False)
        try:
            for vm in range(1, self.params.vms + 1):
                for role in self.params.roles():
                    p = ctx.Process(target=_process, name=f"{PREFIX}vm{vm}-{role}",
                                    args=(role, self.params.rate, self.cpus, os.getpid(),
                                          ready_w, go_r, (ready_r, go_w)), daemon=True)
                    with signals_deferred():        # never a child that close() misses
                        p.start()
                        self.procs.append((vm, role, p, ""))
                    if self.cgroups is not None:
                        self.procs[-1] = (vm, role, p, self.cgroups.place(p.pid, vm, role))
            ready_w.close()
            deadline = time.monotonic() + START_TIMEOUT_S
            for _ in self.procs:
                if not ready_r.poll(max(0.0, deadline - time.monotonic())):
                    raise ExperimentFailed("the reproducer's processes did not start within "
                                           f"{START_TIMEOUT_S:g} s")
                ready_r.recv_bytes()
        except (EOFError, OSError) as exc:
            raise ExperimentFailed(f"a reproducer process did not start: {exc}") from None
        finally:
            go_w.close()
            for conn in (ready_r, ready_w, go_r):
                conn.close()

    def close(self) -> None:
        for _, _, p, _ in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
        for _, _, p, _ in self.procs:
            p.join(5)
        self.procs = []


# -- results -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ReproRun:
    """One repetition: every process's times (their ``role`` is ``vmN/vcpuK`` or
    ``vmN/emulator``), per VM the mean run share of its vCPUs, and their spread.
    ``other_load_pcpus``: CPUs busy with anything else meanwhile (other work, steal)."""

    processes: tuple[ThreadTimes, ...]
    other_load_pcpus: float = 0.0

    def vm_run_shares(self) -> dict[str, float]:
        """Per VM, the mean run share of its vCPU processes."""
        shares: dict[str, list[float]] = {}
        for t in self.processes:
            vm, _, role = t.role.partition("/")
            if role.startswith("vcpu"):
                shares.setdefault(vm, []).append(t.run_share)
        return {vm: round(sum(s) / len(s), 6) for vm, s in shares.items()}

    @property
    def spread(self) -> float:
        """Max minus min of :meth:`vm_run_shares`: 0 when every VM got the same.

        Examples
        --------
        >>> def t(role, run):
        ...     return ThreadTimes(1, "x", 1.0, run, 1 - run, 0.0, 0, 0, 1, 0, 0, role=role)
        >>> ReproRun((t("vm1/vcpu0", 0.5), t("vm1/vcpu1", 0.3), t("vm2/vcpu0", 0.1),
        ...           t("vm2/emulator", 0.0))).spread
        0.3
        """
        shares = self.vm_run_shares().values()
        return round(max(shares) - min(shares), 6) if shares else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``spread``, ``vm_run_shares``, ``processes``."""
        return {"spread": self.spread, "vm_run_shares": self.vm_run_shares(),
                "other_load_pcpus": self.other_load_pcpus,
                "processes": [t.to_dict() for t in self.processes]}


@dataclass(frozen=True)
class ReproResult:
    """The reproducer's outcome: its parameters, the host, and one :class:`ReproRun` per
    repetition. ``spread`` is their mean, ``max_spread`` the largest."""

    params: ReproParams
    runs: tuple[ReproRun, ...]
    kernel: str
    cgroup: str = ""
    cpus: tuple[int, ...] = ()
    date: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def spreads(self) -> list[float]:
        """The spread of each repetition."""
        return [r.spread for r in self.runs]

    @property
    def spread(self) -> float:
        """The mean spread of the repetitions."""
        return round(sum(self.spreads) / max(1, len(self.runs)), 6)

    @property
    def max_spread(self) -> float:
        """The largest spread of a repetition."""
        return max(self.spreads, default=0.0)

    @property
    def fair_share(self) -> float:
        """Each vCPU's run share if the CPUs were shared fairly (and the emulators took none)."""
        return round(min(1.0, len(self.cpus) / (self.params.vms * self.params.vcpus)), 6)

    def table(self) -> str:
        """Per repetition: each VM's mean vCPU run share and the spread."""
        p = self.params
        lines = [f"{p.vms} VMs x {p.vcpus} vCPUs on CPUs {list(self.cpus)}, layout "
                 f"{p.layout}, emulator {p.rate:g}/s, kernel {self.kernel}; fair share "
                 f"{self.fair_share:.3f} per vCPU"]
        for n, run in enumerate(self.runs, 1):
            shares = " ".join(f"{vm}={s:.3f}" for vm, s in run.vm_run_shares().items())
            busy = run.other_load_pcpus
            lines.append(f"repetition {n}: {shares}  spread {run.spread:.3f}" + (
                f"  (disturbed: {busy:.2f} CPUs of other work)" if busy > BUSY_PCPUS else ""))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"kernel": self.kernel, "cgroup": self.cgroup, "cpus": list(self.cpus),
                "date": self.date, "params": self.params.to_dict(),
                "fair_share": self.fair_share, "spread": self.spread,
                "max_spread": self.max_spread, "spreads": self.spreads,
                "runs": [r.to_dict() for r in self.runs], "provenance": self.provenance}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReproResult:
        """Rebuild a result from :meth:`to_dict` output."""
        data = mapping(data, "a reproducer result")
        runs = tuple(ReproRun(tuple(ThreadTimes.from_dict(t) for t in r["processes"]),
                              real_number(r.get("other_load_pcpus", 0.0), "other_load_pcpus"))
                     for r in list_of(data.get("runs", []), "runs"))
        get = data.get
        return cls(ReproParams.from_dict(data["params"]), runs, str(get("kernel", "")),
                   str(get("cgroup", "")), tuple(get("cpus", ())), str(get("date", "")),
                   dict(get("provenance", {})))


# -- running -----------------------------------------------------------------------------
def _one_run(params: ReproParams, cpus: tuple[int, ...],
             controller: CpuController | None) -> ReproRun:
    with contextlib.ExitStack() as stack:
        cgroups = (stack.enter_context(ReproCgroups(controller, params))
                   if controller is not None else None)
        procs = stack.enter_context(ReproProcesses(params, cpus, cgroups)).procs
        roles = [f"vm{vm}/{role}" for vm, role, _, _ in procs]
        edges: dict[int, tuple[float, float]] = {}

        def check(k: int) -> None:          # the host's busy time at the window's edges
            if k in (0, params.steps):
                edges[k] = (time.monotonic(), host_busy_s())
        times = measure_threads([(p.pid, p.pid) for _, _, p, _ in procs], params.window_s,
                                samples=params.steps, lead_s=params.settle_s, roles=roles,
                                check=check)
        lost = [r for r, t in zip(roles, times, strict=True) if t is None]
        if lost:
            raise ExperimentFailed(f"reproducer process(es) {', '.join(lost)} ended during "
                                   "the window (killed from outside?)")
        (t0, busy0), (t1, busy1) = edges[0], edges[params.steps]
        ours = sum(t.run_s for t in times if t is not None)
        return ReproRun(tuple(replace(t, cgroup=where or t.cgroup) for t, (*_, where)
                              in zip(times, procs, strict=True) if t is not None),
                        round((busy1 - busy0 - ours) / (t1 - t0), 3))


def run_repro(params: ReproParams | Mapping[str, Any] | None = None, *,
              progress: ProgressArg = None, wait_for_lock_s: float = 0.0,
              **changes: Any) -> ReproResult:
    """Run the reproducer: start the processes, place them, measure, remove everything.

    Parameters
    ----------
    params : ReproParams or dict, optional
        Default :class:`ReproParams` ``()``; ``changes`` (``layout="flat"``, ...) apply on top.
    progress : None, bool or a tqdm-like bar
        One step per repetition (see :mod:`kvmlab.progress`).
    wait_for_lock_s : float
        How long to wait for another kvmlab CPU measurement on this host to end.

    Raises
    ------
    ScenarioError
        For a parameter that breaks a rule (the message names it).
    ExperimentFailed
        Without a writable cpu controller (layouts ``flat``, ``nested``), or when a
        process ends early.
    """
    base = params if isinstance(params, ReproParams) else ReproParams.from_dict(params or {})
    params = ReproParams.from_dict({**base.to_dict(), **changes}) if changes else base
    mine = tuple(sorted(os.sched_getaffinity(0)))
    cpus = mine if params.pcpus is None else params.pcpus
    if set(cpus) - set(mine):
        raise ScenarioError(f"pcpus {sorted(set(cpus) - set(mine))} are not CPUs this "
                            f"process may use (it may use {list(mine)})")
    controller = cpu_controller() if params.layout != "none" else None
    runs = []
    desc = f"reproducer, layout {params.layout}, {params.rate:g} wake-ups/s"
    with stop_signals_as_exit(), measuring_lock(wait_for_lock_s), progress_bar(
            progress, total=params.repetitions, desc=desc, unit="window") as bar:
        if controller is not None:
            with signals_deferred():
                remove_stale_cgroups(controller)
        for n in range(1, params.repetitions + 1):
            bar.set_postfix_str(f"repetition {n}: settling {params.settle_s:g} s, "
                                f"measuring {params.window_s:g} s")
            runs.append(_one_run(params, cpus, controller))
            bar.update(1)
    cgroup = f"v{controller.version} {controller.root}" if controller else ""
    return ReproResult(params, tuple(runs), platform.release(), cgroup, cpus,
                       _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                       {"method": "schedstat, status, stat and wchan of every process, read "
                                  f"{params.steps + 1} times over the window "
                                  "(kvmlab.cpu.threads)"})


def rate_sweep(rates: Sequence[float], layouts: Sequence[str] = LAYOUTS, *,
               progress: ProgressArg = None, **params: Any) -> list[dict[str, Any]]:
    """Run the reproducer at every emulator wake-up rate for every layout.

    Returns
    -------
    list of dict
        One row per (layout, rate): ``layout``, ``rate``, ``spread`` (mean over the
        repetitions), ``spread_min``, ``spread_max``, ``spreads``, ``fair_share``,
        ``emulator_wakes_per_s`` (measured, mean; 0 without emulator), ``kernel``.
    """
    checked = [ReproParams.from_dict({**params, "layout": x, "rate": r})  # all rules first
               for x in list_of(layouts, "layouts", low=1, high=len(LAYOUTS))
               for r in list_of(rates, "rates", low=1, high=100)]
    rows = []
    with progress_bar(progress, total=sum(p.repetitions for p in checked), desc="rate sweep",
                      unit="window") as bar:
        for p in checked:
            result = run_repro(p, progress=bar)
            wakes = [t.wakes_per_s for run in result.runs for t in run.processes
                     if t.role.endswith("/emulator")]
            rows.append({"layout": p.layout, "rate": p.rate, "spread": result.spread,
                         "spread_min": min(result.spreads), "spread_max": result.max_spread,
                         "spreads": result.spreads, "fair_share": result.fair_share,
                         "emulator_wakes_per_s": round(sum(wakes) / len(wakes), 1)
                         if wakes else 0.0, "kernel": result.kernel})
    return rows

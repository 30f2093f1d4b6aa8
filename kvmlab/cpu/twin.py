"""Run a CPU scenario on a real host: one tiny guest per VM, busy loops inside.

Each VM of the scenario becomes a transient libvirt guest with the same vCPU
count, pinning and shares. Inside, one shell loop per vCPU (bound to it with
``taskset``) keeps it busy, or busy for part of every period. Once every guest
has started its loops, the host's own accounting of every QEMU thread is read
:data:`SAMPLES` + 1 times over ``duration_s`` (:mod:`kvmlab.cpu.threads`): run and
wait nanoseconds from ``/proc/<pid>/task/<tid>/schedstat`` (libvirt reports the same
as ``vcpu.N.time`` and ``vcpu.N.delay`` in ``virsh domstats --vcpu``), the thread's
state, context switches and ``wchan``. The kernel adds a wait to that counter only
when the wait ends, so the readings date the waits in progress at the window's
edges; each vCPU's sleep is the rest of the window. The counter's own figure, the
main loop's and QEMU's other threads' times (with wake-ups per second) stay in the
provenance. On a remote host only libvirt's counters can be read: there the wait of
a busy loop, runnable all the time, is the window minus its run time.

Examples
--------
>>> from kvmlab.cpu.scenario import VmSpec
>>> print(workload_script(VmSpec("vm1", 2)))   # doctest: +ELLIPSIS
export T0=...
for c in $(seq 0 1); do
  taskset -c $c sh -c 'while :; do :; done' &
done
echo KVMLAB-LOAD-STARTED
...
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import os
import platform
import re
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kvmlab.cpu.noise import HostNoise, NoiseProcess
from kvmlab.cpu.probe import host_busy_s, host_cpu_count, host_scheduler, qemu_thread_role
from kvmlab.cpu.result import CpuResult, VcpuStats
from kvmlab.cpu.scenario import DEFAULT_SHARES, CpuScenario, VmSpec, as_scenario
from kvmlab.cpu.sched_trace import (
    SCHED_DEBUG,
    StateSampler,
    sched_trace,
    summarise,
    summarise_states,
)
from kvmlab.cpu.threads import SAMPLES, ThreadTimes, list_threads, measure_threads
from kvmlab.errors import ExperimentFailed, ScenarioError
from kvmlab.host.connect import connection, is_local_uri, version_string
from kvmlab.host.guest import WATCH_S, TransientGuest, live_uri
from kvmlab.host.image import cache_dir
from kvmlab.host.owner import parse_owner
from kvmlab.host.signals import stop_signals_as_exit
from kvmlab.host.tracefs import find_tracefs
from kvmlab.lab import MEASURED
from kvmlab.progress import ProgressArg, check_progress, progress_bar
from kvmlab.validate import boolean

__all__ = ["LOAD_MARKER", "SAMPLES", "host_pinning", "idle_busy_vcpus", "measuring_lock",
           "remote_vcpus", "run_on_host", "run_steps", "workload_script"]

LOAD_MARKER = "KVMLAB-LOAD-STARTED"
SETTLE_S = 1.0
# A busy vCPU thread runnable for less than this share of a window slept: measure again.
MIN_RUNNABLE = 0.9
MAX_WINDOWS = 3
BUSY_HOST_PCPUS = 0.3
"""Other load (in pCPUs) above which a result is flagged: the shares are disturbed."""


def _loop(vm: VmSpec) -> str:
    if vm.busy_fraction >= 1:
        return "while :; do :; done"
    if vm.busy_fraction <= 0:
        return "sleep 1000000"
    segments = " ".join(f"{round(b * 1000)}:{round(i * 1000)}" for b, i in vm.segments_ms())
    # Time-based duty cycle: runnable until the deadline, then asleep until the next one.
    # $EPOCHREALTIME (microseconds) is read without forking, so the busy part is pure CPU.
    # All loops of a VM start their cycle at the same instant $T0.
    return ("t=$T0; n=${EPOCHREALTIME/./}; [ $t -gt $n ] && usleep $((t-n)); "
            "while :; do for s in " + segments + "; do "
            "t=$((t+${s%:*})); while [ ${EPOCHREALTIME/./} -lt $t ]; do :; done; "
            "t=$((t+${s#*:})); n=${EPOCHREALTIME/./}; "
            "[ $t -gt $n ] && usleep $((t-n)); done; done")


def workload_script(vm: VmSpec) -> str:
    """The guest script that runs one workload loop per vCPU, then idles."""
    return ("export T0=$((${EPOCHREALTIME/./} + 300000))\n"
            f"for c in $(seq 0 {vm.vcpus - 1}); do\n"
            f"  taskset -c $c sh -c '{_loop(vm)}' &\n"
            "done\n"
            f"echo {LOAD_MARKER}\n"
            "sleep 1000000\n")


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")[:20] or "vm"


def host_pinning(scenario: CpuScenario, vm: VmSpec) -> dict[int, list[int]]:
    """The ``<vcpupin>`` sets for ``vm``: the scenario's pCPU k is host CPU k.

    A scenario with fewer pCPUs than the host confines every vCPU to host CPUs
    0..pcpus-1, so that the host behaves like the smaller one of the scenario.
    """
    return {i: list(vm.allowed(i, scenario.pcpus)) for i in range(vm.vcpus)}


@contextlib.contextmanager
def measuring_lock(wait_s: float = 0.0) -> Iterator[None]:
    """One CPU measurement at a time on this host: two would disturb each other.

    Waits up to ``wait_s`` seconds for another one to finish, then fails.

    Examples
    --------
    >>> with measuring_lock():
    ...     with measuring_lock():
    ...         pass
    Traceback (most recent call last):
    ...
    kvmlab.errors.ExperimentFailed: another kvmlab CPU measurement is running on this host; ...
    """
    path = cache_dir() / "cpu-measurement.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    with open(path, "w") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ExperimentFailed(
                        "another kvmlab CPU measurement is running on this host; wait for it "
                        "to finish (two would disturb each other)") from None
                time.sleep(0.2)
        yield


def _timed(read: Callable[[], Any]) -> tuple[Any, float]:
    """Call ``read``; return its value and the middle of the time it took."""
    start = time.monotonic()
    value = read()
    return value, (start + time.monotonic()) / 2


def _versions(conn: Any) -> dict[str, str]:
    return {"libvirt": version_string(conn.getLibVersion()),
            "qemu": version_string(conn.getVersion())}


def run_steps(scenario: CpuScenario) -> int:
    """The steps :func:`run_on_host` reports as its progress: start each guest, see each
    guest's loops running, let them settle, measure.

    Examples
    --------
    >>> from kvmlab.cpu.scenario import load_scenario
    >>> run_steps(load_scenario("cpu-seed-example"))        # 2 VMs
    6
    """
    return 2 * len(scenario.vms) + 2


def run_on_host(scenario: CpuScenario | Mapping[str, Any], *, uri: str | None = None,
                progress: ProgressArg = None, boot_timeout_s: float = 180.0,
                trace: bool = False, noise: HostNoise | None = None) -> CpuResult:
    """Run ``scenario`` as real guests on a local QEMU host and measure each vCPU.

    Parameters
    ----------
    scenario : CpuScenario or dict
    uri : str, optional
        A QEMU libvirt URI, local or remote (default: see :func:`kvmlab.host.guest.live_uri`).
    progress : None, bool or a tqdm-like bar
        See :mod:`kvmlab.progress`. The unit is a step of the run (:func:`run_steps`:
        each guest started, each guest's loops running, the settling, the measurement);
        ``set_postfix_str`` says what it is doing.
    boot_timeout_s : float
        How long all guests may take to boot and start their loops.
    trace : bool
        Also trace the scheduler over the window (:mod:`kvmlab.cpu.sched_trace`): who
        woke each main loop and how, and what moved threads between CPUs, in
        ``provenance['sched_trace']``; and, where debugfs shows it, the scheduler's
        state every 0.1 s (``['state']``: how often the pCPUs' loads were far enough apart
        for the load balancer, and the groups' weights). Needs a local host, root and
        tracefs.
    noise : HostNoise, optional
        Run this much other work on the host from the settling on
        (:class:`kvmlab.cpu.noise.NoiseProcess`); ``provenance['noise']`` says how much.
        Needs a local host.

    Returns
    -------
    CpuResult
        With ``source`` :data:`kvmlab.lab.MEASURED` and the host's provenance.

    Raises
    ------
    ScenarioError
        If the scenario, ``uri`` or ``progress`` breaks a rule (checked before the host
        is asked anything), the scenario has more pCPUs than the host, or ``trace`` is
        asked of a remote host.
    HostUnavailable, ExperimentFailed
        ExperimentFailed also when ``trace`` is asked and tracefs is missing (checked
        before any guest starts).
    """
    scenario = as_scenario(scenario)
    uri = live_uri(uri)
    progress = check_progress(progress)
    trace = boolean(trace, "trace")
    if trace and not is_local_uri(uri):
        raise ScenarioError(f"trace=True needs QEMU's threads on this machine, and {uri} is "
                            "a remote host")
    if noise is not None and not isinstance(noise, HostNoise):
        raise ScenarioError(f"noise must be a HostNoise, not {type(noise).__name__}")
    noise = noise or HostNoise()
    if noise.bursts_per_s > 0 and not is_local_uri(uri):
        raise ScenarioError(f"noise runs on this machine, and {uri} is a remote host")
    trace_root = find_tracefs() if trace else None
    with connection(uri) as conn:
        host_cpus = conn.getInfo()[2]
        versions = _versions(conn)
        hostname = conn.getHostname()
    usable = min(host_cpus, host_cpu_count()) if is_local_uri(uri) else host_cpus
    if scenario.pcpus > usable:
        raise ScenarioError(
            f"the scenario has {scenario.pcpus} pCPUs but the host at {uri} has {usable}: "
            f"a real run cannot show more CPUs than it has (use pcpus <= {usable}, or "
            "simulate() alone)")
    # Busy guests that outlive a killed run must not disturb later measurements.
    lifetime = boot_timeout_s + SETTLE_S + scenario.duration_s + 120
    desc = f"running {scenario.name or 'a CPU scenario'} on {uri}"
    with stop_signals_as_exit(), measuring_lock(), contextlib.ExitStack() as stack, progress_bar(
            progress, total=run_steps(scenario), desc=desc, unit="step") as bar:
        guests = []
        for vm in scenario.vms:
            bar.set_postfix_str(f"starting {vm.name}: {vm.vcpus} vCPU(s)")
            guests.append(stack.enter_context(TransientGuest(
                workload_script(vm), vcpus=vm.vcpus, memory_mib=128,
                pinning=host_pinning(scenario, vm), emulator_pinning=vm.emulator_pin or (),
                shares=None if vm.shares == DEFAULT_SHARES else vm.shares, uri=uri,
                purpose=f"cpu-{_slug(vm.name)}", lifetime_s=lifetime)))
            if len(guests) == 1:
                _require_cgroup_per_vm(guests[0], uri)
            bar.update(1)
        deadline = time.monotonic() + boot_timeout_s
        for vm, guest in zip(scenario.vms, guests, strict=True):
            bar.set_postfix_str(f"waiting for the loops of {vm.name}")
            guest.wait_for(LOAD_MARKER, max(1.0, deadline - time.monotonic()))
            bar.update(1)
        stack.enter_context(NoiseProcess(noise))
        bar.set_postfix_str(f"all loops running; settling for {SETTLE_S:g} s")
        time.sleep(SETTLE_S)
        bar.update(1)
        bar.set_postfix_str(f"measuring for {scenario.duration_s:g} s")
        local = [g.local_qemu_pid() for g in guests]
        pids = [p for p in local if p is not None] if None not in local else None
        discarded: list[str] = []
        for attempt in range(1, MAX_WINDOWS + 1):
            window = (_measure_window(guests, pids, scenario, trace_root) if pids is not None
                      else _measure_remote_window(guests, scenario))
            vcpus, domstats = window.vcpu_stats(scenario)
            idle = idle_busy_vcpus(scenario, domstats)
            if not idle:
                break
            reason = (f"window {attempt}: busy vCPU(s) {', '.join(idle)} were runnable less "
                      f"than {MIN_RUNNABLE:.0%} of the time (the vCPU thread slept, so the "
                      "guest or QEMU, not the host scheduler, held it back)")
            discarded.append(reason)
            if attempt < MAX_WINDOWS:
                bar.set_postfix_str(f"window {attempt} disturbed; measuring again for "
                                    f"{scenario.duration_s:g} s")
        bar.update(1)
        accel = guests[0].accel
        others = other_guests(guests[0].conn, {g.name for g in guests})
    other_load = round(window.busy_s / window.wall_s - sum(v.run_s for v in vcpus)
                       / window.wall_s, 3)
    warnings = busy_host_warnings(other_load, others)
    for text in warnings:
        print(f"kvmlab: warning: {text}", file=sys.stderr)
    provenance = {
        "host": hostname, "uri": uri, "host_cpus": host_cpus, "accelerator": accel,
        "libvirt": versions["libvirt"], "qemu": versions["qemu"],
        "host_kernel": platform.release() if pids is not None else "(remote)",
        # its sched_* settings (a kernel may have options mainline Linux has not) and
        # whether the host is itself a virtual machine
        "host_scheduler": host_scheduler() if pids is not None else "(remote)",
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "method": (f"schedstat, status, stat and wchan of every QEMU thread, read "
                   f"{SAMPLES + 1} times over the window; waits in progress at its edges "
                   "dated from the readings (kvmlab.cpu.threads)" if pids is not None else
                   "libvirt's vcpu.N.time and vcpu.N.delay (QEMU runs on another machine), "
                   "sampled twice (wait of a busy loop: window minus run time)"),
        # CPU time (in pCPUs) the host spent on anything but the vCPU threads: QEMU's
        # other threads, libvirt, and whatever else ran. Much above 0.1 disturbs the shares.
        "other_load_pcpus": other_load,
        # other work this run added on purpose (kvmlab.cpu.noise), counted in other_load
        "noise": asdict(noise),
        "other_guests": others,
        "warnings": warnings,
        "domstats": domstats,
        "discarded_windows": discarded,
        # Per VM, every QEMU thread: vCPUs, the main loop (libvirt's emulator cgroup),
        # IO mon_iothread, call_rcu, ...: run, wait, sleep, wake-ups and wchans.
        "threads": {vm.name: [t.to_dict() for t in ts]
                    for vm, ts in zip(scenario.vms, window.threads, strict=True) if ts},
    }
    if window.sched_trace is not None:
        provenance["sched_trace"] = window.sched_trace
    return CpuResult(scenario=scenario, source=MEASURED, vcpus=tuple(vcpus),
                     duration_s=window.wall_s, provenance=provenance)


@dataclass
class _Window:
    """Every vCPU thread's times over one window (and libvirt's statistics around it)."""

    vcpus: list[list[ThreadTimes]]
    threads: list[list[ThreadTimes]]
    stats_before: list[dict[str, Any]]
    stats_after: list[dict[str, Any]]
    wall_s: float
    stats_wall_s: float
    busy_s: float
    sched_trace: dict[str, Any] | None = None

    def vcpu_stats(self, scenario: CpuScenario) -> tuple[list[VcpuStats],
                                                         list[dict[str, Any]]]:
        """Per-vCPU run, wait and sleep over the window, and libvirt's view beside them."""
        vcpus: list[VcpuStats] = []
        domstats: list[dict[str, Any]] = []
        wall = self.wall_s
        for vm, times, sb, sa in zip(scenario.vms, self.vcpus, self.stats_before,
                                     self.stats_after, strict=True):
            if len(times) != vm.vcpus:
                raise ExperimentFailed(f"found {len(times)} vCPU threads for {vm.name}, "
                                       f"expected {vm.vcpus}")
            for n, t in enumerate(times):
                vcpus.append(VcpuStats(vm.name, n, run_s=t.run_s, wait_s=t.wait_s,
                                       slices=t.slices, duration_s=wall, sleep_s=t.sleep_s))
                domstats.append({
                    "vm": vm.name, "vcpu": n,
                    "schedstat_wait_share": t.counter_wait_s / wall,
                    "runnable_share": (t.run_s + t.wait_s) / wall,
                    "wait_error_share": t.wait_error_s / wall,
                    "time_share": (sa.get(f"vcpu.{n}.time", 0) - sb.get(f"vcpu.{n}.time", 0))
                    / 1e9 / self.stats_wall_s,
                    "delay_share": (sa.get(f"vcpu.{n}.delay", 0)
                                    - sb.get(f"vcpu.{n}.delay", 0)) / 1e9 / self.stats_wall_s})
        return vcpus, domstats


def _vcpu_order(times: list[ThreadTimes]) -> list[ThreadTimes]:
    """The vCPU threads among a QEMU process's threads, by vCPU index."""
    found = [t for t in times if re.fullmatch(r"vcpu\d+", t.role)]
    return sorted(found, key=lambda t: int(t.role[4:]))


def _measure_window(guests: list[TransientGuest], pids: list[int],
                    scenario: CpuScenario, trace_root: Path | None = None) -> _Window:
    """Read every thread of every QEMU process :data:`SAMPLES` times over the window
    (and trace the scheduler meanwhile, into tracefs at ``trace_root``, if given)."""
    ids, roles, owner = [], [], []
    for n, pid in enumerate(pids):
        for tid, name in list_threads(pid):
            ids.append((pid, tid))
            roles.append(qemu_thread_role(pid, tid, name))
            owner.append(n)
    # libvirt's statistics are a cross-check, read outside the timed window: on a
    # busy host, a call to the daemon can take a while.
    stats_before, stats_t0 = _timed(lambda: [g.stats() for g in guests])
    t0 = time.monotonic()
    busy0 = host_busy_s()
    traced = {tid: (scenario.vms[o].name, role)
              for (_pid, tid), role, o in zip(ids, roles, owner, strict=True)}
    with contextlib.ExitStack() as stack:
        text = (stack.enter_context(sched_trace(
            [tid for tid, (_vm, role) in traced.items() if role == "main-loop"],
            root=trace_root)) if trace_root is not None else None)
        states = (stack.enter_context(StateSampler())
                  if trace_root is not None and os.access(SCHED_DEBUG, os.R_OK) else None)
        times = measure_threads(ids, scenario.duration_s, samples=SAMPLES, roles=roles,
                                check=_watcher(guests))
    busy1 = host_busy_s()
    wall = time.monotonic() - t0
    stats_after, stats_t1 = _timed(lambda: [g.stats() for g in guests])
    threads = [[t for t, o in zip(times, owner, strict=True) if o == n and t is not None]
               for n in range(len(pids))]
    trace = summarise(text.text, traced) if text is not None else None
    if trace is not None:
        trace["state"] = summarise_states(states.samples) if states is not None else (
            f"not read: {SCHED_DEBUG} is not readable (debugfs not mounted, or not root)")
    return _Window([_vcpu_order(ts) for ts in threads], threads, stats_before, stats_after,
                   wall, stats_t1 - stats_t0, busy1 - busy0, trace)


def _watcher(guests: list[TransientGuest]) -> Callable[[int], None]:
    """A check that asks libvirt every :data:`WATCH_S` seconds whether every guest runs.

    A libvirtd that dies mid-window is reported within :data:`WATCH_S` as a
    :class:`~kvmlab.errors.HostUnavailable`, not after the window as a stopped guest.
    """
    last = [time.monotonic()]

    def check(_reading: int) -> None:
        if time.monotonic() - last[0] < WATCH_S:
            return
        last[0] = time.monotonic()
        for guest in guests:
            if not guest.is_running():
                raise ExperimentFailed(f"guest {guest.name} stopped during the measurement")
    return check


def other_guests(conn: Any, ours: set[str]) -> list[str]:
    """The running ``kvmlab-`` guests of the host that are not this run's, with their owner.

    Examples
    --------
    >>> from kvmlab.host.connect import connection
    >>> with connection("test:///default") as conn:
    ...     other_guests(conn, set())                   # the test driver's guest is not ours
    []
    """
    found = []
    with contextlib.suppress(Exception):
        for dom in conn.listAllDomains():
            name = dom.name()
            if name.startswith("kvmlab-") and name not in ours and dom.isActive():
                owner = parse_owner(_description(dom))
                found.append(f"{name} ({owner.describe() if owner else 'owner unknown'})")
    return sorted(found)


def _description(dom: Any) -> str:
    with contextlib.suppress(Exception):
        return ET.fromstring(dom.XMLDesc()).findtext("description") or ""
    return ""


def busy_host_warnings(other_load_pcpus: float, others: list[str]) -> list[str]:
    """Warnings for a result measured on a host busy with other work.

    Examples
    --------
    >>> busy_host_warnings(0.05, [])
    []
    >>> [text] = busy_host_warnings(1.5, ["kvmlab-cpu-vm1-0a1b2c3d (pid 7)"])
    >>> "1.50 pCPU(s) on other work" in text, text.endswith("kvmlab-cpu-vm1-0a1b2c3d (pid 7)")
    (True, True)
    """
    if other_load_pcpus <= BUSY_HOST_PCPUS and not others:
        return []
    text = (f"the host spent {other_load_pcpus:.2f} pCPU(s) on other work during the "
            f"measurement (more than {BUSY_HOST_PCPUS:g}): the shares are disturbed and do "
            "not add up to the host's CPUs" if other_load_pcpus > BUSY_HOST_PCPUS else
            f"other work took {other_load_pcpus:.2f} pCPU(s) during the measurement")
    if others:
        text += "; other kvmlab guests running: " + ", ".join(others)
    return [text]


def _require_cgroup_per_vm(guest: TransientGuest, uri: str) -> None:
    """Refuse a host that runs guests without a cgroup each: the lab measures their fairness.

    The running guest's ``<resource><partition>`` says it, as the target host reports it.
    """
    if guest.cgroup_partition() is None:
        raise ScenarioError(
            f"the host at {uri} runs guests without a cgroup per VM (the running guest has "
            "no <resource><partition>), so the fairness between VMs this lab measures does "
            "not exist there; use a QEMU system daemon (qemu:///system, or "
            "qemu+ssh://root@HOST/system)")


def remote_vcpus(vm: VmSpec, before: dict[str, Any], after: dict[str, Any],
                 wall_s: float) -> list[ThreadTimes]:
    """A guest's vCPUs over a window as libvirt's statistics show them (``vcpu.N.time``,
    ``vcpu.N.delay``), for a host whose threads cannot be read from here.

    Without the threads' states the wait in progress at the edges is unknown: a busy
    loop, runnable all the time, waited the rest of the window; a duty cycle takes
    the counter's figure.

    Examples
    --------
    >>> [t] = remote_vcpus(VmSpec("vm1", 1), {"vcpu.0.time": 0, "vcpu.0.delay": 0},
    ...                    {"vcpu.0.time": 600_000_000, "vcpu.0.delay": 300_000_000}, 1.0)
    >>> t.run_s, t.wait_s, t.sleep_s, t.counter_wait_s
    (0.6, 0.4, 0.0, 0.3)
    """
    out = []
    for n in range(vm.vcpus):
        run = min(wall_s, max(0.0, (after.get(f"vcpu.{n}.time", 0)
                                    - before.get(f"vcpu.{n}.time", 0)) / 1e9))
        counted = (after.get(f"vcpu.{n}.delay", 0) - before.get(f"vcpu.{n}.delay", 0)) / 1e9
        wait = wall_s - run if vm.busy_fraction >= 1 else min(max(0.0, counted), wall_s - run)
        out.append(ThreadTimes(0, f"CPU {n}", wall_s, run, wait, max(0.0, wall_s - run - wait),
                               0.0, 0.0, 0, counted, 0.0, role=f"vcpu{n}"))
    return out


def _node_busy_s(conn: Any) -> float:
    """CPU seconds the target host has spent busy, all CPUs summed (libvirt's node stats)."""
    stats = conn.getCPUStats(-1)
    return (stats.get("kernel", 0) + stats.get("user", 0)) / 1e9


def _measure_remote_window(guests: list[TransientGuest], scenario: CpuScenario) -> _Window:
    """One window read through libvirt alone: QEMU runs on another machine."""
    conn = guests[0].conn
    t0 = time.monotonic()
    busy0 = _node_busy_s(conn)
    stats_before = [g.stats() for g in guests]
    check = _watcher(guests)
    end = time.monotonic() + scenario.duration_s
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(WATCH_S, left))
        check(0)
    stats_after = [g.stats() for g in guests]
    busy1 = _node_busy_s(conn)
    wall = time.monotonic() - t0
    vcpus = [remote_vcpus(vm, sb, sa, wall) for vm, sb, sa in zip(scenario.vms, stats_before,
                                                                  stats_after, strict=True)]
    return _Window(vcpus, [[] for _ in guests], stats_before, stats_after, wall, wall,
                   busy1 - busy0)


def idle_busy_vcpus(scenario: CpuScenario, domstats: list[dict[str, Any]]) -> list[str]:
    """The always-busy vCPUs whose thread was not runnable for most of the window.

    Such a thread slept (its guest halted the vCPU, or QEMU held it on a lock): the
    window measures the guest, not the host's scheduler, and is measured again.

    Parameters
    ----------
    scenario : CpuScenario
    domstats : list of dict
        Per vCPU: ``vm``, ``vcpu`` and ``runnable_share`` (run plus wait, over the window).

    Returns
    -------
    list of str
        ``'vm/vcpu (share)'`` of each such vCPU; empty for a window to keep.

    Examples
    --------
    >>> from kvmlab.cpu.scenario import load_scenario
    >>> idle_busy_vcpus(load_scenario("cpu-seed-example"),
    ...                 [{"vm": "vm1", "vcpu": 0, "runnable_share": 0.2}])
    ['vm1/0 (20%)']
    """
    busy = {vm.name for vm in scenario.vms if vm.busy_fraction >= 1}
    return [f"{d['vm']}/{d['vcpu']} ({d['runnable_share']:.0%})" for d in domstats
            if d["vm"] in busy and d["runnable_share"] < MIN_RUNNABLE]

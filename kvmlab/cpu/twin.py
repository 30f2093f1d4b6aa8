"""Run a CPU scenario on a real host: one tiny guest per VM, busy loops inside.

Each VM of the scenario becomes a transient libvirt guest with the same vCPU
count, pinning and shares. Inside, one shell loop per vCPU (bound to it with
``taskset``) keeps it busy, or busy for part of every period. Once every guest
has started its loops, the host's own accounting of each vCPU thread is read
twice, ``duration_s`` apart: run and wait nanoseconds from
``/proc/<pid>/task/<tid>/schedstat`` (libvirt reports the same as
``vcpu.N.time`` and ``vcpu.N.delay`` in ``virsh domstats --vcpu``).

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
import platform
import re
import time
from collections.abc import Callable
from typing import Any

from kvmlab.cpu.probe import host_busy_s, host_cpu_count, vcpu_threads
from kvmlab.cpu.result import CpuResult, VcpuStats
from kvmlab.cpu.scenario import CpuScenario, VmSpec
from kvmlab.errors import ExperimentFailed, ScenarioError
from kvmlab.host.connect import connect
from kvmlab.host.guest import TransientGuest, live_uri

LOAD_MARKER = "KVMLAB-LOAD-STARTED"
SETTLE_S = 1.0


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


def _timed(read: Callable[[], Any]) -> tuple[Any, float]:
    """Call ``read``; return its value and the middle of the time it took."""
    start = time.monotonic()
    value = read()
    return value, (start + time.monotonic()) / 2


def _versions(conn: Any) -> dict[str, str]:
    def v(n: int) -> str:
        return f"{n // 1_000_000}.{n // 1000 % 1000}.{n % 1000}"
    return {"libvirt": v(conn.getLibVersion()), "qemu": v(conn.getVersion())}


def run_on_host(scenario: CpuScenario | dict[str, Any], uri: str | None = None, *,
                progress: Callable[[str], None] | None = None,
                boot_timeout_s: float = 180.0) -> CpuResult:
    """Run ``scenario`` as real guests on a local QEMU host and measure each vCPU.

    Parameters
    ----------
    scenario : CpuScenario or dict
    uri : str, optional
        A local QEMU libvirt URI (default: see :func:`kvmlab.host.guest.live_uri`).
    progress : callable, optional
        Receives a line of text at each step.
    boot_timeout_s : float
        How long all guests may take to boot and start their loops.

    Returns
    -------
    CpuResult
        With ``source='measured'`` and the host's provenance.

    Raises
    ------
    ScenarioError
        If the scenario has more pCPUs than the host.
    HostUnavailable, ExperimentFailed
    """
    if isinstance(scenario, dict):
        scenario = CpuScenario.from_dict(scenario)
    say = progress or (lambda _line: None)
    uri = live_uri(uri)
    conn = connect(uri)
    try:
        host_cpus = conn.getInfo()[2]
        versions = _versions(conn)
        hostname = conn.getHostname()
    finally:
        conn.close()
    usable = min(host_cpus, host_cpu_count())
    if scenario.pcpus > usable:
        raise ScenarioError(
            f"the scenario has {scenario.pcpus} pCPUs but the host at {uri} has {usable}: "
            f"a real run cannot show more CPUs than it has (use pcpus <= {usable}, or "
            "simulate() alone)")
    with contextlib.ExitStack() as stack:
        guests = []
        for vm in scenario.vms:
            say(f"starting {vm.name}: {vm.vcpus} vCPU(s)")
            guests.append(stack.enter_context(TransientGuest(
                workload_script(vm), vcpus=vm.vcpus, memory_mib=128,
                pinning=host_pinning(scenario, vm), shares=vm.shares, uri=uri,
                purpose=f"cpu-{_slug(vm.name)}")))
        deadline = time.monotonic() + boot_timeout_s
        for guest in guests:
            guest.wait_for(LOAD_MARKER, max(1.0, deadline - time.monotonic()))
        say(f"all loops running; measuring for {scenario.duration_s:g} s")
        time.sleep(SETTLE_S)
        pids = [g.qemu_pid() for g in guests]
        # libvirt's statistics are a cross-check, read outside the timed window: on a
        # busy host, a call to the daemon can take a while.
        stats_before, stats_t0 = _timed(lambda: [g.stats() for g in guests])
        t0 = time.monotonic()
        busy0 = host_busy_s()
        before = [vcpu_threads(pid) for pid in pids]
        time.sleep(scenario.duration_s)
        after = [vcpu_threads(pid) for pid in pids]
        busy1 = host_busy_s()
        wall = time.monotonic() - t0
        stats_after, stats_t1 = _timed(lambda: [g.stats() for g in guests])
        stats_wall = stats_t1 - stats_t0
        accel = guests[0].accel
    vcpus: list[VcpuStats] = []
    domstats: list[dict[str, float]] = []
    for vm, b, a, sb, sa in zip(scenario.vms, before, after, stats_before, stats_after,
                                strict=True):
        if len(b) != vm.vcpus or len(a) != vm.vcpus:
            raise ExperimentFailed(f"found {len(a)} vCPU threads for {vm.name}, "
                                   f"expected {vm.vcpus}")
        for tb, ta in zip(b, a, strict=True):
            vcpus.append(VcpuStats(vm.name, tb.vcpu, run_s=(ta.run_ns - tb.run_ns) / 1e9,
                                   wait_s=(ta.wait_ns - tb.wait_ns) / 1e9,
                                   slices=ta.slices - tb.slices, duration_s=wall))
            n = tb.vcpu
            domstats.append({
                "vm": vm.name, "vcpu": n,
                "time_share": (sa.get(f"vcpu.{n}.time", 0) - sb.get(f"vcpu.{n}.time", 0))
                / 1e9 / stats_wall,
                "delay_share": (sa.get(f"vcpu.{n}.delay", 0) - sb.get(f"vcpu.{n}.delay", 0))
                / 1e9 / stats_wall})
    provenance = {
        "host": hostname, "uri": uri, "host_cpus": host_cpus, "accelerator": accel,
        "libvirt": versions["libvirt"], "qemu": versions["qemu"],
        "host_kernel": platform.release(),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "method": "schedstat of each vCPU thread, sampled twice",
        # CPU time (in pCPUs) the host spent on anything but the vCPU threads: QEMU's
        # other threads, libvirt, and whatever else ran. Much above 0.1 disturbs the shares.
        "other_load_pcpus": round((busy1 - busy0) / wall - sum(v.run_s for v in vcpus) / wall, 3),
        "domstats": domstats,
    }
    return CpuResult(scenario=scenario, source="measured", vcpus=tuple(vcpus),
                     duration_s=wall, provenance=provenance)

"""Look at the vCPU threads of a running guest from the host.

A KVM (or TCG) guest is one QEMU process; each of its vCPUs is one thread of
that process, named ``CPU <n>/KVM`` (or ``CPU <n>/TCG``). The host schedules
these threads like any other. For each one, the kernel keeps in
``/proc/<pid>/task/<tid>/schedstat`` three numbers: nanoseconds spent running,
nanoseconds spent runnable but waiting for a CPU, and the number of time slices.

Examples
--------
>>> parse_schedstat("1500000 250000 12\\n")
(1500000, 250000, 12)
>>> parse_vcpu_comm("CPU 3/TCG"), parse_vcpu_comm("qemu-system-x86")
(3, None)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_VCPU_COMM = re.compile(r"^CPU (\d+)/(KVM|TCG)$")


def parse_schedstat(text: str) -> tuple[int, int, int]:
    """Return (run_ns, wait_ns, timeslices) from a schedstat line."""
    run, wait, slices = (int(x) for x in text.split()[:3])
    return run, wait, slices


def parse_vcpu_comm(comm: str) -> int | None:
    """Return the vCPU index of a QEMU thread name, or None for other threads."""
    match = _VCPU_COMM.match(comm.strip())
    return int(match.group(1)) if match else None


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """Expand a kernel CPU list such as ``0-2,5``.

    Examples
    --------
    >>> parse_cpu_list("0-2,5")
    (0, 1, 2, 5)
    """
    cpus: list[int] = []
    for part in text.strip().split(","):
        if "-" in part:
            lo, hi = part.split("-")
            cpus.extend(range(int(lo), int(hi) + 1))
        elif part:
            cpus.append(int(part))
    return tuple(cpus)


@dataclass(frozen=True)
class VcpuThread:
    """One vCPU thread of a QEMU process, as the host sees it right now."""

    vcpu: int
    tid: int
    name: str
    last_pcpu: int
    allowed_pcpus: tuple[int, ...]
    run_ns: int
    wait_ns: int
    slices: int


def vcpu_threads(pid: int, proc: Path = Path("/proc")) -> list[VcpuThread]:
    """List the vCPU threads of QEMU process ``pid``, sorted by vCPU index.

    virsh equivalent: ``virsh vcpuinfo DOMAIN`` (thread ids: ``virsh qemu-monitor-command
    DOMAIN --hmp info cpus``).
    """
    threads = []
    for task in (proc / str(pid) / "task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            index = parse_vcpu_comm(name)
            if index is None:
                continue
            stat = (task / "stat").read_text()
            # fields after the ")" that closes the name; field 39 (processor) is index 36 there
            last_pcpu = int(stat.rsplit(")", 1)[1].split()[36])
            status = (task / "status").read_text()
            allowed = re.search(r"^Cpus_allowed_list:\s*(\S+)", status, re.M)
            run, wait, slices = parse_schedstat((task / "schedstat").read_text())
        except (FileNotFoundError, ProcessLookupError):
            continue                     # the thread ended while we looked
        threads.append(VcpuThread(index, int(task.name), name, last_pcpu,
                                  parse_cpu_list(allowed.group(1)) if allowed else (),
                                  run, wait, slices))
    return sorted(threads, key=lambda t: t.vcpu)


def host_busy_s(proc: Path = Path("/proc")) -> float:
    """CPU seconds this host has spent busy (not idle or waiting for I/O), all CPUs summed.

    Read twice around a measurement, it tells how much CPU time went to something
    other than the guests' vCPU threads.
    """
    fields = (proc / "stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(x) for x in fields]
    busy = sum(ticks[:8]) - ticks[3] - ticks[4]        # all but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def host_cpu_count() -> int:
    """The number of CPUs this host can schedule on."""
    return len(os.sched_getaffinity(0))

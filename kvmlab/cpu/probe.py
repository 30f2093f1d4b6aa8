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

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from kvmlab.errors import ExperimentFailed
from kvmlab.host.owner import process_start

_VCPU_COMM = re.compile(r"^CPU (\d+)/(KVM|TCG)$")


def parse_schedstat(text: str) -> tuple[int, int, int]:
    """Return (run_ns, wait_ns, timeslices) from a schedstat line."""
    run, wait, slices = (int(x) for x in text.split()[:3])
    return run, wait, slices


def parse_vcpu_comm(comm: str) -> int | None:
    """Return the vCPU index of a QEMU thread name, or None for other threads."""
    match = _VCPU_COMM.match(comm.strip())
    return int(match.group(1)) if match else None


def qemu_thread_role(pid: int, tid: int, name: str) -> str:
    """What a thread of QEMU process ``pid`` does: ``vcpuN``, ``main-loop`` (the main
    thread, which runs QEMU's main loop: libvirt's *emulator* cgroup holds it) or its name
    (``IO mon_iothread``, ``call_rcu``, ``qemu-system-x86``, ``worker``, ...).

    Examples
    --------
    >>> qemu_thread_role(10, 12, "CPU 1/TCG"), qemu_thread_role(10, 10, "qemu-system-x86")
    ('vcpu1', 'main-loop')
    >>> qemu_thread_role(10, 11, "call_rcu")
    'call_rcu'
    """
    index = parse_vcpu_comm(name)
    if index is not None:
        return f"vcpu{index}"
    return "main-loop" if tid == pid else name.strip()


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


def host_scheduler(proc: Path = Path("/proc")) -> dict[str, object]:
    """What the host's scheduler is, beyond its kernel's version: its ``sched_*`` settings.

    A kernel may carry scheduler options that mainline Linux does not have (a cloud
    provider's, say), and a host may itself be a virtual machine, its CPUs virtual: both
    change what a measurement on it means, so the CPU lab records them beside every run.

    Returns
    -------
    dict
        ``settings``: every readable ``/proc/sys/kernel/sched_*`` value (an int where it is
        one); ``is_a_guest``: the CPU flags have ``hypervisor``.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "sys/kernel").mkdir(parents=True)
    >>> _ = (root / "sys/kernel/sched_autogroup_enabled").write_text("1\\n")
    >>> _ = (root / "cpuinfo").write_text("flags : fpu sse2 hypervisor\\n")
    >>> host_scheduler(root)
    {'settings': {'sched_autogroup_enabled': 1}, 'is_a_guest': True}
    """
    settings: dict[str, int | str] = {}
    for path in sorted((proc / "sys/kernel").glob("sched_*")):
        with contextlib.suppress(OSError):
            text = path.read_text().strip()
            settings[path.name] = int(text) if re.fullmatch(r"-?\d+", text) else text
    try:
        flags = next((line for line in (proc / "cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), "")
    except OSError:
        flags = ""
    return {"settings": settings, "is_a_guest": "hypervisor" in flags.split()}


# -- the cpu controller of cgroups -------------------------------------------------------
def cpu_weight(shares: int) -> int:
    """cgroup v2's ``cpu.weight`` for v1's ``cpu.shares`` (1024 is 100), as the kernel and
    systemd convert them.

    Examples
    --------
    >>> cpu_weight(1024), cpu_weight(2), cpu_weight(512), cpu_weight(262144)
    (100, 1, 50, 10000)
    """
    return min(10000, max(1, (shares * 100 + 512) // 1024))


@dataclass(frozen=True)
class CpuController:
    """Where the ``cpu`` controller is mounted: cgroup ``version`` 1 or 2, at ``root``."""

    version: int
    root: Path


def cpu_controller(mounts: str | None = None) -> CpuController:
    """The ``cpu`` controller this process may make cgroups in; else ExperimentFailed.

    ``mounts``: the text of ``/proc/self/mounts`` (read by default). A v1 hierarchy with
    ``cpu`` wins; else a v2 one whose ``cgroup.controllers`` offers ``cpu``.

    Examples
    --------
    >>> cpu_controller("cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\\n")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ExperimentFailed: no cpu controller: ... What to do: ...
    """
    if mounts is None:
        mounts = Path("/proc/self/mounts").read_text()
    found = None
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        where = Path(parts[1].replace("\\040", " "))
        if parts[2] == "cgroup" and "cpu" in parts[3].split(","):
            found = CpuController(1, where)
            break
        if parts[2] == "cgroup2" and found is None:
            with contextlib.suppress(OSError):
                if "cpu" in (where / "cgroup.controllers").read_text().split():
                    found = CpuController(2, where)
    if found is None:
        raise ExperimentFailed("no cpu controller: neither a cgroup v1 hierarchy with 'cpu' "
                               "nor a cgroup v2 one offering 'cpu' is mounted. What to do: "
                               "mount one (for v1: mount -t cgroup -o cpu cgroup "
                               "/sys/fs/cgroup/cpu), or do without cgroups (layout 'none')")
    if not os.access(found.root, os.W_OK):
        raise ExperimentFailed(f"cannot make cgroups in {found.root}: it is not writable by "
                               f"this user (uid {os.getuid()}). What to do: run as root, or "
                               "do without cgroups (layout 'none')")
    return found


def owner_gone(path: Path) -> bool:
    """Has the process that made folder ``path`` (named ``...-PID``) ended?

    Its pid may have been handed to a new process since: one that started after the
    folder was made (its modification time: a cgroup's stays its creation time) is not
    its owner. A name without a trailing pid has no owner to lose: False.

    Examples
    --------
    >>> owner_gone(Path(f"/nowhere/kvmlab-repro-{os.getpid()}")), owner_gone(Path("/x/y"))
    (False, False)
    """
    match = re.search(r"-(\d+)$", path.name)
    if not match:
        return False
    start = process_start(int(match.group(1)))
    if start is None:
        return True
    try:
        made = path.stat().st_mtime
        boot = Path("/proc/stat").read_text().partition("\nbtime ")[2].split()[0]
    except (OSError, IndexError):
        return False
    return int(boot) + start / os.sysconf("SC_CLK_TCK") > made + 1.0

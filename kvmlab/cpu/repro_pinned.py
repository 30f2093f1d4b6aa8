"""A shared pinned pCPU: a VM whose vCPUs sleep often takes more than its weight.

Plain processes in libvirt's nested layout (:class:`kvmlab.cpu.repro.ReproCgroups`):
"VM" 1 has one busy process and "VM" 2 two, all pinned to CPU 0, so the weights promise
VM 1 half of CPU 0. VM 2's processes sleep 50 us now and then. Each VM may also have an
emulator process on CPU 1 that wakes 480 times a second for 15 us, as QEMU's main loop
does. With it, some of each VM's load is on CPU 1, so each sleep and wake-up on CPU 0
changes VM 2's weight there, and the kernels from 6.13 to 6.18.44 re-place a reweighted
running entity in its favour. Without it, VM 2's weight on CPU 0 never changes.

Measured on Linux 6.18.44 (cgroup v1, 2 CPUs), 2-s windows: with VM 2 sleeping 100, 300
and 1,000 times a second, VM 1 kept 0.45, 0.38 to 0.41 and 0.02 to 0.08 of CPU 0 with the
emulator processes, and 0.50 at every rate without them. The ``linux`` model asks the same
with ``QemuThreads(sleeping_vms=("vm2",))``.

Examples
--------
>>> pinned_share(-1)
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: sleeps_per_s must be ...
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

from kvmlab.cpu.probe import CpuController, cpu_controller, parse_schedstat
from kvmlab.cpu.repro import (
    COMM,
    MAX_RATE,
    MAX_WINDOW_S,
    MIN_WINDOW_S,
    ReproCgroups,
    ReproParams,
    remove_stale_cgroups,
)
from kvmlab.cpu.twin import measuring_lock
from kvmlab.errors import ExperimentFailed
from kvmlab.host.signals import signals_deferred, stop_signals_as_exit
from kvmlab.validate import boolean, real_number

__all__ = ["EMULATOR_WAKES_PER_S", "pinned_share"]

EMULATOR_WAKES_PER_S = 480.0
"""How often each VM's emulator process wakes (a busy TCG guest's main loop: about 500)."""
SETTLE_S = 1.5

_CHILD = r"""
import random, sys, time
from kvmlab.host.signals import die_with_owner, wake_on_time
role, rate, owner, comm = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
die_with_owner(owner)                  # SIGKILL when the owner ends, however it ends
wake_on_time()
open("/proc/self/comm", "w").write(comm)   # known by name: remove_stale_cgroups
clock = time.monotonic
if role == "emulator":                 # QEMU's main loop: `rate` short runs a second
    while True:
        time.sleep(1 / rate)
        end = clock() + 15e-6
        while clock() < end:
            pass
due = clock() + random.expovariate(rate) if rate else float("inf")
while True:                            # a busy vCPU that sleeps 50 us `rate` times a second
    if clock() >= due:
        time.sleep(50e-6)
        due = clock() + random.expovariate(rate)
"""


def _ran_s(pid: int) -> float:
    return parse_schedstat(Path(f"/proc/{pid}/schedstat").read_text())[0] / 1e9


def pinned_share(sleeps_per_s: float, *, emulator: bool = True, window_s: float = 2.0,
                 controller: CpuController | None = None, wait_for_lock_s: float = 0.0
                 ) -> float:
    """Run the experiment once; return VM 1's share of CPU 0 over ``window_s``.

    Parameters
    ----------
    sleeps_per_s : float
        How often each of VM 2's processes sleeps for 50 us (0 to 20,000 a second).
    emulator : bool
        Give each VM an emulator process on CPU 1 (QEMU's main loop).
    window_s : float
        The measured window, after 1.5 s to start and settle.
    controller : CpuController, optional
        Where to make the cgroups (default: :func:`kvmlab.cpu.probe.cpu_controller`).
    wait_for_lock_s : float
        How long to wait for another kvmlab CPU measurement on this host to end.

    Returns
    -------
    float
        VM 1's run share of CPU 0: 0.5 is what the weights promise.

    Raises
    ------
    ScenarioError
        For a value out of its range (checked before anything starts).
    ExperimentFailed
        Without root, a cpu controller, or CPUs 0 and 1.
    """
    rate = real_number(sleeps_per_s, "sleeps_per_s", low=0, high=MAX_RATE)
    emulator = boolean(emulator, "emulator")
    window_s = real_number(window_s, "window_s", low=MIN_WINDOW_S, high=MAX_WINDOW_S, unit="s")
    if not {0, 1} <= os.sched_getaffinity(0):
        raise ExperimentFailed("the experiment needs host CPUs 0 and 1 (CPU 0 shared, the "
                               "emulators on CPU 1)")
    controller = controller or cpu_controller()
    params = ReproParams(vms=2, vcpus=2, layout="nested", rate=EMULATOR_WAKES_PER_S)
    with stop_signals_as_exit(), measuring_lock(wait_for_lock_s):
        with signals_deferred():
            remove_stale_cgroups(controller)         # those of a run that was killed
        with ReproCgroups(controller, params) as cgroups:
            return _measure(cgroups, rate, emulator, window_s)


def _measure(cgroups: ReproCgroups, rate: float, emulator: bool, window_s: float) -> float:
    """Start the processes in ``cgroups``, settle, measure; end them, whatever happens."""
    procs: dict[tuple[int, str], subprocess.Popen[bytes]] = {}
    try:
        for vm, vcpus in ((1, ["vcpu0"]), (2, ["vcpu0", "vcpu1"])):
            for role in vcpus + (["emulator"] if emulator else []):
                wakes = (EMULATOR_WAKES_PER_S if role == "emulator"
                         else rate if vm == 2 else 0.0)
                p = subprocess.Popen([sys.executable, "-c", _CHILD, role, str(wakes),
                                      str(os.getpid()), COMM])
                procs[vm, role] = p
                os.sched_setaffinity(p.pid, {1 if role == "emulator" else 0})
                cgroups.place(p.pid, vm, role)
        time.sleep(SETTLE_S)
        ended = [f"{vm}/{role}" for (vm, role), p in procs.items() if p.poll() is not None]
        if ended:
            raise ExperimentFailed(f"process(es) {', '.join(ended)} of the experiment ended "
                                   "before the window (see their errors above)")
        pid = procs[1, "vcpu0"].pid
        start, t0 = _ran_s(pid), time.monotonic()
        time.sleep(window_s)
        return round((_ran_s(pid) - start) / (time.monotonic() - t0), 4)
    except (OSError, ValueError) as exc:
        raise ExperimentFailed(f"the pinned-pCPU experiment could not run: {exc}") from None
    finally:
        for p in procs.values():
            with contextlib.suppress(OSError):
                p.kill()
            p.wait()

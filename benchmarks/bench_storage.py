"""How long the storage lab's guest runs take, against the same guest booted with no disk.

Unlike the model benchmarks this one needs a live libvirt host (it boots the tiny guest,
under TCG where KVM does not work). Three measurements, alternated round by round:

boot (the baseline)
    :class:`kvmlab.host.guest.TransientGuest` with no disk and an empty scenario: stage the
    kernel and initramfs, start the transient domain, boot, power off, clean up.
disk
    :func:`kvmlab.storage.guestdisk.run_in_guest` with :data:`WRITES` writes of 4 KiB into a
    raw volume: the boot above plus a transient pool and volume, the guest's writes (each
    flushed and read back) and ``qemu-img map/check/info`` afterwards.
lvm
    :func:`kvmlab.storage.lvmguest.run_lvm_in_guest`: ``pvcreate``, ``vgcreate``, two
    ``lvcreate``, a pattern per LV, the reports, ``vgchange -an``, and the host's reading of
    the disk.

``ratio`` is each measurement's best time divided by the boot's best time. ``--quick`` runs
each once, with 5 writes (it still boots guests).

Examples
--------
>>> [len(w) for w in write_plan(3)], write_plan(3)[1]
([2, 2, 2], [65536, 4096])
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from benchmarks.timing import Repeats, Timing, environment, timed
from kvmlab.host.guest import TransientGuest, live_uri
from kvmlab.storage.guestdisk import GUEST_MEMORY_MIB, run_in_guest
from kvmlab.storage.lvmguest import run_lvm_in_guest
from kvmlab.storage.scenario import StorageScenario

WRITES = 20
QUICK_WRITES = 5
WRITE = 4096
ROUNDS = Repeats(times=3, budget_s=240.0, min_total_s=0.0)


def write_plan(n: int) -> list[list[int]]:
    """``n`` writes of 4 KiB, one per 64 KiB, none overlapping."""
    return [[i * 65536, WRITE] for i in range(n)]


def boot_only(uri: str) -> None:
    """Boot the guest with no disk and an empty scenario; wait until it powered off."""
    with TransientGuest("true", uri=uri, purpose="bench", memory_mib=GUEST_MEMORY_MIB) as g:
        out = g.result(timeout_s=300)
    if out.exit_status != 0:
        raise RuntimeError(f"the baseline guest ended with {out.exit_status}")


def run(quick: bool = False, sizes: Any = None, log: Callable[[str], None] | None = None,
        uri: str | None = None) -> dict[str, Any]:
    """Run the storage benchmark (``sizes`` is the CPU benchmark's and is ignored here)."""
    uri = live_uri(uri)
    writes = QUICK_WRITES if quick else WRITES
    scenario = StorageScenario.from_dict({"format": "raw", "virtual_size": 4 << 20,
                                          "writes": write_plan(writes)})
    repeats = Repeats(times=1, min_total_s=0.0) if quick else ROUNDS
    times: dict[str, list[float]] = {"boot": [], "disk": [], "lvm": []}
    accel = ""
    while not times["boot"] or repeats.more(len(times["boot"]),
                                            sum(map(sum, times.values()))):
        if log is not None:
            log(f"storage: round {len(times['boot']) + 1} (boot, {writes} writes, LVM)")
        _, seconds = timed(lambda: boot_only(uri))
        times["boot"].append(seconds)
        result, seconds = timed(lambda: run_in_guest(scenario, uri=uri))
        times["disk"].append(seconds)
        accel = result.provenance["accelerator"]
        _, seconds = timed(lambda: run_lvm_in_guest(uri=uri))
        times["lvm"].append(seconds)
    timings = {k: Timing(1, tuple(v)) for k, v in times.items()}
    base = timings["boot"]
    out: dict[str, Any] = {"uri": uri, "accelerator": accel, "writes": writes,
                           "write_bytes": WRITE}
    for key, t in timings.items():
        out[key] = t.to_dict()
        if key != "boot":
            out[f"{key}_ratio"] = round(t.best_s / base.best_s, 3)
            out[f"{key}_paired_ratio"] = round(statistics.median(
                a / b for a, b in zip(t.times_s, base.times_s, strict=True)), 3)
    return {"environment": environment(), "storage": out}


def format_table(result: dict[str, Any]) -> str:
    """The result of :func:`run` as a readable table."""
    s = result["storage"]
    rows = [("boot, no disk (baseline)", s["boot"], "1", "1"),
            (f"disk: {s['writes']} writes of {s['write_bytes'] // 1024} KiB", s["disk"],
             s["disk_ratio"], s["disk_paired_ratio"]),
            ("LVM: pv/vg/2 lv + patterns", s["lvm"], s["lvm_ratio"], s["lvm_paired_ratio"])]
    lines = [f"Storage lab guest runs ({s['accelerator']}, {s['uri']}), seconds per run",
             "                                  best  median  ratio (best, paired median)"]
    for label, t, ratio, paired in rows:
        lines.append(f"   {label:<28} {t['best_s']:>6.2f} {t['median_s']:>7.2f}  "
                     f"{ratio}x, {paired}x")
    return "\n".join(lines)


__all__ = ["boot_only", "format_table", "run", "write_plan"]

"""A real balloon: inflate and deflate a tiny guest's virtio balloon through libvirt and
read what the guest, libvirt and the host say (never the model: see
:mod:`kvmlab.memory.balloonrun`).

The guest loads ``virtio_balloon`` (``kvmlab-insmod balloon``), prints the features its
driver agreed with QEMU's device, then every half second a numbered line with its
``MemTotal`` and ``MemAvailable`` from ``/proc/meminfo`` on its serial console. The host
sets the statistics period (``setMemoryStatsPeriod``), then each target with
``setMemoryFlags(KiB, VIR_DOMAIN_AFFECT_LIVE)`` (what ``virsh setmem --live`` does),
waits until libvirt's ``actual`` has reached it, lets the guest settle, and reads the
balloon's statistics (``memoryStats()``), the guest's next line, and ``VmRSS`` of the
QEMU process (``/proc/PID/status``).

Examples
--------
>>> parse_meminfo_lines("meminfo 1 223632 183904\\nnoise\\nmeminfo 2 158096 119044\\n")
[(1, 223632, 183904), (2, 158096, 119044)]
>>> balloon_features("0110010000000000000000000000010010000000100000000000000000000000")
['STATS_VQ', 'DEFLATE_ON_OOM', 'REPORTING']
>>> vm_rss_kib("Name:\\tqemu\\nVmRSS:\\t  251240 kB\\n")
251240
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kvmlab.errors import ExperimentFailed, ScenarioError
from kvmlab.host.connect import check_uri, import_libvirt
from kvmlab.lab import MEASURED
from kvmlab.memory.balloonrun import BalloonRunResult, BalloonStep
from kvmlab.memory.balloonscenario import BalloonRunScenario
from kvmlab.progress import ProgressArg, check_progress, progress_bar

READY_MARKER = "KVMLAB-BALLOON-READY"
PRINT_EVERY_S = 0.5
STATS_PERIOD_S = 1
REACH_TIMEOUT_S = 30.0
"""How long a step may take to reach its target (about 1 s under TCG here)."""
STEADY_TRIES = 10
"""Lines read at most, after the settling, for two in a row that agree ..."""
STEADY_KIB = 1024
"""... on ``MemTotal`` exactly and on ``MemAvailable`` within this."""
FEATURE_BITS = {1: "STATS_VQ", 2: "DEFLATE_ON_OOM", 3: "FREE_PAGE_HINT",
                4: "PAGE_POISON", 5: "REPORTING"}
"""The virtio balloon's own feature bits (``include/uapi/linux/virtio_balloon.h``)."""
BALLOON_OPTIONS = ("autodeflate", "freePageReporting")
"""Attributes of libvirt's ``<memballoon model='virtio'>`` a balloon run sets, to ``on`` or
``off``: ``autodeflate`` lets the guest take pages back from its balloon when it runs out of
memory (``VIRTIO_BALLOON_F_DEFLATE_ON_OOM``), ``freePageReporting`` lets it report free pages
to the host, which lets them go (``VIRTIO_BALLOON_F_REPORTING``)."""


def check_balloon_options(options: Mapping[str, str] | None) -> dict[str, str]:
    """Return the balloon options as a dict, or raise ScenarioError naming the rule broken.

    Examples
    --------
    >>> check_balloon_options({"autodeflate": "on"})
    {'autodeflate': 'on'}
    >>> check_balloon_options({"deflate": "on"})       # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: balloon option 'deflate' is not one of ...
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ScenarioError(f"balloon options are a mapping of {BALLOON_OPTIONS} to 'on' or "
                            f"'off', not {options!r}")
    for key, value in options.items():
        if key not in BALLOON_OPTIONS:
            raise ScenarioError(f"balloon option {key!r} is not one of {BALLOON_OPTIONS}")
        if value not in ("on", "off"):
            raise ScenarioError(f"balloon option {key} is 'on' or 'off', not {value!r}")
    return dict(options)


def with_balloon_options(xml: str, options: Mapping[str, str]) -> str:
    """Return domain ``xml`` with ``options`` set on its ``<memballoon>`` (unchanged if none).

    Examples
    --------
    >>> x = "<domain><devices><memballoon model='virtio'/></devices></domain>"
    >>> with_balloon_options(x, {"autodeflate": "on"})
    '<domain><devices><memballoon model="virtio" autodeflate="on" /></devices></domain>'
    """
    if not options:
        return xml
    dom = ET.fromstring(xml)
    balloon = dom.find("devices/memballoon")
    if balloon is None:
        raise ScenarioError("the guest's description has no balloon device to configure")
    for key, value in options.items():
        balloon.set(key, value)
    return ET.tostring(dom, encoding="unicode")


_LINE = re.compile(r"^meminfo (\d+) (\d+) (\d+)\s*$", re.M)


def balloon_script() -> str:
    """The guest's scenario: load the driver, report its features, print ``/proc/meminfo``.

    Examples
    --------
    >>> "kvmlab-insmod balloon" in balloon_script()
    True
    """
    return f"""kvmlab-insmod balloon || {{ echo balloon-driver=missing; exit 1; }}
for d in /sys/bus/virtio/devices/*; do
  [ "$(cat $d/device)" = 0x0005 ] && echo "features=$(cat $d/features)"
done
echo {READY_MARKER}
n=0
while true; do
  n=$((n + 1))
  echo "meminfo $n $(awk '/^(MemTotal|MemAvailable):/ {{printf "%s ", $2}}' /proc/meminfo)"
  sleep {PRINT_EVERY_S}
done
"""


def parse_meminfo_lines(console: str) -> list[tuple[int, int, int]]:
    """The guest's numbered ``(n, MemTotal KiB, MemAvailable KiB)`` lines, in order."""
    return [(int(n), int(t), int(a)) for n, t, a in _LINE.findall(console.replace("\r", ""))]


def balloon_features(bits: str) -> list[str]:
    """The balloon features named in a virtio device's ``features`` (one 0/1 per bit)."""
    return [name for bit, name in sorted(FEATURE_BITS.items())
            if bit < len(bits) and bits[bit] == "1"]


def vm_rss_kib(status: str) -> int:
    """``VmRSS`` (KiB) from the text of ``/proc/PID/status``."""
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    if match is None:
        raise ExperimentFailed("the QEMU process's status has no VmRSS line")
    return int(match.group(1))


def _mib(kib: float) -> float:
    return round(kib / 1024, 3)


class _Reader:
    """Reads one step: libvirt's statistics, the guest's next line, the host's RSS."""

    def __init__(self, guest: Any, domain: Any) -> None:
        self.guest = guest
        self.domain = domain
        self.pid = guest.local_qemu_pid()

    def last_line(self) -> tuple[int, int, int] | None:
        lines = parse_meminfo_lines(self.guest.console())
        return lines[-1] if lines else None

    def rss_kib(self, stats: dict[str, int]) -> int:
        if self.pid is not None:
            try:
                return vm_rss_kib(Path(f"/proc/{self.pid}/status").read_text())
            except OSError:
                raise ExperimentFailed(f"the QEMU process of {self.guest.name} has "
                                       "ended") from None
        return int(stats["rss"])              # the host's own /proc, read by libvirt

    def reach(self, target_kib: int) -> None:
        deadline = time.monotonic() + REACH_TIMEOUT_S
        while self.domain.memoryStats().get("actual") != target_kib:
            if time.monotonic() > deadline:
                return                 # what it reached is measured, and compared
            self.guest.sleep_watching(0.25)

    def _line_above(self, number: int) -> tuple[int, int, int]:
        """The guest's newest line, once its number is above ``number``."""
        deadline = time.monotonic() + 20 * PRINT_EVERY_S + 10
        while (line := self.last_line()) is None or line[0] <= number:
            if time.monotonic() > deadline:
                raise ExperimentFailed(f"guest {self.guest.name} stopped printing its "
                                       "memory")
            self.guest.sleep_watching(PRINT_EVERY_S)
        return line

    def step(self, target_mib: int, settle_s: float) -> BalloonStep:
        seen = self.last_line()
        self.guest.sleep_watching(settle_s)
        # a line printed wholly after the settling began
        line = self._line_above(seen[0] + 1 if seen is not None else 0)
        # The guest's MemAvailable can dip for a moment while it settles (once, a reading
        # of 14 MiB between readings of 141): take the first of two lines that agree.
        for _ in range(STEADY_TRIES):
            after = self._line_above(line[0])
            if after[1] == line[1] and abs(after[2] - line[2]) <= STEADY_KIB:
                break
            line = after
        stats = self.domain.memoryStats()
        missing = [k for k in ("actual", "available", "usable") if k not in stats]
        if missing:
            raise ExperimentFailed(f"the balloon reports no {', '.join(missing)} statistics "
                                   "(is the guest's virtio_balloon driver loaded?)")
        return BalloonStep(target_mib, _mib(stats["actual"]), _mib(line[1]), _mib(line[2]),
                           _mib(stats["available"]), _mib(stats["usable"]),
                           _mib(self.rss_kib(stats)))


def run_balloon(scenario: BalloonRunScenario, *, uri: str | None = None,
                progress: ProgressArg = None) -> BalloonRunResult:
    """Inflate and deflate a real guest's balloon to each of the scenario's targets.

    ``progress`` counts steps (the start, then one per target).

    Raises
    ------
    ScenarioError
        For a ``uri`` or ``progress`` that breaks a rule (before any connection).
    ExperimentFailed
        If the guest cannot load its balloon driver, stops, or stops printing.
    HostUnavailable
        If libvirt stops answering.
    """
    from kvmlab.host.guest import TransientGuest

    check_uri(uri)
    progress = check_progress(progress)
    libvirt = import_libvirt()
    steps: list[BalloonStep] = []
    with progress_bar(progress, total=len(scenario.targets_mib) + 1, desc="balloon",
                      unit="step") as bar, \
            TransientGuest(balloon_script(), memory_mib=scenario.memory_mib, uri=uri,
                           purpose="balloon", edit_xml=lambda xml: with_balloon_options(
                               xml, check_balloon_options(scenario.balloon_options())),
                           lifetime_s=300 + 20 * len(scenario.targets_mib)) as guest:
        bar.set_postfix_str("booting the guest")
        try:
            guest.wait_for(READY_MARKER, 120)
        except ExperimentFailed:
            if "balloon-driver=missing" in guest.console():
                raise ExperimentFailed("the guest could not load virtio_balloon (rebuild "
                                       "the guest image: kvmlab doctor)") from None
            raise
        domain = guest.conn.lookupByName(guest.name)
        domain.setMemoryStatsPeriod(STATS_PERIOD_S, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        reader = _Reader(guest, domain)
        start = reader.step(scenario.memory_mib, scenario.settle_s)
        bar.update(1)
        for target in scenario.targets_mib:
            bar.set_postfix_str(f"setting the guest to {target} MiB")
            domain.setMemoryFlags(target * 1024, libvirt.VIR_DOMAIN_AFFECT_LIVE)
            reader.reach(target * 1024)
            steps.append(reader.step(target, scenario.settle_s))
            bar.update(1)
        features = re.search(r"^features=([01]+)", guest.console().replace("\r", ""), re.M)
        provenance = {
            "uri": guest.uri, "accelerator": guest.accel,
            "guest_kernel": guest.image.kernel_release if guest.image else "",
            "balloon_features": balloon_features(features.group(1)) if features else [],
            "rss_from": ("/proc/PID/status VmRSS" if reader.pid is not None
                         else "libvirt's rss statistic (the QEMU process is not local)"),
            "date": datetime.now(UTC).isoformat(timespec="seconds")}
    return BalloonRunResult(scenario, MEASURED, start, tuple(steps), provenance)


__all__ = [
    "BALLOON_OPTIONS",
    "FEATURE_BITS",
    "READY_MARKER",
    "balloon_features",
    "balloon_script",
    "check_balloon_options",
    "parse_meminfo_lines",
    "run_balloon",
    "vm_rss_kib",
    "with_balloon_options",
]

"""``kvmlab doctor``: what can this machine do for the labs, and why.

It answers a student's first questions in order: is libvirt installed and
reachable, and through which URI; can this machine run guests with hardware
acceleration (KVM) or only with QEMU's software emulation (TCG), and why; is
the tiny guest image cached; did an earlier run leave ``kvmlab-`` objects behind.

Examples
--------
>>> d = diagnose("test:///default", trial_boot=False, live=False)
>>> d.finding("libvirt").ok
True
>>> "test:///default" in d.report()
True
"""

from __future__ import annotations

import grp
import importlib.metadata
import json
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kvmlab.errors import ExperimentFailed, HostUnavailable, ToolMissing
from kvmlab.host.cleanup import find_leftovers
from kvmlab.host.connect import DEFAULT_URI, connection, import_libvirt, version_string
from kvmlab.host.guest import choose_accelerator, live_uri
from kvmlab.host.image import cached_image

MARK = {True: "ok  ", False: "FAIL", None: "info"}


@dataclass(frozen=True)
class Finding:
    """One line of the diagnosis: a topic, whether it is fine, what and why."""

    topic: str
    ok: bool | None
    summary: str
    detail: str = ""


@dataclass
class Diagnosis:
    """Everything the doctor found; ``accelerator`` is ``'kvm'``, ``'tcg'`` or None."""

    findings: list[Finding] = field(default_factory=list)
    live_uri: str | None = None
    accelerator: str | None = None

    def finding(self, topic: str) -> Finding:
        """Return the finding about ``topic`` (the first one if several)."""
        return next(f for f in self.findings if f.topic == topic)

    def to_dict(self) -> dict[str, Any]:
        return {"live_uri": self.live_uri, "accelerator": self.accelerator,
                "findings": [asdict(f) for f in self.findings]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def report(self) -> str:
        """Return the diagnosis as text for a person."""
        lines = ["kvmlab doctor", ""]
        for f in self.findings:
            lines.append(f"[{MARK[f.ok]}] {f.topic}: {f.summary}")
            lines += [f"         {line}" for line in f.detail.splitlines() if line]
        lines.append("")
        lines.append(self.verdict())
        return "\n".join(lines)

    def verdict(self) -> str:
        if self.live_uri is None:
            return ("Verdict: no real libvirt host is reachable; the labs use libvirt's "
                    f"{DEFAULT_URI} driver and the recorded host data in data/.")
        how = {"kvm": "with KVM (hardware-assisted)",
               "tcg": "with QEMU's TCG (software emulation, slower, same vCPU threads)"}
        return (f"Verdict: live labs run on {self.live_uri} "
                f"{how.get(self.accelerator or '', '(accelerator not yet checked)')}.")

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # pragma: no cover - IPython
        p.text(self.report())


def cpu_virtualization_flags(cpuinfo: str | None = None) -> set[str]:
    """Return the hardware virtualization flags (``vmx``, ``svm``) the CPU shows.

    Examples
    --------
    >>> cpu_virtualization_flags("flags : fpu vme svm lm\\n")
    {'svm'}
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags |= {"vmx", "svm"} & set(line.split(":", 1)[1].split())
    return flags


def kvm_modules(sys_module: Path = Path("/sys/module")) -> list[str]:
    """Return the loaded KVM vendor modules (``kvm_intel``, ``kvm_amd``, or others)."""
    try:
        return sorted(p.name for p in sys_module.iterdir()
                      if p.name.startswith("kvm_"))
    except OSError:
        return []


def check_kvm_device(dev: Path = Path("/dev/kvm")) -> Finding:
    """Describe ``/dev/kvm``: present? usable by QEMU's user (group kvm, mode 660)?"""
    flags = cpu_virtualization_flags()
    modules = kvm_modules()
    facts = [f"CPU virtualization flags: {', '.join(sorted(flags)) or 'none (no vmx or svm)'}",
             f"KVM vendor modules: {', '.join(modules) or 'none'}"]
    if not dev.exists():
        return Finding("KVM device", False, f"{dev} does not exist: KVM is not available",
                       "\n".join([*facts, "Guests will run under QEMU's TCG emulation."]))
    st = dev.stat()
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    mode = stat.S_IMODE(st.st_mode)
    facts.append(f"{dev}: group {group}, mode {mode:o}")
    usable = mode & 0o006 == 0o006 or (group == "kvm" and mode & 0o060 == 0o060)
    if not usable:
        return Finding("KVM device", False,
                       f"{dev} is present but QEMU's user cannot open it",
                       "\n".join([*facts, f"Fix: chgrp kvm {dev}; chmod 660 {dev} "
                                           "(make lab / make test do it)"]))
    odd = [m for m in modules if m not in ("kvm_intel", "kvm_amd")]
    if odd:
        facts.append(f"{', '.join(odd)} is not the usual kvm_intel/kvm_amd: a variant "
                     "that may not run an unmodified guest kernel")
    return Finding("KVM device", True, f"{dev} is present and QEMU may open it", "\n".join(facts))


def diagnose(uri: str | None = None, *, trial_boot: bool = True,
             live: bool = True) -> Diagnosis:
    """Find out what this machine can do for kvmlab.

    Parameters
    ----------
    uri : str, optional
        The live host to check (default: ``KVMLAB_URI`` or the local QEMU host).
    trial_boot : bool
        Boot the tiny guest under KVM to see whether KVM really works.
    live : bool
        Check a live QEMU host at all (False: only libvirt-python and the test driver).
    """
    d = Diagnosis()
    try:
        libvirt = import_libvirt()
    except HostUnavailable as exc:
        d.findings.append(Finding("libvirt", False, "libvirt-python is not installed",
                                  exc.remedy))
        return d
    test_driver = (f"{DEFAULT_URI} (no daemon needed) works" if _reachable(DEFAULT_URI)
                   else f"{DEFAULT_URI} does not work")
    d.findings.append(Finding(
        "libvirt", True, f"libvirt-python {_dist_version('libvirt-python')} on libvirt "
        f"{version_string(libvirt.getVersion())}; {test_driver}"))
    if not live:
        return d
    target = live_uri(uri)
    try:
        with connection(target) as conn:
            hv = conn.getVersion()
            lv = conn.getLibVersion()
        d.live_uri = target
        d.findings.append(Finding(
            "live host", True, f"reachable at {target}",
            f"libvirt {version_string(lv)}, hypervisor QEMU {version_string(hv)}"))
    except HostUnavailable as exc:
        d.findings.append(Finding("live host", False, f"not reachable at {target}",
                                  f"{exc.reason}\nWhat to do: {exc.remedy}"))
    d.findings.append(check_kvm_device())
    image = cached_image()
    if image is None:
        d.findings.append(Finding("guest image", False, "not built yet",
                                  "Build it with `kvmlab guest build` (make lab / make test do)."))
    else:
        d.findings.append(Finding("guest image", True, f"cached: kernel {image.kernel_release}",
                                  f"{image.kernel.parent}\nsource: {image.source}"))
    if d.live_uri and image is not None and trial_boot:
        try:
            choice = choose_accelerator(d.live_uri, image, recheck=True)
            d.accelerator = choice.accel
            if choice.accel == "kvm":
                summary = "KVM works: guests run hardware-assisted"
            elif Path("/dev/kvm").exists():
                summary = ("a KVM device is present but not usable for a standard guest; "
                           "TCG (software emulation) is used")
            else:
                summary = "no KVM; TCG (software emulation) is used"
            d.findings.append(Finding("accelerator", True if choice.accel == "kvm" else None,
                                      summary, choice.reason))
        except (ExperimentFailed, HostUnavailable, ToolMissing) as exc:
            d.findings.append(Finding("accelerator", False, "trial boot failed", str(exc)))
    leftovers = find_leftovers(uri)
    d.findings.append(Finding(
        "leftovers", not leftovers,
        f"{len(leftovers)} kvmlab- object(s) left by earlier runs" if leftovers else "none",
        "\n".join(map(str, leftovers))
        + ("\nRemove them with `kvmlab doctor --cleanup`." if leftovers else "")))
    return d


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "(unknown version)"


def _reachable(uri: str) -> bool:
    try:
        with connection(uri):
            return True
    except HostUnavailable:
        return False

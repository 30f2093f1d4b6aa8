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
import os
import pwd
import re
import secrets
import stat
import sys
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kvmlab.errors import ExperimentFailed, HostUnavailable, ToolMissing
from kvmlab.host.cleanup import find_leftovers
from kvmlab.host.connect import (
    DEFAULT_URI,
    connection,
    import_libvirt,
    is_local_uri,
    version_string,
)
from kvmlab.host.domxml import NAME_PREFIX
from kvmlab.host.guest import choose_accelerator, live_uri, staging_root, sweep_stale_guests
from kvmlab.host.image import cached_image, lvm_tools_found
from kvmlab.host.staging import is_system_uri, probe_upload

QEMU_CONF = Path("/etc/libvirt/qemu.conf")

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
    libvirt_python: bool = True

    def finding(self, topic: str) -> Finding:
        """Return the finding about ``topic`` (the first one if several)."""
        return next(f for f in self.findings if f.topic == topic)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.exit_status() == 0, "live_uri": self.live_uri,
                "accelerator": self.accelerator, "libvirt_python": self.libvirt_python,
                "verdict": self.verdict(), "findings": [asdict(f) for f in self.findings]}

    def exit_status(self) -> int:
        """0 when no check failed, else 1 (what ``kvmlab doctor`` exits with).

        Examples
        --------
        >>> Diagnosis([Finding("a", True, ""), Finding("b", None, "")]).exit_status()
        0
        >>> Diagnosis([Finding("a", True, ""), Finding("b", False, "")]).exit_status()
        1
        """
        return 1 if any(f.ok is False for f in self.findings) else 0

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
        """One sentence: what can really run here."""
        if not self.libvirt_python:
            return ("Verdict: libvirt-python is not installed, so this Python reaches no "
                    "libvirt host at all (not even the test driver). What works: the models "
                    "(simulate, compare, the exercises and widgets) and the recorded host "
                    "data in data/.")
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


def qemu_user(uri: str, conf: Path = QEMU_CONF) -> str:
    """The user QEMU runs as under the local daemon of ``uri``.

    A ``system`` daemon runs QEMU as the ``user`` of ``qemu.conf``, else as its build's
    default (``libvirt-qemu`` on Debian and Ubuntu, ``qemu`` elsewhere); a ``session``
    daemon runs it as the user who runs kvmlab.

    Examples
    --------
    >>> import pwd, os
    >>> qemu_user("qemu:///session") == pwd.getpwuid(os.geteuid()).pw_name
    True
    """
    me = pwd.getpwuid(os.geteuid()).pw_name
    if not is_system_uri(uri):
        return me
    try:
        match = re.search(r'^\s*user\s*=\s*"([^"]+)"', conf.read_text(), re.M)
    except OSError:
        match = None
    if match:
        return match.group(1)
    for name in ("libvirt-qemu", "qemu"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    return "root"


def user_may_open(path: Path, user: str) -> bool:
    """True if ``user`` may read and write ``path`` (owner, group membership or others).

    For the user running this Python, :func:`os.access` answers; for another one (QEMU's
    user), the file's owner, group and mode against that user's groups.
    """
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return False
    if entry.pw_uid == os.geteuid():
        return os.access(path, os.R_OK | os.W_OK)
    if entry.pw_uid == 0:
        return True
    st = path.stat()
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid == entry.pw_uid:
        return mode & 0o600 == 0o600
    if st.st_gid in os.getgrouplist(user, entry.pw_gid):
        return mode & 0o060 == 0o060
    return mode & 0o006 == 0o006


def check_kvm_device(dev: Path = Path("/dev/kvm"), user: str | None = None) -> Finding:
    """Describe ``/dev/kvm``: present? may ``user`` (QEMU's; default: this user) open it?"""
    user = user or pwd.getpwuid(os.geteuid()).pw_name
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
    facts.append(f"{dev}: group {group}, mode {mode:o}; QEMU runs as {user}")
    if not user_may_open(dev, user):
        return Finding("KVM device", False,
                       f"{dev} is present but QEMU's user {user} cannot open it",
                       "\n".join([*facts, f"Fix: chgrp kvm {dev}; chmod 660 {dev}; and put "
                                           f"{user} in group kvm (make lab / make test do the "
                                           "first two)"]))
    odd = [m for m in modules if m not in ("kvm_intel", "kvm_amd")]
    if odd:
        facts.append(f"{', '.join(odd)} is not the usual kvm_intel/kvm_amd: a variant "
                     "that may not run an unmodified guest kernel")
    return Finding("KVM device", True, f"{dev} is present and QEMU's user {user} may open it",
                   "\n".join(facts))


def diagnose(uri: str | None = None, *, trial_boot: bool = True,
             live: bool = True) -> Diagnosis:
    """Find out what the host at ``uri`` (by default this machine's) can do for kvmlab.

    Parameters
    ----------
    uri : str, optional
        The live host to check (default: ``KVMLAB_URI`` or the local QEMU host). A remote
        URI checks *that* host: its capabilities, its accelerator (a trial boot there),
        whether the guest's files can be uploaded to it, its leftovers.
    trial_boot : bool
        Boot the tiny guest under KVM to see whether KVM really works.
    live : bool
        Check a live QEMU host at all (False: only libvirt-python and the test driver).
    """
    d = Diagnosis()
    try:
        libvirt = import_libvirt()
    except HostUnavailable as exc:
        d.libvirt_python = False
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
    local = is_local_uri(target)
    caps = None
    try:
        with connection(target) as conn:
            hv, lv = conn.getVersion(), conn.getLibVersion()
            hostname, caps = conn.getHostname(), conn.getCapabilities()
        d.live_uri = target
        d.findings.append(Finding(
            "live host", True, f"reachable at {target}" + ("" if local else f" ({hostname})"),
            f"libvirt {version_string(lv)}, hypervisor QEMU {version_string(hv)}"))
    except HostUnavailable as exc:
        d.findings.append(Finding("live host", False, f"not reachable at {target}",
                                  f"{exc.reason}\nWhat to do: {exc.remedy}"))
    if caps is not None:
        d.findings.append(check_capabilities(caps, target))
        d.findings.append(check_live_labs(target))
    if local:
        d.findings.append(check_kvm_device(user=qemu_user(target)))
    image = cached_image()
    if image is None:
        d.findings.append(Finding("guest image", False, "not built yet",
                                  "Build it with `kvmlab guest build` (make lab / make test do)."))
    else:
        d.findings.append(Finding("guest image", True, f"cached: kernel {image.kernel_release}",
                                  f"{image.kernel.parent}\nsource: {image.source}"))
    if d.live_uri:
        d.findings.append(check_staging(d.live_uri))
    if d.live_uri and image is not None and trial_boot:
        d.findings.append(_accelerator(d, image, local))
    if d.live_uri or local:
        d.findings.append(check_leftovers(target))
    return d


def live_labs(uri: str, *, root: bool | None = None) -> list[tuple[str, bool, str]]:
    """Which labs run live on ``uri`` for this user, and why not where they cannot.

    Returns
    -------
    list of (lab, runs, why)
        ``runs`` is False where the lab cannot measure what it teaches on that host.

    Examples
    --------
    >>> for lab, runs, why in live_labs("qemu:///session", root=False):
    ...     print(lab, runs)
    cpu False
    memory True
    storage True
    network True
    >>> print(live_labs("qemu:///session", root=False)[0][2])     # doctest: +ELLIPSIS
    qemu:///session makes no cgroup per VM, and the fairness between VMs ... as root, ...
    >>> all(runs for _, runs, _ in live_labs("qemu:///system", root=True))
    True
    """
    root = os.geteuid() == 0 if root is None else root
    system = is_system_uri(uri)
    cpu = (True, "each VM gets a cgroup of its own, as the lab's fairness needs") if system \
        else (False, f"{uri} makes no cgroup per VM, and the fairness between VMs is what the "
                     "CPU lab measures: use qemu:///system as root, or a lab host's "
                     "qemu+ssh:// URI (the models and the recorded runs work everywhere)")
    machine = ("VA -> PA -> MA traced (the host's pagemap shows machine frames to root)"
               if root and is_local_uri(uri) else
               "VA -> PA traced; the machine addresses need root on the host that runs "
               "QEMU (pagemap hides frame numbers from other users)")
    return [("cpu", *cpu), ("memory", True, machine),
            ("storage", True, "qemu-img and qemu-io on this machine; a guest writes its own "
             "virtio disk (--in-guest), LUKS volumes included; "
             + ("the article's LVM volume group inside the guest's kernel (pvcreate, "
                "vgcreate, lvcreate on its virtio disk: dm-mod, lvm)" if lvm_tools_found()
                else "LVM in the guest needs lvm2 on this machine (scripts/setup-host.sh), "
                "then a rebuilt guest image")
             + "; the LVM pool's virsh flow on libvirt's test driver"),
            ("network", True, "bridges, VLANs, routing and libvirt's NAT network inside the "
             "tiny guest's own kernel")]


def check_live_labs(uri: str) -> Finding:
    """The labs that run live on ``uri``, as one finding (``info``; FAIL for none)."""
    labs = live_labs(uri)
    running = [lab for lab, runs, _ in labs if runs]
    detail = "\n".join(f"{lab}: {'live' if runs else 'models and recordings only'} - {why}"
                       for lab, runs, why in labs)
    return Finding("live labs", None if running else False,
                   f"live on {uri}: {', '.join(running) or 'none'}", detail)


def check_capabilities(caps_xml: str, uri: str) -> Finding:
    """What the host's capabilities offer an x86_64 guest (QEMU's TCG, KVM).

    Examples
    --------
    >>> from kvmlab.host import connect
    >>> check_capabilities(connect("test:///default").getCapabilities(), "test:///default").ok
    False
    """
    caps = ET.fromstring(caps_xml)
    types = sorted({d.get("type", "") for d in
                    caps.iterfind("guest/arch[@name='x86_64']/domain")})
    arch = caps.findtext("host/cpu/arch") or "?"
    if not {"qemu", "kvm"} & set(types):
        return Finding("capabilities", False, f"the host at {uri} offers no QEMU x86_64 guest",
                       f"host CPU {arch}; x86_64 domain types: {', '.join(types) or 'none'}")
    return Finding("capabilities", True,
                   f"x86_64 guests: {', '.join(t for t in types if t in ('qemu', 'kvm'))}",
                   f"host CPU {arch}" + ("" if "kvm" in types else
                                         "; no kvm domain type: TCG only"))


def check_staging(uri: str) -> Finding:
    """Can the guest's kernel and initrd reach QEMU on that host?

    A local host reads them from a directory here (which must be writable); any other
    gets them uploaded into a ``kvmlab-`` storage pool, which is tried (and removed).
    """
    if is_local_uri(uri):
        root = staging_root(uri)
        probe = root if root.exists() else root.parent
        if os.access(probe, os.W_OK):
            return Finding("guest upload", True, f"guest files are staged in {root}")
        return Finding("guest upload", False, f"cannot write the guest's files in {root}",
                       "run as root for qemu:///system, or use qemu:///session")
    name = f"{NAME_PREFIX}doctor-{secrets.token_hex(4)}"
    try:
        with connection(uri, write=True) as conn:
            sent = probe_upload(conn, name)
    except (HostUnavailable, ExperimentFailed) as exc:
        return Finding("guest upload", False, f"the guest's files cannot be uploaded to {uri}",
                       f"{exc}\nkvmlab uploads them into a storage pool through libvirt: the "
                       "connection must be read-write (root on the host, or group libvirt)")
    return Finding("guest upload", True, "a storage pool was made and a file uploaded into "
                   f"it and read back ({sent} bytes) through libvirt; removed again")


def _accelerator(d: Diagnosis, image: Any, local: bool) -> Finding:
    assert d.live_uri is not None
    try:
        choice = choose_accelerator(d.live_uri, image, recheck=True)
    except (ExperimentFailed, HostUnavailable, ToolMissing) as exc:
        return Finding("accelerator", False, "trial boot failed", str(exc))
    d.accelerator = choice.accel
    where = "" if local else " on that host"
    if choice.accel == "kvm":
        summary = f"KVM works{where}: guests run hardware-assisted"
    elif "present but" in choice.reason:
        summary = (f"KVM is offered{where} but a standard guest does not boot under it; "
                   "TCG (software emulation) is used")
    else:
        summary = f"no KVM{where}; TCG (software emulation) is used"
    return Finding("accelerator", True if choice.accel == "kvm" else None, summary,
                   choice.reason)


def _sweep(uri: str) -> list[str]:
    """Destroy the guests of ended runs, or past their deadline (a paused guest's own
    timer stands still); return ``'name (why)'`` of each."""
    try:
        with connection(live_uri(uri), write=True) as conn:
            return [f"{n} ({why})" for n, why in sweep_stale_guests(conn, quiet=True)]
    except HostUnavailable:
        return []


def check_leftovers(uri: str) -> Finding:
    """``kvmlab-`` objects nobody owns any more (FAIL), beside those still in use (ok).

    Guests of ended runs, or past their deadline, are destroyed first (they burn CPU);
    kvmlab's temporary folders (:func:`kvmlab.host.owner.temp_root`) are listed with the
    rest, for ``kvmlab doctor --cleanup``.
    """
    swept = _sweep(uri)
    if swept:
        print("kvmlab doctor: destroyed guest(s) " + "; ".join(swept), file=sys.stderr)
    found = find_leftovers(uri)
    if swept and not found:
        return Finding("leftovers", True, f"none; destroyed {len(swept)} guest(s) of ended "
                       "runs", "\n".join(swept))
    dead = [item for item in found if item.left_over]
    busy = [item for item in found if item.in_use]
    elsewhere = [item for item in found if item.elsewhere]
    lines = [str(item) for item in dead + busy + elsewhere]
    if dead:
        return Finding("leftovers", False,
                       f"{len(dead)} kvmlab- object(s) left by runs that have ended",
                       "\n".join([*lines, "Remove them with `kvmlab doctor --cleanup` (it "
                                          "leaves objects in use alone)."]))
    if busy or elsewhere:
        owners = sorted({item.owner_pid for item in busy if item.owner_pid is not None})
        text = (f"{len(busy)} in use by pid {', '.join(map(str, owners))}" if busy else "")
        if elsewhere:
            text += ("; " if text else "") + (f"{len(elsewhere)} made on another machine "
                                              "(cannot tell whether still in use)")
        return Finding("leftovers", True if not elsewhere else None,
                       f"none; {text}", "\n".join(lines))
    return Finding("leftovers", True, "none")


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

"""Boot the tiny guest through libvirt, run a scenario in it, and always remove it.

:class:`TransientGuest` is a context manager. Entering it starts a *transient*
libvirt domain named ``kvmlab-<purpose>-<id>`` with the chosen vCPU count,
memory and pinning, running a shell script of yours inside the guest; leaving
it destroys the domain and deletes its files, also on an exception, on SIGINT
(Ctrl-C), SIGTERM and SIGHUP. A ``kill -9`` cannot be caught: every guest has a
lifetime, kept twice: inside (the guest powers itself off) and outside (its
description records its owner and a deadline; the next kvmlab call destroys a guest
whose owner has ended or whose deadline has passed, see :func:`sweep_stale_guests`,
also when the guest is paused and its own timer stands still).

Whether the guest runs under KVM or under QEMU's TCG is decided by trying, not
by looking for ``/dev/kvm``: :func:`choose_accelerator` boots the guest once
under KVM and uses KVM only if that guest reaches its ``/init`` in time.

Examples
--------
A live example (it needs a QEMU host, so it is not run as a doctest)::

    with TransientGuest("echo hello from $(nproc) vCPUs", vcpus=2) as guest:
        out = guest.result(timeout_s=60)
    print(out.lines)            # ['hello from 2 vCPUs']

The console parsing works anywhere:

>>> out = parse_console("noise\\nKVMLAB-BOOTED\\nKVMLAB-BEGIN\\nx=1\\nKVMLAB-END 0\\n")
>>> out.booted, out.lines, out.exit_status
(True, ['x=1'], 0)
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kvmlab.errors import ExperimentFailed, HostUnavailable, ScenarioError
from kvmlab.host.connect import check_uri, connect, connection, import_libvirt, is_local_uri
from kvmlab.host.domxml import NAME_PREFIX, DiskSpec, GuestSpec, domain_xml
from kvmlab.host.image import (
    BEGIN_MARKER,
    BOOT_MARKER,
    END_MARKER,
    GuestImage,
    build_image,
    cache_dir,
    cached_image,
    scenario_archive,
)
from kvmlab.host.owner import (
    owner_record,
    parse_owner,
    remove_dead_dirs,
    stale_reason,
    temp_root,
)
from kvmlab.host.signals import Transient
from kvmlab.host.staging import (
    SYSTEM_IMAGES_DIR,
    LocalStaging,
    PoolStaging,
    host_key,
    is_system_uri,
    keep_host_answer,
    local_qemu_pid,
    read_host_answers,
    staging_for,
)

DEFAULT_LIFETIME_S = 1800.0
OUTSIDE_MARGIN_S = 60.0
"""How much longer than its own lifetime a guest may live before the next kvmlab call
destroys it from outside (its boot and staging come before its own timer starts)."""
WATCH_S = 2.0
"""How often a waiting run asks libvirt whether its guest still runs."""


def lifetime_guard(lifetime_s: float) -> str:
    """A line for the guest's script that powers the guest off after ``lifetime_s``.

    Examples
    --------
    >>> lifetime_guard(90)
    '(sleep 90; echo KVMLAB-LIFETIME-OVER; poweroff -f) &\\n'
    """
    return f"(sleep {max(1, round(lifetime_s))}; echo KVMLAB-LIFETIME-OVER; poweroff -f) &\n"


KVM_TRIAL_TIMEOUT_S = 15.0


def live_uri(uri: str | None = None) -> str:
    """Return the URI of a host that can boot real guests.

    The argument, else ``KVMLAB_URI`` when it is not the test driver, else
    ``qemu:///system`` for root and ``qemu:///session`` for other users. Only None
    asks for that default: ``''``, ``0`` or ``False`` are refused, not read as it.

    Raises
    ------
    ScenarioError
        If ``uri`` is neither None nor a URI string
        (:func:`kvmlab.host.connect.check_uri`).

    Examples
    --------
    >>> live_uri("qemu:///session")
    'qemu:///session'
    >>> live_uri("")                                 # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: uri must be a libvirt URI ... for the default host; not ''
    """
    uri = check_uri(uri)
    if uri is not None:
        return uri
    env = os.environ.get("KVMLAB_URI", "")
    if env and not env.startswith("test:"):
        return env
    return "qemu:///system" if os.geteuid() == 0 else "qemu:///session"


def staging_root(uri: str) -> Path:
    """Return where a guest's kernel, initrd and console log are put for ``uri``.

    QEMU under ``qemu:///system`` runs as an unprivileged user that cannot enter
    root's home directory, so its files go to libvirt's images directory.
    """
    return SYSTEM_IMAGES_DIR if is_system_uri(uri) else cache_dir() / "run"


@dataclass(frozen=True)
class ScenarioOutput:
    """What a scenario printed on the guest's serial console.

    ``lines`` holds the lines between ``KVMLAB-BEGIN`` and ``KVMLAB-END``;
    ``exit_status`` is the script's exit status (None if it has not ended).
    """

    booted: bool
    lines: list[str]
    exit_status: int | None
    console: str = field(repr=False, default="")

    def values(self) -> dict[str, str]:
        """Return the ``key=value`` lines of the output as a dict.

        Examples
        --------
        >>> parse_console("KVMLAB-BEGIN\\nvcpus=4\\nKVMLAB-END 0").values()
        {'vcpus': '4'}
        """
        pairs = (line.split("=", 1) for line in self.lines if "=" in line)
        return {k.strip(): v.strip() for k, v in pairs}


def parse_console(text: str) -> ScenarioOutput:
    """Split a serial-console transcript into the scenario's output and status."""
    lines = [line.rstrip("\r") for line in text.splitlines()]
    booted = BOOT_MARKER in lines
    out: list[str] = []
    status: int | None = None
    inside = False
    for line in lines:
        if line == BEGIN_MARKER:
            inside, out = True, []
        elif inside and line.startswith(END_MARKER):
            status = int(line.split()[1]) if len(line.split()) > 1 else None
            inside = False
        elif inside:
            out.append(line)
    return ScenarioOutput(booted=booted, lines=out, exit_status=status, console=text)


class TransientGuest(Transient):
    """A tiny guest that lives exactly as long as a ``with`` block.

    Parameters
    ----------
    script : str
        Shell script (busybox sh) run inside the guest as its scenario. Its
        output comes back through :meth:`result`. ``kvmlab-insmod net`` loads the
        bridge, 8021q and veth modules; ``/opt/iproute2/ip`` is the full ``ip``.
    vcpus : int
        Number of vCPUs.
    memory_mib : int
        Guest memory in MiB.
    pinning : mapping, optional
        vCPU index to the host CPUs it may run on.
    emulator_pinning : sequence of int, optional
        The host CPUs QEMU's other threads (its main loop among them) may run on.
    accel : {'auto', 'kvm', 'tcg'}
        ``auto`` uses KVM only when a trial boot proves that it works.
    uri : str, optional
        libvirt URI of a local QEMU host (see :func:`live_uri`).
    purpose : str
        Middle part of the name, ``kvmlab-<purpose>-<id>``.
    cmdline : str
        Extra kernel command-line arguments (for example ``nokaslr``).
    image : GuestImage, optional
        The guest image; by default the cached one, built if missing.
    shares : int, optional
        CPU weight against other guests (libvirt ``<shares>``; default 1024).
    lifetime_s : float
        The guest powers itself off after this long even if nobody ends it (for
        example when the Python process that started it was killed with ``kill -9``).
    files : mapping, optional
        Extra programs or data for the scenario: name to bytes, put at ``/kvmlab/NAME``
        (executable).
    edit_xml : callable, optional
        Given the domain's XML, returns it changed before the guest starts (the memory lab
        sets its balloon device's options this way).
    disks : sequence of DiskSpec, optional
        Images the guest sees as virtio disks ``/dev/vda``, ``/dev/vdb``, ...
        (``kvmlab-insmod disk`` loads the virtio block driver).
    """

    def __init__(self, script: str = "", *, vcpus: int = 1, memory_mib: int = 128,
                 pinning: Mapping[int, Sequence[int]] | None = None, accel: str = "auto",
                 emulator_pinning: Sequence[int] = (), uri: str | None = None,
                 purpose: str = "guest", cmdline: str = "",
                 image: GuestImage | None = None, shares: int | None = None,
                 lifetime_s: float = DEFAULT_LIFETIME_S,
                 files: Mapping[str, bytes] | None = None,
                 edit_xml: Callable[[str], str] | None = None,
                 disks: Sequence[DiskSpec] = ()) -> None:
        if not purpose.replace("-", "").isalnum():
            raise ScenarioError(f"purpose {purpose!r} may hold only letters, digits and '-'")
        self.script = script
        self.files = dict(files or {})
        self.edit_xml = edit_xml
        self.lifetime_s = lifetime_s
        self.uri = live_uri(uri)
        self.name = f"{NAME_PREFIX}{purpose}-{secrets.token_hex(4)}"
        self.workdir = staging_root(self.uri) / self.name
        self.staging: LocalStaging | PoolStaging | None = None
        self.spec = GuestSpec(
            name=self.name, vcpus=vcpus, memory_mib=memory_mib,
            kernel=str(self.workdir / "vmlinuz"), initrd=str(self.workdir / "initrd.gz"),
            console_log=str(self.workdir / "console.log"),
            accel="tcg" if accel == "auto" else accel, pinning=dict(pinning or {}),
            emulator_pinning=tuple(emulator_pinning), cmdline=cmdline, shares=shares,
            disks=tuple(disks),
            description=owner_note(time.time() + lifetime_s + OUTSIDE_MARGIN_S))
        if accel not in ("auto", "kvm", "tcg"):
            raise ScenarioError(f"accel must be 'auto', 'kvm' or 'tcg', not {accel!r}")
        self._accel = accel
        self.image = image
        self.conn: Any = None
        self.domain: Any = None
        self.started_at: float | None = None
        self.accel_reason = ""

    # -- life cycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Stage the files and start the transient domain."""
        self.conn = connect(self.uri, write=True)
        sweep_stale_guests(self.conn, local=is_local_uri(self.uri))
        self.image = self.image or build_image()
        if self._accel == "auto":
            choice = choose_accelerator(self.uri, self.image, conn=self.conn)
            self.spec = replace(self.spec, accel=choice.accel)
            self.accel_reason = choice.reason
        # A local host reads the files here; any other gets them uploaded through libvirt.
        self.staging = staging_for(self.uri, self.conn, self.name, self.workdir.parent)
        self.staging.put(self.image.kernel, self.image.initramfs.read_bytes()
                         + scenario_archive(lifetime_guard(self.lifetime_s) + self.script,
                                            self.files))
        self.spec = replace(self.spec, kernel=self.staging.kernel, initrd=self.staging.initrd,
                            console_log=self.staging.console_log)
        libvirt = import_libvirt()
        try:
            xml = domain_xml(self.spec)
            self.domain = self.conn.createXML(self.edit_xml(xml) if self.edit_xml else xml,
                                              libvirt.VIR_DOMAIN_NONE)
        except libvirt.libvirtError as exc:
            raise ExperimentFailed(f"libvirt refused to start guest {self.name}: {exc}") from None
        self.started_at = time.monotonic()

    def close(self) -> None:
        """Destroy the domain (if it still runs) and delete its files. Idempotent."""
        try:
            if self.conn is not None:
                destroy_domain(self.conn, self.name)
        finally:                     # the files go even if the domain could not be destroyed
            if self.staging is not None:
                self.staging.close()
            if self.conn is not None:
                with contextlib.suppress(Exception):
                    self.conn.close()
                self.conn = None

    # -- observing -------------------------------------------------------------------
    @property
    def accel(self) -> str:
        """The accelerator the guest runs under: ``'kvm'`` or ``'tcg'``."""
        return self.spec.accel

    def console(self) -> str:
        """Return everything the guest has printed on its serial console so far."""
        return self.staging.console() if self.staging is not None else ""

    def is_running(self) -> bool:
        """Return True while the domain exists and runs.

        Raises
        ------
        HostUnavailable
            If libvirt stopped answering (a daemon killed or restarted, a remote host's
            ssh gone): then nothing can be said about the guest.
        """
        libvirt = import_libvirt()
        try:
            return bool(self.conn.lookupByName(self.name).isActive())
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return False
            raise self.host_lost(exc) from None

    def host_lost(self, exc: Exception) -> HostUnavailable:
        """The error to raise when libvirt stops answering while this guest runs."""
        return HostUnavailable(
            self.uri, f"libvirtd stopped answering while guest {self.name} ran ({exc})",
            "start libvirtd again (as root: libvirtd -d) and run again; the guests of this "
            "run are destroyed by the next kvmlab call (or `kvmlab doctor --cleanup`)")

    def sleep_watching(self, seconds: float) -> None:
        """Sleep ``seconds``, asking libvirt every :data:`WATCH_S` whether the guest runs.

        Raises
        ------
        HostUnavailable
            As soon as libvirt stops answering.
        ExperimentFailed
            If the guest stops meanwhile.
        """
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(WATCH_S, left))
            if not self.is_running():
                raise ExperimentFailed(f"guest {self.name} stopped during the measurement")

    def wait_for(self, text: str, timeout_s: float = 60.0) -> float:
        """Wait until ``text`` appears on the console; return seconds since start.

        Raises
        ------
        ExperimentFailed
            If the guest stops, or ``timeout_s`` passes, without printing it.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            if text in self.console():
                return time.monotonic() - (self.started_at or time.monotonic())
            if time.monotonic() > deadline or not self.is_running():
                if text in self.console():  # printed just before power-off
                    continue
                tail = "\n".join(self.console().splitlines()[-8:]) or "(nothing)"
                state = "did not print" if self.is_running() else "stopped without printing"
                raise ExperimentFailed(
                    f"guest {self.name} ({self.accel}) {state} {text!r} within {timeout_s:g} s; "
                    f"last console lines:\n{tail}")
            time.sleep(self.staging.poll_s if self.staging is not None else 0.05)

    def result(self, timeout_s: float = 120.0) -> ScenarioOutput:
        """Wait for the scenario to end and return its output."""
        self.wait_for(END_MARKER, timeout_s)
        return parse_console(self.console())

    def stats(self) -> dict[str, Any]:
        """Return libvirt's domain statistics (``virsh domstats``) as a dict.

        Raises
        ------
        HostUnavailable
            If libvirt stopped answering.
        ExperimentFailed
            If the guest has stopped.
        """
        libvirt = import_libvirt()
        try:
            records = self.conn.domainListGetStats([self.conn.lookupByName(self.name)])
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                raise ExperimentFailed(f"guest {self.name} has stopped") from None
            raise self.host_lost(exc) from None
        return dict(records[0][1]) if records else {}

    def cgroup_partition(self) -> str | None:
        """The cgroup partition the target host put this guest in, or None if none.

        Asked of the host through libvirt (the running domain's
        ``<resource><partition>``, which a daemon that makes a cgroup per VM fills in,
        e.g. ``/machine``), never guessed from the URI.
        """
        try:
            xml = self.conn.lookupByName(self.name).XMLDesc(0)
        except Exception:  # noqa: BLE001 - the domain is gone
            return None
        return ET.fromstring(xml).findtext("resource/partition") or None

    def local_qemu_pid(self) -> int | None:
        """The id of the guest's QEMU process if it runs on this machine, else None.

        Decided by finding the process here (:func:`kvmlab.host.staging.local_qemu_pid`),
        not by the URI: ``qemu+ssh://`` to this machine's own sshd runs QEMU here too.
        """
        return local_qemu_pid(self.name)

    def qemu_pid(self) -> int:
        """Return the host process id of the guest's QEMU process (on this machine).

        Raises
        ------
        ExperimentFailed
            If the guest's QEMU process does not run on this machine (a remote host), or
            the guest has stopped.
        """
        if (pid := self.local_qemu_pid()) is not None:
            return pid
        if not is_local_uri(self.uri):
            raise ExperimentFailed(
                f"the QEMU process of {self.name} runs on the host behind {self.uri}, not on "
                "this machine: its /proc files cannot be read from here")
        if is_system_uri(self.uri):
            pidfile = Path("/run/libvirt/qemu") / f"{self.name}.pid"
        else:            # the session daemon's run directory
            runtime = os.environ.get("XDG_RUNTIME_DIR")
            base = (Path(runtime) / "libvirt" if runtime
                    else Path.home() / ".cache" / "libvirt")
            pidfile = base / "qemu" / "run" / f"{self.name}.pid"
        try:
            return int(pidfile.read_text().strip())
        except (OSError, ValueError):
            raise ExperimentFailed(f"cannot find the QEMU process of {self.name} "
                                   f"(no pid file {pidfile}); is the guest still running?"
                                   ) from None


def destroy_domain(conn: Any, name: str) -> bool:
    """Destroy (and undefine, if persistent) the domain ``name``; True if it existed."""
    libvirt = import_libvirt()
    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError:
        return False
    with contextlib.suppress(libvirt.libvirtError):
        dom.destroy()
    with contextlib.suppress(libvirt.libvirtError):
        dom.undefine()
    return True


# -- choosing KVM or TCG --------------------------------------------------------------
@dataclass(frozen=True)
class AcceleratorChoice:
    """The accelerator to use on a host, and why."""

    accel: str
    reason: str
    trial_boot_s: float | None = None


def libvirt_offers_kvm(conn: Any) -> bool:
    """Return True if the host's capabilities list a ``kvm`` domain for x86_64."""
    caps = ET.fromstring(conn.getCapabilities())
    return any(d.get("type") == "kvm"
               for d in caps.iterfind("guest/arch[@name='x86_64']/domain"))


def owner_note(deadline: float | None = None) -> str:
    """A guest's libvirt description naming the process that owns it (see cleanup).

    The owner is the process id, its start time and the boot id (:mod:`kvmlab.host.owner`);
    ``deadline`` (seconds since the epoch), if given, is when the guest must be gone.

    Examples
    --------
    >>> owner_note(1700000000.5).endswith(" deadline=1700000000")
    True
    """
    note = f"kvmlab guest; {owner_record()}"
    return note + (f" deadline={int(deadline)}" if deadline is not None else "")


def sweep_stale_guests(conn: Any, *, local: bool = False, quiet: bool = False
                       ) -> list[tuple[str, str]]:
    """Destroy the running (or paused) ``kvmlab-`` guests whose run has ended or whose
    deadline has passed.

    Every live run calls it first, so that a run killed with SIGKILL (or whose libvirtd
    died) stops burning CPU at the latest when kvmlab is next used. With ``local``, the
    staged files and temporary folders of ended runs on this machine go too. Returns
    ``(name, why)`` of each guest destroyed, and says so on standard error unless
    ``quiet``.
    """
    libvirt = import_libvirt()
    gone: list[tuple[str, str]] = []
    with contextlib.suppress(libvirt.libvirtError):
        for dom in conn.listAllDomains():
            with contextlib.suppress(libvirt.libvirtError, ET.ParseError):
                name = dom.name()
                if not name.startswith(NAME_PREFIX) or not dom.isActive():
                    continue                # not ours, or burns nothing (cleanup's business)
                why = stale_reason(ET.fromstring(dom.XMLDesc()).findtext("description") or "")
                if why and destroy_domain(conn, name):
                    gone.append((name, why))
    if local:
        for root in (SYSTEM_IMAGES_DIR, cache_dir() / "run", temp_root()):
            remove_dead_dirs(root)
    if gone and not quiet:
        print("kvmlab: destroyed " + "; ".join(f"{n} ({why})" for n, why in gone),
              file=sys.stderr)
    return gone


def owner_pid(description: str) -> int | None:
    """The id of the running kvmlab process named in a guest's description, else None.

    Examples
    --------
    >>> owner_pid(owner_note()) == os.getpid()
    True
    >>> owner_pid("kvmlab guest; owner pid=1 boot=another-boot"), owner_pid("")
    (None, None)
    """
    owner = parse_owner(description)
    return owner.pid if owner is not None and owner.state() == "alive" else None


def owner_alive(description: str) -> bool:
    """True if the kvmlab process named in a guest's description still runs.

    Examples
    --------
    >>> owner_alive(owner_note())
    True
    >>> owner_alive("kvmlab guest; owner pid=1 boot=another-boot"), owner_alive("")
    (False, False)
    """
    return owner_pid(description) is not None


def trial_boot(uri: str, image: GuestImage, accel: str,
               timeout_s: float = KVM_TRIAL_TIMEOUT_S) -> float:
    """Boot the guest under ``accel``; return seconds until ``KVMLAB-BOOTED``.

    Raises
    ------
    ExperimentFailed
        If the guest does not reach its ``/init`` within ``timeout_s``.
    """
    with TransientGuest("", accel=accel, uri=uri, purpose="trial", image=image) as guest:
        return guest.wait_for(BOOT_MARKER, timeout_s)


def choose_accelerator(uri: str, image: GuestImage | None = None, *,
                       recheck: bool = False, conn: Any = None) -> AcceleratorChoice:
    """Decide between KVM and TCG for ``uri`` by a trial boot (cached per host and boot).

    KVM is chosen only if libvirt offers it *and* a guest booted under it
    reaches its ``/init`` within a few seconds. A ``/dev/kvm`` that exists but
    cannot run a standard guest (for example a paravirtual KVM variant) gives TCG.
    The answer is cached per target host (:func:`kvmlab.host.staging.host_key`);
    ``recheck`` decides again; ``conn``, open to ``uri``, saves opening another.
    """
    image = image or cached_image() or build_image()
    memo = cache_dir() / "accelerator.json"
    with contextlib.ExitStack() as stack:
        conn = conn if conn is not None else stack.enter_context(connection(uri))
        key = host_key(uri, conn, image.kernel_release)
        if not recheck and (saved := read_host_answers(memo).get(key)):
            return AcceleratorChoice(**saved)
        offers = libvirt_offers_kvm(conn)
    if not offers:
        choice = AcceleratorChoice("tcg", "libvirt offers no KVM domain on this host "
                                   "(no /dev/kvm, or QEMU may not open it)")
    else:
        try:
            seconds = trial_boot(uri, image, "kvm")
            choice = AcceleratorChoice("kvm", f"a trial boot under KVM reached the guest's "
                                       f"init in {seconds:.1f} s", seconds)
        except ExperimentFailed as exc:
            first = str(exc).splitlines()[0]
            choice = AcceleratorChoice(
                "tcg", "/dev/kvm is present but a standard guest does not boot under it "
                f"({first}); using QEMU's TCG software emulation")
    keep_host_answer(memo, key, choice.__dict__)
    return choice

"""The VA→PA→MA chain traced through a real running guest.

A tiny guest runs ``kvmlab-pages``, a program that fills a buffer with a known pattern
("KVMLAB-PAGE-000007" at the start of page 7), prints where each page is (its virtual
address and the physical frame the guest kernel reports in ``/proc/self/pagemap``) and
then spins, so that it is the process on the vCPU. The host pauses the guest and, through
QEMU's monitor (libvirt passes HMP commands on):

1. reads CR3 and CR4 (``info registers``): the root of the running process's tables and
   whether they have 4 or 5 levels;
2. walks those *real* tables with the model's walk (:func:`kvmlab.memory.paging.walk`),
   reading each table from guest memory (``xp``), for user-space and kernel addresses;
3. asks QEMU for the same translation (``gva2gpa``): the two must agree;
4. follows each guest-physical address to QEMU's own virtual address (``gpa2hva``: guest
   RAM is ordinary memory of the QEMU process) and on to the machine frame the host
   kernel gave that page (``/proc/<qemu pid>/pagemap``, readable by root).

Under TCG, QEMU's software MMU makes the PA→MA step; under KVM the CPU walks EPT/NPT
tables that KVM builds from the same QEMU mapping. The chain is the same.

Examples
--------
The monitor's answers are parsed by small pure functions:

>>> parse_gva2gpa("gpa: 0x1000000\\r\\n"), parse_gva2gpa("Unmapped\\r\\n")
(16777216, None)
>>> hex(parse_gpa2hva("Host virtual address for 0x1000000 (pc.ram) is 0x7f3950e00000"))
'0x7f3950e00000'
>>> regs = parse_registers("CR0=80050033 CR2=0 CR3=00000000056a0000 CR4=000006b0\\nCPL=3")
>>> hex(regs["CR3"]), regs["CPL"]
('0x56a0000', 3)
"""

from __future__ import annotations

import random
import re
import struct
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kvmlab.errors import ExperimentFailed, ScenarioError
from kvmlab.host import ctool
from kvmlab.host.connect import check_uri, import_libvirt
from kvmlab.host.signals import stop_signals_as_exit
from kvmlab.lab import MEASURED
from kvmlab.memory.balloonrun import BalloonRunResult
from kvmlab.memory.balloonscenario import BalloonRunScenario
from kvmlab.memory.balloontwin import run_balloon
from kvmlab.memory.paging import ADDRESS_MASK, PAGE, walk
from kvmlab.memory.physmem import TablesInMemory
from kvmlab.memory.result import KsmResult, KsmSample, TraceResult, Translation
from kvmlab.memory.scenario import (
    BalloonScenario,
    KsmScenario,
    MemoryScenario,
    TraceScenario,
    load_scenario,
)
from kvmlab.progress import ProgressArg, check_progress, progress_bar

HMP = 1
"""libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP: the command is for the human monitor."""
READY_MARKER = "KVMLAB-MEM-READY"
TOOL = "kvmlab-pages"
KSM_TOOL = "kvmlab-ksm"
TRACE_LIFETIME_S = 900.0
"""A trace's guest is gone after this long, even if its run was killed while it was paused
(the next kvmlab call destroys it from outside: :func:`kvmlab.host.guest.sweep_stale_guests`)."""
CR4_LA57 = 1 << 12


# -- the monitor's answers ------------------------------------------------------------------
def parse_registers(text: str) -> dict[str, int]:
    """The registers of ``info registers`` that name a value, as integers (CPL in decimal)."""
    regs = {name: int(value, 16) for name, value in
            re.findall(r"\b(CR[0234]|EFER|RIP)=([0-9a-fA-F]+)", text)}
    cpl = re.search(r"\bCPL=(\d)", text)
    if cpl:
        regs["CPL"] = int(cpl.group(1))
    return regs


def parse_gva2gpa(text: str) -> int | None:
    """The guest-physical address in ``gva2gpa``'s answer; None for "Unmapped"."""
    match = re.search(r"gpa:\s*(0x[0-9a-fA-F]+)", text)
    return int(match.group(1), 16) if match else None


def parse_gpa2hva(text: str) -> int | None:
    """QEMU's virtual address in ``gpa2hva``'s answer; None where no RAM is mapped."""
    match = re.search(r"\bis (0x[0-9a-fA-F]+)", text)
    return int(match.group(1), 16) if match else None


def parse_xp(text: str) -> bytes:
    """The bytes of an ``xp /Ngx ADDR`` dump (eight-byte words, in order).

    Examples
    --------
    >>> parse_xp("0000000001000000: 0x0000000000000001 0x0000000000000002\\r\\n")[:9]
    b'\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02'
    """
    words = [int(w, 16) for line in text.splitlines() if ":" in line
             for w in line.split(":", 1)[1].split()]
    return struct.pack(f"<{len(words)}Q", *words)


class Monitor:
    """QEMU's human monitor of one running libvirt domain (needs write access)."""

    def __init__(self, domain: Any) -> None:
        self.domain = domain
        self.commands = 0

    def hmp(self, command: str) -> str:
        """Run one HMP command and return its answer."""
        import libvirt_qemu

        libvirt = import_libvirt()
        self.commands += 1
        try:
            return libvirt_qemu.qemuMonitorCommand(self.domain, command, HMP)
        except libvirt.libvirtError as exc:
            raise ExperimentFailed(f"QEMU's monitor refused {command!r}: "
                                   f"{exc.get_error_message()}") from None

    def registers(self) -> dict[str, int]:
        return parse_registers(self.hmp("info registers"))

    def gva2gpa(self, va: int) -> int | None:
        return parse_gva2gpa(self.hmp(f"gva2gpa {va:#x}"))

    def gpa2hva(self, pa: int) -> int | None:
        return parse_gpa2hva(self.hmp(f"gpa2hva {pa:#x}"))

    def read_page(self, pa: int) -> bytes:
        """One 4 KiB page of guest-physical memory (how the walk reads real tables)."""
        data = parse_xp(self.hmp(f"xp /{PAGE // 8}gx {pa:#x}"))
        if len(data) != PAGE:
            raise ExperimentFailed(f"xp at {pa:#x} gave {len(data)} bytes, not {PAGE}")
        return data


# -- the host's side ------------------------------------------------------------------------
def host_frame(pid: int, hva: int) -> int | None:
    """The machine frame number behind virtual address ``hva`` of process ``pid``.

    Read from ``/proc/PID/pagemap`` (bit 63: present; bits 0-54: the frame). The kernel
    shows frames only to root (CAP_SYS_ADMIN); others read 0, returned as None.
    """
    try:
        with open(f"/proc/{pid}/pagemap", "rb") as f:
            f.seek(hva // PAGE * 8)
            (entry,) = struct.unpack("<Q", f.read(8))
    except (OSError, struct.error):
        return None
    frame = entry & ((1 << 55) - 1)
    return frame if entry >> 63 and frame else None


def read_process_memory(pid: int, address: int, size: int) -> bytes | None:
    """``size`` bytes at ``address`` in process ``pid`` (root only), or None."""
    try:
        with open(f"/proc/{pid}/mem", "rb") as f:
            f.seek(address)
            return f.read(size)
    except OSError:
        return None


# -- the trace ------------------------------------------------------------------------------
def parse_program_output(console: str) -> dict[str, Any]:
    """What ``kvmlab-pages`` printed: its pid, buffer, and each page's VA and guest frame.

    Examples
    --------
    >>> out = parse_program_output("pid=42\\nbuffer=0x7f00\\npages=1\\n"
    ...                            "page 0 va=0x7f00 present=1 pfn=0x29c3\\nKVMLAB-MEM-READY")
    >>> out["pid"], hex(out["pages"][0][1])
    (42, '0x29c3000')
    """
    pid = re.search(r"^pid=(\d+)", console, re.M)
    pages = [(int(va, 16), int(pfn, 16) * PAGE if present == "1" else None)
             for va, present, pfn in
             re.findall(r"^page \d+ va=(0x[0-9a-f]+) present=(\d) pfn=(0x[0-9a-f]+)", console,
                        re.M)]
    if pid is None or not pages:
        raise ExperimentFailed("the guest program's report is missing from the console:\n"
                               + "\n".join(console.splitlines()[-8:]))
    return {"pid": int(pid.group(1)), "pages": pages}


@contextmanager
def paused(domain: Any) -> Iterator[None]:
    """Keep the guest paused (its registers and tables still) inside the block."""
    domain.suspend()
    try:
        yield
    finally:
        domain.resume()


def trace(scenario: TraceScenario, *, uri: str | None = None,
          progress: ProgressArg = None) -> TraceResult:
    """Trace the scenario's virtual addresses through a live tiny guest from VA to MA.

    Parameters
    ----------
    scenario : TraceScenario
        How many addresses (user-space in the program's buffer, kernel text, the
        kernel's direct map, and unmapped ones, in turn), the buffer's size in pages, the
        guest's memory, and the seed that picks the addresses (None: a new one, kept in
        the result's scenario and provenance).
    uri : str, optional
        A QEMU host, local or remote (see :func:`kvmlab.host.guest.live_uri`); the monitor
        needs write access. The machine frames need root and QEMU running on this machine:
        for a guest on another machine the provenance's ``not_measured`` says what is
        left out (VA -> PA is still traced).
    progress : see :mod:`kvmlab.progress`
        Counts addresses traced.

    Raises
    ------
    ExperimentFailed
        If the guest does not come up, or its process cannot be caught on the vCPU.
    """
    from kvmlab.host.guest import TransientGuest

    check_uri(uri)
    progress = check_progress(progress)
    if scenario.seed is None:
        scenario = scenario.with_seed(random.SystemRandom().randrange(1 << 32))
    tool = ctool.static_tool("kvmlab.memory", TOOL)
    script = f"/kvmlab/{TOOL} {scenario.pages}\n"
    with progress_bar(progress, total=scenario.samples, desc="trace", unit="address") as bar, \
            TransientGuest(script, vcpus=1, memory_mib=scenario.memory_mib, uri=uri,
                           purpose="memory", cmdline="nokaslr", files={TOOL: tool},
                           lifetime_s=TRACE_LIFETIME_S) as guest:
        bar.set_postfix_str("booting the guest")
        boot_s = guest.wait_for(READY_MARKER, 180)
        report = parse_program_output(guest.console())
        domain = guest.conn.lookupByName(guest.name)
        monitor = Monitor(domain)
        # Machine addresses come from /proc/<QEMU pid>/pagemap: only where QEMU runs here.
        qemu_pid = guest.local_qemu_pid()
        started = time.monotonic()
        bar.set_postfix_str("catching the program on the vCPU")
        with paused(domain):
            regs = _catch_the_program(domain, monitor, report["pages"][0])
            levels = 5 if regs.get("CR4", 0) & CR4_LA57 else 4
            tables = TablesInMemory(regs["CR3"] & ADDRESS_MASK, levels, monitor)
            guest_frames = {va: pa for va, pa in report["pages"]}
            picks = scenario.addresses([va for va, _ in report["pages"]], levels)
            bar.set_postfix_str("following addresses")
            translations = []
            for kind, va in picks:
                translations.append(_follow(kind, va, tables, monitor, qemu_pid,
                                            guest_frames.get(va - va % PAGE)))
                bar.update(1)
            pattern = _pattern_seen(monitor, qemu_pid, translations)
            memory = _memory_figures(domain, qemu_pid)
        return TraceResult(scenario, MEASURED, translations, regs["CR3"], levels, pattern,
                           memory, {
            "uri": guest.uri, "accelerator": guest.accel, "date":
            datetime.now(UTC).isoformat(timespec="seconds"),
            "guest_kernel": (guest.image.kernel_release if guest.image else ""),
            "program_pid": report["pid"], "qemu_pid": qemu_pid, "boot_to_ready_s":
            round(boot_s, 2), "trace_s": round(time.monotonic() - started, 2),
            "monitor_commands": monitor.commands, "tables_read": tables.tables_read,
            "seed": scenario.seed, "cpl": regs.get("CPL"),
            **({} if qemu_pid is not None else {"not_measured": NOT_HERE})})


def _catch_the_program(domain: Any, monitor: Monitor, first_page: tuple[int, int | None],
                       tries: int = 30) -> dict[str, int]:
    """Pause the guest at a moment when ``kvmlab-pages`` is on the vCPU; its registers."""
    va, frame = first_page
    for _ in range(tries):
        regs = monitor.registers()
        if "CR3" in regs and frame is not None and monitor.gva2gpa(va) == frame:
            return regs
        domain.resume()          # another process (or the idle task) was running
        time.sleep(0.1)
        domain.suspend()
    raise ExperimentFailed(f"could not catch the guest program on the vCPU in {tries} tries "
                           f"(its buffer at {va:#x} never resolved through the vCPU's CR3)")


NOT_HERE = ("machine addresses (MA), the pattern read through QEMU's memory and QEMU's "
            "resident size: the guest's QEMU process runs on another machine, and they are "
            "read from its /proc files (pagemap, mem, status), which only that machine has; "
            "VA -> PA (the guest's page tables, through the monitor) is measured")


def _follow(kind: str, va: int, tables: TablesInMemory, monitor: Monitor,
            qemu_pid: int | None,
            guest_frame: int | None) -> Translation:
    w = walk(va, tables)
    qemu_pa = monitor.gva2gpa(va)
    refs = tuple((r.level, r.table, r.index) for r in w.refs)
    if w.address is None:
        return Translation(va, kind, None, qemu_pa, refs=refs, fault=w.fault)
    hva = monitor.gpa2hva(w.address)
    frame = host_frame(qemu_pid, hva) if hva is not None and qemu_pid is not None else None
    ma = frame * PAGE + hva % PAGE if frame is not None and hva is not None else None
    guest_pa = guest_frame + va % PAGE if guest_frame is not None else None
    return Translation(va, kind, w.address, qemu_pa, w.page_size, refs, None, hva, ma,
                       guest_pa)


def _pattern_seen(monitor: Monitor, qemu_pid: int | None,
                  translations: list[Translation]) -> dict[str, str]:
    """The first user page's pattern as the guest wrote it, read by PA and by HVA."""
    first = next((t for t in translations if t.kind == "user" and t.model_pa is not None),
                 None)
    if first is None:
        return {}
    start = first.model_pa - first.model_pa % PAGE
    by_pa = monitor.read_page(start)[:18]
    seen = {"va": hex(first.va - first.va % PAGE), "pa": hex(start),
            "via_pa": by_pa.decode("ascii", "replace")}
    if first.hva is not None and qemu_pid is not None:
        by_hva = read_process_memory(qemu_pid, first.hva - first.hva % PAGE, 18)
        if by_hva is not None:
            seen["via_hva"] = by_hva.decode("ascii", "replace")
    return seen


def _memory_figures(domain: Any, qemu_pid: int | None) -> dict[str, Any]:
    """libvirt's memory figures for the guest and the host's view of the QEMU process."""
    stats = {k: int(v) for k, v in domain.memoryStats().items()}
    status = Path(f"/proc/{qemu_pid}/status").read_text() if qemu_pid is not None else ""
    rss = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return {"libvirt_kib": stats, "qemu_rss_kib": int(rss.group(1)) if rss else None,
            "max_memory_kib": int(domain.maxMemory())}



# -- KSM in the guest's kernel ----------------------------------------------------------------
def parse_ksm_output(lines: list[str]) -> list[KsmSample]:
    """The samples ``kvmlab-ksm`` printed.

    Examples
    --------
    >>> parse_ksm_output(["ksm t_ms=242.3 full_scans=1 pages_shared=0 pages_sharing=0"])
    [KsmSample(t_s=0.2423, full_scans=1, pages_shared=0, pages_sharing=0)]
    """
    samples = []
    for line in lines:
        match = re.match(r"ksm t_ms=([\d.]+) full_scans=(\d+) pages_shared=(\d+) "
                         r"pages_sharing=(\d+)", line)
        if match:
            t, scans, shared, sharing = match.groups()
            samples.append(KsmSample(round(float(t) / 1000, 6), int(scans), int(shared),
                                     int(sharing)))
    return samples


def run_ksm(scenario: KsmScenario, *, uri: str | None = None,
            progress: ProgressArg = None) -> KsmResult:
    """The scenario on the real KSM of a tiny guest's kernel (the same ``mm/ksm.c`` a host
    runs; the lab never changes the host's own KSM settings).

    A guest program fills the pages, marks them mergeable, tunes and starts ``ksmd``, and
    prints its counters at every change. The model's own costs (``scan_page_us``,
    ``merge_us``) play no part. ``progress`` counts guests run (one).
    """
    from kvmlab.host.guest import TransientGuest

    check_uri(uri)
    progress = check_progress(progress)
    tool = ctool.static_tool("kvmlab.memory", KSM_TOOL)
    memory_mib = max(128, 64 + scenario.pages * 4 // 1024 * 2)
    args = (f"{scenario.pages} {scenario.distinct} {scenario.pages_to_scan} "
            f"{round(scenario.sleep_ms)} {round(scenario.duration_s * 1000)}")
    with progress_bar(progress, total=1, desc="KSM in a guest", unit="guest") as bar, \
            TransientGuest(f"/kvmlab/{KSM_TOOL} {args}\n", vcpus=1, memory_mib=memory_mib,
                           uri=uri, purpose="ksm", files={KSM_TOOL: tool},
                           lifetime_s=240 + 2 * scenario.duration_s) as guest:
        bar.set_postfix_str(f"booting, then watching ksmd for {scenario.duration_s:g} s")
        out = guest.result(timeout_s=120 + 2 * scenario.duration_s)
        bar.update(1)
    if out.exit_status != 0:
        raise ExperimentFailed(f"{KSM_TOOL} failed in the guest (exit {out.exit_status}):\n"
                               + "\n".join(out.lines[-6:]))
    samples = parse_ksm_output(out.lines)
    if not samples:
        raise ExperimentFailed(f"{KSM_TOOL} printed no KSM counters:\n"
                               + "\n".join(out.lines[-6:]))
    return KsmResult(scenario, MEASURED, [KsmSample(0.0, 0, 0, 0), *samples], {
        "uri": guest.uri, "accelerator": guest.accel, "runs_in": "the tiny guest's kernel",
        "guest_kernel": guest.image.kernel_release if guest.image else "",
        "date": datetime.now(UTC).isoformat(timespec="seconds")})


# -- any kind ---------------------------------------------------------------------------------
def run_on_host(scenario: MemoryScenario | Mapping[str, Any] | str, *, uri: str | None = None,
                progress: ProgressArg = None) -> KsmResult | TraceResult | BalloonRunResult:
    """Run a scenario of any kind on a real local QEMU host (in a tiny guest).

    KSM scenarios run in the guest's own kernel (:func:`run_ksm`), traces follow the
    guest's addresses (:func:`trace`), balloon runs inflate and deflate a guest's real
    balloon (:func:`kvmlab.memory.balloontwin.run_balloon`). A balloon plan of several
    guests (kind ``balloon``) is arithmetic on a host of its own: it is only simulated.

    Raises
    ------
    ScenarioError
        For a balloon plan, or a ``uri`` or ``progress`` that breaks a rule (checked
        before any connection).

    Examples
    --------
    >>> run_on_host({"kind": "balloon", "host_mib": 1024})
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: a balloon plan (kind 'balloon') can only be simulated: ...
    """
    scenario = load_scenario(scenario)
    if isinstance(scenario, KsmScenario):
        with stop_signals_as_exit():
            return run_ksm(scenario, uri=uri, progress=progress)
    if isinstance(scenario, TraceScenario):
        with stop_signals_as_exit():
            return trace(scenario, uri=uri, progress=progress)
    if isinstance(scenario, BalloonRunScenario):
        with stop_signals_as_exit():
            return run_balloon(scenario, uri=uri, progress=progress)
    assert isinstance(scenario, BalloonScenario)
    raise ScenarioError("a balloon plan (kind 'balloon') can only be simulated: its guests "
                        "and host are not this machine's; a 'balloon-run' scenario "
                        "(memory-balloon-live) inflates a real guest's balloon")


__all__ = ["CR4_LA57", "KSM_TOOL", "READY_MARKER", "TOOL", "Monitor", "host_frame",
           "parse_gpa2hva", "parse_gva2gpa", "parse_ksm_output", "parse_program_output",
           "parse_registers", "parse_xp", "paused", "read_process_memory", "run_ksm",
           "run_on_host", "trace"]

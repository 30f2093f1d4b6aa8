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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kvmlab.errors import ExperimentFailed, ScenarioError
from kvmlab.host import ctool
from kvmlab.host.connect import import_libvirt
from kvmlab.memory.overcommit import KsmResult, KsmSample, KsmScenario
from kvmlab.memory.paging import ADDRESS_MASK, PAGE, walk
from kvmlab.memory.physmem import TablesInMemory

HMP = 1
"""libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP: the command is for the human monitor."""
READY_MARKER = "KVMLAB-MEM-READY"
TOOL = "kvmlab-pages"
KSM_TOOL = "kvmlab-ksm"
CR4_LA57 = 1 << 12
KERNEL_TEXT = 0xFFFF_FFFF_8100_0000
"""Where the kernel's text starts when the guest boots with ``nokaslr``."""
DIRECT_MAP = {4: 0xFFFF_8880_0000_0000, 5: 0xFF11_0000_0000_0000}
"""The start of the kernel's map of all physical memory (``page_offset_base``, nokaslr)."""
KINDS = ("user", "kernel-text", "direct-map", "unmapped")


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
@dataclass(frozen=True)
class Translation:
    """One virtual address followed through the real machine.

    ``model_pa`` comes from the model's walk over the guest's real tables, ``qemu_pa`` from
    QEMU's ``gva2gpa``; ``hva`` is where QEMU keeps that guest-physical byte, ``ma`` the
    machine address behind it. ``refs`` lists the walk's references as ``(level, table,
    index)``; ``fault`` is set when the address is not mapped.
    """

    va: int
    kind: str
    model_pa: int | None
    qemu_pa: int | None
    page_size: int | None = None
    refs: tuple[tuple[int, int, int], ...] = ()
    fault: str | None = None
    hva: int | None = None
    ma: int | None = None
    guest_pagemap_pa: int | None = None

    @property
    def agrees(self) -> bool:
        """The model's walk and QEMU found the same PA (or both found none)."""
        return self.model_pa == self.qemu_pa

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["refs"] = [list(r) for r in self.refs]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Translation:
        return cls(**{**d, "refs": tuple(tuple(r) for r in d.get("refs", ()))})

    def chain(self) -> str:
        """The chain in one line, e.g. ``VA 0x7f.. -> PA 0x29c3000 -> HVA 0x7f.. -> MA 0x..``.

        Examples
        --------
        >>> Translation(0x1000, "unmapped", None, None, fault="not present").chain()
        'VA 0x1000 -> page fault (not present)'
        """
        if self.model_pa is None:
            return f"VA {self.va:#x} -> page fault ({self.fault})"
        parts = [f"VA {self.va:#x}", f"PA {self.model_pa:#x}"]
        if self.hva is not None:
            parts.append(f"HVA {self.hva:#x}")
        if self.ma is not None:
            parts.append(f"MA {self.ma:#x}")
        return " -> ".join(parts)


@dataclass
class ChainTrace:
    """Everything one trace found: the translations and what the machine looked like."""

    translations: list[Translation]
    cr3: int
    levels: int
    pattern_seen: dict[str, str] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def agreement(self) -> tuple[int, int]:
        """(how many translations agree, how many there are)."""
        return sum(t.agrees for t in self.translations), len(self.translations)

    def by_kind(self) -> dict[str, tuple[int, int]]:
        """Agreement counted per kind of address."""
        out: dict[str, tuple[int, int]] = {}
        for t in self.translations:
            ok, n = out.get(t.kind, (0, 0))
            out[t.kind] = (ok + t.agrees, n + 1)
        return out

    def table(self, limit: int | None = 12) -> str:
        """A plain-text table of the first ``limit`` translations of each kind."""
        rows = [f"{'kind':<12} {'virtual address':>18} {'model PA':>12} {'QEMU PA':>12} "
                f"{'page':>5} {'machine address':>16}"]
        shown: dict[str, int] = {}
        for t in self.translations:
            shown[t.kind] = shown.get(t.kind, 0) + 1
            if limit is not None and shown[t.kind] > limit:
                continue
            page = {4096: "4K", 2 << 20: "2M", 1 << 30: "1G"}.get(t.page_size or 0, "-")
            rows.append(f"{t.kind:<12} {t.va:>#18x} {_hex(t.model_pa):>12} "
                        f"{_hex(t.qemu_pa):>12} {page:>5} {_hex(t.ma):>16}")
        return "\n".join(rows)

    def to_dict(self) -> dict[str, Any]:
        return {"cr3": self.cr3, "levels": self.levels, "pattern_seen": self.pattern_seen,
                "memory": self.memory, "provenance": self.provenance,
                "translations": [t.to_dict() for t in self.translations]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChainTrace:
        return cls([Translation.from_dict(t) for t in d["translations"]], d["cr3"],
                   d["levels"], d.get("pattern_seen", {}), d.get("memory", {}),
                   d.get("provenance", {}))


def _hex(value: int | None) -> str:
    return "-" if value is None else f"{value:#x}"


def sample_addresses(buffer_pages: list[int], levels: int, memory_bytes: int, n: int,
                     seed: int = 0) -> list[tuple[str, int]]:
    """``n`` virtual addresses to trace: the program's buffer, the kernel's text, the
    kernel's direct map of RAM, and some that nothing maps.

    Examples
    --------
    >>> picks = sample_addresses([0x7F00_0000_0000], 4, 128 << 20, 8, seed=1)
    >>> [kind for kind, _ in picks][:5]
    ['user', 'kernel-text', 'direct-map', 'unmapped', 'user']
    """
    if n < 1:
        raise ScenarioError(f"trace at least 1 address, not {n}")
    if not buffer_pages:
        raise ScenarioError("the guest program reported no buffer pages")
    rng = random.Random(seed)
    direct = DIRECT_MAP[levels]
    picks: list[tuple[str, int]] = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        if kind == "user":
            va = buffer_pages[i // len(KINDS) % len(buffer_pages)] + rng.randrange(PAGE)
        elif kind == "kernel-text":
            va = KERNEL_TEXT + rng.randrange(16 << 20)
        elif kind == "direct-map":
            va = direct + rng.randrange(memory_bytes // 2)
        else:
            va = rng.choice([rng.randrange(PAGE, 0x40_0000),            # below the program
                             direct + (64 << 30) + rng.randrange(1 << 30)])  # beyond all RAM
        picks.append((kind, va))
    return picks


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


def trace(uri: str | None = None, *, samples: int = 200, pages: int = 64,
          seed: int | None = 0,
          memory_mib: int = 128, progress: Callable[[int, int], None] | None = None
          ) -> ChainTrace:
    """Trace ``samples`` virtual addresses of a live tiny guest from VA to MA.

    Parameters
    ----------
    uri : str, optional
        A local QEMU host (see :func:`kvmlab.host.guest.live_uri`); the monitor needs
        write access, the machine frames need root.
    samples : int
        How many addresses: user-space (the program's buffer), kernel text, the kernel's
        direct map, and unmapped ones, in turn.
    pages : int
        Size of the program's buffer in 4 KiB pages.
    seed : int or None
        Picks the addresses; None picks a new seed (kept in the provenance).
    progress : callable, optional
        Called as ``progress(done, total)`` after each address.

    Raises
    ------
    ExperimentFailed
        If the guest does not come up, or its process cannot be caught on the vCPU.
    """
    from kvmlab.host.guest import TransientGuest

    if not 1 <= pages <= 65536:
        raise ScenarioError(f"the buffer has 1-65536 pages, not {pages}")
    if seed is None:
        seed = random.SystemRandom().randrange(1 << 32)
    tool = ctool.static_tool("kvmlab.memory", TOOL)
    script = f"/kvmlab/{TOOL} {pages}\n"
    with TransientGuest(script, vcpus=1, memory_mib=memory_mib, uri=uri, purpose="memory",
                        cmdline="nokaslr", files={TOOL: tool}) as guest:
        boot_s = guest.wait_for(READY_MARKER, 180)
        report = parse_program_output(guest.console())
        domain = guest.conn.lookupByName(guest.name)
        monitor = Monitor(domain)
        qemu_pid = guest.qemu_pid()
        started = time.monotonic()
        with paused(domain):
            regs = _catch_the_program(domain, monitor, report["pages"][0])
            levels = 5 if regs.get("CR4", 0) & CR4_LA57 else 4
            tables = TablesInMemory(regs["CR3"] & ADDRESS_MASK, levels, monitor)
            guest_frames = {va: pa for va, pa in report["pages"]}
            picks = sample_addresses([va for va, _ in report["pages"]], levels,
                                     memory_mib << 20, samples, seed)
            translations = []
            for done, (kind, va) in enumerate(picks, 1):
                translations.append(_follow(kind, va, tables, monitor, qemu_pid,
                                            guest_frames.get(va - va % PAGE)))
                if progress:
                    progress(done, len(picks))
            pattern = _pattern_seen(monitor, qemu_pid, translations)
            memory = _memory_figures(domain, qemu_pid)
        return ChainTrace(translations, regs["CR3"], levels, pattern, memory, {
            "uri": guest.uri, "accelerator": guest.accel, "date":
            datetime.now(UTC).isoformat(timespec="seconds"),
            "guest_kernel": (guest.image.kernel_release if guest.image else ""),
            "program_pid": report["pid"], "qemu_pid": qemu_pid, "boot_to_ready_s":
            round(boot_s, 2), "trace_s": round(time.monotonic() - started, 2),
            "monitor_commands": monitor.commands, "tables_read": tables.tables_read,
            "seed": seed, "cpl": regs.get("CPL")})


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


def _follow(kind: str, va: int, tables: TablesInMemory, monitor: Monitor, qemu_pid: int,
            guest_frame: int | None) -> Translation:
    w = walk(va, tables)
    qemu_pa = monitor.gva2gpa(va)
    refs = tuple((r.level, r.table, r.index) for r in w.refs)
    if w.address is None:
        return Translation(va, kind, None, qemu_pa, refs=refs, fault=w.fault)
    hva = monitor.gpa2hva(w.address)
    frame = host_frame(qemu_pid, hva) if hva is not None else None
    ma = frame * PAGE + hva % PAGE if frame is not None and hva is not None else None
    guest_pa = guest_frame + va % PAGE if guest_frame is not None else None
    return Translation(va, kind, w.address, qemu_pa, w.page_size, refs, None, hva, ma,
                       guest_pa)


def _pattern_seen(monitor: Monitor, qemu_pid: int,
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
    if first.hva is not None:
        by_hva = read_process_memory(qemu_pid, first.hva - first.hva % PAGE, 18)
        if by_hva is not None:
            seen["via_hva"] = by_hva.decode("ascii", "replace")
    return seen


def _memory_figures(domain: Any, qemu_pid: int) -> dict[str, Any]:
    """libvirt's memory figures for the guest and the host's view of the QEMU process."""
    stats = {k: int(v) for k, v in domain.memoryStats().items()}
    status = Path(f"/proc/{qemu_pid}/status").read_text()
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


def run_ksm(scenario: KsmScenario, uri: str | None = None) -> KsmResult:
    """The scenario on the real KSM of a tiny guest's kernel (the same ``mm/ksm.c`` a host
    runs; the lab never changes the host's own KSM settings).

    A guest program fills the pages, marks them mergeable, tunes and starts ``ksmd``, and
    prints its counters at every change.
    """
    from kvmlab.host.guest import TransientGuest

    tool = ctool.static_tool("kvmlab.memory", KSM_TOOL)
    memory_mib = max(128, 64 + scenario.pages * 4 // 1024 * 2)
    args = (f"{scenario.pages} {scenario.distinct} {scenario.pages_to_scan} "
            f"{round(scenario.sleep_ms)} {round(scenario.duration_s * 1000)}")
    with TransientGuest(f"/kvmlab/{KSM_TOOL} {args}\n", vcpus=1, memory_mib=memory_mib,
                        uri=uri, purpose="ksm", files={KSM_TOOL: tool}) as guest:
        out = guest.result(timeout_s=120 + 2 * scenario.duration_s)
    if out.exit_status != 0:
        raise ExperimentFailed(f"{KSM_TOOL} failed in the guest (exit {out.exit_status}):\n"
                               + "\n".join(out.lines[-6:]))
    samples = parse_ksm_output(out.lines)
    if not samples:
        raise ExperimentFailed(f"{KSM_TOOL} printed no KSM counters:\n"
                               + "\n".join(out.lines[-6:]))
    return KsmResult(scenario, [KsmSample(0.0, 0, 0, 0), *samples], "guest kernel", {
        "uri": guest.uri, "accelerator": guest.accel,
        "guest_kernel": guest.image.kernel_release if guest.image else "",
        "date": datetime.now(UTC).isoformat(timespec="seconds")})

"""x86-64 page tables as data, and the walks an MMU makes through them.

A table is one 4 KiB page of 512 eight-byte entries; each level of the walk uses 9
bits of the virtual address, from the top level (PML4, or PML5 with 5 levels) down to
the page table. An entry points to the next table, or (with the PS bit, at the level
that maps 2 MiB or 1 GiB) straight to a huge page. Entries are kept as the 64-bit
values the hardware reads (present bit, PS bit, physical address in bits 12-51), so the
same walk runs over the model's tables and over a real guest's memory
(:mod:`kvmlab.memory.twin` reads those through QEMU's monitor).

With virtualization the guest's tables map guest-virtual to guest-physical addresses
(VA→PA), and the hypervisor's nested tables (Intel EPT, AMD NPT) map guest-physical to
machine addresses (PA→MA). Every guest table lives in guest-physical memory, so reading
one of its entries first needs a walk of the nested tables: a 4-level guest walk over
4-level nested tables makes up to (4+1)(4+1)-1 = 24 memory references.

Virtual addresses are *canonical*: with 4 levels only 48 bits translate, and bits 63-47
must all be equal (user space below ``0x0000_8000_0000_0000``, the kernel from
``0xffff_8000_0000_0000`` up). Any other address is refused before any walk (on a real
CPU: a general-protection fault, not a page fault).

Examples
--------
>>> guest = PageTables(levels=4, base=0x10_0000)    # the guest's tables from PA 1 MiB on
>>> guest.map(0x7F00_0000_0000, 0x40_0000)          # one 4 KiB page
>>> host = PageTables(levels=4, base=0x800_0000)
>>> host.map(0, 0x1_0000_0000, size=1 << 30)        # the guest's first GiB: one 1 GiB page
>>> w = nested_walk(0x7F00_0000_0123, guest, host)
>>> hex(w.address), w.fault, len(w.refs)            # (4+1)(2+1)-1: the 1 GiB page saves 10
('0x100400123', None, 14)
>>> guest.walk(0x1234).fault
'not present at level 1 (PML4 entry 0)'
>>> hex(guest.read_entry(guest.root + 8 * 254))     # the raw PML4 entry: table | P RW US
'0x101007'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from kvmlab.errors import ScenarioError

PAGE = 4096
ENTRIES = 512
PAGE_SIZES = {4096: 1, 2 << 20: 2, 1 << 30: 3}
"""Page size to the level (counted from the bottom, 1 = page table) whose entry maps it."""
LEVEL_NAMES = {5: "PML5", 4: "PML4", 3: "PDPT", 2: "PD", 1: "PT"}

PRESENT, WRITABLE, USER, HUGE = 1 << 0, 1 << 1, 1 << 2, 1 << 7
ADDRESS_MASK = 0x000F_FFFF_FFFF_F000
"""Bits 12-51 of an entry: the physical address of the next table or of the page."""


def level_size(level: int) -> int:
    """Bytes one entry at ``level`` maps (1: 4 KiB, 2: 2 MiB, 3: 1 GiB, ...).

    Examples
    --------
    >>> [level_size(n) for n in (1, 2, 3)] == list(PAGE_SIZES)
    True
    """
    return 1 << (12 + 9 * (level - 1))


def check_canonical(va: int, levels: int = 4) -> int:
    """Return ``va`` if it is a canonical address for ``levels`` levels, else raise.

    Raises
    ------
    ScenarioError
        Naming the rule: the bits above the translated ones copy the top translated bit.

    Examples
    --------
    >>> hex(check_canonical(0xFFFF_FFFF_8100_0000))          # the kernel's text
    '0xffffffff81000000'
    >>> check_canonical(0x0000_8000_0000_0000)
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: 0x800000000000 is not a canonical 48-bit address: ...
    """
    bits = 12 + 9 * levels
    if not 0 <= va < 1 << 64:
        raise ScenarioError(f"{va:#x} is not a 64-bit virtual address")
    top = va >> (bits - 1)
    if top not in (0, (1 << (65 - bits)) - 1):
        raise ScenarioError(f"{va:#x} is not a canonical {bits}-bit address: bits 63-{bits - 1} "
                            f"must be all 0 (user space) or all 1 (kernel space)")
    return va


def entry_address(entry: int, level: int) -> int:
    """The physical address in ``entry``: the next table, or a page at a leaf.

    Examples
    --------
    >>> hex(entry_address(0x8000_0000_0260_a067, 4))           # NX and flags left out
    '0x260a000'
    >>> hex(entry_address(0x0000_0000_0120_00e3, 2))           # a 2 MiB page
    '0x1200000'
    """
    if level > 1 and entry & HUGE:
        return entry & ADDRESS_MASK & ~(level_size(level) - 1)
    return entry & ADDRESS_MASK


class Tables(Protocol):
    """Anything a walk can read: the model's :class:`PageTables`, or a real guest's tables
    (:class:`kvmlab.memory.twin.GuestTables`)."""

    levels: int
    root: int

    def read_entry(self, pa: int) -> int:
        """The 64-bit entry at physical address ``pa`` (0 where nothing is mapped)."""
        ...  # pragma: no cover


@dataclass(frozen=True)
class Ref:
    """One memory reference of a walk: which table, which level, which dimension.

    ``dimension`` is ``guest`` (an entry of the guest's tables, read at the machine address
    the nested walk found for it) or ``nested`` (an entry of the hypervisor's tables).
    ``table`` is the address of the table the entry is in (a machine address for both).
    """

    dimension: str
    level: int
    table: int
    index: int

    def __str__(self) -> str:
        name = LEVEL_NAMES.get(self.level, "data")
        return f"{self.dimension:<6} {name:<4} table {self.table:#x} entry {self.index}"


@dataclass
class Walk:
    """The result of a walk: the address found, or why there is none, and every reference.

    ``leaf_level`` is the level whose entry mapped the page (1: 4 KiB, 2: 2 MiB, 3: 1 GiB).
    """

    address: int | None
    refs: list[Ref] = field(default_factory=list)
    fault: str | None = None
    leaf_level: int | None = None

    @property
    def page_size(self) -> int | None:
        """Size of the page the address is in (None after a fault)."""
        return None if self.leaf_level is None else level_size(self.leaf_level)


def index(va: int, level: int) -> int:
    """The 9 bits of ``va`` that pick the entry at ``level`` (1 = page table)."""
    return va // level_size(level) % ENTRIES


def walk(va: int, tables: Tables, dimension: str = "guest") -> Walk:
    """Translate ``va`` through ``tables`` as the MMU does, one dimension.

    A missing mapping is a page-fault result; a non-canonical ``va`` raises
    :class:`ScenarioError`.

    Examples
    --------
    >>> t = PageTables(4)
    >>> t.map(0xFFFF_FFFF_8100_0000, 0x100_0000, size=2 << 20)
    >>> w = walk(0xFFFF_FFFF_8100_0042, t)
    >>> hex(w.address), w.page_size, [r.level for r in w.refs]
    ('0x1000042', 2097152, [4, 3, 2])
    """
    check_canonical(va, tables.levels)
    refs: list[Ref] = []
    table = tables.root
    for level in range(tables.levels, 0, -1):
        i = index(va, level)
        refs.append(Ref(dimension, level, table, i))
        entry = tables.read_entry(table + 8 * i)
        if not entry & PRESENT:
            return Walk(None, refs, f"not present at level {tables.levels - level + 1} "
                                    f"({LEVEL_NAMES[level]} entry {i})")
        if entry & HUGE and level > 3:
            return Walk(None, refs, f"reserved bit: PS set in a {LEVEL_NAMES[level]} entry")
        if level == 1 or entry & HUGE:
            return Walk(entry_address(entry, level) + va % level_size(level), refs,
                        leaf_level=level)
        table = entry_address(entry, level)
    raise AssertionError("unreachable")  # pragma: no cover


class PageTables:
    """One set of page tables (a guest's, or the hypervisor's nested ones).

    Parameters
    ----------
    levels : int
        4 (48-bit addresses) or 5 (57-bit, LA57).
    base : int
        Where the tables themselves are placed, one 4 KiB page after the other (in the
        physical memory of whoever owns them).
    """

    def __init__(self, levels: int = 4, base: int = 0x10_0000) -> None:
        if levels not in (4, 5):
            raise ScenarioError(f"x86-64 walks 4 or 5 levels of tables, not {levels}")
        if base % PAGE:
            raise ScenarioError(f"tables start on a 4 KiB boundary, not at {base:#x}")
        self.levels = levels
        self.bits = 12 + 9 * levels
        self.next_table = base
        self.tables: dict[int, dict[int, int]] = {}   # table address -> index -> raw entry
        self.root = self._new_table()

    def _new_table(self) -> int:
        address = self.next_table
        self.next_table += PAGE
        self.tables[address] = {}
        return address

    def index(self, va: int, level: int) -> int:
        """The 9 bits of ``va`` that pick the entry at ``level`` (1 = page table)."""
        return index(va, level)

    def read_entry(self, pa: int) -> int:
        """The raw entry at physical address ``pa`` (0 outside every table)."""
        return self.tables.get(pa - pa % PAGE, {}).get(pa % PAGE // 8, 0)

    def map(self, va: int, pa: int, size: int = PAGE) -> None:
        """Map the page of ``size`` bytes at ``va`` to ``pa``, making tables as needed."""
        if size not in PAGE_SIZES:
            raise ScenarioError(f"x86-64 pages are 4 KiB, 2 MiB or 1 GiB, not {size} bytes")
        if va % size or pa % size:
            raise ScenarioError(f"a {size}-byte page starts on a multiple of its size: "
                                f"{va:#x} -> {pa:#x} is not")
        check_canonical(va, self.levels)
        if not 0 <= pa <= ADDRESS_MASK:
            raise ScenarioError(f"physical address {pa:#x} does not fit in 52 bits")
        leaf = PAGE_SIZES[size]
        table = self.root
        for level in range(self.levels, leaf, -1):
            i = index(va, level)
            entry = self.tables[table].get(i)
            if entry is None:
                entry = self._new_table() | PRESENT | WRITABLE | USER
                self.tables[table][i] = entry
            elif entry & HUGE:
                raise ScenarioError(f"{va:#x} is already inside a huge page")
            table = entry_address(entry, level)
        flags = PRESENT | WRITABLE | USER | (HUGE if leaf > 1 else 0)
        self.tables[table][index(va, leaf)] = pa | flags

    def walk(self, va: int, dimension: str = "guest") -> Walk:
        """Translate ``va`` as the MMU does; a missing mapping is a page-fault result."""
        return walk(va, self, dimension)


def nested_walk(gva: int, guest: Tables, host: Tables) -> Walk:
    """The two-dimensional walk: ``gva`` through the guest's tables, each of whose entries
    (and the final guest-physical address) goes through the hypervisor's tables first.

    The result lists every memory reference in order; a fault in either dimension is a
    result (``fault`` says which), not an exception. ``leaf_level`` is the smaller page's
    (guest's or host's): the TLB entry such a walk fills can cover no more than both.
    """
    check_canonical(gva, guest.levels)
    refs: list[Ref] = []
    table = guest.root
    for level in range(guest.levels, 0, -1):
        i = index(gva, level)
        entry_gpa = table + 8 * i
        h = walk(entry_gpa, host, "nested")
        refs += h.refs
        if h.address is None:
            return Walk(None, refs, f"nested fault reading the guest's {LEVEL_NAMES[level]} "
                                    f"at {entry_gpa:#x}: {h.fault}")
        refs.append(Ref("guest", level, h.address - 8 * i, i))
        entry = guest.read_entry(entry_gpa)
        if not entry & PRESENT:
            return Walk(None, refs, f"guest page fault: not present at {LEVEL_NAMES[level]} "
                                    f"entry {i}")
        if level == 1 or entry & HUGE:
            gpa = entry_address(entry, level) + gva % level_size(level)
            h = walk(gpa, host, "nested")
            refs += h.refs
            if h.address is None:
                return Walk(None, refs, f"nested fault on the guest-physical address "
                                        f"{gpa:#x}: {h.fault}")
            return Walk(h.address, refs, leaf_level=min(level, h.leaf_level or level))
        table = entry_address(entry, level)
    raise AssertionError("unreachable")  # pragma: no cover

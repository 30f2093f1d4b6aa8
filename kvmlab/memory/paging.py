"""x86-64 page tables as data, and the walks an MMU makes through them.

A table is one 4 KiB page of 512 eight-byte entries; each level of the walk uses 9
bits of the virtual address, from the top level (PML4, or PML5 with 5 levels) down to
the page table. An entry points to the next table, or (with the PS bit, at the level
that maps 2 MiB or 1 GiB) straight to a huge page. The model keeps every table at an
address of its own, so that a walk can list the exact memory references it makes.

With virtualization the guest's tables map guest-virtual to guest-physical addresses
(VA→PA), and the hypervisor's nested tables (Intel EPT, AMD NPT) map guest-physical to
machine addresses (PA→MA). Every guest table lives in guest-physical memory, so reading
one of its entries first needs a walk of the nested tables: a 4-level guest walk over
4-level nested tables makes up to (4+1)(4+1)-1 = 24 memory references.

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
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kvmlab.errors import ScenarioError

PAGE = 4096
ENTRIES = 512
PAGE_SIZES = {4096: 1, 2 << 20: 2, 1 << 30: 3}
"""Page size to the level (counted from the bottom, 1 = page table) whose entry maps it."""
LEVEL_NAMES = {5: "PML5", 4: "PML4", 3: "PDPT", 2: "PD", 1: "PT"}


def level_size(level: int) -> int:
    """Bytes one entry at ``level`` maps (1: 4 KiB, 2: 2 MiB, 3: 1 GiB, ...).

    Examples
    --------
    >>> [level_size(n) for n in (1, 2, 3)] == list(PAGE_SIZES)
    True
    """
    return 1 << (12 + 9 * (level - 1))


@dataclass(frozen=True)
class Ref:
    """One memory reference of a walk: which table, which level, which dimension.

    ``dimension`` is ``guest`` (an entry of the guest's tables, read at the machine address
    the nested walk found for it), ``nested`` (an entry of the hypervisor's tables) or
    ``data`` (the byte the program wanted, at the end).
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
    """The result of a walk: the address found, or why there is none, and every reference."""

    address: int | None
    refs: list[Ref] = field(default_factory=list)
    fault: str | None = None


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
        self.tables: dict[int, dict[int, tuple[int, bool]]] = {}   # address -> index -> entry
        self.root = self._new_table()

    def _new_table(self) -> int:
        address = self.next_table
        self.next_table += PAGE
        self.tables[address] = {}
        return address

    def index(self, va: int, level: int) -> int:
        """The 9 bits of ``va`` that pick the entry at ``level`` (1 = page table)."""
        return va // level_size(level) % ENTRIES

    def map(self, va: int, pa: int, size: int = PAGE) -> None:
        """Map the page of ``size`` bytes at ``va`` to ``pa``, making tables as needed."""
        if size not in PAGE_SIZES:
            raise ScenarioError(f"x86-64 pages are 4 KiB, 2 MiB or 1 GiB, not {size} bytes")
        if va % size or pa % size:
            raise ScenarioError(f"a {size}-byte page starts on a multiple of its size: "
                                f"{va:#x} -> {pa:#x} is not")
        if not 0 <= va < 1 << self.bits:
            raise ScenarioError(f"{va:#x} does not fit in {self.bits} bits ({self.levels} levels)")
        leaf = PAGE_SIZES[size]
        table = self.root
        for level in range(self.levels, leaf, -1):
            i = self.index(va, level)
            entry = self.tables[table].get(i)
            if entry is None:
                entry = (self._new_table(), False)
                self.tables[table][i] = entry
            elif entry[1]:
                raise ScenarioError(f"{va:#x} is already inside a huge page")
            table = entry[0]
        self.tables[table][self.index(va, leaf)] = (pa, leaf > 1)

    def walk(self, va: int, dimension: str = "guest") -> Walk:
        """Translate ``va`` as the MMU does; a missing mapping is a page-fault result."""
        refs: list[Ref] = []
        if not 0 <= va < 1 << self.bits:
            return Walk(None, refs, f"{va:#x} is not a canonical {self.bits}-bit address")
        table = self.root
        for level in range(self.levels, 0, -1):
            i = self.index(va, level)
            refs.append(Ref(dimension, level, table, i))
            entry = self.tables[table].get(i)
            if entry is None:
                return Walk(None, refs, f"not present at level {self.levels - level + 1} "
                                        f"({LEVEL_NAMES[level]} entry {i})")
            target, huge = entry
            if huge or level == 1:
                return Walk(target + va % level_size(level), refs)
            table = target
        raise AssertionError("unreachable")  # pragma: no cover


def nested_walk(gva: int, guest: PageTables, host: PageTables) -> Walk:
    """The two-dimensional walk: ``gva`` through the guest's tables, each of whose entries
    (and the final guest-physical address) goes through the hypervisor's tables first.

    The result lists every memory reference in order; a fault in either dimension is a
    result (``fault`` says which), not an exception.
    """
    refs: list[Ref] = []
    table = guest.root
    for level in range(guest.levels, 0, -1):
        i = guest.index(gva, level)
        entry_gpa = table + 8 * i
        h = host.walk(entry_gpa, "nested")
        refs += h.refs
        if h.address is None:
            return Walk(None, refs, f"nested fault reading the guest's {LEVEL_NAMES[level]} "
                                    f"at {entry_gpa:#x}: {h.fault}")
        refs.append(Ref("guest", level, h.address - 8 * i, i))
        entry = guest.tables[table].get(i)
        if entry is None:
            return Walk(None, refs, f"guest page fault: not present at {LEVEL_NAMES[level]} "
                                    f"entry {i}")
        target, huge = entry
        if huge or level == 1:
            gpa = target + gva % level_size(level)
            h = host.walk(gpa, "nested")
            refs += h.refs
            if h.address is None:
                return Walk(None, refs, f"nested fault on the guest-physical address "
                                        f"{gpa:#x}: {h.fault}")
            return Walk(h.address, refs)
        table = target
    raise AssertionError("unreachable")  # pragma: no cover

"""Page tables read from physical memory, as the MMU reads them.

:class:`TablesInMemory` gives the walks of :mod:`kvmlab.memory.paging` a set of tables
that lives in memory as bytes: a real guest's (read through QEMU's monitor by
:mod:`kvmlab.memory.twin`), or the bytes of the model's own tables
(:func:`table_pages`). Each 4 KiB table is read once and kept, so walking many
addresses reads each table only the first time.

Examples
--------
>>> from kvmlab.memory.paging import PageTables, walk
>>> model = PageTables(4, base=0x10_0000)
>>> model.map(0xFFFF_8880_0000_0000, 0x0, size=2 << 20)     # the start of a direct map
>>> ram = DictMemory(table_pages(model))
>>> real = TablesInMemory(root=model.root, levels=4, memory=ram)
>>> hex(walk(0xFFFF_8880_0001_2345, real).address), ram.reads
('0x12345', 3)
>>> walk(0xFFFF_8880_0001_2345, real).address == model.walk(0xFFFF_8880_0001_2345).address
True
>>> ram.reads                                                 # the tables were kept
3
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Protocol

from kvmlab.errors import ScenarioError
from kvmlab.memory.paging import ENTRIES, PAGE, PageTables


class PhysicalMemory(Protocol):
    """Something that reads one 4 KiB page of physical memory."""

    def read_page(self, pa: int) -> bytes:
        """The 4096 bytes at the page-aligned physical address ``pa``."""
        ...  # pragma: no cover


def table_pages(tables: PageTables) -> dict[int, bytes]:
    """The model's tables as the bytes they would be in memory (little-endian entries)."""
    return {address: b"".join(struct.pack("<Q", entries.get(i, 0)) for i in range(ENTRIES))
            for address, entries in tables.tables.items()}


class DictMemory:
    """Physical memory given as pages (address to bytes); unlisted pages read as zeros."""

    def __init__(self, pages: Mapping[int, bytes]) -> None:
        self.pages = dict(pages)
        self.reads = 0

    def read_page(self, pa: int) -> bytes:
        self.reads += 1
        return self.pages.get(pa, bytes(PAGE))


class TablesInMemory:
    """A set of page tables that starts at ``root`` (the CR3 or EPT pointer) in ``memory``.

    Parameters
    ----------
    root : int
        Physical address of the top-level table; must be 4 KiB-aligned.
    levels : int
        4 or 5.
    memory : PhysicalMemory
        Where the tables are read from.
    """

    def __init__(self, root: int, levels: int, memory: PhysicalMemory) -> None:
        if root % PAGE:
            raise ScenarioError(f"a top-level table starts on a 4 KiB boundary, not at {root:#x}")
        if levels not in (4, 5):
            raise ScenarioError(f"x86-64 walks 4 or 5 levels of tables, not {levels}")
        self.root, self.levels, self.memory = root, levels, memory
        self._tables: dict[int, tuple[int, ...]] = {}

    def read_entry(self, pa: int) -> int:
        """The 64-bit entry at physical address ``pa``."""
        page = pa - pa % PAGE
        table = self._tables.get(page)
        if table is None:
            data = self.memory.read_page(page)
            if len(data) != PAGE:
                raise ScenarioError(f"a page of memory is {PAGE} bytes, not {len(data)}")
            table = self._tables[page] = struct.unpack(f"<{ENTRIES}Q", data)
        return table[pa % PAGE // 8]

    @property
    def tables_read(self) -> int:
        """How many distinct tables the walks have read so far."""
        return len(self._tables)

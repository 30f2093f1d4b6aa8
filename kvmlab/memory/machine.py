"""A small machine to walk: a guest that maps a working set, and nested tables under it.

:func:`identity_machine` builds the guest's tables (VA→PA) for a working set from
``BASE_VA`` and the hypervisor's nested tables (PA→MA) for every guest-physical page the
guest uses, its tables included. :func:`worst_case_walk` walks one address through it
with nothing cached: the cost of a TLB miss when the page-walk caches are cold too.

Examples
--------
>>> w = worst_case_walk("4K", "4K")
>>> len(w.refs), expected_references("4K", "4K")
(24, 24)
>>> [len(worst_case_walk(g, h).refs) for g, h in [("2M", "4K"), ("4K", "2M"), ("1G", "1G")]]
[19, 19, 8]
>>> len(worst_case_walk("4K", "4K", levels=5).refs)
35
"""

from __future__ import annotations

from collections.abc import Iterable

from kvmlab.errors import ScenarioError
from kvmlab.memory.paging import PAGE, PAGE_SIZES, PageTables, Walk, nested_walk

BASE_VA = 0x4000_0000_0000
"""Where the guest's working set starts (a user-space address, aligned to 1 GiB)."""
GUEST_DATA = 0x4000_0000
"""Where the working set's pages live in guest-physical memory."""
MACHINE = 0x1_0000_0000
"""The machine address the nested tables put guest-physical 0 at."""
SIZE_NAMES = {"4K": 4096, "2M": 2 << 20, "1G": 1 << 30}


def page_size(size: str | int) -> int:
    """A page size from ``4K``, ``2M`` or ``1G`` (or a number of bytes), checked.

    Examples
    --------
    >>> page_size("2m"), page_size(4096)
    (2097152, 4096)
    >>> page_size("8K")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: x86-64 pages are 4K, 2M or 1G, not '8K'
    """
    value = SIZE_NAMES.get(size.upper()) if isinstance(size, str) else size
    if value not in PAGE_SIZES:
        raise ScenarioError(f"x86-64 pages are 4K, 2M or 1G, not {size!r}")
    return value


def identity_machine(working_set: int, page: int | str = PAGE, host_page: int | str = PAGE,
                     levels: int = 4, host_levels: int | None = None
                     ) -> tuple[PageTables, PageTables]:
    """A guest that maps ``working_set`` bytes from ``BASE_VA`` with pages of ``page`` bytes,
    and nested tables that map every guest-physical page it uses (its tables and its data)
    with pages of ``host_page`` bytes."""
    page, host_page = page_size(page), page_size(host_page)
    if working_set < 1:
        raise ScenarioError(f"a working set has at least 1 byte, not {working_set}")
    guest = PageTables(levels, base=0x10_0000)
    size = -(-working_set // page) * page
    data = -(-GUEST_DATA // page) * page
    for off in range(0, size, page):
        guest.map(BASE_VA + off, data + off, page)
    first, last = data // host_page, (data + size - 1) // host_page
    host = nested_tables(guest, range(first * host_page, (last + 1) * host_page, host_page),
                         host_page, levels=levels if host_levels is None else host_levels)
    return guest, host


def nested_tables(guest: PageTables, gpas: Iterable[int], host_page: int,
                  machine_base: int = MACHINE, levels: int = 4,
                  base: int = 0x8000_0000) -> PageTables:
    """The hypervisor's tables mapping guest-physical X to ``machine_base`` + X, in pages of
    ``host_page`` bytes, for every host page that holds one of the guest's tables or one of
    ``gpas`` (all that a walk of the guest's addresses reads).

    Examples
    --------
    >>> guest = PageTables(4, base=0x10_0000)
    >>> guest.map(0x7000_0000, 0x40_0000)
    >>> host = nested_tables(guest, [0x40_0123], 2 << 20)
    >>> hex(host.walk(0x40_0123).address), host.walk(0x60_0000).fault is not None
    ('0x100400123', True)
    """
    host = PageTables(levels, base=base)
    used = {t // host_page for t in guest.tables} | {g // host_page for g in gpas}
    for n in sorted(used):
        host.map(n * host_page, machine_base + n * host_page, host_page)
    return host


def expected_references(guest_page: int | str, host_page: int | str, levels: int = 4,
                        host_levels: int | None = None) -> int:
    """(n+1)(m+1)-1: n guest levels walked, each entry and the final PA through m nested ones.

    Examples
    --------
    >>> expected_references("2M", "2M"), expected_references("4K", "4K", 5)
    (15, 35)
    """
    n = levels - PAGE_SIZES[page_size(guest_page)] + 1
    m = (levels if host_levels is None else host_levels) - PAGE_SIZES[page_size(host_page)] + 1
    return (n + 1) * (m + 1) - 1


def worst_case_walk(guest_page: int | str = PAGE, host_page: int | str = PAGE,
                    levels: int = 4, host_levels: int | None = None) -> Walk:
    """Walk the first address of the working set with no TLB and no page-walk cache.

    The machine is :func:`identity_machine`'s for one guest page, with only the host page
    that the walk reads of it mapped (a 1 GiB guest page over 4 KiB host pages would
    otherwise map 262,144 host pages to read one).
    """
    guest_page, host_page = page_size(guest_page), page_size(host_page)
    guest = PageTables(levels, base=0x10_0000)
    data = -(-GUEST_DATA // guest_page) * guest_page
    guest.map(BASE_VA, data, guest_page)
    host = nested_tables(guest, [data], host_page,
                         levels=levels if host_levels is None else host_levels)
    return nested_walk(BASE_VA, guest, host)

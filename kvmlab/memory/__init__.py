"""The memory lab: guest page tables (VA→PA), the hypervisor's nested tables (PA→MA), and
the two-dimensional walk between them."""

from kvmlab.memory.paging import PAGE_SIZES, PageTables, Ref, Walk, nested_walk

__all__ = ["PAGE_SIZES", "PageTables", "Ref", "Walk", "nested_walk"]

"""The memory lab: guest page tables (VA→PA), the hypervisor's nested tables (PA→MA), the
two-dimensional walk between them, TLBs, shadow paging, KSM and ballooning; and the same
chain traced through a live guest (:mod:`kvmlab.memory.twin`)."""

from kvmlab.memory.machine import identity_machine, worst_case_walk
from kvmlab.memory.overcommit import KsmScenario, balloon_plan, simulate_ksm
from kvmlab.memory.paging import PAGE_SIZES, PageTables, Ref, Walk, nested_walk, walk
from kvmlab.memory.physmem import TablesInMemory

__all__ = ["PAGE_SIZES", "KsmScenario", "PageTables", "Ref", "TablesInMemory", "Walk",
           "balloon_plan", "identity_machine", "nested_walk", "simulate_ksm", "walk",
           "worst_case_walk"]

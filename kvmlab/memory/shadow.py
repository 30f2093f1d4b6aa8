"""Shadow paging against nested paging: which one costs the guest less, for a workload.

*Nested* paging (EPT/NPT) lets the guest edit its own page tables freely, but every TLB
miss walks two dimensions (up to 24 memory references). *Shadow* paging has the
hypervisor keep merged VA→MA tables that the hardware walks in one dimension (4
references), but every write the guest makes to its page tables must trap (a VM exit) so
that the shadow follows. The workload knob is the ratio of TLB misses to page-table writes.

The model runs on simpy: TLB misses and page-table writes arrive at random (Poisson, at
the given rates per million instructions) while the guest runs; each costs its time.

Examples
--------
>>> w = Workload(tlb_misses_per_m=2000, pt_writes_per_m=10)      # a big working set
>>> r = compare_modes(w, instructions=2_000_000, seed=1)
>>> r["shadow"].overhead_ns < r["nested"].overhead_ns            # few table edits: shadow wins
True
>>> w = Workload(tlb_misses_per_m=200, pt_writes_per_m=500)      # fork-heavy: tables change
>>> r = compare_modes(w, instructions=2_000_000, seed=1)
>>> r["nested"].overhead_ns < r["shadow"].overhead_ns
True
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import simpy

from kvmlab.errors import ScenarioError


@dataclass(frozen=True)
class Costs:
    """What each event costs, in nanoseconds (defaults: a rough modern x86 server)."""

    instruction_ns: float = 0.3
    memory_ref_ns: float = 80.0
    vm_exit_ns: float = 1200.0
    shadow_update_ns: float = 300.0
    guest_levels: int = 4
    host_levels: int = 4

    @property
    def nested_refs(self) -> int:
        return (self.guest_levels + 1) * (self.host_levels + 1) - 1


@dataclass(frozen=True)
class Workload:
    """How often the guest misses in the TLB, and how often it writes its page tables."""

    tlb_misses_per_m: float
    pt_writes_per_m: float

    def __post_init__(self) -> None:
        for name in ("tlb_misses_per_m", "pt_writes_per_m"):
            value = getattr(self, name)
            if not 0 <= value <= 1_000_000:
                raise ScenarioError(f"{name} is events per million instructions, from 0 to "
                                    f"1000000, not {value!r}")


@dataclass(frozen=True)
class ModeResult:
    """The time a run took beyond the instructions themselves, and what it was spent on."""

    mode: str
    instructions: int
    tlb_misses: int
    pt_writes: int
    overhead_ns: float

    @property
    def overhead_pct(self) -> float:
        """Overhead as a percentage of the time the instructions alone take."""
        return round(100 * self.overhead_ns / (self.instructions * Costs().instruction_ns), 3)


def _arrivals(env: simpy.Environment, rate_per_ns: float, rng: random.Random,
              cost_ns: float, tally: list[float]) -> Iterator[simpy.Event]:
    while rate_per_ns > 0:
        yield env.timeout(rng.expovariate(rate_per_ns))
        tally.append(cost_ns)


def run_mode(mode: str, workload: Workload, instructions: int = 1_000_000, seed: int = 0,
             costs: Costs = Costs()) -> ModeResult:
    """Run ``instructions`` of the workload under ``mode`` (``'shadow'`` or ``'nested'``)."""
    if mode not in ("shadow", "nested"):
        raise ScenarioError(f"mode is 'shadow' or 'nested', not {mode!r}")
    if instructions < 1:
        raise ScenarioError("run at least one instruction")
    rng = random.Random(seed)
    env = simpy.Environment()
    duration = instructions * costs.instruction_ns
    per_ns = 1 / (1_000_000 * costs.instruction_ns)      # events per million instr -> per ns
    walk_refs = costs.guest_levels if mode == "shadow" else costs.nested_refs
    misses: list[float] = []
    writes: list[float] = []
    env.process(_arrivals(env, workload.tlb_misses_per_m * per_ns, rng,
                          walk_refs * costs.memory_ref_ns, misses))
    write_cost = costs.vm_exit_ns + costs.shadow_update_ns if mode == "shadow" else 0.0
    env.process(_arrivals(env, workload.pt_writes_per_m * per_ns, rng, write_cost, writes))
    env.run(until=duration)
    return ModeResult(mode, instructions, len(misses), len(writes), sum(misses) + sum(writes))


def compare_modes(workload: Workload, instructions: int = 1_000_000, seed: int = 0,
                  costs: Costs = Costs()) -> dict[str, ModeResult]:
    """Both modes on the same workload (the same seed: the same arrivals)."""
    return {m: run_mode(m, workload, instructions, seed, costs) for m in ("shadow", "nested")}


def break_even_writes_per_m(tlb_misses_per_m: float, costs: Costs = Costs()) -> float:
    """The page-table write rate at which both modes cost the same, for a TLB miss rate.

    Below it shadow paging wins, above it nested paging does.

    Examples
    --------
    >>> round(break_even_writes_per_m(1000), 1)
    1066.7
    """
    extra_per_miss = (costs.nested_refs - costs.guest_levels) * costs.memory_ref_ns
    return tlb_misses_per_m * extra_per_miss / (costs.vm_exit_ns + costs.shadow_update_ns)

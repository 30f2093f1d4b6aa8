"""How fast the memory lab's TLB model translates, against a plain dictionary look-up loop.

One measurement, against a baseline timed in the same run:

translations
    :func:`kvmlab.memory.tlb.run` over a trace of one million random accesses to a 4 MiB
    working set (4 KiB pages, a 64-entry TLB, a 32-entry page-walk cache, so that both
    hits and two-dimensional walks happen), next to a *plain loop* that looks each
    address's page up in a dict holding every page's translation: the least any software
    translation can cost. ``ratio`` is the model's time per access divided by the loop's.

Timing is that of :mod:`benchmarks.timing`: best of a few alternating repeats, the
garbage collector off while timing.

Examples
--------
>>> once = Repeats(times=1, min_total_s=0)
>>> out = bench_translations(accesses=2000, repeats=once)
>>> out["accesses"], out["tlb_misses"] > 0, out["ratio"] > 0
(2000, True, True)
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from benchmarks.timing import Repeats, Timing, environment, timed
from kvmlab.memory.machine import identity_machine
from kvmlab.memory.paging import PAGE
from kvmlab.memory.tlb import TraceResult, trace
from kvmlab.memory.tlb import run as run_trace

ACCESSES = 1_000_000
QUICK_ACCESSES = 5_000
WORKING_SET = 4 << 20
TLB_ENTRIES, PWC_ENTRIES = 64, 32
ROUNDS = Repeats(times=3, budget_s=120.0)


def dict_loop(addresses: list[int], table: dict[int, int]) -> int:
    """Translate every address with one dict look-up of its page; return a checksum."""
    total = 0
    for va in addresses:
        total += table[va // PAGE] + va % PAGE
    return total


def bench_translations(accesses: int = ACCESSES, repeats: Repeats = ROUNDS,
                       log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Time the TLB model and the dict loop over the same trace, alternating."""
    guest, host = identity_machine(WORKING_SET)
    addresses = trace("random", accesses, WORKING_SET, seed=0)
    pages = {va // PAGE for va in addresses}
    table = {p: guest.walk(p * PAGE).address or 0 for p in pages}
    model_s: list[float] = []
    loop_s: list[float] = []
    result: TraceResult | None = None
    while not model_s or repeats.more(len(model_s), sum(model_s) + sum(loop_s)):
        if log is not None:
            log(f"memory translations: round {len(model_s) + 1} ({accesses:,} accesses)")
        result, seconds = timed(lambda: run_trace(addresses, guest, host, TLB_ENTRIES,
                                                  PWC_ENTRIES))
        model_s.append(seconds)
        _, seconds = timed(lambda: dict_loop(addresses, table))
        loop_s.append(seconds)
    assert result is not None
    model, loop = Timing(accesses, tuple(model_s)), Timing(accesses, tuple(loop_s))
    return {"accesses": accesses, "working_set": WORKING_SET, "tlb_entries": TLB_ENTRIES,
            "pwc_entries": PWC_ENTRIES, "tlb_misses": result.tlb_misses,
            "hit_rate": result.hit_rate, "refs_per_access": result.refs_per_access,
            "model": model.to_dict(), "dict_loop": loop.to_dict(),
            "ratio": round(model.best_s / loop.best_s, 3),
            "paired_ratio": round(statistics.median(
                m / b for m, b in zip(model_s, loop_s, strict=True)), 3)}


def run(quick: bool = False, sizes: Any = None,
        log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the memory benchmark (``sizes`` is the CPU benchmark's and is ignored here)."""
    if quick:
        out = bench_translations(QUICK_ACCESSES, Repeats(times=1, min_total_s=0.0), log)
    else:
        out = bench_translations(log=log)
    return {"environment": environment(), "translations": out}


def format_table(result: dict[str, Any]) -> str:
    """The result of :func:`run` as a readable table."""
    t = result["translations"]
    m, d = t["model"], t["dict_loop"]
    return "\n".join([
        "Translations per second: the TLB model against a dict look-up loop",
        f"   {t['accesses']:,} random accesses to {t['working_set'] >> 20} MiB in 4 KiB pages; "
        f"TLB {t['tlb_entries']} entries, page-walk cache {t['pwc_entries']}; hit rate "
        f"{t['hit_rate']:.3f}, {t['refs_per_access']:.2f} walk references per access",
        "                          accesses/s  us/access  (median)",
        f"   TLB model          {m['events_per_s']:>15,.0f} {m['us_per_event']:>10.3f} "
        f"{1e6 * m['median_s'] / m['events']:>9.3f}",
        f"   dict look-up loop  {d['events_per_s']:>15,.0f} {d['us_per_event']:>10.3f} "
        f"{1e6 * d['median_s'] / d['events']:>9.3f}",
        f"   ratio (model / dict loop, per access): {t['ratio']}x best / best, "
        f"{t['paired_ratio']}x median of paired runs"])


__all__ = ["bench_translations", "dict_loop", "format_table", "run"]

"""Practice problems for the memory lab: translate a virtual address by hand.

A problem (from a seed) gives the guest's page tables as the raw entries an MMU reads,
CR3, and how the hypervisor maps guest-physical memory; it asks for the guest-physical
address (PA), the machine address (MA), and how many memory references a TLB miss costs
with cold caches. The worked answer splits the address into its 9-bit indexes and follows
every entry. :func:`check` recognises the usual slips.

Examples
--------
>>> p = generate(2)
>>> check(p, p.solve()).correct
True
>>> wrong = dict(p.solve(), references=4)
>>> check(p, wrong).hint
'guest-only'
>>> print(main_problem(2, show_answer=False).splitlines()[0])
ARG seed 2
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kvmlab.exercises import Feedback, problem_text
from kvmlab.memory.machine import nested_tables
from kvmlab.memory.paging import (
    LEVEL_NAMES,
    PAGE,
    PAGE_SIZES,
    PageTables,
    Walk,
    index,
    level_size,
    nested_walk,
)

SIZE_LABELS = {4096: "4 KiB", 2 << 20: "2 MiB", 1 << 30: "1 GiB"}


@dataclass(frozen=True)
class Problem:
    """A guest with a few pages mapped, nested tables under it, and one address to translate.

    ``machine_base`` is where guest-physical 0 is in machine memory: the hypervisor maps
    guest-physical memory in one piece, with pages of ``host_page`` bytes.
    """

    seed: int
    va: int
    guest: PageTables
    host: PageTables
    guest_page: int
    host_page: int
    machine_base: int

    def walk(self) -> Walk:
        return nested_walk(self.va, self.guest, self.host)

    def solve(self) -> dict[str, Any]:
        """The answer: ``pa`` and ``ma`` (None on a page fault) and ``references``."""
        w = self.walk()
        guest = self.guest.walk(self.va)
        return {"pa": guest.address, "ma": w.address, "references": len(w.refs)}

    @property
    def question(self) -> str:
        lines = [f"A guest with {self.guest.levels}-level page tables; CR3 = "
                 f"{self.guest.root:#x}. The non-zero entries of its tables (bit 0: present, "
                 "bit 7: PS, a huge page; bits 12-51: the address):", ""]
        for table, entries in sorted(self.guest.tables.items()):
            for i, entry in sorted(entries.items()):
                lines.append(f"  table {table:#x} entry {i:3d}: {entry:#018x}")
        lines += ["", f"The hypervisor maps guest-physical address X to machine address "
                      f"X + {self.machine_base:#x}, in {SIZE_LABELS[self.host_page]} pages, "
                      f"with {self.host.levels}-level nested tables.", "",
                  f"A program reads virtual address {self.va:#x}.",
                  "  a) Which guest-physical address (PA) does it reach? (None for a page "
                  "fault)",
                  "  b) Which machine address (MA)?",
                  "  c) With an empty TLB and cold page-walk caches, how many memory "
                  "references does the MMU make to translate it (not counting the read of "
                  "the data itself)?",
                  "Answer with a dict like {\"pa\": 0x1234, \"ma\": 0x5678, "
                  "\"references\": 24}."]
        return "\n".join(lines)

    def explain(self) -> str:
        """The worked answer: the indexes, every entry read, and the count."""
        va, g = self.va, self.guest.levels
        fields = ", ".join(f"{LEVEL_NAMES[lv]} {index(va, lv)}" for lv in range(g, 0, -1))
        lines = [f"{va:#x} splits into 9-bit indexes: {fields}; page offset "
                 f"{va % PAGE:#x}."]
        guest = self.guest.walk(va)
        for ref in guest.refs:
            entry = self.guest.read_entry(ref.table + 8 * ref.index)
            lines.append(f"  {LEVEL_NAMES[ref.level]} at {ref.table:#x}, entry {ref.index}: "
                         f"{entry:#x}")
        if guest.address is None:
            lines.append(f"  -> page fault: {guest.fault}")
        else:
            size = level_size(guest.leaf_level or 1)
            lines.append(f"  -> a {SIZE_LABELS[size]} page: PA = page + {va % size:#x} = "
                         f"{guest.address:#x}; MA = PA + {self.machine_base:#x} = "
                         f"{guest.address + self.machine_base:#x}")
        n = len(guest.refs)
        m = self.host.levels - PAGE_SIZES[self.host_page] + 1
        w = self.walk()
        reached = n + 1 if guest.address is not None else n
        final = ("the final PA walked too" if guest.address is not None
                 else "no final PA (the fault)")
        lines.append(f"References: {n} guest {'entry' if n == 1 else 'entries'}, each read "
                     f"only after a nested walk of {m}, and {final}: {reached} x {m} + {n} = "
                     f"{len(w.refs)}.")
        return "\n".join(lines)


def generate(seed: int) -> Problem:
    """The problem for ``seed``: page sizes, the address, and whether it is mapped vary."""
    rng = random.Random(seed)
    guest_page = rng.choice([4096, 4096, 2 << 20, 1 << 30])
    host_page = rng.choice([4096, 2 << 20, 2 << 20, 1 << 30])
    guest = PageTables(4, base=rng.randrange(0x10, 0x40) * PAGE)
    lowest = 256 if guest_page == PAGE else 1                # data pages above the tables
    pa_pages = rng.sample(range(lowest, lowest + 768), 3)
    region = rng.randrange(1, 255) << 39                 # one PML4 entry's 512 GiB
    slots = (1 << 39) // guest_page
    vas = [region + n * guest_page for n in rng.sample(range(slots), 3)]
    for va, pa in zip(vas, pa_pages, strict=True):
        guest.map(va, pa * guest_page, guest_page)
    target = rng.choice(vas) + rng.randrange(guest_page)
    if rng.random() < 0.25:                              # sometimes nothing maps it
        target = rng.choice([region, region + (1 << 39)]) + rng.randrange(1 << 39)
        if any(v <= target < v + guest_page for v in vas):
            target += 1 << 39                            # the next PML4 entry: not present
    machine_base = rng.randrange(1, 16) << 32
    target_pa = guest.walk(target).address
    host = nested_tables(guest, [] if target_pa is None else [target_pa], host_page,
                         machine_base, base=0x7000_0000)
    return Problem(seed, target, guest, host, guest_page, host_page, machine_base)


def check(problem: Problem, answer: Mapping[str, Any]) -> Feedback:
    """Friendly feedback on ``{"pa": ..., "ma": ..., "references": ...}``."""
    right = problem.solve()
    if not isinstance(answer, Mapping):
        return Feedback(False, "Answer with a dict: {\"pa\": ..., \"ma\": ..., "
                               "\"references\": ...} (pa and ma None for a page fault).",
                        "incomplete")
    missing = [k for k in right if k not in answer]
    if missing:
        return Feedback(False, f"Give {', '.join(missing)} too: answer with a dict of pa, ma "
                               "and references.", "incomplete")
    if answer["pa"] != right["pa"]:
        if right["pa"] is None:
            return Feedback(False, "Not quite: follow the entries again; one of them has its "
                                   "present bit clear, so the walk ends in a page fault "
                                   "(pa None).", "missed-fault")
        if answer["pa"] is None:
            return Feedback(False, "Not quite: every entry on the way is present; the address "
                                   "is mapped.", "false-fault")
        size = problem.guest.walk(problem.va).page_size or PAGE
        if answer["pa"] - answer["pa"] % size == right["pa"] - right["pa"] % size:
            return Feedback(False, f"The right page, but the offset is off: with a "
                                   f"{SIZE_LABELS[size]} page the offset is the low "
                                   f"{size.bit_length() - 1} bits of the address.", "offset")
        return Feedback(False, "Not quite: split the address into its 9-bit indexes and "
                               "follow each entry's address (bits 12-51) to the next table; "
                               "try problem.explain().", "pa")
    if answer["ma"] != right["ma"]:
        return Feedback(False, "The PA is right, but the machine address is the PA moved by "
                               "the hypervisor's offset.", "ma")
    refs, n = answer["references"], right["references"]
    if refs != n:
        levels = len(problem.guest.walk(problem.va).refs)
        hint, why = "count", "count the nested walk before every guest entry, and one more " \
                             "for the final PA"
        if refs == levels:
            hint, why = "guest-only", ("that is only the guest's own table reads; each guest "
                                       "table is at a guest-physical address, so the MMU "
                                       "first walks the nested tables to find it")
        elif refs == n + 1:
            hint, why = "counted-data", "the read of the data itself is not a translation " \
                                        "reference"
        return Feedback(False, f"PA and MA are right, but not {refs} references: {why}.",
                        hint)
    return Feedback(True, f"Right: PA {_hex(right['pa'])}, MA {_hex(right['ma'])}, "
                          f"{n} references.")


def _hex(value: int | None) -> str:
    return "none (page fault)" if value is None else f"{value:#x}"


def main_problem(seed: int, show_answer: bool) -> str:
    """The text the command line prints for ``-s SEED`` (and ``-c`` to show the answer)."""
    p = generate(seed)
    if not show_answer:
        return problem_text(seed, p.question, None)
    right = p.solve()
    return problem_text(seed, p.question, [
        f"Answer: pa = {_hex(right['pa'])}, ma = {_hex(right['ma'])}, "
        f"references = {right['references']}", "", "Worked answer:", p.explain()])


__all__ = ["Problem", "check", "generate", "main_problem"]

"""Memory overcommit: same-page merging (KSM) on simpy, and the balloon's arithmetic.

A host can promise its guests more memory than it has, because guests rarely use all of
it and because many of their pages are identical. Two tools make the promise hold:

KSM (kernel same-page merging)
    A kernel thread, ``ksmd``, wakes every ``sleep_millisecs``, looks at ``pages_to_scan``
    pages that a process marked mergeable (QEMU marks guest RAM), and merges identical ones
    into one read-only page (copy-on-write). As ``mm/ksm.c`` does it: a page is first
    compared with the *stable* tree of merged pages and joins a match at once (a KSM page
    takes at most ``max_page_sharing`` mappings, 256 by default: then the next pair of
    copies makes another KSM page of the same content); otherwise it must have kept the same
    checksum since the previous full scan (so a page is never merged on the scan that first
    sees it), and then it is looked up in the *unstable* tree of this scan's candidates: a
    match makes a new KSM page. The unstable tree is emptied after every full scan.
    ``pages_shared`` counts KSM pages, ``pages_sharing`` the further pages mapped to them:
    the pages saved.
Ballooning
    A driver in the guest (virtio-balloon) takes pages from the guest's own allocator
    and hands them back to the host: the guest sees less memory, the host gets frames
    back. :func:`balloon_plan` does the arithmetic for a set of guests on one host.

Examples
--------
100 pages holding 10 different contents, scanned 25 pages at a time:

>>> r = simulate_ksm(KsmScenario(pages=100, distinct=10, pages_to_scan=25, sleep_ms=20))
>>> r.final()                            # 10 KSM pages; the other 90 copies are saved
(10, 90)
>>> r.full_scans_when_merged()           # nothing merges before the second full scan
1
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import simpy

from kvmlab.errors import ScenarioError


@dataclass(frozen=True)
class KsmScenario:
    """Pages given to KSM and how ``ksmd`` is tuned.

    Parameters
    ----------
    pages : int
        Mergeable pages; page ``i`` holds content number ``i % distinct``.
    distinct : int
        How many different contents there are (1..pages).
    pages_to_scan, sleep_ms : int, float
        ``/sys/kernel/mm/ksm/pages_to_scan`` and ``sleep_millisecs``.
    scan_page_us : float
        Time ``ksmd`` spends on one page (checksum, tree look-ups); far more under TCG.
    merge_us : float
        Extra time for each page merged (write-protecting it, switching its mapping).
    duration_s : float
        How long to watch.
    max_page_sharing : int
        ``/sys/kernel/mm/ksm/max_page_sharing``: mappings of one KSM page at most.
    """

    pages: int
    distinct: int
    pages_to_scan: int = 100
    sleep_ms: float = 20.0
    scan_page_us: float = 2.0
    duration_s: float = 1.5
    merge_us: float = 0.0
    max_page_sharing: int = 256

    def __post_init__(self) -> None:
        if self.pages < 1:
            raise ScenarioError(f"KSM needs at least 1 mergeable page, not {self.pages}")
        if not 1 <= self.distinct <= self.pages:
            raise ScenarioError(f"distinct contents must be 1-{self.pages} (the pages), "
                                f"not {self.distinct}")
        if self.pages_to_scan < 1:
            raise ScenarioError(f"pages_to_scan must be at least 1, not {self.pages_to_scan}")
        if self.max_page_sharing < 2:
            raise ScenarioError(f"max_page_sharing must be at least 2, not "
                                f"{self.max_page_sharing}")
        for name in ("sleep_ms", "scan_page_us", "duration_s", "merge_us"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ScenarioError(f"{name} must be a finite number >= 0, not {value}")

    def expected_final(self) -> tuple[int, int]:
        """(pages_shared, pages_sharing) once everything mergeable is merged.

        Examples
        --------
        >>> KsmScenario(pages=7, distinct=3).expected_final()   # copies 3, 2, 2
        (3, 4)
        >>> KsmScenario(pages=600, distinct=1).expected_final() # KSM pages of 256, 256, 88
        (3, 597)
        """
        shared = sharing = 0
        for content in range(self.distinct):
            copies = len(range(content, self.pages, self.distinct))
            full, rest = divmod(copies, self.max_page_sharing)
            pages = full + (rest >= 2)                   # a last lone copy has no partner
            shared += pages
            sharing += full * (self.max_page_sharing - 1) + (rest - 1 if rest >= 2 else 0)
        return shared, sharing

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class KsmSample:
    """KSM's counters at one moment (seconds since ``ksmd`` was started)."""

    t_s: float
    full_scans: int
    pages_shared: int
    pages_sharing: int


@dataclass
class KsmResult:
    """How KSM's counters moved over time: simulated or measured."""

    scenario: KsmScenario
    samples: list[KsmSample]
    source: str = "model"
    provenance: dict[str, Any] = field(default_factory=dict)

    def final(self) -> tuple[int, int]:
        """(pages_shared, pages_sharing) at the end."""
        last = self.samples[-1]
        return last.pages_shared, last.pages_sharing

    def merged_at_s(self) -> float | None:
        """When ``pages_sharing`` first reached its final value (None if it never rose)."""
        final = self.final()
        if final == (0, 0):
            return None
        return next(s.t_s for s in self.samples if (s.pages_shared, s.pages_sharing) == final)

    def full_scans_when_merged(self) -> int | None:
        """How many full scans had ended when the last page was merged."""
        at = self.merged_at_s()
        return None if at is None else next(s.full_scans for s in self.samples if s.t_s == at)

    def full_scan_s(self) -> float | None:
        """When the first full scan ended."""
        return next((s.t_s for s in self.samples if s.full_scans >= 1), None)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "scenario": self.scenario.to_dict(),
                "samples": [asdict(s) for s in self.samples], "provenance": self.provenance}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KsmResult:
        return cls(KsmScenario(**d["scenario"]), [KsmSample(**s) for s in d["samples"]],
                   d.get("source", "model"), d.get("provenance", {}))


class _Ksmd:
    """``ksmd``'s bookkeeping over the pages of one process, as mm/ksm.c keeps it."""

    def __init__(self, scenario: KsmScenario) -> None:
        self.s = scenario
        self.seen = [False] * scenario.pages          # a checksum was taken on a past scan
        self.merged = [False] * scenario.pages
        self.stable: dict[int, int] = {}              # content -> mappings of its newest
        self.unstable: dict[int, int] = {}            # content -> page, this scan only
        self.shared = self.sharing = self.full_scans = 0

    def scan(self, page: int) -> int:
        """Look at one page; return how many pages were merged (0, 1 or 2)."""
        if self.merged[page]:
            return 0
        content = page % self.s.distinct
        if self.stable.get(content, self.s.max_page_sharing) < self.s.max_page_sharing:
            self.merged[page] = True                  # the stable tree comes first
            self.stable[content] += 1
            self.sharing += 1
            return 1
        if not self.seen[page]:                       # checksum not yet known to be steady
            self.seen[page] = True
            return 0
        other = self.unstable.pop(content, None)
        if other is None:
            self.unstable[content] = page
            return 0
        self.merged[page] = self.merged[other] = True
        self.stable[content] = 2                      # a new KSM page, two mappings
        self.shared += 1
        self.sharing += 1
        return 2

    def end_of_scan(self) -> None:
        self.unstable.clear()
        self.full_scans += 1


def simulate_ksm(scenario: KsmScenario) -> KsmResult:
    """Run ``ksmd`` over the scenario's pages on simpy; a sample at every change."""
    env = simpy.Environment()
    ksmd = _Ksmd(scenario)
    samples = [KsmSample(0.0, 0, 0, 0)]

    def note() -> None:
        now = KsmSample(round(env.now, 9), ksmd.full_scans, ksmd.shared, ksmd.sharing)
        if (now.full_scans, now.pages_shared, now.pages_sharing) != (
                samples[-1].full_scans, samples[-1].pages_shared, samples[-1].pages_sharing):
            samples.append(now)

    def thread() -> Iterator[simpy.Event]:
        page = 0
        while True:
            for _ in range(scenario.pages_to_scan):
                yield env.timeout(scenario.scan_page_us / 1e6)
                merged = ksmd.scan(page)
                if merged and scenario.merge_us:
                    yield env.timeout(merged * scenario.merge_us / 1e6)
                note()
                page += 1
                if page == scenario.pages:
                    page = 0
                    ksmd.end_of_scan()
                    note()
            yield env.timeout(scenario.sleep_ms / 1000)

    env.process(thread())
    env.run(until=scenario.duration_s)
    samples.append(KsmSample(scenario.duration_s, ksmd.full_scans, ksmd.shared, ksmd.sharing))
    return KsmResult(scenario, samples)


def fit_scan_cost(scenario: KsmScenario, full_scan_s: float) -> KsmScenario:
    """The scenario with ``scan_page_us`` chosen so that its first full scan takes
    ``full_scan_s`` (one measured figure: then the model predicts all the rest).

    Examples
    --------
    >>> s = fit_scan_cost(KsmScenario(1000, 10, pages_to_scan=100, sleep_ms=20), 0.245)
    >>> round(s.scan_page_us, 3), simulate_ksm(s).full_scan_s()
    (65.0, 0.245)
    """
    batches = math.ceil(scenario.pages / scenario.pages_to_scan)
    sleeping = (batches - 1) * scenario.sleep_ms / 1000
    per_page_us = max(0.0, (full_scan_s - sleeping) / scenario.pages * 1e6)
    return KsmScenario(**{**scenario.to_dict(), "scan_page_us": round(per_page_us, 6)})


# -- ballooning ------------------------------------------------------------------------
@dataclass(frozen=True)
class BalloonGuest:
    """A guest: what it was given, how far its balloon is inflated, what it really uses."""

    name: str
    memory_mib: int
    balloon_mib: int = 0
    used_mib: int = 0

    def __post_init__(self) -> None:
        if self.memory_mib < 1:
            raise ScenarioError(f"guest {self.name}: memory must be at least 1 MiB")
        if not 0 <= self.balloon_mib < self.memory_mib:
            raise ScenarioError(f"guest {self.name}: the balloon holds 0 to less than the "
                                f"guest's {self.memory_mib} MiB, not {self.balloon_mib}")
        if not 0 <= self.used_mib <= self.memory_mib:
            raise ScenarioError(f"guest {self.name}: used memory is 0-{self.memory_mib} MiB, "
                                f"not {self.used_mib}")

    @property
    def usable_mib(self) -> int:
        """What the guest may still allocate: its memory minus the balloon."""
        return self.memory_mib - self.balloon_mib

    @property
    def squeezed_mib(self) -> int:
        """How much of what the guest wants no longer fits: it must swap or drop caches."""
        return max(0, self.used_mib - self.usable_mib)


@dataclass(frozen=True)
class BalloonPlan:
    """Guests on one host: what was promised, what the host must really provide."""

    host_mib: int
    guests: tuple[BalloonGuest, ...]

    @property
    def promised_mib(self) -> int:
        return sum(g.memory_mib for g in self.guests)

    @property
    def overcommit(self) -> float:
        """Promised memory over host memory (above 1: overcommitted)."""
        return self.promised_mib / self.host_mib

    @property
    def needed_mib(self) -> int:
        """Frames the host needs at most: each guest's usable memory."""
        return sum(g.usable_mib for g in self.guests)

    @property
    def fits(self) -> bool:
        return self.needed_mib <= self.host_mib


def balloon_plan(host_mib: int, guests: Sequence[BalloonGuest]) -> BalloonPlan:
    """The arithmetic of ballooning on a host of ``host_mib``.

    Examples
    --------
    >>> plan = balloon_plan(4096, [BalloonGuest("a", 2048, balloon_mib=512, used_mib=1024),
    ...                            BalloonGuest("b", 3072, balloon_mib=1024, used_mib=2500)])
    >>> plan.overcommit, plan.needed_mib, plan.fits
    (1.25, 3584, True)
    >>> [g.squeezed_mib for g in plan.guests]     # b wants 2500 MiB but may use 2048
    [0, 452]
    """
    if host_mib < 1:
        raise ScenarioError(f"the host needs at least 1 MiB, not {host_mib}")
    names = [g.name for g in guests]
    if len(set(names)) != len(names):
        raise ScenarioError(f"guest names must differ: {names}")
    return BalloonPlan(host_mib, tuple(guests))

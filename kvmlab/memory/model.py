"""The memory lab's models: KSM on simpy, the memory layout a trace meets, the balloon.

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
The memory layout (traces)
    What an x86-64 Linux guest booted with ``nokaslr`` maps where, without asking it:
    :func:`predict_translation`. A trace's model never touches a host.
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
from dataclasses import replace
from typing import Any

import simpy

from kvmlab.errors import ScenarioError
from kvmlab.lab import SIMULATED
from kvmlab.memory.balloonrun import BalloonRunResult, BalloonStep
from kvmlab.memory.balloonscenario import BalloonRunScenario
from kvmlab.memory.result import BalloonResult, KsmResult, KsmSample, TraceResult, Translation
from kvmlab.memory.scenario import (
    DIRECT_MAP,
    PAGE,
    BalloonGuest,
    BalloonScenario,
    KsmScenario,
    MemoryScenario,
    TraceScenario,
    load_scenario,
)
from kvmlab.progress import ProgressArg, progress_bar
from kvmlab.validate import whole_number

KERNEL_MAP = 0xFFFF_FFFF_8000_0000
"""``__START_KERNEL_map``: the kernel image is mapped here, at its physical address."""
USER_BUFFER = 0x7F00_0000_0000
"""Where the model puts the guest program's buffer: where it really lands is the guest's
own choice (mmap's randomisation), so the model predicts its page size only."""
LEVELS = 4
"""The model's guest uses 4-level tables (a CPU without LA57, as QEMU's default CPUs)."""
PROGRESS_STEPS = 100


# -- KSM --------------------------------------------------------------------------------
class Ksmd:
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


def simulate_ksm(scenario: KsmScenario, progress: ProgressArg = None) -> KsmResult:
    """Run ``ksmd`` over the scenario's pages on simpy; a sample at every change.

    ``progress`` (see :mod:`kvmlab.progress`) counts simulated seconds.
    """
    env = simpy.Environment()
    ksmd = Ksmd(scenario)
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
    with progress_bar(progress, total=scenario.duration_s, desc="KSM model", unit="s") as bar:
        done = 0.0
        for step in range(1, PROGRESS_STEPS + 1):      # the same events as one run: simpy
            until = scenario.duration_s * step / PROGRESS_STEPS    # stops before `until`
            if until > env.now:
                env.run(until=until)
            bar.update(until - done)
            done = until
    samples.append(KsmSample(scenario.duration_s, ksmd.full_scans, ksmd.shared, ksmd.sharing))
    return KsmResult(scenario, SIMULATED, samples, {"model": "ksmd of mm/ksm.c on simpy"})


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
    return scenario.with_scan_cost(round(per_page_us, 6))


def fitted_run(simulated: KsmResult, measured: KsmResult) -> KsmResult | None:
    """The model re-run with its scan cost fitted to ``measured``'s first full scan; None
    when there is nothing to fit (no full scan measured) or the fit changes nothing."""
    full_scan_s = measured.full_scan_s()
    if full_scan_s is None:
        return None
    fitted = fit_scan_cost(simulated.scenario, full_scan_s)
    return None if fitted == simulated.scenario else simulate_ksm(fitted)


# -- traces -----------------------------------------------------------------------------
def predict_translation(kind: str, va: int, memory_bytes: int = 128 << 20,
                        levels: int = LEVELS) -> Translation:
    """What the layout of a ``nokaslr`` guest says about ``va``, a ``kind`` address.

    - ``kernel-text``: the kernel is loaded at PA 16 MiB and mapped at
      :data:`KERNEL_MAP` plus its physical address, so PA = VA - 0xffffffff80000000.
      The page size is not predicted: most of the text sits in 2 MiB pages, but where
      text ends and read-only data begins the kernel splits them into 4 KiB pages.
    - ``direct-map``: all RAM is mapped from the map's start: PA = VA - start, for the
      guest's RAM; beyond it nothing. The page size is not predicted either (2 MiB pages
      mostly, 4 KiB where the kernel changed a page's protection).
    - ``unmapped``: the addresses a trace picks below the program or beyond all RAM: a
      page fault.
    - ``user``: the program's buffer, in 4 KiB pages; its PA is the guest's choice.

    Examples
    --------
    >>> hex(predict_translation("kernel-text", 0xFFFF_FFFF_8100_0042).model_pa)
    '0x1000042'
    >>> predict_translation("unmapped", 0x1234).fault
    'nothing is mapped below the program'
    >>> predict_translation("user", USER_BUFFER + 5).page_size
    4096
    """
    if kind == "kernel-text":
        return Translation(va, kind, va - KERNEL_MAP, None)
    direct = DIRECT_MAP[levels]
    if kind in ("direct-map", "unmapped") and direct <= va:
        if va - direct < memory_bytes:
            return Translation(va, kind, va - direct, None)
        return Translation(va, kind, None, None, fault="beyond all of the guest's RAM")
    if kind == "unmapped":
        return Translation(va, kind, None, None, fault="nothing is mapped below the program")
    return Translation(va, kind, None, None, page_size=PAGE)


def predict_trace(scenario: TraceScenario, *, seed: int = 0,
                  progress: ProgressArg = None) -> TraceResult:
    """What the model predicts for the addresses ``scenario`` picks (its seed, or ``seed``
    when it has none); ``progress`` counts addresses.

    Examples
    --------
    >>> r = predict_trace(TraceScenario(samples=4, seed=1))
    >>> [(t.kind, t.model_pa is not None, t.fault is not None) for t in r.translations]
    [('user', False, False), ('kernel-text', True, False), ('direct-map', True, False), \
('unmapped', False, True)]
    """
    if scenario.seed is None:
        scenario = scenario.with_seed(whole_number(seed, "seed", low=0))
    buffer = [USER_BUFFER + i * PAGE for i in range(scenario.pages)]
    picks = scenario.addresses(buffer, LEVELS)
    translations = []
    with progress_bar(progress, total=len(picks), desc="trace model", unit="address") as bar:
        for kind, va in picks:
            translations.append(predict_translation(kind, va, scenario.memory_mib << 20))
            bar.update(1)
    return TraceResult(scenario, SIMULATED, translations, None, LEVELS, provenance={
        "model": "the x86-64 Linux memory layout of a guest booted with nokaslr",
        "seed": scenario.seed})


# -- ballooning -------------------------------------------------------------------------
def simulate_balloon(scenario: BalloonScenario, progress: ProgressArg = None
                     ) -> BalloonResult:
    """The balloon's arithmetic for the scenario: each guest holds its planned balloon."""
    with progress_bar(progress, total=len(scenario.guests), desc="balloon plan",
                      unit="guest") as bar:
        bar.update(len(scenario.guests))
    return BalloonResult(scenario, SIMULATED, scenario.guests,
                         {"model": "the balloon's arithmetic"})


def balloon_plan(host_mib: int, guests: Sequence[BalloonGuest]) -> BalloonResult:
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
    return simulate_balloon(BalloonScenario(host_mib, tuple(guests)))


# -- the real balloon, step by step ----------------------------------------------------
NOMINAL_RESERVED_MIB = 37.6
"""What the tiny guest's kernel keeps out of ``MemTotal`` at 256 MiB (measured: 256 MiB
minus 223632 KiB). Used only for a prediction made before any run; a comparison puts the
model on the measured start instead."""
NOMINAL_USED_MIB = 38.0
"""``MemTotal`` minus ``MemAvailable`` of the booted tiny guest (measured, 37.9-38.4 MiB)."""
NOMINAL_QEMU_MIB = 60.0
"""QEMU's RSS beyond the guest's memory under TCG (its translation cache, measured 54-60)."""


def nominal_start(scenario: BalloonRunScenario) -> BalloonStep:
    """The tiny guest just booted, balloon empty, as measured on the lab's development host
    (:data:`NOMINAL_RESERVED_MIB`, :data:`NOMINAL_USED_MIB`, :data:`NOMINAL_QEMU_MIB`)."""
    m = scenario.memory_mib
    total = round(m - NOMINAL_RESERVED_MIB - (m - 256) / 64, 3)
    avail = round(total - NOMINAL_USED_MIB, 3)
    return BalloonStep(m, float(m), total, avail, total, avail, None,
                       None, float(m) + NOMINAL_QEMU_MIB)


def predict_balloon_run(scenario: BalloonRunScenario, start: BalloonStep | None = None
                        ) -> BalloonRunResult:
    """The model's balloon run: each step from ``start`` (a measured start, else
    :func:`nominal_start`) and the balloon's size.

    ``actual`` is the target; ``MemTotal`` (and libvirt's ``available``) falls by the
    balloon, unless ``deflate_on_oom`` keeps the balloon's pages counted; ``MemAvailable``
    (``usable``) falls by the balloon; the QEMU process's RSS never rises and falls by at
    most what the balloon has grown by, all told (no lower bound with
    ``free_page_reporting``). See :mod:`kvmlab.memory.balloonrun` for why.

    Examples
    --------
    >>> from kvmlab.memory.balloonscenario import BalloonRunScenario
    >>> r = predict_balloon_run(BalloonRunScenario(memory_mib=256, targets_mib=(192, 128, 256),
    ...                                            deflate_on_oom=True))
    >>> [(s.memtotal_mib, s.memavailable_mib, s.rss_low_mib) for s in r.steps]
    [(218.4, 116.4, 252.0), (218.4, 52.4, 188.0), (218.4, 180.4, 188.0)]
    """
    given = start
    start = start or nominal_start(scenario)
    rss0 = start.rss_mib if start.rss_mib is not None else start.rss_high_mib
    if rss0 is None:
        raise ScenarioError("a balloon run's start needs its RSS (rss_mib or rss_high_mib)")
    steps: list[BalloonStep] = []
    grown = 0
    previous = 0
    for target, balloon in zip(scenario.targets_mib, scenario.balloons_mib(), strict=True):
        grown += max(0, balloon - previous)
        previous = balloon
        total = start.memtotal_mib - (0 if scenario.deflate_on_oom else balloon)
        avail = start.memavailable_mib - balloon
        low = None if scenario.free_page_reporting else round(rss0 - grown, 3)
        steps.append(BalloonStep(target, float(target), round(total, 3), round(avail, 3),
                                 round(total, 3), round(avail, 3), None, low, rss0))
    start_step = replace(start, rss_mib=None, rss_low_mib=start.rss_low_mib, rss_high_mib=rss0)
    return BalloonRunResult(scenario, SIMULATED, start_step if given is None else start,
                            tuple(steps), {"model": "the balloon driver's accounting",
                                           "start": "measured" if given else "nominal"})


# -- any kind ---------------------------------------------------------------------------
def simulate(scenario: MemoryScenario | dict[str, Any] | str, *, seed: int = 0,
             progress: ProgressArg = None
             ) -> KsmResult | TraceResult | BalloonResult | BalloonRunResult:
    """The model's result for a scenario of any kind (a scenario, a dict, or a name).

    The KSM model and the balloon's arithmetic draw nothing at random; ``seed`` picks a
    trace's addresses when its scenario has no seed of its own. ``progress`` counts
    simulated seconds (KSM), addresses (traces) or guests (balloons).

    Examples
    --------
    >>> simulate({"kind": "balloon", "host_mib": 1024,
    ...           "guests": [{"name": "a", "memory_mib": 2048}]}).overcommit
    2.0
    """
    scenario = load_scenario(scenario)
    whole_number(seed, "seed", low=0)
    if isinstance(scenario, KsmScenario):
        return simulate_ksm(scenario, progress)
    if isinstance(scenario, TraceScenario):
        return predict_trace(scenario, seed=seed, progress=progress)
    if isinstance(scenario, BalloonRunScenario):
        with progress_bar(progress, total=1, desc="balloon model", unit="run") as bar:
            bar.update(1)
        return predict_balloon_run(scenario)
    return simulate_balloon(scenario, progress)


__all__ = ["KERNEL_MAP", "LEVELS", "NOMINAL_QEMU_MIB", "NOMINAL_RESERVED_MIB", "NOMINAL_USED_MIB",
           "USER_BUFFER", "Ksmd", "balloon_plan", "fit_scan_cost", "fitted_run", "nominal_start",
           "predict_balloon_run", "predict_trace", "predict_translation", "simulate",
           "simulate_balloon", "simulate_ksm"]

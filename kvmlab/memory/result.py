"""What the memory lab's experiments produce, simulated or measured, and their comparisons.

One result type per kind of scenario for model and host alike: :class:`KsmResult`,
:class:`TraceResult`, :class:`BalloonResult`, each with a ``scenario``, a ``source``
(``"simulated"`` or ``"measured"``) and a ``provenance``. :func:`compare` puts two of one
scenario side by side (the verb ``kvmlab.memory.compare`` fits the KSM model first).

Examples
--------
>>> from kvmlab.memory.model import simulate
>>> from kvmlab.memory.scenario import KsmScenario
>>> r = simulate(KsmScenario(pages=100, distinct=10, pages_to_scan=25, sleep_ms=20))
>>> r.source, r.final(), r.full_scans_when_merged()
('simulated', (10, 90), 1)
>>> c = compare(r, r)
>>> c.agrees, c.max_error
(True, 0.0)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from kvmlab.errors import ScenarioError
from kvmlab.lab import MEASURED, SOURCES, Comparison, check_pair
from kvmlab.memory.machine import SIZE_NAMES
from kvmlab.memory.scenario import BalloonGuest, BalloonScenario, KsmScenario, TraceScenario

KSM_TIME_TOLERANCE = 0.10
"""The model leaves out what a merge costs (write-protecting, flushing TLBs: dear under
TCG) and the timer's tick: merge times may differ by this share, plus one wake-up."""
BALLOON_TOLERANCE_MIB = 1
"""How far a guest's measured balloon may be from the planned one."""
SIZE_LABEL = {size: name for name, size in SIZE_NAMES.items()}


def _source(value: Any) -> str:
    if value not in SOURCES:
        raise ScenarioError(f"a result's source is {' or '.join(map(repr, SOURCES))}, "
                            f"not {value!r}")
    return str(value)


def _hex(value: int | None) -> str:
    return "-" if value is None else f"{value:#x}"


def _count(items: Iterable[Any], ok: Callable[[Any], bool]) -> dict[str, tuple[int, int]]:
    """Per ``kind``: (how many items are ``ok``, how many there are)."""
    out: dict[str, tuple[int, int]] = {}
    for item in items:
        good, n = out.get(item.kind, (0, 0))
        out[item.kind] = (good + ok(item), n + 1)
    return out


class MemoryResult:
    """What every result of the memory lab has (the three kinds below are ones)."""

    scenario: Any
    source: str
    provenance: dict[str, Any]


# -- KSM --------------------------------------------------------------------------------
@dataclass(frozen=True)
class KsmSample:
    """KSM's counters at one moment (seconds since ``ksmd`` was started)."""

    t_s: float
    full_scans: int
    pages_shared: int
    pages_sharing: int


@dataclass
class KsmResult(MemoryResult):
    """How KSM's counters moved over time: simulated, or measured in a real kernel."""

    scenario: KsmScenario
    source: str
    samples: list[KsmSample]
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.source = _source(self.source)
        if not self.samples:
            raise ScenarioError("a KSM result has at least one sample of the counters")

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
    def from_dict(cls, d: Mapping[str, Any]) -> KsmResult:
        return cls(KsmScenario.from_dict(d["scenario"]), d["source"],
                   [KsmSample(**s) for s in d["samples"]], dict(d.get("provenance", {})))


# -- traces -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Translation:
    """One virtual address followed through the real machine, or predicted by the model.

    Measured: ``model_pa`` comes from the model's walk over the guest's real tables,
    ``qemu_pa`` from QEMU's ``gva2gpa``; ``hva`` is where QEMU keeps that guest-physical
    byte, ``ma`` the machine address behind it. ``refs`` lists the walk's references as
    ``(level, table, index)``; ``fault`` is set when the address is not mapped.

    Simulated: ``model_pa`` is the PA the memory layout predicts (None where it predicts
    none), ``fault`` says why the model predicts a page fault, ``page_size`` is the page
    size it predicts (None: not predicted); ``qemu_pa`` and the rest stay None.
    """

    va: int
    kind: str
    model_pa: int | None
    qemu_pa: int | None
    page_size: int | None = None
    refs: tuple[tuple[int, int, int], ...] = ()
    fault: str | None = None
    hva: int | None = None
    ma: int | None = None
    guest_pagemap_pa: int | None = None

    @property
    def agrees(self) -> bool:
        """The model's walk and QEMU found the same PA (or both found none)."""
        return self.model_pa == self.qemu_pa

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["refs"] = [list(r) for r in self.refs]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Translation:
        return cls(**{**d, "refs": tuple(tuple(r) for r in d.get("refs", ()))})

    def chain(self) -> str:
        """The chain in one line, e.g. ``VA 0x7f.. -> PA 0x29c3000 -> HVA 0x7f.. -> MA 0x..``.

        Examples
        --------
        >>> Translation(0x1000, "unmapped", None, None, fault="not present").chain()
        'VA 0x1000 -> page fault (not present)'
        """
        if self.model_pa is None:
            return f"VA {self.va:#x} -> page fault ({self.fault})"
        parts = [f"VA {self.va:#x}", f"PA {self.model_pa:#x}"]
        if self.hva is not None:
            parts.append(f"HVA {self.hva:#x}")
        if self.ma is not None:
            parts.append(f"MA {self.ma:#x}")
        return " -> ".join(parts)


@dataclass
class TraceResult(MemoryResult):
    """Everything one trace found (or the model predicted): the translations, and what
    the machine looked like (``cr3`` is None for a prediction: no real tables)."""

    scenario: TraceScenario
    source: str
    translations: list[Translation]
    cr3: int | None = None
    levels: int = 4
    pattern_seen: dict[str, str] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.source = _source(self.source)

    def _measured_only(self) -> None:
        if self.source != MEASURED:
            raise ScenarioError("a simulated trace asked no QEMU; compare(simulated, "
                                "measured) checks its predictions")

    def agreement(self) -> tuple[int, int]:
        """(how many translations agree, how many there are): the model's walk over the
        real tables against QEMU (a measured trace)."""
        self._measured_only()
        return sum(t.agrees for t in self.translations), len(self.translations)

    def by_kind(self) -> dict[str, tuple[int, int]]:
        """Agreement counted per kind of address (a measured trace)."""
        self._measured_only()
        return _count(self.translations, lambda t: t.agrees)

    def table(self, limit: int | None = 12) -> str:
        """A plain-text table of the first ``limit`` translations of each kind."""
        rows = [f"{'kind':<12} {'virtual address':>18} {'model PA':>12} {'QEMU PA':>12} "
                f"{'page':>5} {'machine address':>16}"]
        shown: dict[str, int] = {}
        for t in self.translations:
            shown[t.kind] = shown.get(t.kind, 0) + 1
            if limit is not None and shown[t.kind] > limit:
                continue
            page = SIZE_LABEL.get(t.page_size or 0, "-")
            rows.append(f"{t.kind:<12} {t.va:>#18x} {_hex(t.model_pa):>12} "
                        f"{_hex(t.qemu_pa):>12} {page:>5} {_hex(t.ma):>16}")
        return "\n".join(rows)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "scenario": self.scenario.to_dict(), "cr3": self.cr3,
                "levels": self.levels, "pattern_seen": self.pattern_seen,
                "memory": self.memory, "provenance": self.provenance,
                "translations": [t.to_dict() for t in self.translations]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TraceResult:
        return cls(TraceScenario.from_dict(d["scenario"]), d["source"],
                   [Translation.from_dict(t) for t in d["translations"]], d.get("cr3"),
                   d.get("levels", 4), dict(d.get("pattern_seen", {})),
                   dict(d.get("memory", {})), dict(d.get("provenance", {})))


# -- ballooning -------------------------------------------------------------------------
@dataclass(frozen=True)
class BalloonResult(MemoryResult):
    """Guests on one host: what was promised, what the host must really provide.

    ``guests`` are the scenario's guests with the balloon each really holds (planned, in
    a simulation: :func:`kvmlab.memory.model.balloon_plan`).
    """

    scenario: BalloonScenario
    source: str
    guests: tuple[BalloonGuest, ...]
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", _source(self.source))
        object.__setattr__(self, "guests", tuple(self.guests))

    @property
    def host_mib(self) -> int:
        return self.scenario.host_mib

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

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "scenario": self.scenario.to_dict(),
                "guests": [{**g.to_dict(), "usable_mib": g.usable_mib,
                            "squeezed_mib": g.squeezed_mib} for g in self.guests],
                "promised_mib": self.promised_mib, "needed_mib": self.needed_mib,
                "overcommit": round(self.overcommit, 6), "fits": self.fits,
                "provenance": self.provenance}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BalloonResult:
        guests = tuple(BalloonGuest(g["name"], g["memory_mib"], g.get("balloon_mib", 0),
                                    g.get("used_mib", 0)) for g in d["guests"])
        return cls(BalloonScenario.from_dict(d["scenario"]), d["source"], guests,
                   dict(d.get("provenance", {})))


# -- loading ----------------------------------------------------------------------------
RESULT_TYPES: dict[str, type[KsmResult] | type[TraceResult] | type[BalloonResult]] = {
    "ksm": KsmResult, "trace": TraceResult, "balloon": BalloonResult}


def result_from_dict(data: Mapping[str, Any]) -> KsmResult | TraceResult | BalloonResult:
    """A result from its JSON form, of the kind its scenario names."""
    scenario = data.get("scenario") if isinstance(data, Mapping) else None
    kind = scenario.get("kind") if isinstance(scenario, Mapping) else None
    if kind not in RESULT_TYPES:
        raise ScenarioError("a memory result holds its scenario, whose kind is 'ksm', "
                            f"'trace' or 'balloon', not {kind!r}")
    return RESULT_TYPES[kind].from_dict(data)


# -- comparisons ------------------------------------------------------------------------
def _relative(model: float | None, measured: float | None) -> float:
    if model == measured:
        return 0.0
    if model is None or measured is None or measured == 0:
        return 1.0
    return abs(model - measured) / abs(measured)


KSM_FIXED = ("pages", "distinct", "pages_to_scan", "sleep_ms", "duration_s",
             "max_page_sharing")
"""What two KSM runs must share to be compared (the rest are the model's own costs)."""


@dataclass(frozen=True)
class KsmComparison(Comparison):
    """KSM in the model against KSM in a real kernel.

    They agree when they end with the same ``pages_shared`` and ``pages_sharing``, merge
    the last page in the same full scan, and at the same moment within
    :data:`KSM_TIME_TOLERANCE` of the measured time plus one wake-up of ``ksmd``, judged on
    ``fitted`` if given (the model re-run with its cost per page fitted to the measured
    first full scan). ``max_error`` is a fraction of the measured value (0.1: 10 %): the
    largest relative difference among the final ``pages_shared``, the final
    ``pages_sharing`` and the moment all was merged (1.0 when only one side merged).
    """

    simulated: KsmResult
    measured: KsmResult
    fitted: KsmResult | None = None

    @property
    def model(self) -> KsmResult:
        """The model's run that is judged: the fitted one if there is one."""
        return self.fitted or self.simulated

    @property
    def tolerance_s(self) -> float:
        """How far the model's merge time may be from the measured one."""
        s = self.model.scenario
        wakeup_s = s.pages_to_scan * s.scan_page_us / 1e6 + s.sleep_ms / 1000
        return round(KSM_TIME_TOLERANCE * (self.measured.merged_at_s() or 0.0) + wakeup_s, 9)

    @property
    def time_agrees(self) -> bool:
        model, real = self.model.merged_at_s(), self.measured.merged_at_s()
        if model is None or real is None:
            return model is real
        return abs(model - real) <= self.tolerance_s

    @property
    def agrees(self) -> bool:
        return (self.model.final() == self.measured.final() and self.time_agrees
                and self.model.full_scans_when_merged()
                == self.measured.full_scans_when_merged())

    @property
    def max_error(self) -> float:
        model, real = self.model, self.measured
        return round(max(_relative(model.final()[0], real.final()[0]),
                         _relative(model.final()[1], real.final()[1]),
                         _relative(model.merged_at_s(), real.merged_at_s())), 6)

    def _figures(self) -> dict[str, tuple[Any, Any]]:
        return {name: tuple(getattr(r, name)() for r in (self.model, self.measured))
                for name in ("final", "full_scan_s", "merged_at_s", "full_scans_when_merged")}

    def details(self) -> dict[str, Any]:
        return {"kind": "ksm", "expected_final": list(self.measured.scenario.expected_final()),
                **{k: {"model": m, "measured": r} for k, (m, r) in self._figures().items()},
                "tolerance_s": self.tolerance_s, "fitted": self.fitted is not None,
                "scan_page_us": self.model.scenario.scan_page_us}

    def table(self) -> str:
        how = (f"model fitted to the measured first full scan ({self.model.scenario.scan_page_us}"
               " us a page)" if self.fitted else "model as simulated")
        lines = [f"{'':<24}{'model':>14}{'measured':>14}"]
        for name, (m, r) in self._figures().items():
            lines.append(f"{name:<24}{m!s:>14}{r!s:>14}")
        lines += [f"once all is merged: {self.measured.scenario.expected_final()}; {how}; "
                  f"merge times may differ by {self.tolerance_s:g} s",
                  f"agrees: {self.agrees}; largest relative error {self.max_error:g}"]
        return "\n".join(lines)

    def plot(self, ax: Any = None) -> Any:
        from kvmlab.memory.plot import ksm_timeline  # matplotlib only when drawing

        return ksm_timeline([self.model, self.measured], ax=ax)


@dataclass(frozen=True)
class PredictionCheck:
    """One prediction of the model about one traced address, and what QEMU found."""

    kind: str
    va: int
    predicted: str
    found: str
    held: bool


def check_prediction(p: Translation, m: Translation, measured: bool = True
                     ) -> PredictionCheck:
    """Does what the model predicted for one address (``p``) hold in ``m``?

    Examples
    --------
    >>> p = Translation(0xFFFF_FFFF_8100_0042, "kernel-text", 0x100_0042, None)
    >>> m = Translation(0xFFFF_FFFF_8100_0042, "kernel-text", 0x100_0042, 0x100_0042, 2 << 20)
    >>> check_prediction(p, m).held
    True
    """
    if measured:                                   # QEMU's answer
        mapped, pa = m.qemu_pa is not None, m.qemu_pa
    else:                                          # another prediction
        mapped, pa = m.fault is None, m.model_pa
    found = (_hex(pa) if pa is not None else "mapped") if mapped else "page fault"
    if m.page_size:
        found += f", {SIZE_LABEL.get(m.page_size, m.page_size)} page"
    if p.kind != m.kind or (p.kind != "user" and p.va != m.va):
        return PredictionCheck(p.kind, p.va, "another address", f"{m.kind} {m.va:#x}", False)
    parts, held = [], True
    if p.fault is not None:
        parts.append("page fault")
        held = not mapped
    elif p.model_pa is not None:
        parts.append(f"PA {p.model_pa:#x}")
        held = mapped and pa == p.model_pa
    if p.page_size is not None:
        parts.append(f"{SIZE_LABEL.get(p.page_size, p.page_size)} page")
        held = held and m.page_size == p.page_size
    return PredictionCheck(m.kind, m.va, ", ".join(parts) or "nothing", found, held)


@dataclass(frozen=True)
class TraceComparison(Comparison):
    """The memory layout's predictions against QEMU's answers, address by address.

    ``max_error`` is a share (0.0 to 1.0): over the kinds of address, the largest share of
    the model's predictions that QEMU's answers contradict (1.0 when the two traces do not
    use page tables of as many levels).
    """

    simulated: TraceResult
    measured: TraceResult
    rows: tuple[PredictionCheck, ...]

    def by_kind(self) -> dict[str, tuple[int, int]]:
        """Per kind of address: (predictions that held, predictions)."""
        return _count(self.rows, lambda r: r.held)

    @property
    def agrees(self) -> bool:
        return self.max_error == 0.0

    @property
    def max_error(self) -> float:
        if self.simulated.levels != self.measured.levels:
            return 1.0
        return round(max(((n - ok) / n for ok, n in self.by_kind().values()), default=0.0), 6)

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "trace", "levels": {"model": self.simulated.levels,
                                        "measured": self.measured.levels},
            "by_kind": {k: {"held": ok, "predictions": n}
                        for k, (ok, n) in self.by_kind().items()},
            "contradicted": [{**asdict(r), "va": hex(r.va)} for r in self.rows
                             if not r.held][:10]}
        if self.measured.source == MEASURED:
            out["walk_agreement"] = list(self.measured.agreement())
        return out

    def table(self) -> str:
        rules = {"kernel-text": "PA = VA - 0xffffffff80000000", "user": "a 4K page",
                 "direct-map": "PA = VA - the map's start", "unmapped": "a page fault"}
        lines = [f"{'kind':<12} {'the model predicts':<29} {'held':>5} {'of':>5}"]
        for kind, (ok, n) in self.by_kind().items():
            lines.append(f"{kind:<12} {rules.get(kind, '?'):<29} {ok:>5} {n:>5}")
        for r in [r for r in self.rows if not r.held][:5]:
            lines.append(f"  contradicted: {r.kind} {r.va:#x}: predicted {r.predicted}, "
                         f"found {r.found}")
        if self.simulated.levels != self.measured.levels:
            lines.append(f"the model assumed {self.simulated.levels}-level tables, the guest "
                         f"used {self.measured.levels}")
        if self.measured.source == MEASURED:
            ok, n = self.measured.agreement()
            lines.append(f"the model's own walk over the real tables found QEMU's PA for "
                         f"{ok}/{n} addresses")
        lines.append(f"agrees: {self.agrees}; largest share contradicted {self.max_error:g}")
        return "\n".join(lines)

    def plot(self, ax: Any = None) -> Any:
        from kvmlab.memory.plot import prediction_bars

        return prediction_bars(self.by_kind(), ax=ax)


@dataclass(frozen=True)
class BalloonComparison(Comparison):
    """Planned balloons against the balloons the guests really hold.

    ``max_error`` is in MiB: the largest difference between a guest's planned and measured
    balloon (and so its usable memory); they agree within :data:`BALLOON_TOLERANCE_MIB`.
    """

    simulated: BalloonResult
    measured: BalloonResult

    def _pairs(self) -> list[tuple[BalloonGuest, BalloonGuest]]:
        return list(zip(self.simulated.guests, self.measured.guests, strict=True))

    @property
    def max_error(self) -> float:
        return float(max((abs(s.balloon_mib - m.balloon_mib) for s, m in self._pairs()),
                         default=0))

    @property
    def agrees(self) -> bool:
        return self.max_error <= BALLOON_TOLERANCE_MIB

    def details(self) -> dict[str, Any]:
        return {"kind": "balloon", "balloon_mib": {s.name: {"model": s.balloon_mib,
                                                            "measured": m.balloon_mib}
                                                   for s, m in self._pairs()}}

    def table(self) -> str:
        lines = [f"{'guest':<12}{'balloon (model)':>16}{'(measured)':>12}{'usable (model)':>16}"
                 f"{'(measured)':>12}"]
        for s, m in self._pairs():
            lines.append(f"{s.name:<12}{s.balloon_mib:>16}{m.balloon_mib:>12}"
                         f"{s.usable_mib:>16}{m.usable_mib:>12}")
        lines.append(f"agrees: {self.agrees}; largest difference {self.max_error:g} MiB")
        return "\n".join(lines)

    def plot(self, ax: Any = None) -> Any:
        from kvmlab.memory.plot import balloon_bars

        return balloon_bars({s.name: (s.usable_mib, m.usable_mib) for s, m in self._pairs()},
                            ax=ax)


def _same_ksm_runs(a: KsmScenario, b: KsmScenario) -> None:
    differ = [f for f in KSM_FIXED if getattr(a, f) != getattr(b, f)]
    if differ:
        raise ScenarioError(f"the two KSM runs are of different scenarios ({', '.join(differ)} "
                            "differ): simulate the measured result's scenario")


def compare(simulated: MemoryResult, measured: MemoryResult, *,
            fitted: KsmResult | None = None
            ) -> KsmComparison | TraceComparison | BalloonComparison:
    """A simulated result next to a measured one of the same scenario and kind.

    A simulated result may stand on either side. ``fitted`` (KSM only) is the model re-run
    with its scan cost fitted to ``measured``: its timing is judged instead
    (``kvmlab.memory.compare`` makes it).

    Raises
    ------
    ScenarioError
        If the results are not of one kind, or not of the same scenario.
    """
    check_pair(simulated, measured, MemoryResult)
    check_pair(simulated, measured, type(simulated))
    if isinstance(simulated, KsmResult) and isinstance(measured, KsmResult):
        _same_ksm_runs(simulated.scenario, measured.scenario)
        return KsmComparison(simulated, measured, fitted)
    if isinstance(simulated, TraceResult) and isinstance(measured, TraceResult):
        if not simulated.scenario.same_addresses(measured.scenario):
            raise ScenarioError("the two traces followed different addresses "
                                f"({simulated.scenario} and {measured.scenario}): simulate "
                                "the measured result's scenario")
        rows = tuple(check_prediction(p, m, measured.source == MEASURED)
                     for p, m in zip(simulated.translations, measured.translations,
                                     strict=True))
        return TraceComparison(simulated, measured, rows)
    assert isinstance(simulated, BalloonResult) and isinstance(measured, BalloonResult)
    if [g.name for g in simulated.guests] != [g.name for g in measured.guests]:
        raise ScenarioError("the two balloon results are of different guests")
    return BalloonComparison(simulated, measured)


__all__ = ["BALLOON_TOLERANCE_MIB", "KSM_FIXED", "KSM_TIME_TOLERANCE", "RESULT_TYPES",
           "BalloonComparison", "BalloonResult", "KsmComparison", "KsmResult", "KsmSample",
           "MemoryResult", "PredictionCheck", "TraceComparison", "TraceResult", "Translation",
           "check_prediction", "compare", "result_from_dict"]

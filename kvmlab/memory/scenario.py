"""The memory lab's scenarios: plain, frozen data, and every rule they must follow.

Three kinds of experiment, told apart in JSON by their ``"kind"``:

``"ksm"`` (:class:`KsmScenario`)
    Pages given to the kernel's same-page merging and how ``ksmd`` is tuned.
``"trace"`` (:class:`TraceScenario`)
    Which virtual addresses of a tiny guest to follow from VA to PA to MA.
``"balloon"`` (:class:`BalloonScenario`)
    Guests on one host, each with a balloon: what was promised, what must be provided.
``"balloon-run"`` (:class:`~kvmlab.memory.balloonscenario.BalloonRunScenario`)
    One tiny guest whose real balloon is inflated and deflated, target after target.

Their JSON forms, which scripts may rely on::

    {"kind": "ksm", "pages": 1000, "distinct": 10, "pages_to_scan": 100, "sleep_ms": 20}
    {"kind": "trace", "samples": 200, "pages": 64, "memory_mib": 128, "seed": 0}
    {"kind": "balloon", "host_mib": 8192,
     "guests": [{"name": "web", "memory_mib": 4096, "balloon_mib": 1024, "used_mib": 2200}]}

Examples
--------
>>> s = load_scenario({"kind": "ksm", "pages": 7, "distinct": 3})
>>> s.expected_final()                                    # copies 3, 2, 2
(3, 4)
>>> load_scenario("memory-trace").samples
200
>>> load_scenario({"kind": "swap"})
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: a memory scenario's kind must be 'ksm', 'trace' or 'balloon' ...
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

from kvmlab.data import load_scenario_as
from kvmlab.errors import ScenarioError
from kvmlab.memory.balloonscenario import BalloonRunScenario
from kvmlab.validate import (
    check_keys,
    is_real,
    is_whole,
    list_of,
    mapping,
    text,
    whole_number,
)

PAGE = 4096
KINDS = ("user", "kernel-text", "direct-map", "unmapped")
"""The kinds of address a trace follows, in the order it picks them."""
KERNEL_TEXT = 0xFFFF_FFFF_8100_0000
"""Where the kernel's text starts when the guest boots with ``nokaslr``."""
DIRECT_MAP = {4: 0xFFFF_8880_0000_0000, 5: 0xFF11_0000_0000_0000}
"""The start of the kernel's map of all physical memory (``page_offset_base``, nokaslr)."""
MAX_BUFFER_PAGES = 65536
MEMORY_MIB = (64, 4096)
"""The smallest and the largest traced guest, in MiB."""

# -- bounds: what the models compute in reasonable time and memory -------------------------
MAX_KSM_PAGES = 1 << 22
"""The most mergeable pages (16 GiB of 4 KiB pages): the KSM model keeps two flags per
page, about 70 MB at this bound."""
MAX_KSM_SCANS = 2_000_000
"""The most page scans a KSM model run makes (about duration_s / (scan_page_us + sleep_ms /
pages_to_scan)). Measured on a 2-core x86_64 machine (Python 3.11, simpy 4): 2,000,000
scans of 100,000 pages took 10.2 s and 48 MiB, so a run at the bound ends within about
10 s (within 30 s on a busy shared machine)."""
MAX_DURATION_S = 3600.0
"""The longest KSM run watched, simulated or real, in seconds."""
MAX_MS = 3_600_000.0
"""The largest time in ms or us a KSM scenario may give (an hour, in ms)."""
MAX_GUESTS = 1000
MAX_HOST_MIB = 1 << 30
"""The most guests of a balloon scenario, and the largest host or guest (1 PiB) in MiB."""


def _check_keys(cls: type, data: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """``data`` without its ``kind`` (which must be ``kind`` if given); unknown keys refused."""
    given = dict(mapping(data, f"a {kind} scenario"))
    found = given.pop("kind", kind)
    if found != kind:
        raise ScenarioError(f"this is a {kind!r} scenario, not {found!r}")
    check_keys(given, (f.name for f in fields(cls)), f"the {kind} scenario")
    for f in fields(cls):
        if f.default is MISSING and f.default_factory is MISSING and f.name not in given:
            raise ScenarioError(f"a {kind} scenario needs {f.name!r}")
    return given


def _json(scenario: Any) -> dict[str, Any]:
    """The JSON form of a scenario: its kind, then its fields (a name and description only
    when it has them)."""
    out = {"kind": scenario.KIND, **asdict(scenario)}
    for key in ("name", "description"):
        if not out[key]:
            del out[key]
    return out


def _check_texts(scenario: Any) -> None:
    text(scenario.name, "a scenario's name")
    text(scenario.description, "a scenario's description", high=100_000)


def _fraction_free(value: Any, name: str) -> float:
    if not is_real(value) or value < 0:
        raise ScenarioError(f"{name} must be a finite number >= 0, not {value!r}")
    high = MAX_DURATION_S if name == "duration_s" else MAX_MS
    if value > high:
        raise ScenarioError(f"{name} must be at most {high:g}, not {value!r}")
    return float(value)


# -- KSM --------------------------------------------------------------------------------
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
        The model's time for ``ksmd`` to look at one page (checksum, tree look-ups); far
        more under TCG. A real run ignores it (:func:`kvmlab.memory.model.fit_scan_cost`
        sets it from a measurement).
    duration_s : float
        How long to watch.
    merge_us : float
        The model's extra time for each page merged (write-protecting it, switching its
        mapping).
    max_page_sharing : int
        ``/sys/kernel/mm/ksm/max_page_sharing``: mappings of one KSM page at most.
    name, description : str
        What the scenario is called and what it shows (shipped scenarios have them).

    Examples
    --------
    >>> KsmScenario(pages=5, distinct=6)
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: distinct contents must be 1-5 (the pages), not 6
    >>> KsmScenario.from_dict(KsmScenario(10, 2).to_dict()) == KsmScenario(10, 2)
    True
    """

    KIND: ClassVar[str] = "ksm"
    pages: int
    distinct: int
    pages_to_scan: int = 100
    sleep_ms: float = 20.0
    scan_page_us: float = 2.0
    duration_s: float = 1.5
    merge_us: float = 0.0
    max_page_sharing: int = 256
    name: str = ""
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        _check_texts(self)
        if not is_whole(self.pages) or self.pages < 1:
            raise ScenarioError(f"KSM needs at least 1 mergeable page, not {self.pages!r}")
        whole_number(self.pages, "pages", high=MAX_KSM_PAGES)
        whole_number(self.distinct, "distinct contents")
        if not 1 <= self.distinct <= self.pages:
            raise ScenarioError(f"distinct contents must be 1-{self.pages} (the pages), "
                                f"not {self.distinct}")
        whole_number(whole_number(self.pages_to_scan, "pages_to_scan", low=1), "pages_to_scan",
                     high=MAX_KSM_PAGES)
        whole_number(whole_number(self.max_page_sharing, "max_page_sharing", low=2),
                     "max_page_sharing", high=MAX_KSM_PAGES)
        for name in ("sleep_ms", "scan_page_us", "duration_s", "merge_us"):
            object.__setattr__(self, name, _fraction_free(getattr(self, name), name))
        if self.duration_s == 0:
            raise ScenarioError("duration_s must be more than 0: KSM is watched for a while")
        if self.scan_page_us == 0 and self.sleep_ms == 0:
            raise ScenarioError("scan_page_us and sleep_ms cannot both be 0: ksmd would never "
                                "let time pass")
        if self.duration_s > MAX_DURATION_S:
            raise ScenarioError(f"duration_s must be at most {MAX_DURATION_S:g} s, not "
                                f"{self.duration_s:g}")
        scans = self.pages_to_scan + self.duration_s / (
            self.scan_page_us / 1e6 + self.sleep_ms / 1000 / self.pages_to_scan)
        if scans > MAX_KSM_SCANS:
            raise ScenarioError(
                f"this KSM scenario is too large for the model: about {scans:.3g} page scans "
                f"(duration_s / (scan_page_us + sleep_ms / pages_to_scan)); the model takes "
                f"at most {MAX_KSM_SCANS} (about 10 s). Shorten duration_s, or raise "
                "scan_page_us or sleep_ms")

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

    def with_scan_cost(self, scan_page_us: float) -> KsmScenario:
        """The same scenario with the model's cost per page set to ``scan_page_us``."""
        return replace(self, scan_page_us=scan_page_us)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, with ``"kind": "ksm"``."""
        return _json(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KsmScenario:
        """A scenario from its JSON form (``kind`` may be left out)."""
        return cls(**_check_keys(cls, data, cls.KIND))


# -- traces -----------------------------------------------------------------------------
@dataclass(frozen=True)
class TraceScenario:
    """What a trace of a live tiny guest follows from VA to PA to MA.

    Parameters
    ----------
    samples : int
        How many addresses: the program's buffer (user space), the kernel's text, the
        kernel's direct map, and unmapped ones, in turn.
    pages : int
        Size of the guest program's buffer in 4 KiB pages.
    memory_mib : int
        The guest's memory.
    seed : int or None
        Picks the addresses (:meth:`addresses`); None picks a new seed on every host run
        (the result's scenario holds the one chosen) and lets ``simulate``'s ``seed=``
        choose for the model.
    name, description : str
        What the scenario is called and what it shows (shipped scenarios have them).

    Examples
    --------
    >>> TraceScenario(samples=12, seed=3).to_dict()
    {'kind': 'trace', 'samples': 12, 'pages': 64, 'memory_mib': 128, 'seed': 3}
    >>> TraceScenario(pages=20000)
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: the buffer (20000 pages of 4 KiB) must fit in half the ...
    """

    KIND: ClassVar[str] = "trace"
    samples: int = 200
    pages: int = 64
    memory_mib: int = 128
    seed: int | None = 0
    name: str = ""
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        _check_texts(self)
        if not is_whole(self.samples) or self.samples < 1:
            raise ScenarioError(f"trace at least 1 address, not {self.samples!r}")
        whole_number(self.samples, "samples", high=100_000)
        if not is_whole(self.pages) or not 1 <= self.pages <= MAX_BUFFER_PAGES:
            raise ScenarioError(f"the buffer has 1-{MAX_BUFFER_PAGES} pages, not {self.pages!r}")
        whole_number(self.memory_mib, "memory_mib", low=MEMORY_MIB[0], high=MEMORY_MIB[1],
                     unit="MiB")
        if self.pages * PAGE > (self.memory_mib << 20) // 2:
            raise ScenarioError(f"the buffer ({self.pages} pages of 4 KiB) must fit in half the "
                                f"guest's {self.memory_mib} MiB")
        if self.seed is not None:
            whole_number(self.seed, "seed", low=0)

    def with_seed(self, seed: int) -> TraceScenario:
        """The same trace with its addresses chosen by ``seed``."""
        return replace(self, seed=seed)

    def addresses(self, buffer_pages: list[int], levels: int = 4) -> list[tuple[str, int]]:
        """The ``(kind, virtual address)`` pairs this trace follows (see
        :func:`sample_addresses`); the seed must be chosen."""
        if self.seed is None:
            raise ScenarioError("choose the trace's seed first (with_seed)")
        return sample_addresses(buffer_pages, levels, self.memory_mib << 20, self.samples,
                                self.seed)

    def same_addresses(self, other: TraceScenario) -> bool:
        """Do this trace and ``other`` follow the same addresses (seed and sizes)?"""
        return (self.samples, self.pages, self.memory_mib, self.seed) == (
            other.samples, other.pages, other.memory_mib, other.seed)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, with ``"kind": "trace"``."""
        return _json(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TraceScenario:
        """A scenario from its JSON form (``kind`` may be left out)."""
        return cls(**_check_keys(cls, data, cls.KIND))


def sample_addresses(buffer_pages: list[int], levels: int, memory_bytes: int, n: int,
                     seed: int = 0) -> list[tuple[str, int]]:
    """``n`` virtual addresses to trace: the program's buffer, the kernel's text, the
    kernel's direct map, and some that nothing maps.

    Every pick draws the same random numbers whatever the buffer's addresses are, so the
    model (which cannot know where the guest put the buffer) picks the very same kernel
    and unmapped addresses as a real run with the same seed.

    Examples
    --------
    >>> picks = sample_addresses([0x7F00_0000_0000], 4, 128 << 20, 8, seed=1)
    >>> [kind for kind, _ in picks][:5]
    ['user', 'kernel-text', 'direct-map', 'unmapped', 'user']
    """
    if n < 1:
        raise ScenarioError(f"trace at least 1 address, not {n}")
    if not buffer_pages:
        raise ScenarioError("the guest program reported no buffer pages")
    rng = random.Random(seed)
    direct = DIRECT_MAP[levels]
    picks: list[tuple[str, int]] = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        if kind == "user":
            va = buffer_pages[i // len(KINDS) % len(buffer_pages)] + rng.randrange(PAGE)
        elif kind == "kernel-text":
            va = KERNEL_TEXT + rng.randrange(16 << 20)
        elif kind == "direct-map":
            va = direct + rng.randrange(memory_bytes // 2)
        else:
            va = rng.choice([rng.randrange(PAGE, 0x40_0000),            # below the program
                             direct + (64 << 30) + rng.randrange(1 << 30)])  # beyond all RAM
        picks.append((kind, va))
    return picks


# -- ballooning -------------------------------------------------------------------------
@dataclass(frozen=True)
class BalloonGuest:
    """A guest: what it was given, how far its balloon is inflated, what it really uses."""

    name: str
    memory_mib: int
    balloon_mib: int = 0
    used_mib: int = 0

    def __post_init__(self) -> None:
        text(self.name, "a guest's name", empty=False, high=100)
        if not is_whole(self.memory_mib) or self.memory_mib < 1:
            raise ScenarioError(f"guest {self.name}: memory must be at least 1 MiB")
        whole_number(self.memory_mib, f"guest {self.name}: memory_mib", high=MAX_HOST_MIB)
        whole_number(self.balloon_mib, f"guest {self.name}: balloon_mib")
        if not 0 <= self.balloon_mib < self.memory_mib:
            raise ScenarioError(f"guest {self.name}: the balloon holds 0 to less than the "
                                f"guest's {self.memory_mib} MiB, not {self.balloon_mib}")
        whole_number(self.used_mib, f"guest {self.name}: used_mib")
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BalloonGuest:
        return cls(**_check_keys(cls, data, "balloon guest"))


@dataclass(frozen=True)
class BalloonScenario:
    """Guests with balloons on one host of ``host_mib``.

    Examples
    --------
    >>> BalloonScenario(100, (BalloonGuest("a", 10), BalloonGuest("a", 10)))
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: guest names must differ: ['a', 'a']
    """

    KIND: ClassVar[str] = "balloon"
    host_mib: int
    guests: tuple[BalloonGuest, ...] = ()
    name: str = ""
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        _check_texts(self)
        if not is_whole(self.host_mib) or self.host_mib < 1:
            raise ScenarioError(f"the host needs at least 1 MiB, not {self.host_mib!r}")
        whole_number(self.host_mib, "host_mib", high=MAX_HOST_MIB)
        guests = tuple(list_of(self.guests, "guests", high=MAX_GUESTS))
        if not all(isinstance(g, BalloonGuest) for g in guests):
            raise ScenarioError("a balloon scenario's guests are BalloonGuest objects")
        names = [g.name for g in guests]
        if len(set(names)) != len(names):
            raise ScenarioError(f"guest names must differ: {names}")
        object.__setattr__(self, "guests", guests)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, with ``"kind": "balloon"``."""
        return {**_json(self), "guests": [g.to_dict() for g in self.guests]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BalloonScenario:
        """A scenario from its JSON form (``kind`` may be left out)."""
        given = _check_keys(cls, data, cls.KIND)
        guests = list_of(given.get("guests", ()), "guests (a list of guests)", high=MAX_GUESTS)
        return cls(given.get("host_mib"), tuple(  # type: ignore[arg-type]
            g if isinstance(g, BalloonGuest) else BalloonGuest.from_dict(g) for g in guests),
            given.get("name", ""), given.get("description", ""))


# -- any kind ---------------------------------------------------------------------------
MemoryScenario = KsmScenario | TraceScenario | BalloonScenario | BalloonRunScenario
SCENARIO_TYPES: dict[str, type[KsmScenario] | type[TraceScenario] | type[BalloonScenario]
                     | type[BalloonRunScenario]] = {
    "ksm": KsmScenario, "trace": TraceScenario, "balloon": BalloonScenario,
    "balloon-run": BalloonRunScenario}


def scenario_from_dict(data: Mapping[str, Any]) -> MemoryScenario:
    """The scenario of the ``kind`` the JSON form names."""
    kind = data.get("kind") if isinstance(data, Mapping) else None
    if not isinstance(kind, str) or kind not in SCENARIO_TYPES:
        raise ScenarioError("a memory scenario's kind must be 'ksm', 'trace' or 'balloon' "
                            f"(or 'balloon-run', a real balloon), not {kind!r}")
    return SCENARIO_TYPES[kind].from_dict(data)


def load_scenario(scenario: str | Path | Mapping[str, Any] | MemoryScenario
                  ) -> MemoryScenario:
    """A scenario: a shipped one by name (``memory-ksm-ten-contents``), a JSON file, its
    JSON form as a dict, or a scenario object (returned as it is)."""
    return load_scenario_as(scenario,
                            (KsmScenario, TraceScenario, BalloonScenario, BalloonRunScenario),
                            scenario_from_dict,
                            what="memory scenario", prefixes=["memory-"])


__all__ = ["DIRECT_MAP", "KERNEL_TEXT", "KINDS", "SCENARIO_TYPES", "BalloonGuest",
           "BalloonRunScenario",
           "BalloonScenario", "KsmScenario", "MemoryScenario", "TraceScenario",
           "load_scenario", "sample_addresses", "scenario_from_dict"]

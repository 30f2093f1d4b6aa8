"""What a NAT network did with its guests: each guest's lease and each connection's source
as the outside saw it, simulated or measured, and how the two differ.

Examples
--------
>>> from kvmlab.network.natmodel import simulate_nat
>>> r = simulate_nat("nat-default-network")
>>> r.leases["vm1"], compare_nat(r, r).agrees, compare_nat(r, r).max_error
('192.168.122.27', True, 0.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kvmlab.data import load_recorded
from kvmlab.errors import ScenarioError
from kvmlab.lab import MEASURED, SOURCES, Comparison, check_pair
from kvmlab.network.natscenario import NatScenario
from kvmlab.network.virtnet import NAT_PORTS

__all__ = ["NatComparison", "NatResult", "Translation", "compare_nat", "recorded_nat"]


@dataclass(frozen=True)
class Translation:
    """One connection after the NAT: the guest's source and what the outside saw.

    ``kept`` says whether the source port survived; when it did not, the port the
    kernel picked is random (a simulated result then holds the model's stand-in).
    """

    guest: str
    src: str
    sport: int
    dport: int
    out_ip: str
    out_port: int

    @property
    def kept(self) -> bool:
        return self.out_port == self.sport


@dataclass(frozen=True)
class NatResult:
    """Leases and translated sources of a :class:`NatScenario`, from the model or a kernel.

    Attributes
    ----------
    scenario : NatScenario
    source : str
        ``'simulated'`` or ``'measured'``.
    leases : dict
        Guest name to the address it got.
    translations : list of Translation
        One per connection, in the scenario's order.
    lease_file : list of str
        dnsmasq's leases (``MAC IP`` per lease, sorted): the real file, or the model's.
    steps : list of str
        How each lease and translation came about (the model), or what the kernel showed.
    """

    scenario: NatScenario
    source: str
    leases: dict[str, str]
    translations: list[Translation]
    lease_file: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ScenarioError(f"a result's source is one of {', '.join(SOURCES)}, not "
                                f"{self.source!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "leases": dict(self.leases),
                "translations": [{"guest": t.guest, "src": t.src, "sport": t.sport,
                                  "dport": t.dport, "out_ip": t.out_ip,
                                  "out_port": t.out_port} for t in self.translations],
                "lease_file": list(self.lease_file), "steps": list(self.steps),
                "scenario": self.scenario.to_dict(), "provenance": self.provenance}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NatResult:
        """A result back from its JSON form (a recording)."""
        try:
            scenario = NatScenario.from_dict(data["scenario"])
            return cls(scenario, data["source"], dict(data["leases"]),
                       [Translation(**t) for t in data["translations"]],
                       list(data.get("lease_file", [])), list(data.get("steps", [])),
                       dict(data.get("provenance", {})))
        except (KeyError, TypeError) as exc:
            raise ScenarioError(f"not a NAT result: {exc}") from None


def recorded_nat(name: str) -> NatResult:
    """A recorded real run of a NAT scenario (``data/recorded/NAME.json``)."""
    result = NatResult.from_dict(load_recorded(name))
    if result.source != MEASURED:
        raise ScenarioError(f"recording {name!r} is not a measured run")
    return result


@dataclass(frozen=True)
class NatComparison(Comparison):
    """Lease by lease and connection by connection: the model against the kernel.

    A translated source agrees when its address is the same and its port is what the
    model can predict: the guest's own port when the model keeps it, else *another*
    port in libvirt's range 1024-65535 (the kernel picks that one from a random offset).
    :attr:`max_error` counts the guests and connections that differ.

    Examples
    --------
    >>> from dataclasses import replace
    >>> from kvmlab.network.natmodel import simulate_nat
    >>> r = simulate_nat("nat-default-network")
    >>> moved = [replace(t, out_port=t.out_port + 1) if not t.kept else t
    ...          for t in r.translations]
    >>> compare_nat(r, replace(r, source="measured", translations=moved)).agrees
    True
    >>> c = compare_nat(r, replace(r, source="measured", leases={**r.leases, "vm1": "x"}))
    >>> c.agrees, c.max_error, c.lease_differences
    (False, 1.0, [('vm1', '192.168.122.27', 'x')])
    """

    simulated: NatResult
    measured: NatResult

    @property
    def lease_differences(self) -> list[tuple[str, str | None, str | None]]:
        """(guest, simulated address, real address) where they differ."""
        a, b = self.simulated.leases, self.measured.leases
        return [(g.name, a.get(g.name), b.get(g.name)) for g in self.simulated.scenario.guests
                if a.get(g.name) != b.get(g.name)]

    @staticmethod
    def _agree(model: Translation, real: Translation) -> bool:
        if (model.guest, model.src, model.sport, model.dport, model.out_ip) != (
                real.guest, real.src, real.sport, real.dport, real.out_ip):
            return False
        if model.kept:
            return real.kept
        low, high = NAT_PORTS
        return not real.kept and low <= real.out_port <= high

    @property
    def translation_differences(self) -> list[tuple[int, Translation, Translation | None]]:
        """(connection, simulated, real) where they differ."""
        real = list(self.measured.translations)
        real += [None] * (len(self.simulated.translations) - len(real))
        return [(i, m, r) for i, (m, r) in enumerate(zip(self.simulated.translations, real,
                                                         strict=False))
                if r is None or not self._agree(m, r)]

    @property
    def agrees(self) -> bool:
        return not self.lease_differences and not self.translation_differences

    @property
    def max_error(self) -> float:
        """How many guests' leases and connections' translations differ (0.0: none)."""
        return float(len(self.lease_differences) + len(self.translation_differences))

    def table(self) -> str:
        """Guest by guest the leases, then connection by connection the outside's view."""
        rows = [f"{'guest':<8} {'MAC':<17}  {'simulated':<16} {'real':<16}"]
        for g in self.simulated.scenario.guests:
            a = self.simulated.leases.get(g.name, "-")
            b = self.measured.leases.get(g.name, "-")
            rows.append(f"{g.name:<8} {g.mac:<17}  {a:<16} {b:<16}"
                        + ("" if a == b else "  <- differs"))
        rows.append(f"{'conn':>4}  {'from':<24} {'simulated outside view':<24} "
                    f"{'real outside view':<24}")
        bad = {i for i, _m, _r in self.translation_differences}
        real = list(self.measured.translations)
        for i, m in enumerate(self.simulated.translations):
            r = real[i] if i < len(real) else None
            shown = "-" if r is None else f"{r.out_ip}:{r.out_port}"
            model = f"{m.out_ip}:{m.sport if m.kept else 'another port'}"
            rows.append(f"{i:>4}  {m.guest + ' ' + m.src + ':' + str(m.sport):<24} "
                        f"{model:<24} {shown:<24}" + ("  <- differs" if i in bad else ""))
        return "\n".join(rows)

    def plot(self, ax: Any = None) -> Any:
        """One mark per lease and per connection: green where the two agree, red not."""
        import matplotlib.pyplot as plt

        if ax is None:
            _fig, ax = plt.subplots(figsize=(7, 2.5))
        names = [g.name for g in self.simulated.scenario.guests]
        bad_leases = {g for g, _a, _b in self.lease_differences}
        bad_conns = {i for i, _m, _r in self.translation_differences}
        marks = [(f"lease {n}", n not in bad_leases) for n in names]
        marks += [(f"conn {i}", i not in bad_conns)
                  for i in range(len(self.simulated.translations))]
        ax.bar(range(len(marks)), [1] * len(marks),
               color=["tab:green" if ok else "tab:red" for _l, ok in marks])
        ax.set_xticks(range(len(marks)), [label for label, _ok in marks], rotation=60,
                      ha="right")
        ax.set_yticks([])
        ax.set_title("NAT network: model against the real kernel (green: agree)")
        return ax

    def details(self) -> dict[str, Any]:
        return {"lease_differences": [{"guest": g, "simulated": a, "real": b}
                                      for g, a, b in self.lease_differences],
                "translation_differences": [
                    {"connection": i, "simulated": vars(m) | {"kept": m.kept},
                     "real": None if r is None else vars(r) | {"kept": r.kept}}
                    for i, m, r in self.translation_differences]}


def compare_nat(simulated: NatResult, measured: NatResult) -> NatComparison:
    """Leases and translated sources of two results of the same NAT scenario.

    Raises
    ------
    ScenarioError
        If either is not a NatResult, or they ran different scenarios.
    """
    check_pair(simulated, measured, NatResult)
    a, b = simulated.scenario, measured.scenario
    if (a.guests, a.connections, a.network) != (b.guests, b.connections, b.network):
        raise ScenarioError("compare takes two results of the same NAT scenario, not "
                            f"{a.name or 'one'!r} and {b.name or 'another'!r}")
    return NatComparison(simulated, measured)

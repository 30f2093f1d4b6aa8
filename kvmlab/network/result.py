"""What happened to a topology's frames, simulated or on a real kernel, and how the two differ.

Examples
--------
>>> from kvmlab.network.model import simulate
>>> t = {"hosts": [{"name": "a", "nics": ["eth0"]}, {"name": "b", "nics": ["eth0"]}],
...      "links": [["a:eth0", "b:eth0"]],
...      "frames": [{"from": "a:eth0", "dst": "ff:ff:ff:ff:ff:ff"}]}
>>> r = simulate(t)
>>> r.receivers, compare(r, r).agrees, compare(r, r).max_error
([('b:eth0',)], True, 0.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kvmlab.data import load_recorded
from kvmlab.errors import ScenarioError
from kvmlab.lab import MEASURED, SOURCES, Comparison, check_pair
from kvmlab.network.natresult import NatComparison, NatResult, compare_nat
from kvmlab.network.scenario import Topology

__all__ = ["Event", "NetworkComparison", "NetworkResult", "compare", "recorded_result"]


@dataclass(frozen=True)
class Event:
    """One step of one frame: where it was, what happened, and the tables afterwards.

    ``action`` is ``send``, ``learn``, ``move``, ``forward``, ``flood``, ``drop`` or
    ``receive``.
    """

    time_s: float
    frame: int
    where: str
    action: str
    detail: str = ""
    fdb: dict[str, dict[str, str]] = field(default_factory=dict)

    def __str__(self) -> str:
        return (f"{self.time_s:9.6f}s  frame {self.frame}  {self.where:<14} {self.action:<8}"
                f" {self.detail}").rstrip()


@dataclass(frozen=True)
class NetworkResult:
    """Which NICs received each frame, and each bridge's forwarding table at the end.

    :func:`~kvmlab.network.model.simulate` and :func:`~kvmlab.network.twin.run_on_host`
    both return one.

    Attributes
    ----------
    topology : Topology
        The scenario (also as :attr:`scenario`).
    source : str
        ``'simulated'`` (the model) or ``'measured'`` (a real kernel; its
        provenance names the kernel).
    receivers : list of tuple of str
        For frame i, the NICs (``host:nic``) it arrived at, sorted, each once (a frame
        that comes back through a hairpin port can reach a NIC twice: see the events).
    fdb : dict
        Bridge name to {MAC: port} of the addresses it had learned (and not yet
        forgotten) at the end.
    events : list of Event
        Every step (the model only).
    replies, repliers : list
        For an ARP request i, the NICs its reply reached and the NIC that answered
        (empty and None for other frames, or when nobody answered).
    tags : list of dict
        For frame i, each receiving NIC's 802.1Q tag on arrival (None: untagged).
    packets : list of dict
        For an IPv4 packet i, each receiving NIC's copy: ``"TTL 63, <source MAC> >
        <destination MAC>"`` (a router's copy has a lower TTL and new MACs).
    """

    topology: Topology
    source: str
    receivers: list[tuple[str, ...]]
    fdb: dict[str, dict[str, str]]
    events: list[Event] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    replies: list[tuple[str, ...]] = field(default_factory=list)
    repliers: list[str | None] = field(default_factory=list)
    tags: list[dict[str, int | None]] = field(default_factory=list)
    packets: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ScenarioError(f"a result's source is one of {', '.join(SOURCES)}, not "
                                f"{self.source!r}")

    @property
    def scenario(self) -> Topology:
        """The topology that was run (the lab contract's name for :attr:`topology`)."""
        return self.topology

    def to_dict(self) -> dict[str, Any]:
        out = {"source": self.source, "receivers": [list(r) for r in self.receivers],
               "fdb": self.fdb, "topology": self.topology.to_dict(),
               "provenance": self.provenance}
        if any(v is not None for t in self.tags for v in t.values()):
            out["tags"] = [dict(sorted(t.items())) for t in self.tags]
        if any(self.packets):
            out["packets"] = [dict(sorted(p.items())) for p in self.packets]
        if any(self.repliers):
            out["arp_replies"] = [{"frame": i, "from": who, "receivers": list(got)}
                                  for i, (who, got) in enumerate(zip(self.repliers,
                                                                     self.replies,
                                                                     strict=True)) if who]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkResult:
        """A result back from its JSON form (:meth:`to_dict`; a recording). The events are
        the model's and are not kept.

        Examples
        --------
        >>> from kvmlab.network.model import simulate
        >>> r = simulate("vlan-router-on-a-stick")
        >>> back = NetworkResult.from_dict(r.to_dict())
        >>> (back.receivers, back.tags, back.packets, back.repliers) == (
        ...     r.receivers, r.tags, r.packets, r.repliers)
        True
        """
        try:
            topology = Topology.from_dict(data["topology"])
            receivers = [tuple(r) for r in data["receivers"]]
            n = len(receivers)
            tags = ([dict(t) for t in data["tags"]] if "tags" in data
                    else [dict.fromkeys(r) for r in receivers])
            packets = [dict(p) for p in data.get("packets", [{} for _ in range(n)])]
            repliers: list[str | None] = [None] * n
            replies: list[tuple[str, ...]] = [()] * n
            for a in data.get("arp_replies", []):
                repliers[a["frame"]], replies[a["frame"]] = a["from"], tuple(a["receivers"])
            return cls(topology, data["source"], receivers,
                       {b: dict(t) for b, t in data["fdb"].items()},
                       provenance=dict(data.get("provenance", {})), replies=replies,
                       repliers=repliers, tags=tags, packets=packets)
        except (KeyError, TypeError, IndexError, AttributeError) as exc:
            raise ScenarioError(f"not a network result: {exc!r}") from None

    def steps(self) -> str:
        """The event list as text, one line per step."""
        return "\n".join(str(e) for e in self.events)


@dataclass(frozen=True)
class NetworkComparison(Comparison):
    """Where the model and the real kernel differ (nowhere, ideally).

    :attr:`max_error` counts the differences: the frames that reached other NICs, or
    with other tags, or whose ARP reply differs (each frame once), plus the bridges whose
    forwarding tables differ at the end. Its unit is "frames and tables"; 0.0 means the
    two sides agree in everything.

    Examples
    --------
    >>> from dataclasses import replace
    >>> from kvmlab.network.model import simulate
    >>> r = simulate("net-flood-then-learn")
    >>> other = replace(r, source="measured", receivers=[(), *r.receivers[1:]],
    ...                 tags=[{}, *r.tags[1:]], fdb={"br0": {}})
    >>> c = compare(r, other)
    >>> c.agrees, c.max_error, c.differing_frames
    (False, 2.0, [0])
    >>> list(c.to_dict())[:3]
    ['agrees', 'max_error', 'frame_differences']
    """

    simulated: NetworkResult
    measured: NetworkResult

    @property
    def frame_differences(self) -> list[tuple[int, tuple[str, ...], tuple[str, ...]]]:
        """(frame, simulated receivers, real receivers) for every frame that differs."""
        return [(i, a, b) for i, (a, b) in enumerate(zip(self.simulated.receivers,
                                                          self.measured.receivers,
                                                          strict=True)) if a != b]

    @property
    def tag_differences(self) -> list[tuple[int, dict[str, Any], dict[str, Any]]]:
        """(frame, simulated, real) tags on arrival, where they differ."""
        return [(i, a, b) for i, (a, b) in enumerate(zip(self.simulated.tags,
                                                          self.measured.tags, strict=True))
                if a != b]

    @property
    def reply_differences(self) -> list[tuple[int, Any, Any]]:
        """(frame, simulated, real) (replier, receivers) of ARP replies that differ.

        A reply that reached no NIC cannot be seen on the real kernel: it counts as
        no reply on both sides.
        """
        def seen(result: NetworkResult) -> list[tuple[str | None, tuple[str, ...]]]:
            return [(who if got else None, got)
                    for who, got in zip(result.repliers, result.replies, strict=True)]

        return [(i, x, y) for i, (x, y) in enumerate(zip(seen(self.simulated),
                                                         seen(self.measured), strict=True))
                if x != y]

    @property
    def packet_differences(self) -> list[tuple[int, dict[str, str], dict[str, str]]]:
        """(frame, simulated, real) IPv4 packet copies (TTL and MACs) where they differ."""
        n = len(self.simulated.receivers)
        a = self.simulated.packets or [{} for _ in range(n)]
        b = self.measured.packets or [{} for _ in range(n)]
        return [(i, x, y) for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]

    @property
    def fdb_differences(self) -> dict[str, tuple[dict[str, str], dict[str, str]]]:
        """Bridge name to (simulated, real) forwarding table, for the tables that differ."""
        return {b: (self.simulated.fdb.get(b, {}), self.measured.fdb.get(b, {}))
                for b in sorted(set(self.simulated.fdb) | set(self.measured.fdb))
                if self.simulated.fdb.get(b, {}) != self.measured.fdb.get(b, {})}

    @property
    def differing_frames(self) -> list[int]:
        """The frames that differ in receivers, tags on arrival or ARP reply, in order."""
        return sorted({d[0] for d in (*self.frame_differences, *self.tag_differences,
                                      *self.reply_differences, *self.packet_differences)})

    @property
    def agrees(self) -> bool:
        """True when every frame and every forwarding table is the same on both sides."""
        return (not self.frame_differences and not self.fdb_differences
                and not self.reply_differences and not self.tag_differences
                and not self.packet_differences)

    @property
    def max_error(self) -> float:
        """How many frames and forwarding tables differ (0.0: none)."""
        return float(len(self.differing_frames) + len(self.fdb_differences))

    def table(self) -> str:
        """Frame by frame, the receivers side by side, then the tables."""
        rows = [f"{'frame':>5}  {'simulated':<30} {'real kernel':<30}"]
        for i, (a, b) in enumerate(zip(self.simulated.receivers, self.measured.receivers,
                                       strict=True)):
            mark = "" if a == b else "  <- differs"
            rows.append(f"{i:>5}  {', '.join(a) or '-':<30} {', '.join(b) or '-':<30}{mark}")
        for i, a, b in self.tag_differences:
            rows.append(f"tags of frame {i}: simulated {a}; real {b}")
        for i, a, b in self.packet_differences:
            rows.append(f"packets of frame {i}: simulated {a}; real {b}")
        for i, (who_a, got_a), (who_b, got_b) in self.reply_differences:
            rows.append(f"ARP reply to frame {i}: simulated {who_a} -> {', '.join(got_a) or '-'}"
                        f"; real {who_b} -> {', '.join(got_b) or '-'}")
        for name in sorted(set(self.simulated.fdb) | set(self.measured.fdb)):
            a, b = self.simulated.fdb.get(name, {}), self.measured.fdb.get(name, {})
            rows.append(f"fdb {name}: {'same' if a == b else 'differs'}: "
                        f"simulated {a}, real {b}" if a != b else
                        f"fdb {name}: same ({len(a)} entries)")
        return "\n".join(rows)

    def plot(self, ax: Any = None) -> Any:
        """Frame by frame, a mark per aspect (receivers, tags, ARP reply): agree or differ;
        see :func:`kvmlab.network.plot.draw_comparison`."""
        from kvmlab.network.plot import draw_comparison

        return draw_comparison(self, ax)

    def details(self) -> dict[str, Any]:
        """The differences, frame by frame and table by table."""
        return {"frame_differences": [{"frame": i, "simulated": list(a), "real": list(b)}
                                      for i, a, b in self.frame_differences],
                "fdb_differences": {b: {"simulated": x, "real": y}
                                    for b, (x, y) in self.fdb_differences.items()},
                "tag_differences": [{"frame": i, "simulated": a, "real": b}
                                    for i, a, b in self.tag_differences],
                "reply_differences": [{"frame": i, "simulated": list(x), "real": list(y)}
                                      for i, x, y in self.reply_differences],
                "packet_differences": [{"frame": i, "simulated": a, "real": b}
                                       for i, a, b in self.packet_differences]}


def recorded_result(name: str) -> NetworkResult | NatResult:
    """A recorded real-kernel run (``data/recorded/NAME.json``, or the user's of that
    name): a topology's or a NAT scenario's.

    Examples
    --------
    >>> r = recorded_result("vlan-router-on-a-stick")
    >>> r.source, r.provenance["guest_kernel"].startswith("6.")
    ('measured', True)
    """
    data = load_recorded(name)
    result = (NatResult.from_dict(data) if "leases" in data
              else NetworkResult.from_dict(data))
    if result.source != MEASURED:
        raise ScenarioError(f"recording {name!r} is not a measured run")
    return result


def compare(simulated: NetworkResult | NatResult, measured: NetworkResult | NatResult
            ) -> NetworkComparison | NatComparison:
    """Frame by frame receivers, tags and ARP replies, and the final forwarding tables
    (two results of a NAT scenario: leases and translations, see
    :func:`~kvmlab.network.natresult.compare_nat`).

    Parameters
    ----------
    simulated, measured : NetworkResult
        Two results of the same topology (usually the model's and a real kernel's).

    Raises
    ------
    ScenarioError
        If either is not a NetworkResult, or they ran different topologies.

    Examples
    --------
    >>> from kvmlab.network.model import simulate
    >>> compare(simulate("net-hub"), simulate("net-arp"))
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: compare takes two results of the same topology, not ...
    """
    if isinstance(simulated, NatResult):
        return compare_nat(simulated, measured)       # type: ignore[arg-type]
    check_pair(simulated, measured, NetworkResult)
    if simulated.topology != measured.topology:
        raise ScenarioError("compare takes two results of the same topology, not "
                            f"{simulated.topology.name or 'one'!r} and "
                            f"{measured.topology.name or 'another'!r}")
    return NetworkComparison(simulated, measured)

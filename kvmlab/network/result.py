"""What happened to a topology's frames, simulated or on a real kernel, and how the two differ.

Examples
--------
>>> from kvmlab.network import simulate
>>> t = {"hosts": [{"name": "a", "nics": ["eth0"]}, {"name": "b", "nics": ["eth0"]}],
...      "links": [["a:eth0", "b:eth0"]],
...      "frames": [{"from": "a:eth0", "dst": "ff:ff:ff:ff:ff:ff"}]}
>>> r = simulate(t)
>>> r.receivers, compare(r, r).agrees
([('b:eth0',)], True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kvmlab.network.topology import Topology


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

    Attributes
    ----------
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

    def to_dict(self) -> dict[str, Any]:
        out = {"source": self.source, "receivers": [list(r) for r in self.receivers],
               "fdb": self.fdb, "topology": self.topology.to_dict(),
               "provenance": self.provenance}
        if any(v is not None for t in self.tags for v in t.values()):
            out["tags"] = [dict(sorted(t.items())) for t in self.tags]
        if any(self.repliers):
            out["arp_replies"] = [{"frame": i, "from": who, "receivers": list(got)}
                                  for i, (who, got) in enumerate(zip(self.repliers,
                                                                     self.replies,
                                                                     strict=True)) if who]
        return out

    def steps(self) -> str:
        """The event list as text, one line per step."""
        return "\n".join(str(e) for e in self.events)


@dataclass(frozen=True)
class NetworkComparison:
    """Where the model and the real kernel differ (nowhere, ideally)."""

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
    def fdb_differences(self) -> dict[str, tuple[dict[str, str], dict[str, str]]]:
        return {b: (self.simulated.fdb.get(b, {}), self.measured.fdb.get(b, {}))
                for b in sorted(set(self.simulated.fdb) | set(self.measured.fdb))
                if self.simulated.fdb.get(b, {}) != self.measured.fdb.get(b, {})}

    @property
    def agrees(self) -> bool:
        return (not self.frame_differences and not self.fdb_differences
                and not self.reply_differences and not self.tag_differences)

    def table(self) -> str:
        """Frame by frame, the receivers side by side, then the tables."""
        rows = [f"{'frame':>5}  {'simulated':<30} {'real kernel':<30}"]
        for i, (a, b) in enumerate(zip(self.simulated.receivers, self.measured.receivers,
                                       strict=True)):
            mark = "" if a == b else "  <- differs"
            rows.append(f"{i:>5}  {', '.join(a) or '-':<30} {', '.join(b) or '-':<30}{mark}")
        for i, a, b in self.tag_differences:
            rows.append(f"tags of frame {i}: simulated {a}; real {b}")
        for i, (who_a, got_a), (who_b, got_b) in self.reply_differences:
            rows.append(f"ARP reply to frame {i}: simulated {who_a} -> {', '.join(got_a) or '-'}"
                        f"; real {who_b} -> {', '.join(got_b) or '-'}")
        for name in sorted(set(self.simulated.fdb) | set(self.measured.fdb)):
            a, b = self.simulated.fdb.get(name, {}), self.measured.fdb.get(name, {})
            rows.append(f"fdb {name}: {'same' if a == b else 'differs'}: "
                        f"simulated {a}, real {b}" if a != b else
                        f"fdb {name}: same ({len(a)} entries)")
        return "\n".join(rows)

    def to_dict(self) -> dict[str, Any]:
        return {"agrees": self.agrees,
                "frame_differences": [{"frame": i, "simulated": list(a), "real": list(b)}
                                      for i, a, b in self.frame_differences],
                "fdb_differences": {b: {"simulated": x, "real": y}
                                    for b, (x, y) in self.fdb_differences.items()},
                "tag_differences": [{"frame": i, "simulated": a, "real": b}
                                    for i, a, b in self.tag_differences],
                "reply_differences": [{"frame": i, "simulated": list(x), "real": list(y)}
                                      for i, x, y in self.reply_differences]}


def compare(simulated: NetworkResult, measured: NetworkResult) -> NetworkComparison:
    """Frame by frame receivers, and the final forwarding tables."""
    return NetworkComparison(simulated, measured)

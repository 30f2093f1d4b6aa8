"""Pictures of a topology (hosts and bridges as a graph, links labelled with their
interfaces) and of a comparison between the model and a real kernel. Nothing here runs
the model: the results and domains come in ready.

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> from kvmlab.network.scenario import load_scenario
>>> ax = draw_topology(load_scenario("net-two-bridges"))
>>> sorted(t.get_text() for t in ax.texts)[:4]
['br0', 'br1', 'eth0', 'eth0']
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import matplotlib.pyplot as plt
import networkx as nx

from kvmlab.network.scenario import Topology

__all__ = ["AGREE_COLOUR", "BRIDGE_COLOUR", "DIFFER_COLOUR", "DOMAIN_COLOURS", "HOST_COLOUR",
           "RECEIVED_COLOUR", "draw_comparison", "draw_domains", "draw_topology"]

HOST_COLOUR = "tab:blue"
BRIDGE_COLOUR = "tab:orange"
RECEIVED_COLOUR = "tab:green"
AGREE_COLOUR = "tab:green"
DIFFER_COLOUR = "tab:red"


DOMAIN_COLOURS = ("tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan",
                  "tab:gray", "tab:green")


def draw_domains(topology: Topology, domains: Iterable[set[str]], ax: Any = None) -> Any:
    """Draw ``topology`` with each host coloured by its broadcast domain (hosts alone in
    theirs stay blue); the legend lists the domains.

    Parameters
    ----------
    topology : Topology
    domains : list of set of str
        Sets of NICs (``host:nic``), as :func:`kvmlab.network.model.broadcast_domains`
        finds them.
    ax : matplotlib Axes, optional

    Examples
    --------
    >>> from kvmlab.network.scenario import load_scenario
    >>> domains = [{"a1:eth0", "b1:eth0"}, {"a2:eth0", "b2:eth0"}, {"a3:eth0", "b3:eth0"}]
    >>> ax = draw_domains(load_scenario("vlan-seed-two-switches"), domains)
    >>> len(ax.get_legend().get_texts())
    3
    """
    from matplotlib.patches import Patch

    domains = [d for d in domains if len(d) > 1]
    colour = {nic.split(":")[0]: DOMAIN_COLOURS[k % len(DOMAIN_COLOURS)]
              for k, d in enumerate(domains) for nic in d}
    ax = draw_topology(topology, ax, host_colours=colour)
    ax.legend(handles=[Patch(color=DOMAIN_COLOURS[k % len(DOMAIN_COLOURS)],
                             label=", ".join(sorted(d))) for k, d in enumerate(domains)],
              title="broadcast domains", loc="best", fontsize=9, title_fontsize=9)
    return ax


def _layout(graph: Any) -> dict[Any, tuple[float, float]]:
    """Node positions: in columns by hops from the first node when the graph is connected
    (every link about as long, so the interface names on it have room), else a spring
    layout."""
    if len(graph) > 1 and nx.is_connected(graph):
        pos = nx.bfs_layout(graph, next(iter(graph)), align="vertical", scale=1.0)
        return {n: (float(x), float(y)) for n, (x, y) in pos.items()}
    return {n: (float(x), float(y)) for n, (x, y) in nx.spring_layout(graph, seed=1).items()}


def draw_topology(topology: Topology, ax: Any = None, receivers: tuple[str, ...] = (),
                  sender: str | None = None,
                  host_colours: dict[str, str] | None = None) -> Any:
    """Draw ``topology``: hosts as circles, bridges as squares, each link with the names
    of its two interfaces. NICs in ``receivers`` are drawn green, ``sender``'s host bold;
    ``host_colours`` colours hosts by name."""
    if ax is None:
        _fig, ax = plt.subplots(figsize=(8, 5.5), layout="constrained")
    g = topology.graph()
    simple = nx.Graph(g)
    pos = _layout(simple)
    got = {r.split(":")[0] for r in receivers}
    for n, (x, y) in pos.items():
        kind = g.nodes[n].get("kind")
        colour = (RECEIVED_COLOUR if n in got else (host_colours or {}).get(n) or
                  (HOST_COLOUR if kind == "host" else BRIDGE_COLOUR))
        width = 3.0 if sender and n == sender.split(":")[0] else 1.0
        # the name sits in its own box, so a long one (brvlan10) is never cut by a marker
        ax.text(x, y, n, ha="center", va="center", fontsize=10, color="white",
                fontweight="bold", zorder=5,
                bbox={"boxstyle": "circle,pad=0.5" if kind == "host" else "square,pad=0.6",
                      "fc": colour, "ec": "black", "lw": width})
    nx.draw_networkx_edges(simple, pos, ax=ax)
    for _u, _v, ends in g.edges(data="ends"):
        a, b = ends
        (xa, ya), (xb, yb) = pos[a.split(":")[0]], pos[b.split(":")[0]]
        for (x0, y0), (x1, y1), name in (((xa, ya), (xb, yb), a), ((xb, yb), (xa, ya), b)):
            ax.annotate(name.split(":")[1], (x0 + (x1 - x0) * 0.3, y0 + (y1 - y0) * 0.3),
                        fontsize=9, ha="center", va="center", zorder=4,
                        bbox={"boxstyle": "round", "fc": "white", "ec": "0.7"})
    xs, ys = [x for x, _ in pos.values()], [y for _, y in pos.values()]
    ax.set_xlim(min(xs) - 0.25, max(xs) + 0.25)
    ax.set_ylim(min(ys) - 0.2, max(ys) + 0.2)
    ax.set_title(topology.name or "topology", loc="left", fontsize=10)
    ax.set_axis_off()
    return ax


def draw_comparison(comparison: Any, ax: Any = None) -> Any:
    """Frame by frame, one mark per aspect (receivers, tags on arrival, ARP reply): a green
    dot where the model and the kernel agree, a red cross where they differ; the title
    counts the frames and names the forwarding tables that differ.

    Parameters
    ----------
    comparison : NetworkComparison
        From :func:`kvmlab.network.result.compare`.
    ax : matplotlib Axes, optional

    Examples
    --------
    >>> from kvmlab.network.model import simulate
    >>> from kvmlab.network.result import compare
    >>> r = simulate("net-flood-then-learn")
    >>> ax = draw_comparison(compare(r, r))
    >>> ax.get_title(loc="left")
    'net-flood-then-learn: 0 of 3 frames differ; forwarding tables differ: none'
    """
    from matplotlib.lines import Line2D

    if ax is None:
        _fig, ax = plt.subplots(figsize=(7, 2.4), layout="constrained")
    n = len(comparison.simulated.receivers)
    rows = {"receivers": comparison.frame_differences,
            "tags on arrival": comparison.tag_differences,
            "ARP reply": comparison.reply_differences}
    for y, differences in enumerate(rows.values()):
        differ = {d[0] for d in differences}
        same = [i for i in range(n) if i not in differ]
        ax.scatter(same, [y] * len(same), marker="o", color=AGREE_COLOUR)
        ax.scatter(sorted(differ), [y] * len(differ), marker="x", s=80, color=DIFFER_COLOUR)
    ax.set_yticks(range(len(rows)), list(rows))
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlim(-0.6, max(n, 1) - 0.4)
    ax.set_xlabel("frame")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(handles=[Line2D([], [], marker="o", ls="", color=AGREE_COLOUR, label="agree"),
                       Line2D([], [], marker="x", ls="", color=DIFFER_COLOUR, label="differ")],
              loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9)
    tables = ", ".join(comparison.fdb_differences) or "none"
    name = comparison.simulated.topology.name or "topology"
    ax.set_title(f"{name}: {len(comparison.differing_frames)} of {n} frames differ; "
                 f"forwarding tables differ: {tables}", loc="left", fontsize=10)
    return ax

"""Pictures of a topology: hosts and bridges as a graph, links labelled with their interfaces.

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> from kvmlab.data import scenario_dict
>>> ax = draw_topology(Topology.from_dict(scenario_dict("net-two-bridges")))
>>> sorted(t.get_text() for t in ax.texts)[:4]
['br0', 'br1', 'eth0', 'eth0']
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import networkx as nx

from kvmlab.network.topology import Topology

HOST_COLOUR = "tab:blue"
BRIDGE_COLOUR = "tab:orange"
RECEIVED_COLOUR = "tab:green"


DOMAIN_COLOURS = ("tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan",
                  "tab:gray", "tab:green")


def draw_domains(topology: Topology, ax: Any = None) -> Any:
    """Draw ``topology`` with each host coloured by its broadcast domain (hosts alone in
    theirs stay blue); the legend lists the domains.

    Examples
    --------
    >>> from kvmlab.data import scenario_dict
    >>> ax = draw_domains(Topology.from_dict(scenario_dict("vlan-seed-two-switches")))
    >>> len(ax.get_legend().get_texts())
    3
    """
    from matplotlib.patches import Patch

    from kvmlab.network.vlan import broadcast_domains

    domains = [d for d in broadcast_domains(topology) if len(d) > 1]
    colour = {nic.split(":")[0]: DOMAIN_COLOURS[k % len(DOMAIN_COLOURS)]
              for k, d in enumerate(domains) for nic in d}
    ax = draw_topology(topology, ax, host_colours=colour)
    ax.legend(handles=[Patch(color=DOMAIN_COLOURS[k % len(DOMAIN_COLOURS)],
                             label=", ".join(sorted(d))) for k, d in enumerate(domains)],
              title="broadcast domains", loc="best", fontsize=7, title_fontsize=8)
    return ax


def draw_topology(topology: Topology, ax: Any = None, receivers: tuple[str, ...] = (),
                  sender: str | None = None,
                  host_colours: dict[str, str] | None = None) -> Any:
    """Draw ``topology``: hosts as circles, bridges as squares, each link with the names
    of its two interfaces. NICs in ``receivers`` are drawn green, ``sender``'s host bold;
    ``host_colours`` colours hosts by name."""
    if ax is None:
        _fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    g = topology.graph()
    simple = nx.Graph(g)
    pos = nx.spring_layout(simple, seed=1)
    got = {r.split(":")[0] for r in receivers}
    for kind, shape in (("host", "o"), ("bridge", "s")):
        nodes = [n for n, k in g.nodes(data="kind") if k == kind]
        colours = [RECEIVED_COLOUR if n in got else (host_colours or {}).get(n) or
                   (HOST_COLOUR if kind == "host" else BRIDGE_COLOUR) for n in nodes]
        widths = [3.0 if sender and n == sender.split(":")[0] else 1.0 for n in nodes]
        nx.draw_networkx_nodes(g, pos, nodelist=nodes, node_shape=shape, node_color=colours,
                               node_size=900, edgecolors="black", linewidths=widths, ax=ax)
    nx.draw_networkx_edges(simple, pos, ax=ax)
    for n, (x, y) in pos.items():
        ax.text(x, y, n, ha="center", va="center", fontsize=8, color="white",
                fontweight="bold")
    for _u, _v, ends in g.edges(data="ends"):
        a, b = ends
        (xa, ya), (xb, yb) = pos[a.split(":")[0]], pos[b.split(":")[0]]
        for (x0, y0), (x1, y1), name in (((xa, ya), (xb, yb), a), ((xb, yb), (xa, ya), b)):
            ax.annotate(name.split(":")[1], (x0 + (x1 - x0) * 0.28, y0 + (y1 - y0) * 0.28),
                        fontsize=7, ha="center", va="center",
                        bbox={"boxstyle": "round", "fc": "white", "ec": "0.7"})
    ax.set_title(topology.name or "topology", loc="left", fontsize=10)
    ax.set_axis_off()
    return ax

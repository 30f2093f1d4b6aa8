"""Thin widgets over pure functions: step through a frame's journey event by event.

Examples
--------
>>> from kvmlab.network.model import simulate
>>> r = simulate("net-flood-then-learn")
>>> print(event_view(r, 1))
step 2 of 12 at 0.000001 s: frame 0 (vm1 to vm2: unknown, flooded)
  br0:vnet0  learn  52:54:00:00:00:0a is behind vnet0
forwarding table of br0: 52:54:00:00:00:0a -> vnet0
"""

from __future__ import annotations

import html
from typing import Any

from kvmlab.errors import ScenarioError
from kvmlab.network.frames import BROADCAST
from kvmlab.network.model import simulate
from kvmlab.network.result import NetworkResult
from kvmlab.network.scenario import Topology
from kvmlab.validate import is_whole, list_of, mapping, whole_number
from kvmlab.validate import text as text_value

UNKNOWN_MAC = "52:54:00:ee:ee:ee"


def one_bridge(guests: int = 3, ageing_s: float = 300, hairpin: bool = False,
               flood: bool = True, learning: bool = True) -> Topology:
    """``guests`` guests on one bridge ``br0`` (ports vnet0, vnet1, ...), all ports alike.

    Examples
    --------
    >>> t = one_bridge(2)
    >>> [p.name for p in t.bridges[0].ports], t.nic("vm1:eth0").mac
    (['vnet0', 'vnet1'], '52:54:00:00:00:01')
    """
    if not is_whole(guests) or not 1 <= guests <= 8:
        raise ScenarioError(f"between 1 and 8 guests, not {guests!r}")
    flags = {"hairpin": hairpin, "flood": flood, "learning": learning}
    return Topology.from_dict({
        "name": "one bridge",
        "hosts": [{"name": f"vm{i + 1}", "nics": [{"name": "eth0",
                                                   "mac": f"52:54:00:00:00:{i + 1:02x}"}]}
                  for i in range(guests)],
        "bridges": [{"name": "br0", "ageing_s": ageing_s,
                     "ports": [{"name": f"vnet{i}", **flags} for i in range(guests)]}],
        "links": [[f"vm{i + 1}:eth0", f"br0:vnet{i}"] for i in range(guests)]})


PORT_MODES = {"access 10": {"access": 10}, "access 20": {"access": 20},
              "trunk 10,20": {"trunk": [10, 20]},
              "trunk 20, native 10": {"trunk": [20], "native": 10}}
"""The port settings the VLAN switch widget offers, in switch words."""


def vlan_switch(modes: list[str]) -> Topology:
    """One VLAN-aware switch ``sw`` with a host per port, each port set by a :data:`PORT_MODES`
    name.

    Examples
    --------
    >>> t = vlan_switch(["access 10", "trunk 10,20", "access 20"])
    >>> simulate(send_frame(t, "vm1", "broadcast")).tags
    [{'vm2:eth0': 10}]
    """
    modes = list_of(modes, "modes (one per port)")
    if not 1 <= len(modes) <= 8:
        raise ScenarioError(f"between 1 and 8 ports, not {len(modes)}")
    for mode in modes:
        if text_value(mode, "a port mode") not in PORT_MODES:
            raise ScenarioError(f"port mode {mode!r} is not one of {sorted(PORT_MODES)}")
    return Topology.from_dict({
        "name": "one VLAN-aware switch",
        "hosts": [{"name": f"vm{i + 1}", "nics": [{"name": "eth0",
                                                   "mac": f"52:54:00:00:00:{i + 1:02x}"}]}
                  for i in range(len(modes))],
        "bridges": [{"name": "sw", "vlan_filtering": True,
                     "ports": [{"name": f"p{i + 1}", **PORT_MODES[m]}
                               for i, m in enumerate(modes)]}],
        "links": [[f"vm{i + 1}:eth0", f"sw:p{i + 1}"] for i in range(len(modes))]})


def send_frame(topology: Topology, sender: str, to: str, vlan: int | None = None) -> Topology:
    """``topology`` with one more frame from host ``sender``'s eth0, 0.1 s after the last.

    ``to`` is a host's name, ``"broadcast"`` or ``"unknown"`` (a MAC nobody has); ``vlan``
    tags the frame (0: a priority tag).

    Examples
    --------
    >>> t = send_frame(send_frame(one_bridge(3), "vm1", "vm2"), "vm2", "vm1")
    >>> simulate(t).receivers
    [('vm2:eth0', 'vm3:eth0'), ('vm1:eth0',)]
    >>> send_frame(t, "vm1", "vm2", vlan="10")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: vlan must be a whole number, not '10'
    """
    topology = _topology(topology)
    text_value(sender, "sender", empty=False)
    text_value(to, "to", empty=False)
    if vlan is not None:
        whole_number(vlan, "vlan")
    if to == "broadcast":
        dst = BROADCAST
    elif to == "unknown":
        dst = UNKNOWN_MAC
    else:
        dst = topology.nic(f"{to}:eth0").mac
    frames = [f.to_dict() for f in topology.frames]
    tagged = "" if vlan is None else f", tagged {vlan}"
    frames.append({"from": f"{sender}:eth0", "dst": dst, "label": f"{sender} to {to}{tagged}"}
                  | ({} if vlan is None else {"vlan": vlan}))
    return topology.with_frames(frames)


def outcome(topology: Topology) -> str:
    """What happened to the last frame, and every bridge's table, in words."""
    if not _topology(topology).frames:
        return "no frame sent yet"
    r = simulate(topology)
    last = len(topology.frames) - 1
    got = [nic + ("" if tag is None else f" (tagged {tag})") for nic, tag in
           sorted(r.tags[-1].items())]
    lines = [f"frame {last} ({topology.frames[-1].label}): received by "
             f"{', '.join(got) or 'nobody'}"]
    lines += [f"  {e.where}  {e.action}  {e.detail}".rstrip() for e in r.events
              if e.frame == last and e.action not in ("send", "receive")]
    lines += table_lines(r.fdb)
    return "\n".join(lines)


def table_lines(fdb: dict[str, dict[str, str]]) -> list[str]:
    """Each bridge's forwarding table on a line: ``forwarding table of br0: MAC -> port``.

    Examples
    --------
    >>> table_lines({"br0": {"52:54:00:00:00:01": "vnet0"}})
    ['forwarding table of br0: 52:54:00:00:00:01 -> vnet0']
    >>> table_lines({"br0": ["vnet0"]})
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: the table of 'br0' must be a JSON object (a dict), not a list: ...
    """
    tables = {bridge: mapping(table, f"the table of {bridge!r}")
              for bridge, table in mapping(fdb, "fdb (bridge to its table)").items()}
    return [f"forwarding table of {bridge}: "
            + (", ".join(f"{mac} -> {port}" for mac, port in table.items()) or "empty")
            for bridge, table in tables.items()]


def event_view(result: NetworkResult, k: int) -> str:
    """Event ``k`` of ``result`` in words, with every bridge's table after it."""
    if not isinstance(result, NetworkResult):
        raise ScenarioError(f"a network result (from simulate) is needed, not "
                            f"{type(result).__name__}")
    if not is_whole(k) or not 0 <= k < len(result.events):
        raise ScenarioError(f"step {k} does not exist: there are {len(result.events)} "
                            "steps, numbered from 0")
    e = result.events[k]
    label = result.topology.frames[e.frame].label
    lines = [f"step {k + 1} of {len(result.events)} at {e.time_s:.6f} s: frame {e.frame}"
             + (f" ({label})" if label else ""),
             f"  {e.where}  {e.action}  {e.detail}".rstrip()]
    lines += table_lines(e.fdb)
    return "\n".join(lines)


def stepper(result: NetworkResult) -> Any:
    """A slider over the events of ``result``; each position shows :func:`event_view`."""
    import ipywidgets as w

    slider = w.IntSlider(value=0, min=0, max=max(0, len(result.events) - 1),
                         description="step", continuous_update=False)
    text = w.HTML()

    def show(change: Any = None) -> None:
        text.value = _pre(event_view(result, slider.value))

    slider.observe(show, names="value")
    show()
    return w.VBox([slider, text])


def _pre(shown: str) -> str:
    return f"<pre>{html.escape(shown)}</pre>"


def _topology(topology: Any) -> Topology:
    if not isinstance(topology, Topology):
        raise ScenarioError(f"a Topology (from one_bridge, vlan_switch or load_scenario) is "
                            f"needed, not {type(topology).__name__}")
    return topology


def draw_playground(fig: Any, topology: Topology) -> str:
    """The playground's view of ``topology``: drawn into ``fig`` (cleared first), the
    receivers of its last frame green and its sender bold; :func:`outcome` as text."""
    from kvmlab.network.plot import draw_topology

    t = _topology(topology)
    got = simulate(t).receivers[-1] if t.frames else ()
    fig.clear()
    draw_topology(t, ax=fig.add_subplot(), receivers=got,
                  sender=t.frames[-1].sender if t.frames else None)
    return outcome(t)


def playground(guests: int = 3) -> Any:
    """Pick a sender and a destination, press send, see who got it and what br0 learned;
    the flags apply to every port (changing them starts again)."""
    import ipywidgets as w

    from kvmlab.explorer import View

    names = [f"vm{i + 1}" for i in range(guests)]
    sender = w.Dropdown(options=names, description="from")
    to = w.Dropdown(options=[*names, "broadcast", "unknown"], value=names[-1],
                    description="to")
    ageing = w.Dropdown(options=[("300 s", 300), ("0 s (a hub)", 0)], description="ageing")
    hairpin = w.Checkbox(description="hairpin")
    flood = w.Checkbox(value=True, description="flood unknown")
    send, reset = w.Button(description="send"), w.Button(description="start again")
    picture = w.Image(format="png", layout=w.Layout(max_width="100%", height="auto"))
    text = w.HTML()
    view = View(draw_playground, figsize=(7, 4.5))
    state = {"t": one_bridge(guests)}

    def draw() -> None:
        png, _above, _below = view.update(topology=state["t"])
        text.value = _pre(outcome(state["t"]))
        picture.value = png

    def restart(_change: Any = None) -> None:
        state["t"] = one_bridge(guests, ageing.value, hairpin.value, flood.value)
        draw()

    def on_send(_button: Any) -> None:
        state["t"] = send_frame(state["t"], sender.value, to.value)
        draw()

    send.on_click(on_send)
    reset.on_click(restart)
    for control in (ageing, hairpin, flood):
        control.observe(restart, names="value")
    draw()
    return w.VBox([w.HBox([sender, to, send, reset]), w.HBox([ageing, hairpin, flood]), text,
                   picture])


def vlan_playground(ports: int = 3) -> Any:
    """A VLAN-aware switch: set each port (access or trunk), pick a sender, a destination and a
    tag, press send, and read who got the frame and with which tag."""
    import ipywidgets as w

    names = [f"vm{i + 1}" for i in range(ports)]
    modes = [w.Dropdown(options=list(PORT_MODES), value=list(PORT_MODES)[i % 2],
                        description=f"p{i + 1}", layout=w.Layout(width="240px"))
             for i in range(ports)]
    sender = w.Dropdown(options=names, description="from")
    to = w.Dropdown(options=[*names, "broadcast", "unknown"], value="broadcast",
                    description="to")
    tag = w.Dropdown(options=[("untagged", None), ("priority (0)", 0), ("10", 10), ("20", 20)],
                     description="tag")
    send = w.Button(description="send")
    text = w.HTML()
    state = {"t": vlan_switch([m.value for m in modes])}

    def restart(_change: Any = None) -> None:
        state["t"] = vlan_switch([m.value for m in modes])
        text.value = _pre(outcome(state["t"]))

    def on_send(_button: Any) -> None:
        state["t"] = send_frame(state["t"], sender.value, to.value, tag.value)
        text.value = _pre(outcome(state["t"]))

    send.on_click(on_send)
    for m in modes:
        m.observe(restart, names="value")
    restart()
    return w.VBox([w.HBox(modes), w.HBox([sender, to, tag, send]), text])

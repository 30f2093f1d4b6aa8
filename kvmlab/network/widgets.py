"""Thin widgets over pure functions: step through a frame's journey event by event.

Examples
--------
>>> from kvmlab.data import scenario_dict
>>> from kvmlab.network import simulate
>>> r = simulate(scenario_dict("net-flood-then-learn"))
>>> print(event_view(r, 1))
step 2 of 12 at 0.000001 s: frame 0 (vm1 to vm2: unknown, flooded)
  br0:vnet0  learn  52:54:00:00:00:0a is behind vnet0
forwarding table of br0: 52:54:00:00:00:0a -> vnet0
"""

from __future__ import annotations

from typing import Any

from kvmlab.errors import ScenarioError
from kvmlab.network.result import NetworkResult


def event_view(result: NetworkResult, k: int) -> str:
    """Event ``k`` of ``result`` in words, with every bridge's table after it."""
    if not 0 <= k < len(result.events):
        raise ScenarioError(f"step {k} does not exist: there are {len(result.events)} "
                            "steps, numbered from 0")
    e = result.events[k]
    label = result.topology.frames[e.frame].label
    lines = [f"step {k + 1} of {len(result.events)} at {e.time_s:.6f} s: frame {e.frame}"
             + (f" ({label})" if label else ""),
             f"  {e.where}  {e.action}  {e.detail}".rstrip()]
    for bridge, table in e.fdb.items():
        entries = ", ".join(f"{mac} -> {port}" for mac, port in table.items()) or "empty"
        lines.append(f"forwarding table of {bridge}: {entries}")
    return "\n".join(lines)


def stepper(result: NetworkResult) -> Any:  # pragma: no cover - needs a notebook front end
    """A slider over the events of ``result``; each position shows :func:`event_view`."""
    import ipywidgets as w

    slider = w.IntSlider(value=0, min=0, max=max(0, len(result.events) - 1),
                         description="step", continuous_update=False)
    out = w.Output()

    def show(change: Any = None) -> None:
        out.clear_output(wait=True)
        with out:
            print(event_view(result, slider.value))

    slider.observe(show, names="value")
    show()
    return w.VBox([slider, out])

"""The network lab: Linux bridges as layer-2 switches, simulated frame by frame and
checked on a real kernel.

Examples
--------
>>> from kvmlab import network
>>> r = network.simulate({"hosts": [{"name": "a", "nics": ["eth0"]},
...                                 {"name": "b", "nics": ["eth0"]}],
...                       "bridges": [{"name": "br0", "ports": ["p1", "p2"]}],
...                       "links": [["a:eth0", "br0:p1"], ["b:eth0", "br0:p2"]],
...                       "frames": [{"from": "a:eth0", "dst": "ff:ff:ff:ff:ff:ff"}]})
>>> r.receivers, r.fdb
([('b:eth0',)], {'br0': {'52:54:00:00:01:01': 'p1'}})
"""

from __future__ import annotations

from kvmlab.network.model import simulate
from kvmlab.network.result import Event, NetworkComparison, NetworkResult, compare
from kvmlab.network.topology import Topology

__all__ = ["Event", "NetworkComparison", "NetworkResult", "Topology", "compare", "simulate"]

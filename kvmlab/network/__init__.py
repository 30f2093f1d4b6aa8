"""The network lab: Linux bridges as layer-2 switches, simulated frame by frame and
checked on a real kernel.

The lab's four verbs (see :mod:`kvmlab.lab`): :func:`load_scenario` gives a
:class:`Topology`, :func:`simulate` runs it through the model, :func:`run_on_host` in a
tiny guest's kernel (:func:`run_many_on_host` runs many in one guest), and
:func:`compare` says where the two differ.

A NAT scenario (``nat-default-network``: libvirt's default network with a real dnsmasq
and masquerading) goes through the same verbs and gives a :class:`NatResult`;
:func:`recorded_result` gives a recorded real run of one (or of a topology);
:func:`record_runs` records every topology scenario in one guest boot (``kvmlab network
record``) and :func:`compare_recorded` compares the model with each recording.

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
>>> t = network.load_scenario("net-flood-then-learn")
>>> c = network.compare(network.simulate(t, seed=1), network.simulate(t, seed=2))
>>> c.agrees, c.max_error
(True, 0.0)
"""

from __future__ import annotations

from kvmlab.network.model import broadcast_domains, simulate
from kvmlab.network.natresult import NatComparison, NatResult
from kvmlab.network.natscenario import NatScenario
from kvmlab.network.recordings import compare_recorded, record_runs, recorded_runs
from kvmlab.network.result import (
    Event,
    NetworkComparison,
    NetworkResult,
    compare,
    recorded_result,
)
from kvmlab.network.scenario import Topology, load_scenario
from kvmlab.network.twin import run_many_on_host, run_on_host

__all__ = [
    "Event",
    "NatComparison",
    "NatResult",
    "NatScenario",
    "NetworkComparison",
    "NetworkResult",
    "Topology",
    "broadcast_domains",
    "compare",
    "compare_recorded",
    "load_scenario",
    "record_runs",
    "recorded_result",
    "recorded_runs",
    "run_many_on_host",
    "run_on_host",
    "simulate",
]

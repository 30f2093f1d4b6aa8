"""kvmlab: learn virtualization by simulating it and measuring it on a real host.

Every lab pairs a discrete-event model (simpy) with a live probe of a real
libvirt host, so a notebook can put the simulation next to a measurement.

Examples
--------
>>> import kvmlab
>>> kvmlab.connect().getURI() if "KVMLAB_URI" not in __import__("os").environ else "test:///default"
'test:///default'
"""

from kvmlab.errors import (
    ExperimentFailed,
    HostUnavailable,
    KvmlabError,
    ScenarioError,
    ToolMissing,
)
from kvmlab.experiments import SweepTable, probe_hosts, sweep, sweep_on_host
from kvmlab.host.connect import connect
from kvmlab.versions import show_versions

__version__ = "0.1.0"

__all__ = [
    "ExperimentFailed",
    "HostUnavailable",
    "KvmlabError",
    "ScenarioError",
    "SweepTable",
    "ToolMissing",
    "__version__",
    "connect",
    "probe_hosts",
    "show_versions",
    "sweep",
    "sweep_on_host",
]

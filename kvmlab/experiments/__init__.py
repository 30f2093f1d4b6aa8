"""Experiments: sweep a lab's model or a real host over a grid of parameters and seeds.

:func:`sweep` runs a model over a grid and several seeds, in parallel processes or on any
``concurrent.futures`` executor (a dask cluster's too), and returns a tidy
:class:`SweepTable` that plots with confidence bands in one line. :func:`sweep_on_host`
runs the same grid on a real host, one run at a time, and resumes after an interruption.
:func:`probe_hosts` asks many libvirt hosts at once, each with a bounded timeout.

Examples
--------
>>> import kvmlab
>>> t = kvmlab.sweep("cpu-overcommit", {"ratio": [1, 3], "load": 0.5, "duration_s": 2},
...                  seeds=range(3), progress=False)
>>> len(t), t.columns
(6, ['ratio', 'load', 'duration_s', 'seed', 'source', 'run_share', 'wait_share', \
'ready_pct', 'run_share_spread', 'overcommit'])
>>> ax = t.plot("ratio", "wait_share")
"""

from kvmlab.experiments.grid import check_seeds, expand, run_key
from kvmlab.experiments.hosts import HostReport, hosts_table, probe_hosts
from kvmlab.experiments.scenarios import SCENARIOS, Scenario, scenario_for
from kvmlab.experiments.store import ResultStore, read_table, recorded_sweep
from kvmlab.experiments.sweep import SerialExecutor, sweep, sweep_on_host
from kvmlab.experiments.table import SweepTable, mean_band, t_quantile

__all__ = [
    "SCENARIOS",
    "HostReport",
    "ResultStore",
    "Scenario",
    "SerialExecutor",
    "SweepTable",
    "check_seeds",
    "expand",
    "hosts_table",
    "mean_band",
    "probe_hosts",
    "read_table",
    "recorded_sweep",
    "run_key",
    "scenario_for",
    "sweep",
    "sweep_on_host",
    "t_quantile",
]

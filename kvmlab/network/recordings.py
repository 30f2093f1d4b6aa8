"""Recorded real-kernel runs of the network lab: made in one guest boot, compared in bulk.

:func:`record_runs` runs topology scenarios on a real kernel, all side by side in one tiny
guest (:func:`~kvmlab.network.twin.run_many_on_host`; a NAT scenario boots a guest of its
own), and writes each result as a recording of the scenario's own name with its provenance:
the guest's kernel, where it ran, the accelerator (``tcg`` or ``kvm``), ``recorded_at``
and whether the model agreed. This is how the shipped recordings were made
(``kvmlab network record``). :func:`recorded_runs` and :func:`compare_recorded` read them
back, so a notebook without a host still compares every scenario with a real kernel.

Examples
--------
>>> names = topology_names()
>>> "net-flood-then-learn" in names and "vlan-seed-two-switches" in names
True
>>> recording_name("vlan-seed-two-switches"), recording_name("nat-default-network")
('vlan-seed-two-switches', 'net-nat-default-network')
>>> c = compare_recorded(["net-hub"])["net-hub"]
>>> c.measured.source, c.agrees
('measured', True)
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kvmlab.data import check_name, recorded_names, save_recorded, scenario_names
from kvmlab.errors import ScenarioError
from kvmlab.host.image import GuestImage
from kvmlab.network.model import simulate
from kvmlab.network.natresult import NatComparison, NatResult
from kvmlab.network.natscenario import NatScenario
from kvmlab.network.result import NetworkComparison, NetworkResult, compare, recorded_result
from kvmlab.network.scenario import Topology, load_scenario
from kvmlab.network.twin import run_many_on_host, run_on_host
from kvmlab.progress import ProgressArg

__all__ = ["RECORDED_WITH", "TOPOLOGY_PREFIXES", "compare_recorded", "record_runs",
           "recorded_runs", "recording_name", "topology_names"]

TOPOLOGY_PREFIXES = ("net-", "vlan-")
"""Names of the lab's topology scenarios start with one of these."""

RECORDED_WITH = "kvmlab network record"
"""The ``recorded_with`` of a recording that :func:`record_runs` made."""


def topology_names() -> list[str]:
    """Every topology scenario there is (the shipped ones and the user's), ``net-`` first,
    then ``vlan-``."""
    return [n for prefix in TOPOLOGY_PREFIXES for n in scenario_names(prefix)]


def recording_name(name: str) -> str:
    """The name a run of scenario ``name`` is recorded under: its own, when it starts with
    ``net-`` or ``vlan-``, else (a NAT scenario) ``net-`` and its name, so that every
    recording of the network lab starts with ``net-`` or ``vlan-``."""
    check_name(name, "scenario")
    return name if name.startswith(TOPOLOGY_PREFIXES) else f"net-{name}"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write(name: str, data: dict[str, Any], into: str | Path | None) -> Path:
    if into is None:
        return save_recorded(name, data)
    path = Path(into) / f"{check_name(name)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def record_runs(names: Iterable[str] | None = None, *, uri: str | None = None,
                into: str | Path | None = None, progress: ProgressArg = None,
                image: GuestImage | None = None) -> dict[str, tuple[Path, bool]]:
    """Run scenarios on a real kernel and record each run under its own name.

    Every topology runs in **one** guest boot, side by side (each in its own bridges and
    namespaces); each NAT scenario boots a guest of its own. A recording is the result's
    JSON form (:meth:`~kvmlab.network.result.NetworkResult.to_dict`) with, in its
    provenance, ``recorded_at`` (UTC), ``recorded_with`` and ``model_agreed`` (does the
    model, seed 0, agree with this run?), next to the guest kernel, the host's kernel and
    the accelerator the run reports.

    Parameters
    ----------
    names : iterable of str, optional
        Scenario names (default: every topology scenario, :func:`topology_names`). Every
        name is checked before a guest boots.
    uri : str, optional
        The libvirt host (default: the local QEMU host).
    into : path, optional
        A folder to write the recordings into (default: the user's recordings, see
        :func:`kvmlab.data.save_recorded`; the shipped ones are never written).
    progress : None, bool or a tqdm-like bar
        Passed to each run.
    image : GuestImage, optional
        The guest image (default: the cached one, built if needed).

    Returns
    -------
    dict
        Scenario name to (the file written, whether the model agreed), in the order given.

    Raises
    ------
    ScenarioError
        If a name is not a scenario of the lab (before anything runs).
    HostUnavailable, ExperimentFailed
        From the runs; nothing is written then.
    """
    names = topology_names() if names is None else list(names)
    if not names:
        raise ScenarioError("nothing to record: name at least one scenario")
    if len(set(names)) != len(names):
        raise ScenarioError("each scenario is recorded once: a name is given twice")
    loaded = {n: load_scenario(check_name(n, "scenario")) for n in names}
    topologies = [n for n in names if isinstance(loaded[n], Topology)]
    results: dict[str, NetworkResult | NatResult] = {}
    if topologies:
        runs = run_many_on_host([loaded[n] for n in topologies], uri=uri, progress=progress,
                                image=image)
        results.update(zip(topologies, runs, strict=True))
    for n in names:
        if isinstance(loaded[n], NatScenario):
            results[n] = run_on_host(loaded[n], uri=uri, progress=progress, image=image)
    when = _now()
    written = {}
    for n in names:
        result = results[n]
        agrees = bool(compare(simulate(loaded[n]), result).agrees)
        data = result.to_dict()
        data["provenance"] = {**data["provenance"], "recorded_at": when,
                              "recorded_with": RECORDED_WITH, "model_agreed": agrees}
        written[n] = (_write(recording_name(n), data, into), agrees)
    return written


def recorded_runs(names: Iterable[str] | None = None) -> dict[str, NetworkResult | NatResult]:
    """The recorded real runs of scenarios ``names`` that have a recording, by scenario name.

    Parameters
    ----------
    names : iterable of str, optional
        Scenario names (default: every topology scenario, :func:`topology_names`); a name
        with no recording (under :func:`recording_name`) is left out.

    Examples
    --------
    >>> runs = recorded_runs(["net-hub", "vlan-seed-two-switches"])
    >>> sorted(runs), runs["net-hub"].provenance["accelerator"]
    (['net-hub', 'vlan-seed-two-switches'], 'tcg')
    """
    names = topology_names() if names is None else list(names)
    there = set(recorded_names())
    return {n: recorded_result(recording_name(n)) for n in names
            if recording_name(n) in there}


def compare_recorded(names: Iterable[str] | None = None, seed: int = 0
                     ) -> dict[str, NetworkComparison | NatComparison]:
    """The model (``seed``) against the recorded real run, for every scenario that has one.

    The model runs the scenario as it is now; a recording of an older version of it (a
    different topology) cannot be compared and raises ScenarioError.

    Parameters
    ----------
    names : iterable of str, optional
        Scenario names (default: every topology scenario); names with no recording are
        left out (see :func:`recorded_runs`).
    seed : int
        The model's seed.

    Examples
    --------
    >>> cs = compare_recorded()
    >>> len(cs) >= 28, all(c.agrees for c in cs.values())
    (True, True)
    """
    return {n: compare(simulate(load_scenario(n), seed=seed), real)
            for n, real in recorded_runs(names).items()}

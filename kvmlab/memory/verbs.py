"""The memory lab's verbs, as :mod:`kvmlab.lab` defines them, and where each one lives.

=================  =====================================================================
``load_scenario``  :mod:`kvmlab.memory.scenario`: a name, a path, a dict or a scenario
``simulate``       :mod:`kvmlab.memory.model`: the model, never a host
``run_on_host``    :mod:`kvmlab.memory.twin`: a tiny guest on a real local QEMU host
``compare``        here: for KSM, the model re-run with its scan cost fitted to the
                   measurement first, then :func:`kvmlab.memory.result.compare`
``recorded_result``  here: a real-host run recorded in ``data/recorded/``
=================  =====================================================================

Examples
--------
>>> measured = recorded_result("memory-trace")
>>> c = compare(simulate(measured.scenario), measured)
>>> c.agrees, c.max_error, c.by_kind()["kernel-text"]
(True, 0.0, (50, 50))
>>> ksm = recorded_result("memory-ksm-ten-contents")
>>> c = compare(simulate(ksm.scenario), ksm)
>>> c.agrees, c.fitted.scenario.scan_page_us > ksm.scenario.scan_page_us
(True, True)
"""

from __future__ import annotations

from typing import Any

from kvmlab.data import load_recorded
from kvmlab.memory.balloonrun import BalloonRunComparison, BalloonRunResult, compare_balloon_runs
from kvmlab.memory.model import fitted_run, predict_balloon_run, simulate
from kvmlab.memory.result import (
    BalloonComparison,
    KsmComparison,
    KsmResult,
    MemoryResult,
    TraceComparison,
    result_from_dict,
)
from kvmlab.memory.result import compare as compare_results
from kvmlab.memory.scenario import load_scenario
from kvmlab.memory.twin import run_on_host


def compare(simulated: MemoryResult, measured: MemoryResult
            ) -> KsmComparison | TraceComparison | BalloonComparison | BalloonRunComparison:
    """A simulated result next to a measured one of the same scenario.

    KSM: what a page scan costs is not known before the run (far more under TCG than on
    hardware), so the model is re-run with its cost per page fitted to the measured first
    full scan (:func:`kvmlab.memory.model.fit_scan_cost`), and its timing is judged
    (``comparison.fitted``). Traces: the memory layout's predictions against QEMU's
    answers. Balloons: the planned balloons against the real ones. Balloon runs: the
    model put on the measured run's start (what the guest's kernel keeps for itself is
    measured, not modelled), then each number's change judged step by step.

    Raises
    ------
    ScenarioError
        If the results are not of one kind, or not of the same scenario.
    """
    if isinstance(simulated, BalloonRunResult) or isinstance(measured, BalloonRunResult):
        compare_balloon_runs(simulated, measured)      # refuse a mismatch first
        if simulated.source == "simulated" and simulated.start != measured.start:
            simulated = predict_balloon_run(simulated.scenario, measured.start)
        return compare_balloon_runs(simulated, measured)
    fitted = None
    if isinstance(simulated, KsmResult) and isinstance(measured, KsmResult):
        compare_results(simulated, measured)           # refuse a mismatch before a re-run
        fitted = fitted_run(simulated, measured)
    return compare_results(simulated, measured, fitted=fitted)


def recorded_result(name: str) -> MemoryResult:
    """A real-host run recorded in ``data/recorded/`` (source "measured", with provenance).

    Examples
    --------
    >>> r = recorded_result("memory-ksm-ten-contents")
    >>> r.source, r.final(), r.provenance["accelerator"]
    ('measured', (10, 990), 'tcg')
    """
    data: Any = load_recorded(name)
    scenario = data.get("scenario") if isinstance(data, dict) else None
    if isinstance(scenario, dict) and scenario.get("kind") == "balloon-run":
        return BalloonRunResult.from_dict(data)
    return result_from_dict(data)


__all__ = ["compare", "load_scenario", "recorded_result", "run_on_host", "simulate"]

"""The memory lab: guest page tables (VA→PA), the hypervisor's nested tables (PA→MA), the
two-dimensional walk between them, TLBs, shadow paging, KSM and ballooning; and the same
chain traced through a live guest.

The lab's verbs (:mod:`kvmlab.lab`) take three kinds of scenario (``"kind"`` in JSON):
``"ksm"`` (same-page merging), ``"trace"`` (addresses followed from VA to MA) and
``"balloon"`` (the balloon's arithmetic for several guests) and ``"balloon-run"`` (one
tiny guest's real balloon inflated and deflated, target after target).

Examples
--------
>>> from kvmlab import memory
>>> s = memory.load_scenario("memory-ksm-ten-contents")
>>> memory.simulate(s).final()
(10, 990)
>>> c = memory.compare(memory.simulate(s), memory.recorded_result("memory-ksm-ten-contents"))
>>> c.agrees
True
"""

from kvmlab.memory.balloonrun import (
    BalloonRunComparison,
    BalloonRunResult,
    BalloonStep,
    explain_fit,
)
from kvmlab.memory.balloonscenario import BalloonRunScenario, floor_mib
from kvmlab.memory.balloontwin import run_balloon
from kvmlab.memory.machine import identity_machine, worst_case_walk
from kvmlab.memory.model import (
    balloon_plan,
    fit_scan_cost,
    predict_balloon_run,
    simulate,
    simulate_ksm,
)
from kvmlab.memory.paging import PAGE_SIZES, PageTables, Ref, Walk, nested_walk, walk
from kvmlab.memory.physmem import TablesInMemory
from kvmlab.memory.result import (
    BalloonComparison,
    BalloonResult,
    KsmComparison,
    KsmResult,
    KsmSample,
    TraceComparison,
    TraceResult,
    Translation,
)
from kvmlab.memory.scenario import (
    BalloonGuest,
    BalloonScenario,
    KsmScenario,
    TraceScenario,
    load_scenario,
)
from kvmlab.memory.twin import run_ksm, run_on_host, trace
from kvmlab.memory.verbs import compare, recorded_result

__all__ = ["PAGE_SIZES", "BalloonComparison", "BalloonGuest", "BalloonResult",
           "BalloonRunComparison", "BalloonRunResult", "BalloonRunScenario", "BalloonScenario",
           "BalloonStep", "KsmComparison", "KsmResult", "KsmSample", "KsmScenario", "PageTables",
           "Ref", "TablesInMemory", "TraceComparison", "TraceResult", "TraceScenario",
           "Translation", "Walk", "balloon_plan", "compare", "explain_fit", "fit_scan_cost",
           "floor_mib", "identity_machine", "load_scenario", "nested_walk", "predict_balloon_run",
           "recorded_result", "run_balloon", "run_ksm", "run_on_host", "simulate", "simulate_ksm",
           "trace", "walk", "worst_case_walk"]

"""Every lab keeps the contract of :mod:`kvmlab.lab`: the same verbs, results and comparisons.

For each lab: a small shipped scenario is loaded by name, simulated twice (once from its
dict form, with a bar of our own) and compared with itself; the comparison agrees with an
error of exactly 0, lays itself out as a table, draws on an Axes and says ``agrees`` and
``max_error`` first. A live test runs the same scenarios on the local QEMU host.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import matplotlib.pyplot as plt
import pytest
from matplotlib.axes import Axes

from kvmlab.errors import ScenarioError
from kvmlab.lab import LABS, MEASURED, SIMULATED, Comparison, LabResult, lab
from tests.fakes import Recorder

SMALL: dict[str, tuple[str, dict[str, Any]]] = {
    "cpu": ("cpu-pinned-unequal", {"duration_s": 2.0}),   # pinned: the same in every run
    "memory": ("memory-ksm-one-content", {}),
    "storage": ("storage-first-writes", {}),
    "network": ("net-seed-bridge", {}),
}
"""Per lab: a small shipped scenario, and what to change in it to keep the tests quick."""

VERBS = ("load_scenario", "simulate", "run_on_host", "compare")




@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def small_scenario(name: str) -> Any:
    """The lab's small scenario, loaded by name and shortened through its dict form."""
    module = lab(name)
    shipped, changes = SMALL[name]
    scenario = module.load_scenario(shipped)
    if changes:
        scenario = module.load_scenario({**scenario.to_dict(), **changes})
    return scenario


def test_every_lab_has_a_small_scenario():
    assert set(SMALL) == set(LABS)


# --------------------------------------------------------------------------- the verbs


def keyword(signature: inspect.Signature, name: str, default: Any) -> None:
    param = signature.parameters.get(name)
    assert param is not None, f"no {name}= in {signature}"
    assert param.kind is inspect.Parameter.KEYWORD_ONLY, f"{name} is not keyword-only"
    assert param.default == default, f"{name} defaults to {param.default!r}, not {default!r}"


def positional(signature: inspect.Signature) -> list[str]:
    return [p.name for p in signature.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


@pytest.mark.parametrize("name", LABS)
def test_every_lab_exports_the_four_verbs_with_the_contracts_signatures(name):
    module = lab(name)
    assert set(VERBS) <= set(module.__all__), f"kvmlab.{name}.__all__ lacks a verb"
    assert len(positional(inspect.signature(module.load_scenario))) == 1
    simulate = inspect.signature(module.simulate)
    assert positional(simulate) == ["scenario"]
    keyword(simulate, "seed", 0)
    keyword(simulate, "progress", None)
    run = inspect.signature(module.run_on_host)
    assert positional(run) == ["scenario"]
    keyword(run, "uri", None)
    keyword(run, "progress", None)
    assert positional(inspect.signature(module.compare)) == ["simulated", "measured"]
    if hasattr(module, "recorded_result"):
        assert "recorded_result" in module.__all__
        assert len(positional(inspect.signature(module.recorded_result))) == 1


# --------------------------------------------------------------------------- simulate, compare


@pytest.mark.parametrize("name", LABS)
def test_a_simulation_compared_with_itself_agrees_exactly(name):
    module = lab(name)
    scenario = small_scenario(name)
    simulated = module.simulate(scenario, seed=0)
    again = module.simulate(scenario.to_dict(), seed=0, progress=Recorder())
    assert isinstance(simulated, LabResult)
    assert type(again) is type(simulated)
    assert simulated.source == again.source == SIMULATED
    assert json.loads(json.dumps(simulated.to_dict()))["source"] == SIMULATED

    comparison = module.compare(simulated, again)
    assert isinstance(comparison, Comparison)
    assert comparison.agrees is True
    assert comparison.max_error == 0
    text = comparison.table()
    assert isinstance(text, str) and text.strip()
    assert str(comparison) == text
    assert isinstance(comparison.plot(), Axes)
    _fig, ax = plt.subplots()
    assert comparison.plot(ax=ax) is ax
    as_dict = comparison.to_dict()
    assert list(as_dict)[:2] == ["agrees", "max_error"]
    assert (as_dict["agrees"], as_dict["max_error"]) == (True, 0.0)
    json.dumps(as_dict)                     # `kvmlab LAB compare` prints it as JSON


@pytest.mark.parametrize("name", LABS)
def test_compare_refuses_what_is_not_a_pair_of_the_labs_results(name):
    module = lab(name)
    simulated = module.simulate(small_scenario(name), seed=0)
    with pytest.raises(ScenarioError, match="compare takes two"):
        module.compare(simulated, "measured")
    with pytest.raises(ScenarioError, match="compare takes two"):
        module.compare(None, simulated)


@pytest.mark.parametrize("name", [n for n in LABS if hasattr(lab(n), "recorded_result")])
def test_a_recorded_host_run_is_a_measured_result_of_the_same_type(name):
    module = lab(name)
    shipped, _changes = SMALL[name]
    recorded = module.recorded_result(shipped)
    simulated = module.simulate(recorded.scenario, seed=0)
    assert type(recorded) is type(simulated)
    assert recorded.source == MEASURED
    assert recorded.provenance, "a recording says where and when it was measured"
    comparison = module.compare(simulated, recorded)
    assert list(comparison.to_dict())[:2] == ["agrees", "max_error"]
    assert comparison.max_error >= 0


# --------------------------------------------------------------------------- a real host


RETRIES = 1
"""Runs on the host after one that disagrees. The pinned CPU scenario's 2-s run disagreed in
3 of 206 runs on a 2-pCPU TCG host (the 1-vCPU VM got 0.27, 0.34 and 0.38 instead of 0.5)
and in one CI run (a vCPU of the 2-vCPU VM got 0.44 instead of 0.25). In the two of them
read with the kernel's ``sched/debug``, the groups' loads and weights were as due (each
VM's group about 970 to 1020 on pCPU 0): the 2-vCPU VM ran beyond its weight, not with a
larger one. Its vCPU threads woke 61 to 107 times a second there, against under 12 in most runs.
That is the reweight at work (:mod:`kvmlab.cpu.repro_pinned`, the pinned-pCPU experiment:
when one VM's vCPUs sleep often and its main loop runs on the other pCPU, that VM runs
beyond its weight), though two runs with about 45 wake-ups were fair. The threads' cgroups,
CPUs, shares and wake-ups are printed. A second run that disagrees is a failure."""


def threads_seen(result: Any) -> list[str]:
    """Where each QEMU thread of a CPU run sat and what it got, for the failure message."""
    return [f"{vm} {t['role']}: {t['cgroup']} cpus={t['cpus']} run={t['run_share']} "
            f"wakes/s={t.get('wakes_per_s')}"
            for vm, ts in result.provenance.get("threads", {}).items() for t in ts]


@pytest.mark.live
@pytest.mark.alone
@pytest.mark.parametrize("name", LABS)
def test_a_run_on_the_host_is_the_same_kind_of_result_and_agrees(name, live_uri, guest_image,
                                                                  no_leftovers):
    module = lab(name)
    scenario = small_scenario(name)
    simulated = module.simulate(scenario, seed=0)
    for attempt in range(RETRIES + 1):
        bar = Recorder()
        measured = module.run_on_host(scenario, uri=live_uri, progress=bar)
        assert type(measured) is type(simulated)
        assert measured.source == MEASURED
        comparison = module.compare(simulated, measured)
        print(f"\n{name} on {live_uri}, run {attempt + 1}:\n{comparison.table()}")
        if comparison.agrees:
            break
        print("\n".join(threads_seen(measured)))
    assert comparison.agrees, comparison.to_dict()

"""Every lab's ``load_scenario`` and ``simulate`` over mutations of the shipped scenarios:
a ScenarioError naming a rule, or a valid scenario whose simulation ends with a valid
result, in little time and memory; never another exception."""

from __future__ import annotations

import json
import time
import tracemalloc
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from kvmlab import cpu, memory, network, storage
from kvmlab.errors import ScenarioError
from kvmlab.memory.scenario import KsmScenario, TraceScenario
from tests.fuzz.strategies import fuzz_settings, mutated, shipped

LABS = {"cpu": (cpu, "cpu-"), "memory": (memory, "memory-"), "storage": (storage, "storage-"),
        "network": (network, ("net-", "vlan-"))}
LOAD_PEAK_BYTES = 64 << 20
"""Loading and checking a scenario never takes more than this (tracemalloc's peak)."""
SIMULATE_PEAK_BYTES = 256 << 20


def _shipped(lab: str) -> list[Any]:
    prefixes = LABS[lab][1]
    return [d for p in ((prefixes,) if isinstance(prefixes, str) else prefixes)
            for d in shipped(p)]


def _quick(scenario: Any) -> bool:
    """Is the model's run of ``scenario`` at most about a second (to keep the suite short;
    the bounds themselves are tested in test_attacks)."""
    if isinstance(scenario, cpu.CpuScenario):
        slices = scenario.pcpus * scenario.duration_s * 1000 / scenario.slice_ms
        cycles = sum(vm.vcpus * scenario.duration_s * 1000
                     / sum(b + i for b, i in vm.segments_ms()) for vm in scenario.vms)
        return slices + cycles < 20_000
    if isinstance(scenario, KsmScenario):
        return scenario.pages_to_scan + scenario.duration_s / (
            scenario.scan_page_us / 1e6 + scenario.sleep_ms / 1000 / scenario.pages_to_scan
        ) < 50_000
    if isinstance(scenario, TraceScenario):
        return scenario.samples <= 2000
    if isinstance(scenario, storage.StorageScenario):
        from kvmlab.storage.scenario import model_units
        return model_units(scenario) < 20_000
    return True


def _strict_json(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} in JSON output")
    return json.loads(text, parse_constant=refuse)


def _load(lab: str, data: Any) -> Any:
    module = LABS[lab][0]
    tracemalloc.start()
    try:
        return module.load_scenario(data)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < LOAD_PEAK_BYTES, f"loading took {peak >> 20} MiB"


@pytest.mark.parametrize("lab", list(LABS))
@fuzz_settings(250, deadline_s=3)
@given(data=st.data())
def test_load_scenario_refuses_with_a_rule_or_loads(lab, data):
    tree = data.draw(mutated(data.draw(st.sampled_from(_shipped(lab)))))
    try:
        scenario = _load(lab, tree)
    except ScenarioError as exc:
        message = str(exc)
        assert message and "Traceback" not in message and len(message) < 2000
        event("refused")
        return
    event("loaded")
    again = LABS[lab][0].load_scenario(scenario.to_dict())      # what loads, round-trips
    assert again.to_dict() == scenario.to_dict()
    _strict_json(json.dumps(scenario.to_dict(), allow_nan=False))


@pytest.mark.parametrize("lab", list(LABS))
@fuzz_settings(60, deadline_s=10)
@given(data=st.data())
def test_what_loads_simulates_to_a_valid_result(lab, data):
    tree = data.draw(mutated(data.draw(st.sampled_from(_shipped(lab))), most=2))
    try:
        scenario = _load(lab, tree)
    except ScenarioError:
        return
    if not _quick(scenario):
        event("loaded, too long to simulate here")
        return
    event("simulated")
    module = LABS[lab][0]
    tracemalloc.start()
    started = time.monotonic()
    try:
        result = module.simulate(scenario, seed=data.draw(st.integers(0, 2**32)),
                                 progress=None)
    except ScenarioError:
        return                              # a rule only the model can see (a full image)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.monotonic() - started < 10
    assert peak < SIMULATE_PEAK_BYTES, f"the model took {peak >> 20} MiB"
    assert result.source == "simulated"
    out = _strict_json(json.dumps(result.to_dict(), allow_nan=False))
    assert isinstance(out, dict)


@pytest.mark.parametrize("lab", list(LABS))
@fuzz_settings(100, deadline_s=3)
@given(value=st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                       st.text(max_size=20), st.lists(st.integers(), max_size=3),
                       st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)))
def test_anything_but_a_scenario_is_refused(lab, value):
    try:
        _load(lab, value)
    except ScenarioError:
        return
    pytest.fail(f"{value!r} loaded as a {lab} scenario")


def test_deep_python_dicts_are_refused_not_recursed():
    deep: Any = {"virtual_size": 1 << 20}
    for _ in range(100_000):
        deep = {"virtual_size": 1 << 20, "backing": deep}
    with pytest.raises(ScenarioError, match="backing scenarios may be at most 8 deep"):
        storage.load_scenario(deep)


@pytest.mark.parametrize("lab", list(LABS))
def test_every_shipped_scenario_loads_and_round_trips(lab):
    for tree in _shipped(lab):
        scenario = LABS[lab][0].load_scenario(tree)
        assert LABS[lab][0].load_scenario(scenario.to_dict()) == scenario

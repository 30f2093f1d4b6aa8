"""The model wakes the pCPUs whose slices end at the same instant in one simpy event:
that must change nothing against one event per pCPU (the way simpy orders them)."""

from __future__ import annotations

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmlab.cpu import CpuScenario, simulate
from kvmlab.cpu import model as cpu_model
from tests.cpu.test_scenario import scenarios


class _NeverJoin(dict):
    """Open batches that never take another member: one simpy event per pCPU slice."""

    def get(self, key, default=None):
        return None


class _OneEventPerSlice(cpu_model._Env):
    def __init__(self) -> None:
        super().__init__()
        self.open_batches = _NeverJoin()


class _NeverClosed(cpu_model._Env):
    """Batches that other events at the same instant do not close (wrong: for the test)."""

    def schedule(self, event, priority=simpy.events.NORMAL, delay=0):
        simpy.Environment.schedule(self, event, priority, delay)


def _exact(result):
    return ([(v.vm, v.vcpu, v.run_s, v.wait_s, v.slices) for v in result.vcpus],
            result.timeline)


def _unbatched(scenario, env=_OneEventPerSlice, **kwargs):
    with pytest.MonkeyPatch.context() as m:
        m.setattr(cpu_model, "_Env", env)
        return simulate(scenario, **kwargs)


@settings(max_examples=40, deadline=None)
@given(scenarios(max_pcpus=5, max_vms=4), st.integers(0, 3),
       st.sampled_from(["fair", "round-robin"]), st.sampled_from([1.0, 2.5, 3.0]))
def test_batched_pcpus_decide_as_one_event_each_would(scenario, seed, scheduler, slice_ms):
    scenario = CpuScenario.from_dict({**scenario.to_dict(), "slice_ms": slice_ms})
    batched = simulate(scenario, seed=seed, scheduler=scheduler)
    assert _exact(batched) == _exact(_unbatched(scenario, seed=seed, scheduler=scheduler))


@pytest.mark.parametrize("scheduler", ["fair", "round-robin"])
def test_a_busy_host_gives_the_same_decisions_in_batches(scheduler):
    # every pCPU ends its slice at the same instants: batches of all 8
    scenario = {"pcpus": 8, "duration_s": 0.6, "vms": [
        {"name": f"vm{i}", "vcpus": 2, "shares": 512 * (1 + i % 3)} for i in range(8)]}
    batched = simulate(scenario, seed=2, scheduler=scheduler)
    assert _exact(batched) == _exact(_unbatched(scenario, seed=2, scheduler=scheduler))
    assert sum(v.slices for v in batched.vcpus) == 8 * 200


def test_another_event_at_the_same_instant_closes_a_batch():
    env = cpu_model._Env()
    env.open_batches[0.25] = [0]
    env.open_batches[0.5] = [1]
    env.timeout(0.5)
    assert env.open_batches == {0.25: [0]}


# Found by search: a workload's event falls on the instant some pCPUs' slices end,
# between them in simpy's queue, and changes what the later ones pick.
COINCIDENCES = [
    ("fair", {"pcpus": 3, "duration_s": 0.1, "slice_ms": 2.0, "vms": [
        {"name": "v0", "vcpus": 1, "load": 0.5, "period_ms": 6.0},
        {"name": "v1", "vcpus": 2, "trace": [[1.0, 2.0]]},
        {"name": "v2", "vcpus": 1, "load": 1.0, "period_ms": 8.0}]}),
    ("round-robin", {"pcpus": 3, "duration_s": 0.1, "vms": [
        {"name": "v0", "vcpus": 1, "trace": [[4.0, 3.0], [3.0, 3.0]]},
        {"name": "v1", "vcpus": 3, "load": 1.0, "period_ms": 4.0},
        {"name": "v2", "vcpus": 3, "trace": [[1.0, 2.0], [3.0, 3.0]]}]}),
]


@pytest.mark.parametrize(("scheduler", "scenario"), COINCIDENCES)
def test_an_event_between_pcpus_of_one_instant_splits_their_batch(scheduler, scenario):
    batched = simulate(scenario, seed=2, scheduler=scheduler)
    assert _exact(batched) == _exact(_unbatched(scenario, seed=2, scheduler=scheduler))
    never_closed = _unbatched(scenario, env=_NeverClosed, seed=2, scheduler=scheduler)
    assert _exact(never_closed) != _exact(batched)          # the scenario needs the rule

"""The simpy model: invariants for all scenarios, and the closed-form answers."""

import itertools
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmlab.cpu import CpuScenario, fair_shares, flat_shares, load_scenario, simulate
from kvmlab.errors import ScenarioError
from tests.cpu.test_scenario import scenarios
from tests.fakes import Recorder

EPS = 1e-9


@settings(max_examples=40, deadline=None)
@given(scenarios(), st.integers(0, 3), st.sampled_from(["fair", "round-robin"]))
def test_invariants_hold_for_every_scenario(scenario, seed, scheduler):
    r = simulate(scenario, seed=seed, scheduler=scheduler)
    d = scenario.duration_s
    for v in r.vcpus:
        assert v.run_s >= 0 and v.wait_s >= 0
        assert v.run_s + v.wait_s <= d + EPS
        wants = scenario.vm(v.vm).busy_fraction
        if wants == 1:                      # a busy loop wants the CPU all the time
            assert v.run_s + v.wait_s == pytest.approx(d, abs=1e-6)
        if wants == 0:
            assert v.run_s == v.wait_s == 0
    # the timeline accounts for every run second, respects pinning, never overlaps
    ran = defaultdict(float)
    per_pcpu = defaultdict(list)
    per_vcpu = defaultdict(list)
    for s in r.timeline:
        assert s.pcpu in scenario.vm(s.vm).allowed(s.vcpu, scenario.pcpus)
        ran[(s.vm, s.vcpu)] += s.end_s - s.start_s
        per_pcpu[s.pcpu].append((s.start_s, s.end_s))
        per_vcpu[(s.vm, s.vcpu)].append((s.start_s, s.end_s))
    for v in r.vcpus:
        assert ran[(v.vm, v.vcpu)] == pytest.approx(v.run_s, abs=1e-6)
    for spans in [*per_pcpu.values(), *per_vcpu.values()]:
        spans.sort()
        assert all(a[1] <= b[0] + EPS for a, b in itertools.pairwise(spans))
    assert 0 <= r.host_utilisation() <= 1 + EPS


@given(scenarios(loads=(1.0,)), st.integers(0, 2))
@settings(max_examples=30, deadline=None)
def test_no_pcpu_idles_while_a_busy_vcpu_could_run(scenario, seed):
    scenario = CpuScenario.from_dict({**scenario.to_dict(), "vms": [
        {k: v for k, v in vm.to_dict().items() if k != "pin"} for vm in scenario.vms]})
    r = simulate(scenario, seed=seed)
    expected = min(1.0, scenario.total_vcpus / scenario.pcpus)
    assert r.host_utilisation() == pytest.approx(expected, abs=1e-3)


@settings(max_examples=30, deadline=None)
@given(scenarios(loads=(1.0,)), st.integers(0, 2))
def test_fair_scheduler_gives_the_closed_form_shares(scenario, seed):
    scenario = CpuScenario.from_dict({**scenario.to_dict(), "duration_s": 3.0, "vms": [
        {k: v for k, v in vm.to_dict().items() if k != "pin"} for vm in scenario.vms]})
    fair = fair_shares(scenario)
    flat = flat_shares(scenario)
    r = simulate(scenario, seed=seed)
    rr = simulate(scenario, seed=seed, scheduler="round-robin")
    for v in r.vcpus:
        assert v.run_share == pytest.approx(fair[v.vm], abs=0.02)
    for v in rr.vcpus:
        assert v.run_share == pytest.approx(flat[v.vm], abs=0.02)


def test_the_same_seed_gives_the_same_result_and_another_may_differ():
    s = {"pcpus": 2, "duration_s": 2, "vms": [{"name": "a", "vcpus": 3, "load": 0.5},
                                              {"name": "b", "vcpus": 2, "load": 0.25}]}
    assert simulate(s, seed=5).to_dict() == simulate(s, seed=5).to_dict()
    assert simulate(s, seed=5).timeline == simulate(s, seed=5).timeline
    assert any(simulate(s, seed=k).timeline != simulate(s, seed=5).timeline for k in range(5))


def test_pinned_vms_share_their_pcpu_by_vm_first():
    r = simulate({"pcpus": 2, "duration_s": 3, "vms": [
        {"name": "vm1", "vcpus": 1, "pin": [0]}, {"name": "vm2", "vcpus": 2, "pin": [0]}]})
    assert r.vcpu("vm1", 0).run_share == pytest.approx(0.5, abs=0.01)
    assert r.vcpu("vm2", 1).run_share == pytest.approx(0.25, abs=0.01)
    assert not [s for s in r.timeline if s.pcpu == 1]          # pCPU 1 stays idle


def test_a_duty_cycle_runs_its_busy_fraction_when_alone():
    r = simulate({"pcpus": 2, "duration_s": 4, "vms": [
        {"name": "vm1", "vcpus": 2, "load": 0.3, "period_ms": 100}]})
    for v in r.vcpus:
        assert v.run_share == pytest.approx(0.3, abs=0.03)
        assert v.wait_share == pytest.approx(0.0, abs=1e-9)


def test_a_trace_is_replayed():
    r = simulate({"pcpus": 1, "duration_s": 3, "vms": [
        {"name": "vm1", "vcpus": 1, "trace": [[10, 30], [50, 10]]}]})
    assert r.vcpu("vm1", 0).run_share == pytest.approx(60 / 100, abs=0.03)




def test_progress_is_reported_up_to_done():
    bar = Recorder()
    simulate({"pcpus": 1, "duration_s": 1, "vms": [{"name": "a", "vcpus": 1}]},
             progress=bar)
    seen = bar.fractions
    assert seen and seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    assert len(seen) <= 100                 # a cheap bar: at most one step per percent


def test_the_seed_is_a_keyword():
    with pytest.raises(TypeError):
        simulate({"pcpus": 1, "duration_s": 1, "vms": [{"name": "a", "vcpus": 1}]}, 3)


def test_an_unknown_scheduler_names_the_choices():
    with pytest.raises(ScenarioError, match="not one of"):
        simulate({"pcpus": 1, "duration_s": 1, "vms": [{"name": "a", "vcpus": 1}]},
                 scheduler="lottery")


@settings(max_examples=40, deadline=None)
@given(scenarios(loads=(1.0,)), st.integers(0, 2), st.sampled_from(["fair", "round-robin"]))
def test_pinned_busy_vcpus_keep_every_reachable_pcpu_busy(scenario, seed, scheduler):
    """With busy vCPUs, the host is as busy as the best assignment of vCPUs to the pCPUs
    they may use allows (a maximum flow), also with pinning: no pCPU idles while a
    waiting vCPU could run there."""
    import networkx as nx

    graph = nx.DiGraph()
    for vm in scenario.vms:
        for i in range(vm.vcpus):
            graph.add_edge("vcpus", (vm.name, i), capacity=1)
            for p in vm.allowed(i, scenario.pcpus):
                graph.add_edge((vm.name, i), ("pcpu", p), capacity=1)
    for p in range(scenario.pcpus):
        graph.add_edge(("pcpu", p), "pcpus", capacity=1)
    best = nx.maximum_flow_value(graph, "vcpus", "pcpus") / scenario.pcpus
    r = simulate(scenario.with_duration(1.0), seed=seed, scheduler=scheduler)
    assert r.host_utilisation() == pytest.approx(best, abs=0.01)


def _busy_s(result, pcpu):
    return sum(s.end_s - s.start_s for s in result.timeline if s.pcpu == pcpu)


@pytest.mark.parametrize("seed", [0, 1])
def test_an_unpinned_vcpu_takes_the_pcpu_only_it_may_use(seed):
    # Found by hypothesis: vm2's vCPU kept taking pCPU 0 or 1 from vm1, pCPU 2 idle. By
    # weight vm2 is owed 2/3 of the host, 2 pCPUs, but its one vCPU can use only one;
    # vm1 is owed the rest, which its 2 vCPUs, pinned to pCPUs 0 and 1, fill: every vCPU
    # runs all the time and every pCPU is busy.
    r = simulate({"pcpus": 3, "duration_s": 1, "vms": [
        {"name": "vm1", "vcpus": 2, "pin": [0, 1], "shares": 256},
        {"name": "vm2", "vcpus": 1, "shares": 512}]}, seed=seed)
    assert r.host_utilisation() == pytest.approx(1.0, abs=1e-9)
    assert [_busy_s(r, p) for p in range(3)] == pytest.approx([1.0] * 3, abs=1e-9)
    assert [v.run_share for v in r.vcpus] == pytest.approx([1.0, 1.0, 1.0], abs=0.02)


def test_a_pinned_vm_beside_a_free_one_keeps_both_pcpus_busy():
    # equal shares: one pCPU per VM, so the pinned vCPU gets pCPU 0 and the free VM's
    # two vCPUs share pCPU 1
    r = simulate(load_scenario("cpu-pinned-beside-free"), seed=0)
    d = r.duration_s
    assert [_busy_s(r, p) for p in range(2)] == pytest.approx([d, d], abs=1e-6)
    assert [v.run_share for v in r.vcpus] == pytest.approx([1.0, 0.5, 0.5], abs=0.02)


def test_a_vm_that_wakes_up_joins_at_the_pace_of_its_own_pcpu():
    # 'solo' runs alone on pCPU 1; it must not push the half-busy 's' behind on pCPU 0
    r = simulate({"pcpus": 2, "duration_s": 3, "vms": [
        {"name": "solo", "vcpus": 1, "pin": [1]}, {"name": "x", "vcpus": 1, "pin": [0]},
        {"name": "s", "vcpus": 1, "pin": [0], "load": 0.5}]})
    assert r.vcpu("s", 0).run_share == pytest.approx(0.25, abs=0.02)
    assert r.vcpu("x", 0).run_share == pytest.approx(0.75, abs=0.02)

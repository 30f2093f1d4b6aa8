"""The ``linux`` CPU model (kvmlab.cpu.linux): rules that hold for any scenario and seed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmlab.cpu.agreement import per_vm
from kvmlab.cpu.linux import Kernel, simulate_linux
from kvmlab.cpu.scenario import CpuScenario
from kvmlab.errors import ScenarioError

FIXED = Kernel(reweight_places=False)


def busy(pcpus: int, vcpus: list[int], **extra) -> CpuScenario:
    return CpuScenario.from_dict({"pcpus": pcpus, "duration_s": 1, "vms": [
        {"name": f"vm{i}", "vcpus": n, **extra} for i, n in enumerate(vcpus)]})


scenarios = st.builds(
    busy, st.integers(1, 3), st.lists(st.integers(1, 3), min_size=1, max_size=4))


@settings(max_examples=15, deadline=None)
@given(scenarios, st.integers(0, 2**16), st.sampled_from(["nested", "flat", "none"]),
       st.booleans())
def test_no_cpu_runs_more_than_all_of_the_time(scenario, seed, layout, places):
    r = simulate_linux(scenario, seed=seed, layout=layout, warmup_s=0.2,
                       kernel=Kernel(reweight_places=places))
    assert sum(v.run_share for v in r.vcpus) <= scenario.pcpus + 1e-6
    for v in r.vcpus:
        assert v.run_share >= 0 and v.wait_share >= 0
        assert v.run_share + v.wait_share <= 1 + 1e-6
    # busy vCPUs only sleep for QEMU's short lock waits
    assert all(v.run_share + v.wait_share > 0.95 for v in r.vcpus)
    for t in (t for threads in r.provenance["threads"].values() for t in threads):
        assert t["migrations_per_s"] >= 0
        if scenario.pcpus == 1:             # one pCPU: nowhere to move to
            assert t["migrations_per_s"] == 0, t


@settings(max_examples=10, deadline=None)
@given(scenarios, st.integers(0, 2**16))
def test_the_same_seed_gives_the_same_result(scenario, seed):
    a = simulate_linux(scenario, seed=seed, warmup_s=0.1)
    b = simulate_linux(scenario, seed=seed, warmup_s=0.1)
    assert a.vcpus == b.vcpus


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(0, 2**16))
def test_without_cgroups_busy_threads_share_fairly(pcpus, per_cpu, seed):
    """QEMU started by hand: no groups, no reweights, every thread gets pcpus/threads."""
    n = pcpus * per_cpu + 1
    # 5 s: a VM whose main loop sits on another pCPU than its vCPU loses a little to the
    # big lock until the balancer moves one of them; over 2 s that can be 0.1
    r = simulate_linux(busy(pcpus, [1] * n).with_duration(5), seed=seed, layout="none",
                       warmup_s=0.5)
    assert r.provenance["reweights_per_s"] == 0
    for v in r.vcpus:          # the balancer rotates the odd thread every few balances
        assert v.run_share == pytest.approx(pcpus / n, abs=0.08)


def test_the_corrected_kernel_shares_three_vms_fairly_and_the_buggy_one_does_not():
    s = busy(2, [2, 2, 2])
    spreads = {}
    for name, kernel in (("buggy", Kernel()), ("fixed", FIXED)):
        per_seed = []
        for seed in range(6):
            shares = per_vm(simulate_linux(s.with_duration(2), seed=seed, kernel=kernel))
            per_seed.append(max(shares.values()) - min(shares.values()))
        spreads[name] = sum(per_seed) / len(per_seed)
    assert spreads["fixed"] < 0.06                 # 0.04 (0.00 to 0.05 per seed)
    assert spreads["buggy"] > 0.2                  # 0.37 (0.12 to 0.65 per seed)


def test_weights_are_honoured_on_one_pinned_pcpu():
    s = CpuScenario.from_dict({"pcpus": 2, "duration_s": 2, "vms": [
        {"name": "a", "vcpus": 1, "pin": [0], "shares": 2048},
        {"name": "b", "vcpus": 1, "pin": [0]}]})
    shares = per_vm(simulate_linux(s, seed=3))
    assert shares["a"] == pytest.approx(2 / 3, abs=0.03)
    assert shares["b"] == pytest.approx(1 / 3, abs=0.03)


def test_an_unknown_layout_names_the_valid_ones():
    with pytest.raises(ScenarioError, match="nested, flat, none"):
        simulate_linux(busy(1, [1]), layout="deep")

"""Pure parts of the CPU twin: the guest scripts and the check of a measurement window."""

from kvmlab.cpu import load_scenario
from kvmlab.cpu.scenario import CpuScenario
from kvmlab.cpu.twin import LOAD_MARKER, host_pinning, idle_busy_vcpus, workload_script


def _domstats(*shares):
    return [{"vm": vm, "vcpu": n, "runnable_share": s} for vm, n, s in shares]


def test_a_busy_vcpu_whose_thread_slept_marks_the_window_as_disturbed():
    scenario = load_scenario("cpu-seed-example")
    calm = _domstats(("vm1", 0, 0.99), ("vm1", 1, 1.0), ("vm2", 0, 0.97))
    assert idle_busy_vcpus(scenario, calm) == []
    disturbed = _domstats(("vm1", 0, 0.2), ("vm1", 1, 1.0), ("vm2", 3, 0.5))
    assert idle_busy_vcpus(scenario, disturbed) == ["vm1/0 (20%)", "vm2/3 (50%)"]


def test_a_duty_cycle_vcpu_is_expected_to_sleep():
    scenario = CpuScenario.from_dict({"pcpus": 1, "duration_s": 1, "vms": [
        {"name": "half", "vcpus": 1, "load": 0.5}, {"name": "busy", "vcpus": 1}]})
    assert idle_busy_vcpus(scenario, _domstats(("half", 0, 0.5), ("busy", 0, 0.95))) == []


def test_each_vcpu_gets_its_own_loop_pinned_inside_the_guest():
    scenario = load_scenario("cpu-seed-example")
    script = workload_script(scenario.vms[1])
    assert "seq 0 3" in script and "taskset -c $c" in script and LOAD_MARKER in script
    assert host_pinning(scenario, scenario.vms[0]) == {0: [0, 1], 1: [0, 1]}

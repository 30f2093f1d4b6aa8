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


def test_a_remote_host_gives_libvirts_counters_and_the_rest_of_the_window_is_sleep():
    from kvmlab.cpu.scenario import VmSpec
    from kvmlab.cpu.twin import remote_vcpus

    before = {"vcpu.0.time": 0, "vcpu.0.delay": 0, "vcpu.1.time": 0, "vcpu.1.delay": 0}
    after = {"vcpu.0.time": 2_000_000_000, "vcpu.0.delay": 500_000_000,
             "vcpu.1.time": 1_000_000_000, "vcpu.1.delay": 4_000_000_000}
    busy = remote_vcpus(VmSpec("vm1", 2), before, after, 4.0)
    assert [(t.run_s, t.wait_s, t.sleep_s) for t in busy] == [(2.0, 2.0, 0.0), (1.0, 3.0, 0.0)]
    half = remote_vcpus(VmSpec("vm2", 2, load=0.5), before, after, 4.0)
    assert [(t.run_s, t.wait_s, t.sleep_s) for t in half] == [(2.0, 0.5, 1.5), (1.0, 3.0, 0.0)]
    assert [t.role for t in half] == ["vcpu0", "vcpu1"]

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvmlab.cpu import CpuScenario, load_scenario
from kvmlab.data import scenario_names
from kvmlab.errors import ScenarioError


@st.composite
def scenarios(draw, max_pcpus=4, max_vms=3, max_vcpus=4, loads=(0.0, 0.25, 0.5, 1.0)):
    pcpus = draw(st.integers(1, max_pcpus))
    vms = []
    for i in range(draw(st.integers(1, max_vms))):
        vcpus = draw(st.integers(1, max_vcpus))
        vm = {"name": f"vm{i + 1}", "vcpus": vcpus,
              "shares": draw(st.sampled_from([256, 512, 1024, 2048])),
              "load": draw(st.sampled_from(loads))}
        if draw(st.booleans()):
            vm["pin"] = sorted(draw(st.sets(st.integers(0, pcpus - 1), min_size=1)))
        if draw(st.booleans()):
            vm["emulator_pin"] = sorted(draw(st.sets(st.integers(0, pcpus - 1), min_size=1)))
        vms.append(vm)
    return CpuScenario.from_dict({"pcpus": pcpus, "duration_s": 0.5, "vms": vms})


@given(scenarios())
def test_json_round_trip(scenario):
    again = CpuScenario.from_dict(json.loads(json.dumps(scenario.to_dict())))
    assert again == scenario


def test_the_documented_form_works():
    s = CpuScenario.from_dict({"pcpus": 2, "duration_s": 20, "vms": [
        {"name": "vm1", "vcpus": 2, "pin": [0], "shares": 1024, "load": 1.0}]})
    assert s.vms[0].allowed(1, 2) == (0,)


def test_emulator_pinning_holds_the_main_loop_in_the_linux_model():
    from kvmlab.cpu.linux import Kernel, QemuThreads, _LinuxHost
    s = CpuScenario.from_dict({"pcpus": 2, "duration_s": 1, "vms": [
        {"name": "vm1", "vcpus": 1, "pin": [0], "emulator_pin": [1]}]})
    assert s.vms[0].emulator_pin == (1,) and s.to_dict()["vms"][0]["emulator_pin"] == [1]
    host = _LinuxHost(s, 0, Kernel(), QemuThreads(), "nested", 0.0, False)
    (main,) = [t for t in host.threads if t.kind == "main"]
    assert main.allowed == (1,) and main.cpu == 1


def test_per_vcpu_pinning():
    s = CpuScenario.from_dict({"pcpus": 2, "duration_s": 1, "vms": [
        {"name": "vm1", "vcpus": 2, "pin": [[0], [1]]}]})
    assert [s.vms[0].allowed(i, 2) for i in range(2)] == [(0,), (1,)]


@pytest.mark.parametrize(("change", "rule"), [
    ({"pcpus": 0}, "pcpus (the number of physical CPUs) must be at least 1"),
    ({"pcpus": -2}, "must be at least 1"),
    ({"duration_s": 0}, "duration_s must be positive"),
    ({"vms": []}, "non-empty list"),
    ({"vms": [{"name": "a", "vcpus": 0}]}, "VM 'a': vcpus must be at least 1"),
    ({"vms": [{"name": "a", "vcpus": -1}]}, "VM 'a': vcpus must be at least 1"),
    ({"vms": [{"name": "a", "vcpus": 1, "pin": [2]}]}, "pins a vCPU to pCPU 2, but the host "
                                                        "has pCPUs 0-1"),
    ({"vms": [{"name": "a", "vcpus": 1, "load": 1.5}]}, "must be between 0 and 1"),
    ({"vms": [{"name": "a", "vcpus": 1, "load": -0.1}]}, "must be between 0 and 1"),
    ({"vms": [{"name": "a", "vcpus": 1, "shares": 0}]}, "shares must be a positive"),
    ({"vms": [{"name": "a", "vcpus": 1, "shares": -5}]}, "shares must be a positive"),
    ({"vms": [{"name": "a", "vcpus": 2, "pin": [[0]]}]}, "needs 2 sets"),
    ({"vms": [{"name": "a", "vcpus": 1, "emulator_pin": [2]}]},
     "pins its emulator threads to pCPU 2, but the host has pCPUs 0-1"),
    ({"vms": [{"name": "a", "vcpus": 1, "emulator_pin": [[0], [1]]}]},
     "emulator_pin is one list of pCPU numbers"),
    ({"vms": [{"name": "a", "vcpus": 1, "emulator_pin": []}]},
     "emulator_pin is one list of pCPU numbers"),
    ({"vms": [{"name": "a", "vcpus": 1, "emulator_pin": [0.5]}]}, "whole numbers"),
    ({"vms": [{"name": "a", "vcpus": 1}, {"name": "a", "vcpus": 1}]}, "unique"),
    ({"vms": [{"name": "a", "vcpus": 1, "vcpu": 2}]},
     "unknown key 'vcpu' in VM 'a'; did you mean 'vcpus'?"),
    ({"cpus": 2}, "unknown key 'cpus' in the CPU scenario; did you mean 'pcpus'?"),
    ({"vms": [{"name": None, "vcpus": 1}]}, "a VM's name must be a string, not null"),
    ({"vms": [{"name": "a", "vcpus": 10**9}]}, "vcpus must be at most 4096"),
    ({"pcpus": 10**6}, "must be at most 1024"),
    ({"duration_s": 1e6}, "duration_s must be at most 3600 s"),
    ({"slice_ms": 1e-9}, "slice_ms must be from 0.01 to"),
    ({"duration_s": 3600, "slice_ms": 0.01}, "too large for the model"),
    ({"duration_s": 2, "vms": [{"name": "a", "vcpus": 64, "load": 0.5, "period_ms": 0.1}]},
     "too large for the model"),
    ({"vms": [{"name": "a", "vcpus": 1, "trace": 5}]}, "trace .* must be a list, not a number"),
    ({"vms": [{"name": "a", "vcpus": 1, "trace": [[1, 1]] * 20000}]}, "at most 10000 items"),
    ({"duration_s": float("inf")}, "duration_s must be a finite number"),
    ({"vms": [{"name": "a", "vcpus": 1, "period_ms": float("inf")}]}, "finite number"),
    ({"vms": [{"name": "a", "vcpus": 1, "shares": 20000}]}, "from 2 to 10000"),
])
def test_bad_input_names_the_rule(change, rule):
    data = {"pcpus": 2, "duration_s": 1, "vms": [{"name": "vm1", "vcpus": 1}], **change}
    with pytest.raises(ScenarioError, match=rule.replace("(", r"\(").replace(")", r"\)")):
        CpuScenario.from_dict(data)


@pytest.mark.parametrize("name", scenario_names("cpu-"))
def test_shipped_scenarios_load(name):
    s = load_scenario(name)
    assert s.name == name and s.description


def test_the_seed_example_is_shipped():
    s = load_scenario("cpu-seed-example")
    assert s.pcpus == 2 and [vm.vcpus for vm in s.vms] == [2, 4]

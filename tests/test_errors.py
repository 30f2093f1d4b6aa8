import pytest

from kvmlab.errors import ExperimentFailed, HostUnavailable, KvmlabError, ScenarioError


def test_scenario_error_is_a_value_error_and_a_kvmlab_error():
    with pytest.raises(ValueError):
        raise ScenarioError("VLAN ID 4095 is reserved; usable IDs are 1-4094")
    assert issubclass(ScenarioError, KvmlabError)
    assert issubclass(ExperimentFailed, KvmlabError)


def test_host_unavailable_says_what_was_tried_why_and_what_to_do():
    err = HostUnavailable("qemu:///system", "permission denied", "run as root")
    assert (err.uri, err.reason, err.remedy) == ("qemu:///system", "permission denied",
                                                 "run as root")
    assert str(err) == ("Cannot reach libvirt at 'qemu:///system': permission denied. "
                        "What to do: run as root.")

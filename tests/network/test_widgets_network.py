"""The network widgets are thin: the pure functions under them, and the widgets driven by hand."""

import matplotlib
import pytest

matplotlib.use("Agg")

from kvmlab.data import scenario_dict
from kvmlab.errors import ScenarioError
from kvmlab.network import simulate
from kvmlab.network.widgets import (
    UNKNOWN_MAC,
    one_bridge,
    outcome,
    playground,
    send_frame,
    stepper,
)


def test_one_bridge_applies_the_flags_to_every_port():
    t = one_bridge(4, ageing_s=0, hairpin=True, flood=False)
    assert t.bridges[0].ageing_s == 0
    assert all(p.flags["hairpin"] and not p.flags["flood"] for p in t.bridges[0].ports)
    with pytest.raises(ScenarioError, match="between 1 and 8 guests"):
        one_bridge(9)


def test_sending_builds_frames_and_the_outcome_says_what_happened():
    t = one_bridge(3)
    assert outcome(t) == "no frame sent yet"
    t = send_frame(t, "vm1", "unknown")
    assert t.frames[-1].dst == UNKNOWN_MAC
    t = send_frame(t, "vm2", "broadcast")
    text = outcome(t)
    assert text.startswith("frame 1 (vm2 to broadcast): received by vm1:eth0, vm3:eth0")
    assert "flood" in text and "52:54:00:00:00:02 -> vnet1" in text
    assert simulate(t).receivers[0] == ("vm2:eth0", "vm3:eth0")


def test_the_playground_sends_on_click_and_starts_again_when_a_flag_changes():
    box = playground(3)
    sender, to, send, _reset = box.children[0].children
    ageing, _hairpin, _flood = box.children[1].children
    text = box.children[2]
    sender.value, to.value = "vm1", "vm2"
    send.click()
    assert "received by vm2:eth0, vm3:eth0" in text.value
    send.click()                                      # vm2 is still unknown: flooded again
    assert "frame 1 (vm1 to vm2): received by vm2:eth0, vm3:eth0" in text.value
    ageing.value = 0                                  # a new, empty network
    assert "no frame sent yet" in text.value


def test_the_stepper_moves_through_the_events():
    box = stepper(simulate(scenario_dict("net-hub")))
    slider, text = box.children
    slider.value = 3
    assert "step 4 of 12" in text.value and "vm3:eth0  receive" in text.value


def test_the_vlan_switch_and_its_playground():
    from kvmlab.network.widgets import vlan_playground, vlan_switch

    with pytest.raises(ScenarioError, match="port mode 'trunk 99'"):
        vlan_switch(["trunk 99"])
    t = send_frame(vlan_switch(["access 10", "access 20", "trunk 10,20"]), "vm3", "broadcast",
                   vlan=20)
    assert simulate(t).tags == [{"vm2:eth0": None}]
    box = vlan_playground(3)
    modes, controls, text = box.children
    sender, _to, tag, send = controls.children
    sender.value, tag.value = "vm1", None
    send.click()
    assert "received by" in text.value
    modes.children[2].value = "trunk 10,20"          # a new switch: no frame yet
    assert "no frame sent yet" in text.value
    sender.value = "vm1"
    send.click()
    assert "vm3:eth0 (tagged 10)" in text.value

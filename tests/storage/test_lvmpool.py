"""The article's LVM pool flow on libvirt's test driver (no daemon, no disk)."""

from __future__ import annotations

import pytest

from kvmlab.errors import ScenarioError
from kvmlab.host.connect import connect
from kvmlab.storage import lvmpool


def test_define_start_create_destroy_undefine_as_virsh_shows_it():
    conn = connect(lvmpool.TEST_URI)           # held open: the test driver keeps its state
    try:
        steps = lvmpool.article_flow()
        assert [s["state"] for s in steps] == ["inactive", "active", "active", "inactive",
                                               "gone"]
        volume = steps[2]["volume"]
        assert volume["path"] == "/dev/HostVG/lv1"
        assert volume["allocation"] == volume["capacity"] == 64 * 2**20   # an LV: not sparse
        name = steps[1]["virsh"].split()[-1]
        assert name.startswith("kvmlab-hostvg-")
        assert name not in [p.name() for p in conn.listAllStoragePools()]
    finally:
        conn.close()


def test_a_failure_half_way_still_removes_the_pool(monkeypatch):
    conn = connect(lvmpool.TEST_URI)
    calls = []

    def failing_state(c, name):
        calls.append(name)
        if len(calls) == 2:
            raise RuntimeError("interrupted")
        return "active"

    monkeypatch.setattr(lvmpool, "_state", failing_state)
    try:
        with pytest.raises(RuntimeError):
            lvmpool.article_flow()
        assert calls[0] not in [p.name() for p in conn.listAllStoragePools()]
    finally:
        conn.close()


@pytest.mark.parametrize("uri", ["qemu:///system", None, "qemu+ssh://h/system"])
def test_a_real_host_is_refused(uri):
    with pytest.raises(ScenarioError, match="test driver"):
        lvmpool.article_flow(uri)

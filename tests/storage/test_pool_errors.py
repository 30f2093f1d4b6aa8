"""A pool that cannot be created fails with what to do, and leaves no folder behind."""

from __future__ import annotations

import pytest

from kvmlab.errors import ExperimentFailed
from kvmlab.storage import pool

libvirt = pytest.importorskip("libvirt")


class RefusingConnection:
    def storagePoolCreateXML(self, xml: str, flags: int) -> None:  # noqa: N802 - libvirt's name
        raise libvirt.libvirtError("storage pool driver not available")

    def close(self) -> None:
        pass


def test_a_pool_libvirt_refuses_names_the_cause_and_the_remedy(monkeypatch):
    monkeypatch.setattr(pool, "connect", lambda uri, write=False: RefusingConnection())
    made = pool.TransientPool("qemu:///system")
    with pytest.raises(ExperimentFailed) as caught, made:
        pass
    message = str(caught.value)
    assert "libvirt refused to create pool kvmlab-" in message
    assert "storage pool driver not available" in message
    assert "kvmlab doctor" in message and "make setup" in message
    assert made.path is None or not made.path.exists()

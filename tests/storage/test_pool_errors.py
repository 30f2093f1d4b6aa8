"""A pool that cannot be created fails with what to do, and leaves no folder behind."""

from __future__ import annotations

from itertools import pairwise

import pytest

from kvmlab.errors import ExperimentFailed
from kvmlab.storage import pool
from kvmlab.storage.luks import CPU_CLOCK_FLAKE

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


class FlakyPool:
    """A pool whose `qemu-img create` reads no CPU time ``flakes`` times, then works."""

    def __init__(self, flakes: int, message: str = CPU_CLOCK_FLAKE) -> None:
        self.flakes, self.message, self.deleted = flakes, message, 0

    def createXML(self, xml: str) -> str:  # noqa: N802 - libvirt's name
        if self.flakes:
            self.flakes -= 1
            raise libvirt.libvirtError(f"internal error: qemu-img: x.qcow2: {self.message}")
        return "volume"

    def refresh(self, flags: int) -> None:
        pass

    def storageVolLookupByName(self, name: str) -> FlakyPool:  # noqa: N802 - libvirt's name
        return self

    def delete(self, flags: int) -> None:
        self.deleted += 1


@pytest.mark.parametrize(("flakes", "works"),
                         [(0, True), (2, True), (pool.VOLUME_ATTEMPTS - 1, True),
                          (pool.VOLUME_ATTEMPTS, False)])
def test_an_encrypted_volume_is_made_again_when_qemu_img_reads_no_cpu_time(flakes, works,
                                                                         monkeypatch):
    pauses = []
    monkeypatch.setattr(pool.time, "sleep", pauses.append)
    made = pool.TransientPool("qemu:///system")
    made.pool = FlakyPool(flakes)
    if works:
        assert made.create_volume("kvmlab-v.qcow2", 1 << 20) == "volume"
    else:
        with pytest.raises(ExperimentFailed, match=r"refused to create volume kvmlab-v\.qcow2"):
            made.create_volume("kvmlab-v.qcow2", 1 << 20)
    assert made.pool.deleted == min(flakes, pool.VOLUME_ATTEMPTS)  # each half-made one removed
    # a pause after each failed attempt but the last, each twice the one before
    assert len(pauses) == min(flakes, pool.VOLUME_ATTEMPTS - 1)
    assert all(b == 2 * a for a, b in pairwise(pauses))


def test_any_other_refusal_is_not_tried_again():
    made = pool.TransientPool("qemu:///system")
    made.pool = FlakyPool(1, "No space left on device")
    with pytest.raises(ExperimentFailed, match="No space left on device"):
        made.create_volume("kvmlab-v.qcow2", 1 << 20)
    assert made.pool.deleted == 0

from dataclasses import fields

from kvmlab.storage.catalogue import FORMATS, MANAGE, POOL_TYPES, PoolType


def test_the_articles_pool_types_are_all_described():
    assert {"dir", "logical", "netfs", "iscsi", "rbd"} <= set(POOL_TYPES)
    for pool in POOL_TYPES.values():
        assert all(getattr(pool, f.name) for f in fields(PoolType))
        assert pool.define.startswith("virsh ")


def test_formats_and_commands():
    assert set(FORMATS) == {"raw", "qcow2", "vmdk"}
    assert "sparse" in FORMATS["raw"].size_on_disk      # the article says "fixed size"
    assert all(cmd.startswith("virsh ") for cmd in MANAGE.values())

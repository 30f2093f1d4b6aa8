"""The article's LVM volume group, made by a real guest's LVM on a virtio disk, laid out
where the model says (marked live; in CI a missing tool fails, never skips)."""

from __future__ import annotations

import random
import shutil

import pytest

from kvmlab.storage.lvmguest import ARTICLE_LVS, DISK_SIZE, VG_NAME, compare_lvm, run_lvm_in_guest
from kvmlab.storage.lvmpool import dm_name, plan_volume_group
from tests.conftest import require

pytestmark = pytest.mark.live
MiB = 1 << 20


def test_the_article_group_lands_where_the_model_says(live_uri, guest_image, no_leftovers):
    require(shutil.which("lvm") is not None, "lvm2 is not installed (scripts/setup-host.sh)")
    measured = run_lvm_in_guest(ARTICLE_LVS, uri=live_uri)
    plan = plan_volume_group(DISK_SIZE, ARTICLE_LVS, vg=VG_NAME)
    c = compare_lvm(plan, measured)
    assert c.agrees, c.table()
    assert measured["label_offset"] == 512
    assert measured["links"] == ["lv1", "lv2"]            # /dev/VG/LV made without udev
    assert measured["lvs"]["lv2"]["size"] == 12 * MiB      # 10M rounded up to whole extents
    assert measured["lvs"]["lv1"]["dm_path"] == f"/dev/mapper/{dm_name(VG_NAME, 'lv1')}"
    assert any("lv1" in line for line in measured["lvs_text"])
    assert any(VG_NAME in line for line in measured["vgs_text"])


def test_random_groups_land_where_the_model_says(live_uri, guest_image, no_leftovers):
    require(shutil.which("lvm") is not None, "lvm2 is not installed (scripts/setup-host.sh)")
    rng = random.Random()
    disk = rng.choice([24, 40, 72]) * MiB + rng.choice([0, 512 * 1024, 3 * MiB])
    room = (disk - MiB) // (4 * MiB)
    cuts = sorted(rng.sample(range(1, room + 1), rng.randint(1, min(3, room))))
    extents = [b - a for a, b in zip([0, *cuts], cuts, strict=False)]
    lvs = [(f"lv{i}", (e - 1) * 4 * MiB + rng.randint(1, 4 * MiB // 512) * 512)
           for i, e in enumerate(extents)]
    plan = plan_volume_group(disk, lvs)
    measured = run_lvm_in_guest(lvs, disk_size=disk, uri=live_uri)
    c = compare_lvm(plan, measured)
    assert c.agrees, f"disk {disk}, lvs {lvs}\n{c.table()}"
    assert measured["free_extents"] == plan.free_extents

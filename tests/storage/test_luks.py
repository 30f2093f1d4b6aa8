"""LUKS inside qcow2: the scenario's rules, the header's cost in the model, and the model
against qemu-img on random writes."""

from __future__ import annotations

import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmlab.errors import ScenarioError
from kvmlab.storage import Qcow2Model, compare, run_on_host, simulate
from kvmlab.storage.luks import LuksQcow2, luks_header_bytes, read_luks_extent
from kvmlab.storage.scenario import StorageScenario

KEY = {"format": "luks", "secret": "correct horse battery staple"}


@pytest.mark.parametrize("encryption, rule", [
    ({"format": "luks"}, "needs a secret: encryption.secret"),
    ({"format": "luks", "secret": ""}, "needs a secret"),
    ({"format": "aes", "secret": "x"}, "not one of .*insecure"),
    ({"format": "luks", "secret": "x", "cipher": "aes"}, "cipher"),
    ("luks", "encryption is"),
])
def test_an_encryption_request_breaking_a_rule_is_refused_naming_it(encryption, rule):
    with pytest.raises(ScenarioError, match=rule):
        StorageScenario.from_dict({"virtual_size": 1 << 20, "encryption": encryption})


@pytest.mark.parametrize("extra", [{"format": "raw"}, {"format": "vmdk"},
                                   {"compress": True},
                                   {"backing": {"virtual_size": 1 << 20}}])
def test_only_a_plain_qcow2_image_is_encrypted(extra):
    with pytest.raises(ScenarioError, match="encrypt"):
        StorageScenario.from_dict({"virtual_size": 1 << 20, "encryption": KEY, **extra})


def test_the_secret_round_trips_but_is_not_shown():
    s = StorageScenario.from_dict({"virtual_size": 1 << 20, "encryption": KEY})
    assert StorageScenario.from_dict(s.to_dict()) == s
    assert KEY["secret"] not in repr(s)


@given(key=st.sampled_from([32, 48, 64]), stripes=st.integers(1, 8000),
       slots=st.integers(1, 8))
def test_the_header_is_4_kib_then_aligned_key_slots(key, stripes, slots):
    n = luks_header_bytes(key, stripes, slots)
    assert n % 4096 == 0
    assert 4096 + slots * key * stripes <= n < 4096 + slots * (key * stripes + 4096)


writes_st = st.lists(st.tuples(st.integers(0, (8 << 20) - 1), st.integers(1, 300_000)),
                     min_size=0, max_size=6).map(
    lambda ws: [[o, min(n, (8 << 20) - o)] for o, n in ws])


@given(cluster=st.sampled_from([512, 4096, 65536]), writes=writes_st)
@settings(max_examples=15, deadline=None)
def test_encryption_costs_the_header_clusters_and_moves_nothing_else(cluster, writes):
    plain, luks = Qcow2Model(8 << 20, cluster), LuksQcow2(8 << 20, cluster)
    for o, n in writes:
        plain.write(o, n)
        luks.write(o, n)
    header_clusters = -(-luks_header_bytes() // cluster)
    fresh = Qcow2Model(8 << 20, cluster).image_end_offset      # header, tables, L1
    assert luks.luks_extent == (fresh, luks_header_bytes())
    assert luks.allocated_clusters == plain.allocated_clusters
    assert [{k: v for k, v in e.items() if k != "offset"} for e in plain.map()] == luks.map()
    assert luks.image_end_offset >= plain.image_end_offset + header_clusters * cluster


@pytest.fixture(scope="module")
def qemu_img():
    if shutil.which("qemu-img") is None or shutil.which("qemu-io") is None:
        pytest.skip("qemu-utils is not installed")


@given(cluster=st.sampled_from([512, 2048, 65536]), writes=writes_st)
@settings(max_examples=6, deadline=None)
def test_the_model_agrees_with_qemu_img_on_an_encrypted_image(qemu_img, cluster, writes):
    scenario = StorageScenario.from_dict({"virtual_size": 8 << 20, "cluster_size": cluster,
                                          "writes": writes, "encryption": KEY})
    measured, simulated = run_on_host(scenario), simulate(scenario)
    comparison = compare(simulated, measured)
    assert comparison.agrees, comparison.table()
    assert all("offset" not in e for e in measured.map)       # QEMU hides where it is


def test_the_header_extension_is_where_the_model_puts_it(qemu_img, tmp_path):
    from kvmlab.storage.twin import make_image

    scenario = StorageScenario.from_dict({"virtual_size": 4 << 20, "cluster_size": 4096,
                                          "writes": [[0, 512]], "encryption": KEY})
    path = make_image(scenario, tmp_path / "disk.qcow2")
    assert read_luks_extent(path) == LuksQcow2(4 << 20, 4096).luks_extent
    plain = make_image(StorageScenario.from_dict({"virtual_size": 4 << 20}),
                       tmp_path / "plain.qcow2")
    assert read_luks_extent(plain) is None

"""The I/O model: its rules hold for every workload, and its figures add up."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvmlab.errors import ScenarioError
from kvmlab.lab import SIMULATED
from kvmlab.storage.model import TEACHING_NOTE, plan_requests, simulate_io
from kvmlab.storage.qcow2 import Qcow2Model
from kvmlab.storage.result import IoResult
from kvmlab.storage.scenario import DISKS, HDD, SSD, DiskParams, IoWorkload

KiB, MiB = 1024, 1024 * 1024
FAST = settings(max_examples=30, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@st.composite
def workloads(draw, **fixed):
    cluster = draw(st.sampled_from([4096, 16384, 65536]))
    values = {
        "format": draw(st.sampled_from(["raw", "qcow2", "overlay"])),
        "pattern": draw(st.sampled_from(["sequential", "random"])),
        "request_size": draw(st.sampled_from([512, 4096, 8192, 65536, 131072])),
        "count": draw(st.integers(1, 60)),
        "read_fraction": draw(st.sampled_from([0.0, 0.3, 1.0])),
        "virtual_size": draw(st.sampled_from([8, 64])) * MiB,
        "cluster_size": cluster,
        "l2_cache_tables": draw(st.integers(1, 8)),
        "queue_depth": draw(st.integers(1, 4)),
        "disk": draw(st.sampled_from([SSD, HDD])),
    }
    values.update(fixed)
    return IoWorkload(**values)


# -- the workload ------------------------------------------------------------------------
@pytest.mark.parametrize("changes, rule", [
    ({"request_size": 1000}, "request_size must be a positive multiple of 512"),
    ({"request_size": 0}, "request_size must be a positive multiple of 512"),
    ({"request_size": 2 * MiB, "virtual_size": MiB}, "within the virtual size"),
    ({"pattern": "zigzag"}, "pattern must be 'sequential' or 'random'"),
    ({"format": "vmdk"}, "format must be one of"),
    ({"virtual_size": 1000}, "virtual_size must be a positive multiple of 512"),
    ({"cluster_size": 3000}, "cluster_size must be a power of two"),
    ({"read_fraction": 1.5}, "read_fraction is a share"),
    ({"read_fraction": float("nan")}, "read_fraction must be a finite number"),
    ({"count": 0}, "count must be between 1 and"),
    ({"count": 2.5}, "count must be a whole number"),
    ({"passes": 0}, "passes must be between"),
    ({"queue_depth": 0}, "queue_depth must be between"),
    ({"l2_cache_tables": 0}, "l2_cache_tables must be between"),
    ({"prefill": "yes"}, "prefill must be true or false"),
    ({"cluster_size": 512, "virtual_size": 64 * MiB}, "at most 65536 guest clusters"),
])
def test_a_broken_rule_is_named(changes, rule):
    with pytest.raises(ScenarioError, match=rule):
        IoWorkload.from_dict(changes)


def test_raw_images_may_be_large_with_small_clusters():
    assert IoWorkload(format="raw", cluster_size=512, virtual_size=64 * MiB).format == "raw"


def test_from_dict_rejects_unknown_fields_and_disks():
    with pytest.raises(ScenarioError, match="unknown workload field"):
        IoWorkload.from_dict({"blocksize": 4096})
    with pytest.raises(ScenarioError, match="disk must be one of"):
        IoWorkload.from_dict({"disk": "floppy"})
    with pytest.raises(ScenarioError, match="unknown disk field"):
        IoWorkload.from_dict({"disk": {"rpm": 7200}})
    with pytest.raises(ScenarioError, match="an I/O workload is a dict"):
        IoWorkload.from_dict([1, 2])


def test_disk_params_are_checked():
    with pytest.raises(ScenarioError, match="seek_s cannot be negative"):
        DiskParams(seek_s=-1)
    with pytest.raises(ScenarioError, match="bandwidth_bytes_per_s must be positive"):
        DiskParams(bandwidth_bytes_per_s=0)
    custom = DiskParams.from_dict({"seek_s": 0.001, "bandwidth_bytes_per_s": 1e8})
    assert custom.name == "custom" and DISKS["hdd"] is HDD
    assert HDD.seek_s > SSD.seek_s and HDD.bandwidth_bytes_per_s < SSD.bandwidth_bytes_per_s


@FAST
@given(workloads())
def test_a_workload_survives_json(w):
    again = IoWorkload.from_dict(json.loads(json.dumps(w.to_dict())))
    assert again == w


def test_replace_checks_again_and_takes_preset_names():
    w = IoWorkload()
    assert w.replace(disk="hdd").disk == HDD
    with pytest.raises(ScenarioError, match="pattern"):
        w.replace(pattern="backwards")


# -- the rules -----------------------------------------------------------------------------
@FAST
@given(workloads(read_fraction=0.0, format="qcow2"))
def test_raw_sequential_is_at_least_as_fast_as_qcow2_first_writes(w):
    raw = simulate_io(w.replace(format="raw", pattern="sequential"))
    first = simulate_io(w)
    assert raw.throughput_bytes_per_s >= first.throughput_bytes_per_s
    assert first.allocated_clusters > 0 and first.metadata_writes > 0


@FAST
@given(workloads(read_fraction=0.0, passes=2), st.integers(0, 1000))
def test_a_second_pass_of_writes_allocates_nothing(w, seed):
    r = simulate_io(w, seed=seed)
    second = [q for q in r.requests if q.pass_index == 1]
    assert len(second) == w.count
    assert all(q.allocated_clusters == 0 and q.metadata_writes == 0 and q.cow_bytes == 0
               for q in second)
    first, again = r.per_pass()
    assert again["allocated_clusters"] == 0
    assert first["allocated_clusters"] == r.allocated_clusters


@FAST
@given(cluster=st.sampled_from([4096, 65536, 2 * MiB]), sectors=st.integers(1, 4095),
       seed=st.integers(0, 1000))
def test_cow_bytes_are_the_rest_of_the_cluster_for_a_partial_first_write(cluster, sectors,
                                                                         seed):
    size = (sectors * 512) % cluster or 512
    w = IoWorkload(format="qcow2", request_size=size, count=1, cluster_size=cluster,
                   virtual_size=64 * MiB)
    assert simulate_io(w).cow_bytes == cluster - size            # at offset 0
    r = simulate_io(w.replace(pattern="random"), seed=seed)       # anywhere
    (q,) = r.requests
    touched = (q.offset + size - 1) // cluster - q.offset // cluster + 1
    assert q.allocated_clusters == touched
    assert q.cow_bytes == touched * cluster - size


def test_full_cluster_writes_copy_nothing():
    r = simulate_io(IoWorkload(format="overlay", request_size=65536, count=32))
    assert r.cow_bytes == 0 and r.base_reads == 0 and r.allocated_clusters == 32


@FAST
@given(workloads(), st.integers(0, 10_000))
def test_the_same_seed_gives_the_same_result(w, seed):
    assert simulate_io(w, seed=seed) == simulate_io(w, seed=seed)


def test_another_seed_gives_other_random_offsets():
    w = IoWorkload(pattern="random", count=20)
    offsets = {tuple(q.offset for q in simulate_io(w, seed=s).requests) for s in range(5)}
    assert len(offsets) == 5


@FAST
@given(workloads(format="qcow2", read_fraction=0.0), st.integers(0, 100))
def test_clusters_land_where_the_qcow2_model_puts_them(w, seed):
    model = Qcow2Model(w.virtual_size, w.cluster_size)
    for i, (_is_read, offset, ops) in enumerate(plan_requests(w, seed=seed)):
        model.write(offset, w.request_size, index=i)
        cs = w.cluster_size
        touched = range(offset // cs, (offset + w.request_size - 1) // cs + 1)
        written = {c for op in ops if op.what == "data"
                   for c in range(op.offset // cs, (op.offset + op.length - 1) // cs + 1)}
        assert written == {model.data[g] for g in touched}
        assert all(op.file == "image" for op in ops)
    r = simulate_io(w, seed=seed)
    assert r.image_end_offset == model.image_end_offset
    assert r.allocated_clusters == model.allocated_clusters


@FAST
@given(workloads())
def test_the_figures_add_up(w):
    r = simulate_io(w)
    assert len(r.requests) == w.count * w.passes
    assert r.metadata_reads == sum(q.metadata_reads for q in r.requests)
    assert r.cow_bytes == sum(q.cow_bytes for q in r.requests)
    latencies = sorted(q.latency_s for q in r.requests)
    assert latencies[0] <= r.p95_latency_s <= latencies[-1]
    assert r.mean_latency_s == pytest.approx(sum(latencies) / len(latencies))
    if math.isfinite(r.throughput_bytes_per_s):
        assert r.throughput_bytes_per_s == pytest.approx(
            w.count * w.passes * w.request_size / r.duration_s)
    if w.format == "raw":
        assert r.metadata_reads == r.metadata_writes == r.allocated_clusters == 0
        assert r.image_end_offset is None
    assert r.provenance["note"] == TEACHING_NOTE


# -- formats -------------------------------------------------------------------------------
def test_reading_an_empty_qcow2_image_touches_no_disk():
    r = simulate_io(IoWorkload(format="qcow2", read_fraction=1.0, count=10))
    assert r.seeks == 0 and r.duration_s == 0
    assert math.isinf(r.throughput_bytes_per_s)
    assert r.to_dict()["throughput_bytes_per_s"] is None
    json.dumps(r.to_dict())


def test_overlay_reads_of_clusters_it_lacks_go_to_the_base():
    r = simulate_io(IoWorkload(format="overlay", pattern="random", read_fraction=1.0,
                               request_size=4096, count=40), seed=2)
    assert r.base_reads == 40 and r.allocated_clusters == 0
    ops = [op for _r, _o, ops in plan_requests(r.workload, seed=2) for op in ops]
    assert {op.file for op in ops if op.what == "data"} == {"base"}


def test_a_partial_write_to_a_base_cluster_reads_the_base_cluster_first():
    w = IoWorkload(format="overlay", request_size=4096, count=1)
    (_is_read, _offset, ops), = plan_requests(w)
    cow = next(i for i, op in enumerate(ops) if op.what == "copy-on-write read")
    data = next(i for i, op in enumerate(ops) if op.what == "data")
    assert cow < data
    assert (ops[cow].file, ops[cow].length, ops[cow].write) == ("base", 65536, False)
    assert (ops[data].file, ops[data].length, ops[data].write) == ("image", 65536, True)
    assert simulate_io(w).cow_bytes == 65536 - 4096


def test_a_small_l2_cache_misses_on_random_reads():
    w = IoWorkload(format="qcow2", prefill=True, pattern="random", read_fraction=1.0,
                   request_size=4096, cluster_size=4096, virtual_size=64 * MiB, count=200)
    tables = 64 * MiB // (4096 * 512)                     # one L2 table maps 2 MiB
    small = simulate_io(w.replace(l2_cache_tables=2), seed=1)
    large = simulate_io(w.replace(l2_cache_tables=tables), seed=1)
    assert large.metadata_reads <= tables < small.metadata_reads
    assert small.mean_latency_s > large.mean_latency_s


def test_metadata_writes_of_a_first_write():
    (_r, _o, ops), = plan_requests(IoWorkload(format="qcow2", request_size=4096, count=1))
    assert [op.what for op in ops] == ["data", "refcount block", "L2", "L1"]
    assert simulate_io(IoWorkload(format="qcow2", request_size=4096, count=1)
                       ).metadata_writes == 3


def test_an_hdd_is_slower_than_an_ssd_and_random_is_slower_than_sequential():
    w = IoWorkload(format="raw", request_size=4096, count=100)
    seq_ssd, rnd_ssd = simulate_io(w), simulate_io(w.replace(pattern="random"))
    rnd_hdd = simulate_io(w.replace(pattern="random", disk="hdd"))
    assert seq_ssd.throughput_bytes_per_s > rnd_ssd.throughput_bytes_per_s
    assert rnd_ssd.throughput_bytes_per_s > rnd_hdd.throughput_bytes_per_s


def test_a_deeper_queue_waits_longer_for_the_same_throughput():
    w = IoWorkload(format="raw", pattern="random", request_size=4096, count=100)
    one, four = simulate_io(w), simulate_io(w.replace(queue_depth=4))
    assert four.throughput_bytes_per_s == pytest.approx(one.throughput_bytes_per_s)
    assert four.mean_latency_s == pytest.approx(4 * one.mean_latency_s, rel=0.05)


def test_a_row_and_a_label_for_tables():
    r = simulate_io(IoWorkload(count=8, read_fraction=0.5))
    assert r.label == "qcow2, sequential 50% reads"
    row = r.row()
    assert row["workload"] == r.label and row["MB/s"] == round(r.throughput_bytes_per_s / 1e6, 1)
    assert isinstance(r, IoResult) and r.source == SIMULATED
    two = simulate_io(IoWorkload(count=8, passes=2))
    assert [two.row(k)["new clusters"] for k in (0, 1)] == [8, 0]
    with pytest.raises(ScenarioError, match="pass_index"):
        two.row(2)

"""The bridge model against a real Linux kernel (marked live): the shipped scenarios and
random topologies, all side by side in one guest."""

import os
import random as rand

import pytest

from kvmlab.data import scenario_dict, scenario_names
from kvmlab.lab import MEASURED
from kvmlab.network import Topology, compare, run_many_on_host, run_on_host, simulate
from kvmlab.network.generate import random_topology

pytestmark = pytest.mark.live
N_RANDOM = 40


def test_model_equals_real_kernel(live_uri, guest_image, no_leftovers):
    # new random topologies on every run; KVMLAB_NET_SEED=N repeats a run
    base = int(os.environ.get("KVMLAB_NET_SEED", rand.randrange(2**32)))
    seeds = range(base, base + N_RANDOM)
    named = scenario_names("net-") + scenario_names("vlan-")
    tops = [Topology.from_dict(scenario_dict(n)) for n in named]
    # KVM hosts with 8021q sub-devices (VLAN 0 included) in bridges of their own, in both
    random = [random_topology(s, sub_devices=True) for s in seeds]
    random += [random_topology(s, vlans=True, sub_devices=True) for s in seeds]  # VLAN-aware
    with_subs = sum(any(h.vlan_devices for h in t.hosts) for t in random)
    assert with_subs >= N_RANDOM // 2, f"only {with_subs} random topologies have sub-devices"
    tops += random
    real = run_many_on_host(tops, uri=live_uri, image=guest_image)
    failures = []
    for t, r in zip(tops, real, strict=True):
        comparison = compare(simulate(t), r)
        if not comparison.agrees:
            failures.append(f"{t.name}:\n{comparison.table()}")
    print(f"\n{len(tops)} topologies ({len(named)} named, {2 * N_RANDOM} random from seed "
          f"{base}, half of them with VLANs, {with_subs} with sub-devices), "
          f"{sum(len(t.frames) for t in tops)} frames: {len(failures)} disagree; "
          f"frames left at most {real[0].provenance['max_late_s']} s late")
    assert not failures, f"KVMLAB_NET_SEED={base}:\n" + "\n\n".join(failures[:5])


def test_one_topology_alone(live_uri, guest_image, no_leftovers):
    r = run_on_host(scenario_dict("net-seed-bridge"), uri=live_uri, image=guest_image)
    assert r.source == MEASURED and r.provenance["guest_kernel"] != "unknown"
    assert compare(simulate(scenario_dict("net-seed-bridge")), r).agrees


def test_router_on_a_stick_agrees_with_the_kernel(live_uri, guest_image, no_leftovers):
    r = run_on_host("vlan-router-on-a-stick", uri=live_uri, image=guest_image)
    comparison = compare(simulate("vlan-router-on-a-stick"), r)
    assert comparison.agrees, comparison.table()
    # a packet crossed: the router's copy, one hop later; ARP stayed inside VLAN 10
    assert r.packets[2]["b:eth0"].startswith("TTL 63, 52:54:00:00:0a:01 > ")
    assert set(r.receivers[0]) == {"a2:eth0", "router:eth0"}


def test_record_runs_records_topologies_from_one_boot(live_uri, guest_image, no_leftovers,
                                                      tmp_path):
    from kvmlab.network import NetworkResult, record_runs
    from kvmlab.validate import read_json_file

    names = ["net-hub", "vlan-pvid-but-tagged"]
    written = record_runs(names, uri=live_uri, image=guest_image, into=tmp_path)
    assert list(written) == names and all(agrees for _path, agrees in written.values())
    runs = [NetworkResult.from_dict(read_json_file(path, "recording"))
            for path, _agrees in written.values()]
    assert [r.provenance["topologies_in_guest"] for r in runs] == [2, 2]     # one boot
    assert runs[0].provenance["recorded_at"] == runs[1].provenance["recorded_at"]
    for name, r in zip(names, runs, strict=True):
        assert r.source == MEASURED and r.provenance["guest_kernel"] != "unknown"
        assert compare(simulate(name), r).agrees

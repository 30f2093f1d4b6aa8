"""Every shipped topology scenario has a real-kernel recording that the model agrees with,
and ``kvmlab network record`` makes such recordings in one guest boot (faked here: no
guest boots in these tests)."""

import json
from dataclasses import replace

import pytest

from kvmlab import network
from kvmlab.cli import main
from kvmlab.data import read_json, shipped_dir
from kvmlab.errors import ScenarioError
from kvmlab.lab import MEASURED
from kvmlab.network import NetworkResult, compare, load_scenario, simulate
from kvmlab.network import recordings as rec

SHIPPED = sorted(p.stem for p in (shipped_dir() / "scenarios").glob("*.json")
                 if p.stem.startswith(rec.TOPOLOGY_PREFIXES))


def shipped_recording(name: str) -> NetworkResult:
    """The shipped file itself (a user's recording of that name cannot stand in for it)."""
    path = shipped_dir() / "recorded" / f"{name}.json"
    assert path.is_file(), f"no shipped recording of {name}: run `kvmlab network record`"
    return NetworkResult.from_dict(read_json(path))


def test_the_shipped_topology_scenarios_are_all_there():
    assert len(SHIPPED) >= 28
    assert {"net-seed-bridge", "vlan-seed-two-switches", "vlan-router-on-a-stick"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_scenario_has_a_real_kernel_recording_the_model_agrees_with(name):
    real = shipped_recording(name)
    assert real.source == MEASURED
    p = real.provenance
    assert p["guest_kernel"].startswith("6.") and p["accelerator"] in ("tcg", "kvm")
    assert p["guest_kernel"] in p["measured_on"] and p["recorded_at"].endswith("Z")
    assert p["model_agreed"] is True
    # recorded from the scenario as it ships now, not from an older version of it
    assert real.topology == load_scenario(name)
    assert len(real.receivers) == len(real.topology.frames)
    comparison = compare(simulate(name), real)
    assert comparison.agrees, comparison.table()
    assert comparison.max_error == 0.0


def test_the_comparison_would_see_a_changed_recording():
    # the recordings are not trivially agreeing: move one receiver, lose one fdb entry
    name = "vlan-seed-two-switches"
    real = shipped_recording(name)
    k = next(i for i, got in enumerate(real.receivers) if got)
    gone = real.receivers[k][0]
    tags = [dict(t) for t in real.tags]
    del tags[k][gone]
    bridge = next(b for b, table in real.fdb.items() if table)
    fdb = {b: dict(t) for b, t in real.fdb.items()}
    fdb[bridge].popitem()
    changed = replace(real, receivers=[*real.receivers[:k], real.receivers[k][1:],
                                       *real.receivers[k + 1:]], tags=tags, fdb=fdb)
    c = compare(simulate(name), changed)
    assert not c.agrees and c.differing_frames == [k] and list(c.fdb_differences) == [bridge]


def test_compare_recorded_covers_every_shipped_scenario():
    comparisons = network.compare_recorded(SHIPPED)
    assert sorted(comparisons) == SHIPPED
    assert all(c.agrees for c in comparisons.values())
    assert network.recorded_runs(["net-hub", "no-such-recording"]).keys() == {"net-hub"}
    assert rec.recording_name("nat-default-network") == "net-nat-default-network"
    with pytest.raises(ScenarioError, match="not a path"):
        rec.recording_name("../x")


class FakeHost:
    """Stands for the guest: answers with the model's result, marked as measured, and
    counts the boots."""

    def __init__(self, wrong: str | None = None):
        self.boots: list[list[str]] = []
        self.wrong = wrong

    def result(self, topology, kernel="6.1.0-test"):
        r = simulate(topology)
        if topology.name == self.wrong:          # the kernel disagrees with the model here
            r = replace(r, receivers=[(), *r.receivers[1:]], tags=[{}, *r.tags[1:]])
        return replace(r, source=MEASURED, events=[],
                       provenance={"guest_kernel": kernel, "accelerator": "tcg",
                                   "measured_on": f"Linux {kernel} in a tiny guest (tcg)"})

    def many(self, tops, *, uri=None, progress=None, image=None):
        self.boots.append([t.name for t in tops])
        return [self.result(t) for t in tops]

    def one(self, scenario, *, uri=None, progress=None, image=None):
        self.boots.append([scenario.name])
        r = simulate(scenario)
        return replace(r, source=MEASURED, provenance={"guest_kernel": "6.1.0-test",
                                                       "accelerator": "tcg"})


@pytest.fixture
def host(monkeypatch):
    fake = FakeHost(wrong="net-hub")
    monkeypatch.setattr(rec, "run_many_on_host", fake.many)
    monkeypatch.setattr(rec, "run_on_host", fake.one)
    return fake


def test_record_runs_every_topology_in_one_boot_and_writes_provenance(host, tmp_path):
    names = ["net-hub", "vlan-seed-two-switches", "nat-default-network", "net-arp"]
    written = network.record_runs(names, into=tmp_path / "new")
    assert host.boots == [["net-hub", "vlan-seed-two-switches", "net-arp"],
                          ["nat-default-network"]]
    assert list(written) == names
    assert {n: (p.name, ok) for n, (p, ok) in written.items()} == {
        "net-hub": ("net-hub.json", False), "vlan-seed-two-switches":
        ("vlan-seed-two-switches.json", True), "nat-default-network":
        ("net-nat-default-network.json", True), "net-arp": ("net-arp.json", True)}
    data = json.loads((tmp_path / "new" / "vlan-seed-two-switches.json").read_text())
    p = data["provenance"]
    assert p["recorded_with"] == rec.RECORDED_WITH and p["model_agreed"] is True
    assert p["guest_kernel"] == "6.1.0-test" and p["recorded_at"].endswith("Z")
    back = NetworkResult.from_dict(data)
    assert compare(simulate("vlan-seed-two-switches"), back).agrees
    hub = json.loads((tmp_path / "new" / "net-hub.json").read_text())
    assert hub["provenance"]["model_agreed"] is False and hub["receivers"][0] == []


def test_record_runs_goes_to_the_users_folder_by_default(host, tmp_path, monkeypatch):
    monkeypatch.delenv("KVMLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    written = network.record_runs(["net-arp"])
    assert written["net-arp"][0] == tmp_path / "kvmlab" / "recorded" / "net-arp.json"
    assert network.recorded_result("net-arp").provenance["guest_kernel"] == "6.1.0-test"
    assert network.compare_recorded(["net-arp"])["net-arp"].agrees


def test_record_runs_checks_every_name_before_a_boot(host, tmp_path):
    for names, match in ((["net-hub", "no-such"], "no-such"),
                         (["net-hub", "net-hub"], "once"), ([], "nothing to record"),
                         (["net-hub", "../x"], "not a path")):
        with pytest.raises(ScenarioError, match=match):
            network.record_runs(names, into=tmp_path)
    assert host.boots == [] and not list(tmp_path.iterdir())


def test_record_by_default_runs_every_topology_scenario(host, tmp_path):
    network.record_runs(into=tmp_path)
    assert len(host.boots) == 1 and sorted(host.boots[0]) == sorted(rec.topology_names())
    assert sorted(p.stem for p in tmp_path.iterdir()) == sorted(rec.topology_names())


def test_the_record_command(host, tmp_path, capsys):
    assert main(["network", "record", "net-hub", "net-arp", "--into", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert out.out.split() == [str(tmp_path / "net-hub.json"), str(tmp_path / "net-arp.json")]
    assert "net-hub" in out.err and "model DIFFERS" in out.err and "model agrees" in out.err
    assert main(["network", "record", "net-nope", "--into", str(tmp_path)]) == 2
    assert "net-nope" in capsys.readouterr().err and len(host.boots) == 1

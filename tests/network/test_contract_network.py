"""The network lab follows the lab contract: the four verbs, one result type for both
sides, the sources, the comparison, the progress protocol and the rooms."""

import ast
import inspect
import json
from dataclasses import replace
from pathlib import Path

import matplotlib
import pytest

from kvmlab import network
from kvmlab.cli import main
from kvmlab.data import scenario_dict
from kvmlab.errors import ScenarioError
from kvmlab.lab import MEASURED, ROOMS, SIMULATED, Comparison, LabResult, lab
from tests.fakes import Recorder

matplotlib.use("Agg")

PACKAGE = Path(network.__file__).parent




def test_the_package_exports_the_four_verbs():
    assert {"load_scenario", "simulate", "run_on_host", "compare"} <= set(network.__all__)
    assert lab("network") is network
    for verb in ("simulate", "run_on_host"):
        params = inspect.signature(getattr(network, verb)).parameters
        assert params["progress"].kind is inspect.Parameter.KEYWORD_ONLY
    assert inspect.signature(network.simulate).parameters["seed"].default == 0
    assert inspect.signature(network.run_on_host).parameters["uri"].default is None


def test_a_scenario_by_name_file_dict_or_topology(tmp_path):
    by_name = network.load_scenario("vlan-seed-two-switches")
    path = tmp_path / "t.json"
    path.write_text(json.dumps(scenario_dict("vlan-seed-two-switches")))
    assert network.load_scenario(path) == by_name == network.load_scenario(str(path))
    assert network.load_scenario(scenario_dict("vlan-seed-two-switches")) == by_name
    assert network.load_scenario(by_name) is by_name
    with pytest.raises(ScenarioError, match="no topology file or shipped topology 'cpu-seed"):
        network.load_scenario("cpu-seed-example")
    with pytest.raises(ScenarioError, match="cannot read topology"):
        network.load_scenario(tmp_path / "missing.json")
    with pytest.raises(ScenarioError, match="not int"):
        network.load_scenario(3)


def test_simulate_records_its_seed_and_reports_progress_per_frame():
    t = network.load_scenario("net-flood-then-learn")
    rec = Recorder()
    r = network.simulate(t, seed=5, progress=rec)
    assert isinstance(r, LabResult) and r.scenario is t
    assert r.source == SIMULATED and r.provenance["seed"] == 5
    assert rec.done == len(t.frames) == rec.total and rec.notes[0].startswith("frame 0")
    assert network.simulate(t, seed=6).receivers == r.receivers       # no randomness
    assert network.simulate(scenario_dict("net-flood-then-learn")).fdb == r.fdb
    with pytest.raises(ScenarioError, match="seed must be a whole number"):
        network.simulate(t, seed=1.5)
    with pytest.raises(ScenarioError, match="progress must be"):
        network.simulate(t, progress="yes")


def test_a_result_has_one_of_the_two_sources():
    r = network.simulate("net-hub")
    assert replace(r, source=MEASURED).source == "measured"
    with pytest.raises(ScenarioError, match="source is one of simulated, measured"):
        replace(r, source="real kernel")


def test_the_comparison_counts_frames_and_tables_that_differ():
    sim = network.simulate("net-arp")
    same = network.compare(sim, replace(sim, source=MEASURED))
    assert isinstance(same, Comparison)
    assert same.agrees and same.max_error == 0.0
    assert list(same.to_dict()) == ["agrees", "max_error", "frame_differences",
                                    "fdb_differences", "tag_differences", "reply_differences",
                                    "packet_differences"]
    # frame 0 reaches nobody on the "kernel" side; its ARP reply is lost with it
    measured = replace(sim, source=MEASURED, receivers=[(), *sim.receivers[1:]],
                       tags=[{}, *sim.tags[1:]], replies=[(), *sim.replies[1:]],
                       fdb={name: {} for name in sim.fdb})
    c = network.compare(sim, measured)
    assert not c.agrees and c.differing_frames == [0]
    assert c.max_error == 1.0 + len(c.fdb_differences) == 2.0
    out = c.to_dict()
    assert out["agrees"] is False and out["max_error"] == 2.0
    assert out["frame_differences"] == [{"frame": 0, "simulated": ["vm2:eth0", "vm3:eth0"],
                                         "real": []}]
    assert "<- differs" in c.table() and str(c) == c.table()
    ax = c.plot()
    assert ax.get_title(loc="left").startswith("net-arp: 1 of 3 frames differ")


def test_compare_refuses_what_it_cannot_compare():
    with pytest.raises(ScenarioError, match="compare takes two NetworkResult results"):
        network.compare(network.simulate("net-hub"), {"receivers": []})
    with pytest.raises(ScenarioError, match="same topology"):
        network.compare(network.simulate("net-hub"), network.simulate("net-arp"))


def test_the_cli_has_the_shared_verbs(capsys):
    assert main(["network", "simulate", "net-hub", "--seed", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["source"] == "simulated" and out["provenance"]["seed"] == 3
    # a NAT scenario's recording cannot stand in for a topology's run
    assert main(["network", "compare", "net-hub", "--recorded",
                 "net-nat-default-network"]) != 0
    assert "ran scenario 'nat-default-network'" in capsys.readouterr().err


def _imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_every_room_is_there_and_keeps_to_its_job():
    assert all((PACKAGE / f"{room}.py").exists() for room in ROOMS)
    assert not {"simpy", "kvmlab.network.model"} & _imports("twin")
    assert not {"kvmlab.network.model", "kvmlab.network.twin"} & _imports("plot")
    assert not any(m.startswith("kvmlab.host") or m == "libvirt" for m in _imports("model"))

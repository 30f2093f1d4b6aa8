"""The storage lab follows the lab contract: load, simulate, run on the host, compare."""

from __future__ import annotations

import inspect
import json
import shutil
import subprocess
import sys

import matplotlib
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from kvmlab import storage
from kvmlab.cli import main
from kvmlab.errors import ScenarioError, ToolMissing
from kvmlab.lab import MEASURED, SIMULATED, Comparison
from kvmlab.storage import twin
from kvmlab.storage.reader import Qcow2File
from tests.fakes import Recorder

HAVE_QEMU = shutil.which("qemu-img") is not None and shutil.which("qemu-io") is not None
needs_qemu = pytest.mark.skipif(not HAVE_QEMU, reason="qemu-utils is not installed")
MiB = 1024 * 1024
FIRST = {"format": "qcow2", "virtual_size": 10 * MiB, "cluster_size": 65536,
         "writes": [[MiB, 65536], [100, 10]]}




@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_the_verbs_are_exported_with_the_contracts_signatures():
    for verb in ("load_scenario", "simulate", "run_on_host", "compare"):
        assert verb in storage.__all__
    assert "run_with_qemu" not in storage.__all__ and not hasattr(storage, "run_with_qemu")
    sim = inspect.signature(storage.simulate).parameters
    assert (sim["seed"].kind, sim["seed"].default) == (inspect.Parameter.KEYWORD_ONLY, 0)
    assert (sim["progress"].kind, sim["progress"].default) == (
        inspect.Parameter.KEYWORD_ONLY, None)
    run = inspect.signature(storage.run_on_host).parameters
    assert (run["uri"].kind, run["uri"].default) == (inspect.Parameter.KEYWORD_ONLY, None)
    assert list(inspect.signature(storage.compare).parameters) == ["simulated", "measured"]


def test_load_scenario_takes_names_files_dicts_and_scenarios(tmp_path):
    by_name = storage.load_scenario("storage-first-writes")
    assert by_name.writes == ((MiB, 65536), (100, 10)) and by_name.name == "storage-first-writes"
    path = tmp_path / "s.json"
    path.write_text(json.dumps(FIRST))
    from_file = storage.load_scenario(path)
    assert from_file == storage.load_scenario(str(path)) == storage.load_scenario(FIRST)
    assert storage.load_scenario(from_file) is from_file
    with pytest.raises(ScenarioError, match=r"no storage scenario file or shipped storage "
                                            r"scenario 'cpu-seed-example'.*storage-first-writes"):
        storage.load_scenario("cpu-seed-example")
    with pytest.raises(ScenarioError, match="a shipped name, a JSON file, a dict"):
        storage.load_scenario(42)


@pytest.mark.parametrize("name", ["storage-first-writes", "storage-overlay",
                                  "storage-snapshots", "storage-several-writes",
                                  "storage-raw-sparse"])
def test_the_shipped_scenarios_load_and_simulate(name):
    result = storage.simulate(storage.load_scenario(name))
    assert result.source == SIMULATED and result.map


def test_simulate_records_the_seed_and_reports_progress():
    rec = Recorder()
    scenario = {**FIRST, "snapshots": [{"after": 1, "name": "s1"}]}
    result = storage.simulate(scenario, seed=7, progress=rec)
    assert result.provenance["seed"] == 7 and result.source == SIMULATED
    assert rec.done == rec.total == 3                         # two writes and a snapshot
    assert storage.simulate(scenario, seed=7) == result
    raw = storage.simulate({"format": "raw", "virtual_size": MiB, "writes": [[0, 1]]},
                           seed=3, progress=Recorder())
    assert raw.provenance["seed"] == 3
    with pytest.raises(ScenarioError, match="seed must be a whole number"):
        storage.simulate(FIRST, seed=1.5)
    with pytest.raises(ScenarioError, match="progress must be"):
        storage.simulate(FIRST, progress="yes")


def test_a_result_has_one_of_the_two_sources_and_survives_json():
    result = storage.simulate(FIRST)
    assert storage.StorageResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    with pytest.raises(ScenarioError, match="source is 'simulated' or 'measured'"):
        storage.StorageResult(result.scenario, "model", [], 0, 0)


def test_compare_refuses_what_is_not_a_storage_result():
    result = storage.simulate(FIRST)
    with pytest.raises(ScenarioError, match="compare takes two StorageResult results"):
        storage.compare(result, result.to_dict())


def test_a_comparison_counts_what_differs_and_lays_it_out():
    a = storage.simulate(FIRST)
    same = storage.compare(a, a)
    assert isinstance(same, Comparison) and same.agrees and same.max_error == 0.0
    assert list(same.to_dict())[:2] == ["agrees", "max_error"]
    assert {"map_entries", "map_differences", "allocated_clusters",
            "image_end_offset"} <= set(same.to_dict())
    b = storage.simulate({**FIRST, "writes": [[MiB, 65536], [200000, 10]]})
    differ = storage.compare(a, b)
    # the data cluster and the hole before it moved: 3 entries, and the same figures
    assert not differ.agrees and differ.max_error == float(len(differ.map_differences)) > 0
    assert differ.to_dict()["map_differences"][0]["simulated"] is not None
    c = storage.simulate({**FIRST, "writes": [[MiB, 65536]]})
    fewer = storage.compare(a, c)
    assert fewer.max_error == len(fewer.map_differences) + 2     # both figures differ too
    text = differ.table()
    assert "simulated" in text and "measured" in text and "image_end_offset" in text
    assert f"max_error: {differ.max_error:g}" in text and str(differ) == text
    assert differ.summary().endswith("end 458752 vs 458752")


def test_a_comparison_draws_both_maps_and_marks_the_differences():
    a = storage.simulate(FIRST)
    b = storage.simulate({**FIRST, "writes": [[MiB, 65536], [200000, 10]]})
    comparison = storage.compare(a, b)
    ax = comparison.plot()
    assert isinstance(ax, Axes)
    assert len(ax.patches) == len(a.map) + len(b.map)
    marked = [p for p in ax.patches if p.get_gid().endswith("differs")]
    assert len(marked) == sum((x is not None) + (y is not None)
                              for x, y in comparison.map_differences)
    assert "entries differ" in ax.get_title(loc="left")
    assert "the same" in storage.compare(a, a).plot().get_title(loc="left")
    assert isinstance(a.plot(), Axes)


def test_the_model_gets_a_backing_file_as_data(tmp_path):
    base = tmp_path / "base.qcow2"
    image = storage.Qcow2Model(2 * MiB, 65536)
    image.write(0, 70000)
    # what the reader makes of a file is plain data: the model needs nothing else
    layer = Qcow2File(str(base), 2 * MiB, 65536, clusters=tuple(sorted(image.data.items())))
    overlay = storage.StorageScenario(virtual_size=2 * MiB, cluster_size=4096,
                                      writes=((4096, 1),), backing=layer)
    result = storage.simulate(overlay)                    # no file at `base`: never opened
    assert not base.exists()
    assert [e["depth"] for e in result.map if e["data"]] == [1, 0, 1]
    assert overlay.to_dict()["backing"] == str(base)


@needs_qemu
def test_a_backing_path_becomes_data_and_the_twin_uses_its_path(tmp_path):
    base = twin.make_image(storage.StorageScenario.from_dict(
        {"virtual_size": 2 * MiB, "cluster_size": 65536, "writes": [[0, 70000]]}),
        tmp_path / "base.qcow2")
    scenario = storage.load_scenario({"virtual_size": 2 * MiB, "cluster_size": 4096,
                                      "writes": [[4096, 1]], "backing": str(base)})
    assert isinstance(scenario.backing, Qcow2File)
    assert scenario.backing.path == str(base) and len(scenario.backing.clusters) == 2
    measured = storage.run_on_host(scenario)
    base.unlink()                                          # the model needs no file
    assert storage.compare(storage.simulate(scenario), measured).agrees


def test_run_on_host_refuses_a_host_that_is_not_this_machines_qemu():
    for uri in ("test:///default", "qemu+ssh://root@192.0.2.1/system", "xen:///system",
                "qemu://elsewhere/system"):
        with pytest.raises(ScenarioError, match="local QEMU host only"):
            storage.run_on_host(FIRST, uri=uri)


def test_a_missing_qemu_img_is_a_missing_tool(monkeypatch):
    monkeypatch.setattr(twin.shutil, "which", lambda name: None)
    with pytest.raises(ToolMissing, match="qemu-img is not installed on this machine"):
        storage.run_on_host(FIRST)


@needs_qemu
def test_run_on_host_is_measured_with_its_tool_in_the_provenance():
    rec = Recorder()
    scenario = {**FIRST, "snapshots": [{"after": 1, "name": "s1"}],
                "backing": {"virtual_size": 10 * MiB, "writes": [[0, 1]]}}
    measured = storage.run_on_host(scenario, uri="qemu:///system", progress=rec)
    assert measured.source == MEASURED
    assert measured.provenance["tool"].startswith("qemu-img version")
    assert measured.provenance["uri"] == "qemu:///system" and measured.provenance["date"]
    # base: create + one qemu-io; overlay: create, qemu-io, snapshot, qemu-io; then a look
    assert rec.done == rec.total == 7
    assert "qemu-img snapshot -c s1" in rec.notes
    assert type(measured) is type(storage.simulate(scenario))


def test_the_problem_generator_does_not_load_matplotlib():
    code = ("import sys; from kvmlab.storage import problems; problems.main_problem(1, True);"
            "import kvmlab.storage.widgets, kvmlab.storage.commands;"
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().endswith("False")


def test_the_cli_takes_names_and_compare_prints_agrees_and_max_error(capsys):
    assert main(["storage", "simulate", "storage-first-writes", "--seed", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["source"] == SIMULATED and out["provenance"]["seed"] == 2
    assert main(["storage", "run", "storage-first-writes", "--uri", "test:///default"]) == 2
    assert "local QEMU host only" in capsys.readouterr().err


@needs_qemu
def test_the_cli_compare_prints_the_comparison(capsys):
    assert main(["storage", "compare", "storage-overlay"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert list(out)[:2] == ["agrees", "max_error"]
    assert out["agrees"] is True and out["max_error"] == 0.0
    assert "check figures" in captured.err

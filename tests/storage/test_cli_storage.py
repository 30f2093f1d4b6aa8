import json
import shutil

import pytest

from kvmlab.cli import main
from tests.conftest import IN_CI

SCENARIO = {"format": "qcow2", "virtual_size": 10485760, "cluster_size": 65536,
            "writes": [[1048576, 65536], [100, 10]]}


def test_simulate_prints_the_documented_fields(tmp_path, capsys):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(SCENARIO))
    assert main(["storage", "simulate", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["allocated_clusters"] == 2 and out["image_end_offset"] == 458752
    assert out["map"][0] == {"start": 0, "length": 65536, "depth": 0, "present": True,
                             "zero": False, "data": True, "offset": 393216}


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-utils is not installed")
def test_run_and_compare_agree(tmp_path, capsys):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(SCENARIO))
    assert main(["storage", "run", str(path)]) == 0
    real = json.loads(capsys.readouterr().out)
    assert main(["storage", "simulate", str(path)]) == 0
    model = json.loads(capsys.readouterr().out)
    assert real["map"] == model["map"]
    assert main(["storage", "compare", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["agrees"] is True


def test_bad_scenario_is_one_clear_line(tmp_path, capsys):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({**SCENARIO, "cluster_size": 1000}))
    assert main(["storage", "simulate", str(path)]) == 2
    assert "power of two between 512 B and 2 MiB" in capsys.readouterr().err


def test_storage_problems_are_seeded_with_hidden_answers(capsys):
    assert main(["problems", "storage", "-s", "4"]) == 0
    first = capsys.readouterr().out
    assert main(["problems", "storage", "-s", "4"]) == 0
    assert capsys.readouterr().out == first and "seed 4" in first
    assert main(["problems", "storage", "-s", "4", "-c"]) == 0
    assert len(capsys.readouterr().out) > len(first)


@pytest.mark.parametrize("name, figure", [("storage-vmdk-sparse", "image_end_offset"),
                                          ("storage-qcow2-compressed", "compressed_clusters")])
def test_compare_vmdk_and_compressed_prints_the_same_shape(name, figure, capsys):
    if shutil.which("qemu-img") is None and not IN_CI:
        pytest.skip("qemu-utils is not installed")
    assert main(["storage", "compare", name]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out)[:2] == ["agrees", "max_error"] and out["agrees"] is True
    assert out[figure][0] == out[figure][1] and "map_differences" in out


def test_convert_prints_both_conversions(capsys):
    if shutil.which("qemu-img") is None and not IN_CI:
        pytest.skip("qemu-utils is not installed")
    assert main(["storage", "convert", "storage-vmdk-sparse"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["agrees"] is True
    assert set(out["conversions"]) == {"vmdk -> qcow2", "qcow2 -> vmdk"}
    assert "vmdk -> qcow2: agrees" in captured.err


@pytest.mark.parametrize("verb", ["run", "compare"])
def test_in_guest_refuses_what_a_guest_cannot_do_before_touching_a_host(verb, capsys):
    assert main(["storage", verb, "storage-first-writes", "--in-guest", "--uri",
                 "test:///default"]) == 2
    assert "a guest's run needs a QEMU host" in capsys.readouterr().err
    assert main(["storage", verb, "storage-snapshots", "--in-guest"]) == 2
    assert "takes no internal snapshots" in capsys.readouterr().err


def test_simulate_has_no_in_guest_option(capsys):
    with pytest.raises(SystemExit):
        main(["storage", "simulate", "storage-first-writes", "--in-guest"])


@pytest.mark.parametrize("verb", ["run", "compare"])
@pytest.mark.parametrize("uri", ["qemu+ssh://root@lab2.invalid/system",
                                 "qemu+tcp://192.0.2.1/session"])
def test_a_remote_host_without_in_guest_is_refused_saying_to_add_it(verb, uri, capsys):
    assert main(["storage", verb, "storage-first-writes", "--uri", uri]) == 2
    err = capsys.readouterr().err
    assert "local QEMU host only" in err and "add --in-guest" in err and uri in err


@pytest.mark.parametrize("uri", ["qemu+ssh://lab2.invalid/", "qemu+ssh://lab2.invalid/embed",
                                 "xen+ssh://lab2.invalid/system", "test+ssh://h/default"])
def test_in_guest_refuses_a_remote_uri_that_names_no_qemu_daemon(uri, capsys):
    assert main(["storage", "run", "storage-first-writes", "--in-guest", "--uri", uri]) == 2
    assert "a guest's run needs a QEMU host" in capsys.readouterr().err

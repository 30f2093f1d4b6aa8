import json

import pytest

import kvmlab
from kvmlab.cli import build_parser, main


def test_versions_json_lists_the_stack(capsys):
    assert main(["versions", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kvmlab"] == kvmlab.__version__
    assert {"simpy", "networkx", "matplotlib", "ipywidgets", "jupyterlab"} <= set(info)


def test_show_versions_prints_aligned_lines(capsys):
    kvmlab.show_versions()
    lines = capsys.readouterr().out.splitlines()
    assert lines and len({line.index(" : ") for line in lines}) == 1


def test_unknown_subcommand_is_a_usage_error():
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["nonsense"])
    assert info.value.code == 2


def test_kvmlab_errors_become_one_line_messages(capsys, monkeypatch):
    monkeypatch.setenv("KVMLAB_URI", "nosuchdriver:///x")
    # a guest run against a URI with no driver: a clear message, exit status 2
    assert main(["guest", "run", "true", "--uri", "nosuchdriver:///x", "--accel", "tcg"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kvmlab: error: Cannot reach libvirt at 'nosuchdriver:///x'")
    assert "Traceback" not in err

import json

from kvmlab.cli import main
from kvmlab.data import scenario_dict


def test_simulate_a_shipped_topology_by_name(capsys):
    assert main(["network", "simulate", "net-flood-then-learn", "--steps"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["receivers"] == [["vm2:eth0", "vm3:eth0"], ["vm1:eth0"], ["vm2:eth0"]]
    assert out["fdb"]["br0"] == {"52:54:00:00:00:0a": "vnet0", "52:54:00:00:00:0b": "vnet1"}
    assert "flood" in captured.err and "learn" in captured.err


def test_simulate_a_file_and_a_clear_error_for_a_bad_one(tmp_path, capsys):
    good = tmp_path / "t.json"
    good.write_text(json.dumps(scenario_dict("net-hub")))
    assert main(["network", "simulate", str(good)]) == 0
    assert json.loads(capsys.readouterr().out)["fdb"] == {"br0": {}}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"bridges": [{"name": "br0", "ageing_s": 0, "ports": ["a/b"]}]}))
    assert main(["network", "simulate", str(bad)]) == 2
    assert "not a valid interface name here" in capsys.readouterr().err

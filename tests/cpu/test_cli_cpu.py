import json

import pytest

from kvmlab.cli import main


def test_simulate_prints_the_documented_json(capsys, tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"pcpus": 2, "duration_s": 1, "vms": [
        {"name": "vm1", "vcpus": 2, "pin": [0], "shares": 1024, "load": 1.0}]}))
    assert main(["cpu", "simulate", str(path), "--seed", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(v["vm"], v["vcpu"]) for v in out["vcpus"]] == [("vm1", 0), ("vm1", 1)]
    for v in out["vcpus"]:
        assert v["run_share"] == pytest.approx(0.5, abs=0.01)       # both pinned to pCPU 0
        assert v["wait_share"] == pytest.approx(0.5, abs=0.01)
    assert out["provenance"]["seed"] == 3


def test_a_shipped_scenario_can_be_named(capsys):
    assert main(["cpu", "simulate", "cpu-seed-example", "--duration", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["scenario"]["name"] == "cpu-seed-example" and out["duration_s"] == 1


def test_compare_with_a_recording_prints_errors(capsys):
    from kvmlab.data import recorded_names

    names = recorded_names("cpu-pinned-unequal")
    if not names:
        pytest.skip("no recorded run of cpu-pinned-unequal")
    assert main(["cpu", "compare", "cpu-pinned-unequal", "--recorded", names[0]]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert list(out)[:2] == ["agrees", "max_error"]
    assert out["max_error"] <= 0.05 and out["agrees"] is True
    assert "largest error" in captured.err


@pytest.mark.parametrize(("content", "message"), [
    ('{"pcpus": 0, "duration_s": 1, "vms": [{"name": "a", "vcpus": 1}]}', "at least 1"),
    ('{"pcpus": 2, "duration_s": 1, "vms": [{"name": "a", "vcpus": 1, "load": 2}]}',
     "between 0 and 1"),
    ("{not json", "is not valid JSON"),
])
def test_bad_scenarios_give_one_clear_line(capsys, tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert main(["cpu", "simulate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kvmlab: error: ") and message in err and "Traceback" not in err


def test_a_missing_or_unreadable_file_is_one_clear_line(capsys, tmp_path):
    assert main(["cpu", "simulate", str(tmp_path / "nope.json")]) == 2
    assert "cannot read scenario" in capsys.readouterr().err
    assert main(["cpu", "simulate", str(tmp_path)]) == 2
    assert "cannot read scenario" in capsys.readouterr().err


def test_an_unknown_scenario_name_lists_the_shipped_ones(capsys):
    assert main(["cpu", "simulate", "cpu-nonesuch"]) == 2
    assert "cpu-seed-example" in capsys.readouterr().err


def test_problems_are_seeded_and_answers_hidden_unless_asked(capsys):
    assert main(["problems", "cpu", "-s", "7"]) == 0
    first = capsys.readouterr().out
    assert main(["problems", "cpu", "-s", "7"]) == 0
    assert capsys.readouterr().out == first
    assert "ARG seed 7" in first and "Worked answer" not in first
    assert main(["problems", "cpu", "-s", "7", "-c"]) == 0
    assert "Worked answer" in capsys.readouterr().out


def test_agreement_compares_schedulers_with_the_recorded_repetitions(capsys):
    assert main(["cpu", "agreement", "cpu-pinned-unequal", "--scheduler", "fair",
                 "--seeds", "1"]) == 0
    captured = capsys.readouterr()
    (row,) = json.loads(captured.out)
    assert row["name"] == "cpu-pinned-unequal" and row["scheduler"] == "fair"
    assert row["repetitions"] >= 3 and row["agrees"] is True
    assert "cpu-pinned-unequal" in captured.err
    assert main(["cpu", "agreement", "cpu-pinned-unequal", "--scheduler", "cfs"]) != 0
    assert "not one of fair, linux, round-robin" in capsys.readouterr().err


def test_agreement_save_writes_the_table_notebook_01_reads(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("KVMLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))     # the user's folder, then shipped
    assert main(["cpu", "agreement", "cpu-pinned-unequal", "--scheduler", "fair",
                 "--seeds", "1", "--save"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    saved = json.loads((tmp_path / "kvmlab" / "recorded" / "agreement-cpu.json").read_text())
    assert saved == {"seeds": 1, "rows": [row]}


def test_agreement_with_the_machine_group_runs_the_linux_model_with_it(capsys, monkeypatch):
    from kvmlab.cpu import agreement as agreement_module

    seen = []
    real = agreement_module.simulate_linux
    monkeypatch.setattr(agreement_module, "simulate_linux",
                        lambda *a, **k: seen.append(k["machine_group"]) or real(*a, **k))
    assert main(["cpu", "agreement", "cpu-pinned-unequal", "--scheduler", "fair,linux",
                 "--seeds", "1", "--machine-group"]) == 0
    assert seen == [True] and len(json.loads(capsys.readouterr().out)) == 2
    assert main(["cpu", "agreement", "cpu-pinned-unequal", "--machine-group", "--save"]) != 0
    assert "cannot be saved with --machine-group" in capsys.readouterr().err


def test_simulate_uses_the_scheduler_that_agrees_best_unless_told(capsys):
    from kvmlab.cpu.agreement import recorded_agreement

    rows = recorded_agreement()["rows"]
    agreeing = {s: sum(r["agrees"] for r in rows if r["scheduler"] == s) for s in ("fair", "linux")}
    best = max(agreeing, key=agreeing.get)
    for extra, scheduler in ([], best), (["--scheduler", "fair"], "fair"):
        assert main(["cpu", "simulate", "cpu-seed-example", "--duration", "0.5", *extra]) == 0
        assert json.loads(capsys.readouterr().out)["provenance"]["scheduler"] == scheduler


def test_a_scenario_too_large_for_the_linux_model_is_one_clear_error(capsys, tmp_path):
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"pcpus": 2, "duration_s": 300, "vms": [
        {"name": f"vm{i}", "vcpus": 2} for i in range(4)]}))
    assert main(["cpu", "simulate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kvmlab: error: this scenario is too large for the linux model")
    assert "scheduler='fair'" in err and len(err.splitlines()) == 1
    assert main(["cpu", "simulate", str(path), "--scheduler", "fair", "--duration", "1"]) == 0


def test_record_refuses_bad_noise_before_it_starts_a_guest(capsys, monkeypatch):
    def no_run(*_args, **_kwargs):
        raise AssertionError("a run started")

    monkeypatch.setattr("kvmlab.cpu.twin.run_on_host", no_run)
    assert main(["cpu", "record", "cpu-seed-example", "--noise", "-3"]) == 2
    assert "bursts_per_s must be a number from 0 to 1000, not -3" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "message"), [
    (["--sleeps", "-1"], "sleeps_per_s must be from 0 to 20000, not -1.0"),
    (["--sleeps", "1e6"], "sleeps_per_s must be from 0 to 20000, not 1000000.0"),
    (["--window", "0.01"], "window_s must be from 0.2 to 120 s, not 0.01"),
])
def test_repro_pinned_refuses_bad_input_before_it_starts_a_process(capsys, monkeypatch,
                                                                   args, message):
    def no_start(*_args, **_kwargs):
        raise AssertionError("the experiment started")

    monkeypatch.setattr("kvmlab.cpu.repro_pinned.ReproCgroups", no_start)
    assert main(["cpu", "repro-pinned", *args]) == 2
    err = capsys.readouterr().err
    assert err == f"kvmlab: error: {message}\n"


def test_repro_pinned_prints_the_share_as_json(capsys, monkeypatch):
    seen = {}

    def pinned_share(sleeps_per_s, *, emulator, window_s):
        seen.update(sleeps_per_s=sleeps_per_s, emulator=emulator, window_s=window_s)
        return 0.04321

    monkeypatch.setattr("kvmlab.cpu.commands.pinned_share", pinned_share)
    assert main(["cpu", "repro-pinned", "--sleeps", "300", "--no-emulator"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"sleeps_per_s": 300.0, "emulator": False, "window_s": 2.0,
                               "vm1_share": 0.0432}
    assert seen == {"sleeps_per_s": 300.0, "emulator": False, "window_s": 2.0}
    assert "VM 1's share of CPU 0: 0.043" in err and "without emulator" in err

"""``kvmlab sweep`` and ``kvmlab hosts`` from the command line."""

from __future__ import annotations

import csv
import socket

from kvmlab.cli import main


def test_sweep_prints_means_and_bands_and_writes_every_run(tmp_path, capsys):
    out = tmp_path / "runs.csv"
    assert main(["sweep", "cpu-overcommit", "--set", "ratio=1,3", "--set", "load=0.6",
                 "--set", "duration_s=1", "--seeds", "0-3", "--csv", str(out),
                 "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["ratio", "load", "duration_s", "n", "run_share"]
    assert lines[2].split()[:4] == ["1", "0.6", "1", "4"] and "\u00b1" in lines[3]
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2 * 4 and {r["seed"] for r in rows} == {"0", "1", "2", "3"}


def test_sweep_resumes_from_its_save_file(tmp_path, capsys):
    save = tmp_path / "runs.jsonl"
    args = ["sweep", "tlb-working-set", "--set", "working_set_kib=64,4096",
            "--set", "accesses=2000", "--save", str(save), "--serial", "--rows"]
    assert main([*args, "--quiet"]) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.out == first
    assert "2/2" in captured.err and len(save.read_text().splitlines()) == 3


def test_bad_input_gets_the_rule_not_a_traceback(capsys):
    assert main(["sweep", "cpu-overcommit", "--set", "ratio"]) == 2
    assert "--set takes NAME=VALUE" in capsys.readouterr().err
    assert main(["sweep", "cpu-overcommit", "--seeds", "a-b"]) == 2
    assert "--seeds takes FIRST-LAST" in capsys.readouterr().err
    assert main(["sweep", "tlb-working-set", "--host", "--set", "accesses=10"]) == 2
    assert "tlb-working-set has no real-host version" in capsys.readouterr().err
    assert main(["sweep", "cpu-overcommit", "--host", "--set", "scheduler=fair"]) == 2
    assert "model only" in capsys.readouterr().err


def test_hosts_reports_each_host_and_fails_if_one_is_unreachable(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["hosts", "test:///default", f"qemu+tcp://127.0.0.1:{port}/system",
                 "--timeout", "3"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[2].startswith("test:///default") and " yes " in out[2]
    assert " no " in out[3] and "connection refused" in out[3]
    assert main(["hosts", "test:///default", "--json"]) == 0
    assert '"hypervisor": "TEST"' in capsys.readouterr().out

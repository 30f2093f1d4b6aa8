"""``kvmlab memory``: walk, translate and problems (trace is covered by the live tests)."""

import json

import pytest

from kvmlab.cli import main


@pytest.mark.parametrize(("guest", "host", "levels", "refs"), [
    ("4K", "4K", "4", 24), ("2M", "4K", "4", 19), ("4K", "2M", "4", 19), ("2M", "2M", "4", 15),
    ("1G", "1G", "4", 8), ("4K", "4K", "5", 35)])
def test_walk_json_gives_the_worst_case_count_and_every_step(capsys, guest, host, levels, refs):
    assert main(["memory", "walk", "--guest-page", guest, "--host-page", host, "--levels",
                 levels, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["references"] == refs == len(out["steps"])
    assert out["formula"].endswith(f"= {refs}")
    assert {s["dimension"] for s in out["steps"]} == {"guest", "nested"}


def test_translate_follows_a_kernel_address_through_a_mapping_of_yours(capsys):
    assert main(["memory", "translate", "0xffffffff81000042", "--map",
                 "0xffffffff81000000:0x1000000:2M", "--host-page", "1G", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["pa"], out["ma"], out["references"]) == ("0x1000042", "0x101000042", 11)


def test_translate_reports_a_page_fault_as_a_result(capsys):
    assert main(["memory", "translate", "0x1000", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pa"] is None and out["ma"] is None
    assert out["fault"].startswith("guest page fault")


@pytest.mark.parametrize(("args", "rule"), [
    (["0x800000000000"], "not a canonical 48-bit address"),
    (["0x1000", "--map", "0x1000:0x1234"], "starts on a multiple of its size"),
    (["0x1000", "--map", "0x1000"], "VA:PA or VA:PA:SIZE"),
    (["0x1000", "--map", "0x1000:0x2000:8K"], "4K, 2M or 1G"),
    (["twelve"], "must be a number"),
])
def test_bad_input_names_the_rule(capsys, args, rule):
    assert main(["memory", "translate", *args]) == 2
    assert rule in capsys.readouterr().err


def test_problems_both_ways(capsys):
    assert main(["memory", "problems", "-s", "4", "-c"]) == 0
    first = capsys.readouterr().out
    assert main(["problems", "memory", "-s", "4", "-c"]) == 0
    assert capsys.readouterr().out == first and "Answer: pa = " in first


@pytest.mark.parametrize("argv", [["memory", "ksm", "10", "2", "--run", "--record", "../x"],
                                  ["memory", "trace", "--record", "/tmp/x"]])
def test_a_recording_path_is_refused_before_any_guest_boots(argv, capsys):
    from kvmlab.cli import main

    assert main(argv) == 2
    assert "a recording name is a name, not a path" in capsys.readouterr().err

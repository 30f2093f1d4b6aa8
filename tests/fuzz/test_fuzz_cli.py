"""``kvmlab.cli.main`` with generated command lines, scenario files and sweep grids: exit
status 0 (with strict JSON where a verb prints JSON) or 2 (one ``kvmlab: error:`` line or
argparse's usage message), never 70 (an internal error) and never a traceback."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from kvmlab.cli import build_parser, main
from kvmlab.data import scenario_names
from tests.fuzz.strategies import QUICK_NASTY, fuzz_settings, mutated, shipped

ROOTS = {"cpu", "memory", "storage", "network", "sweep", "problems"}
"""The commands fuzzed: the labs' models, sweeps and problems. Every other one reaches a
host, starts a server or writes files, and is left out (new ones too, until listed)."""
FORBIDDEN = {"run", "compare", "trace", "repro", "record", "agreement", "doctor", "guest",
             "classroom", "hosts", "versions",
             "--uri", "--host", "--record", "--run", "--save", "--workers", "--cleanup",
             "--force", "--fresh", "--recorded", "-h", "--help", "--list", "--csv"}
"""Commands and options that reach a host, write files, only print help or, like
``agreement`` (every recording against ten simulations), run for minutes: left out."""

WORDS = ["", "-1", "0", "1", "2", "3", "7", "0.5", "nan", "inf", "-inf", "1e999", "1e9",
         "1000000000", "9" * 5000, "0x400000001234", "0x400000000000", "0x7fffffffffffffffff",
         "x", "null", "4K", "2M", "1G", "3K", "fair", "round-robin", "ratio=1,2", "=", "0-1",
         "5-2", "0,0", "cpu-seed-example", "memory-trace", "net-hub", "storage-first-writes",
         "cpu", "vlan", "--", "-"]
"""Arguments that broke a command once, or could."""


def _commands() -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every leaf command of ``kvmlab`` and its parser, the forbidden ones left out."""
    found: dict[tuple[str, ...], argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            found[path] = parser
        for action in subs:
            for name, child in action.choices.items():
                if name not in FORBIDDEN and (path or name in ROOTS):
                    walk(child, (*path, name))
    walk(build_parser(), ())
    return found


COMMANDS = _commands()


def _options(parser: argparse.ArgumentParser) -> list[tuple[str, bool]]:
    """(option, takes a value) of a parser, the forbidden ones left out."""
    out = []
    for action in parser._actions:
        for flag in action.option_strings:
            if flag not in FORBIDDEN:
                out.append((flag, action.nargs != 0))
    return out


def _positionals(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not a.option_strings
            and not isinstance(a, argparse._SubParsersAction)]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Scenario files that broke the loaders once, in a folder of their own."""
    folder = tmp_path_factory.mktemp("kvmlab-fuzz")
    made = {
        "not-utf8": b'{"pcpus": 2, "name": "caf\xe9"}',
        "deep": b"[" * 100_000,
        "deep-objects": b'{"a":' * 5000 + b"1" + b"}" * 5000,
        "huge-int": b'{"pcpus": ' + b"9" * 5000 + b"}",
        "nan": b'{"pcpus": NaN, "duration_s": 1, "vms": []}',
        "overflow": b'{"pcpus": 2, "duration_s": 1e999, "vms": [{"name": "a", "vcpus": 1}]}',
        "empty": b"",
        "not-json": b"pcpus: 2",
        "bom": b'\xef\xbb\xbf{"pcpus": 2}',
        "nul": b"\x00" * 10,
    }
    paths = {}
    for name, raw in made.items():
        path = folder / f"{name}.json"
        path.write_bytes(raw)
        paths[name] = str(path)
    (folder / "a-folder.json").mkdir()
    paths["a-folder"] = str(folder / "a-folder.json")
    paths["missing"] = str(folder / "missing" / "x.json")
    paths["folder"] = str(folder)
    return paths


def run(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)``: exit status, standard output, standard error."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exc:           # argparse: a usage error (2)
            status = exc.code if isinstance(exc.code, int) else 2
    return status, out.getvalue(), err.getvalue()


def check(argv: list[str], status: int, out: str, err: str) -> None:
    """What every command line must give: 0 or 2, one clear message, strict JSON."""
    assert status in (0, 2), f"kvmlab {argv}: exit status {status}: {err[-500:]}"
    assert "Traceback" not in err and "internal error" not in err, err[-2000:]
    if status == 2:
        event("refused")
        assert "error" in err
    else:
        event("ran")
        if argv[1:2] == ["simulate"]:
            def refuse(name: str) -> Any:
                raise AssertionError(f"{name} in the JSON of kvmlab {argv}")
            assert isinstance(json.loads(out, parse_constant=refuse), dict)


@fuzz_settings(150, deadline_s=20)
@given(data=st.data())
def test_generated_command_lines(data, files):
    path = data.draw(st.sampled_from(sorted(COMMANDS)))
    parser = COMMANDS[path]
    words = st.sampled_from(WORDS + sorted(files.values()))
    argv = list(path)
    for action in _positionals(parser):
        if action.dest == "scenario":
            argv.append(data.draw(st.one_of(st.sampled_from(scenario_names()), words)))
        elif action.nargs not in ("?", "*") or data.draw(st.booleans()):
            argv.append(data.draw(words))
    options = _options(parser)
    for flag, takes_value in data.draw(st.lists(st.sampled_from(options), max_size=3)
                                       if options else st.just([])):
        argv += [flag, data.draw(words)] if takes_value else [flag]
    if path == ("sweep",):
        argv += ["--serial", "--quiet", "--seeds", "0"]
    check(argv, *run(argv))


@pytest.mark.parametrize("lab", ["cpu", "memory", "storage", "network"])
@fuzz_settings(40, deadline_s=20)
@given(data=st.data())
def test_scenario_files_through_the_command_line(lab, data, files):
    prefixes = ("net-", "vlan-") if lab == "network" else (f"{lab}-",)
    tree = data.draw(mutated(data.draw(st.sampled_from([t for p in prefixes
                                                         for t in shipped(p)])),
                             values=st.sampled_from(QUICK_NASTY)))
    text = json.dumps(tree)                       # NaN and Infinity as Python writes them
    how = data.draw(st.sampled_from(["as is", "latin-1", "cut", "nested"]))
    if how == "latin-1":
        raw = text.replace("}", ', "name": "caf\u00e9"}', 1).encode("latin-1", "replace")
    elif how == "cut":
        raw = text[:data.draw(st.integers(0, len(text)))].encode()
    elif how == "nested":
        raw = ("[" * data.draw(st.integers(60, 3000)) + text).encode()
    else:
        raw = text.encode()
    path = Path(files["folder"]) / f"{lab}-scenario.json"
    path.write_bytes(raw)
    argv = [lab, "simulate", str(path)]
    check(argv, *run(argv))


@pytest.mark.parametrize("name", ["not-utf8", "deep", "deep-objects", "huge-int", "nan",
                                  "overflow", "empty", "not-json", "bom", "nul", "a-folder",
                                  "missing"])
@pytest.mark.parametrize("lab", ["cpu", "memory", "storage", "network"])
def test_broken_files_are_one_clear_error(lab, name, files):
    status, _out, err = run([lab, "simulate", files[name]])
    assert status == 2 and err.startswith("kvmlab: error: "), err[-500:]
    assert len(err.splitlines()) == 1


GRID_NAMES = ["ratio", "pcpus", "vcpus_per_vm", "load", "duration_s", "scheduler",
              "working_set_kib", "pattern", "tlb_entries", "pwc_entries", "page", "host_page",
              "accesses", "ratoi", "seed", "1x", ""]
GRID_VALUES = ["1", "1.5", "2", "0", "-1", "0.5", "0.05", "1e999", "nan", "inf", "1e6",
               "1000000", "9" * 400, "x", "true", "null", "[1]", '{"a":1}', "random", "4K",
               "2M", "fair", ""]


@fuzz_settings(60, deadline_s=20)
@given(scenario=st.sampled_from(["cpu-overcommit", "tlb-working-set", "cpu-overcomit"]),
       grid=st.lists(st.tuples(st.sampled_from(GRID_NAMES),
                               st.lists(st.sampled_from(GRID_VALUES), min_size=1,
                                        max_size=3)), max_size=3),
       seeds=st.sampled_from(["0", "0-1", "1,1", "-1", "x", "5-2", "1-0", "0-1-2"]))
def test_sweep_grids(scenario, grid, seeds):
    argv = ["sweep", scenario, "--serial", "--quiet", "--seeds", seeds]
    names = [name for name, _values in grid]
    if scenario == "cpu-overcommit" and "duration_s" not in names:
        argv += ["--set", "duration_s=0.05"]          # keep accepted runs short
    for name, values in grid:
        argv += ["--set", f"{name}={','.join(values)}"]
    check(argv, *run(argv))


@pytest.mark.parametrize(("option", "where"), [("--save", "folder"), ("--csv", "folder"),
                                               ("--csv", "missing")])
def test_sweep_output_to_a_folder_or_into_a_missing_one_is_one_clear_error(option, where,
                                                                          files):
    status, _out, err = run(["sweep", "cpu-overcommit", "--serial", "--quiet", "--seeds", "0",
                             "--set", "duration_s=0.05", option, files[where]])
    assert status == 2 and err.startswith("kvmlab: error: "), err[-500:]
    assert files["folder"] in err or files["missing"] in err


def test_an_internal_error_is_one_line_and_status_70(monkeypatch):
    import kvmlab.cli

    def broken(args: argparse.Namespace) -> int:
        raise RuntimeError("something kvmlab did not expect\non two lines")
    monkeypatch.setattr(kvmlab.cli, "_versions", broken)
    status, _out, err = run(["versions"])
    assert status == 70
    assert err == ("kvmlab: internal error: RuntimeError: something kvmlab did not expect "
                   "on two lines (please report this, with the command)\n")

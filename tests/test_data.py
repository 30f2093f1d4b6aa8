"""Where kvmlab finds its data: the user's data directory first, then the data shipped in
the package; ``KVMLAB_DATA_DIR`` instead of both; names only, never paths."""

from __future__ import annotations

import json
import string
import tomllib
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvmlab import data
from kvmlab.cli import main
from kvmlab.errors import ScenarioError

ROOT = Path(__file__).resolve().parents[1]
NAME_CHARS = string.ascii_letters + string.digits + "._-"


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    """An empty user data directory (through XDG_DATA_HOME), no KVMLAB_DATA_DIR."""
    monkeypatch.delenv("KVMLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "kvmlab"


def test_every_package_is_listed_in_pyproject():
    """The package list is explicit (two packages come from data/ and notebooks/): a new
    folder of kvmlab/ must be added to it, or the wheel leaves it out."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(p.parent.relative_to(ROOT).parts)
               for p in (ROOT / "kvmlab").rglob("__init__.py")}
    mapped = {"kvmlab.shipped": "data", "kvmlab.shipped.notebooks": "notebooks"}
    assert set(config["packages"]) == on_disk | set(mapped)
    assert config["package-dir"] == mapped


def test_the_shipped_data_is_read_through_importlib_resources(user_dir):
    shipped = resources.files("kvmlab.shipped")
    assert data.shipped_dir() == shipped
    on_disk = sorted(p.stem for p in (ROOT / "data" / "scenarios").glob("*.json"))
    assert data.scenario_names() == on_disk
    assert data.recorded_names() == sorted(
        p.stem for p in (ROOT / "data" / "recorded").glob("*.json"))
    for name in on_disk:
        assert data.scenario_dict(name) == json.loads(
            shipped.joinpath("scenarios", f"{name}.json").read_text())


def test_the_user_data_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("KVMLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert data.user_data_dir() == tmp_path / "kvmlab"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/dir")      # ignored, as the spec says
    assert data.user_data_dir() == Path.home() / ".local" / "share" / "kvmlab"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert data.user_data_dir() == Path.home() / ".local" / "share" / "kvmlab"


def test_a_recording_goes_to_the_user_dir_and_is_found_first(user_dir):
    shipped = data.load_recorded("cpu-seed-example")
    before = sorted(p.name for p in (data.shipped_dir() / "recorded").iterdir())
    mine = {**shipped, "provenance": {"host": "my-laptop"}}
    path = data.save_recorded("cpu-seed-example", mine)
    assert path == user_dir / "recorded" / "cpu-seed-example.json"
    assert data.load_recorded("cpu-seed-example")["provenance"] == {"host": "my-laptop"}
    data.save_recorded("my-own-run", shipped)
    assert "my-own-run" in data.recorded_names("my-")
    assert data.recorded_names().count("cpu-seed-example") == 1
    # the package's data is never written
    assert sorted(p.name for p in (data.shipped_dir() / "recorded").iterdir()) == before


def test_a_user_scenario_is_found_by_name(user_dir):
    (user_dir / "scenarios").mkdir(parents=True)
    mine = {**data.scenario_dict("cpu-seed-example"), "pcpus": 4}
    (user_dir / "scenarios" / "cpu-mine.json").write_text(json.dumps(mine))
    assert "cpu-mine" in data.scenario_names("cpu-")
    assert data.scenario_dict("cpu-mine")["pcpus"] == 4


def test_kvmlab_data_dir_replaces_both(user_dir, tmp_path, monkeypatch):
    data.save_recorded("in-user-dir", {"x": 1})
    own = tmp_path / "own"
    (own / "recorded").mkdir(parents=True)
    (own / "recorded" / "cpu-seed-example.json").write_text('{"from": "own"}')
    monkeypatch.setenv("KVMLAB_DATA_DIR", str(own))
    assert data.data_dirs() == [own]
    assert data.recorded_names() == ["cpu-seed-example"]
    assert data.load_recorded("cpu-seed-example") == {"from": "own"}
    assert data.scenario_names() == []
    assert data.save_recorded("new", {"y": 2}) == own / "recorded" / "new.json"


def test_a_missing_recording_lists_those_there_are(user_dir):
    data.save_recorded("zz-mine", {"x": 1})
    with pytest.raises(ScenarioError,
                       match=r"no recorded run 'nope'; there are: .*cpu-seed-example, .*zz-mine"):
        data.load_recorded("nope")


@given(st.text(alphabet=NAME_CHARS, min_size=1, max_size=30))
def test_names_of_letters_digits_dots_dashes_are_names(name):
    if name[0] in "._-" or ".." in name:
        with pytest.raises(ScenarioError, match="a name, not a path"):
            data.check_name(name)
    else:
        assert data.check_name(name) == name


@given(st.text(max_size=10), st.sampled_from(["/", "..", "\\", " ", "\n", "~"]),
       st.text(max_size=10))
def test_a_path_is_never_a_name(before, bad, after):
    with pytest.raises(ScenarioError, match=r"no '/', no '\.\.'"):
        data.check_name(before + bad + after)


@pytest.mark.parametrize("name", ["../../etc/passwd", "/tmp/kvmlab-x", "sub/run", "..", ".hidden"])
def test_save_and_load_refuse_paths_and_write_nothing(user_dir, name):
    with pytest.raises(ScenarioError, match="a recording name is a name, not a path"):
        data.save_recorded(name, {"x": 1})
    with pytest.raises(ScenarioError, match="a name, not a path"):
        data.load_recorded(name)
    assert not user_dir.exists()


def test_the_command_refuses_a_recorded_path(user_dir, capsys):
    assert main(["cpu", "compare", "cpu-seed-example", "--recorded",
                 "../recorded/cpu-seed-example"]) == 2
    err = capsys.readouterr().err
    assert "a name, not a path" in err and "no '/', no '..'" in err

"""kvmlab as a pip user gets it: an sdist and a wheel built from the checkout, the wheel
installed into a fresh virtualenv outside the repository (no ``live`` extra, no system site
packages), every lab run there from a folder outside the repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.relative_to(ROOT / "data").as_posix()
                 for folder in ("scenarios", "recorded") for p in (ROOT / "data" / folder).iterdir()
                 if p.suffix in (".json", ".jsonl"))
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
ONE_PER_LAB = {"cpu": ["cpu-seed-example", "--duration", "1"],
               "memory": ["memory-ksm-one-content"],
               "storage": ["storage-first-writes"],
               "network": ["net-hub"]}


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, (f"{' '.join(cmd)} failed ({done.returncode}):\n"
                                  f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


class Installed:
    """A virtualenv holding kvmlab installed from its wheel, and a folder outside the
    repository (with its own home) to run it in."""

    def __init__(self, root: Path, dist: Path) -> None:
        self.dist = dist
        self.venv = root / "venv"
        self.home = root / "home"
        self.work = root / "work"
        self.home.mkdir()
        self.work.mkdir()
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("KVMLAB_DATA_DIR", "PYTHONPATH", "VIRTUAL_ENV", "XDG_DATA_HOME")}
        self.env |= {"HOME": str(self.home), "PATH": f"{self.venv / 'bin'}:{os.environ['PATH']}"}

    def kvmlab(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run([str(self.venv / "bin" / "kvmlab"), *args], self.work, self.env)

    def python(self, code: str) -> str:
        return _run([str(self.venv / "bin" / "python"), "-c", code], self.work,
                    self.env).stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("kvmlab-wheel")
    dist = root / "dist"
    # sdist first, then the wheel built from the unpacked sdist: what the sdist lacks, the
    # wheel lacks too
    _run([sys.executable, "-m", "build", "--outdir", str(dist)], ROOT)
    here = Installed(root, dist)
    _run([sys.executable, "-m", "venv", str(here.venv)], root)
    wheel = next(dist.glob("kvmlab-*.whl"))
    _run([str(here.venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
          "--disable-pip-version-check", str(wheel)], root, here.env)
    return here


def test_the_sdist_holds_every_scenario_recording_and_notebook(installed):
    sdist = next(installed.dist.glob("kvmlab-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {f"data/{p}" for p in SHIPPED} <= names
    assert {f"notebooks/{n}" for n in NOTEBOOKS} <= names


def test_the_wheel_holds_them_inside_the_package(installed):
    wheel = next(installed.dist.glob("kvmlab-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"kvmlab/shipped/{p}" for p in SHIPPED} <= names
    assert {f"kvmlab/shipped/notebooks/{n}" for n in NOTEBOOKS} <= names
    assert not any(n.startswith(("data/", "notebooks/", "tests/")) for n in names)


def test_the_wheel_runs_the_compiled_cpu_model(installed):
    """Built where a C compiler is (as ``make`` sets up), the wheel holds the ``linux``
    scheduler's modules compiled, with the record of their sources, and runs them."""
    from kvmlab.cpu import native

    wheel = next(installed.dist.glob("kvmlab-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "kvmlab/cpu/native.json" in names
    for module in native.MODULES:
        assert any(n.startswith(module.replace(".", "/") + ".cpython-") for n in names), module
    state, path = installed.python(
        "import kvmlab.cpu as c, kvmlab.cpu.linux as l; print(c.STATE, l.__file__)").split()
    assert state == "compiled" and path.endswith(".so")


def test_it_is_installed_alone(installed):
    where = installed.python("import kvmlab, kvmlab.data as d; print(kvmlab.__file__); "
                             "print(d.shipped_dir())").split()
    assert all(Path(w).is_relative_to(installed.venv) for w in where), where
    # no live extra and no system site packages: libvirt-python is not importable there
    assert "absent" in installed.python(
        "import importlib.util as u; print('absent' if u.find_spec('libvirt') is None "
        "else 'present')")


@pytest.mark.parametrize("lab", sorted(ONE_PER_LAB))
def test_each_lab_simulates_a_shipped_scenario(installed, lab):
    out = json.loads(installed.kvmlab(lab, "simulate", *ONE_PER_LAB[lab]).stdout)
    assert out["source"] == "simulated"


@pytest.mark.parametrize("lab,name", [("cpu", "cpu-pinned-unequal"),
                                      ("memory", "memory-trace")])
def test_a_simulation_compares_with_its_shipped_recording(installed, lab, name):
    out = json.loads(installed.kvmlab(lab, "compare", name, "--recorded", name).stdout)
    assert isinstance(out["agrees"], bool)
    assert out["agrees"], out


def test_a_user_recording_goes_to_the_user_data_dir_and_is_found_first(installed):
    written = installed.python(
        "from kvmlab.data import load_recorded, save_recorded\n"
        "print(save_recorded('mine', load_recorded('cpu-pinned-unequal')))").strip()
    assert Path(written) == installed.home / ".local/share/kvmlab/recorded/mine.json"
    out = json.loads(installed.kvmlab("cpu", "compare", "cpu-pinned-unequal",
                                      "--recorded", "mine").stdout)
    assert out["agrees"]
    assert not list(installed.venv.rglob("recorded/mine.json"))


def test_notebooks_are_copied_out_of_the_package(installed):
    target = installed.work / "my-labs"
    installed.kvmlab("notebooks", str(target))
    assert sorted(p.name for p in target.iterdir()) == NOTEBOOKS
    for name in NOTEBOOKS:
        assert (target / name).read_bytes() == (ROOT / "notebooks" / name).read_bytes()

"""The compiled CPU model: the same results as its source, and never a stale copy.

``make`` compiles the ``linux`` scheduler's modules with mypyc (``setup.py``,
:mod:`kvmlab.cpu.native`). These tests hold the compiled modules to their source: the
same results to the last bit, their doctests passing from the source, and an edited
source run in place of its compiled copy.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import kvmlab
from kvmlab.cpu import native
from kvmlab.data import scenario_names
from tests.conftest import IN_CI, require

ROOT = Path(__file__).resolve().parents[2]
COMPILED = native.state() == "compiled"

# Prints, for every shipped CPU scenario and a few of the model's options, the linux
# scheduler's result as JSON: run once compiled and once from source, the two must match.
RUNS = r"""
import json, sys
from kvmlab.cpu import STATE
from kvmlab.cpu.linux import Kernel, QemuThreads, simulate_linux
from kvmlab.cpu.noise import HostNoise
from kvmlab.cpu.scenario import load_scenario
from kvmlab.data import scenario_names

out = {"state": STATE, "runs": {}}
for name in scenario_names("cpu-"):
    scenario = load_scenario(name).with_duration(0.5)
    for seed in (0, 1):
        out["runs"][f"{name}/{seed}"] = simulate_linux(scenario, seed=seed, warmup_s=0.2).to_dict()
s = load_scenario("cpu-pinned-unequal").with_duration(0.5)
options = {
    "flat": dict(layout="flat"), "none": dict(layout="none"),
    "machine": dict(machine_group=True), "noise": dict(noise=HostNoise(bursts_per_s=200)),
    "sleeps": dict(qemu=QemuThreads(vcpu_sleeps_per_cpu_s=1200, sleeping_vms=("vm2",))),
    "no-reweight": dict(kernel=Kernel(reweight_places=False)),
    "timeline": dict(record_timeline=True),
}
for label, kwargs in options.items():
    out["runs"][label] = simulate_linux(s, seed=3, warmup_s=0.2, **kwargs).to_dict()
json.dump(out, sys.stdout)
"""


def _python(code: str, pure: bool, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop(native.PURE_ENV, None)
    if pure:
        env[native.PURE_ENV] = "1"
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=600, check=False)


def test_make_compiles_the_cpu_model():
    """``make`` builds the compiled modules, so CI runs them (elsewhere: a clear skip)."""
    if IN_CI:
        assert COMPILED, f"the CPU model is {native.state()!r}, not compiled, in CI"
    require(COMPILED, f"the CPU model is not compiled here ({native.state()}): "
                      "`make venv` compiles it where a C compiler is installed")
    for name in native.MODULES:
        assert Path(importlib.import_module(name).__file__ or "").suffix == ".so", name


def test_the_compiled_model_gives_the_sources_results_to_the_last_bit():
    require(COMPILED, f"nothing to compare: the CPU model is {native.state()} here")
    compiled, source = _python(RUNS, pure=False), _python(RUNS, pure=True)
    assert compiled.returncode == 0, compiled.stderr
    assert source.returncode == 0, source.stderr
    ran, reference = json.loads(compiled.stdout), json.loads(source.stdout)
    assert (ran["state"], reference["state"]) == ("compiled", "off")
    assert len(ran["runs"]) >= len(scenario_names("cpu-")) * 2 + 7
    for key, result in reference["runs"].items():
        assert ran["runs"][key] == result, key


def test_the_compiled_modules_doctests_pass_from_their_source():
    require(COMPILED, "the doctests ran in the collection: the CPU model is not compiled")
    files = [str(native.source(m).relative_to(ROOT)) for m in native.MODULES]
    env = dict(os.environ, **{native.PURE_ENV: "1"})
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--doctest-modules", "--noconftest", *files],
                          cwd=ROOT, env=env, text=True, capture_output=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout and " failed" not in done.stdout


def _package_copy(tmp_path: Path) -> Path:
    """A copy of the installed kvmlab package in ``tmp_path`` (compiled modules included)."""
    shutil.copytree(Path(kvmlab.__file__).parent, tmp_path / "kvmlab",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "kvmlab" / "cpu"


def test_the_state_follows_the_record_of_the_sources(tmp_path):
    require(COMPILED, f"no compiled modules to judge: the CPU model is {native.state()} here")
    cpu = _package_copy(tmp_path)
    assert native.state(cpu, environ={}) == "compiled"
    assert native.state(cpu, environ={native.PURE_ENV: "1"}) == "off"
    assert native.state(cpu, environ={native.PURE_ENV: "0"}) == "compiled"
    with (cpu / "eevdf.py").open("a") as f:
        f.write("# edited\n")
    assert native.state(cpu, environ={}) == "stale"
    (cpu / native.MANIFEST).unlink()
    assert native.state(cpu, environ={}) == "stale"
    for so in cpu.glob("*.so"):
        so.unlink()
    assert native.state(cpu, environ={}) == "source"


def test_an_edited_source_runs_in_place_of_its_compiled_copy(tmp_path):
    require(COMPILED, f"no compiled copy to go stale: the CPU model is {native.state()} here")
    cpu = _package_copy(tmp_path)
    eevdf = cpu / "eevdf.py"
    eevdf.write_text(eevdf.read_text().replace('NICE_0_LOAD = 1024\n',
                                               'NICE_0_LOAD = 1024\nEDITED = True\n', 1))
    code = ("import warnings; warnings.simplefilter('always')\n"
            "import kvmlab.cpu, kvmlab.cpu.eevdf as e, kvmlab.cpu.linux as l\n"
            "print(kvmlab.cpu.STATE, e.EDITED, e.__file__.endswith('.py'),"
            " l.__file__.endswith('.py'))")
    done = _python(code, pure=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["stale", "True", "True", "True"]
    assert "older than its source" in done.stderr and "make venv" in done.stderr


def test_a_pure_build_is_pure_python(tmp_path):
    """With ``KVMLAB_PURE_PYTHON=1`` at run time, every module runs from its source."""
    done = _python("import kvmlab.cpu, kvmlab.cpu.linux as l; print(kvmlab.cpu.STATE, l.__file__)",
                   pure=True)
    assert done.returncode == 0, done.stderr
    state, path = done.stdout.split()
    assert state == "off" and path.endswith("linux.py")


@pytest.mark.parametrize("module", native.MODULES)
def test_every_compiled_module_has_its_source_beside_it(module):
    assert native.source(module).is_file()
    assert native.source(module).parent == Path(native.__file__).resolve().parent

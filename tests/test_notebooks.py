"""Every notebook runs top to bottom headless, with its small default parameters.

A notebook whose parameters cell defines ``URI`` runs twice: on libvirt's
test driver (no daemon) and, marked live, on the real local QEMU host. Every notebook
also runs in a kernel where libvirt-python cannot be imported, as on a machine
without the ``live`` extra.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
AsyncKernelManager = pytest.importorskip("jupyter_client").AsyncKernelManager
run_sync = pytest.importorskip("jupyter_core.utils").run_sync

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def run_notebook(path: Path, overrides: dict[str, object] | None = None,
                 prelude: str | None = None):
    """Run the notebook at ``path`` (``prelude`` first, if given); the executed notebook."""
    nb = nbformat.read(path, as_version=4)
    if prelude:
        nb.cells.insert(0, nbformat.v4.new_code_cell(prelude))
    if overrides:
        at = next((i for i, c in enumerate(nb.cells)
                   if "parameters" in c.get("metadata", {}).get("tags", [])), -1)
        code = "\n".join(f"{k} = {v!r}" for k, v in overrides.items())
        nb.cells.insert(at + 1, nbformat.v4.new_code_cell(code))
    # The kernel talks over Unix sockets, not TCP ports: jupyter_client picks free ports
    # and frees them again before the kernel binds them, and on a busy machine (guests,
    # libvirt, other kernels) another process can take one in between and leave the
    # client waiting for ever.
    with tempfile.TemporaryDirectory(prefix="kvmlab-kernel-") as sockets:
        km = AsyncKernelManager(kernel_name="python3", transport="ipc",
                                ip=str(Path(sockets) / "kernel"))
        client = nbclient.NotebookClient(nb, km=km, timeout=600,
                                         resources={"metadata": {"path": str(path.parent)}})
        try:
            client.execute()
        finally:             # a kernel manager handed in is not shut down by nbclient
            if run_sync(km.is_alive)():
                run_sync(km.shutdown_kernel)(now=True)
    return nb


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no notebook"


def test_every_notebook_cell_has_an_id_of_its_own():
    """nbformat 4.5 cells carry ids; a cell added without one is fixed, with a warning, on
    every read, and nbformat means to refuse it."""
    for path in NOTEBOOKS:
        ids = [cell.get("id") for cell in json.loads(path.read_text())["cells"]]
        assert None not in ids, f"{path.name}: cell {ids.index(None)} has no id"
        assert len(set(ids)) == len(ids), f"{path.name}: two cells share an id"


def test_notebooks_have_no_stored_outputs():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_headless(path, monkeypatch):
    monkeypatch.delenv("KVMLAB_URI", raising=False)
    monkeypatch.setenv("MPLBACKEND", "agg")
    run_notebook(path)


@pytest.mark.notebook
@pytest.mark.live
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_against_the_live_host(path, live_uri, guest_image, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    if not any(c.cell_type == "code" and "URI = " in c.source for c in nb.cells):
        return  # this notebook has no host to choose
    monkeypatch.setenv("MPLBACKEND", "agg")
    overrides: dict[str, object] = {"URI": live_uri}
    if any(c.cell_type == "code" and "LIVE = " in c.source for c in nb.cells):
        overrides["LIVE"] = True                 # measure for real, not from recordings
    if any(c.cell_type == "code" and "DURATION_S = " in c.source for c in nb.cells):
        overrides["DURATION_S"] = 1.0            # shorter runs: the same cells, measured
    run_notebook(path, overrides)


# A directory that shadows libvirt-python the way its absence looks: each module raises the
# ImportError Python raises for a module that is not installed.
LIBVIRT_MODULES = ("libvirt", "libvirtmod", "libvirt_qemu", "libvirtmod_qemu", "libvirt_lxc",
                   "libvirtmod_lxc")
NO_LIBVIRT_PRELUDE = """
try:
    import libvirt
except ImportError:
    pass
else:
    raise AssertionError("libvirt-python is importable: this run would prove nothing")
"""


@pytest.fixture
def without_libvirt(tmp_path, monkeypatch):
    """Kernels started in this test cannot import libvirt-python."""
    hide = tmp_path / "kvmlab-no-libvirt"
    hide.mkdir()
    for name in LIBVIRT_MODULES:
        (hide / f"{name}.py").write_text(
            f"raise ModuleNotFoundError(\"No module named {name!r}\", name={name!r})\n")
    monkeypatch.setenv("PYTHONPATH", str(hide))
    monkeypatch.delenv("KVMLAB_URI", raising=False)
    monkeypatch.setenv("MPLBACKEND", "agg")


def outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(json.dumps(out.get("data", {})))
            if out.get("output_type") == "error":
                parts.append(f"ERROR {out.get('ename')}: {out.get('evalue')}")
    return "\n".join(parts)


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_without_libvirt_python(path, without_libvirt):
    nb = nbformat.read(path, as_version=4)
    asks_live = any(c.cell_type == "code" and "LIVE = " in c.source for c in nb.cells)
    nb = run_notebook(path, {"LIVE": True} if asks_live else None, prelude=NO_LIBVIRT_PRELUDE)
    text = outputs_text(nb)
    assert "ERROR" not in text, text[-2000:]
    if asks_live:           # a student who asks for live runs is told why they get recordings
        assert "LIVE is off: libvirt-python is not installed" in text
    if path.stem == "00-start-here":
        assert "No host to tour: libvirt-python is not installed" in text


def notebook(stem: str):
    return nbformat.read(next(p for p in NOTEBOOKS if p.stem == stem), as_version=4)


def text_of(nb) -> str:
    return "\n".join(c.source for c in nb.cells)


def test_start_here_sends_the_reader_to_every_other_notebook():
    nb = notebook("00-start-here")
    where = next(c for c in nb.cells if c.source.startswith("## Where to go next"))
    assert "nbgrader" not in where.get("metadata", {})        # kept in the student's copy
    for path in NOTEBOOKS[1:]:
        assert f"**{path.stem}**" in where.source, path.stem
    assert "being written" not in text_of(nb)


def test_notebooks_name_only_settings_kvmlab_reads():
    package = Path(__file__).parents[1] / "kvmlab"
    code = "\n".join(p.read_text() for p in package.rglob("*.py"))
    for path in NOTEBOOKS:
        for name in set(re.findall(r"KVMLAB_[A-Z_]+", text_of(nbformat.read(path, 4)))):
            assert f'"{name}"' in code, (path.name, name)


def test_the_recordings_are_tcg_and_the_notebooks_say_so():
    from kvmlab.data import recorded_names
    from kvmlab.experiments import recorded_sweep

    assert set(recorded_sweep("sweep-cpu-overcommit")["accelerator"]) == {"tcg"}
    from kvmlab import cpu, memory

    for name in [n for prefix in ("cpu-", "trace-cpu-", "noise-cpu-", "earlier-cpu-")
                 for n in recorded_names(prefix)]:
        assert cpu.recorded_result(name).provenance["accelerator"] == "tcg", name
    for name in recorded_names("memory-"):
        assert memory.recorded_result(name).provenance["accelerator"] == "tcg", name
    text = text_of(notebook("06-experiments"))
    assert "KVM/QEMU host" not in text and "TCG" in text


def test_a_tap_device_is_not_called_a_veth_pair():
    text = re.sub(r"\s+", " ", text_of(notebook("04-network")))
    assert not re.search(r"veth pair, which is what a tap|tap device is a veth", text)
    assert "not a veth pair but a **tap** device" in text


def test_each_network_step_label_says_what_the_model_does():
    from kvmlab import network
    from kvmlab.data import scenario_names

    for name in scenario_names("net-"):
        topology = network.load_scenario(name)
        result = network.simulate(topology)
        for frame, got in zip(topology.frames, result.receivers, strict=True):
            label = frame.label or ""
            if "dropped" in label:
                assert not got, (name, label, got)
            if "not back" in label:
                assert frame.sender not in got, (name, label, got)
            if "back out of" in label or "hears its own" in label:
                assert frame.sender in got, (name, label, got)


def grade_cell_source(stem: str, grade_id: str) -> str:
    return next(c.source for c in notebook(stem).cells
                if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)


def test_the_band_exercise_expects_the_statistics_not_a_lucky_sweep():
    from kvmlab.experiments.table import t_quantile

    tests = grade_cell_source("06-experiments", "06-experiments-seeds-tests")
    right = t_quantile(0.975, 15) / t_quantile(0.975, 3) * 0.5
    exec(tests, {"my_factor": right, "t_quantile": t_quantile})
    for naive in (0.5, 1.0, 0.25):                  # 1/sqrt(n) alone, no change, 1/n
        with pytest.raises(AssertionError):
            exec(tests, {"my_factor": naive, "t_quantile": t_quantile})
    with pytest.raises(AssertionError, match="not answered yet"):
        exec(tests, {"my_factor": None, "t_quantile": t_quantile})


@pytest.mark.parametrize(("stem", "lab"), [("04-network", False), ("05-vlans", True)])
def test_an_unanswered_network_exercise_is_neither_right_nor_a_hint(stem, lab):
    from kvmlab.exercises import check_answer
    from kvmlab.network import problems

    answer_cell = next(c.source for c in notebook(stem).cells
                       if "my_answer = None" in c.source)
    assert "check_answer(problems.check, problem, my_answer)" in answer_cell
    for seed in range(6):
        problem = problems.generate(seed, vlans=lab)
        feedback = check_answer(problems.check, problem, None)
        assert not feedback.correct and feedback.hint == "unanswered"
        assert ":eth" not in feedback.message                   # names no NIC

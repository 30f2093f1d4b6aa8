"""Every notebook runs top to bottom headless, with its small default parameters.

A notebook whose parameters cell defines ``URI`` runs twice: on libvirt's
test driver (no daemon) and, marked live, on the real local QEMU host.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
AsyncKernelManager = pytest.importorskip("jupyter_client").AsyncKernelManager

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def run_notebook(path: Path, overrides: dict[str, object] | None = None) -> None:
    nb = nbformat.read(path, as_version=4)
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
        client.execute()


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no notebook"


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
    run_notebook(path, overrides)

"""`make lab` serves JupyterLab on notebooks/, `kvmlab lab DIR` on a copy of the shipped
notebooks: request the URL, get the listing. `kvmlab notebooks DIR` copies them, never over a
notebook the student changed unless --force."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvmlab.cli import main
from kvmlab.notebooks import copy_notebooks, lab_command, shipped_notebooks
from tests.processes import stop_group

ROOT = Path(__file__).parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_when_up(url: str, timeout_s: float = 60) -> bytes:
    """GET ``url``, retrying while the server (which prints its URL first) starts."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=30) as answer:
                return answer.read()
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def serve_and_list(cmd: list[str], cwd: Path, port: int, env: dict[str, str]) -> set[str]:
    """Start JupyterLab with ``cmd``, wait for the URL it prints, and return the names in
    its root folder (then stop it)."""
    lab = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen: list[str] = []
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in lab.stdout], daemon=True).start()
    try:
        url = None
        deadline = time.monotonic() + 300
        while url is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break                 # nothing printed in time (a password prompt, say)
            seen.append(line)
            match = re.search(rf"(http://127\.0\.0\.1:{port}/lab\?token=\w+)", line)
            url = match.group(1) if match else None
        assert url, f"{cmd} printed no URL:\n" + "".join(seen[-30:])
        token = url.split("token=")[1]
        api = f"http://127.0.0.1:{port}/api/contents?token={token}"
        listing = json.loads(get_when_up(api))
        assert b"JupyterLab" in get_when_up(url)
        return {item["name"] for item in listing["content"]}
    finally:
        stop_group(lab, timeout_s=30)


def no_screen_env(port: int) -> dict[str, str]:
    env = {**os.environ, "KVMLAB_LAB_PORT": str(port)}
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return env


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_lab_serves_the_notebooks():
    port = free_port()
    names = serve_and_list(["make", "-s", "lab"], ROOT, port, no_screen_env(port))
    assert "00-start-here.ipynb" in names
    assert names >= {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert "__init__.py" not in names


def test_kvmlab_lab_copies_the_notebooks_and_serves_them(tmp_path):
    port = free_port()
    kvmlab = Path(sys.executable).with_name("kvmlab")
    names = serve_and_list([str(kvmlab), "lab", "kvmlab-labs", "--port", str(port)],
                           tmp_path, port, no_screen_env(port))
    assert names == set(shipped_notebooks())
    assert sorted(p.name for p in (tmp_path / "kvmlab-labs").iterdir()) == shipped_notebooks()


def test_the_shipped_notebooks_are_those_of_the_repository():
    assert shipped_notebooks() == sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert len(shipped_notebooks()) == 7


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.integers(0, 6), st.binary(max_size=50), max_size=7))
def test_a_changed_notebook_is_kept_unless_forced(tmp_path_factory, changes):
    target = tmp_path_factory.mktemp("kvmlab-notebooks")
    names = shipped_notebooks()
    assert copy_notebooks(target).copied == names
    shipped = {n: (target / n).read_bytes() for n in names}
    changed = {names[i]: content for i, content in changes.items()
               if content != shipped[names[i]]}
    for name, content in changed.items():
        (target / name).write_bytes(content)
    report = copy_notebooks(target)
    assert report.kept == sorted(changed) and report.copied == []
    assert report.unchanged == sorted(set(names) - set(changed))
    for name, content in changed.items():
        assert (target / name).read_bytes() == content
    forced = copy_notebooks(target, force=True)
    assert forced.copied == sorted(changed)
    assert {n: (target / n).read_bytes() for n in names} == shipped


def test_kvmlab_notebooks_fails_while_it_keeps_a_changed_notebook(tmp_path, capsys):
    assert main(["notebooks", str(tmp_path)]) == 0
    (tmp_path / "01-cpu.ipynb").write_text("my answers")
    (tmp_path / "03-storage.ipynb").unlink()
    assert main(["notebooks", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == str(tmp_path / "03-storage.ipynb")
    assert "kept 1 notebook(s) you changed: 01-cpu.ipynb" in err and "--force" in err
    assert (tmp_path / "01-cpu.ipynb").read_text() == "my answers"
    assert main(["notebooks", str(tmp_path), "--force"]) == 0
    shipped = (ROOT / "notebooks" / "01-cpu.ipynb").read_bytes()
    assert (tmp_path / "01-cpu.ipynb").read_bytes() == shipped


def test_kvmlab_notebooks_into_a_file_says_so(tmp_path, capsys):
    (tmp_path / "f").write_text("")
    assert main(["notebooks", str(tmp_path / "f")]) == 2
    assert "cannot copy the notebooks to" in capsys.readouterr().err


def test_lab_opens_a_browser_only_with_a_screen(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert "--no-browser" in lab_command("d")
    monkeypatch.setenv("DISPLAY", ":0")
    cmd = lab_command("d", port=1234, ip="127.0.0.2")
    assert "--no-browser" not in cmd
    assert {"--port=1234", "--ip=127.0.0.2", "--ServerApp.root_dir=d"} <= set(cmd)
    assert "--no-browser" in lab_command("d", browser=False)

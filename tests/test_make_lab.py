"""`make lab` serves JupyterLab on notebooks/: request its URL, get the listing."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

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


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_lab_serves_the_notebooks():
    port = free_port()
    env = {**os.environ, "KVMLAB_LAB_PORT": str(port)}
    env.pop("DISPLAY", None)
    lab = subprocess.Popen(["make", "-s", "lab"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
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
        assert url, "make lab printed no URL:\n" + "".join(seen[-30:])
        token = url.split("token=")[1]
        api = f"http://127.0.0.1:{port}/api/contents?token={token}"
        listing = json.loads(get_when_up(api))
        names = {item["name"] for item in listing["content"]}
        assert "00-start-here.ipynb" in names
        assert names >= {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
        assert b"JupyterLab" in get_when_up(url)
    finally:
        stop_group(lab, timeout_s=30)

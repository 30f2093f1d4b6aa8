"""A sweep on a real host: interrupted after its first run, resumed, compared with the model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from kvmlab.experiments import sweep, sweep_on_host
from kvmlab.host.cleanup import find_leftovers

pytestmark = [pytest.mark.live, pytest.mark.alone]

GRID = {"ratio": [1, 1.5, 2], "duration_s": 3}
# Under TCG a VM leans on QEMU's own threads too; fair shares per VM hold within this.
TOLERANCE = 0.1

RUN = """
import sys
from kvmlab.experiments import sweep_on_host
sweep_on_host("cpu-overcommit", {grid!r}, seeds=[0], uri={uri!r}, save=sys.argv[1],
              progress=False)
"""


def test_a_host_sweep_interrupted_resumes_and_agrees_with_the_model(
        live_uri, guest_image, no_leftovers, tmp_path):
    save = tmp_path / "host.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", RUN.format(grid=GRID, uri=live_uri),
                             str(save)], start_new_session=True, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 240
        while (time.monotonic() < deadline and proc.poll() is None
               and (not save.exists() or len(save.read_text().splitlines()) < 2)):
            time.sleep(0.2)
        assert proc.poll() is None, f"the sweep ended early: {proc.stderr.read()}"
        os.killpg(proc.pid, signal.SIGINT)              # Ctrl-C in the middle of run 2
        proc.wait(60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert proc.returncode != 0
    assert not [str(x) for x in find_leftovers(live_uri) if "cpu-" in str(x)], \
        "an interrupted run left its guests behind"
    lines = save.read_text().splitlines()
    assert len(lines) == 2, lines                       # the header and the first run
    first = lines[1]

    table = sweep_on_host("cpu-overcommit", GRID, seeds=[0], uri=live_uri, save=save,
                          progress=False)
    lines = save.read_text().splitlines()
    assert lines[1] == first and len(lines) == 1 + 3    # run 1 kept, runs 2 and 3 added
    assert [r["ratio"] for r in table] == [1, 1.5, 2]
    assert table.rows[0]["wait_share"] == json.loads(first)["figures"]["wait_share"]

    model = sweep("cpu-overcommit", GRID, seeds=[0], executor="serial", progress=False)
    for real, simulated in zip(table, model, strict=True):
        print(real["ratio"], "host", real["wait_share"], "model", simulated["wait_share"])
        assert real["source"] == "measured" and simulated["source"] == "simulated"
        assert abs(real["wait_share"] - simulated["wait_share"]) <= TOLERANCE, (real,
                                                                                 simulated)

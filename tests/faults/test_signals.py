"""A ``kvmlab`` command stopped by a signal says so in one line and exits as a shell
expects: 130 for SIGINT (Ctrl-C), 128 + the signal's number for SIGTERM (143) and SIGHUP
(129). The command is a long model run (no host needed); the live runs, which must also
remove what they made, are in ``test_faults.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

KVMLAB = str(Path(sys.executable).parent / "kvmlab")
LONG_SIMULATION = ["cpu", "simulate", "cpu-seed-example", "--duration", "1500",
                   "--scheduler", "fair"]
"""About 7 s of the fair model (1500 simulated seconds): long enough to be stopped in the
middle (the linux model refuses that much work)."""
STARTED_CPU_S = 1.0
"""CPU time after which the command is in its model run (imports take about 0.5 s)."""


def cpu_seconds(pid: int) -> float:
    """The user and system CPU time process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize(("sig", "status", "line"), [
    (signal.SIGTERM, 143, "kvmlab: stopped by SIGTERM"),
    (signal.SIGHUP, 129, "kvmlab: stopped by SIGHUP"),
    (signal.SIGINT, 130, "kvmlab: interrupted"),
], ids=["SIGTERM", "SIGHUP", "SIGINT"])
def test_a_signal_stops_a_run_with_one_line_and_its_exit_status(sig, status, line, tmp_path):
    err = tmp_path / "stderr"
    with open(err, "w") as stderr:
        proc = subprocess.Popen([KVMLAB, *LONG_SIMULATION], stdout=subprocess.PIPE,
                                stderr=stderr, start_new_session=True)
    try:
        end = time.monotonic() + 60
        while cpu_seconds(proc.pid) < STARTED_CPU_S:
            assert proc.poll() is None, f"the run ended before the signal: {err.read_text()}"
            assert time.monotonic() < end, "the run did not get going within 60 s"
            time.sleep(0.05)
        os.kill(proc.pid, sig)
        stopped = time.monotonic()
        out, _ = proc.communicate(timeout=30)
        took_s = time.monotonic() - stopped
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    said = err.read_text().strip().splitlines()
    assert proc.returncode == status, err.read_text()
    assert said == [line], err.read_text()
    assert out == b"", "a stopped run printed (part of) a result"
    assert took_s < 5, f"the run took {took_s:.1f} s to stop"

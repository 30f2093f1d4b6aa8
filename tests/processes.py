"""Helpers for tests that start servers of their own."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_group(process: subprocess.Popen, timeout_s: float) -> None:
    """End ``process`` and its children (started with ``start_new_session=True``): SIGTERM,
    then SIGKILL if they are still there after ``timeout_s``."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

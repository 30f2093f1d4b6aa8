"""How kvmlab's child processes end with their owner and wake on time (kvmlab.host.signals)."""

from __future__ import annotations

import subprocess
import sys
import time

# A child of a child: it sets what the helpers set and reports it.
WAKE = r"""
import ctypes
from kvmlab.host.signals import wake_on_time
get = lambda: ctypes.CDLL(None).prctl(30, 0, 0, 0, 0)      # PR_GET_TIMERSLACK
before = get()
wake_on_time()
print(before, get())
"""

OWNER = r"""
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import sys, time; from kvmlab.host.signals import die_with_owner; "
    "die_with_owner(int(sys.argv[1])); print('ready', flush=True); time.sleep(60)",
    str(os.getpid())], stdout=subprocess.PIPE, text=True)
assert child.stdout.readline() == "ready\n"
print(child.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_wake_on_time_sets_a_timer_slack_of_one_nanosecond():
    done = subprocess.run([sys.executable, "-c", WAKE], capture_output=True, text=True,
                          timeout=60, check=True)
    before, after = map(int, done.stdout.split())
    assert before == 50_000 and after == 1          # Linux's default slack is 50 us


def test_a_child_whose_owner_is_gone_ends_at_once():
    done = subprocess.run([sys.executable, "-c", "from kvmlab.host.signals import "
                           "die_with_owner; die_with_owner(1); print('still here')"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1 and "still here" not in done.stdout


def test_a_child_that_dies_with_its_owner_ends_when_the_owner_is_killed():
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True)
    try:
        child = int(owner.stdout.readline())
        assert _alive(child)
        owner.kill()
        owner.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        owner.kill()
        owner.wait(timeout=30)

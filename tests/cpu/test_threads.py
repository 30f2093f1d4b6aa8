"""Per-thread run, wait and sleep from the kernel's counters (kvmlab.cpu.threads)."""

import json
import os
import subprocess
import sys
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvmlab.cpu.threads import (
    ThreadSample,
    ThreadTimes,
    account,
    list_threads,
    measure_threads,
    parse_sched_migrations,
    parse_stat_state,
    parse_status_switches,
    read_sample,
    thread_cgroup,
)
from kvmlab.errors import ScenarioError

MS = 1_000_000


def sample(at, state="R", run=0, wait=0, slices=0, vol=0, invol=0, wchan="0"):
    return ThreadSample(at, state, run * MS, wait * MS, slices, vol, invol, wchan)


# -- parsing ---------------------------------------------------------------------------
def test_the_state_comes_after_the_last_parenthesis():
    assert parse_stat_state("7 (CPU 0/TCG) S 1 2") == "S"
    assert parse_stat_state("7 (x) (y)) D 1") == "D"
    assert parse_stat_state("garbage") == "?"


def test_context_switches_are_read_from_status():
    text = "Name:\tqemu\nvoluntary_ctxt_switches:\t530\nnonvoluntary_ctxt_switches:\t12\n"
    assert parse_status_switches(text) == (530, 12)
    assert parse_status_switches("Name:\tx\n") == (0, 0)


def test_this_threads_files_are_readable():
    me = os.getpid()
    s = read_sample(me, me)
    assert s is not None and s.state == "R" and s.run_ns > 0 and s.slices > 0
    assert read_sample(me, 2**22 + 1) is None                # no such thread
    assert me in dict(list_threads(me))
    assert list_threads(2**22 + 1) == []
    assert thread_cgroup(me, me).startswith("/")


# -- the accounting, on made-up readings ----------------------------------------------------
def test_a_thread_runnable_and_never_run_waited_the_whole_window():
    readings = [sample(t / 10) for t in range(11)]         # R, no counter moves at all
    t = account(readings)
    assert (t.run_s, t.wait_s, t.sleep_s, t.counter_wait_s) == (0.0, 1.0, 0.0, 0.0)


def test_a_sleeping_thread_sleeps_the_window():
    readings = [sample(t / 10, "S", run=5, vol=3, wchan="futex_do_wait") for t in range(11)]
    t = account(readings)
    assert (t.run_s, t.wait_s, t.sleep_s) == (0.0, 0.0, 1.0)
    assert t.wchans == {"futex_do_wait": 11} and t.wakes_per_s == 0


def test_a_busy_thread_takes_the_counters_between_its_edges():
    readings = [sample(t / 10, run=60 * t, wait=40 * t, slices=9 * t, invol=9 * t)
                for t in range(11)]
    t = account(readings)
    assert t.run_s == pytest.approx(0.6) and t.wait_s == pytest.approx(0.4)
    assert t.sleep_s == pytest.approx(0.0, abs=1e-9)
    assert t.preemptions_per_s == pytest.approx(90) and t.slices == 90
    assert t.wait_error_s == pytest.approx(2 * 40 / 9 / 1000)   # a ~4.4 ms wait per edge


def test_a_wait_in_progress_at_the_end_is_counted_though_the_counter_lacks_it():
    # runs half the time until 0.5 s, then sleeps to 0.6 s, wakes and waits to the end:
    # the counter has not seen the last wait yet
    readings = [sample(t / 10, run=50 * t, wait=50 * t, slices=5 * t) for t in range(6)]
    readings += [sample(0.6, "S", run=250, wait=250, slices=25, vol=1)]
    readings += [sample(t / 10, run=250, wait=250, slices=25, vol=1) for t in range(7, 11)]
    t = account(readings)
    assert t.counter_wait_s == pytest.approx(0.25)
    assert t.wait_s == pytest.approx(0.25 + 0.35, abs=0.05)    # woke in 0.6..0.7
    assert t.wait_error_s == pytest.approx(0.05 + 0.05 / 5)    # and a ~10 ms wait at 0
    assert t.sleep_s == pytest.approx(0.15, abs=0.05)
    assert t.wakes_per_s == 1


def test_a_wait_in_progress_at_the_start_is_not_counted_twice():
    # waited since long before the window; gets the CPU at 0.35 s: the counter then
    # adds the whole 1.35 s wait, of which 1 s came before the window
    readings = [sample(t / 10) for t in range(4)]
    readings += [sample(t / 10, run=650 * (t - 3) // 7 + 1, wait=1350, slices=1,
                        invol=1) for t in range(4, 11)]
    t = account(readings)
    assert t.counter_wait_s == pytest.approx(1.35)
    assert t.wait_s == pytest.approx(0.35, abs=0.05)
    history = [sample(-1.0 + t / 10) for t in range(10)]      # readings before the window
    t = account(history + readings, start=10)
    assert t.wait_s == pytest.approx(0.35, abs=0.05)


def test_a_thread_that_woke_up_and_waits_at_the_end_is_waiting():
    readings = [sample(t / 10, "S", run=5) for t in range(10)] + [sample(1.0, "R", run=5)]
    t = account(readings)
    assert t.wait_s == pytest.approx(0.05) and t.wait_error_s == pytest.approx(0.05)
    assert t.sleep_s == pytest.approx(0.95)


def test_a_migration_flush_dates_the_wait_in_progress():
    # starved all along, moved to another CPU's queue at 0.6..0.7 s: the counter gets
    # the wait so far then, and the wait since then is still in progress at the end
    readings = [sample(t / 10) for t in range(7)] + [sample(t / 10, wait=2000)
                                                     for t in range(7, 11)]
    history = [sample(-1.35 + t / 10) for t in range(10)]
    t = account(history + readings, start=10)
    assert t.wait_s == pytest.approx(1.0, abs=0.051) and t.sleep_s < 0.051


def test_the_window_must_start_at_a_reading():
    with pytest.raises(ScenarioError, match="the window starts at reading 3, but there are 2"):
        account([sample(0), sample(1)], start=3)


counters = st.integers(-(10**12), 10**12)
readings = st.lists(st.tuples(st.floats(0, 10, allow_nan=False), st.sampled_from("RSDZ?"),
                              counters, counters, st.integers(-5, 10**6),
                              st.integers(0, 10**6), st.integers(0, 10**6),
                              st.sampled_from(["0", "futex_do_wait", ""])),
                    min_size=1, max_size=30)


@given(readings, st.integers(0, 29))
def test_run_wait_and_sleep_fill_the_window_for_any_counters(raw, start):
    raw.sort(key=lambda r: r[0])
    samples = [ThreadSample(*r) for r in raw]
    start = min(start, len(samples) - 1)
    t = account(samples, start)
    assert t.run_s >= 0 and t.wait_s >= 0 and t.sleep_s >= 0 and t.wait_error_s >= 0
    assert t.run_s + t.wait_s + t.sleep_s == pytest.approx(t.window_s, abs=1e-9)
    assert t.window_s == pytest.approx(samples[-1].at_s - samples[start].at_s)
    json.dumps(t.to_dict())


@given(st.builds(ThreadTimes, tid=st.integers(0, 2**22), name=st.text(max_size=15),
                 window_s=st.floats(0, 100), run_s=st.floats(0, 100),
                 wait_s=st.floats(0, 100), sleep_s=st.floats(0, 100),
                 wakes_per_s=st.floats(0, 1e5), preemptions_per_s=st.floats(0, 1e5),
                 slices=st.integers(0, 10**9), counter_wait_s=st.floats(-100, 100),
                 wait_error_s=st.floats(0, 100),
                 wchans=st.dictionaries(st.text(max_size=20), st.integers(0, 100)),
                 pid=st.integers(0, 2**22), role=st.text(max_size=20),
                 cgroup=st.text(max_size=40), migrations_per_s=st.floats(-1, 1e4),
                 run_series=st.lists(st.floats(0, 1), max_size=30).map(tuple),
                 cpu_series=st.lists(st.integers(-1, 511), max_size=31).map(tuple)))
def test_thread_times_survive_their_json_form(t):
    once = ThreadTimes.from_dict(json.loads(json.dumps(t.to_dict())))   # rounded once
    twice = ThreadTimes.from_dict(json.loads(json.dumps(once.to_dict())))
    assert twice == once


def test_a_recording_older_than_migrations_and_run_series_reads_as_not_read():
    old = ThreadTimes(1, "x", 1.0, 0.5, 0.5, 0.0, 0, 0, 1, 0.5, 0.0).to_dict()
    del old["migrations_per_s"], old["run_series"], old["cpu_series"]
    t = ThreadTimes.from_dict(old)
    assert t.migrations_per_s == -1.0 and t.run_series == () and t.cpu_series == ()


def test_migrations_are_read_from_sched_and_missing_ones_are_minus_one():
    assert parse_sched_migrations("se.exec_start :  1.0\nse.nr_migrations  :   7\n") == 7
    assert parse_sched_migrations("policy : 0\n") == -1


@given(st.lists(st.tuples(st.floats(0.001, 1), st.integers(0, 10**9)), min_size=1,
                max_size=20))
def test_the_run_series_has_one_share_per_interval_and_adds_up_to_the_run(steps):
    at, run, samples = 0.0, 0, [ThreadSample(0.0, "R", 0, 0, 0)]
    for gap, ran in steps:
        at, run = at + gap, run + min(ran, int(gap * 1e9))
        samples.append(ThreadSample(at, "R", run, 0, len(samples)))
    t = account(samples)
    assert len(t.run_series) == len(steps)
    assert all(0 <= x <= 1 for x in t.run_series)
    assert sum(x * gap for x, (gap, _r) in zip(t.run_series, steps, strict=True)) == pytest.approx(
        t.run_s, abs=1e-6)


def test_a_thread_times_field_out_of_place_is_named():
    good = ThreadTimes(1, "x", 1.0, 0.5, 0.5, 0.0, 0, 0, 1, 0.5, 0.0).to_dict()
    with pytest.raises(ScenarioError, match="a thread's run_s must be at least 0"):
        ThreadTimes.from_dict({**good, "run_s": -1})
    with pytest.raises(ScenarioError, match="a wchan count must be a whole number"):
        ThreadTimes.from_dict({**good, "wchans": {"0": "many"}})
    with pytest.raises(ScenarioError, match="a run share must be from 0 to 1, not 2"):
        ThreadTimes.from_dict({**good, "run_series": [0.5, 2]})


# -- real threads ------------------------------------------------------------------------
def _start(code):
    return subprocess.Popen([sys.executable, "-c", code])


def test_a_busy_process_runs_or_waits_and_a_sleeping_one_sleeps():
    busy = _start("while True: pass")
    sleeper = _start("import time; time.sleep(60)")
    try:
        time.sleep(0.2)
        checks = []
        times = measure_threads([(busy.pid, busy.pid), (sleeper.pid, sleeper.pid)], 1.0,
                                samples=10, lead_s=0.2, roles=["busy", "sleeper"],
                                check=checks.append)
    finally:
        for p in (busy, sleeper):
            p.kill()
            p.wait()
    b, s = times
    assert checks == list(range(-2, 11))
    assert b.role == "busy" and b.window_s == pytest.approx(1.0, abs=0.1)
    assert b.run_s + b.wait_s == pytest.approx(b.window_s, abs=0.05) and b.sleep_s < 0.05
    assert b.run_s > 0.2
    assert s.sleep_s == pytest.approx(s.window_s, abs=0.02) and s.run_s < 0.01
    assert set(s.wchans) - {"0"} and s.wakes_per_s < 5


def test_a_thread_moved_between_cpus_counts_its_migrations_and_a_pinned_one_none():
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("moving a thread between CPUs needs two of them")
    mover = _start(f"import os, time\ncpus = {cpus[:2]}\nk = 0\nwhile True:\n"
                   "    os.sched_setaffinity(0, {cpus[k % 2]}); k += 1\n"
                   "    end = time.monotonic() + 0.05\n"
                   "    while time.monotonic() < end: pass\n")
    pinned = _start(f"import os, time; os.sched_setaffinity(0, {{{cpus[0]}}}); time.sleep(60)")
    try:
        time.sleep(0.2)
        moved, still = measure_threads([(mover.pid, mover.pid), (pinned.pid, pinned.pid)],
                                       1.0, samples=5)
    finally:
        for p in (mover, pinned):
            p.kill()
            p.wait()
    print(moved.to_dict())
    assert moved.migrations_per_s >= 5          # about 20 moves a second, if it gets a CPU
    assert still.migrations_per_s == 0
    assert len(moved.run_series) == 5 and len(still.run_series) == 5
    assert still.cpu_series == (cpus[0],) * 6 and set(moved.cpu_series) <= set(cpus[:2])
    assert max(still.run_series) < 0.05 and sum(moved.run_series) > 0.5


def test_a_starved_thread_waits_though_the_kernels_counter_has_not_seen_it():
    """A SCHED_IDLE busy loop beside an ordinary one on the same CPU gets a few ms a
    second: its waits last about a second, so they straddle the window's edges and the
    counter alone is off by up to the window; the accounting dates them."""
    cpu = max(os.sched_getaffinity(0))
    pin = f"import os; os.sched_setaffinity(0, {{{cpu}}})\n"
    normal = _start(pin + "while True: pass")
    idle = _start(pin + "os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\n"
                  "while True: pass")
    try:
        time.sleep(0.3)
        _, starved = measure_threads([(normal.pid, normal.pid), (idle.pid, idle.pid)], 1.5,
                                     samples=15)
    finally:
        for p in (normal, idle):
            p.kill()
            p.wait()
    print(starved.to_dict())
    assert starved.run_s < 0.1 * starved.window_s
    assert starved.wait_s == pytest.approx(starved.window_s - starved.run_s, abs=0.15)
    assert starved.sleep_s < 0.15

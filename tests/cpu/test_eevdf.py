"""The EEVDF rules of one run queue (kvmlab.cpu.eevdf), checked for any queue."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmlab.cpu.eevdf import (
    Entity,
    Group,
    Kernel,
    RunQueue,
    avg_vruntime,
    dequeue,
    eligible,
    enqueue,
    group_shares,
    pick_eevdf,
    reweight,
    set_curr,
    update_curr,
)

weights = st.integers(min_value=2, max_value=4096)
runs = st.lists(st.floats(min_value=0.0, max_value=0.01), min_size=1, max_size=6)


def queue(ws: list[int], kernel: Kernel, ran: list[float]) -> RunQueue:
    """A queue of entities with weights ``ws``; each in turn runs ``ran[i]`` seconds."""
    rq = RunQueue(None, 0)
    es = [Entity(f"e{i}", w) for i, w in enumerate(ws)]
    for e in es:
        enqueue(rq, e, kernel)
    now = 0.0
    for i, dt in enumerate(ran):
        e = es[i % len(es)]
        set_curr(rq, e, now)
        now += dt
        update_curr(rq, now, kernel)
        rq.curr = None
    return rq


@given(st.lists(weights, min_size=1, max_size=6), runs)
def test_the_entity_with_the_least_vruntime_is_always_eligible(ws, ran):
    rq = queue(ws, Kernel(), ran)
    least = min(rq.entities, key=lambda e: e.vruntime)
    assert eligible(rq, least)
    assert pick_eevdf(rq, Kernel()) is not None


@given(st.lists(weights, min_size=2, max_size=6), runs, weights)
def test_an_entity_that_leaves_and_comes_back_keeps_its_lag(ws, ran, _w):
    """PLACE_LAG: placing with the lag scaled by (W + w) / W gives back the lag exactly."""
    kernel = Kernel()
    rq = queue(ws, kernel, ran)
    e = next(iter(rq.entities))
    dequeue(rq, e, kernel)
    lag = e.vlag
    enqueue(rq, e, kernel)
    assert avg_vruntime(rq) - e.vruntime == pytest.approx(lag, abs=1e-12)


@given(st.lists(weights, min_size=1, max_size=6), runs, weights)
def test_the_corrected_reweight_keeps_v_and_the_weighted_lag(ws, ran, new):
    kernel = Kernel(reweight_places=False)
    rq = queue(ws, kernel, ran)
    e = next(iter(rq.entities))
    set_curr(rq, e, 0.0)
    before_v, before = avg_vruntime(rq), e.weight * (avg_vruntime(rq) - e.vruntime)
    reweight(rq, e, new, kernel, 0.0)
    assert avg_vruntime(rq) == pytest.approx(before_v, abs=1e-12)
    assert new * (avg_vruntime(rq) - e.vruntime) == pytest.approx(before, abs=1e-9)


@given(st.lists(weights, min_size=2, max_size=6), weights)
def test_the_buggy_reweight_pushes_an_owed_running_entity_further_back(ws, new):
    """6.13-6.18.44: the running entity's positive lag grows with every reweight."""
    kernel = Kernel()
    rq = RunQueue(None, 0)
    es = [Entity(f"e{i}", w) for i, w in enumerate(ws)]
    for e in es:
        enqueue(rq, e, kernel)
    curr, other = es[0], es[1]
    set_curr(rq, other, 0.0)
    update_curr(rq, 0.002, kernel)            # the other ran: curr is owed time
    rq.curr = None
    set_curr(rq, curr, 0.002)
    lag_before = avg_vruntime(rq) - curr.vruntime
    assert lag_before > 0
    for w in (new, ws[0], new):
        reweight(rq, curr, w, kernel, 0.002)
    # weighted lag, as the kernel clamps and scales it
    assert curr.weight * (avg_vruntime(rq) - curr.vruntime) >= ws[0] * lag_before * (1 - 1e-9) \
        or avg_vruntime(rq) - curr.vruntime >= 0.999 * max(2 * kernel.slice_s, kernel.tick_s) \
        * 1024 / curr.weight * (len(ws) / (len(ws) + 1))
    assert eligible(rq, curr)


def test_many_reweights_of_the_running_entity_starve_the_others():
    """The mechanism on one queue: an owed entity runs; a reweight every 0.5 ms keeps it first.

    Two entities have run 6 ms each, so the third is owed time. On the buggy kernel,
    once it runs, each reweight pushes it back further than it ran; on the corrected
    kernel it runs until it has caught up, and then all three take turns.
    """
    for places, starves in ((True, True), (False, False)):
        kernel = Kernel(reweight_places=places)
        rq = RunQueue(None, 0)
        es = [Entity(f"vm{i}", 512) for i in range(3)]
        for e in es:
            enqueue(rq, e, kernel)
        now = 0.0
        for e in es[1:]:
            set_curr(rq, e, now)
            now += 0.006
            update_curr(rq, now, kernel)
            rq.curr = None
        ran = {e: 0.0 for e in es}
        curr = es[0]
        set_curr(rq, curr, now)
        for step in range(2000):                    # 1 s in steps of 0.5 ms
            now += 0.0005
            ended = update_curr(rq, now, kernel)
            ran[curr] += 0.0005
            reweight(rq, curr, 512 + 100 * (step % 2), kernel, now)
            if ended or not curr.vruntime < curr.vprot:
                nxt = pick_eevdf(rq, kernel)
                if nxt is not curr:
                    rq.curr = None
                    curr = nxt
                    set_curr(rq, curr, now)
        shares = sorted(ran.values())
        assert (shares[0] < 0.05) is starves, (places, shares)


@settings(max_examples=50)
@given(st.lists(st.integers(0, 4096), min_size=1, max_size=4), st.integers(2, 8192))
def test_group_shares_stay_within_min_and_the_groups_shares(loads, shares):
    g = Group("vm", shares, parent=Group("/"))
    for cpu, load in enumerate(loads):
        rq = g.rq(cpu)
        rq.weight_sum = load
    for cpu in range(len(loads)):
        w = group_shares(g.rq(cpu), 0.0, Kernel())
        assert 2 <= w <= shares

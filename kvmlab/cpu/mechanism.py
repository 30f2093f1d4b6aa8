"""The starvation mechanism on one run queue, small enough to watch step by step.

Three VM entities of equal weight share one CPU's root queue. The one running is
*reweighted* every so often, as the kernel does each time one of that VM's
threads wakes or sleeps on the CPU (QEMU's main loop: hundreds of times a second).
Two VMs have just run, so the third is owed time when it starts.

On a kernel that re-places the running entity when it reweights it (Linux 6.13 to
6.18.44), each reweight moves it back in virtual time by more than it ran: it
stays eligible with the earliest deadline, and the other two wait as long as the
reweights keep coming. Without reweights, or on a corrected kernel, the three take
turns.

Examples
--------
>>> buggy = one_queue(reweights_per_s=2000)
>>> [round(s, 2) for s in buggy.shares]         # vm3, owed time at the start, keeps the CPU
[0.0, 0.0, 1.0]
>>> fixed = one_queue(reweights_per_s=2000, kernel=Kernel(reweight_places=False))
>>> [round(s, 2) for s in fixed.shares]         # vm3 catches up, then they take turns
[0.33, 0.33, 0.35]
>>> [round(s, 2) for s in one_queue(reweights_per_s=0).shares]
[0.33, 0.33, 0.35]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kvmlab.cpu.eevdf import (
    Entity,
    Kernel,
    RunQueue,
    avg_vruntime,
    enqueue,
    pick_eevdf,
    protected,
    reweight,
    set_curr,
    update_curr,
)
from kvmlab.validate import real_number

__all__ = ["OneQueue", "one_queue", "plot_one_queue"]

STEP_S = 0.0001
"""The demonstration advances in steps of 0.1 ms."""


@dataclass(frozen=True)
class OneQueue:
    """What happened on the queue: who ran, and each entity's lag, over time."""

    names: tuple[str, ...]
    shares: tuple[float, ...]
    times_ms: tuple[float, ...] = field(repr=False)
    running: tuple[int, ...] = field(repr=False)        # index of the entity running
    lags_ms: tuple[tuple[float, ...], ...] = field(repr=False)
    reweights_per_s: float = 0.0
    reweight_places: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "shares": list(self.shares),
                "reweights_per_s": self.reweights_per_s,
                "reweight_places": self.reweight_places}


def one_queue(*, reweights_per_s: float = 2000, seconds: float = 0.2,
              kernel: Kernel | None = None, weight: int = 512) -> OneQueue:
    """Run the three-VM queue for ``seconds`` with a reweight of the running entity
    ``reweights_per_s`` times a second (its weight alternating by 20 %).

    Parameters
    ----------
    reweights_per_s : float
        0 to 10,000.
    seconds : float
        Up to 5 s of simulated time.
    kernel : Kernel, optional
        ``Kernel(reweight_places=False)`` for a corrected kernel.
    weight : int
        The entities' weight (a VM's weight on one CPU).
    """
    rate = real_number(reweights_per_s, "reweights_per_s", low=0, high=10_000)
    seconds = real_number(seconds, "seconds", low=0.01, high=5)
    kernel = kernel or Kernel()
    rq = RunQueue(None, 0)
    es = [Entity(f"vm{i + 1}", weight) for i in range(3)]
    for e in es:
        enqueue(rq, e, kernel)
    now = 0.0
    for e in es[:2]:                        # vm1 and vm2 have run: vm3 is owed time
        set_curr(rq, e, now)
        now += 0.004
        update_curr(rq, now, kernel)
        rq.curr = None
    start = now
    curr = es[2]
    set_curr(rq, curr, now)
    ran = [0.0, 0.0, 0.0]
    times, running, lags = [], [], []
    every = 1 / rate if rate else float("inf")
    next_reweight = now + every
    flip = False
    for _ in range(round(seconds / STEP_S)):
        now += STEP_S
        ended = update_curr(rq, now, kernel)
        ran[es.index(curr)] += STEP_S
        if now >= next_reweight - 1e-12:
            flip = not flip
            reweight(rq, curr, int(weight * 1.2) if flip else weight, kernel, now)
            next_reweight += every
        if ended or not protected(curr):
            nxt = pick_eevdf(rq, kernel)
            if nxt is not None and nxt is not curr:
                rq.curr = None
                curr = nxt
                set_curr(rq, curr, now)
        v_avg = avg_vruntime(rq)
        times.append(round((now - start) * 1000, 3))
        running.append(es.index(curr))
        lags.append(tuple(round((v_avg - e.vruntime) * 1000, 4) for e in es))
    total = sum(ran)
    return OneQueue(tuple(e.name for e in es), tuple(round(r / total, 4) for r in ran),
                    tuple(times), tuple(running), tuple(lags), rate, kernel.reweight_places)


def plot_one_queue(result: OneQueue, ax: Any = None) -> Any:
    """Each entity's lag over time (positive: owed time), the running one marked below.

    >>> ax = plot_one_queue(one_queue(seconds=0.05))
    >>> ax.get_ylabel()
    'lag (ms of virtual time)'
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _fig, ax = plt.subplots(figsize=(8, 3.2))
    colours = ("tab:blue", "tab:orange", "tab:green")
    for i, name in enumerate(result.names):
        ax.plot(result.times_ms, [lag[i] for lag in result.lags_ms], color=colours[i],
                label=f"{name} ({result.shares[i]:.0%} of the CPU)")
    low = min(min(lag) for lag in result.lags_ms)
    ax.scatter(result.times_ms, [low * 1.1 - 0.2] * len(result.times_ms), s=4, marker="|",
               c=[colours[i] for i in result.running])
    ax.axhline(0, color="grey", lw=0.8)
    kernel = "re-places on reweight (6.13-6.18.44)" if result.reweight_places \
        else "keeps the lag on reweight"
    ax.set_title(f"{result.reweights_per_s:g} reweights/s of the running VM; kernel "
                 f"{kernel}", fontsize=10)
    ax.set_xlabel("time (ms); the strip below shows who runs")
    ax.set_ylabel("lag (ms of virtual time)")
    ax.legend(fontsize=8, loc="upper right")
    return ax

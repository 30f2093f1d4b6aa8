"""Where a group's load is counted when its threads move (``Kernel(load_follows=True)``,
the default).

A group's weight on a CPU is its shares times that CPU's part of the group's load
(:func:`kvmlab.cpu.eevdf.group_shares`), so the model must count the load where the
kernel does. The kernel does two things here:

* a thread that moves to another CPU **takes its load along**
  (``detach_entity_load_avg()`` / ``attach_entity_load_avg()``): its group's queue on
  the old CPU loses it at once, the one on the new CPU gains it, and so, one level up,
  do the queues of the group's parent (the VM);
* the load left on a CPU a group no longer uses **decays, and the group's total follows**
  when that CPU balances (``update_blocked_averages()``), though nothing is queued there.

The kernel's load averages are whole numbers, so left-behind load decays to exactly
0 within a few hundred milliseconds and leaves the total
(:func:`kvmlab.cpu.eevdf.update_tg_load` passes on whole numbers too).

Without this (``Kernel(load_follows=False)``) the model keeps, in a group's total, load
the group left behind: a vCPU group, one thread, then weighs less than its 1024 on its
own CPU (medians of 641 to 1024 in the 3x scenario's model runs), where on the
recordings' host it weighs 1023 or 1024 (``provenance['sched_trace']['state']`` of a
traced run, :mod:`kvmlab.cpu.sched_trace`). And a group that weighs a hair less than its
shares is reweighted at every wake-up of its main loop: each reweight of the running
entity re-places it (see :mod:`kvmlab.cpu.eevdf`), so its VM can keep a CPU for good.

Examples
--------
>>> from kvmlab.cpu.agreement import recorded_repetitions
>>> from kvmlab.cpu.linux import Kernel, simulate_linux
>>> s = recorded_repetitions("cpu-overcommit-3x")[0].scenario.with_duration(2)
>>> def vcpu_groups(kernel, seed):
...     return simulate_linux(s, seed=seed, kernel=kernel).provenance["sched_state"][
...         "weights"]["vcpu"]
>>> vcpu_groups(Kernel(), seed=2)
{'p10': 1024, 'p50': 1024, 'p90': 1024}
>>> vcpu_groups(Kernel(load_follows=False), seed=2)
{'p10': 512, 'p50': 1024, 'p90': 1024}
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from kvmlab.cpu.eevdf import Entity, Kernel, RunQueue, pelt, update_tg_load

__all__ = ["take_load", "update_blocked"]

Levels = Sequence[tuple[RunQueue, Entity]]


def take_load(old: Levels, new: Levels, now: float, kernel: Kernel) -> None:
    """Move a thread's load from its chain of queues ``old`` (thread up to the root, on
    the CPU it leaves) to ``new`` (on the CPU it goes to): at every group's queue on the
    way up, where each level's entity carries it (``propagate_entity_load_avg()``); the
    groups' totals follow."""
    tau, period = kernel.pelt_tau_s, kernel.pelt_period_s
    for (rs, ss), (rd, sd) in zip(old, new, strict=True):
        if rs.group is None or rs.group.parent is None:
            return                                  # the root queue has no group total
        for obj, target in ((rs, rs.weight_sum), (rd, rd.weight_sum),
                            (ss, ss.weight if ss.on_rq else 0.0),
                            (sd, sd.weight if sd.on_rq else 0.0)):
            pelt(obj, now, target, tau, period)
        amount = min(ss.load_avg, rs.load_avg)
        for a, b in ((rs, rd), (ss, sd)) if ss is not sd else ((rs, rd),):
            a.load_avg, a.load_run = a.load_avg - amount, max(0.0, a.load_run - amount)
            b.load_avg, b.load_run = b.load_avg + amount, b.load_run + amount
        update_tg_load(rs, now, kernel)
        update_tg_load(rd, now, kernel)


def update_blocked(chains: Iterable[Levels], now: float, kernel: Kernel) -> None:
    """``update_blocked_averages()`` of one CPU: every group queue on the chains (the
    threads' queues on that CPU) passes its decayed load on to its group's total."""
    for chain in chains:
        for rq, _se in chain:
            if rq.group is not None and rq.group.parent is not None:
                update_tg_load(rq, now, kernel)

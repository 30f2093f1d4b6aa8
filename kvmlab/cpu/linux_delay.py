"""Delayed dequeue (``DELAY_DEQUEUE``, Linux 6.12 on): a sleeping entity that is owed
no time stays queued until it would be picked (``Kernel(delay_dequeue=True)``).

Under EEVDF an entity that sleeps with a negative lag (it has had more than its share)
would, with ``PLACE_LAG``, come back owing that time anyway. Since 6.12 the kernel
therefore leaves such an entity on its queue, *delayed*: it still counts in the
queue's weight and in ``V``, and it burns off its negative lag there. Then either

* it is **picked**: it leaves instead of running (``finish_delayed_dequeue_entity()``),
  its lag clamped to at most 0, and so does every group above it left empty; or
* one of its threads **wakes** first: it is simply queued again
  (``requeue_delayed_entity()``); with ``DELAY_ZERO`` a positive lag it gained
  meanwhile is dropped, and it is placed at ``V``.

In libvirt's nested layout every thread is alone in its own group (``vcpuN``,
``emulator``), where it is always eligible, so what is delayed is a *group's* entity,
the level above: the ``emulator`` group when the main loop sleeps, for instance. That
is all this module delays (a thread's own entity is always dequeued).

Examples
--------
A group entity that has run ahead of its queue's ``V`` stays queued when its queue
empties; one that is owed time leaves:

>>> from kvmlab.cpu.eevdf import Entity, Kernel, RunQueue, enqueue
>>> kernel = Kernel(delay_dequeue=True)
>>> rq = RunQueue(None, 0)
>>> ahead, behind = Entity("ahead", my_rq=RunQueue(None, 0)), Entity("behind")
>>> for e in (ahead, behind):
...     enqueue(rq, e, kernel)
>>> ahead.vruntime += 0.002; rq.avg_sum += ahead.weight * 0.002   # it ran 2 ms
>>> delayed = Delayed(kernel)
>>> delayed.hold(rq, ahead), ahead in delayed, ahead.on_rq
(True, True, True)
>>> Delayed(Kernel()).hold(rq, ahead)                  # the feature off: it leaves
False
"""

from __future__ import annotations

from collections.abc import Callable

from kvmlab.cpu.eevdf import Entity, Kernel, RunQueue, avg_vruntime, dequeue, eligible, enqueue

__all__ = ["Delayed"]

UpdateGroup = Callable[[RunQueue, Entity, float], None]


class Delayed:
    """The entities held on their queues by ``DELAY_DEQUEUE``, on every CPU.

    Parameters
    ----------
    kernel : Kernel
        ``kernel.delay_dequeue`` says whether anything is held at all.

    Attributes
    ----------
    held, finished, requeued : int
        How many times an entity was held, later left when picked, or was queued again
        by a wake-up.
    """

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.entities: set[Entity] = set()
        self.held = self.finished = self.requeued = 0

    def __contains__(self, se: Entity) -> bool:
        return se in self.entities

    def counts(self) -> dict[str, int]:
        """``held``, ``finished``, ``requeued``, and ``still_held`` (held now): every
        entity held has since left, been queued again, or is still held.

        >>> Delayed(Kernel()).counts()
        {'held': 0, 'finished': 0, 'requeued': 0, 'still_held': 0}
        """
        return {"held": self.held, "finished": self.finished, "requeued": self.requeued,
                "still_held": len(self.entities)}

    def hold(self, rq: RunQueue, se: Entity) -> bool:
        """``dequeue_entity()`` of a sleep: keep the group entity ``se``, whose own queue
        just emptied, on ``rq`` if it is not eligible; True if it was kept."""
        if not self.kernel.delay_dequeue or se.my_rq is None or eligible(rq, se):
            return False
        self.entities.add(se)
        self.held += 1
        return True

    def requeue(self, rq: RunQueue, se: Entity, now: float) -> None:
        """``requeue_delayed_entity()``: a thread below the held ``se`` woke; ``se`` is
        queued as it is, or at ``V`` if it is owed time (``DELAY_ZERO``)."""
        self.entities.discard(se)
        self.requeued += 1
        if rq.curr is not se and avg_vruntime(rq) - se.vruntime > 0:
            dequeue(rq, se, self.kernel, now)
            se.vlag = 0.0
            enqueue(rq, se, self.kernel, now)

    def finish(self, rq: RunQueue, se: Entity, now: float, update_group: UpdateGroup) -> None:
        """``finish_delayed_dequeue_entity()``: the held ``se`` was picked, so it leaves
        ``rq`` (its lag at most 0), and so does each group above left empty; the groups
        above that are reweighted (``update_group(rq, se, now)``)."""
        self.entities.discard(se)
        self.finished += 1
        dequeue(rq, se, self.kernel, now)
        se.vlag = min(se.vlag, 0.0)
        while rq.se is not None and rq.parent is not None and not rq.entities:
            up, group_se = rq.parent, rq.se
            if group_se.on_rq:
                if group_se in self.entities:
                    self.entities.discard(group_se)
                    self.finished += 1
                dequeue(up, group_se, self.kernel, now)
                group_se.vlag = min(group_se.vlag, 0.0)
            rq = up
        while rq.se is not None and rq.parent is not None:
            if rq.se.on_rq:
                update_group(rq.parent, rq.se, now)
            rq = rq.parent

"""Delayed dequeue (``DELAY_DEQUEUE``, Linux 6.12 on): a sleeping entity that is owed
no time stays queued until it would be picked (``Kernel(delay_dequeue=True)``).

Under EEVDF an entity that sleeps with a negative lag (it has had more than its share)
would, with ``PLACE_LAG``, come back owing that time anyway. Since 6.12 the kernel
therefore leaves such an entity on its queue, *delayed*: it still counts in the
queue's weight and in ``V``, and it burns off its negative lag there. Then either

* it is **picked**: it leaves instead of running (``finish_delayed_dequeue_entity()``),
  its lag clamped to at most 0, and a group above it left empty is dequeued as a sleep
  dequeues it (held in turn if it has run ahead: the ``linux`` model's
  ``_dequeue_chain``, the same walk as a sleep's); or
* one of its threads **wakes** first: it is simply queued again
  (``requeue_delayed_entity()``); with ``DELAY_ZERO`` a positive lag it gained
  meanwhile is dropped, and it is placed at ``V``.

In libvirt's nested layout every thread is alone in its own group (``vcpuN``,
``emulator``), where it is always eligible, so what is delayed is a *group's* entity,
the level above: the ``emulator`` group when the main loop sleeps, for instance. That
is all this module delays (a thread's own entity is always dequeued), so it models the
nested layout only (:func:`kvmlab.cpu.linux.simulate_linux` runs the others without it).

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
>>> delayed.hold(rq, ahead), ahead.delayed, ahead.on_rq
(True, True, True)
>>> Delayed(Kernel(delay_dequeue=False)).hold(rq, ahead)   # the feature off: it leaves
False
"""

from __future__ import annotations

from kvmlab.cpu.eevdf import (
    Entity,
    Kernel,
    RunQueue,
    avg_vruntime,
    clear_buddies,
    dequeue,
    eligible,
    enqueue,
)

__all__ = ["Delayed"]

class Delayed:
    """Holds entities on their queues for ``DELAY_DEQUEUE``, on every CPU, and counts.

    A held entity has ``se.delayed`` set (the kernel's ``sched_delayed``) and stays
    ``on_rq``; its own queue is empty.

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
        self.held = self.finished = self.requeued = 0

    def counts(self) -> dict[str, int]:
        """``held``, ``finished``, ``requeued``, and ``still_held`` (held now): every
        entity held has since left, been queued again, or is still held.

        >>> Delayed(Kernel()).counts()
        {'held': 0, 'finished': 0, 'requeued': 0, 'still_held': 0}
        """
        return {"held": self.held, "finished": self.finished, "requeued": self.requeued,
                "still_held": self.held - self.finished - self.requeued}

    def hold(self, rq: RunQueue, se: Entity) -> bool:
        """``dequeue_entity()`` of a sleep: keep ``se`` on ``rq`` if it is not eligible.

        Parameters
        ----------
        rq : RunQueue
            The queue ``se`` is on.
        se : Entity
            A group's entity whose own queue just emptied (a thread's entity is never
            held: alone in its group, it is always eligible).

        Returns
        -------
        bool
            True if ``se`` stays queued, held.
        """
        if not self.kernel.delay_dequeue or se.my_rq is None or eligible(rq, se):
            return False
        clear_buddies(rq, se)          # dequeue_entity() clears them before it holds
        se.delayed = True
        self.held += 1
        return True

    def requeue(self, rq: RunQueue, se: Entity, now: float) -> None:
        """``requeue_delayed_entity()``: a thread below the held ``se`` woke.

        ``se`` stays where it is in virtual time; only if it is now owed time
        (``DELAY_ZERO``) is its lag dropped and it is placed at ``V``.

        Parameters
        ----------
        rq : RunQueue
            The queue ``se`` is held on.
        se : Entity
            The held entity.
        now : float
            Simulated seconds.
        """
        se.delayed = False
        self.requeued += 1
        if avg_vruntime(rq) - se.vruntime > 0:
            dequeue(rq, se, self.kernel, now)
            se.vlag = 0.0
            enqueue(rq, se, self.kernel, now)

    def finish(self, rq: RunQueue, se: Entity, now: float) -> None:
        """``finish_delayed_dequeue_entity()``: the held ``se`` was picked, so it leaves,
        its lag clamped to at most 0.

        The caller then dequeues the groups above as a sleep does (a group left empty is
        held in turn if it ran ahead, else it leaves with its lag), and reweights the rest.

        Parameters
        ----------
        rq : RunQueue
            The queue ``se`` is held on.
        se : Entity
            The held entity, just picked.
        now : float
            Simulated seconds.
        """
        se.delayed = False
        self.finished += 1
        dequeue(rq, se, self.kernel, now)
        se.vlag = min(se.vlag, 0.0)

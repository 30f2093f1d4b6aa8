"""CPU ready %: how long a vCPU waited for a pCPU, and the rules of thumb that judge it.

VMware calls the share of time a vCPU was ready to run but had no physical CPU *CPU
ready*; KVM guests see the same time as *steal*, and libvirt reports it per vCPU as
``vcpu.N.delay``. Widely used rules of thumb: below 5 % is fine, 5 % to 10 % is worth
watching, 10 % and more is a problem.

Examples
--------
>>> [ready_verdict(p) for p in (1, 7, 25)]
['fine', 'watch', 'problem']
"""

from __future__ import annotations

__all__ = ["READY_PROBLEM_PCT", "READY_WATCH_PCT", "ready_verdict"]

READY_WATCH_PCT = 5.0
"""CPU ready % from which a vCPU's waiting is worth watching."""
READY_PROBLEM_PCT = 10.0
"""CPU ready % from which a vCPU's waiting is a problem."""


def ready_verdict(ready_pct: float) -> str:
    """Judge CPU ready % by the common rules of thumb (below 5 % fine, above 10 % a problem).

    Parameters
    ----------
    ready_pct : float
        Waiting time as a percentage of the interval (0..100).

    Returns
    -------
    str
        ``'fine'``, ``'watch'`` or ``'problem'``.

    Examples
    --------
    >>> ready_verdict(4.99), ready_verdict(5), ready_verdict(10)
    ('fine', 'watch', 'problem')
    """
    if ready_pct >= READY_PROBLEM_PCT:
        return "problem"
    if ready_pct >= READY_WATCH_PCT:
        return "watch"
    return "fine"

"""The one place where numbers given by people are checked.

Every lab reads numbers from JSON files, command lines and widgets. These helpers turn a
bad one into a :class:`~kvmlab.errors.ScenarioError` that names the value and the rule,
never into a ``TypeError`` from deep inside a model. ``True`` and ``False`` are not
numbers here, although Python lets ``bool`` pass for ``int``.

Examples
--------
>>> whole_number(4, "vcpus", low=1)
4
>>> whole_number(True, "vcpus")
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: vcpus must be a whole number, not True
>>> whole_number(0, "vcpus", low=1)
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: vcpus must be at least 1, not 0
>>> real_number(float("nan"), "duration_s")
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: duration_s must be a finite number, not nan
>>> real_number(2, "load", low=0, high=1)
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: load must be from 0 to 1, not 2.0
"""

from __future__ import annotations

import math
from typing import Any

from kvmlab.errors import ScenarioError

__all__ = ["is_real", "is_whole", "real_number", "whole_number"]


def is_whole(value: Any) -> bool:
    """True for an ``int`` that is not a ``bool``.

    Examples
    --------
    >>> is_whole(3), is_whole(3.0), is_whole(False)
    (True, False, False)
    """
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """True for a finite ``int`` or ``float`` that is not a ``bool``.

    Examples
    --------
    >>> is_real(0.5), is_real(float("inf")), is_real(True), is_real("1")
    (True, False, False, False)
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:            # an int too large for a float
        return False


def _bounds(what: str, value: float, low: float | None, high: float | None,
            unit: str) -> None:
    suffix = f" {unit}" if unit else ""
    if low is not None and high is not None and not low <= value <= high:
        raise ScenarioError(f"{what} must be from {low:g} to {high:g}{suffix}, not {value!r}")
    if low is not None and value < low:
        raise ScenarioError(f"{what} must be at least {low:g}{suffix}, not {value!r}")
    if high is not None and value > high:
        raise ScenarioError(f"{what} must be at most {high:g}{suffix}, not {value!r}")


def whole_number(value: Any, what: str, *, low: int | None = None, high: int | None = None,
                 unit: str = "") -> int:
    """``value`` if it is a whole number within ``[low, high]``; else a ScenarioError.

    Parameters
    ----------
    value : object
        What was given.
    what : str
        Its name in the message (``"VM 'vm1': vcpus"``).
    low, high : int, optional
        Inclusive bounds.
    unit : str, optional
        Shown after the bounds (``"bytes"``).

    Examples
    --------
    >>> whole_number(4096, "cluster_size", low=512, high=2097152, unit="bytes")
    4096
    >>> whole_number(10**30, "virtual_size", high=2**62, unit="bytes")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: virtual_size must be at most 4.61169e+18 bytes, not ...
    """
    if not is_whole(value):
        raise ScenarioError(f"{what} must be a whole number, not {value!r}")
    _bounds(what, value, low, high, unit)
    return int(value)


def real_number(value: Any, what: str, *, low: float | None = None,
                high: float | None = None, unit: str = "") -> float:
    """``value`` as a float if it is a finite number within ``[low, high]``.

    Examples
    --------
    >>> real_number(3, "duration_s", low=0.1, high=3600, unit="s")
    3.0
    >>> real_number("3", "duration_s")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: duration_s must be a finite number, not '3'
    """
    if not is_real(value):
        raise ScenarioError(f"{what} must be a finite number, not {value!r}")
    number = float(value)
    _bounds(what, number, low, high, unit)
    return number

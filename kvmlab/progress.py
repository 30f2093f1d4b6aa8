"""One way to report progress, in every lab: a tqdm-compatible bar.

Every long-running verb (``simulate``, ``run_on_host``, a sweep) takes ``progress=``:

- ``None`` or ``False``: silent;
- ``True``: kvmlab draws a tqdm bar (a widget in a notebook, a line on stderr in a
  terminal);
- any object with tqdm's ``update(n)`` and ``set_postfix_str(text)`` (a ``tqdm`` bar of
  your own, or anything that records the calls, as the tests do): kvmlab reports to it and
  leaves closing it to you.

The unit of work is the verb's own (simulated seconds, guests booted, samples traced); each
verb says which in its docstring and sets the bar's ``total`` when the bar has none.

Examples
--------
>>> class Recorder:
...     total = None
...     def __init__(self):
...         self.done, self.notes = 0, []
...     def update(self, n=1):
...         self.done += n
...     def set_postfix_str(self, s="", refresh=True):
...         self.notes.append(s)
>>> rec = Recorder()
>>> with progress_bar(rec, total=3, desc="demo") as bar:
...     bar.set_postfix_str("booting")
...     bar.update(3)
>>> rec.done, rec.notes, rec.total
(3, ['booting'], 3)
>>> with progress_bar(None, total=3, desc="quiet") as bar:   # silent: nothing printed
...     bar.update(3)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, cast, runtime_checkable

from kvmlab.errors import ScenarioError, shown

__all__ = ["Progress", "ProgressArg", "check_progress", "progress_bar"]


@runtime_checkable
class Progress(Protocol):
    """What kvmlab calls on a progress bar: the part of tqdm's interface it needs."""

    def update(self, n: float = 1) -> Any: ...

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> Any: ...


ProgressArg = Progress | bool | None
"""What a ``progress=`` argument may be."""


_METHODS = ("update", "set_postfix_str")
"""The methods kvmlab calls on a bar handed in."""


def check_progress(progress: object) -> ProgressArg:
    """Return a ``progress=`` argument if kvmlab can report to it; else a ScenarioError.

    A verb checks it with its other arguments, before it starts anything (a connection,
    a program): a bar it cannot call would otherwise fail half-way through.

    Raises
    ------
    ScenarioError
        If ``progress`` is neither None, a bool, nor an object whose ``update`` and
        ``set_postfix_str`` can be called (having the attributes is not enough).

    Examples
    --------
    >>> check_progress(None), check_progress(True)
    (None, True)
    >>> class Broken:
    ...     update = 5
    ...     set_postfix_str = "nope"
    >>> check_progress(Broken())                 # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: progress must be True, False, None or a tqdm-like bar ...
    """
    if progress is None or isinstance(progress, bool):
        return progress
    broken = [name for name in _METHODS if not _callable_attribute(progress, name)]
    if broken:
        what = " and ".join(f"{name}()" for name in broken)
        raise ScenarioError("progress must be True, False, None or a tqdm-like bar (with "
                            "update() and set_postfix_str() that can be called), not "
                            f"{shown(progress)}: its {what} cannot be called")
    return cast(Progress, progress)


def _callable_attribute(obj: object, name: str) -> bool:
    try:
        return callable(getattr(obj, name, None))
    except Exception:  # noqa: BLE001 - a property that raises: not a method to call
        return False


@contextmanager
def progress_bar(progress: ProgressArg, *, total: float | None, desc: str,
                 unit: str = "it") -> Iterator[Progress]:
    """The bar to report to inside the block, made from a ``progress=`` argument.

    A bar kvmlab made (``progress=True`` or silent) is closed at the end of the block;
    a bar that was handed in stays open.

    Raises
    ------
    ScenarioError
        If ``progress`` is neither None, a bool, nor a tqdm-like object (see
        :func:`check_progress`).
    """
    from tqdm.auto import tqdm

    progress = check_progress(progress)
    if progress is None or isinstance(progress, bool):
        bar = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True,
                   disable=not progress)
        try:
            yield bar
        finally:
            bar.close()
        return
    if getattr(progress, "total", 0) is None and total is not None:
        progress.total = total       # type: ignore[attr-defined]
    yield progress

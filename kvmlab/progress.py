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
from typing import Any, Protocol, runtime_checkable

from kvmlab.errors import ScenarioError

__all__ = ["Progress", "ProgressArg", "progress_bar"]


@runtime_checkable
class Progress(Protocol):
    """What kvmlab calls on a progress bar: the part of tqdm's interface it needs."""

    def update(self, n: float = 1) -> Any: ...

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> Any: ...


ProgressArg = Progress | bool | None
"""What a ``progress=`` argument may be."""


@contextmanager
def progress_bar(progress: ProgressArg, *, total: float | None, desc: str,
                 unit: str = "it") -> Iterator[Progress]:
    """The bar to report to inside the block, made from a ``progress=`` argument.

    A bar kvmlab made (``progress=True`` or silent) is closed at the end of the block;
    a bar that was handed in stays open.

    Raises
    ------
    ScenarioError
        If ``progress`` is neither None, a bool, nor a tqdm-like object.
    """
    from tqdm.auto import tqdm

    if progress is None or isinstance(progress, bool):
        bar = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True,
                   disable=not progress)
        try:
            yield bar
        finally:
            bar.close()
        return
    if not isinstance(progress, Progress):
        raise ScenarioError("progress must be True, False, None or a tqdm-like bar (with "
                            f"update() and set_postfix_str()), not {progress!r}")
    if getattr(progress, "total", 0) is None and total is not None:
        progress.total = total       # type: ignore[attr-defined]
    yield progress

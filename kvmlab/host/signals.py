"""Signal handling for objects that must be cleaned up.

Every kind of run (a guest, a storage pool, a temporary folder) handles the three
signals that end a program from outside the same way: SIGINT becomes
``KeyboardInterrupt``, SIGTERM and SIGHUP become :class:`Stopped` (a
``SystemExit(128 + signal)``), so that ``with`` blocks unwind and remove what they made;
the clean-up itself runs with those signals held back, so that a second signal cannot cut
it short. (SIGKILL cannot be caught: the next kvmlab call removes what such a run left,
see :mod:`kvmlab.host.cleanup`.)

Examples
--------
>>> with stop_signals_as_exit(), signals_deferred():
...     pass
>>> sorted(s.name for s in STOP_SIGNALS)
['SIGHUP', 'SIGINT', 'SIGTERM']
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["STOP_SIGNALS", "Stopped", "Transient", "die_with_owner", "signals_deferred",
           "stop_signals_as_exit", "wake_on_time"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""The signals that end a run and make it remove what it made."""

_PR_SET_PDEATHSIG = 1
_PR_SET_TIMERSLACK = 29
try:                                  # resolved here, before any fork
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):     # pragma: no cover - not Linux
    _PRCTL = None


def die_with_owner(owner: int) -> None:
    """In a child process, first thing: end with its owner (process ``owner``), however
    the owner ends, SIGKILL included (``PR_SET_PDEATHSIG``); end at once if it already
    has. A worker, a busy loop or a reproducer process is then never left behind."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != owner:         # the owner ended before the line above took effect
        os._exit(1)


def wake_on_time() -> None:
    """Let the calling thread's timers wake it on time: a timer slack of 1 ns
    (``PR_SET_TIMERSLACK``) instead of Linux's default 50 us, which would stretch every
    short sleep of a reproducer's process (a 50 us nap would last up to 100 us)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_TIMERSLACK, 1, 0, 0, 0)


class Stopped(SystemExit):
    """SIGTERM or SIGHUP ended the run: a ``SystemExit`` whose code is 128 + the signal's
    number, as a shell reports a program a signal ended.

    Examples
    --------
    >>> exc = Stopped(signal.SIGTERM)
    >>> exc.code, exc.name, str(exc)
    (143, 'SIGTERM', 'stopped by SIGTERM')
    """

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = int(signum)

    @property
    def name(self) -> str:
        """The signal's name (``'SIGTERM'``)."""
        return signal.Signals(self.signum).name

    def __str__(self) -> str:
        return f"stopped by {self.name}"


def _handler(signum: int, _frame: Any) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Stopped(signum)


@contextlib.contextmanager
def stop_signals_as_exit() -> Iterator[None]:
    """While the block runs, SIGINT raises KeyboardInterrupt, SIGTERM and SIGHUP
    :class:`Stopped` (a SystemExit).

    SIGINT is caught even where it was ignored (a program started in the background by
    a shell ignores it). SIGHUP stays ignored where it was (``nohup kvmlab ...``: the
    run outlives its terminal, as asked). Outside the main thread nothing changes: Python
    delivers signals to the main thread only.

    Examples
    --------
    >>> import os
    >>> with stop_signals_as_exit():
    ...     try:
    ...         os.kill(os.getpid(), signal.SIGHUP)
    ...     except SystemExit as exc:
    ...         print(exc.code)
    129
    >>> old = signal.signal(signal.SIGHUP, signal.SIG_IGN)          # as nohup leaves it
    >>> with stop_signals_as_exit():
    ...     signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    True
    >>> _ = signal.signal(signal.SIGHUP, old)
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    kept = {signal.SIGHUP} if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN else set()
    previous = {sig: signal.signal(sig, _handler) for sig in STOP_SIGNALS if sig not in kept}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP back while the block runs (clean-up must finish)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, set(STOP_SIGNALS))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class Transient:
    """Base of objects that live exactly as long as a ``with`` block.

    Subclasses define :meth:`start` and an idempotent :meth:`close`. Entering calls
    ``start``; leaving, an exception, SIGINT, SIGTERM or SIGHUP all end in ``close``,
    which runs with those signals held back so that it finishes.
    """

    def start(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __enter__(self) -> Any:
        self._guard = stop_signals_as_exit()
        self._guard.__enter__()
        try:
            self.start()
        except BaseException:
            try:
                with signals_deferred():
                    self.close()
            finally:
                self._guard.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            with signals_deferred():
                self.close()
        finally:
            self._guard.__exit__(None, None, None)

"""Signal handling for objects that must be cleaned up: SIGTERM becomes SystemExit
(so ``with`` blocks unwind), and clean-up itself is not interrupted.

Examples
--------
>>> with sigterm_as_exit(), signals_deferred():
...     pass
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit while the block runs, so clean-up code runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while the block runs (clean-up must finish)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class Transient:
    """Base of objects that live exactly as long as a ``with`` block.

    Subclasses define :meth:`start` and an idempotent :meth:`close`. Entering calls
    ``start``; leaving, an exception, Ctrl-C or SIGTERM all end in ``close``, which
    runs with those signals held back so that it finishes.
    """

    def start(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __enter__(self) -> Any:
        self._guard = sigterm_as_exit()
        self._guard.__enter__()
        try:
            self.start()
        except BaseException:
            with signals_deferred():
                self.close()
            self._guard.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            with signals_deferred():
                self.close()
        finally:
            self._guard.__exit__(None, None, None)

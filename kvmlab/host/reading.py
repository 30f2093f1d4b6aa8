"""Reading from a libvirt host without a raw ``libvirtError`` escaping.

Inside :func:`reading`, a libvirt error becomes a :class:`~kvmlab.errors.HostUnavailable`
that says what was being read, why it failed (told apart by libvirt's error code) and what
to do; :func:`each` builds one record per listed object and leaves out objects that vanished
meanwhile (a guest undefined by someone else a moment earlier).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from kvmlab.errors import HostUnavailable, ScenarioError
from kvmlab.host.connect import explain, import_libvirt

__all__ = ["each", "probe_error", "reading", "require_connection"]

T = TypeVar("T")
R = TypeVar("R")

_VANISHED_CODES = ("VIR_ERR_NO_DOMAIN", "VIR_ERR_NO_NETWORK", "VIR_ERR_NO_STORAGE_POOL",
                   "VIR_ERR_NO_STORAGE_VOL")


def _uri_of(conn: Any) -> str:
    try:
        return str(conn.getURI())
    except Exception:  # noqa: BLE001 - the URI is only used in a message
        return "(this connection)"


def probe_error(conn: Any, what: str, exc: Exception) -> HostUnavailable:
    """Turn a libvirt error met while reading ``what`` into a :class:`HostUnavailable`."""
    libvirt = import_libvirt()
    uri = _uri_of(conn)
    get_message = getattr(exc, "get_error_message", None)
    message = (get_message() if get_message else None) or str(exc)
    code = exc.get_error_code() if hasattr(exc, "get_error_code") else None
    if code == libvirt.VIR_ERR_INVALID_CONN:
        return HostUnavailable(uri, f"could not read {what}: the connection is closed or broken",
                               "open a new one with kvmlab.host.connect()")
    _reason, remedy = explain(uri, exc)
    return HostUnavailable(uri, f"could not read {what} ({message.strip().rstrip('.')})", remedy)


def require_connection(conn: Any) -> Any:
    """Import libvirt and check that ``conn`` is a connection; return the module."""
    libvirt = import_libvirt()
    if not isinstance(conn, libvirt.virConnect):
        raise ScenarioError(
            "expected an open libvirt connection, as returned by kvmlab.host.connect(), "
            f"but got {type(conn).__name__} {conn!r}")
    return libvirt


@contextmanager
def reading(conn: Any, what: str) -> Iterator[None]:
    """Inside this block a libvirt error becomes a :class:`HostUnavailable`."""
    libvirt = import_libvirt()
    try:
        yield
    except libvirt.libvirtError as exc:
        raise probe_error(conn, what, exc) from None


def each(conn: Any, what: str, items: Iterable[T], build: Callable[[T], R]) -> list[R]:
    """``build`` every item, leaving out those that vanished meanwhile."""
    libvirt = import_libvirt()
    vanished = {getattr(libvirt, name) for name in _VANISHED_CODES}
    out = []
    for item in items:
        try:
            out.append(build(item))
        except libvirt.libvirtError as exc:
            if exc.get_error_code() in vanished:
                continue
            raise probe_error(conn, what, exc) from None
    return out

"""The one family of errors that kvmlab raises.

Every error a student can meet names the rule that was broken or says what was
tried, why it failed and what to do next; none of them is a traceback from deep
inside simpy or libvirt.

Examples
--------
>>> from kvmlab.errors import HostUnavailable
>>> err = HostUnavailable("qemu:///system", "the libvirt daemon is not running",
...                       "start it with `libvirtd -d` (as root)")
>>> print(err)
Cannot reach libvirt at 'qemu:///system': the libvirt daemon is not running. What to do: ...
"""

from __future__ import annotations

SHOWN_CHARS = 120
"""The most characters of a value an error message quotes (see :func:`shown`)."""


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """``repr(value)`` for an error message, cut in the middle if longer than ``limit``.

    A message names the value it refuses; a URI of 5,000 characters, or a list of a
    million items, would bury the rule it breaks.

    Examples
    --------
    >>> shown("qemu:///system")
    "'qemu:///system'"
    >>> print(shown("a" * 5000, limit=20))
    'aaaaaaaaaaaaaa...aaaa' (5002 characters)
    """
    text = repr(value)
    if len(text) <= limit:
        return text
    tail = limit // 4
    return f"{text[:limit - tail]}...{text[-tail:]} ({len(text)} characters)"


class KvmlabError(Exception):
    """Base class of every error raised on purpose by kvmlab."""


class ScenarioError(KvmlabError, ValueError):
    """A scenario or argument breaks a rule; the message names the rule."""


class HostUnavailable(KvmlabError):
    """A libvirt host could not be reached (and only that).

    A program missing on this machine is a :class:`ToolMissing`; a run that reached its
    host, started and then failed is an :class:`ExperimentFailed`.

    Parameters
    ----------
    uri : str
        The libvirt URI that was tried.
    reason : str
        Why it failed, in words a student understands.
    remedy : str
        What to do about it.
    """

    def __init__(self, uri: str, reason: str, remedy: str) -> None:
        self.uri = uri
        self.reason = reason
        self.remedy = remedy
        super().__init__(f"Cannot reach libvirt at {shown(uri)}: {reason}. "
                         f"What to do: {remedy}.")


class ExperimentFailed(KvmlabError):
    """A live experiment started but did not produce a result."""


class ToolMissing(KvmlabError):
    """A program kvmlab needs on this machine is not installed.

    Parameters
    ----------
    tool : str
        The program (``qemu-img``).
    remedy : str
        How to get it.

    Examples
    --------
    >>> print(ToolMissing("qemu-img", "install qemu-utils (make test and make lab do)"))
    ...                                                   # doctest: +ELLIPSIS
    qemu-img is not installed on this machine. What to do: install qemu-utils (make ...
    """

    def __init__(self, tool: str, remedy: str) -> None:
        self.tool = tool
        self.remedy = remedy
        super().__init__(f"{tool} is not installed on this machine. What to do: {remedy}.")

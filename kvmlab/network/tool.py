"""``kvmlab-frames``, the guest's raw-frame sender and listener, built from its C source.

The tiny guest has no compiler and no Python: this small static program sends
exact Ethernet frames from any network namespace at planned times, and reports
every frame each listened interface receives (with the VLAN tag the kernel took
off, if any). It is compiled once per source version with the host's C compiler
and cached next to the guest image (:mod:`kvmlab.host.ctool`).
"""

from __future__ import annotations

from kvmlab.host import ctool

NAME = "kvmlab-frames"


def source() -> bytes:
    """The C source of ``kvmlab-frames``."""
    return ctool.source("kvmlab.network", NAME)


def frames_tool() -> bytes:
    """The static ``kvmlab-frames`` binary, compiled (and cached) if needed."""
    return ctool.static_tool("kvmlab.network", NAME)

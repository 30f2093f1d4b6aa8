"""Everything that touches a real (or libvirt test-driver) host."""

from kvmlab.host.connect import DEFAULT_URI, connect, connection, resolve_uri

__all__ = ["DEFAULT_URI", "connect", "connection", "resolve_uri"]

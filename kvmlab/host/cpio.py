"""Write initramfs archives in the kernel's ``newc`` cpio format, in pure Python.

The Linux kernel unpacks every cpio archive it is handed as initramfs, one after
another, even when they are concatenated and each compressed on its own. kvmlab
uses that to add a small per-run archive (the scenario script) after the cached
base image, without rebuilding it.

Examples
--------
>>> data = newc_archive([("hello.txt", 0o100644, b"hi\\n")])
>>> data[:6]
b'070701'
>>> b"TRAILER!!!" in data
True
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable

Entry = tuple[str, int, bytes]
"""(path inside the archive, mode including the file-type bits, content)."""

DIR = 0o040755
FILE = 0o100644
EXEC = 0o100755
SYMLINK = 0o120777


def _pad4(n: int) -> int:
    return (4 - n % 4) % 4


def _member(ino: int, name: str, mode: int, data: bytes) -> bytes:
    name_bytes = name.encode() + b"\0"
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_bytes), 0]
    header = b"070701" + b"".join(f"{f:08X}".encode() for f in fields)
    head = header + name_bytes
    return head + b"\0" * _pad4(len(head)) + data + b"\0" * _pad4(len(data))


def newc_archive(entries: Iterable[Entry]) -> bytes:
    """Return an uncompressed newc cpio archive of ``entries``, trailer included.

    A symlink's content is its target. Parent directories must be listed before
    their members. Owner is root, times are zero, so the output is reproducible.
    """
    parts = [_member(i, name.lstrip("/"), mode, data)
             for i, (name, mode, data) in enumerate(entries, start=1)]
    parts.append(_member(0, "TRAILER!!!", 0, b""))
    return b"".join(parts)


def gzip_archive(entries: Iterable[Entry]) -> bytes:
    """Return :func:`newc_archive` compressed with gzip (reproducibly: mtime 0).

    Examples
    --------
    >>> import gzip
    >>> gzip.decompress(gzip_archive([("a", FILE, b"x")])).startswith(b"070701")
    True
    """
    return gzip.compress(newc_archive(entries), compresslevel=6, mtime=0)

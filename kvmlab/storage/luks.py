"""A LUKS-encrypted qcow2 image: what encryption costs in the file, and where it sits.

``qemu-img create -f qcow2 -o encrypt.format=luks`` (libvirt's ``<encryption
format='luks'>`` on a qcow2 volume) keeps a whole LUKS header *inside* the qcow2 file: a
4 KiB header (cipher, hash, the salted digest of the master key), then 8 key slots, each
holding the master key split into 4000 "stripes" (anti-forensic splitting: 64 bytes of
AES-256-XTS key x 4000 = 256,000 bytes, rounded up to 4 KiB). That is
4096 + 8 x 258,048 = 2,068,480 bytes, QEMU's ``payload-offset``, whatever the disk's size.
QEMU allocates it as clusters right after the L1 table, when the image is created, and
records where in a header extension (type ``0x0537be77``). The guest's data then go into
clusters exactly as in a plain qcow2 image, each 512-byte sector encrypted on its own
(AES-256 in XTS mode, the sector number as the tweak): the map is the same, the bytes are not
the guest's, and ``qemu-img map`` shows no file offsets (QEMU hides where encrypted data
lies).

Examples
--------
>>> luks_header_bytes()
2068480
>>> image = LuksQcow2(10 * 2**20, 65536)
>>> image.luks_extent                     # (first byte, length): clusters 4 to 35
(262144, 2068480)
>>> image.write(0, 4096)
>>> image.allocated_clusters, image.image_end_offset
(1, 2490368)
>>> "offset" in image.map()[0]
False
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from kvmlab.errors import ScenarioError
from kvmlab.storage.qcow2 import Layer, Qcow2Model

__all__ = ["CPU_CLOCK_FLAKE", "LUKS_ALIGN", "LUKS_EXTENSION", "LUKS_KEY_BYTES", "LUKS_SLOTS",
           "LUKS_STRIPES", "LuksQcow2", "luks_header_bytes", "read_luks_extent"]

LUKS_KEY_BYTES = 64
"""The master key of QEMU's default cipher, AES-256 in XTS mode (two 256-bit keys)."""
LUKS_STRIPES = 4000
"""Anti-forensic stripes per key slot (LUKS1's default)."""
LUKS_SLOTS = 8
LUKS_ALIGN = 4096
"""QEMU aligns the LUKS header and every key slot to 4 KiB."""
LUKS_EXTENSION = 0x0537BE77
"""The qcow2 header extension that says where the LUKS header is (offset, length)."""

CPU_CLOCK_FLAKE = "Unable to get accurate CPU usage"
"""What QEMU's LUKS key setup (timing PBKDF2 to choose its iterations) says when its
thread's CPU time reads zero for a timing round; the same command run again works."""

def luks_header_bytes(key_bytes: int = LUKS_KEY_BYTES, stripes: int = LUKS_STRIPES,
                      slots: int = LUKS_SLOTS) -> int:
    """Bytes of the LUKS header QEMU writes: the header, then the key slots, all aligned.

    Examples
    --------
    >>> luks_header_bytes(key_bytes=32)             # AES-128-XTS
    1052672
    """
    slot = -(-key_bytes * stripes // LUKS_ALIGN) * LUKS_ALIGN
    return LUKS_ALIGN + slots * slot


class LuksQcow2(Qcow2Model):
    """A qcow2 image with a LUKS header, as ``qemu-img create -o encrypt.format=luks`` makes
    it: the plain image's four clusters, then the LUKS header's clusters, then the data.

    Attributes
    ----------
    luks_extent : (int, int)
        Where the LUKS header lies in the file: first byte and length (the header
        extension's values).
    """

    def __init__(self, virtual_size: int, cluster_size: int,
                 backing: Layer | None = None) -> None:
        if backing is not None:
            raise ScenarioError("an encrypted image here has no backing image")
        super().__init__(virtual_size, cluster_size)
        length = luks_header_bytes()
        first = self._alloc(-(-length // cluster_size), "LUKS header")
        self.luks_extent = (first * cluster_size, length)

    def map(self) -> list[dict[str, Any]]:
        """``qemu-img map`` of the opened image: as a plain image's, without file offsets."""
        return [{k: v for k, v in e.items() if k != "offset"} for e in super().map()]


def read_luks_extent(path: str | Path) -> tuple[int, int] | None:
    """The (offset, length) of the LUKS header in the qcow2 file at ``path``, from its
    header extension; None if the image has none (it is not LUKS-encrypted).

    Raises
    ------
    ScenarioError
        If the file cannot be read or is not a qcow2 image.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(65536)
    except OSError as exc:
        raise ScenarioError(f"cannot read {path}: {exc.strerror or exc}") from None
    version = struct.unpack(">I", head[4:8])[0] if len(head) >= 8 else 0
    if head[:4] != b"QFI\xfb" or version not in (2, 3):
        raise ScenarioError(f"{path} is not a qcow2 image")
    at = 72 if version == 2 else struct.unpack(">I", head[100:104])[0]   # extensions follow
    while at + 8 <= len(head):
        kind, length = struct.unpack(">II", head[at:at + 8])
        if kind == 0:
            return None
        if kind == LUKS_EXTENSION:
            return struct.unpack(">QQ", head[at + 8:at + 24])
        at += 8 + -(-length // 8) * 8
    return None

"""A model of a raw image: guest byte N is file byte N, and the file system decides the rest.

A raw image has no header and no tables. Whether a byte takes space on the host
depends on the file system: a *sparse* file (``preallocation=off``) only has the
blocks that were written (``qemu-img create`` writes the first one itself, so
that QEMU can probe the block size later); ``falloc`` reserves every block but
leaves them reading as holes; ``full`` writes every byte at creation.
``qemu-img map`` shows written blocks as data and the rest as zero, at the file
system's block granularity (4 KiB on ext4 and XFS).

Examples
--------
>>> image = RawModel(1048576)
>>> image.write(200000, 70000)
>>> for e in image.map():
...     print(e["start"], e["length"], e["data"])
0 4096 True
4096 192512 False
196608 73728 True
270336 778240 False
>>> image.allocated_blocks, RawModel(1048576, "full").allocated_blocks
(19, 256)
>>> RawModel(1048576, first_block=False).allocated_blocks     # a file libvirt made
0
"""

from __future__ import annotations

from typing import Any

from kvmlab.errors import ScenarioError
from kvmlab.progress import Progress
from kvmlab.storage.scenario import StorageScenario
from kvmlab.validate import whole_number

FS_BLOCK = 4096
"""The file system's block size (ext4 and XFS default)."""
FIRST_BLOCK = 4096
"""What ``qemu-img create`` writes at the start of a raw file (QEMU's probe alignment)."""


class RawModel:
    """The blocks of a raw image file that hold data.

    Parameters
    ----------
    virtual_size : int
        The file's length.
    preallocation : str
        ``'off'``, ``'falloc'`` or ``'full'``, as ``qemu-img create -o preallocation=``.
    block_size : int
        The host file system's block size.
    first_block : bool
        Whether the creator wrote the first block (``qemu-img create`` does; libvirt,
        which creates a raw volume's file itself, does not).
    """

    def __init__(self, virtual_size: int, preallocation: str = "off",
                 block_size: int = FS_BLOCK, first_block: bool = True) -> None:
        if whole_number(block_size, "block_size") <= 0 or block_size & (block_size - 1):
            raise ScenarioError(f"a file system block is a power of two bytes, not {block_size}")
        self.virtual_size = virtual_size
        self.preallocation = preallocation
        self.block_size = block_size
        self.blocks: set[int] = set()
        if preallocation == "full":
            self.blocks = set(range(self.total_blocks))
        elif first_block:
            self.write(0, min(FIRST_BLOCK, virtual_size))

    @classmethod
    def from_scenario(cls, scenario: StorageScenario, block_size: int = FS_BLOCK,
                      bar: Progress | None = None, first_block: bool = True) -> RawModel:
        """Create the raw image of ``scenario`` and apply its writes (``bar``, a
        :mod:`kvmlab.progress` bar, advances by one per write)."""
        image = cls(scenario.virtual_size, scenario.preallocation, block_size, first_block)
        for offset, length in scenario.writes:
            image.write(offset, length)
            if bar is not None:
                bar.update(1)
        return image

    @property
    def total_blocks(self) -> int:
        return -(-self.virtual_size // self.block_size)

    def write(self, offset: int, length: int) -> None:
        """A guest write: every file system block it touches now holds data."""
        bs = self.block_size
        self.blocks.update(range(offset // bs, (offset + length - 1) // bs + 1))

    @property
    def allocated_blocks(self) -> int:
        """File system blocks holding data (what ``qemu-img map`` shows as data)."""
        return len(self.blocks)

    @property
    def reserved_bytes(self) -> int:
        """Bytes the file takes on the host, not counting the file system's own metadata
        (``du``; ``qemu-img info`` adds the extent tree blocks)."""
        if self.preallocation == "off":
            return self.allocated_blocks * self.block_size
        return self.total_blocks * self.block_size

    def map(self) -> list[dict[str, Any]]:
        """The image as ``qemu-img map --output=json -f raw`` shows it."""
        out: list[dict[str, Any]] = []
        bs = self.block_size
        for b in range(self.total_blocks):
            start, end = b * bs, min((b + 1) * bs, self.virtual_size)
            data = b in self.blocks
            if out and out[-1]["data"] == data:
                out[-1]["length"] += end - start
            else:
                out.append({"start": start, "length": end - start, "depth": 0,
                            "present": True, "zero": not data, "data": data,
                            "offset": start})
        return out

"""The storage lab: raw files, qcow2 clusters and vmdk grains, allocate-on-write,
copy-on-write, internal snapshots and compressed clusters, checked against QEMU's own tools.

The lab's verbs follow :mod:`kvmlab.lab`: :func:`load_scenario`, :func:`simulate` (the
model), :func:`run_on_host` (the same image made by this machine's ``qemu-img`` and
``qemu-io``) and :func:`compare`; :func:`run_in_guest` has a real guest make the writes
on a libvirt volume it sees as its disk, and :func:`recorded_result` reads such a run
recorded earlier.

Examples
--------
>>> from kvmlab import storage
>>> s = storage.load_scenario("storage-first-writes")
>>> r = storage.simulate(s)
>>> r.allocated_clusters, r.image_end_offset, r.source
(2, 458752, 'simulated')
>>> c = storage.compare(r, r)
>>> c.agrees, c.max_error
(True, 0.0)
"""

from __future__ import annotations

from kvmlab.storage.compress import CompressedQcow2
from kvmlab.storage.guestdisk import recorded_result, run_in_guest
from kvmlab.storage.model import image_after, simulate, simulate_io
from kvmlab.storage.qcow2 import Qcow2Model
from kvmlab.storage.raw import FS_BLOCK, RawModel
from kvmlab.storage.result import ImageLayout, StorageComparison, StorageResult, compare
from kvmlab.storage.scenario import IoWorkload, StorageScenario, load_scenario
from kvmlab.storage.twin import run_on_host
from kvmlab.storage.vmdk import VmdkModel

__all__ = ["FS_BLOCK", "CompressedQcow2", "ImageLayout", "IoWorkload", "Qcow2Model",
           "RawModel", "StorageComparison", "StorageResult", "StorageScenario", "VmdkModel",
           "compare", "image_after", "load_scenario", "recorded_result", "run_in_guest",
           "run_on_host", "simulate", "simulate_io"]

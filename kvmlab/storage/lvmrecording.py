"""A run of :func:`kvmlab.storage.lvmguest.run_lvm_in_guest` on a real host, recorded
for offline notebooks (``kvmlab.storage.lvmguest.ARTICLE_LVS`` on a 64 MiB raw disk).

Examples
--------
>>> run = recorded_lvm_run()
>>> run["provenance"]["accelerator"], run["pe_start"], sorted(run["lvs"])
('tcg', 1048576, ['lv1', 'lv2'])
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["recorded_lvm_run"]

_RUN: dict[str, Any] = {'extent_size': 4194304,
     'free_extents': 10,
     'label_offset': 512,
     'links': ['lv1', 'lv2'],
     'lvs': {'lv1': {'disk_offset': 1048576,
                     'dm_path': '/dev/mapper/kvmlab--hostvg-lv1',
                     'extents': 2,
                     'first_extent': 0,
                     'size': 8388608},
             'lv2': {'disk_offset': 9437184,
                     'dm_path': '/dev/mapper/kvmlab--hostvg-lv2',
                     'extents': 3,
                     'first_extent': 2,
                     'size': 12582912}},
     'lvs_text': ['  LV   VG            Attr       LSize  Pool Origin Data%  Meta%  Move Log '
                  'Cpy%Sync Convert',
                  '  lv1  kvmlab-hostvg -wi-a-----  '
                  '8.00m',
                  '  lv2  kvmlab-hostvg -wi-a----- '
                  '12.00m'],
     'mda_size': 1044480,
     'metadata_extent_size': 4194304,
     'metadata_lvs': {'lv1': {'extents': 2, 'first_extent': 0},
                      'lv2': {'extents': 3, 'first_extent': 2}},
     'metadata_pe_count': 15,
     'metadata_pe_start': 1048576,
     'pattern_at': {'lv1': 1048576, 'lv2': 9437184},
     'pe_count': 15,
     'pe_start': 1048576,
     'provenance': {'accelerator': 'tcg',
                    'date': '2026-12-06T13:10:43+00:00',
                    'host': 'a lab host',
                    'method': 'a tiny guest ran lvm pvcreate/vgcreate/lvcreate on a raw virtio '
                              'disk (no udev), wrote a pattern into each LV; the host read the '
                              'image',
                    'uri': None},
     'vgs_text': ['  VG            #PV #LV #SN Attr   VSize  VFree',
                  '  kvmlab-hostvg   1   2   0 wz--n- 60.00m 40.00m']}


def recorded_lvm_run() -> dict[str, Any]:
    """The recorded run (a copy: change it freely)."""
    return copy.deepcopy(_RUN)

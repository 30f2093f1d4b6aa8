"""The article's LVM volume group for real, inside a guest's kernel.

A host without the kernel's device-mapper cannot run LVM, but the tiny guest's kernel can
(``dm-mod``, :data:`kvmlab.host.image.LVM_MODULES`). :func:`run_lvm_in_guest` gives the
guest a raw volume of a transient libvirt pool as its virtio disk ``/dev/vda`` and lets it
do what the article does on a host's spare disk, the whole disk a PV (no partition table)::

    pvcreate /dev/vda
    vgcreate kvmlab-hostvg /dev/vda
    lvcreate -L 8M -n lv1 kvmlab-hostvg
    lvcreate -L 10M -n lv2 kvmlab-hostvg      # rounded up to 12 MiB: whole extents

then write a pattern into each LV, read it back, print ``pvs``/``vgs``/``lvs`` and
deactivate the group (``vgchange -an``: what ``virsh pool-destroy`` does). With the guest
powered off, the host reads the disk image itself: where the PV label is, the VG's metadata
as LVM wrote it (text, in the metadata area) and where each LV's pattern landed on the disk.
:func:`compare_lvm` holds all three to :func:`kvmlab.storage.lvmpool.plan_volume_group`.

Examples
--------
>>> script = lvm_script([("lv1", 8 << 20)])
>>> "lvm pvcreate" in script and "lvm vgcreate kvmlab-hostvg /dev/vda" in script
True
>>> measured = {"pe_start": 1048576, "pe_count": 15, "extent_size": 4194304,
...             "mda_size": 1044480, "label_offset": 512,
...             "lvs": {"lv1": {"extents": 2, "first_extent": 0, "disk_offset": 1048576,
...                             "dm_path": "/dev/mapper/kvmlab--hostvg-lv1"}},
...             "pattern_at": {"lv1": 1048576}}
>>> c = compare_lvm(plan_volume_group(64 << 20, [("lv1", 8 << 20)]), measured)
>>> c.agrees, c.max_error
(True, 0.0)
>>> compare_lvm(c.simulated, measured | {"pattern_at": {"lv1": None}}).agrees
False
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvmlab.errors import ExperimentFailed
from kvmlab.host.domxml import DiskSpec
from kvmlab.host.guest import TransientGuest
from kvmlab.host.image import LVM_DIR
from kvmlab.host.owner import remove_dead_dirs, temp_root
from kvmlab.lab import Comparison
from kvmlab.progress import ProgressArg, check_progress, progress_bar
from kvmlab.storage.lvmpool import (
    LABEL_OFFSET,
    SECTOR,
    VolumeGroupLayout,
    dm_name,
    plan_volume_group,
)
from kvmlab.storage.pool import TransientPool
from kvmlab.storage.twin import local_uri

__all__ = ["ARTICLE_LVS", "DISK_SIZE", "PATTERN_LENGTH", "VG_NAME", "LvmComparison",
           "compare_lvm", "guest_report", "lvm_script", "pattern_byte", "read_disk",
           "run_lvm_in_guest"]

VG_NAME = "kvmlab-hostvg"
DISK_SIZE = 64 << 20
ARTICLE_LVS: tuple[tuple[str, int], ...] = (("lv1", 8 << 20), ("lv2", 10 << 20))
PATTERN_LENGTH = 64 << 10
"""Bytes of pattern written into each LV, at :data:`PATTERN_AT` of the LV."""
PATTERN_AT = 1 << 20
DONE_MARKER = "KVMLAB-LVM-DONE"
LVM = f"/{LVM_DIR}/lvm"
LVM_CONF = """devices { obtain_device_list_from_udev = 0 external_device_info_source = "none"
  use_devicesfile = 0 filter = [ "a|^/dev/vd|", "r|.*|" ] }
activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
backup { backup = 0 archive = 0 }
"""
"""No udev in the guest: LVM makes its own ``/dev/mapper`` nodes and ``/dev/VG`` links."""
REPORT = "--noheadings --nameprefixes --units b --nosuffix"


def pattern_byte(k: int) -> int:
    """The byte LV number ``k`` (from 0) is filled with: 0xA5, 0xA6, ...

    Examples
    --------
    >>> hex(pattern_byte(0)), hex(pattern_byte(1))
    ('0xa5', '0xa6')
    """
    return 0xA5 + k


def lvm_script(lvs: Sequence[tuple[str, int]], vg: str = VG_NAME, dev: str = "vda") -> str:
    """The guest's script: load the drivers, make the PV, VG and LVs, write and read back
    each LV's pattern, report, deactivate."""
    out = ["kvmlab-insmod disk || echo insmod=failed",
           "kvmlab-insmod lvm || echo insmod=failed",
           f"[ -b /dev/{dev} ] || {{ echo missing={dev}; exit 3; }}",
           f"[ -x {LVM} ] || {{ echo missing=lvm; exit 3; }}",
           "mkdir -p /tmp/lvm /run/lock/lvm /run/lvm",
           f"cat > /tmp/lvm/lvm.conf <<'EOF'\n{LVM_CONF}EOF",
           "export LVM_SYSTEM_DIR=/tmp/lvm LVM_SUPPRESS_FD_WARNINGS=1",
           f"{LVM} pvcreate /dev/{dev} 2>&1 | sed 's/^/log| /'",
           f"{LVM} vgcreate {vg} /dev/{dev} 2>&1 | sed 's/^/log| /'"]
    block = PATTERN_LENGTH
    for k, (name, size) in enumerate(lvs):
        out.append(f"{LVM} lvcreate -L {size}b -n {name} {vg} 2>&1 | sed 's/^/log| /'")
        lv = f"/dev/{vg}/{name}"
        out += [f"[ -b {lv} ] && echo link.{name}=yes",
                f"head -c {block} /dev/zero | tr '\\000' '\\{pattern_byte(k):03o}' | "
                f"dd of={lv} bs={block} seek={PATTERN_AT // block} conv=notrunc,fsync "
                "2>/dev/null || echo write.{name}=failed",
                f"echo md5.{name}=$(dd if={lv} bs={block} skip={PATTERN_AT // block} count=1 "
                "2>/dev/null | md5sum | cut -d' ' -f1)"]
    out += [f"{LVM} pvs {REPORT} -o pv_name,pe_start,pv_pe_count,pv_pe_alloc_count,pv_mda_size",
            f"{LVM} vgs {REPORT} -o vg_name,vg_extent_size,vg_extent_count,vg_free_count,"
            "lv_count",
            f"{LVM} lvs {REPORT} --segments -o lv_name,lv_size,seg_pe_ranges,lv_dm_path {vg}",
            f"{LVM} vgs {vg} 2>&1 | sed 's/^/vgs| /'",
            f"{LVM} lvs {vg} 2>&1 | sed 's/^/lvs| /'",
            f"{LVM} vgchange -an {vg} 2>&1 | sed 's/^/log| /'",
            f"echo {DONE_MARKER}", ""]
    return "\n".join(out)


def _reports(lines: Sequence[str]) -> list[dict[str, str]]:
    """The ``--nameprefixes`` lines: ``LVM2_FIELD='value' ...`` as dicts (FIELD lower)."""
    rows = []
    for line in lines:
        pairs = re.findall(r"LVM2_(\w+)='([^']*)'", line)
        if pairs:
            rows.append({k.lower(): v for k, v in pairs})
    return rows


def guest_report(lines: Sequence[str], extent_size: int, pe_start: int) -> dict[str, Any]:
    """The figures of the guest's ``pvs``/``vgs``/``lvs --segments`` reports (printed with
    ``--nameprefixes --units b``); each LV's disk offset from its first extent."""
    rows = _reports(lines)
    pv = next((r for r in rows if "pe_start" in r), None)
    vg = next((r for r in rows if "vg_extent_size" in r), None)
    if pv is None or vg is None:
        raise ExperimentFailed("the guest printed no pvs/vgs report; its lines:\n"
                               + "\n".join(lines[-12:]))
    out: dict[str, Any] = {
        "pe_start": int(pv["pe_start"]), "pe_count": int(pv["pv_pe_count"]),
        "mda_size": int(pv["pv_mda_size"]), "extent_size": int(vg["vg_extent_size"]),
        "free_extents": int(vg["vg_free_count"]), "lvs": {}}
    for r in rows:
        if "seg_pe_ranges" in r:
            m = re.fullmatch(r"\S+:(\d+)-(\d+)", r["seg_pe_ranges"])
            if m is None:
                raise ExperimentFailed(f"unexpected seg_pe_ranges {r['seg_pe_ranges']!r}")
            first, last = int(m.group(1)), int(m.group(2))
            out["lvs"][r["lv_name"]] = {
                "size": int(r["lv_size"]), "first_extent": first, "extents": last - first + 1,
                "disk_offset": pe_start + first * extent_size, "dm_path": r["lv_dm_path"]}
    return out


def read_disk(path: str | Path, vg: str, lvs: Sequence[str]) -> dict[str, Any]:
    """What the disk image itself holds: the label's offset, the VG's newest metadata (its
    extent size, first extent, extent count and each LV's extents) and where each LV's
    pattern is (so where the LV starts on the disk)."""
    data = Path(path).read_bytes()
    found: dict[str, Any] = {"label_offset": data.find(b"LABELONE")}
    texts = [t for t in re.findall(rb"[^\0]{16,}", data[:16 << 20])   # text between NULs
             if re.search(rb"seqno = \d+", t) and vg.encode() + b" {" in t]
    if not texts:
        raise ExperimentFailed(f"no metadata of VG {vg!r} found on the disk")
    text = max(texts, key=lambda t: int(re.search(rb"seqno = (\d+)", t).group(1))  # type: ignore[union-attr]
               ).decode(errors="replace")

    def num(key: str, where: str = text) -> int:
        m = re.search(rf"\b{key} = (\d+)", where)
        if m is None:
            raise ExperimentFailed(f"no {key} in VG {vg!r}'s metadata")
        return int(m.group(1))

    extent = num("extent_size") * SECTOR
    pe_start = num("pe_start") * SECTOR
    found |= {"metadata_extent_size": extent, "metadata_pe_start": pe_start,
              "metadata_pe_count": num("pe_count"), "metadata_lvs": {}, "pattern_at": {}}
    for k, name in enumerate(lvs):
        m = re.search(rf"\n\s*{re.escape(name)} \{{.*?extent_count = (\d+).*?\"pv0\", (\d+)",
                      text, re.S)
        if m:
            found["metadata_lvs"][name] = {"extents": int(m.group(1)),
                                           "first_extent": int(m.group(2))}
        at = data.find(bytes([pattern_byte(k)]) * PATTERN_LENGTH)
        found["pattern_at"][name] = at - PATTERN_AT if at >= 0 else None
    return found


@dataclass
class LvmComparison(Comparison):
    """The planned layout next to what the guest's LVM reported and the disk holds."""

    simulated: VolumeGroupLayout
    measured: dict[str, Any]

    def rows(self) -> list[dict[str, Any]]:
        """One row per predicted number: what it is, the model's value, each measurement."""
        g, m = self.simulated, self.measured
        rows = [{"what": "label offset", "model": LABEL_OFFSET,
                 "lvm": None, "disk": m.get("label_offset")},
                {"what": "extent size", "model": g.extent_size, "lvm": m.get("extent_size"),
                 "disk": m.get("metadata_extent_size")},
                {"what": "first extent (pe_start)", "model": g.pe_start,
                 "lvm": m.get("pe_start"), "disk": m.get("metadata_pe_start")},
                {"what": "metadata area", "model": g.mda_size, "lvm": m.get("mda_size"),
                 "disk": None},
                {"what": "extents", "model": g.pe_count, "lvm": m.get("pe_count"),
                 "disk": m.get("metadata_pe_count")}]
        for lv in g.lvs:
            seen = m.get("lvs", {}).get(lv.name, {})
            meta = m.get("metadata_lvs", {}).get(lv.name, {})
            rows += [{"what": f"{lv.name} extents", "model": lv.extents,
                      "lvm": seen.get("extents"), "disk": meta.get("extents")},
                     {"what": f"{lv.name} first extent", "model": lv.first_extent,
                      "lvm": seen.get("first_extent"), "disk": meta.get("first_extent")},
                     {"what": f"{lv.name} disk offset", "model": lv.disk_offset,
                      "lvm": seen.get("disk_offset"),
                      "disk": m.get("pattern_at", {}).get(lv.name)},
                     {"what": f"{lv.name} device", "model": f"/dev/mapper/{dm_name(g.vg, lv.name)}",
                      "lvm": seen.get("dm_path"), "disk": None}]
        return rows

    def _errors(self) -> list[float]:
        errs = []
        for r in self.rows():
            for side in ("lvm", "disk"):
                got = r[side]
                if got is None:
                    continue
                if isinstance(r["model"], str):
                    errs.append(0.0 if got == r["model"] else 1.0)
                else:
                    errs.append(abs(float(got) - float(r["model"])))
        return errs

    @property
    def agrees(self) -> bool:
        g, m = self.simulated, self.measured
        complete = (set(m.get("lvs", {})) == {lv.name for lv in g.lvs}
                    and all(m.get("pattern_at", {}).get(lv.name) is not None for lv in g.lvs))
        return complete and self.max_error == 0.0

    @property
    def max_error(self) -> float:
        return max(self._errors(), default=0.0)

    def table(self) -> str:
        from kvmlab.display import as_table
        return as_table(self.rows())

    def plot(self, ax: Any = None) -> Any:
        """The disk as one bar: label and metadata area, then each LV, then free extents."""
        import matplotlib.pyplot as plt
        if ax is None:
            _, ax = plt.subplots(figsize=(7, 1.8))
        g, mib = self.simulated, float(1 << 20)
        ax.barh(0, g.pe_start / mib, left=0, color="0.6", label="label + metadata")
        for lv, colour in zip(g.lvs, ("tab:blue", "tab:orange", "tab:green", "tab:red"),
                              strict=False):
            ax.barh(0, lv.size / mib, left=lv.disk_offset / mib, color=colour, label=lv.name)
            seen = self.measured.get("pattern_at", {}).get(lv.name)
            if seen is not None:
                ax.plot([seen / mib], [0], "k^", markersize=9)
        ax.set_xlim(0, g.disk_size / mib)
        ax.set_yticks([])
        ax.set_xlabel("offset on the disk (MiB); ^ where the guest's pattern was found")
        ax.legend(loc="upper right", fontsize=9, ncol=len(g.lvs) + 1)
        return ax

    def details(self) -> dict[str, Any]:
        return {"simulated": self.simulated.to_dict(), "measured": self.measured,
                "rows": self.rows()}


def compare_lvm(simulated: VolumeGroupLayout, measured: Mapping[str, Any]) -> LvmComparison:
    """Hold a guest's run (:func:`run_lvm_in_guest`) to the plan."""
    return LvmComparison(simulated, dict(measured))


def run_lvm_in_guest(lvs: Sequence[tuple[str, int]] = ARTICLE_LVS, *,
                     disk_size: int = DISK_SIZE, vg: str = VG_NAME, uri: str | None = None,
                     progress: ProgressArg = None) -> dict[str, Any]:
    """Run the article's LVM steps in a guest on a fresh raw volume; return what was seen.

    The plan is checked first (:func:`plan_volume_group`: a broken rule raises
    ScenarioError before anything is created). The result holds the guest's ``pvs``/
    ``vgs``/``lvs`` figures, its human-readable ``vgs``/``lvs`` output (``vgs_text``,
    ``lvs_text``), what :func:`read_disk` found in the image, and ``provenance``.

    Raises
    ------
    ExperimentFailed
        The guest lacks its disk or LVM (with what to do), a step failed, or a pattern did
        not read back.
    """
    plan = plan_volume_group(disk_size, lvs, vg=vg)
    uri = local_uri(uri)
    progress = check_progress(progress)
    remove_dead_dirs(temp_root())
    with progress_bar(progress, total=2, desc="LVM in a guest", unit="step") as bar, \
            TransientPool(uri) as pool:
        vol = pool.create_volume(f"{VG_NAME}-pv.raw", disk_size, "raw")
        bar.set_postfix_str("the guest runs pvcreate, vgcreate, lvcreate")
        with TransientGuest(lvm_script(lvs, vg), uri=uri, purpose="lvm", memory_mib=256,
                            disks=[DiskSpec(vol.path(), "raw")]) as guest:
            out = guest.result(timeout_s=300)
            accel = guest.accel
        bar.update(1)
        values = out.values()
        if "insmod" in values or "missing" in values:
            raise ExperimentFailed(
                f"the guest lacks {values.get('missing', 'a kernel module')}: rebuild the "
                "guest image on a host with lvm2 installed (scripts/setup-host.sh), e.g. "
                "`kvmlab doctor --build-image`")
        if DONE_MARKER not in out.lines:
            raise ExperimentFailed("the guest's LVM steps did not finish; last lines:\n"
                                   + "\n".join(out.console.splitlines()[-10:]))
        for k, (name, _) in enumerate(lvs):
            want = hashlib.md5(bytes([pattern_byte(k)]) * PATTERN_LENGTH).hexdigest()
            if values.get(f"md5.{name}") != want:
                raise ExperimentFailed(f"the pattern written to {name} did not read back "
                                       f"(md5 {values.get(f'md5.{name}')}); LVM said:\n"
                                       + "\n".join(x for x in out.lines if x.startswith("log|")))
        measured = guest_report(out.lines, plan.extent_size, plan.pe_start)
        bar.set_postfix_str("reading the disk image")
        measured |= read_disk(vol.path(), vg, [n for n, _ in lvs])
        bar.update(1)
    measured["links"] = sorted(k.split(".", 1)[1] for k in values if k.startswith("link."))
    measured["vgs_text"] = [x[5:].rstrip() for x in out.lines if x.startswith("vgs| ")]
    measured["lvs_text"] = [x[5:].rstrip() for x in out.lines if x.startswith("lvs| ")]
    measured["provenance"] = {
        "host": socket.gethostname(), "uri": uri, "accelerator": accel,
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "method": "a tiny guest ran lvm pvcreate/vgcreate/lvcreate on a raw virtio disk "
                  "(no udev), wrote a pattern into each LV; the host read the image"}
    return measured

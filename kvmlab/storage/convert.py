"""The same data in two formats: ``qemu-img convert`` from vmdk to qcow2 and from qcow2 to
vmdk, predicted by the models and done by this machine's ``qemu-img``.

``qemu-img convert`` reads the source in order and writes only what holds data (what
reads as zeros is skipped: the new image reads zeros there anyway). Every grain or
cluster a guest wrote holds some of its bytes, so the target gets a data cluster for
each one, **allocated in guest order**: the target's file has its clusters sorted by
guest offset, whatever order the guest wrote them in. (The source's map shows the
guest's order; compare the two.) Both sides use 64 KiB: the vmdk grain and the qcow2
cluster size, so one source cluster is one target cluster.

Examples
--------
>>> s = {"format": "vmdk", "virtual_size": 4194304, "writes": [[2097152, 1], [0, 1]]}
>>> p = predict_conversions(s)
>>> [(e["start"], e.get("offset")) for e in p["qcow2 -> vmdk"] if e["data"]]
[(0, 65536), (2097152, 131072)]
>>> [(e["start"], e.get("offset")) for e in p["vmdk -> qcow2"] if e["data"]]
[(0, 327680), (2097152, 393216)]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kvmlab.display import as_table
from kvmlab.errors import ScenarioError
from kvmlab.progress import ProgressArg
from kvmlab.storage.qcow2 import Qcow2Model
from kvmlab.storage.result import image_view
from kvmlab.storage.scenario import StorageScenario, as_scenario
from kvmlab.storage.twin import CONVERSIONS, convert_on_host
from kvmlab.storage.vmdk import GRAIN, VmdkModel

__all__ = ["ConversionResult", "check_convertible", "convert", "predict_conversions"]


def check_convertible(scenario: StorageScenario | Mapping[str, Any]) -> StorageScenario:
    """``scenario`` if its writes can be made on both formats (a qcow2 or vmdk scenario of
    64 KiB clusters with no backing image, snapshots or compression); else a ScenarioError.

    Examples
    --------
    >>> check_convertible({"virtual_size": 1048576, "cluster_size": 4096})
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: the conversion demonstration uses 64 KiB clusters ...
    """
    scenario = as_scenario(scenario)
    if scenario.format not in ("qcow2", "vmdk"):
        raise ScenarioError(f"the conversion demonstration converts between vmdk and qcow2; "
                            f"a {scenario.format} scenario is neither")
    if scenario.cluster_size != GRAIN:
        raise ScenarioError(f"the conversion demonstration uses 64 KiB clusters (the vmdk "
                            f"grain); cluster_size {scenario.cluster_size} is not")
    if scenario.backing is not None or scenario.snapshots or scenario.compress:
        raise ScenarioError("the conversion demonstration takes the writes of one image: no "
                            "backing image, snapshots or compress")
    return scenario


def predict_conversions(scenario: StorageScenario | Mapping[str, Any]
                        ) -> dict[str, list[dict[str, Any]]]:
    """The models' ``qemu-img map`` of each conversion's target (keys as
    :func:`kvmlab.storage.twin.convert_on_host`)."""
    scenario = check_convertible(scenario)
    written = {"vmdk": sorted(VmdkModel.from_scenario(scenario).grains),
               "qcow2": sorted(Qcow2Model.from_scenario(
                   dataclasses.replace(scenario, format="qcow2")).data)}
    out: dict[str, list[dict[str, Any]]] = {}
    for source, target in CONVERSIONS:
        image: VmdkModel | Qcow2Model = (VmdkModel(scenario.virtual_size) if target == "vmdk"
                                         else Qcow2Model(scenario.virtual_size, GRAIN))
        for g in written[source]:               # convert writes in guest order
            image.write(g * GRAIN, min(GRAIN, scenario.virtual_size - g * GRAIN))
        out[f"{source} -> {target}"] = image.map()
    return out


@dataclass(frozen=True)
class ConversionResult:
    """Each conversion's target map, predicted and measured.

    Attributes
    ----------
    scenario : StorageScenario
    predicted, measured : dict of str to list of dict
        ``"vmdk -> qcow2"`` and ``"qcow2 -> vmdk"`` to the target's ``qemu-img map``.
    """

    scenario: StorageScenario
    predicted: dict[str, list[dict[str, Any]]]
    measured: dict[str, list[dict[str, Any]]]

    def agrees_on(self, key: str) -> bool:
        """Do the maps of conversion ``key`` agree (as the image format sees them)?"""
        return image_view(self.predicted[key]) == image_view(self.measured[key])

    @property
    def agrees(self) -> bool:
        """Both conversions agree."""
        return all(self.agrees_on(k) for k in self.predicted)

    def table(self) -> str:
        """Per conversion, the data entries side by side."""
        parts = []
        for key in self.predicted:
            rows = [{"predicted": _text(a), "measured": _text(b), "same": a == b}
                    for a, b in _pairs(image_view(self.predicted[key]),
                                       image_view(self.measured[key]))]
            parts += [f"{key}: {'agrees' if self.agrees_on(key) else 'differs'}",
                      as_table(rows, ["predicted", "measured", "same"]), ""]
        return "\n".join(parts).rstrip()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (what ``kvmlab storage convert`` prints)."""
        return {"agrees": self.agrees, "scenario": self.scenario.to_dict(),
                "conversions": {k: {"agrees": self.agrees_on(k),
                                    "predicted": self.predicted[k],
                                    "measured": self.measured[k]} for k in self.predicted}}


def _pairs(a: list[Any], b: list[Any]) -> list[tuple[Any, Any]]:
    n = max(len(a), len(b))
    return [(a[i] if i < len(a) else None, b[i] if i < len(b) else None) for i in range(n)]


def _text(e: dict[str, Any] | None) -> str:
    if e is None:
        return "(none)"
    where = f"data at {e['offset']:,}" if "offset" in e else (
        "data" if e["data"] else "zeros")
    return f"{e['start']:,} +{e['length']:,}: {where}"


def convert(scenario: StorageScenario | Mapping[str, Any], *,
            progress: ProgressArg = None) -> ConversionResult:
    """Make the scenario's writes on a vmdk and a qcow2 image, convert each to the other
    format with ``qemu-img convert``, and put the targets' maps next to the models'.

    Raises
    ------
    ScenarioError
        If the scenario cannot be made on both formats (:func:`check_convertible`).
    ToolMissing
        If ``qemu-img`` or ``qemu-io`` is not installed.
    """
    scenario = check_convertible(scenario)
    predicted = predict_conversions(scenario)
    return ConversionResult(scenario, predicted, convert_on_host(scenario, progress=progress))

"""Small readers of libvirt XML: sizes with units, and element text.

Examples
--------
>>> import xml.etree.ElementTree as ET
>>> size_bytes(ET.fromstring("<capacity unit='KiB'>4</capacity>"))
4096
>>> xml_text(ET.fromstring("<pool><name> default </name></pool>"), "name")
'default'
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

__all__ = ["size_bytes", "xml_text"]

_UNIT_FACTORS = {
    "b": 1, "byte": 1, "bytes": 1,
    "kb": 1000, "k": 1024, "kib": 1024,
    "mb": 1000**2, "m": 1024**2, "mib": 1024**2,
    "gb": 1000**3, "g": 1024**3, "gib": 1024**3,
    "tb": 1000**4, "t": 1024**4, "tib": 1024**4,
    "pb": 1000**5, "p": 1024**5, "pib": 1024**5,
}


def size_bytes(element: ET.Element | None, default_unit: str = "bytes") -> int | None:
    """Read a libvirt size element such as ``<capacity unit='bytes'>42</capacity>``."""
    if element is None or not (element.text or "").strip():
        return None
    unit = (element.get("unit") or default_unit).lower()
    return int((element.text or "").strip()) * _UNIT_FACTORS.get(unit, 1)


def xml_text(root: ET.Element, path: str) -> str | None:
    text = root.findtext(path)
    return text.strip() if text is not None and text.strip() else None

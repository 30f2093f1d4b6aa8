"""Versions of everything kvmlab depends on, for bug reports and provenance.

Examples
--------
>>> info = versions()
>>> {"simpy", "libvirt library", "qemu-system-x86_64"} <= set(info)
True
>>> info["kvmlab"] == __import__("kvmlab").__version__
True
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import re
import shutil
import subprocess

from kvmlab.host.connect import version_string
from kvmlab.host.image import cached_image

PACKAGES = ("simpy", "networkx", "matplotlib", "ipywidgets", "jupyterlab", "libvirt-python")


def kvmlab_version() -> str:
    """The installed kvmlab's version (from its package metadata).

    Examples
    --------
    >>> kvmlab_version().count(".") >= 1
    True
    """
    try:
        return importlib.metadata.version("kvmlab")
    except importlib.metadata.PackageNotFoundError:      # run from a source tree
        return "unknown"


def _qemu_version() -> str | None:
    exe = shutil.which("qemu-system-x86_64")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"version (\S+)", out.stdout)
    return match.group(1) if match else None


def _libvirt_library() -> str | None:
    try:
        import libvirt
    except ImportError:
        return None
    return version_string(libvirt.getVersion())


def versions() -> dict[str, str | None]:
    """Return a dict of component name to version (None when it is missing)."""
    info: dict[str, str | None] = {
        "kvmlab": kvmlab_version(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for name in PACKAGES:
        try:
            info[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            info[name] = None
    info["libvirt library"] = _libvirt_library()
    info["qemu-system-x86_64"] = _qemu_version()
    image = cached_image()
    info["guest kernel"] = image.kernel_release if image else None
    return info


def show_versions(as_json: bool = False) -> None:
    """Print the versions of kvmlab, Python, its dependencies, libvirt and QEMU.

    Parameters
    ----------
    as_json : bool
        Print JSON instead of aligned text.
    """
    info = versions()
    if as_json:
        print(json.dumps(info, indent=2))
        return
    width = max(map(len, info))
    for key, value in info.items():
        print(f"{key:<{width}} : {value if value is not None else '(not installed)'}")

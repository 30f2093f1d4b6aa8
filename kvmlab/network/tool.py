"""``kvmlab-frames``, the guest's raw-frame sender and listener, built from its C source.

The tiny guest has no compiler and no Python: this small static program sends
exact Ethernet frames from any network namespace at planned times, and reports
every frame each listened interface receives (with the VLAN tag the kernel took
off, if any). It is compiled once per source version with the host's C compiler
and cached next to the guest image.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from kvmlab.errors import HostUnavailable
from kvmlab.host.image import cache_dir

SOURCE = "kvmlab-frames.c"


def source() -> bytes:
    """The C source of ``kvmlab-frames``."""
    return resources.files("kvmlab.network").joinpath("csrc", SOURCE).read_bytes()


def frames_tool() -> bytes:
    """The static ``kvmlab-frames`` binary, compiled (and cached) if needed."""
    code = source()
    target = cache_dir() / "tools" / f"kvmlab-frames-{hashlib.sha256(code).hexdigest()[:16]}"
    if target.exists():
        return target.read_bytes()
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise HostUnavailable("(local)", "no C compiler to build the guest's frame tool",
                              "install gcc and libc6-dev (make test and make lab do)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kvmlab-build-") as tmp:
        src = Path(tmp) / SOURCE
        src.write_bytes(code)
        out = Path(tmp) / "kvmlab-frames"
        done = subprocess.run([cc, "-static", "-Os", "-Wall", "-o", str(out), str(src)],
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise HostUnavailable("(local)", f"building the frame tool failed: "
                                  f"{done.stderr.strip()[-400:]}",
                                  "install gcc and libc6-dev (static glibc) and try again")
        shutil.move(str(out), target)
    return target.read_bytes()

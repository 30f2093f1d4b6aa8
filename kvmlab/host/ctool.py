"""Small static C programs for the tiny guest, compiled once with the host's compiler.

The tiny guest has no compiler and no Python. A lab that needs a program inside it
(the network lab's frame sender, the memory lab's page filler) ships its C source in
the package; :func:`static_tool` compiles it statically and caches the binary next to
the guest image, one file per version of the source.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from importlib import resources

from kvmlab.errors import ToolMissing
from kvmlab.host.image import cache_dir
from kvmlab.host.owner import owned_tempdir


def source(package: str, name: str) -> bytes:
    """The C source ``csrc/NAME.c`` shipped in ``package``."""
    return resources.files(package).joinpath("csrc", f"{name}.c").read_bytes()


def static_tool(package: str, name: str) -> bytes:
    """The static binary built from ``package``'s ``csrc/NAME.c``, compiled if needed.

    Raises
    ------
    ToolMissing
        If there is no C compiler or static C library (the setup installs both).
    """
    code = source(package, name)
    target = cache_dir() / "tools" / f"{name}-{hashlib.sha256(code).hexdigest()[:16]}"
    if target.exists():
        return target.read_bytes()
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise ToolMissing(f"a C compiler (cc or gcc, to build the guest's {name})",
                          "install gcc and libc6-dev (make test and make lab do)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with owned_tempdir("build") as tmp:
        src = tmp / f"{name}.c"
        src.write_bytes(code)
        out = tmp / name
        done = subprocess.run([cc, "-static", "-Os", "-Wall", "-o", str(out), str(src)],
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:      # the shipped source compiles: the toolchain is short
            raise ToolMissing(f"a static C library (to link the guest's {name})",
                              "install gcc and libc6-dev (static glibc) and try again; the "
                              f"compiler said: {done.stderr.strip()[-400:]}")
        shutil.move(str(out), target)
    return target.read_bytes()

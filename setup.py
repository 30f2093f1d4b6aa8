"""Build kvmlab, compiling the CPU model's hot modules with mypyc where it can.

Everything else is in ``pyproject.toml``. The modules named in
:data:`kvmlab.cpu.native.MODULES` are compiled to C extensions from their unchanged
Python source, and ``kvmlab/cpu/native.json`` records the SHA-256 of each source
compiled, so that an edited source is run instead of a stale compiled copy (see
:mod:`kvmlab.cpu.native`). Without a C compiler, or with ``KVMLAB_PURE_PYTHON=1``, the
build is pure Python: the same results, some 7 times slower for the ``linux`` scheduler.
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
NATIVE = runpy.run_path(str(ROOT / "kvmlab" / "cpu" / "native.py"))   # stdlib only
MANIFEST = ROOT / "kvmlab" / "cpu" / NATIVE["MANIFEST"]


class OptionalBuildExt(build_ext):
    """Build the compiled modules, or, if that fails, none of them (pure Python)."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as err:  # noqa: BLE001 - any failure leaves a working pure build
            print(f"kvmlab: compiling the CPU model failed ({err}); it stays pure Python",
                  file=sys.stderr)
            for ext in self.extensions:
                Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)
            MANIFEST.unlink(missing_ok=True)


def compiled_modules() -> list:
    """The mypyc extensions of the CPU model, or none (pure Python)."""
    if NATIVE["pure_requested"]():
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("kvmlab: mypyc is not installed; the CPU model stays pure Python",
              file=sys.stderr)
        return []
    sources = [str(NATIVE["source"](m).relative_to(ROOT)) for m in NATIVE["MODULES"]]
    MANIFEST.write_text(json.dumps({m: NATIVE["digest"](m) for m in NATIVE["MODULES"]},
                                   indent=1) + "\n")
    return mypycify(sources, group_name="kvmlab.cpu.native", opt_level="3")


setup(ext_modules=compiled_modules(), cmdclass={"build_ext": OptionalBuildExt})

"""The CPU model's compiled modules: which they are, and whether the compiled copies run.

The ``linux`` scheduler does what the kernel does at every context switch (EEVDF's
arithmetic and the load averages on every level of a VM's groups), some 25 small steps
a switch. In CPython that costs 20 to 25 times what simpy itself charges a switch. So
the build compiles the modules below with mypyc (``setup.py``), where it can: the same
Python source, compiled to C, with the same results to the last bit. Where it cannot
(no C compiler, or ``KVMLAB_PURE_PYTHON=1`` at install time) kvmlab is pure Python and
only slower.

A compiled module is used only while it was compiled from the source beside it. The
build records each source's SHA-256 in ``native.json``; when a source has changed
since (an edited checkout), every module of the list runs from its source, with a
warning that says how to compile them again. ``KVMLAB_PURE_PYTHON=1`` at run time runs
them from source too, without the warning.

Run as a script, this file prints the sources, one a line (for the Makefile).

Examples
--------
>>> from kvmlab.cpu import native
>>> native.MODULES[0]
'kvmlab.cpu.eevdf'
>>> native.state() in {"compiled", "source", "stale", "off"}
True
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["MANIFEST", "MODULES", "PURE_ENV", "digest", "pure_requested", "state",
           "use_source"]

#: The modules compiled, in the order they import each other.
MODULES: tuple[str, ...] = (
    "kvmlab.cpu.eevdf",
    "kvmlab.cpu.linux_load",
    "kvmlab.cpu.linux_delay",
    "kvmlab.cpu.linux_qemu",
    "kvmlab.cpu.linux_balance",
    "kvmlab.cpu.linux",
)
#: The name of the build's record of the sources compiled, beside this file.
MANIFEST = "native.json"
#: Set to 1 (at install or at run time) for pure Python.
PURE_ENV = "KVMLAB_PURE_PYTHON"

HERE = Path(__file__).resolve().parent


def source(module: str, root: Path = HERE) -> Path:
    """The source file of ``module`` (one of :data:`MODULES`)."""
    return root / f"{module.rsplit('.', 1)[1]}.py"


def digest(module: str, root: Path = HERE) -> str:
    """The SHA-256 of the source of ``module``, as the build records it."""
    return hashlib.sha256(source(module, root).read_bytes()).hexdigest()


def _compiled(module: str, root: Path = HERE) -> bool:
    return any(source(module, root).with_suffix(suffix).exists()
               for suffix in importlib.machinery.EXTENSION_SUFFIXES)


def pure_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether :data:`PURE_ENV` asks for pure Python (set, and not ``0``)."""
    env = os.environ if environ is None else environ
    return env.get(PURE_ENV, "") not in ("", "0")


def state(root: Path = HERE, environ: Mapping[str, str] | None = None) -> str:
    """How the modules of :data:`MODULES` in ``root`` would run.

    Returns
    -------
    str
        ``"compiled"``: every one compiled from the source beside it. ``"source"``:
        none is compiled (a pure-Python install). ``"stale"``: compiled, but some source
        changed since, or the record is missing: they run from source. ``"off"``:
        :data:`PURE_ENV` is set, so they run from source.
    """
    if pure_requested(environ):
        return "off"
    if not any(_compiled(m, root) for m in MODULES):
        return "source"
    try:
        recorded = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return "stale"
    if all(_compiled(m, root) and recorded.get(m) == digest(m, root) for m in MODULES):
        return "compiled"
    return "stale"


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Finds the modules of :data:`MODULES` as their ``.py`` files, past any compiled copy."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MODULES:
            return None
        return importlib.util.spec_from_file_location(fullname, source(fullname, self.root))


def use_source(root: Path = HERE) -> None:
    """Make the modules of :data:`MODULES` import from their sources from now on.

    Call it before any of them is imported (:mod:`kvmlab.cpu` does, when :func:`state`
    is not ``"compiled"``).
    """
    if not any(isinstance(f, _SourceFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourceFinder(root))


def choose() -> str:
    """Run the compiled modules if they are current, else their sources; return :func:`state`."""
    now = state()
    if now == "stale":
        warnings.warn(
            "kvmlab's compiled CPU model is older than its source, so the model runs from "
            "the source (some 7 times slower); `make venv` or `pip install -e .` compiles "
            f"it again ({PURE_ENV}=1 runs the source without this warning)",
            RuntimeWarning, stacklevel=3)
    if now != "compiled":
        use_source()
    return now


if __name__ == "__main__":
    print("\n".join(str(source(m).relative_to(Path.cwd().resolve())) for m in MODULES))

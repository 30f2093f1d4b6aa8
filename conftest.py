"""Collection rules for the whole checkout.

A compiled module has no docstrings for doctest to find, and pytest would refuse its
source as a file that is not the module imported. So where the CPU model is compiled
(:mod:`kvmlab.cpu.native`), its modules' doctests are not collected here:
``tests/cpu/test_native.py`` runs them from their source.
"""

from pathlib import Path

from kvmlab.cpu import native

ROOT = Path(__file__).resolve().parent

collect_ignore = ([str(native.source(m).relative_to(ROOT)) for m in native.MODULES]
                  if native.state() == "compiled" else [])

"""``kvmlab storage``: predict an image, make it with QEMU's tools, compare the two.

``kvmlab storage simulate|run|compare SCENARIO`` (:mod:`kvmlab.labcommands`); a raw
image's file system block size is ``--block-size`` (the model's; the host's own is used
when measuring). ``run`` and ``compare`` with ``--in-guest``: a real guest makes the
writes on a libvirt volume it sees as its disk (:mod:`kvmlab.storage.guestdisk`).
``kvmlab storage convert SCENARIO`` makes the scenario's writes on a vmdk and a qcow2
image, converts each to the other format with ``qemu-img convert`` and prints both
targets' maps next to the models' (:func:`kvmlab.storage.convert.convert`).

Examples
--------
>>> from kvmlab.cli import main
>>> main(["storage", "simulate", "storage-first-writes"])     # doctest: +ELLIPSIS
{
  "source": "simulated",
  ...
0
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kvmlab.labcommands import add_verbs, run_verb
from kvmlab.storage.raw import FS_BLOCK

__all__ = ["add_parser"]


def _options(parser: argparse.ArgumentParser, verb: str) -> None:
    if verb != "run":
        parser.add_argument("--block-size", type=int, default=FS_BLOCK, metavar="BYTES",
                            help="the file system block size the model assumes for raw "
                                 f"images (default {FS_BLOCK})")
    if verb != "simulate":
        parser.add_argument("--in-guest", action="store_true",
                            help="a real guest makes the writes on a libvirt volume it sees "
                                 "as its virtio disk (instead of qemu-io on the host)")
        parser.set_defaults(func=run_or_in_guest)


def run_or_in_guest(args: argparse.Namespace) -> int:
    """``run``/``compare``: with ``--in-guest`` a guest makes the writes
    (:func:`kvmlab.storage.guestdisk.run_in_guest`); the same JSON as without."""
    if not args.in_guest:
        return run_verb(args)
    from kvmlab.storage.guestdisk import run_in_guest
    from kvmlab.storage.model import simulate
    from kvmlab.storage.result import compare
    from kvmlab.storage.scenario import load_scenario

    measured = run_in_guest(load_scenario(args.scenario), uri=args.uri,
                            progress=sys.stderr.isatty())
    if args.verb == "run":
        print(json.dumps(measured.to_dict(), indent=2))
        return 0
    simulated = simulate(measured.scenario, seed=args.seed, block_size=args.block_size,
                         in_guest=True)
    comparison = compare(simulated, measured)
    print(comparison.table(), file=sys.stderr)
    print(json.dumps(comparison.to_dict(), indent=2))
    return 0


def _simulate_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"block_size": args.block_size}


def run_convert(args: argparse.Namespace) -> int:
    """``kvmlab storage convert SCENARIO``: JSON on standard output, a table on standard
    error; 0 (agreeing or not, as ``compare``)."""
    from kvmlab.storage.convert import convert
    from kvmlab.storage.scenario import load_scenario

    result = convert(load_scenario(args.scenario), progress=sys.stderr.isatty())
    print(result.table(), file=sys.stderr)
    print(json.dumps(result.to_dict(), indent=2))
    return 0


def add_parser(sub: Any) -> None:
    """Add this lab's command and its subcommands to the ``kvmlab`` command."""
    storage = sub.add_parser("storage", help="the storage lab: qcow2 images, model and qemu-img")
    ssub = storage.add_subparsers(dest="storage_command", required=True)
    add_verbs(ssub, "storage",
              scenario_help="a storage scenario JSON file or a shipped scenario name "
                            "(e.g. storage-first-writes)",
              options=_options, simulate_kwargs=_simulate_kwargs, recorded=False)
    conv = ssub.add_parser("convert", help="qemu-img convert vmdk -> qcow2 and qcow2 -> vmdk "
                                           "of the scenario's writes, each target's map next "
                                           "to the model's (JSON with 'agrees')")
    conv.add_argument("scenario", help="a qcow2 or vmdk scenario of 64 KiB clusters (e.g. "
                                       "storage-vmdk-sparse)")
    conv.set_defaults(func=run_convert)

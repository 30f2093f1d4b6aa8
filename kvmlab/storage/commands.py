"""``kvmlab storage``: predict an image, make it with QEMU's tools, compare the two."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parser(sub: Any) -> None:
    """Add this lab's command and its subcommands to the ``kvmlab`` command."""
    storage = sub.add_parser("storage", help="the storage lab: qcow2 images, model and qemu-img")
    ssub = storage.add_subparsers(dest="storage_command", required=True)
    for name, text in {"simulate": "predict the image (map, allocated clusters, end offset)",
                       "run": "make the image with qemu-img/qemu-io and report the same fields",
                       "compare": "both, and where they differ"}.items():
        c = ssub.add_parser(name, help=text)
        c.add_argument("scenario", help="a storage scenario JSON file")
        c.set_defaults(func=_storage)


def _storage(args: argparse.Namespace) -> int:
    from kvmlab import storage

    scenario = storage.StorageScenario.load(args.scenario)
    if args.storage_command == "simulate":
        out = storage.simulate(scenario).to_dict()
    elif args.storage_command == "run":
        out = storage.run_with_qemu(scenario).to_dict()
    else:
        comparison = storage.compare(storage.simulate(scenario), storage.run_with_qemu(scenario))
        print(comparison.summary(), file=sys.stderr)
        out = comparison.to_dict()
    print(json.dumps(out, indent=2))
    return 0

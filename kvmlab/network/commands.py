"""``kvmlab network``: simulate a topology, run it on a real kernel, compare the two.

``kvmlab network simulate|run|compare SCENARIO`` (see :mod:`kvmlab.labcommands`), where
SCENARIO is a topology JSON file or a shipped one by name; ``simulate --steps`` also
prints every step of every frame on standard error. ``kvmlab network record [NAME ...]``
runs scenarios (default: every ``net-`` and ``vlan-`` one) on a real kernel, all topologies
in one guest boot, and records each under its own name (how the shipped recordings were
made; see :func:`kvmlab.network.recordings.record_runs`).

Examples
--------
>>> from kvmlab.cli import main
>>> main(["network", "simulate", "net-hub"])                 # doctest: +ELLIPSIS
{
  "source": "simulated",
  "receivers": [
...
0
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kvmlab.labcommands import add_verbs
from kvmlab.network.natresult import NatResult
from kvmlab.network.result import NetworkResult

__all__ = ["add_parser"]


def _options(parser: argparse.ArgumentParser, verb: str) -> None:
    if verb == "simulate":
        parser.add_argument("--steps", action="store_true",
                            help="also print every step of every frame (on stderr)")


def _report(result: NetworkResult | NatResult, args: argparse.Namespace) -> None:
    if getattr(args, "steps", False):
        steps = result.steps
        print(steps() if callable(steps) else "\n".join(steps), file=sys.stderr)


def _record(args: argparse.Namespace) -> int:
    """``kvmlab network record``: run scenarios in one guest boot and record each."""
    from kvmlab.network.recordings import record_runs

    written = record_runs(args.scenarios or None, uri=args.uri, into=args.into,
                          progress=sys.stderr.isatty())
    for name, (path, agrees) in written.items():
        print(f"{name:32s} {'model agrees' if agrees else 'model DIFFERS'}", file=sys.stderr)
        print(path)
    return 0


def _add_record(nsub: Any) -> None:
    p = nsub.add_parser("record", help="run scenarios on a real kernel (all topologies in one "
                                       "guest boot) and record each under its own name")
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                   help="scenario names (default: every net- and vlan- scenario); a NAT "
                        "scenario runs in a guest of its own and is recorded as net-NAME")
    p.add_argument("--uri", help="libvirt URI of the host (default: the local QEMU host)")
    p.add_argument("--into", metavar="FOLDER",
                   help="write the recordings into FOLDER (default: your own recordings)")
    p.set_defaults(func=_record)


def add_parser(sub: Any) -> None:
    """Add this lab's command and its subcommands to the ``kvmlab`` command."""
    net = sub.add_parser("network", help="the network lab: Linux bridges, model and real kernel")
    nsub = net.add_subparsers(dest="network_command", required=True)
    add_verbs(nsub, "network", options=_options, report=_report,
              scenario_help="a topology or NAT scenario JSON file, or a shipped one by name "
                            "(net-flood-then-learn, vlan-seed-two-switches, "
                            "nat-default-network, ...)")
    _add_record(nsub)

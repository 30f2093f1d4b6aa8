"""``kvmlab network``: simulate a topology, run it on a real kernel, compare the two.

``kvmlab network simulate|run|compare SCENARIO`` (see :mod:`kvmlab.labcommands`), where
SCENARIO is a topology JSON file or a shipped one by name; ``simulate --steps`` also
prints every step of every frame on standard error.

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

from kvmlab.labcommands import add_verbs, run_verb
from kvmlab.network.model import simulate
from kvmlab.network.scenario import load_scenario

__all__ = ["add_parser"]


def _options(parser: argparse.ArgumentParser, verb: str) -> None:
    if verb == "simulate":
        parser.add_argument("--steps", action="store_true",
                            help="also print every step of every frame (on stderr)")


def _simulate(args: argparse.Namespace) -> int:
    """``simulate``, as every lab has it, and with ``--steps`` the model's steps."""
    status = run_verb(args)
    if args.steps:            # the model is deterministic: the same steps as the result's
        topology = args.adjust(load_scenario(args.scenario), args)
        print(simulate(topology, seed=args.seed).steps(), file=sys.stderr)
    return status


def add_parser(sub: Any) -> None:
    """Add this lab's command and its subcommands to the ``kvmlab`` command."""
    net = sub.add_parser("network", help="the network lab: Linux bridges, model and real kernel")
    nsub = net.add_subparsers(dest="network_command", required=True)
    parsers = add_verbs(nsub, "network", options=_options, recorded=False,
                        scenario_help="a topology JSON file, or a shipped one by name "
                                      "(net-flood-then-learn, vlan-seed-two-switches, ...)")
    parsers["simulate"].set_defaults(func=_simulate)

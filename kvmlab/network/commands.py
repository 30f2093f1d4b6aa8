"""``kvmlab network``: simulate a topology, run it on a real kernel, compare the two."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    """Add this lab's command and its subcommands to the ``kvmlab`` command."""
    net = sub.add_parser("network", help="the network lab: Linux bridges, model and real kernel")
    nsub = net.add_subparsers(dest="network_command", required=True)
    for name, text in {"simulate": "who receives each frame, and what the bridges learn",
                       "run": "the same topology in a tiny guest's kernel",
                       "compare": "both, and where they differ"}.items():
        c = nsub.add_parser(name, help=text)
        c.add_argument("topology", help="a topology JSON file, or a shipped one by name "
                                        "(net-flood-then-learn, vlan-seed-two-switches, ...)")
        if name == "simulate":
            c.add_argument("--steps", action="store_true",
                           help="also print every step of every frame (on stderr)")
        else:
            c.add_argument("--uri", help="local QEMU libvirt URI (default qemu:///system "
                                         "as root, else qemu:///session)")
        c.set_defaults(func=_network)


def _topology(path: str) -> Any:
    from kvmlab.data import scenario_dict, scenario_names
    from kvmlab.network import Topology

    if not Path(path).exists() and path in scenario_names("net-") + scenario_names("vlan-"):
        return Topology.from_dict(scenario_dict(path))      # a shipped topology by name
    return Topology.load(path)


def _network(args: argparse.Namespace) -> int:
    from kvmlab import network
    from kvmlab.network.twin import run_on_kernel

    topology = _topology(args.topology)
    if args.network_command == "simulate":
        result = network.simulate(topology)
        if args.steps:
            print(result.steps(), file=sys.stderr)
        out = result.to_dict()
    elif args.network_command == "run":
        out = run_on_kernel(topology, args.uri).to_dict()
    else:
        comparison = network.compare(network.simulate(topology),
                                     run_on_kernel(topology, args.uri))
        print(comparison.table(), file=sys.stderr)
        out = comparison.to_dict()
    print(json.dumps(out, indent=2))
    return 0

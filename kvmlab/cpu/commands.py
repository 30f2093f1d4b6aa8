"""``kvmlab cpu``: simulate a scenario, run it on a host, compare the two."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parser(sub: Any) -> None:
    """Add this lab's command and its subcommands to the ``kvmlab`` command."""
    cpu = sub.add_parser("cpu", help="the CPU lab: simulate, run on a host, compare")
    csub = cpu.add_subparsers(dest="cpu_command", required=True)
    helps = {"simulate": "simulate a scenario (JSON result on standard output)",
             "run": "run a scenario as real guests and measure it (same JSON fields)",
             "compare": "simulate and measure (or take a recorded run) and compare"}
    for name, text in helps.items():
        c = csub.add_parser(name, help=text)
        c.add_argument("scenario", help="a scenario JSON file or a shipped scenario name "
                                        "(e.g. cpu-seed-example)")
        c.add_argument("--duration", type=float, help="override duration_s")
        if name != "run":
            c.add_argument("--seed", type=int, default=0)
            c.add_argument("--scheduler", choices=("fair", "round-robin"), default="fair")
        if name != "simulate":
            c.add_argument("--uri", help="libvirt URI of a local QEMU host")
        if name == "run":
            c.add_argument("--record", metavar="NAME",
                           help="also save the result as data/recorded/NAME.json")
        if name == "compare":
            c.add_argument("--recorded", metavar="NAME",
                           help="compare with a recorded run instead of measuring")
        c.set_defaults(func=_cpu)


def _cpu(args: argparse.Namespace) -> int:
    from kvmlab import cpu
    from kvmlab.data import save_recorded

    scenario = cpu.load_scenario(args.scenario)
    if args.duration is not None:
        scenario = scenario.with_duration(args.duration)

    def progress(line: str) -> None:
        print(f"# {line}", file=sys.stderr)

    if args.cpu_command == "simulate":
        out = cpu.simulate(scenario, seed=args.seed, scheduler=args.scheduler).to_dict()
    elif args.cpu_command == "run":
        result = cpu.run_on_host(scenario, uri=args.uri, progress=progress)
        if args.record:
            path = save_recorded(args.record, result.to_dict())
            print(f"# recorded in {path}", file=sys.stderr)
        out = result.to_dict()
    else:
        if args.recorded:
            measured = cpu.recorded_result(args.recorded)
            scenario = measured.scenario
        else:
            measured = cpu.run_on_host(scenario, uri=args.uri, progress=progress)
        simulated = cpu.simulate(scenario, seed=args.seed, scheduler=args.scheduler)
        comparison = cpu.compare(simulated, measured)
        print(comparison.table(), file=sys.stderr)
        out = comparison.to_dict()
    print(json.dumps(out, indent=2))
    return 0

"""``kvmlab cpu``: simulate a scenario, run it on a host, compare the two.

The three verbs are every lab's (:func:`kvmlab.labcommands.add_verbs`); the CPU lab adds
``--duration`` (watch the scenario for that many seconds) and, where the model runs,
``--scheduler``.

Examples
--------
>>> from kvmlab.cli import main
>>> main(["cpu", "simulate", "cpu-seed-example", "--duration", "0.1",
...       "--scheduler", "round-robin"])                      # doctest: +ELLIPSIS
{
  "source": "simulated",
  "duration_s": 0.1,
...
0
"""

from __future__ import annotations

import argparse
from typing import Any

from kvmlab.cpu.model import SCHEDULERS
from kvmlab.cpu.scenario import CpuScenario
from kvmlab.labcommands import add_verbs

__all__ = ["add_parser"]


def _options(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("--duration", type=float, metavar="SECONDS",
                        help="watch the scenario this long instead of its duration_s")
    if verb != "run":
        parser.add_argument("--scheduler", choices=SCHEDULERS, default="fair",
                            help="the model's scheduler (default fair)")


def _simulate_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"scheduler": args.scheduler}


def _adjust(scenario: CpuScenario, args: argparse.Namespace) -> CpuScenario:
    return scenario if args.duration is None else scenario.with_duration(args.duration)


def add_parser(sub: Any) -> None:
    """Add this lab's command and its subcommands to the ``kvmlab`` command."""
    cpu = sub.add_parser("cpu", help="the CPU lab: simulate, run on a host, compare")
    csub = cpu.add_subparsers(dest="cpu_command", required=True)
    add_verbs(csub, "cpu", scenario_help="a scenario JSON file or a shipped scenario name "
                                         "(e.g. cpu-seed-example)",
              options=_options, simulate_kwargs=_simulate_kwargs, adjust=_adjust)

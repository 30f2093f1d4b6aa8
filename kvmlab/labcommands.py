"""The commands every lab has: ``kvmlab LAB simulate|run|compare SCENARIO``.

A lab's ``commands.py`` calls :func:`add_verbs` to get the three subcommands, all with
the same arguments and output (JSON on standard output, a table and progress on
standard error), and adds its own options through ``options=`` and the keyword
arguments its ``simulate`` takes through ``simulate_kwargs=``.

Examples
--------
>>> from kvmlab.cli import main
>>> main(["cpu", "compare", "cpu-seed-example", "--duration", "1",
...       "--recorded", "cpu-seed-example"])                  # doctest: +ELLIPSIS
{
  "agrees": ...,
  "max_error": ...
0
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from kvmlab.data import check_name, save_recorded
from kvmlab.errors import ScenarioError
from kvmlab.lab import lab

__all__ = ["VERBS", "add_verbs", "run_verb"]

VERBS = {
    "simulate": "simulate the scenario with the lab's model (JSON result on standard output)",
    "run": "run the scenario on a real host or kernel (the same JSON fields)",
    "compare": "simulate and measure (or take a recorded run) and compare: JSON with "
               "'agrees' and 'max_error'",
}

Options = Callable[[argparse.ArgumentParser, str], None]
Kwargs = Callable[[argparse.Namespace], dict[str, Any]]
Adjust = Callable[[Any, argparse.Namespace], Any]
Report = Callable[[Any, argparse.Namespace], None]


def add_verbs(sub: Any, name: str, *, scenario_help: str, options: Options | None = None,
              simulate_kwargs: Kwargs | None = None, adjust: Adjust | None = None,
              report: Report | None = None, recorded: bool = True
              ) -> dict[str, argparse.ArgumentParser]:
    """Add ``simulate``, ``run`` and ``compare`` for lab ``name`` to subparsers ``sub``.

    Parameters
    ----------
    sub : argparse subparsers of the lab's command
    name : str
        The lab (``"cpu"``): its package provides the verbs.
    scenario_help : str
        Help text of the ``scenario`` argument.
    options : callable, optional
        ``options(parser, verb)`` adds the lab's own options to one verb's parser.
    simulate_kwargs : callable, optional
        ``simulate_kwargs(args)`` gives extra keyword arguments of the lab's ``simulate``.
    adjust : callable, optional
        ``adjust(scenario, args)`` returns the scenario changed by options (a duration).
    report : callable, optional
        ``report(result, args)`` prints more of a ``simulate`` or ``run`` result on
        standard error (the model's steps, say) after its JSON.
    recorded : bool
        Offer ``--record`` and ``--recorded`` (the lab has ``recorded_result``).

    Returns
    -------
    dict
        Verb to its parser, for further options.
    """
    parsers = {}
    for verb, text in VERBS.items():
        p = sub.add_parser(verb, help=text)
        p.add_argument("scenario", help=scenario_help)
        if verb != "run":
            p.add_argument("--seed", type=int, default=0, help="the model's seed (default 0)")
        if verb != "simulate":
            p.add_argument("--uri", help="libvirt URI of the host (default: the local QEMU "
                                         "host, qemu:///system as root)")
        if recorded and verb == "run":
            p.add_argument("--record", metavar="NAME",
                           help="also save the result as a recording named NAME")
        if recorded and verb == "compare":
            p.add_argument("--recorded", metavar="NAME",
                           help="compare with a recorded run of the same scenario instead "
                                "of measuring")
        p.set_defaults(func=run_verb, lab=name, verb=verb,
                       simulate_kwargs=simulate_kwargs or (lambda args: {}),
                       adjust=adjust or (lambda scenario, args: scenario),
                       report=report or (lambda result, args: None))
        if options is not None:
            options(p, verb)
        parsers[verb] = p
    return parsers


def _progress() -> bool:
    return sys.stderr.isatty()


def run_verb(args: argparse.Namespace) -> int:
    """Carry out one verb for the lab named in ``args``; print JSON; return 0."""
    module = lab(args.lab)
    if getattr(args, "record", None):
        check_name(args.record)              # refused before the run, not after it
    recorded_name = getattr(args, "recorded", None)
    if recorded_name:
        if not hasattr(module, "recorded_result"):
            raise ScenarioError(f"the {args.lab} lab has no recorded runs")
        measured = module.recorded_result(recorded_name)
        scenario = measured.scenario
        named = module.load_scenario(args.scenario)
        if getattr(named, "name", None) != getattr(scenario, "name", None):
            raise ScenarioError(
                f"the recording {recorded_name!r} ran scenario "
                f"{getattr(scenario, 'name', None)!r}, not {args.scenario!r}: name the "
                f"recording's own scenario, or record a run of {args.scenario!r} first")
    else:
        scenario = args.adjust(module.load_scenario(args.scenario), args)
    if args.verb in ("simulate", "run"):
        if args.verb == "simulate":
            result = module.simulate(scenario, seed=args.seed, progress=_progress(),
                                     **args.simulate_kwargs(args))
        else:
            result = module.run_on_host(scenario, uri=args.uri, progress=_progress())
        if getattr(args, "record", None):
            path = save_recorded(args.record, result.to_dict())
            print(f"# recorded in {path}", file=sys.stderr)
        print(json.dumps(result.to_dict(), indent=2))
        args.report(result, args)
        return 0
    if not recorded_name:
        measured = module.run_on_host(scenario, uri=args.uri, progress=_progress())
    simulated = module.simulate(scenario, seed=args.seed, progress=_progress(),
                                **args.simulate_kwargs(args))
    comparison = module.compare(simulated, measured)
    print(comparison.table(), file=sys.stderr)
    print(json.dumps(comparison.to_dict(), indent=2))
    return 0

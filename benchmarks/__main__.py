"""Run the benchmarks: ``python -m benchmarks [NAME ...] [--json PATH] [--quick]``.

With no NAME every benchmark runs. Tables go to stdout, progress to stderr.
``--scheduler NAME`` picks the CPU model's scheduler (any that
:func:`kvmlab.cpu.model.simulate` knows); it goes to every benchmark whose ``run``
takes a ``scheduler``, and is checked before anything runs.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import BENCHMARKS, load
from kvmlab.errors import ScenarioError


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of numbers: {text!r}") from None
    if len(set(sizes)) < 2 or any(n < 2 or n % 2 for n in sizes):
        raise argparse.ArgumentTypeError("give at least two different even vCPU counts, e.g. "
                                         "10,100,1000")
    return sizes


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default ``sys.argv[1:]``).

    Returns
    -------
    argparse.Namespace
    """
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark kvmlab's models against a baseline measured in the same run.")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default all: {', '.join(BENCHMARKS)})")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="also write the results as JSON to PATH")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, one repeat: check that the benchmarks work (seconds)")
    parser.add_argument("--sizes", type=_sizes, metavar="N,N,...",
                        help="vCPU counts of the cpu scaling benchmark (default 10,100,1000,10000)")
    parser.add_argument("--scheduler", metavar="NAME",
                        help="the CPU model's scheduler for the cpu benchmark (default fair)")
    args = parser.parse_args(argv)
    if unknown := [n for n in args.names if n not in BENCHMARKS]:
        parser.error(f"no benchmark {', '.join(map(repr, unknown))}; "
                     f"known: {', '.join(BENCHMARKS)}")
    if args.scheduler is not None:
        takers = [m for m in map(load, _names(args)) if _takes_scheduler(m)]
        if not takers:
            parser.error("--scheduler is an option of the cpu benchmark only")
        for module in takers:
            try:
                module.check_scheduler(args.scheduler)
            except ScenarioError as exc:
                parser.error(f"--scheduler {args.scheduler}: {exc}")
    return args


def _names(args: argparse.Namespace) -> list[str]:
    """The benchmarks to run, in order, each once (all of them when none is named)."""
    return list(dict.fromkeys(args.names)) or list(BENCHMARKS)


def _takes_scheduler(module: Any) -> bool:
    """Whether a benchmark module's ``run`` takes a ``scheduler``."""
    return "scheduler" in inspect.signature(module.run).parameters


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks named on the command line; print their tables.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status (0).
    """
    args = parse_args(argv)
    names = _names(args)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    results: dict[str, Any] = {}
    for name in names:
        module = load(name)
        extra = {"scheduler": args.scheduler} \
            if args.scheduler is not None and _takes_scheduler(module) else {}
        results[name] = module.run(quick=args.quick, sizes=args.sizes, log=log, **extra)
        print(module.format_table(results[name]), flush=True)
        print()
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"benchmarks": results}, indent=2) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

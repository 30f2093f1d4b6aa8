"""``kvmlab sweep`` and ``kvmlab hosts``: experiments from the terminal.

Examples
--------
>>> from kvmlab.cli import main
>>> main(["sweep", "cpu-overcommit", "--set", "ratio=1,2,3", "--set", "duration_s=1",
...       "--serial", "--quiet"])
ratio  duration_s  n  run_share  wait_share  ready_pct  run_share_spread  overcommit
-----  ----------  -  ---------  ----------  ---------  ----------------  ----------
1      1           1  1          0           0          0                 1
2      1           1  0.5        0.5         50         0.002             2
3      1           1  0.3333     0.6667      66.67      0.001             3
0
>>> main(["hosts", "test:///default", "--timeout", "3"])
uri              reachable  ...
...
0
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from kvmlab.errors import ScenarioError
from kvmlab.experiments.grid import MAX_GRID_POINTS
from kvmlab.validate import parse_json_text


def parse_values(text: str) -> tuple[str, list[Any]]:
    """``NAME=V1,V2,...`` to the name and its values (numbers where they parse as numbers).

    Examples
    --------
    >>> parse_values("ratio=1,1.5,2")
    ('ratio', [1, 1.5, 2])
    >>> parse_values("pattern=random,sequential")
    ('pattern', ['random', 'sequential'])
    """
    name, sep, values = text.partition("=")
    if not sep or not name or not values:
        raise ScenarioError(f"--set takes NAME=VALUE[,VALUE...], like ratio=1,2,3; "
                            f"not {text!r}")

    def value(item: str) -> Any:
        try:
            return parse_json_text(item, "a --set value")
        except ScenarioError:
            try:
                float(item)
            except ValueError:
                return item                     # a word, such as random
            raise                               # a number JSON cannot hold (1e999)
    return name.strip(), [value(v.strip()) for v in values.split(",")]


def parse_seeds(text: str) -> list[int]:
    """``0-4`` or ``0,3,7`` to a list of seeds.

    Examples
    --------
    >>> parse_seeds("0-3"), parse_seeds("5,7")
    ([0, 1, 2, 3], [5, 7])
    """
    try:
        if "-" in text:
            first, last = (int(n) for n in text.split("-"))
            if last - first + 1 > MAX_GRID_POINTS:
                raise ScenarioError(f"--seeds {text} asks for {last - first + 1} seeds; a "
                                    f"sweep takes at most {MAX_GRID_POINTS} runs")
            return list(range(first, last + 1))
        seeds = text.split(",")
        if len(seeds) > MAX_GRID_POINTS:
            raise ScenarioError(f"--seeds gives {len(seeds)} seeds; a sweep takes at most "
                                f"{MAX_GRID_POINTS} runs")
        return [int(s) for s in seeds]
    except ValueError:
        raise ScenarioError(f"--seeds takes FIRST-LAST or a list, like 0-4 or 0,3,7; "
                            f"not {text!r}") from None


def summary_text(table: Any) -> str:
    """Per grid point: each numeric figure's mean over seeds and the half-width of its band.

    Examples
    --------
    >>> from kvmlab.experiments import SweepTable
    >>> t = SweepTable([{"x": 1, "seed": s, "y": v} for s, v in enumerate([1.0, 2.0, 3.0])],
    ...                ["x"], ["y"])
    >>> print(summary_text(t))
    x  n  y
    -  -  --------
    1  3  2 \u00b1 2.48
    """
    from kvmlab.experiments.table import SweepTable

    mixed = "source" in table.columns and len(set(table["source"])) > 1
    rows = []
    for point in table.summary():
        row = {k: point[k] for k in (*table.parameters, "n")}
        if mixed:
            row["source"] = point["source"]
        for f in table.figures:
            if f in point:
                half = (point[f"{f}_high"] - point[f"{f}_low"]) / 2
                row[f] = f"{point[f]:.4g}" + (f" \u00b1 {half:.3g}" if half > 0 else "")
        rows.append(row)
    figures = [f for f in table.figures if any(f in r for r in rows)]
    return str(SweepTable(rows, [*table.parameters, "n"], figures, table.name))


def _sweep(args: argparse.Namespace) -> int:
    from kvmlab.experiments import SCENARIOS, sweep, sweep_on_host

    if args.list:
        for name, spec in SCENARIOS.items():
            where = "model and host" if spec.host else "model"
            print(f"{name}: {spec.description} ({where})")
            print("    parameters: " + ", ".join(f"{k}={v!r}" for k, v in spec.defaults.items()))
        return 0
    if not args.scenario:
        raise ScenarioError("name a scenario (kvmlab sweep --list shows them)")
    grid = dict(parse_values(s) for s in args.set)
    seeds = parse_seeds(args.seeds)
    if args.host and args.uri and args.host != args.uri:
        raise ScenarioError(f"--host {args.host} and --uri {args.uri} name two hosts: give one")
    if args.host is not None or args.uri:
        table = sweep_on_host(args.scenario, grid, seeds, uri=args.uri or args.host or None,
                              save=args.save, fresh=args.fresh, progress=not args.quiet)
    else:
        table = sweep(args.scenario, grid, seeds, executor="serial" if args.serial else None,
                      save=args.save, progress=not args.quiet, max_workers=args.workers)
    if args.csv:
        table.to_csv(args.csv)
    print(str(table) if args.rows else summary_text(table))
    return 0


def _hosts(args: argparse.Namespace) -> int:
    from kvmlab.experiments.hosts import hosts_table, probe_hosts

    reports = probe_hosts(args.uris, timeout_s=args.timeout)
    if args.json:
        print(json.dumps([dataclasses.asdict(r) for r in reports], indent=2, default=str))
    else:
        print(hosts_table(reports))
    return 0 if all(r.reachable for r in reports) else 1


def add_parser(sub: Any) -> None:
    """Add ``sweep`` and ``hosts`` to the ``kvmlab`` command's subcommands."""
    s = sub.add_parser("sweep", help="run a scenario over a grid of parameters and seeds")
    s.add_argument("scenario", nargs="?", help="cpu-overcommit or tlb-working-set")
    s.add_argument("--set", action="append", default=[], metavar="NAME=V1,V2",
                   help="a parameter and its values (repeat for more parameters)")
    s.add_argument("--seeds", default="0", help="FIRST-LAST or a list (default 0)")
    s.add_argument("--host", nargs="?", const="", metavar="URI",
                   help="run on a real host (default URI: the local QEMU host), one run at "
                        "a time, resumable")
    s.add_argument("--uri", metavar="URI",
                   help="with --host (or alone): the libvirt URI of the host, local or remote, "
                        "e.g. qemu+ssh://root@lab2/system")
    s.add_argument("--save", help="JSON Lines file: runs saved as they end; a rerun resumes")
    s.add_argument("--fresh", action="store_true", help="with --host: forget saved runs")
    s.add_argument("--workers", type=int, help="processes (default: every core)")
    s.add_argument("--serial", action="store_true", help="run in this process, one at a time")
    s.add_argument("--csv", help="also write every run to this CSV file")
    s.add_argument("--rows", action="store_true",
                   help="print every run, not the means and 95%% bands per point")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--list", action="store_true", help="list the scenarios and parameters")
    s.set_defaults(func=_sweep)

    h = sub.add_parser("hosts", help="probe many libvirt hosts at once (exit 1 if one is "
                                     "unreachable)")
    h.add_argument("uris", nargs="+", metavar="URI",
                   help="libvirt URIs, e.g. qemu:///system qemu+ssh://root@lab2/system")
    h.add_argument("--timeout", type=float, default=5.0,
                   help="seconds each host may take (default 5)")
    h.add_argument("--json", action="store_true", help="print JSON for programs")
    h.set_defaults(func=_hosts)

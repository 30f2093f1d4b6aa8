"""``kvmlab cpu``: simulate a scenario, run it on a host, compare the two.

The three verbs are every lab's (:func:`kvmlab.labcommands.add_verbs`); the CPU lab adds
``--duration`` (watch the scenario for that many seconds) and, where the model runs,
``--scheduler`` (default :data:`COMMAND_SCHEDULER`, ``linux``). ``kvmlab cpu repro`` runs
the starvation reproducer (:mod:`kvmlab.cpu.repro`); with several ``--layout`` or
``--rate`` values, a sweep. ``kvmlab cpu repro-pinned`` runs the pinned-pCPU experiment
(:mod:`kvmlab.cpu.repro_pinned`).
``kvmlab cpu record`` runs shipped scenarios on the host several times each and
records them (how the shipped recordings were made); ``kvmlab cpu agreement`` compares
each scheduler with those repetitions.

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
import json
import sys
from typing import Any

from kvmlab.cpu.model import SCHEDULERS
from kvmlab.cpu.probe import parse_cpu_list
from kvmlab.cpu.repro import LAYOUTS, ReproParams, rate_sweep, run_repro
from kvmlab.cpu.repro_pinned import pinned_share
from kvmlab.cpu.scenario import CpuScenario
from kvmlab.errors import ScenarioError
from kvmlab.labcommands import add_verbs

__all__ = ["COMMAND_SCHEDULER", "add_parser"]

COMMAND_SCHEDULER = "linux"
"""The scheduler of ``kvmlab cpu simulate`` and ``compare`` unless ``--scheduler`` says
another: the one that agrees best with the recorded real runs (``kvmlab cpu agreement``).
:func:`kvmlab.cpu.simulate` itself defaults to ``fair``, the textbook, fast enough for the
explorers' sliders and the sweeps."""


def _options(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("--duration", type=float, metavar="SECONDS",
                        help="watch the scenario this long instead of its duration_s")
    if verb != "run":
        parser.add_argument("--scheduler", choices=SCHEDULERS, default=COMMAND_SCHEDULER,
                            help=f"the model's scheduler (default {COMMAND_SCHEDULER}: the one "
                                 "that agrees best with real hosts, see `kvmlab cpu agreement`)")


def _simulate_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"scheduler": args.scheduler}


def _adjust(scenario: CpuScenario, args: argparse.Namespace) -> CpuScenario:
    return scenario if args.duration is None else scenario.with_duration(args.duration)


def _list(text: str | None, what: str, kind: type = int) -> list[Any] | None:
    """``'1,2'`` as ``[1, 2]``; a value that is not a number is a ScenarioError.

    Examples
    --------
    >>> _list("250, 1000", "--rate", float), _list(None, "--shares")
    ([250.0, 1000.0], None)
    >>> _list("1,x", "--shares")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: --shares takes comma-separated numbers, not '1,x'
    """
    if text is None:
        return None
    try:
        return [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ScenarioError(f"{what} takes comma-separated numbers, not {text!r}") from None


def _repro(args: argparse.Namespace) -> int:
    """``kvmlab cpu repro``: one run (JSON result), or a sweep over layouts and rates."""
    layouts = [x.strip() for x in args.layout.split(",") if x.strip()]
    rates = _list(args.rate, "--rate", float) or []
    try:
        pcpus = list(parse_cpu_list(args.pcpus)) if args.pcpus is not None else None
    except ValueError:
        raise ScenarioError(f"--pcpus takes a CPU list such as 0-1 or 0,2, not "
                            f"{args.pcpus!r}") from None
    params = {"vms": args.vms, "vcpus": args.vcpus, "shares": _list(args.shares, "--shares"),
              "pcpus": pcpus, "window_s": args.window, "settle_s": args.settle,
              "repetitions": args.repetitions}
    progress = sys.stderr.isatty()
    if len(layouts) == 1 and len(rates) == 1:
        result = run_repro(ReproParams.from_dict({**params, "layout": layouts[0],
                                                  "rate": rates[0]}), progress=progress)
        print(result.table(), file=sys.stderr)
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    rows = rate_sweep(rates, layouts, progress=progress, **params)
    for row in rows:
        print(f"{row['layout']:<7} {row['rate']:>8g}/s  spread {row['spread']:.3f} "
              f"({row['spread_min']:.3f}..{row['spread_max']:.3f})", file=sys.stderr)
    print(json.dumps({"rows": rows}, indent=2))
    return 0


def _add_repro(csub: Any) -> None:
    p = csub.add_parser("repro", help="the starvation reproducer: per VM, busy 'vCPU' "
                                      "processes and an 'emulator' that wakes up RATE times "
                                      "a second, in cgroups laid out like libvirt's")
    p.add_argument("--vms", type=int, default=3, help="VMs (default 3)")
    p.add_argument("--vcpus", type=int, default=2, help="vCPU processes per VM (default 2)")
    p.add_argument("--layout", default="nested",
                   help=f"cgroup layout: {', '.join(LAYOUTS)} (default nested); several, "
                        "comma-separated, make a sweep")
    p.add_argument("--rate", default="1000",
                   help="emulator wake-ups per second, 0 for no emulator (default 1000); "
                        "several, comma-separated, make a sweep")
    p.add_argument("--shares", metavar="S1,S2,...", help="cpu.shares of each VM")
    p.add_argument("--pcpus", metavar="CPUS", help="host CPUs to confine the processes to, "
                                                   "e.g. 0-1 (default: all)")
    p.add_argument("--window", type=float, default=5.0, metavar="SECONDS",
                   help="measuring window (default 5)")
    p.add_argument("--settle", type=float, default=1.0, metavar="SECONDS",
                   help="time to settle before the window (default 1)")
    p.add_argument("--repetitions", type=int, default=1, help="windows, each with fresh "
                                                              "processes (default 1)")
    p.set_defaults(func=_repro)


def _repro_pinned(args: argparse.Namespace) -> int:
    """``kvmlab cpu repro-pinned``: one run of :func:`kvmlab.cpu.repro_pinned.pinned_share`."""
    emulator = not args.no_emulator
    share = pinned_share(args.sleeps, emulator=emulator, window_s=args.window)
    print(f"VM 1's share of CPU 0: {share:.3f} (the weights promise 0.500); VM 2's processes "
          f"slept {args.sleeps:g} times a second, "
          f"{'with' if emulator else 'without'} emulator processes on CPU 1", file=sys.stderr)
    print(json.dumps({"sleeps_per_s": args.sleeps, "emulator": emulator,
                      "window_s": args.window, "vm1_share": round(share, 4)}, indent=2))
    return 0


def _add_repro_pinned(csub: Any) -> None:
    p = csub.add_parser("repro-pinned", help="a pinned pCPU shared by a 1-vCPU and a 2-vCPU "
                                             "'VM' of plain processes (root, 2 CPUs): VM 1's "
                                             "share when VM 2's processes sleep often")
    p.add_argument("--sleeps", type=float, default=1000.0, metavar="PER_S",
                   help="how often each of VM 2's processes sleeps 50 us (default 1000)")
    p.add_argument("--no-emulator", action="store_true",
                   help="no emulator processes on CPU 1 (then VM 1 keeps its 0.5)")
    p.add_argument("--window", type=float, default=2.0, metavar="SECONDS",
                   help="measuring window (default 2)")
    p.set_defaults(func=_repro_pinned)


def _record(args: argparse.Namespace) -> int:
    """``kvmlab cpu record``: run scenarios on the host, several times each, and record."""
    from kvmlab.cpu.noise import HostNoise
    from kvmlab.cpu.recordings import record_repetitions
    from kvmlab.data import scenario_names

    names = args.scenarios or scenario_names("cpu-")
    noise = HostNoise(bursts_per_s=args.noise) if args.noise else None
    paths = record_repetitions(names, args.repeat, duration_s=args.duration, uri=args.uri,
                               into=args.into, progress=sys.stderr.isatty(), trace=args.trace,
                               noise=noise)
    for path in paths:
        print(path)
    return 0


def _agreement(args: argparse.Namespace) -> int:
    """``kvmlab cpu agreement``: each scheduler against the recorded repetitions."""
    from kvmlab.cpu.agreement import RECORDING, agreement_rows
    from kvmlab.data import save_recorded

    rows = []
    if args.save and args.machine_group:
        raise ScenarioError("--save keeps the table of the default model; it cannot be saved "
                            "with --machine-group")
    for row in agreement_rows(args.scenarios or None, args.scheduler.split(","), args.seeds,
                              machine_group=args.machine_group):
        rows.append(row)
        print(f"{row['name']:30s} {row['scheduler']:11s} runs {row['repetitions']}  VM error "
              f"{row['run_error']:.3f}  spread real {row['real_spread']:.3f} model "
              f"{row['model_spread']:.3f}  {'agrees' if row['agrees'] else 'DIFFERS'}",
              file=sys.stderr)
    print(json.dumps(rows, indent=1))
    if args.save:
        path = save_recorded(RECORDING, {"seeds": args.seeds, "rows": rows})
        print(f"saved {path}", file=sys.stderr)
    return 0


def _add_agreement(csub: Any) -> None:
    p = csub.add_parser("agreement", help="each scheduler of the model against the recorded "
                                          "repetitions of each scenario (per-VM means, spread)")
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                   help="recorded scenario names (default: every recorded cpu- scenario)")
    p.add_argument("--scheduler", default="fair,linux",
                   help="schedulers, comma-separated (default fair,linux)")
    p.add_argument("--seeds", type=int, default=10, help="simulations per scenario (default 10)")
    p.add_argument("--save", action="store_true",
                   help="also save the table as the recording 'agreement-cpu' (notebook 01 "
                        "reads it) in kvmlab's user data folder")
    p.add_argument("--machine-group", action="store_true",
                   help="the linux scheduler's VMs in libvirt's machine group, as on the host "
                        "(not the default: see notebook 01)")
    p.set_defaults(func=_agreement)


def _add_record(csub: Any) -> None:
    p = csub.add_parser("record", help="run shipped scenarios on the host REPEAT times each "
                                       "and record them (NAME, NAME.r2, ...)")
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                   help="shipped scenario names (default: every cpu- scenario)")
    p.add_argument("--repeat", type=int, default=3, help="runs per scenario (default 3)")
    p.add_argument("--duration", type=float, metavar="SECONDS",
                   help="measure each run this long instead of the scenario's duration_s")
    p.add_argument("--uri", help="libvirt URI of the host (default: the local QEMU host)")
    p.add_argument("--into", metavar="FOLDER",
                   help="write the recordings into FOLDER (default: your own recordings)")
    p.add_argument("--trace", action="store_true",
                   help="also trace the scheduler: who wakes each VM's main loop, and what "
                        "moves threads between CPUs (local host, root and tracefs)")
    p.add_argument("--noise", type=float, metavar="BURSTS_PER_S",
                   help="run other work on the host meanwhile: BURSTS_PER_S bursts of 1.4 ms "
                        "a second (recorded as noise-NAME, ...)")
    p.set_defaults(func=_record)


def add_parser(sub: Any) -> None:
    """Add this lab's command and its subcommands to the ``kvmlab`` command."""
    cpu = sub.add_parser("cpu", help="the CPU lab: simulate, run on a host, compare, repro")
    csub = cpu.add_subparsers(dest="cpu_command", required=True)
    add_verbs(csub, "cpu", scenario_help="a scenario JSON file or a shipped scenario name "
                                         "(e.g. cpu-seed-example)",
              options=_options, simulate_kwargs=_simulate_kwargs, adjust=_adjust)
    _add_repro(csub)
    _add_repro_pinned(csub)
    _add_record(csub)
    _add_agreement(csub)

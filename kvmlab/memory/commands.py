"""``kvmlab memory``: simulate, run and compare scenarios; walk, translate, trace a live
guest, KSM, and practice problems.

``kvmlab memory simulate|run|compare SCENARIO`` are every lab's verbs
(:mod:`kvmlab.labcommands`) over the lab's scenarios of three kinds (KSM, traces,
balloons); ``trace`` and ``ksm`` run the same experiments with their own options and
output.

Examples
--------
>>> from kvmlab.cli import main
>>> main(["memory", "walk", "--guest-page", "2M", "--host-page", "4K", "--json"])
...                                                        # doctest: +ELLIPSIS
{
  "guest_page": "2M",
  "host_page": "4K",
  "levels": 4,
  "host_levels": 4,
  "references": 19,
  "formula": "(3+1)(4+1)-1 = 19",
  "steps": [
    {
      "dimension": "nested",
...
0
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kvmlab.errors import ScenarioError
from kvmlab.labcommands import add_verbs
from kvmlab.memory.paging import LEVEL_NAMES, PAGE_SIZES, PageTables, Walk, nested_walk

SIZES = ("4K", "2M", "1G")


def add_parser(sub: Any) -> None:
    """Add ``memory`` and its subcommands to the ``kvmlab`` command's subparsers."""
    mem = sub.add_parser("memory", help="the memory lab: page walks, live VA->PA->MA traces, "
                                        "KSM and ballooning")
    msub = mem.add_subparsers(dest="memory_command", required=True)
    add_verbs(msub, "memory", scenario_help="a scenario JSON file or a shipped scenario name "
                                            "(memory-ksm-ten-contents, memory-trace, "
                                            "memory-balloon-three-guests, ...)")

    walk = msub.add_parser("walk", help="the worst-case two-dimensional walk (no TLB, no cache)")
    _page_options(walk)
    walk.add_argument("--json", action="store_true", help="print JSON for programs")
    walk.set_defaults(func=_walk)

    tr = msub.add_parser("translate", help="translate a virtual address, step by step")
    tr.add_argument("va", help="the guest-virtual address (hex, e.g. 0x400000001234)")
    tr.add_argument("--map", action="append", default=[], metavar="VA:PA[:SIZE]",
                    help="a guest mapping (repeatable; SIZE 4K, 2M or 1G); default: the lab "
                         "machine's working set at 0x400000000000")
    tr.add_argument("--host-offset", default=None,
                    help="with --map: machine address of guest-physical 0 (default "
                         "0x100000000)")
    _page_options(tr)
    tr.add_argument("--json", action="store_true", help="print JSON for programs")
    tr.set_defaults(func=_translate)

    live = msub.add_parser("trace", help="trace addresses of a live guest from VA to MA")
    live.add_argument("--uri", help="local QEMU libvirt URI (default qemu:///system as root)")
    live.add_argument("--samples", type=int, default=200, help="addresses (default 200)")
    live.add_argument("--seed", type=int, default=0, help="which addresses (default 0)")
    live.add_argument("--json", action="store_true", help="print the whole trace as JSON")
    live.add_argument("--record", metavar="NAME",
                      help="also save the trace as a recording named NAME (in the user data "
                           "directory, ~/.local/share/kvmlab/recorded)")
    live.set_defaults(func=_trace)

    ksm = msub.add_parser("ksm", help="same-page merging: the model, and with --run the "
                                      "real KSM of a tiny guest's kernel")
    ksm.add_argument("pages", type=int, help="mergeable pages")
    ksm.add_argument("distinct", type=int, help="different contents among them")
    ksm.add_argument("--pages-to-scan", type=int, default=100)
    ksm.add_argument("--sleep-ms", type=float, default=20.0)
    ksm.add_argument("--duration", type=float, default=1.5, help="seconds to watch")
    ksm.add_argument("--run", action="store_true", help="also run it in a live guest")
    ksm.add_argument("--uri", help="local QEMU libvirt URI (with --run)")
    ksm.add_argument("--record", metavar="NAME",
                     help="with --run: save the real run as a recording named NAME (in the "
                          "user data directory)")
    ksm.add_argument("--json", action="store_true", help="print JSON for programs")
    ksm.set_defaults(func=_ksm)

    bal = msub.add_parser("balloon", help="ballooning: the model, and with --run a real "
                                          "guest's balloon inflated and deflated")
    bal.add_argument("scenario", nargs="?", default="memory-balloon-live",
                     help="a balloon scenario: a real run (memory-balloon-live, "
                          "memory-balloon-live-deflate) or a plan of several guests "
                          "(memory-balloon-three-guests); default memory-balloon-live")
    bal.add_argument("--run", action="store_true", help="also run it on this host's libvirt")
    bal.add_argument("--uri", help="local QEMU libvirt URI (with --run)")
    bal.add_argument("--record", metavar="NAME",
                     help="with --run: save the real run as a recording named NAME (in the "
                          "user data directory)")
    bal.add_argument("--json", action="store_true", help="print JSON for programs")
    bal.set_defaults(func=_balloon)

    prob = msub.add_parser("problems", help="a seeded translation problem (-c: the answer)")
    prob.add_argument("-s", "--seed", type=int, default=0, help="which problem (default 0)")
    prob.add_argument("-c", "--compute", action="store_true", help="show the worked answer")
    prob.set_defaults(func=_problems)


def _page_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--guest-page", default="4K", type=str.upper, choices=SIZES,
                        help="the guest's page size (default 4K)")
    parser.add_argument("--host-page", default="4K", type=str.upper, choices=SIZES,
                        help="the nested tables' page size (default 4K)")
    parser.add_argument("--levels", type=int, default=4, choices=(4, 5),
                        help="levels of the guest's tables (default 4)")
    parser.add_argument("--host-levels", type=int, choices=(4, 5),
                        help="levels of the nested tables (default: as the guest's)")


def walk_dict(w: Walk) -> dict[str, Any]:
    """A walk as JSON: the address found (or the fault) and every reference in order."""
    return {"address": None if w.address is None else hex(w.address), "fault": w.fault,
            "page_size": w.page_size, "references": len(w.refs),
            "steps": [{"dimension": r.dimension, "level": r.level,
                       "table_name": LEVEL_NAMES[r.level], "table": hex(r.table),
                       "index": r.index} for r in w.refs]}


def _walk(args: argparse.Namespace) -> int:
    from kvmlab.memory.machine import expected_references, page_size, worst_case_walk

    host_levels = args.host_levels or args.levels
    w = worst_case_walk(args.guest_page, args.host_page, args.levels, host_levels)
    n = args.levels - PAGE_SIZES[page_size(args.guest_page)] + 1
    m = host_levels - PAGE_SIZES[page_size(args.host_page)] + 1
    refs = expected_references(args.guest_page, args.host_page, args.levels, host_levels)
    out = {"guest_page": args.guest_page, "host_page": args.host_page, "levels": args.levels,
           "host_levels": host_levels, "references": len(w.refs),
           "formula": f"({n}+1)({m}+1)-1 = {refs}", "steps": walk_dict(w)["steps"]}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"guest {args.guest_page} pages, {args.levels} levels; host {args.host_page} "
              f"pages, {host_levels} levels: {len(w.refs)} memory references "
              f"({out['formula']})")
        for i, r in enumerate(w.refs, 1):
            print(f"  {i:2d}. {r}")
    return 0


def parse_int(text: str, what: str) -> int:
    """An integer given on the command line, in decimal or hex (``0x400000001234``)."""
    try:
        if len(text) > 40:
            raise ValueError(text)
        return int(text, 0)
    except ValueError:
        raise ScenarioError(f"{what} must be a number such as 0x400000001234, "
                            f"not {text!r}") from None


def _translate(args: argparse.Namespace) -> int:
    from kvmlab.memory.machine import identity_machine, nested_tables, page_size

    va = parse_int(args.va, "the virtual address")
    host_levels = args.host_levels or args.levels
    if args.host_offset is not None and not args.map:
        raise ScenarioError("--host-offset places the guest's memory given with --map; the "
                            "lab machine (no --map) has its own layout: add --map VA:PA, or "
                            "drop --host-offset")
    offset = parse_int(args.host_offset or "0x100000000", "--host-offset")
    if not 0 <= offset < 1 << 52:
        raise ScenarioError(f"--host-offset is a machine address from 0 to 2**52, not "
                            f"{args.host_offset}")
    if args.map:
        guest = PageTables(args.levels, base=0x10_0000)
        mapped: list[tuple[int, int, str]] = []
        for spec in args.map:
            parts = spec.split(":")
            if len(parts) not in (2, 3):
                raise ScenarioError(f"--map takes VA:PA or VA:PA:SIZE, not {spec!r}")
            size = page_size(parts[2]) if len(parts) == 3 else page_size(args.guest_page)
            start = parse_int(parts[0], "a mapped VA")
            for other, other_size, other_spec in mapped:
                if start < other + other_size and other < start + size:
                    raise ScenarioError(f"--map {spec} overlaps --map {other_spec}: a virtual "
                                        "address has one mapping; give each page once")
            guest.map(start, parse_int(parts[1], "a mapped PA"), size)
            mapped.append((start, size, spec))
        found = guest.walk(va).address
        host = nested_tables(guest, [] if found is None else [found],
                             page_size(args.host_page), offset, host_levels)
    else:
        guest, host = identity_machine(16 * page_size(args.guest_page), args.guest_page,
                                       args.host_page, args.levels, host_levels)
    w = nested_walk(va, guest, host)
    pa = guest.walk(va).address
    out = {"va": hex(va), "pa": None if pa is None else hex(pa), **walk_dict(w)}
    out["ma"] = out.pop("address")
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"VA {out['va']} -> PA {out['pa']} -> MA {out['ma']}"
              + (f"  ({w.fault})" if w.fault else "") + f": {len(w.refs)} references")
        for i, r in enumerate(w.refs, 1):
            print(f"  {i:2d}. {r}")
    return 0


def _trace(args: argparse.Namespace) -> int:
    from kvmlab.data import check_name, save_recorded

    if args.record:
        check_name(args.record)                # refused before the guest boots
    from kvmlab.memory.scenario import TraceScenario
    from kvmlab.memory.twin import trace

    scenario = TraceScenario(samples=args.samples, seed=args.seed)
    result = trace(scenario, uri=args.uri, progress=sys.stderr.isatty())
    if args.record:
        print(f"# recorded in {save_recorded(args.record, result.to_dict())}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
        return 0
    ok, n = result.agreement()
    print(f"{ok}/{n} addresses: the model's walk over the guest's real tables (CR3 "
          f"{result.cr3:#x}, {result.levels} levels) finds the PA that QEMU finds")
    for kind, (k_ok, k_n) in result.by_kind().items():
        print(f"  {kind:<12} {k_ok}/{k_n}")
    print(result.table(4))
    seen = result.pattern_seen
    if seen:
        print(f"the program's page at VA {seen['va']}: read at PA {seen['pa']} "
              f"{seen['via_pa']!r}, in QEMU's memory {seen.get('via_hva')!r}")
    return 0 if ok == n else 1


def _ksm(args: argparse.Namespace) -> int:
    from kvmlab.data import check_name, save_recorded

    if args.record:
        check_name(args.record)
    from kvmlab.memory.model import fit_scan_cost, simulate_ksm
    from kvmlab.memory.scenario import KsmScenario

    scenario = KsmScenario(args.pages, args.distinct, args.pages_to_scan, args.sleep_ms,
                           duration_s=args.duration)
    results = {"model": simulate_ksm(scenario)}
    if args.run:
        from kvmlab.memory.twin import run_ksm

        real = results["real"] = run_ksm(scenario, uri=args.uri,
                                         progress=sys.stderr.isatty())
        if args.record:
            print(f"# recorded in {save_recorded(args.record, real.to_dict())}",
                  file=sys.stderr)
        if real.full_scan_s():
            results["model"] = simulate_ksm(fit_scan_cost(scenario, real.full_scan_s()))
    if args.json:
        print(json.dumps({k: r.to_dict() for k, r in results.items()}, indent=1))
        return 0
    print(f"{scenario.pages} pages, {scenario.distinct} contents: once merged, "
          f"pages_shared {scenario.expected_final()[0]}, pages_sharing "
          f"{scenario.expected_final()[1]}")
    for name, r in results.items():
        at = r.merged_at_s()
        print(f"  {name:<5} (pages_shared, pages_sharing) = {r.final()}; first full scan "
              f"{r.full_scan_s()} s; all merged at {at} s")
    return 0


def _balloon(args: argparse.Namespace) -> int:
    from kvmlab.data import check_name, save_recorded
    from kvmlab.memory.balloonrun import BalloonRunResult, explain_fit
    from kvmlab.memory.model import simulate
    from kvmlab.memory.result import BalloonResult
    from kvmlab.memory.scenario import load_scenario
    from kvmlab.memory.twin import run_on_host
    from kvmlab.memory.verbs import compare

    if args.record:
        check_name(args.record)
        if not args.run:
            raise ScenarioError("--record saves a real run: add --run")
    scenario = load_scenario(args.scenario)
    model = simulate(scenario)
    if not isinstance(model, BalloonResult | BalloonRunResult):
        raise ScenarioError(f"{args.scenario} is not a balloon scenario (kind "
                            f"{type(scenario).KIND!r})")
    out: dict[str, Any] = {"model": model.to_dict()}
    if isinstance(model, BalloonResult):
        out["why"] = explain_fit(model)
    comparison = None
    if args.run:
        real = run_on_host(scenario, uri=args.uri, progress=sys.stderr.isatty())
        if args.record:
            print(f"# recorded in {save_recorded(args.record, real.to_dict())}",
                  file=sys.stderr)
        comparison = compare(model, real)
        out.update(model=comparison.simulated.to_dict(), measured=real.to_dict(),
                   agrees=comparison.agrees, max_error_mib=comparison.max_error,
                   comparison=comparison.to_dict())
    if args.json:
        print(json.dumps(out, indent=1))
    elif comparison is not None:
        print(comparison.table())
    elif isinstance(model, BalloonRunResult):
        print("the model (before any run: the guest's start as measured on the lab's own "
              "host)")
        print(model.table())
    else:
        print(out["why"])
    return 0 if comparison is None or comparison.agrees else 1


def _problems(args: argparse.Namespace) -> int:
    from kvmlab.memory.problems import main_problem

    print(main_problem(args.seed, show_answer=args.compute))
    return 0

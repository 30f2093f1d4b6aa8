"""The ``kvmlab`` command.

Examples
--------
>>> main(["versions", "--json"]) == 0   # doctest: +ELLIPSIS
{...
True
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kvmlab.errors import KvmlabError
from kvmlab.experiments import commands as experiment_commands
from kvmlab.memory import commands as memory_commands


def _doctor(args: argparse.Namespace) -> int:
    from kvmlab.doctor import diagnose
    from kvmlab.host.cleanup import remove_leftovers

    if args.cleanup:
        removed = remove_leftovers(args.uri, force=args.force)
        if args.json:
            print(json.dumps([str(r) for r in removed], indent=2))
        else:
            print(f"removed {len(removed)} kvmlab- object(s)")
            for item in removed:
                print(f"  {item}")
        return 0
    d = diagnose(args.uri, trial_boot=not args.no_trial)
    print(d.to_json() if args.json else d.report())
    return 0


def _guest_build(args: argparse.Namespace) -> int:
    from kvmlab.host.image import build_image

    image = build_image(force=args.force)
    print(f"guest image: kernel {image.kernel_release}, {image.kernel.parent}")
    return 0


def _guest_run(args: argparse.Namespace) -> int:
    from kvmlab.host.guest import TransientGuest

    script = sys.stdin.read() if args.script == "-" else args.script
    with TransientGuest(script, vcpus=args.vcpus, memory_mib=args.memory_mib,
                        accel=args.accel, uri=args.uri, purpose="run") as guest:
        boot_s = guest.wait_for("KVMLAB-BOOTED", args.timeout)
        out = guest.result(args.timeout)
    print("\n".join(out.lines))
    print(f"# {guest.name}: {guest.accel}, booted in {boot_s:.1f} s, "
          f"exit status {out.exit_status}", file=sys.stderr)
    return out.exit_status or 0


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


def _storage(args: argparse.Namespace) -> int:
    from kvmlab import storage

    scenario = storage.StorageScenario.load(args.scenario)
    if args.storage_command == "simulate":
        out = storage.simulate(scenario).to_dict()
    elif args.storage_command == "run":
        out = storage.run_with_qemu(scenario).to_dict()
    else:
        comparison = storage.compare(storage.simulate(scenario), storage.run_with_qemu(scenario))
        print(comparison.summary(), file=sys.stderr)
        out = comparison.to_dict()
    print(json.dumps(out, indent=2))
    return 0


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


def _problems(args: argparse.Namespace) -> int:
    if args.topic == "cpu":
        from kvmlab.cpu import problems
    elif args.topic == "memory":
        from kvmlab.memory import problems
    elif args.topic == "experiments":
        from kvmlab.experiments import problems
    elif args.topic in ("network", "vlan"):
        from kvmlab.network import problems as net

        print(net.main_problem(args.seed, args.compute, vlans=args.topic == "vlan"))
        return 0
    else:
        from kvmlab.storage import problems
    print(problems.main_problem(args.seed, show_answer=args.compute))
    return 0


def _classroom(args: argparse.Namespace) -> int:
    import nbformat

    from kvmlab.classroom import structure_problems, write_student_versions

    paths = args.notebooks or sorted(Path("notebooks").glob("*.ipynb"))
    if not paths:
        raise KvmlabError("no notebooks given, and none in notebooks/")
    if args.classroom_command == "student":
        for path in write_student_versions(paths, args.out):
            print(path)
        return 0
    failed = 0
    for path in paths:
        found = structure_problems(nbformat.read(path, as_version=4))
        print(f"{path}: {'ok' if not found else '; '.join(found)}")
        failed += bool(found)
    return 1 if failed else 0


def _versions(args: argparse.Namespace) -> int:
    from kvmlab.versions import show_versions

    show_versions(as_json=args.json)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``kvmlab`` command."""
    parser = argparse.ArgumentParser(
        prog="kvmlab", description="Learn virtualization: simulate it and measure it.")
    sub = parser.add_subparsers(dest="command", required=True)

    doctor = sub.add_parser("doctor", help="what this machine can do for the labs")
    doctor.add_argument("--uri", help="live libvirt URI to check (default: local QEMU host)")
    doctor.add_argument("--json", action="store_true", help="print JSON for programs")
    doctor.add_argument("--cleanup", action="store_true",
                        help="remove every kvmlab- guest, pool, volume, network or namespace")
    doctor.add_argument("--force", action="store_true",
                        help="with --cleanup: also remove guests of kvmlab runs still running")
    doctor.add_argument("--no-trial", action="store_true",
                        help="skip the trial boot that tests whether KVM works")
    doctor.set_defaults(func=_doctor)

    guest = sub.add_parser("guest", help="the tiny guest (kernel + busybox initramfs)")
    gsub = guest.add_subparsers(dest="guest_command", required=True)
    build = gsub.add_parser("build", help="build and cache the guest image")
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    build.set_defaults(func=_guest_build)
    run = gsub.add_parser("run", help="boot a guest, run a shell script in it, print its output")
    run.add_argument("script", help="the script text, or - to read it from standard input")
    run.add_argument("--vcpus", type=int, default=1)
    run.add_argument("--memory-mib", type=int, default=128)
    run.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto")
    run.add_argument("--uri", help="libvirt URI of a local QEMU host")
    run.add_argument("--timeout", type=float, default=120.0, help="seconds (default 120)")
    run.set_defaults(func=_guest_run)

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

    storage = sub.add_parser("storage", help="the storage lab: qcow2 images, model and qemu-img")
    ssub = storage.add_subparsers(dest="storage_command", required=True)
    for name, text in {"simulate": "predict the image (map, allocated clusters, end offset)",
                       "run": "make the image with qemu-img/qemu-io and report the same fields",
                       "compare": "both, and where they differ"}.items():
        c = ssub.add_parser(name, help=text)
        c.add_argument("scenario", help="a storage scenario JSON file")
        c.set_defaults(func=_storage)

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

    memory_commands.add_parser(sub)
    experiment_commands.add_parser(sub)

    room = sub.add_parser("classroom", help="student versions of the notebooks, and their shape")
    rsub = room.add_subparsers(dest="classroom_command", required=True)
    student = rsub.add_parser("student", help="write the student version of notebooks "
                                              "(solutions out, checks kept)")
    student.add_argument("notebooks", nargs="*", type=Path,
                         help="teacher's notebooks (default: notebooks/*.ipynb)")
    student.add_argument("-o", "--out", type=Path, default=Path("build/student"),
                         help="where to write them (default build/student)")
    student.set_defaults(func=_classroom)
    shape = rsub.add_parser("check", help="does each notebook keep the labs' shape?")
    shape.add_argument("notebooks", nargs="*", type=Path,
                       help="notebooks (default: notebooks/*.ipynb)")
    shape.set_defaults(func=_classroom)

    prob = sub.add_parser("problems", help="practice problems with worked answers")
    prob.add_argument("topic", choices=("cpu", "memory", "storage", "network", "vlan",
                                        "experiments"),
                      help="which lab")
    prob.add_argument("-s", "--seed", type=int, default=0, help="which problem (default 0)")
    prob.add_argument("-c", "--compute", action="store_true", help="show the worked answer")
    prob.set_defaults(func=_problems)

    versions = sub.add_parser("versions", help="versions of kvmlab, libvirt, QEMU, ...")
    versions.add_argument("--json", action="store_true")
    versions.set_defaults(func=_versions)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kvmlab`` command; return its exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KvmlabError as exc:
        print(f"kvmlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kvmlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:          # e.g. `kvmlab cpu simulate ... | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

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
from importlib import import_module
from pathlib import Path

from kvmlab.errors import KvmlabError
from kvmlab.host.signals import Stopped, stop_signals_as_exit
from kvmlab.lab import LABS


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
    return d.exit_status()


def _guest_build(args: argparse.Namespace) -> int:
    from kvmlab.host.image import build_image

    image = build_image(force=args.force, progress=True)
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

    for name in (*LABS, "experiments"):
        import_module(f"kvmlab.{name}.commands").add_parser(sub)
    import_module("kvmlab.notebooks").add_parsers(sub)     # `kvmlab notebooks`, `kvmlab lab`

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


INTERNAL_ERROR = 70
"""The exit status of a failure that is kvmlab's own fault (``EX_SOFTWARE`` of sysexits)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kvmlab`` command; return its exit status.

    0 is success; 2 a broken rule (``kvmlab: error: ...``), a file or folder that cannot be
    used (an ``OSError``: ``--save`` naming a folder, ``--csv`` into a missing one), or a
    bad argument (argparse's ``SystemExit(2)``, as for every command line); 130 Ctrl-C
    (``kvmlab: interrupted``); 128 + the signal's number for SIGTERM (143) and SIGHUP
    (129), after one line ``kvmlab: stopped by SIGTERM`` (a run removes what it made
    first, as for Ctrl-C); :data:`INTERNAL_ERROR` (70) any other exception, printed on one
    line as ``kvmlab: internal error: <type>: <message> (please report this, with the
    command)``.

    Examples
    --------
    >>> main(["cpu", "simulate", "no-such-scenario"])
    2
    """
    try:
        with stop_signals_as_exit():
            args = build_parser().parse_args(argv)  # a bad argument: argparse exits with 2
            return _run(args)
    except Stopped as exc:
        print(f"kvmlab: {exc}", file=sys.stderr)
        return int(exc.code)


def _run(args: argparse.Namespace) -> int:
    """Carry out the parsed command; every exception but :class:`Stopped` ends here."""
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
    except OSError as exc:           # a file or folder given on the command line: say which
        where = f": {exc.filename}" if exc.filename else ""
        print(f"kvmlab: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except Exception as exc:         # noqa: BLE001 - the last line of defence
        message = " ".join(str(exc).split())[:500]
        print(f"kvmlab: internal error: {type(exc).__name__}: {message} "
              "(please report this, with the command)", file=sys.stderr)
        return INTERNAL_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

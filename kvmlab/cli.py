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

from kvmlab.errors import KvmlabError


def _doctor(args: argparse.Namespace) -> int:
    from kvmlab.doctor import diagnose
    from kvmlab.host.cleanup import remove_leftovers

    if args.cleanup:
        removed = remove_leftovers(args.uri)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

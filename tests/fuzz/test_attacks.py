"""The bad inputs that once broke kvmlab (tracebacks, hangs, memory blow-ups, nonsense
accepted), replayed through the command line in a child process whose address space is
capped: each is one ``kvmlab: error:`` line with exit status 2, in a few seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

MEMORY_CAP = 2 << 30
"""The child's address space (RLIMIT_AS): Python, numpy, simpy and networkx fit in well
under 1 GiB; a blow-up (2.8 GB for 10**9 vCPUs once) does not."""
EACH_S = 30.0

CPU = {"pcpus": 2, "duration_s": 1, "vms": [{"name": "a", "vcpus": 1}]}
TOPOLOGY = {"hosts": [{"name": "a", "nics": [{"name": "eth0", "ip": "10.0.0.1/24"}]},
                      {"name": "b", "nics": ["eth0"]}],
            "bridges": [{"name": "br0", "ports": ["p1", "p2"]}],
            "links": [["a:eth0", "br0:p1"], ["b:eth0", "br0:p2"]],
            "frames": [{"from": "a:eth0", "dst": "ff:ff:ff:ff:ff:ff"}]}
VLAN_BRIDGE = {"name": "br0", "vlan_filtering": True,
               "ports": [{"name": "p1", "vlans": [{"id": 10, "pvid": "false"}]}, "p2"]}


def _with(base: dict[str, Any], **change: Any) -> dict[str, Any]:
    return json.loads(json.dumps(base)) | change


def _vm(**change: Any) -> dict[str, Any]:
    return _with(CPU, vms=[{"name": "a", "vcpus": 1, **change}])


def _host(**nic: Any) -> dict[str, Any]:
    return _with(TOPOLOGY, hosts=[{"name": "a", "nics": [{"name": "eth0", **nic}]},
                                  {"name": "b", "nics": ["eth0"]}])


FILES: dict[str, bytes | dict[str, Any]] = {
    "vcpus-1e9": _vm(vcpus=10**9),
    "duration-1e6": _with(CPU, duration_s=1e6),
    "slice-1e-9": _with(CPU, slice_ms=1e-9),
    "period-1e-9": _vm(load=0.5, period_ms=1e-9),
    "trace-5": _vm(trace=5),
    "vm-null": _vm(name=None),
    "digits-5000": b'{"pcpus": 2, "duration_s": ' + b"9" * 5000 + b', "vms": []}',
    "not-utf8": b'{"pcpus": 2, "name": "\xff\xfe"}',
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "size-2-63": {"virtual_size": 2**63},
    "size-10-30": {"virtual_size": 10**30},
    "raw-full-2-40": {"format": "raw", "virtual_size": 2**40, "preallocation": "full"},
    "qcow2-prealloc": {"virtual_size": 1 << 20, "preallocation": "full"},
    "truncated-backing": {"virtual_size": 1 << 20, "backing": "@cut.qcow2"},
    "crafted-backing": {"virtual_size": 1 << 20, "backing": "@crafted.qcow2"},
    "nic": _with(TOPOLOGY, hosts=[{"name": "a", "nic": ["eth0"]}]),
    "mack": _host(mack="02:00:00:00:00:01"),
    "IP": _host(IP="10.0.0.1/24"),
    "ageing": _with(TOPOLOGY, bridges=[{"name": "br0", "ports": ["p1", "p2"], "ageing": 10}]),
    "vlan_filter": _with(TOPOLOGY, bridges=[{"name": "br0", "ports": ["p1", "p2"],
                                             "vlan_filter": True}]),
    "pvid-false": _with(TOPOLOGY, bridges=[VLAN_BRIDGE]),
    "parent-list": _with(TOPOLOGY, hosts=[
        {"name": "a", "nics": ["eth0"],
         "vlan_devices": [{"name": "eth0.10", "parent": ["eth0"], "id": 10}]},
        {"name": "b", "nics": ["eth0"]}]),
    "at-nan": b'{"hosts": [{"name": "a", "nics": ["eth0"]}], "frames": '
              b'[{"from": "a:eth0", "dst": "ff:ff:ff:ff:ff:ff", "at_s": NaN}]}',
    "at-infinity": b'{"hosts": [{"name": "a", "nics": ["eth0"]}], "frames": '
                   b'[{"from": "a:eth0", "dst": "ff:ff:ff:ff:ff:ff", "at_s": Infinity}]}',
}

ATTACKS: dict[str, tuple[list[str], str]] = {
    "vcpus 10**9": (["cpu", "simulate", "@vcpus-1e9"], "vcpus must be at most"),
    "duration_s 1e6": (["cpu", "simulate", "@duration-1e6"], "duration_s must be at most"),
    "slice_ms 1e-9": (["cpu", "simulate", "@slice-1e-9"], "slice_ms must be from"),
    "period_ms 1e-9": (["cpu", "simulate", "@period-1e-9"], "period_ms must be from"),
    "trace 5": (["cpu", "simulate", "@trace-5"], "trace .* must be a list"),
    "VM named null": (["cpu", "simulate", "@vm-null"], "name must be a string, not null"),
    "5000 digits": (["cpu", "simulate", "@digits-5000"], "5000 digits is too large"),
    "not UTF-8": (["cpu", "simulate", "@not-utf8"], "is not UTF-8 text"),
    "nested 100,000 deep": (["cpu", "simulate", "@deep"], "more than 64 deep"),
    "--duration 1e9": (["cpu", "simulate", "cpu-seed-example", "--duration", "1e9"],
                       "duration_s must be at most"),
    "sweep ratio=10**6": (["sweep", "cpu-overcommit", "--serial", "--quiet", "--seeds", "0",
                           "--set", "ratio=1000000"], "the model takes at most 4096"),
    "sweep ratio=1e999": (["sweep", "cpu-overcommit", "--serial", "--quiet", "--seeds", "0",
                           "--set", "ratio=1e999"], "too large for a finite float"),
    "tlb working_set_kib=1e9": (["sweep", "tlb-working-set", "--serial", "--quiet", "--seeds",
                                 "0", "--set", "working_set_kib=1e9"],
                                "working_set_kib must be at most"),
    "ksm --duration 1e9": (["memory", "ksm", "100", "10", "--duration", "1e9"],
                           "duration_s must be at most"),
    "ksm 10**9 pages": (["memory", "ksm", "1000000000", "1"], "pages must be at most"),
    "virtual_size 2**63": (["storage", "simulate", "@size-2-63"],
                           "virtual_size must be at most"),
    "virtual_size 10**30": (["storage", "simulate", "@size-10-30"],
                            "virtual_size must be at most"),
    "raw full 2**40": (["storage", "simulate", "@raw-full-2-40"], "too large for the model"),
    "preallocation on qcow2": (["storage", "simulate", "@qcow2-prealloc"],
                               "preallocation is a raw image's option"),
    "truncated backing": (["storage", "simulate", "@truncated-backing"], "truncated"),
    "crafted backing": (["storage", "simulate", "@crafted-backing"], "cluster_bits"),
    "host key nic": (["network", "simulate", "@nic"], "did you mean 'nics'"),
    "NIC key mack": (["network", "simulate", "@mack"], "did you mean 'mac'"),
    "NIC key IP": (["network", "simulate", "@IP"], "did you mean 'ip'"),
    "bridge key ageing": (["network", "simulate", "@ageing"], "did you mean 'ageing_s'"),
    "bridge key vlan_filter": (["network", "simulate", "@vlan_filter"],
                               "did you mean 'vlan_filtering'"),
    "pvid 'false'": (["network", "simulate", "@pvid-false"], "pvid must be true or false"),
    "parent a list": (["network", "simulate", "@parent-list"], "is not one of its NICs"),
    "at_s NaN": (["network", "simulate", "@at-nan"], "NaN is not a number JSON allows"),
    "at_s Infinity": (["network", "simulate", "@at-infinity"],
                      "Infinity is not a number JSON allows"),
    "--host-offset without --map": (["memory", "translate", "0x400000001234",
                                     "--host-offset", "0x5"], "--host-offset places"),
    "--map twice for one VA": (["memory", "translate", "0x400000001000", "--map",
                                "0x400000001000:0x2000", "--map", "0x400000001000:0x3000"],
                               "overlaps"),
    "sweep --save a folder": (["sweep", "cpu-overcommit", "--serial", "--quiet", "--seeds",
                               "0", "--set", "duration_s=0.05", "--save", "@"],
                              "Is a directory"),
    "sweep --csv into a missing folder": (["sweep", "cpu-overcommit", "--serial", "--quiet",
                                           "--seeds", "0", "--set", "duration_s=0.05",
                                           "--csv", "@missing/runs.csv"],
                                          "No such file or directory"),
}

CHILD = textwrap.dedent("""
    import contextlib, io, json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
    from kvmlab.cli import main
    out = {{}}
    for name, argv in json.load(sys.stdin).items():
        err = io.StringIO()
        started = time.monotonic()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            try:
                status = main(argv)
            except SystemExit as exc:
                status = exc.code
        out[name] = [status, err.getvalue(), time.monotonic() - started]
    print(json.dumps(out))
""")


def replay(argvs: dict[str, list[str]]) -> dict[str, list[Any]]:
    """Each command line's [exit status, standard error, seconds], from one capped child."""
    child = subprocess.run([sys.executable, "-c", CHILD.format(cap=MEMORY_CAP)],
                           input=json.dumps(argvs), capture_output=True, text=True,
                           timeout=EACH_S * 4, env=os.environ.copy(),
                           cwd=Path(__file__).parents[2])
    assert child.returncode == 0, child.stderr[-3000:]
    return json.loads(child.stdout)


@pytest.fixture(scope="module")
def replayed(tmp_path_factory) -> dict[str, list[Any]]:
    """Every attack's [exit status, standard error, seconds]."""
    from tests.fuzz.test_fuzz_qcow2 import small_image

    folder = tmp_path_factory.mktemp("kvmlab-attacks")
    (folder / "cut.qcow2").write_bytes(small_image()[:700])
    crafted = bytearray(small_image())
    crafted[23] = 60                                  # cluster_bits 60: 2**60-byte clusters
    (folder / "crafted.qcow2").write_bytes(bytes(crafted))
    for name, content in FILES.items():
        if isinstance(content, dict):
            text = json.dumps(content).replace('"@', f'"{folder}/')
            content = text.encode()
        (folder / f"{name}.json").write_bytes(content)

    def resolve(arg: str) -> str:
        if arg.startswith("@"):
            name = arg[1:]
            return str(folder / (f"{name}.json" if name in FILES else name))
        return arg
    return replay({name: [resolve(a) for a in argv] for name, (argv, _rule) in ATTACKS.items()})


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_each_attack_is_one_clear_error(attack, replayed):
    import re

    status, err, seconds = replayed[attack]
    assert status == 2, f"{attack}: exit status {status}: {err[-1000:]}"
    assert err.startswith("kvmlab: error: ") and len(err.splitlines()) == 1, err[-1000:]
    assert re.search(ATTACKS[attack][1], err), err
    assert seconds < EACH_S


SWEEP = ["sweep", "cpu-overcommit", "--serial", "--quiet", "--set", "duration_s=0.05"]


def test_sweep_arguments_too_large_to_parse_are_one_clear_error():
    out = replay({"digits": [*SWEEP, "--seeds", "0", "--set", "ratio=" + "9" * 5000],
                  "seeds": [*SWEEP, "--seeds", "0-100000000"],
                  "seeds beyond C": [*SWEEP, "--seeds", "0-" + "9" * 30]})
    for status, err, seconds in out.values():
        assert status == 2 and err.startswith("kvmlab: error: "), err[-300:]
        assert seconds < EACH_S

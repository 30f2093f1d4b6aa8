"""The tiny guest on a real QEMU host through libvirt (marked live)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kvmlab.errors import ExperimentFailed
from kvmlab.host.connect import connect
from kvmlab.host.guest import TransientGuest
from kvmlab.host.image import BOOT_MARKER

pytestmark = pytest.mark.live


def domain_names(uri: str) -> set[str]:
    conn = connect(uri)
    try:
        return {d.name() for d in conn.listAllDomains()}
    finally:
        conn.close()


def test_guest_boots_runs_its_scenario_and_is_gone_afterwards(live_uri, guest_image,
                                                              no_leftovers):
    script = "echo vcpus=$(nproc)\necho kernel=$(uname -r)\nsleep 2\nexit 7"
    with TransientGuest(script, vcpus=2, memory_mib=128, pinning={0: [0], 1: [0]},
                        uri=live_uri, purpose="boot", image=guest_image) as guest:
        boot_s = guest.wait_for(BOOT_MARKER, timeout_s=90)
        stats = guest.stats()                     # virsh domstats, while it runs
        pins = guest.conn.lookupByName(guest.name).vcpuPinInfo(0)
        assert guest.name in domain_names(live_uri)
        assert guest.qemu_pid() > 1
        out = guest.result(timeout_s=90)
    print(f"\nguest boot under {guest.accel}: {boot_s:.2f} s to {BOOT_MARKER}")
    assert out.booted
    assert out.values() == {"vcpus": "2", "kernel": guest_image.kernel_release}
    assert out.exit_status == 7
    assert stats["state.state"] == 1              # VIR_DOMAIN_RUNNING
    assert stats["vcpu.current"] == 2
    assert stats["balloon.maximum"] == 128 * 1024
    assert all(pin[0] and not any(pin[1:]) for pin in pins)   # both vCPUs on pCPU 0 only
    assert guest.name not in domain_names(live_uri)
    assert not guest.workdir.exists()


def test_an_exception_inside_the_block_still_destroys_the_guest(live_uri, guest_image,
                                                                 no_leftovers):
    guest = TransientGuest("sleep 600", uri=live_uri, purpose="exc", image=guest_image)
    with pytest.raises(RuntimeError, match="student bug"), guest:
        guest.wait_for(BOOT_MARKER, timeout_s=90)
        raise RuntimeError("student bug")
    assert guest.name not in domain_names(live_uri)


def test_a_guest_that_never_prints_the_marker_fails_clearly(live_uri, guest_image,
                                                           no_leftovers):
    with (TransientGuest("exit 0", uri=live_uri, purpose="nomark", image=guest_image) as g,
          pytest.raises(ExperimentFailed, match="stopped without printing 'NEVER'")):
        g.wait_for("NEVER", timeout_s=90)


CHILD = textwrap.dedent("""
    import subprocess, sys, time
    from kvmlab.host.guest import TransientGuest
    with TransientGuest("sleep 600", uri=sys.argv[1], purpose="child") as g:
        g.wait_for("KVMLAB-BOOTED", 90)
        if sys.argv[2] == "netns":
            subprocess.run(["ip", "netns", "add", g.name], check=True)
        print(g.name, g.workdir, flush=True)
        time.sleep(600)
""")


def start_child(uri: str, extra: str = "") -> tuple[subprocess.Popen[str], str, Path]:
    child = subprocess.Popen([sys.executable, "-c", CHILD, uri, extra or "-"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = child.stdout.readline().split()
    assert line, "the child process did not start its guest"
    return child, line[0], Path(line[1])


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_destroy_the_guest(live_uri, guest_image, no_leftovers, signum):
    child, name, workdir = start_child(live_uri)
    assert name in domain_names(live_uri)
    child.send_signal(signum)
    child.wait(timeout=60)
    assert name not in domain_names(live_uri)
    assert not workdir.exists()


def test_kill_9_leaves_objects_that_doctor_cleanup_removes(live_uri, guest_image):
    from kvmlab.host.cleanup import find_leftovers

    child, name, workdir = start_child(live_uri, "netns")
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    left = {(item.kind, item.name) for item in find_leftovers(live_uri)}
    assert {("domain", name), ("netns", name), ("files", name)} <= left
    cli = Path(sys.executable).with_name("kvmlab")
    done = subprocess.run([str(cli), "doctor", "--cleanup", "--json"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    removed = json.loads(done.stdout)
    assert any(name in line for line in removed)
    assert name not in {item.name for item in find_leftovers(live_uri)}
    assert name not in domain_names(live_uri)
    assert not workdir.exists()


def test_cleanup_spares_a_guest_whose_owner_still_runs(live_uri, guest_image, no_leftovers):
    from kvmlab.host.cleanup import find_leftovers, remove_leftovers

    with TransientGuest("sleep 600", uri=live_uri, purpose="owned", image=guest_image) as g:
        g.wait_for(BOOT_MARKER, timeout_s=90)
        mine = [item for item in find_leftovers(live_uri) if item.name == g.name]
        assert mine and all(item.in_use for item in mine)
        assert g.name not in {item.name for item in remove_leftovers(live_uri)}
        assert g.is_running() and g.workdir.exists()


def test_doctor_tells_what_this_machine_can_do(live_uri, guest_image):
    cli = Path(sys.executable).with_name("kvmlab")
    start = time.monotonic()
    done = subprocess.run([str(cli), "doctor", "--json"], capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    findings = {f["topic"]: f for f in report["findings"]}
    assert report["live_uri"] == live_uri
    assert findings["guest image"]["ok"] is True
    assert report["accelerator"] in ("kvm", "tcg")
    if Path("/sys/module/kvm_pvm").exists():
        # a paravirtual KVM variant: /dev/kvm exists, a standard guest cannot use it
        assert report["accelerator"] == "tcg"
        assert "a standard guest does not boot under it" in findings["accelerator"]["summary"]
        assert "TCG" in findings["accelerator"]["summary"]
    if report["accelerator"] == "kvm":
        assert "trial boot under KVM reached" in findings["accelerator"]["detail"]
    assert time.monotonic() - start < 120


def test_a_left_over_kvmlab_secret_is_found_and_removed(live_uri):
    """A LUKS passphrase secret left by a run killed with SIGKILL goes with the clean-up;
    a secret that is not kvmlab's stays."""
    from kvmlab.host.cleanup import find_libvirt_leftovers, remove_leftovers
    from kvmlab.host.connect import connection
    from kvmlab.storage.pool import secret_xml

    with connection(live_uri, write=True) as conn:
        ours = conn.secretDefineXML(secret_xml("kvmlab-luks-leftover"))
        theirs = conn.secretDefineXML("<secret ephemeral='yes' private='yes'>"
                                      "<description>someone-else</description></secret>")
        try:
            found = [i for i in find_libvirt_leftovers(conn) if i.kind == "secret"]
            assert [(i.name, i.left_over) for i in found] == [("kvmlab-luks-leftover", True)]
            removed = remove_leftovers(live_uri)
            left = {s.UUIDString() for s in conn.listAllSecrets()}
        finally:
            theirs.undefine()
            if ours.UUIDString() in {s.UUIDString() for s in conn.listAllSecrets()}:
                ours.undefine()
    assert "kvmlab-luks-leftover" in [i.name for i in removed]
    assert ours.UUIDString() not in left and theirs.UUIDString() in left

"""A private sshd on 127.0.0.1 that lets this machine reach its own libvirtd over qemu+ssh.

It runs with its own configuration, a fresh host key and its own authorized-keys file
holding a fresh key pair, all in a ``kvmlab-`` temporary directory; the machine's ssh
configuration is neither read nor changed (the client gets its own config through the
``command=`` parameter of libvirt's ssh transport, so no known_hosts file is written
outside that directory). It is stopped by its process id.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")


@dataclass(frozen=True)
class Sshd:
    """A running private sshd: its port, pid, directory and the libvirt URI through it."""

    port: int
    pid: int
    workdir: Path
    uri: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                   check=True, capture_output=True, timeout=30)


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5) as s:
        return s.recv(4).startswith(b"SSH-")
    return False


@contextlib.contextmanager
def private_sshd(path: str = "/system") -> Iterator[Sshd]:
    """Start the sshd, yield it, stop it by its pid and remove its directory."""
    workdir = Path(tempfile.mkdtemp(prefix="kvmlab-sshd-"))
    made_privsep = not PRIVSEP_DIR.exists()
    proc = None
    try:
        _keygen(workdir / "host_key")
        _keygen(workdir / "client_key")
        shutil.copyfile(workdir / "client_key.pub", workdir / "authorized_keys")
        (workdir / "authorized_keys").chmod(0o600)
        port = free_port()
        (workdir / "sshd_config").write_text("\n".join([
            "ListenAddress 127.0.0.1", f"Port {port}", f"HostKey {workdir / 'host_key'}",
            f"AuthorizedKeysFile {workdir / 'authorized_keys'}",
            f"PidFile {workdir / 'sshd.pid'}", "PermitRootLogin prohibit-password",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
            "StrictModes no", "X11Forwarding no", ""]))
        (workdir / "ssh_config").write_text("\n".join([
            "Host *", f"  IdentityFile {workdir / 'client_key'}", "  IdentitiesOnly yes",
            f"  UserKnownHostsFile {workdir / 'known_hosts'}",
            "  GlobalKnownHostsFile /dev/null", "  StrictHostKeyChecking accept-new",
            "  BatchMode yes", ""]))
        wrapper = workdir / "ssh"
        wrapper.write_text(f'#!/bin/sh\nexec ssh -F {workdir / "ssh_config"} "$@"\n')
        wrapper.chmod(0o755)
        if made_privsep:                  # sshd refuses to start without it
            PRIVSEP_DIR.mkdir(mode=0o755)
        # -D: stays in the foreground, so the Popen's pid is sshd's own.
        proc = subprocess.Popen([SSHD, "-D", "-f", str(workdir / "sshd_config"),
                                 "-E", str(workdir / "sshd.log")])
        deadline = time.monotonic() + 10
        while not _answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (workdir / "sshd.log").read_text() if (workdir / "sshd.log").exists() \
                    else ""
                raise RuntimeError(f"sshd did not start on 127.0.0.1:{port}: {log[-800:]}")
            time.sleep(0.1)
        uri = (f"qemu+ssh://root@127.0.0.1:{port}{path}?keyfile={workdir / 'client_key'}"
               f"&no_verify=1&command={wrapper}")
        yield Sshd(port, proc.pid, workdir, uri)
    finally:
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
        if made_privsep:
            with contextlib.suppress(OSError):
                PRIVSEP_DIR.rmdir()

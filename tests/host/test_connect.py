import errno
import os
import socket
import threading
import time

import pytest

from kvmlab.errors import HostUnavailable
from kvmlab.host.connect import DEFAULT_URI, connect, connection, explain, resolve_uri

libvirt = pytest.importorskip("libvirt")


def test_default_is_the_daemonless_test_driver(monkeypatch):
    monkeypatch.delenv("KVMLAB_URI", raising=False)
    conn = connect()
    assert conn.getURI() == DEFAULT_URI
    assert conn.getInfo()[2] == 16          # the test driver's fake host
    conn.close()


def test_kvmlab_uri_overrides_the_default_and_an_argument_overrides_both(monkeypatch):
    monkeypatch.setenv("KVMLAB_URI", "test:///default?x=1")
    assert resolve_uri() == "test:///default?x=1"
    assert resolve_uri("qemu:///session") == "qemu:///session"


def test_read_only_unless_write_is_asked_for():
    xml = "<network><name>kvmlab-ro-test</name></network>"
    conn = connect(DEFAULT_URI)
    with pytest.raises(libvirt.libvirtError, match=r"read only|read-only"):
        conn.networkDefineXML(xml)
    rw = connect(DEFAULT_URI, write=True)
    net = rw.networkDefineXML(xml)
    assert net.name() == "kvmlab-ro-test"
    net.undefine()


def test_unknown_uri_names_the_problem_and_prints_nothing(capfd):
    with pytest.raises(HostUnavailable, match="no driver for this URI") as info:
        connect("nosuchdriver:///x")
    assert info.value.uri == "nosuchdriver:///x"
    assert "spelling" in info.value.remedy
    out, err = capfd.readouterr()
    assert out == "" and err == ""         # none of libvirt's own stderr noise


def test_daemon_not_running_is_recognised(tmp_path, capfd):
    uri = f"qemu:///system?socket={tmp_path}/no-such-libvirt-sock"
    with pytest.raises(HostUnavailable, match="daemon is not running") as info:
        connect(uri)
    assert "libvirtd" in info.value.remedy
    assert capfd.readouterr().err == ""


def test_refused_connection_is_an_unreachable_host():
    with socket.socket() as probe:         # a port on this machine where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(HostUnavailable, match=r"nothing listens there \(connection refused\)"):
        connect(f"qemu+tcp://127.0.0.1:{port}/system")


def test_a_host_that_never_answers_fails_within_the_timeout():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held = []
    threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()
    start = time.monotonic()
    try:
        with pytest.raises(HostUnavailable, match="no answer within 1 s"):
            connect(f"qemu+tcp://127.0.0.1:{server.getsockname()[1]}/system", timeout_s=1)
        assert time.monotonic() - start < 3
    finally:
        server.close()


@pytest.mark.parametrize(("message", "reason"), [
    ("authentication failed: access denied by policy", "permission denied"),
    ("Failed to connect socket to '/run/libvirt/libvirt-sock': Permission denied",
     "permission denied"),
    ("Cannot recv data: ssh: connect to host h port 22: No route to host",
     "the host does not answer"),
    ("no connection driver available for foo:///", "libvirt has no driver for this URI"),
])
def test_explain_maps_libvirt_messages_to_reasons(message, reason):
    assert explain("x", message)[0] == reason


def test_explain_keeps_an_unknown_message_and_points_to_the_doctor():
    reason, remedy = explain("x", "something odd happened.")
    assert reason == "something odd happened"
    assert "kvmlab doctor" in remedy


def test_a_connection_that_opens_after_the_timeout_is_closed(monkeypatch):
    closed = threading.Event()

    class Late:
        def close(self):
            closed.set()
            return 0

    def slow_open(_uri):
        time.sleep(0.3)
        return Late()

    monkeypatch.setattr(libvirt, "openReadOnly", slow_open)
    with pytest.raises(HostUnavailable, match=r"no answer within 0\.05 s"):
        connect("test:///default", timeout_s=0.05)
    assert closed.wait(5), "the late connection was never closed"


def test_connection_closes_on_every_path():
    with connection(DEFAULT_URI) as conn:
        assert conn.getInfo()[2] == 16
    with pytest.raises(libvirt.libvirtError, match="invalid connection"):
        conn.getInfo()
    with pytest.raises(RuntimeError, match="boom"), connection(DEFAULT_URI) as conn:
        raise RuntimeError("boom")
    with pytest.raises(libvirt.libvirtError, match="invalid connection"):
        conn.getInfo()


class FakeLibvirtError(Exception):
    """What explain() reads of a libvirtError: its code, domain, errno and message."""

    def __init__(self, message, code, domain=None, int1=-1):
        super().__init__(message)
        self.code, self.domain, self.int1 = code, domain, int1

    def get_error_code(self):
        return self.code

    def get_error_domain(self):
        return self.domain

    def get_int1(self):
        return self.int1

    def get_error_message(self):
        return str(self)


SYSTEM = libvirt.VIR_ERR_SYSTEM_ERROR
RPC = libvirt.VIR_FROM_RPC


@pytest.mark.parametrize(("uri", "error", "reason"), [
    # the code decides, whatever the words say
    ("qemu:///system", FakeLibvirtError("?", SYSTEM, RPC, errno.ENOENT),
     "the libvirt daemon is not running (its socket does not exist)"),
    ("qemu:///system", FakeLibvirtError("?", SYSTEM, RPC, errno.ECONNREFUSED),
     "the libvirt daemon is not running (its socket is there, but nothing listens on it)"),
    ("qemu:///system", FakeLibvirtError("?", SYSTEM, RPC, errno.EACCES), "permission denied"),
    ("qemu+tcp://h/system", FakeLibvirtError("?", SYSTEM, RPC, errno.ECONNREFUSED),
     "nothing listens there (connection refused)"),
    ("qemu+tcp://h/system", FakeLibvirtError("?", SYSTEM, RPC, errno.EHOSTUNREACH),
     "the host does not answer"),
    ("x:///", FakeLibvirtError("?", libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_FROM_NONE),
     "libvirt has no driver for this URI"),
    ("qemu:///system", FakeLibvirtError("?", libvirt.VIR_ERR_AUTH_FAILED,
                                        libvirt.VIR_FROM_POLKIT), "permission denied"),
    ("qemu:///system", FakeLibvirtError("internal error: Unable to get system bus "
                                        "connection", libvirt.VIR_ERR_INTERNAL_ERROR,
                                        libvirt.VIR_FROM_DBUS), "permission denied"),
    ("qemu+foo:///system", FakeLibvirtError("?", libvirt.VIR_ERR_INVALID_ARG,
                                            libvirt.VIR_FROM_REMOTE),
     "libvirt does not accept this URI"),
    # a remote ENOENT is not the local daemon's socket
    ("qemu+tls://h/system", FakeLibvirtError("Cannot read CA certificate", SYSTEM, RPC,
                                             errno.ENOENT), "Cannot read CA certificate"),
    # over ssh the errno is the pipe's: ssh's own words decide
    ("qemu+ssh://h/system", FakeLibvirtError("ssh: Permission denied (publickey)", SYSTEM,
                                             RPC, errno.ECONNRESET), "permission denied"),
    ("qemu+ssh://h/system", FakeLibvirtError("ssh: Could not resolve hostname h", SYSTEM, RPC,
                                             errno.ECONNRESET), "the host does not answer"),
])
def test_explain_tells_libvirt_errors_apart_by_code(uri, error, reason):
    assert explain(uri, error)[0] == reason


def test_a_socket_nobody_listens_on_is_a_daemon_that_is_gone(tmp_path):
    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as sock:      # bound, never listening
        sock.bind(str(path))
        with pytest.raises(HostUnavailable, match="nothing listens on it"):
            connect(f"qemu+unix:///system?socket={path}")


def test_a_socket_that_may_not_be_opened_is_permission_denied(tmp_path):
    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        sock.listen()
        path.chmod(0)
        tmp_path.chmod(0o755)
        uri = f"qemu+unix:///system?socket={path}"
        if os.geteuid() != 0:
            with pytest.raises(HostUnavailable, match="permission denied"):
                connect(uri)
            return
        # root may open any socket: try as the user nobody, in a child process. A fork of
        # this process, which has threads, can inherit a lock some thread held at the fork
        # and wait for ever (its connect times out): such a child is asked again.
        for _ in range(3):
            answer = _connect_as_nobody(uri)
            if not answer.startswith("no answer within"):
                break
    assert answer == "permission denied"


def _connect_as_nobody(uri: str) -> str:
    """What :func:`connect` says to ``uri`` in a child process running as user nobody."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                                  # pragma: no cover - the child
        try:
            os.setgid(65534)
            os.setuid(65534)
            try:
                connect(uri, timeout_s=5)
                answer = "connected"
            except HostUnavailable as exc:
                answer = exc.reason
            os.write(write, answer.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    return answer

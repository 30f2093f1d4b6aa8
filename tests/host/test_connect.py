import socket
import threading
import time

import pytest

from kvmlab.errors import HostUnavailable
from kvmlab.host.connect import DEFAULT_URI, connect, explain, resolve_uri

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

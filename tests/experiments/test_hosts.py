"""Probing many libvirt hosts at once, against real endpoints on this machine only.

The reachable host is libvirt's daemonless test driver (``test:///default``, only read).
The unreachable ones are built here, on 127.0.0.1: a port where nothing listens (refused at
once), and "silent" servers that accept the TCP connection and then never say a word
(libvirt's remote driver sends its first RPC and waits for a reply that never comes). The
live test adds the real ``qemu:///system`` host.
"""

from __future__ import annotations

import math
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvmlab.errors import HostUnavailable, ScenarioError
from kvmlab.experiments.hosts import TABLE_COLUMNS, HostReport, hosts_table, probe_hosts
from kvmlab.host.connect import connect
from kvmlab.host.tour import Table, node_info

pytest.importorskip("libvirt")

FAKE = "test:///default"
NO_DRIVER = "nosuchdriver:///x"
MARGIN_S = 0.5
"""How much later than timeout_s a call may return (thread start-up, a loaded CI machine)."""

SUMMARY_FIELDS = ("hostname", "hypervisor", "hypervisor_version", "libvirt_version", "cpus",
                  "memory_bytes", "accelerator", "domains_running", "domains_total",
                  "networks", "pools")


def free_port() -> int:
    """A TCP port on 127.0.0.1 where nothing listens (bound to port 0, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tcp_uri(port: int) -> str:
    return f"qemu+tcp://127.0.0.1:{port}/system"


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never answers; counts what it accepted."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.listener.settimeout(0.05)        # so that the accept loop sees `stop`
        self.port: int = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, name=f"silent-{self.port}",
                                       daemon=True)
        self.thread.start()

    @property
    def uri(self) -> str:
        return tcp_uri(self.port)

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                client, _address = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(client)    # held open, never read from, never written to

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        for client in self.accepted:
            client.close()                  # libvirt's waiting client sees EOF and gives up
        self.listener.close()


@pytest.fixture
def silent_server() -> Iterator[Callable[[], SilentServer]]:
    """A factory of silent servers, all closed (thread joined, sockets closed) at the end."""
    servers: list[SilentServer] = []

    def make() -> SilentServer:
        servers.append(SilentServer())
        return servers[-1]

    yield make
    for server in servers:
        server.close()
    assert all(not s.thread.is_alive() for s in servers)


def timed(*args, **kwargs) -> tuple[list[HostReport], float]:
    started = time.monotonic()
    reports = probe_hosts(*args, **kwargs)
    return reports, time.monotonic() - started


def assert_fake_host(report: HostReport) -> None:
    """The facts of libvirt's test driver, as the tour reads them."""
    assert report.uri == FAKE
    assert report.reachable is True
    assert report.error == ""
    assert report.hypervisor == "TEST"
    assert report.cpus == 16
    assert report.memory_bytes == 3072 * 1024 * 1024
    assert report.accelerator == "test"
    assert report.hostname == node_info(connect(FAKE)).hostname
    assert report.hostname
    assert re.fullmatch(r"\d+\.\d+\.\d+", report.libvirt_version or "")
    assert report.domains_total >= 1
    assert report.domains_running >= 1               # the driver's domain "test" runs
    assert report.networks >= 1
    assert report.pools >= 1
    assert report.details is None


def assert_unreachable(report: HostReport, *words: str) -> None:
    assert report.reachable is False
    for name in SUMMARY_FIELDS:
        assert getattr(report, name) is None, name
    assert report.details is None
    assert "What to do:" in report.error
    for word in words:
        assert word in report.error


# --------------------------------------------------------------------------- reachable


def test_the_test_driver_is_reachable_with_its_facts():
    [report] = probe_hosts([FAKE], timeout_s=5)
    assert_fake_host(report)
    assert 0 <= report.elapsed_s < 5
    assert report.elapsed_s == round(report.elapsed_s, 3)


def test_a_report_prints_as_a_list_and_renders_as_html():
    [report] = probe_hosts([FAKE])
    text = str(report)
    assert re.search(r"^cpus +16$", text, re.MULTILINE)
    assert re.search(r"^memory_bytes +3\.00 GiB$", text, re.MULTILINE)
    assert "<th style='text-align:left'>hypervisor</th>" in report._repr_html_()
    with pytest.raises(AttributeError):
        report.cpus = 1  # type: ignore[misc]  # frozen


# --------------------------------------------------------------------------- unreachable


def test_a_refused_port_is_reported_and_does_not_fail_the_others():
    refused = tcp_uri(free_port())
    (fake, closed), elapsed = timed([FAKE, refused], timeout_s=5)
    assert_fake_host(fake)
    assert closed.uri == refused
    assert_unreachable(closed, "connection refused", "libvirtd runs on that host")
    assert closed.elapsed_s < 5 and elapsed < 5      # refused at once: no waiting


def test_no_driver_and_a_refused_port_are_reported():
    missing, refused = probe_hosts([NO_DRIVER, tcp_uri(free_port())], timeout_s=3)
    assert_unreachable(missing, "no driver for this URI")
    assert_unreachable(refused)


def test_a_silent_host_is_abandoned_at_the_deadline(silent_server):
    server = silent_server()
    timeout_s = 1.5
    (silent, fake), elapsed = timed([server.uri, FAKE], timeout_s=timeout_s)
    assert elapsed <= timeout_s + MARGIN_S
    assert_unreachable(silent, "no answer within 1.5 s (still connecting)", "timeout_s")
    assert timeout_s - 0.05 <= silent.elapsed_s <= timeout_s + MARGIN_S
    assert_fake_host(fake)
    assert fake.elapsed_s < timeout_s                # its answer was not held back
    assert len(server.accepted) == 1                 # libvirt did connect, then waited
    workers = [t for t in threading.enumerate() if t.name == f"kvmlab-probe-{server.uri}"]
    assert workers and all(t.daemon for t in workers)  # abandoned, never joined at exit


def test_silent_hosts_are_waited_for_at_the_same_time(silent_server):
    servers = [silent_server() for _ in range(3)]
    timeout_s = 1.5
    reports, elapsed = timed([s.uri for s in servers], timeout_s=timeout_s)
    assert elapsed < 2 * timeout_s                   # far from 3 x 1.5 s in a row
    assert elapsed <= timeout_s + MARGIN_S
    for report, server in zip(reports, servers, strict=True):
        assert report.uri == server.uri
        assert_unreachable(report, "no answer within 1.5 s")
        assert len(server.accepted) == 1


def test_a_host_stuck_after_connecting_says_what_it_was_doing():
    release = threading.Event()

    def stuck(conn):
        release.wait(30)
        return {"late": True}

    try:
        (report,), elapsed = timed([FAKE], timeout_s=0.5, probe=stuck)
    finally:
        release.set()                                # let the abandoned worker end
    assert elapsed <= 0.5 + MARGIN_S
    assert_unreachable(report, "no answer within 0.5 s (connected, but still running the "
                               "probe stuck())")


def test_a_hung_host_does_not_keep_the_program_from_exiting(silent_server):
    server = silent_server()
    script = ("from kvmlab.experiments.hosts import probe_hosts\n"
              f"[r] = probe_hosts([{server.uri!r}], timeout_s=0.5)\n"
              "print(r.reachable)\n")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
    assert time.monotonic() - started < 15           # the stuck worker thread did not hold it
    assert len(server.accepted) == 1                 # and it was stuck: the server stays silent


# --------------------------------------------------------------------------- order, duplicates


def test_reports_follow_the_order_of_the_uris():
    refused = tcp_uri(free_port())
    uris = [NO_DRIVER, FAKE, refused]
    reports = probe_hosts(uris, timeout_s=3)
    assert [r.uri for r in reports] == uris
    assert [r.reachable for r in reports] == [False, True, False]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([FAKE, NO_DRIVER, "nosuchdriver:///y", "refused"]),
                min_size=1, max_size=6))
def test_any_list_of_uris_gets_its_reports_in_the_same_order(names):
    refused = tcp_uri(free_port())
    uris = [refused if n == "refused" else n for n in names]
    reports = probe_hosts(uris, timeout_s=3)
    assert [r.uri for r in reports] == uris
    assert [r.reachable for r in reports] == [u == FAKE for u in uris]
    by_uri: dict[str, HostReport] = {}
    for report in reports:                            # a duplicate gets the one same report
        assert by_uri.setdefault(report.uri, report) is report


def test_a_duplicated_uri_is_probed_once():
    calls: list[str] = []
    lock = threading.Lock()

    def count(conn):
        with lock:
            calls.append(conn.getURI())
        return {"n": 1}

    reports = probe_hosts([FAKE, NO_DRIVER, FAKE, FAKE], probe=count)
    assert calls == [FAKE]
    assert [r.uri for r in reports] == [FAKE, NO_DRIVER, FAKE, FAKE]
    assert reports[0] is reports[2] is reports[3]


# --------------------------------------------------------------------------- custom probe


def test_a_custom_probe_lands_in_details():
    def guests(conn):
        return {"names": sorted(d.name() for d in conn.listAllDomains(0)),
                "uri": "not the report's"}

    [report] = probe_hosts([FAKE], probe=guests)
    assert report.reachable is True and report.error == ""
    assert report.details == {"names": ["test"], "uri": "not the report's"}
    assert report.uri == FAKE
    assert all(getattr(report, name) is None for name in SUMMARY_FIELDS)


def test_a_probe_that_raises_is_reported_not_raised():
    def broken(conn):
        raise KeyError("no such thing")

    fake, missing = probe_hosts([FAKE, NO_DRIVER], probe=broken)
    assert_unreachable(fake, "the probe broken() raised KeyError", "no such thing")
    assert_unreachable(missing, "no driver")


def test_a_probe_that_returns_no_mapping_is_reported():
    [report] = probe_hosts([FAKE], probe=lambda conn: [1, 2])
    assert_unreachable(report, "returned list, not a mapping")


def test_a_probe_may_raise_host_unavailable_like_the_tour():
    def closed(conn):
        raise HostUnavailable(FAKE, "could not read the node information", "open a new one")

    [report] = probe_hosts([FAKE], probe=closed)
    assert report.error == ("could not read the node information. What to do: open a new one.")


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(("uris", "rule"), [
    ([], "at least one host"),
    ((), "at least one host"),
    (FAKE, "not one string"),
    (None, "list of URIs"),
    ({FAKE}, "list of URIs"),
    ([FAKE, 42], "uris[1] is int 42"),
    ([FAKE, b"test:///default"], "every URI must be a string"),
    (["  "], "non-empty string"),
])
def test_bad_uris_are_refused_with_the_rule(uris, rule):
    with pytest.raises(ScenarioError, match=re.escape(rule)):
        probe_hosts(uris)


@pytest.mark.parametrize(("timeout_s", "rule"), [
    (0, "positive"), (-1.0, "positive"), (math.nan, "positive"), (math.inf, "finite"),
    ("5", "a number of seconds"), (None, "a number of seconds"), (True, "a number of seconds"),
])
def test_bad_timeouts_are_refused_with_the_rule(timeout_s, rule):
    with pytest.raises(ScenarioError, match=f"timeout_s must be .*{re.escape(rule)}"):
        probe_hosts([FAKE], timeout_s=timeout_s)


@given(st.floats(max_value=0) | st.integers(max_value=0))
def test_no_timeout_below_or_at_zero_is_accepted(timeout_s):
    with pytest.raises(ScenarioError, match="timeout_s must be a positive"):
        probe_hosts([FAKE], timeout_s=timeout_s)


def test_a_probe_must_be_callable():
    with pytest.raises(ScenarioError, match="probe must be a function"):
        probe_hosts([FAKE], probe={"cpus": 1})  # type: ignore[arg-type]


def test_an_integer_timeout_is_fine():
    [report] = probe_hosts([FAKE], timeout_s=2)
    assert report.reachable


# --------------------------------------------------------------------------- table


def test_the_table_shows_every_host_in_text_and_html():
    refused = tcp_uri(free_port())
    table = hosts_table(probe_hosts([FAKE, refused], timeout_s=3))
    assert isinstance(table, Table) and len(table) == 2
    lines = str(table).splitlines()
    assert lines[0].split() == list(TABLE_COLUMNS)
    assert lines[2].startswith(FAKE) and " TEST " in lines[2]
    assert lines[3].startswith(refused) and "connection refused" in lines[3]
    html = table._repr_html_()
    assert "<th>accelerator</th>" in html and "probe_hosts" in html


def test_the_table_of_a_custom_probe_shows_its_keys():
    reports = probe_hosts([FAKE, NO_DRIVER], probe=lambda conn: {"guests": 1, "error": "x"})
    table = hosts_table(reports)
    assert table.columns == ["uri", "reachable", "elapsed_s", "guests", "error"]
    assert [row.get("guests") for row in table] == [1, None]
    assert table[0]["error"] == ""                   # the report's own error, not the probe's
    assert hosts_table(reports, ["uri", "guests"]).columns == ["uri", "guests"]


def test_the_table_takes_only_reports():
    with pytest.raises(ScenarioError, match="row 1 is dict"):
        hosts_table([*probe_hosts([FAKE]), {"uri": FAKE}])
    with pytest.raises(ScenarioError, match="unknown column"):
        hosts_table(probe_hosts([FAKE]), ["uri", "colour"])
    assert str(hosts_table([])).splitlines()[0].split() == list(TABLE_COLUMNS)


# --------------------------------------------------------------------------- live


@pytest.mark.live
def test_a_live_host_and_an_unreachable_one(live_uri):
    refused = tcp_uri(free_port())
    (live, closed), elapsed = timed([live_uri, refused], timeout_s=10)
    assert elapsed <= 10 + MARGIN_S
    assert live.reachable is True, live.error
    assert live.uri == live_uri and live.error == ""
    assert live.hypervisor == "QEMU"
    assert live.cpus >= 1
    assert live.memory_bytes > 0
    assert live.accelerator in ("kvm", "tcg")        # what the capabilities offer
    assert re.fullmatch(r"\d+\.\d+\.\d+", live.libvirt_version or "")
    assert 0 <= live.domains_running <= live.domains_total
    assert live.networks >= 0 and live.pools >= 0
    assert_unreachable(closed, "connection refused")

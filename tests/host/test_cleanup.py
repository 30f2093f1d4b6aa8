"""Finding what kvmlab left behind, on libvirt's test driver (no real host needed)."""

import os

import pytest

from kvmlab.host.cleanup import Leftover, find_libvirt_leftovers
from kvmlab.host.connect import connection
from kvmlab.host.guest import owner_note

libvirt = pytest.importorskip("libvirt")


def domain_xml(name: str, description: str) -> str:
    return (f"<domain type='test'><name>{name}</name><memory>1024</memory>"
            f"<description>{description}</description><os><type>hvm</type></os></domain>")


def test_a_guest_names_the_process_that_owns_it():
    with connection("test:///default", write=True) as conn:
        mine = conn.defineXML(domain_xml("kvmlab-unit-mine", owner_note()))
        orphan = conn.defineXML(domain_xml("kvmlab-unit-orphan", "kvmlab guest; owner pid=1 "
                                           "boot=an-earlier-boot"))
        try:
            found = {item.name: item for item in find_libvirt_leftovers(conn)}
        finally:
            mine.undefine()
            orphan.undefine()
    assert "test" not in found                          # not a kvmlab- object
    assert (found["kvmlab-unit-mine"].in_use, found["kvmlab-unit-mine"].owner_pid) == (
        True, os.getpid())
    assert (found["kvmlab-unit-orphan"].in_use, found["kvmlab-unit-orphan"].owner_pid) == (
        False, None)
    assert f"in use by pid {os.getpid()}" in str(found["kvmlab-unit-mine"])


def test_the_owner_does_not_make_two_leftovers_differ():
    assert Leftover("files", "kvmlab-x", "here", owner_pid=1) == Leftover("files", "kvmlab-x",
                                                                          "here")


def test_only_folders_with_kvmlab_s_owner_record_are_listed_and_removed():
    from kvmlab.host.cleanup import find_host_leftovers
    from kvmlab.host.owner import OWNER_FILE, owned_tempdir, remove_dead_dirs, temp_root

    with owned_tempdir("unit") as mine:
        root = temp_root()
        foreign = root / "kvmlab-unit-not-ours"
        dead = root / "kvmlab-unit-dead"
        foreign.mkdir()
        dead.mkdir()
        (dead / OWNER_FILE).write_text("owner pid=1 start=1 boot=an-earlier-boot\n")
        try:
            found = {item.name: item for item in find_host_leftovers()}
            removed = remove_dead_dirs(root)
            assert foreign.exists() and mine.exists() and not dead.exists()
        finally:
            foreign.rmdir()
            import shutil
            shutil.rmtree(dead, ignore_errors=True)
    assert "kvmlab-unit-not-ours" not in found
    assert found[mine.name].in_use and found["kvmlab-unit-dead"].left_over
    assert removed == [dead]


def test_a_pool_without_an_owner_record_is_never_removed(tmp_path):
    from kvmlab.host.cleanup import remove_leftovers

    target = tmp_path / "kvmlab-unit-foreign"
    target.mkdir()
    (target / "precious").write_text("not kvmlab's")
    with connection("test:///default", write=True) as conn:
        pool = conn.storagePoolDefineXML(
            f"<pool type='dir'><name>kvmlab-unit-foreign</name><target><path>{target}</path>"
            "</target></pool>", 0)
        try:
            found = {item.name: item for item in find_libvirt_leftovers(conn)}
            assert found["kvmlab-unit-foreign"].unowned
            assert not found["kvmlab-unit-foreign"].left_over
            removed = remove_leftovers("test:///default", force=True)
            names = [p.name() for p in conn.listAllStoragePools()]
        finally:
            pool.undefine()
    assert "kvmlab-unit-foreign" in names and removed == []
    assert (target / "precious").exists()


def test_a_guest_past_its_deadline_is_stale_whoever_owns_it():
    from kvmlab.host.owner import stale_reason

    assert stale_reason(owner_note(deadline=1.0)) == "its deadline has passed"
    assert stale_reason(owner_note(deadline=4e9)) == ""


def test_a_clean_up_through_the_test_driver_never_touches_this_machine():
    """Even forced: a unit test's clean-up once removed a live run's staged guest files."""
    from kvmlab.host.cleanup import find_leftovers, remove_leftovers
    from kvmlab.host.owner import OWNER_FILE, owned_tempdir, temp_root

    dead = temp_root() / "kvmlab-unit-dead-test-driver"
    with owned_tempdir("unit") as mine:
        dead.mkdir()
        (dead / OWNER_FILE).write_text("owner pid=1 start=1 boot=an-earlier-boot\n")
        try:
            assert not {i.name for i in find_leftovers("test:///default")} & {mine.name,
                                                                             dead.name}
            remove_leftovers("test:///default", force=True)
            assert mine.exists() and dead.exists()
        finally:
            import shutil
            shutil.rmtree(dead, ignore_errors=True)


class _Domain:
    def __init__(self, name: str, description: str | None) -> None:
        self._name, self._description = name, description

    def name(self) -> str:
        return self._name

    def XMLDesc(self) -> str:  # noqa: N802 - libvirt's name
        if self._description is None:
            raise RuntimeError("Domain not found: no domain with matching name")
        return f"<domain><description>{self._description}</description></domain>"


class _Host:
    """A connection whose listing holds a guest that ends before its XML is read."""

    def __init__(self, domains: list[_Domain]) -> None:
        self.domains = domains

    def getURI(self) -> str:  # noqa: N802
        return "qemu:///system"

    def listAllDomains(self) -> list[_Domain]:  # noqa: N802
        return self.domains

    def listAllNetworks(self) -> list:  # noqa: N802
        return []

    def listAllStoragePools(self) -> list:  # noqa: N802
        return []

    def listAllSecrets(self) -> list:  # noqa: N802
        return []


def test_a_guest_that_ends_while_the_list_is_read_is_no_leftover():
    """It once showed as "no kvmlab owner record" in another test's list of leftovers."""
    from kvmlab.host.owner import owner_record

    found = find_libvirt_leftovers(_Host([_Domain("kvmlab-trial-gone", None),
                                          _Domain("kvmlab-cpu-here", f"kvmlab guest; "
                                                                     f"{owner_record()}")]))
    assert [(f.kind, f.name, f.in_use) for f in found] == [("domain", "kvmlab-cpu-here", True)]


def test_a_trace_in_tracefs_mounted_twice_is_one_leftover(tmp_path, monkeypatch):
    """tracefs is often mounted both at /sys/kernel/tracing and under debugfs."""
    from kvmlab.host import cleanup

    (tmp_path / "tracing" / "instances" / "kvmlab-trace-1-0").mkdir(parents=True)
    (tmp_path / "debug").mkdir()
    (tmp_path / "debug" / "tracing").symlink_to(tmp_path / "tracing")
    monkeypatch.setattr(cleanup, "TRACEFS", (tmp_path / "tracing", tmp_path / "debug" / "tracing"))
    found = cleanup._trace_instances()
    assert [(x.name, x.in_use) for x in found] == [("kvmlab-trace-1-0", False)]

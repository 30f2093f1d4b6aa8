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

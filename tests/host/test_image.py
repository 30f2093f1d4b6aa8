import gzip

import pytest

from kvmlab.host import image
from kvmlab.host.guest import parse_console


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("KVMLAB_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert image.cache_dir() == tmp_path / "kvmlab"
    monkeypatch.setenv("KVMLAB_CACHE_DIR", str(tmp_path / "c"))
    assert image.cache_dir() == tmp_path / "c"


def test_no_cached_image_in_an_empty_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("KVMLAB_CACHE_DIR", str(tmp_path))
    assert image.cached_image() is None


def test_init_runs_the_scenario_between_the_markers():
    init = image.init_script()
    steps = [image.BOOT_MARKER, image.BEGIN_MARKER, "sh /" + image.SCENARIO_PATH,
             image.END_MARKER, "poweroff"]
    positions = [init.index(step) for step in steps]
    assert positions == sorted(positions)
    assert "devtmpfs" in init                          # else /dev/ttyS0 is missing


def test_insmod_knows_the_dependency_order():
    order = image.NET_MODULES
    assert order.index("llc") < order.index("stp") < order.index("bridge")
    assert order.index("garp") < order.index("8021q") and order.index("mrp") < order.index("8021q")
    assert " ".join(order) in image.insmod_script()


def test_scenario_archive_adds_the_script():
    data = gzip.decompress(image.scenario_archive("echo 42"))
    assert b"kvmlab/scenario.sh" in data and b"echo 42" in data


def test_userland_holds_busybox_init_and_iproute2(tmp_path):
    pytest.importorskip("libvirt")
    entries = {name: (mode, data) for name, mode, data in image.userland_entries(None)}
    assert entries["init"][1].startswith(b"#!/bin/busybox sh")
    assert entries["bin/busybox"][1][:4] == b"\x7fELF"
    for tool in image.USERLAND_TOOLS:
        assert f"opt/iproute2/{tool}" in entries
    libc = [n for n in entries if n.endswith("/libc.so.6")]
    assert libc, "iproute2's shared libraries must come along"


@pytest.mark.parametrize(("console", "booted", "lines", "status"), [
    ("", False, [], None),
    ("KVMLAB-BOOTED\r\nKVMLAB-BEGIN\r\na=1\r\n", True, ["a=1"], None),
    ("KVMLAB-BOOTED\nKVMLAB-BEGIN\na\nb\nKVMLAB-END 3\n", True, ["a", "b"], 3),
])
def test_parse_console(console, booted, lines, status):
    out = parse_console(console)
    assert (out.booted, out.lines, out.exit_status) == (booted, lines, status)

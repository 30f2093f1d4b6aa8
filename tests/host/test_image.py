import gzip
import shutil

import pytest

from kvmlab.errors import ToolMissing
from kvmlab.host import ctool, image
from kvmlab.host.guest import parse_console
from tests.fakes import Recorder


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


def test_a_missing_program_is_a_missing_tool(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolMissing, match="dpkg-deb is not installed") as info:
        image._run(["dpkg-deb", "--version"])
    assert info.value.tool == "dpkg-deb"


def test_no_busybox_is_a_missing_tool(monkeypatch):
    monkeypatch.setattr(image.shutil, "which", lambda *_args, **_kw: "/nonexistent/busybox")
    with pytest.raises(ToolMissing, match="busybox-static"):
        image.userland_entries(None)


def test_no_compiler_is_a_missing_tool(monkeypatch, tmp_path):
    monkeypatch.setenv("KVMLAB_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(ctool.shutil, "which", lambda *_args, **_kw: None)
    with pytest.raises(ToolMissing, match="C compiler") as info:
        ctool.static_tool("kvmlab.network", "kvmlab-frames")
    assert "gcc" in info.value.remedy




def test_building_the_image_reports_its_steps(monkeypatch, tmp_path):
    if shutil.which("busybox") is None or shutil.which("ip") is None:
        pytest.skip("busybox or iproute2 is not installed")
    kernel = tmp_path / "vmlinuz-6.1.0-test"
    kernel.write_bytes(b"not really a kernel")
    monkeypatch.setenv("KVMLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KVMLAB_KERNEL", str(kernel))
    monkeypatch.delenv("KVMLAB_KERNEL_MODULES", raising=False)
    bar = Recorder()
    built = image.build_image(force=True, progress=bar)
    assert (bar.total, bar.done) == (image.BUILD_STEPS, image.BUILD_STEPS)
    assert any("initramfs" in note for note in bar.notes)
    assert built.kernel_release == "6.1.0-test" and image.cached_image() == built

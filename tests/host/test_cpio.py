"""The pure-Python newc writer, checked against GNU cpio reading it back."""

import gzip
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvmlab.host import cpio

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.", min_size=1, max_size=20)
names = names.filter(lambda n: n not in (".", ".."))


@pytest.mark.skipif(shutil.which("cpio") is None, reason="GNU cpio is not installed")
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.dictionaries(names, st.binary(max_size=300), min_size=1, max_size=6))
def test_gnu_cpio_extracts_exactly_what_was_written(tmp_path_factory, files):
    out = tmp_path_factory.mktemp("x")
    entries = [("d", cpio.DIR, b"")] + [(f"d/{n}", cpio.FILE, data) for n, data in files.items()]
    archive = gzip.decompress(cpio.gzip_archive(entries))
    done = subprocess.run(["cpio", "-id", "--quiet"], input=archive, cwd=out,
                          capture_output=True)
    assert done.returncode == 0, done.stderr
    assert {p.name: p.read_bytes() for p in (out / "d").iterdir()} == files


def test_members_are_aligned_and_the_archive_ends_with_the_trailer():
    data = cpio.newc_archive([("a", cpio.FILE, b"x" * 5), ("bb", cpio.EXEC, b"")])
    assert len(data) % 4 == 0
    assert data.count(b"070701") == 3
    assert data.rstrip(b"\0").endswith(b"TRAILER!!!")


def test_the_archive_is_reproducible():
    entries = [("f", cpio.FILE, b"same")]
    assert cpio.gzip_archive(entries) == cpio.gzip_archive(entries)

"""Shared fixtures. Live tests skip on a laptop without libvirt, but fail in CI."""

from __future__ import annotations

import os
import shutil

import pytest

from kvmlab.errors import HostUnavailable

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """With CI=true, a live or browser test that skips is reported as a failure."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and (item.get_closest_marker("live") is not None
                                     or item.get_closest_marker("browser") is not None):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"CI=true: a live or browser test may not skip ({reason})"


def require(condition: bool, reason: str) -> None:
    """Skip the test with ``reason`` unless ``condition`` holds (fails in CI)."""
    if not condition:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def live_uri() -> str:
    """The URI of a real local QEMU host, or a skip saying why there is none."""
    from kvmlab.host.connect import connect
    from kvmlab.host.guest import live_uri as default_live_uri

    uri = default_live_uri()
    require(shutil.which("qemu-system-x86_64") is not None,
            "QEMU is not installed (qemu-system-x86_64 not found); run `make test` to set up")
    try:
        connect(uri, write=True).close()
    except HostUnavailable as exc:
        pytest.skip(f"no live libvirt host: {exc}")
    return uri


@pytest.fixture(scope="session")
def guest_image(live_uri: str):
    """The cached tiny guest image (built if missing)."""
    from kvmlab.errors import ExperimentFailed, ToolMissing
    from kvmlab.host.image import build_image

    try:
        return build_image()
    except (ExperimentFailed, ToolMissing) as exc:
        pytest.skip(f"cannot build the guest image: {exc}")


@pytest.fixture
def no_leftovers(live_uri: str):
    """Assert that a test leaves no kvmlab- object behind on the live host.

    Guests (and their files) that another running kvmlab process owns are that process's
    business, not this test's: they are left out.
    """
    from kvmlab.host.cleanup import find_leftovers

    def ours(uri: str) -> set:
        return {item for item in find_leftovers(uri)
                if item.owner_pid is None or item.owner_pid == os.getpid()}

    before = ours(live_uri)
    yield
    after = ours(live_uri)
    assert after - before == set(), f"left behind: {sorted(map(str, after - before))}"

"""Every lab's ``run_on_host(scenario, *, uri=..., progress=...)`` with one bad argument:
a kvmlab error, never another exception, fast, and nothing made on any host.

libvirt itself is replaced by a stand-in that refuses every connection at once and
records the URI it was asked for (:class:`RefusingLibvirt`), so no example can reach a
real host; a bad scenario or a bad ``progress`` must be refused before any connection is
even tried. A folder that appears under kvmlab's temporary or staging folders fails the
example too.
"""

from __future__ import annotations

import os
import types
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvmlab.errors import HostUnavailable, KvmlabError, ScenarioError
from kvmlab.host.connect import import_libvirt
from kvmlab.host.guest import staging_root
from kvmlab.host.owner import temp_root
from kvmlab.lab import LABS, lab
from tests.fuzz.budget import check_refusal, within_budget
from tests.fuzz.strategies import NASTY, fuzz_settings, mutated, shipped

SECONDS = 1.0
"""The most CPU time one refused call may take."""

SHIPPED = {"cpu": "cpu-seed-example", "memory": "memory-trace",
           "storage": "storage-first-writes", "network": "net-seed-bridge"}
"""A scenario of each lab that loads (and would run): passed loaded, since some labs'
``run_on_host`` take scenarios and their JSON forms only, not names."""
PREFIXES = {"cpu": ("cpu-",), "memory": ("memory-",), "storage": ("storage-",),
            "network": ("net-", "vlan-")}

GOOD_URIS = [None, "test:///default", "qemu:///system", "qemu:///session"]
"""URIs that are fine as arguments (every connection is refused by the stand-in)."""
BAD_URIS = ["", " ", 5, 0, 1.5, True, b"qemu:///system", ["qemu:///system"],
            {"uri": "qemu:///system"}, "qemu+ssh://", "nosuch:///", "qemu://", "qemu:",
            "://", "qemu:///system\x00", "qemu+ssh://root@/system", "qemu+foo:///system",
            "qemu+tcp://[::1/system", "a" * 5000, "qemu:///system?socket=" + "x" * 300]
"""Wrong types and strings no libvirt driver accepts."""


class _Tqdmish:
    """A tqdm-like bar whose methods are not callable (it passes a hasattr check)."""

    update = 5
    set_postfix_str = "nope"


BAD_PROGRESS: list[Any] = [5, 0.5, "yes", "", [], {}, {"update": 1}, object(), print,
                           types.SimpleNamespace(update=lambda n=1: None),
                           types.SimpleNamespace(set_postfix_str=lambda s="": None)]
"""Not a bool, None nor a bar with ``update`` and ``set_postfix_str``."""
GOOD_PROGRESS: list[Any] = [None, False]


class RefusingLibvirt:
    """Stands in for ``libvirt.open*``: records each URI asked for, refuses at once."""

    def __init__(self, libvirt: Any) -> None:
        self.libvirt = libvirt
        self.asked: list[Any] = []

    def __call__(self, uri: Any = None, *more: Any) -> Any:
        self.asked.append(uri)
        raise self.libvirt.libvirtError("refused by the fuzz test's stand-in for libvirt")


@pytest.fixture
def refusing(monkeypatch: pytest.MonkeyPatch) -> RefusingLibvirt:
    libvirt = import_libvirt()
    stand_in = RefusingLibvirt(libvirt)
    for name in ("open", "openReadOnly", "openAuth"):
        monkeypatch.setattr(libvirt, name, stand_in)
    return stand_in


def _folders() -> set[Path]:
    """What kvmlab made in its temporary and staging folders."""
    found: set[Path] = set()
    for root in {temp_root(), staging_root("qemu:///session"), staging_root("qemu:///system")}:
        if root.is_dir():
            found |= {p for p in root.iterdir() if p.name.startswith("kvmlab-")}
    return found


def _mine(paths: set[Path]) -> set[Path]:
    """The folders among ``paths`` whose owner record names this process."""
    from kvmlab.host.owner import dir_owner

    return {p for p in paths if (o := dir_owner(p)) is not None and o.pid == os.getpid()}


def attempt(name: str, scenario: Any, uri: Any, progress: Any,
            refusing: RefusingLibvirt) -> KvmlabError:
    """Call the lab's ``run_on_host``; return the kvmlab error it raised (anything else, or
    no error at all, fails the example)."""
    refusing.asked.clear()
    before = _folders()
    with within_budget(seconds=SECONDS, mib=128):
        try:
            result = lab(name).run_on_host(scenario, uri=uri, progress=progress)
        except KvmlabError as exc:
            check_refusal(exc)
            error = exc
        else:
            pytest.fail(f"run_on_host ran with uri={uri!r}, progress={progress!r}: {result}")
    made = _mine(_folders() - before)
    assert not made, f"run_on_host left {sorted(map(str, made))}"
    return error


def _loaded(name: str) -> Any:
    return lab(name).load_scenario(SHIPPED[name])


def _scenario_loads(name: str, scenario: Any) -> bool:
    try:
        lab(name).load_scenario(scenario)
    except KvmlabError:
        return False
    return True


@pytest.mark.parametrize("name", LABS)
@fuzz_settings(60, deadline_s=None)
@given(data=st.data())
def test_a_bad_scenario_is_refused_before_any_connection(name, data, refusing):
    scenario = data.draw(st.one_of(
        mutated(data.draw(st.sampled_from([d for p in PREFIXES[name] for d in shipped(p)]))),
        st.sampled_from(NASTY), st.sampled_from([f"{PREFIXES[name][0]}no-such", "../x",
                                                 "/nonexistent.json", "/etc", ""])),
        label="scenario")
    if _scenario_loads(name, scenario):
        return                             # a mutation that is still a valid scenario
    uri = data.draw(st.sampled_from(GOOD_URIS), label="uri")
    progress = data.draw(st.sampled_from(GOOD_PROGRESS), label="progress")
    error = attempt(name, scenario, uri, progress, refusing)
    assert isinstance(error, ScenarioError), error
    assert refusing.asked == [], f"a connection to {refusing.asked} before refusing: {error}"


@pytest.mark.parametrize("name", LABS)
@fuzz_settings(40, deadline_s=None)
@given(uri=st.one_of(st.sampled_from(BAD_URIS), st.text(max_size=30), st.integers()),
       progress=st.sampled_from(GOOD_PROGRESS))
def test_a_bad_uri_is_one_kvmlab_error(name, uri, progress, refusing):
    """Any kvmlab error for a URI libvirt refuses; a URI that is not a non-empty string
    (5, '', 0, False) is refused before a connection is tried, never read as the default."""
    error = attempt(name, _loaded(name), uri, progress, refusing)
    assert isinstance(error, ScenarioError | HostUnavailable), error
    if not (isinstance(uri, str) and uri.strip()):
        assert refusing.asked == [], f"uri={uri!r}: a connection to {refusing.asked} was tried"


@pytest.mark.parametrize("name", LABS)
@fuzz_settings(30, deadline_s=None)
@given(progress=st.sampled_from(BAD_PROGRESS), uri=st.sampled_from([None, "qemu:///system"]))
def test_a_bad_progress_is_refused_before_any_connection(name, progress, uri, refusing):
    error = attempt(name, _loaded(name), uri, progress, refusing)
    assert isinstance(error, ScenarioError), error
    assert "progress" in str(error), error
    assert refusing.asked == [], f"a connection to {refusing.asked} before refusing: {error}"


@pytest.mark.parametrize("name", LABS)
def test_a_bar_whose_methods_cannot_be_called_is_refused_before_any_connection(name,
                                                                              refusing):
    error = attempt(name, _loaded(name), None, _Tqdmish(), refusing)
    assert isinstance(error, ScenarioError) and "progress" in str(error), error
    assert refusing.asked == [], f"a connection to {refusing.asked} before refusing: {error}"

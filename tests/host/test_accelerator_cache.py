"""The KVM/TCG choice is cached per target host: fake libvirt connections, no real host."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kvmlab.host.guest as guest
import kvmlab.host.staging as staging
from kvmlab.errors import ExperimentFailed
from kvmlab.host.staging import HOST_ANSWERS_KEPT, host_key, keep_host_answer, read_host_answers

IMAGE = SimpleNamespace(kernel_release="6.1.0-test-cloud-amd64")
LOCAL = "qemu:///system"
SELF_SSH = "qemu+ssh://root@127.0.0.1:2222/system"     # this machine, through ssh
LAB2 = "qemu+ssh://root@lab2/system"


@dataclass
class Host:
    """A fake libvirt host: its name, UUID, whether libvirt offers KVM, whether it boots."""

    name: str
    uuid: str
    offers_kvm: bool
    kvm_boots: bool

    def getHostname(self) -> str:  # noqa: N802 - libvirt's name
        return self.name

    def getCapabilities(self) -> str:  # noqa: N802 - libvirt's name
        domain = "<domain type='qemu'/>" + ("<domain type='kvm'/>" if self.offers_kvm else "")
        return (f"<capabilities><host><uuid>{self.uuid}</uuid></host><guest>"
                f"<arch name='x86_64'>{domain}</arch></guest></capabilities>")


class World:
    """URIs pointing at fake hosts, this machine's boot id, and the trial boots made."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
        self.me = Host("me", "uuid-me", offers_kvm=True, kvm_boots=True)
        # this machine through ssh: the same name and UUID, but its boot is not known
        self.hosts = {LOCAL: self.me, SELF_SSH: Host("me", "uuid-me", True, True),
                      LAB2: Host("lab2", "uuid-lab2", offers_kvm=True, kvm_boots=False)}
        self.boot = "boot-1"
        self.trials: list[str] = []
        monkeypatch.setattr(guest, "cache_dir", lambda: cache)
        monkeypatch.setattr(staging, "boot_id", lambda: self.boot)
        monkeypatch.setattr(guest, "trial_boot", self.trial_boot)

    def trial_boot(self, uri: str, image: object, accel: str) -> float:
        self.trials.append(uri)
        if not self.hosts[uri].kvm_boots:
            raise ExperimentFailed("guest kvmlab-trial-x (kvm) did not print 'KVMLAB-BOOTED'")
        return 0.4

    def truth(self, uri: str) -> str:
        host = self.hosts[uri]
        return "kvm" if host.offers_kvm and host.kvm_boots else "tcg"

    def choose(self, uri: str, **kw: bool) -> str:
        return guest.choose_accelerator(uri, IMAGE, conn=self.hosts[uri], **kw).accel


@pytest.fixture
def world(monkeypatch, tmp_path):
    return World(monkeypatch, tmp_path)


def world_cache(world: World) -> Path:
    return guest.cache_dir() / "accelerator.json"


def test_a_remote_host_s_answer_is_never_taken_for_this_machine_s(world):
    assert world.choose(LAB2) == "tcg"                # lab2's /dev/kvm cannot boot a guest
    assert world.choose(LOCAL) == "kvm"               # not lab2's answer: a trial of its own
    assert world.trials == [LAB2, LOCAL]
    assert (world.choose(LAB2), world.choose(LOCAL)) == ("tcg", "kvm")     # both cached
    assert world.trials == [LAB2, LOCAL]
    saved = json.loads(world_cache(world).read_text())["hosts"]
    assert sorted(json.loads(k)["host"] for k in saved) == ["lab2", "me"]


def test_this_machine_through_ssh_is_asked_apart_from_its_local_socket(world):
    world.me.kvm_boots = False
    assert world.choose(LOCAL) == "tcg"
    assert world.choose(SELF_SSH) == "kvm"    # not the local socket's answer: its own trial
    assert world.trials == [LOCAL, SELF_SSH]


def test_a_reboot_of_this_machine_asks_again(world):
    assert world.choose(LOCAL) == "kvm"
    world.me.kvm_boots = False                # a kernel update broke KVM
    world.boot = "boot-2"
    assert world.choose(LOCAL) == "tcg"
    assert world.trials == [LOCAL, LOCAL]


def test_a_uri_that_now_reaches_another_host_asks_again(world):
    assert world.choose(LAB2) == "tcg"
    world.hosts[LAB2] = Host("lab2-new", "uuid-new", offers_kvm=True, kvm_boots=True)
    assert world.choose(LAB2) == "kvm"
    assert world.trials == [LAB2, LAB2]


def test_no_kvm_offered_needs_no_trial_and_recheck_asks_again(world):
    world.hosts[LAB2].offers_kvm = False
    choice = guest.choose_accelerator(LAB2, IMAGE, conn=world.hosts[LAB2])
    assert choice.accel == "tcg" and "offers no KVM" in choice.reason and world.trials == []
    world.hosts[LAB2].offers_kvm = world.hosts[LAB2].kvm_boots = True
    assert world.choose(LAB2) == "tcg"                        # cached
    assert world.choose(LAB2, recheck=True) == "kvm"          # kvmlab doctor's way
    assert world.trials == [LAB2]


@pytest.mark.parametrize("old", ['{"key": "qemu:///system|boot-1|6.1", "choice": '
                                 '{"accel": "tcg", "reason": "r", "trial_boot_s": null}}',
                                 "not json", '{"hosts": []}',
                                 '{"hosts": {"k": {"accel": "maybe"}}}'])
def test_an_older_or_broken_cache_file_is_read_as_empty(world, old):
    world_cache(world).write_text(old)
    assert world.choose(LOCAL) == "kvm" and world.trials == [LOCAL]
    assert len(json.loads(world_cache(world).read_text())["hosts"]) == 1


def test_the_key_names_the_host_its_uuid_the_mode_and_the_boot(monkeypatch):
    monkeypatch.setattr(staging, "boot_id", lambda: "boot-x")
    host = Host("lab2", "uuid-2", offers_kvm=True, kvm_boots=True)
    remote = json.loads(host_key("qemu+ssh://root@lab2/session", host, "6.1"))
    assert remote == {"host": "lab2", "host_uuid": "uuid-2", "mode": "/session",
                      "boot": "uri=qemu+ssh://root@lab2/session", "kernel": "6.1"}
    assert json.loads(host_key("qemu+unix:///system?socket=/s", host, "6.1"))["boot"] == "boot-x"


def test_the_cache_keeps_the_newest_hosts_only(tmp_path):
    memo = tmp_path / "accelerator.json"
    for i in range(HOST_ANSWERS_KEPT + 3):
        keep_host_answer(memo, f"k{i}", {"accel": "tcg", "reason": str(i)})
    keep_host_answer(memo, "k5", {"accel": "kvm", "reason": "again"})
    kept = read_host_answers(memo)
    assert len(kept) == HOST_ANSWERS_KEPT and list(kept)[-1] == "k5"
    assert "k0" not in kept and kept["k5"]["accel"] == "kvm"
    assert [p.name for p in tmp_path.iterdir()] == ["accelerator.json"]    # no temp file left


EVENTS = st.lists(st.one_of(
    st.tuples(st.just("ask"), st.sampled_from([LOCAL, SELF_SSH, LAB2])),
    st.tuples(st.just("reboot"), st.booleans()),          # this machine: KVM works after?
    st.tuples(st.just("repoint"), st.booleans())),        # LAB2 now names another machine
    max_size=25)


@settings(max_examples=60, deadline=None)
@given(EVENTS)
def test_every_answer_is_the_one_of_the_host_behind_the_uri_with_one_trial_per_host_boot(
        events):
    with pytest.MonkeyPatch.context() as mp, tempfile.TemporaryDirectory() as cache:
        world = World(mp, Path(cache))
        boots = 1
        machines = 0
        distinct = set()
        for kind, arg in events:
            if kind == "ask":
                assert world.choose(arg) == world.truth(arg)
                host = world.hosts[arg]
                if host.offers_kvm:
                    distinct.add((host.name, world.boot if arg == LOCAL else arg))
            elif kind == "reboot":
                boots += 1
                world.boot = f"boot-{boots}"
                world.me.kvm_boots = arg      # (through ssh its boot is not known)
            else:
                machines += 1
                world.hosts[LAB2] = Host(f"lab2-{machines}", f"uuid-{machines}",
                                         offers_kvm=True, kvm_boots=arg)
        assert len(world.trials) == len(distinct)

"""Other work on the host (``kvmlab.cpu.noise``): in the ``linux`` model and on this host."""

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmlab.cpu import agreement as agreement_module
from kvmlab.cpu import linux, recordings
from kvmlab.cpu.agreement import agreement, recorded_repetitions, spread
from kvmlab.cpu.linux import simulate_linux
from kvmlab.cpu.noise import MAX_NOISE_PCPUS, HostNoise, NoiseProcess
from kvmlab.cpu.result import CpuResult
from kvmlab.cpu.scenario import CpuScenario
from kvmlab.cpu.twin import run_on_host
from kvmlab.errors import ScenarioError

ALONE = CpuScenario.from_dict({"pcpus": 2, "duration_s": 2,
                               "vms": [{"name": "a", "vcpus": 2}]})


@settings(max_examples=60, deadline=None)
@given(rate=st.floats(0, 1000), burst=st.floats(0.001, 100))
def test_noise_is_refused_exactly_when_it_takes_more_than_half_a_pcpu(rate, burst):
    load = round(rate * burst / 1000, 6)
    if load > MAX_NOISE_PCPUS:
        with pytest.raises(ScenarioError, match=r"at most 0\.5 is noise"):
            HostNoise(rate, burst)
    else:
        assert HostNoise(rate, burst).load_pcpus == load


@pytest.mark.parametrize(("kwargs", "rule"), [
    ({"bursts_per_s": -1}, "bursts_per_s must be a number from 0 to 1000"),
    ({"bursts_per_s": "many"}, "bursts_per_s must be a number"),
    ({"bursts_per_s": True}, "bursts_per_s must be a number"),
    ({"burst_ms": 0}, "burst_ms must be over 0"),
    ({"burst_ms": 500}, "burst_ms must be a number from 0 to 100")])
def test_bad_noise_names_the_rule(kwargs, rule):
    with pytest.raises(ScenarioError, match=rule):
        HostNoise(**kwargs)


def test_only_host_noise_is_taken():
    with pytest.raises(ScenarioError, match="noise must be a HostNoise, not dict"):
        simulate_linux(ALONE, noise={"bursts_per_s": 5})
    with pytest.raises(ScenarioError, match="noise must be a HostNoise, not int"):
        run_on_host(ALONE, noise=5)
    with pytest.raises(ScenarioError, match="noise runs on this machine"):
        run_on_host(ALONE, uri="qemu+ssh://elsewhere/system", noise=HostNoise(5))


def test_the_noise_takes_its_cpu_time_from_the_guests():
    """A VM with a vCPU per pCPU has them all but what the noise and its main loop take."""
    quiet = simulate_linux(ALONE, seed=1)
    noise = HostNoise(bursts_per_s=100, burst_ms=2)          # 0.2 pCPU
    noisy = simulate_linux(ALONE, seed=1, noise=noise)
    lost = sum(v.run_s for v in quiet.vcpus) - sum(v.run_s for v in noisy.vcpus)
    assert lost / ALONE.duration_s == pytest.approx(noise.load_pcpus, abs=0.05)
    assert noisy.provenance["noise"] == {"bursts_per_s": 100, "burst_ms": 2}
    assert quiet.provenance["noise"] == {"bursts_per_s": 0.0, "burst_ms": 1.4}
    again = simulate_linux(ALONE, seed=1, noise=noise)
    assert again.vcpus == noisy.vcpus                          # the same seed, the same run


def test_no_vm_owes_its_share_to_its_place_in_the_scenario():
    """Three VMs alike: over seeds each is first to lose about as often (the model sets
    them up in an order the seed picks)."""
    scenario = recorded_repetitions("cpu-overcommit-3x")[0].scenario.with_duration(1.5)
    losers = [min(r.vcpus, key=lambda v: v.run_s).vm
              for r in (simulate_linux(scenario, seed=s) for s in range(12))]
    assert len(set(losers)) == 3, losers


def test_noise_ends_lock_ins_in_the_model():
    """The host's finding (kvmlab.cpu.noise): with bursts of other work the VMs of
    cpu-overcommit-3x come closer; the same seeds with and without."""
    scenario = recorded_repetitions("cpu-overcommit-3x")[0].scenario.with_duration(3)
    quiet = statistics.fmean(spread(simulate_linux(scenario, seed=s)) for s in range(6))
    noisy = statistics.fmean(spread(simulate_linux(scenario, seed=s, noise=HostNoise(40)))
                             for s in range(6))
    assert noisy < quiet, (noisy, quiet)


ONE_PCPU = CpuScenario.from_dict({"name": "two-on-one", "pcpus": 1, "duration_s": 4,
                                  "vms": [{"name": "a", "vcpus": 1}, {"name": "b", "vcpus": 1}]})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_in_the_machine_group_the_guests_share_one_weight_against_other_work(seed):
    """Noise asking for 0.45 of the one pCPU. Beside two VM groups of 1024 each it gets at
    most a third while the three compete; beside libvirt's machine group, which holds both
    VMs, a half: enough for all it asks. The same seed, the same bursts."""
    noise = HostNoise(bursts_per_s=5, burst_ms=90)
    apart, together = (simulate_linux(ONE_PCPU, seed=seed, noise=noise, machine_group=mg)
                       for mg in (False, True))
    guests = [sum(v.run_share for v in r.vcpus) for r in (apart, together)]
    assert guests[0] >= 0.62                      # the noise capped near a third
    assert guests[1] < guests[0] - 0.03, guests
    assert together.provenance["machine_group"] and not apart.provenance["machine_group"]


def test_the_machine_group_is_the_only_guest_entity_at_the_root():
    scenario = recorded_repetitions("cpu-overcommit-3x")[0].scenario.with_duration(0.5)
    host = linux._LinuxHost(scenario, 0, linux.Kernel(), linux.QemuThreads(), "nested",
                            0.2, False, HostNoise(50), machine_group=True)
    host.run()
    at_root = {se.name.split("@")[0] for cpu in host.cpus
               for se in host.root.rq(cpu.index).entities}
    assert at_root <= {"machine", "host/noise"}
    assert all(t.levels[cpu][-1][1].name.startswith("machine@")
               for t in host.threads for cpu in t.levels)


def test_a_machine_group_needs_groups():
    with pytest.raises(ScenarioError, match="machine_group needs the VMs' groups"):
        simulate_linux(ALONE, layout="none", machine_group=True)
    with pytest.raises(ScenarioError, match="for the linux scheduler, not 'fair'"):
        agreement("cpu-seed-example", scheduler="fair", seeds=1, machine_group=True)


def test_the_agreement_gives_the_model_the_noise_the_runs_had(monkeypatch):
    seen = []
    real = agreement_module.simulate_linux

    def spy(*args, **kwargs):
        seen.append(kwargs["noise"])
        return real(*args, **kwargs)

    monkeypatch.setattr(agreement_module, "simulate_linux", spy)
    run = simulate_linux(ALONE.with_duration(0.3), seed=0, noise=HostNoise(7))
    agreement("cpu-seed-example", seeds=1, repetitions=[run], duration_s=0.3)
    assert seen == [HostNoise(7)]
    old = CpuResult.from_dict({**run.to_dict(), "provenance": {}})      # before noise existed
    agreement("cpu-seed-example", seeds=1, repetitions=[old], duration_s=0.3)
    assert seen[-1] == HostNoise()


def test_runs_with_noise_are_recorded_apart(monkeypatch, tmp_path):
    calls = []

    def fake_run(scenario, **kwargs):
        calls.append(kwargs["noise"])
        return simulate_linux(scenario.with_duration(0.2), seed=0)

    monkeypatch.setattr("kvmlab.cpu.twin.run_on_host", fake_run)
    paths = recordings.record_repetitions(["cpu-no-overcommit"], 2, into=tmp_path,
                                          noise=HostNoise(20))
    assert [p.name for p in paths] == ["noise-cpu-no-overcommit.json",
                                       "noise-cpu-no-overcommit.r2.json"]
    assert calls == [HostNoise(20)] * 2
    quiet = recordings.record_repetitions(["cpu-no-overcommit"], 1, into=tmp_path)
    assert [p.name for p in quiet] == ["cpu-no-overcommit.json"]


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.live
@pytest.mark.alone
def test_the_noise_process_takes_what_it_is_asked_for_and_ends():
    """It measures CPU time: alone, with nothing else running beside it."""
    noise = HostNoise(bursts_per_s=100, burst_ms=2)          # 0.2 pCPU
    with NoiseProcess(noise) as proc:
        pid = proc._proc.pid
        start = _cpu_s(pid)
        time.sleep(2)
        used = (_cpu_s(pid) - start) / 2
    assert used == pytest.approx(noise.load_pcpus, abs=0.08)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    with NoiseProcess(HostNoise()) as idle:                  # no noise: no process
        assert not idle.alive


def test_a_killed_owner_takes_its_noise_process_along():
    owner = subprocess.Popen([sys.executable, "-c",
                              "import time; from kvmlab.cpu.noise import HostNoise, NoiseProcess\n"
                              "with NoiseProcess(HostNoise(50, 1)):\n    time.sleep(60)"])
    children = Path(f"/proc/{owner.pid}/task/{owner.pid}/children")
    deadline = time.monotonic() + 30
    while not children.read_text().split() and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = [int(p) for p in children.read_text().split()]
    assert pids
    owner.kill()
    owner.wait()
    deadline = time.monotonic() + 5
    while any(Path(f"/proc/{p}").exists() for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(Path(f"/proc/{p}").exists() for p in pids)

"""The real balloon without a host: its scenario's rules, the model, the comparison, the
guest's output parsed, the recording, the command and the explanation of a plan."""

import json
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvmlab import memory
from kvmlab.cli import main
from kvmlab.errors import ScenarioError
from kvmlab.host.image import BALLOON_MODULES, contents_key, insmod_script
from kvmlab.memory.balloonrun import (
    TOLERANCE_MIB,
    BalloonRunResult,
    compare_balloon_runs,
    explain_fit,
)
from kvmlab.memory.balloonscenario import (
    MAX_GUEST_MIB,
    MIN_GUEST_MIB,
    BalloonRunScenario,
    floor_mib,
)
from kvmlab.memory.balloontwin import (
    _Reader,
    balloon_features,
    balloon_script,
    check_balloon_options,
    parse_meminfo_lines,
    vm_rss_kib,
    with_balloon_options,
)
from kvmlab.memory.model import balloon_plan, predict_balloon_run
from kvmlab.memory.scenario import BalloonGuest

RECORDINGS = ["memory-balloon-live", "memory-balloon-live-deflate"]


@st.composite
def runs(draw):
    memory_mib = draw(st.integers(MIN_GUEST_MIB, MAX_GUEST_MIB))
    targets = draw(st.lists(st.integers(floor_mib(memory_mib), memory_mib), min_size=1,
                            max_size=8))
    return BalloonRunScenario(memory_mib, tuple(targets), draw(st.booleans()),
                              draw(st.booleans()))


# -- the scenario's rules ---------------------------------------------------------------
@given(runs())
def test_every_target_from_the_floor_to_the_maximum_is_a_scenario(s):
    assert BalloonRunScenario.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    assert all(0 <= b <= s.memory_mib - floor_mib(s.memory_mib) for b in s.balloons_mib())


@given(st.integers(MIN_GUEST_MIB, MAX_GUEST_MIB), st.integers(1, 4096))
def test_a_target_above_the_guest_s_maximum_is_refused(memory_mib, above):
    with pytest.raises(ScenarioError, match="above the guest's maximum memory"):
        BalloonRunScenario(memory_mib, (memory_mib + above,))


@given(st.integers(MIN_GUEST_MIB, MAX_GUEST_MIB), st.integers(1, 90))
def test_a_target_below_the_floor_is_refused(memory_mib, below):
    with pytest.raises(ScenarioError, match=r"below the floor .* to stay alive"):
        BalloonRunScenario(memory_mib, (floor_mib(memory_mib) - below,))


@pytest.mark.parametrize(("data", "rule"), [
    ({"memory_mib": 64}, "memory_mib"),
    ({"memory_mib": 4096}, "memory_mib"),
    ({"targets_mib": []}, "targets_mib"),
    ({"targets_mib": [200.5]}, "balloon target"),
    ({"deflate_on_oom": "yes"}, "deflate_on_oom"),
    ({"settle_s": 0}, "settle_s"),
    ({"memory_mb": 256}, "did you mean 'memory_mib'"),
    ({"kind": "balloon"}, "not 'balloon'"),
])
def test_bad_scenarios_name_the_rule(data, rule):
    with pytest.raises(ScenarioError, match=rule):
        BalloonRunScenario.from_dict(data)


def test_shipped_balloon_runs_load_by_name():
    for name in RECORDINGS:
        s = memory.load_scenario(name)
        assert isinstance(s, BalloonRunScenario) and s.name == name and s.description
        assert memory.load_scenario(s.to_dict()) == s
        shrinks = [b for b in s.balloons_mib() if b > 0]
        assert len(set(shrinks)) >= 2 and s.balloons_mib()[-1] == 0


# -- the model -------------------------------------------------------------------------
@given(runs())
def test_the_model_follows_the_balloon(s):
    r = predict_balloon_run(s)
    start, grown, previous = r.start, 0, 0
    for step, balloon in zip(r.steps, s.balloons_mib(), strict=True):
        grown += max(0, balloon - previous)
        previous = balloon
        assert step.actual_mib == step.target_mib == s.memory_mib - balloon
        dropped = 0 if s.deflate_on_oom else balloon
        assert step.memtotal_mib == pytest.approx(start.memtotal_mib - dropped)
        assert step.available_mib == step.memtotal_mib
        assert step.memavailable_mib == pytest.approx(start.memavailable_mib - balloon)
        assert step.usable_mib == step.memavailable_mib
        assert step.rss_high_mib == start.rss_high_mib
        if s.free_page_reporting:
            assert step.rss_low_mib is None
        else:
            assert step.rss_low_mib == pytest.approx(start.rss_high_mib - grown)


@given(runs())
def test_a_run_agrees_with_itself_and_not_with_a_guest_that_kept_its_memory(s):
    r = predict_balloon_run(s)
    assert compare_balloon_runs(r, r).max_error == 0.0
    stuck = replace(r, steps=tuple(replace(x, actual_mib=float(s.memory_mib))
                                   for x in r.steps))
    c = compare_balloon_runs(r, stuck)
    assert c.agrees == (max(s.balloons_mib()) <= TOLERANCE_MIB)


# -- against the recordings --------------------------------------------------------------
@pytest.mark.parametrize("name", RECORDINGS)
def test_the_model_agrees_with_the_recorded_balloon(name):
    measured = memory.recorded_result(name)
    assert isinstance(measured, BalloonRunResult) and measured.source == "measured"
    for key in ("uri", "accelerator", "guest_kernel", "date", "balloon_features", "rss_from"):
        assert measured.provenance[key], key
    c = memory.compare(memory.simulate(measured.scenario), measured)
    assert c.agrees, c.table()
    assert c.simulated.start == measured.start           # put on the measured start
    assert c.to_dict()["steps"][0]["target_mib"] == measured.scenario.targets_mib[0]
    assert c.plot() is not None and "agrees: True" in c.table()


def test_the_recordings_show_what_deflate_on_oom_changes():
    plain = memory.recorded_result("memory-balloon-live")
    deflate = memory.recorded_result("memory-balloon-live-deflate")
    biggest = max(range(len(plain.steps)), key=lambda i: plain.scenario.balloons_mib()[i])
    balloon = plain.scenario.balloons_mib()[biggest]
    assert plain.start.memtotal_mib - plain.steps[biggest].memtotal_mib == pytest.approx(balloon)
    assert deflate.start.memtotal_mib == deflate.steps[biggest].memtotal_mib
    assert "DEFLATE_ON_OOM" in deflate.provenance["balloon_features"]
    assert "DEFLATE_ON_OOM" not in plain.provenance["balloon_features"]


@pytest.mark.parametrize(("field", "by", "agrees"), [
    ("memtotal_mib", TOLERANCE_MIB / 2, True), ("memtotal_mib", TOLERANCE_MIB + 2, False),
    ("memavailable_mib", -(TOLERANCE_MIB + 2), False), ("actual_mib", 8, False),
    ("rss_mib", TOLERANCE_MIB / 2, True),
    ("rss_mib", TOLERANCE_MIB + 1, False),     # RSS rose above where it started
])
def test_a_measurement_off_by_more_than_the_tolerance_disagrees(field, by, agrees):
    measured = memory.recorded_result("memory-balloon-live")
    last = measured.steps[-1]
    base = measured.start.rss_mib if field == "rss_mib" else getattr(last, field)
    off = replace(measured, steps=(*measured.steps[:-1], replace(last, **{field: base + by})))
    c = memory.compare(memory.simulate(measured.scenario), off)
    assert c.agrees is agrees, c.table()


def test_runs_of_different_scenarios_are_not_compared():
    a = predict_balloon_run(BalloonRunScenario(256, (192,)))
    b = predict_balloon_run(BalloonRunScenario(256, (128,)))
    with pytest.raises(ScenarioError, match="different scenarios"):
        memory.compare(a, b)
    with pytest.raises(ScenarioError, match="two BalloonRunResult"):
        memory.compare(a, memory.simulate("memory-balloon-three-guests"))


# -- what the guest and the host print ----------------------------------------------------
def test_the_guest_s_lines_and_the_host_s_status_are_read():
    console = "KVMLAB-BEGIN\r\nfeatures=0100\r\nmeminfo 1 223632 183904 \r\nmeminfo 2 1 2\n"
    assert parse_meminfo_lines(console) == [(1, 223632, 183904), (2, 1, 2)]
    assert parse_meminfo_lines("meminfo x 1 2\n") == []
    assert balloon_features("0100000000000000000000000000010010") == ["STATS_VQ"]
    assert vm_rss_kib("VmPeak:\t 1 kB\nVmRSS:\t  42 kB\n") == 42
    with pytest.raises(Exception, match="VmRSS"):
        vm_rss_kib("VmPeak:\t 1 kB\n")


def test_the_guest_loads_the_balloon_driver_bundled_in_its_image():
    assert "kvmlab-insmod balloon" in balloon_script()
    assert BALLOON_MODULES[-1] == "virtio_balloon"
    assert " ".join(BALLOON_MODULES) in insmod_script()
    assert "virtio_balloon" in contents_key()      # a cached image without it is rebuilt
    assert BALLOON_MODULES.index("virtio_pci") > BALLOON_MODULES.index("virtio")


def test_balloon_options_reach_the_domain_s_description():
    xml = "<domain><devices><memballoon model='virtio'/></devices></domain>"
    opts = BalloonRunScenario(deflate_on_oom=True, free_page_reporting=True).balloon_options()
    out = with_balloon_options(xml, check_balloon_options(opts))
    assert 'autodeflate="on"' in out and 'freePageReporting="on"' in out
    assert with_balloon_options(xml, {}) == xml
    for bad, rule in (({"autodeflate": "yes"}, "'on' or 'off'"), ({"x": "on"}, "not one of"),
                      ("on", "mapping")):
        with pytest.raises(ScenarioError, match=rule):
            check_balloon_options(bad)


# -- a plan of several guests, explained ---------------------------------------------------
@given(st.lists(st.tuples(st.integers(2, 8192), st.integers(0, 100)), min_size=1, max_size=5),
       st.integers(1, 20000))
def test_a_plan_says_why_it_fits_or_not(guests, host_mib):
    plan = balloon_plan(host_mib, [BalloonGuest(f"g{i}", m, (m - 1) * pct // 100)
                                   for i, (m, pct) in enumerate(guests)])
    why = explain_fit(plan)
    assert why.startswith("It fits" if plan.fits else "It does not fit")
    assert f"may still use {plan.needed_mib} MiB" in why
    if not plan.fits:
        assert f"{plan.needed_mib - plan.host_mib} MiB more than the host's" in why


# -- the command ---------------------------------------------------------------------------
def test_the_balloon_command_prints_the_model_and_explains_a_plan(capsys):
    assert main(["memory", "balloon", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"]["scenario"]["name"] == "memory-balloon-live"
    assert [s["actual_mib"] for s in out["model"]["steps"]] == [192, 128, 224, 256]
    assert main(["memory", "balloon", "memory-balloon-three-guests"]) == 0
    assert capsys.readouterr().out.startswith("It does not fit: the balloons take back 3072")


@pytest.mark.parametrize(("argv", "rule"), [
    (["memory", "balloon", "--record", "mine"], "add --run"),
    (["memory", "balloon", "memory-trace"], "not a balloon scenario"),
    (["memory", "balloon", "memory-balloon-three-guests", "--run"], "only be simulated"),
])
def test_the_balloon_command_refuses_plainly(capsys, argv, rule):
    assert main(argv) == 2
    assert rule in capsys.readouterr().err


class _Console:
    """A guest that prints one meminfo line per sleep, with a dip at line 3."""

    def __init__(self, avail_kib):
        self.avail = avail_kib
        self.printed = 1
        self.name = "kvmlab-test"

    def console(self):
        return "".join(f"meminfo {n} 190000 {self.avail(n)}\n"
                       for n in range(1, self.printed + 1))

    def sleep_watching(self, _seconds):
        self.printed += 1

    def local_qemu_pid(self):
        return None


class _Domain:
    def memoryStats(self):  # noqa: N802 (libvirt's name)
        return {"actual": 229376, "available": 190000, "usable": 140000, "rss": 220000}


@pytest.mark.parametrize("dip_at", [2, 3, 4])
def test_a_step_takes_two_lines_that_agree_not_a_momentary_dip(dip_at):
    guest = _Console(lambda n: 14_500 if n == dip_at else 144_000 + n)
    step = _Reader(guest, _Domain()).step(224, settle_s=1)
    assert step.memavailable_mib == pytest.approx(144_000 / 1024, abs=0.1)

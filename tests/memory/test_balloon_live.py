"""A real guest's balloon, inflated to two sizes and deflated through two, against the model
(marked live): libvirt's ``actual``, the guest's ``MemTotal``/``MemAvailable``, the balloon's
statistics and the host's RSS of QEMU, each within the tolerance; nothing left behind, also
when the run is interrupted."""

import json

import pytest

from kvmlab.memory import compare, load_scenario, run_on_host, simulate
from kvmlab.memory.balloonrun import TOLERANCE_MIB, BalloonRunResult
from tests.fakes import Recorder

pytestmark = pytest.mark.live


def test_the_command_shrinks_and_grows_a_real_balloon_as_the_model_says(
        live_uri, guest_image, capsys, no_leftovers):
    from kvmlab.cli import main

    code = main(["memory", "balloon", "memory-balloon-live", "--run", "--json",
                 "--uri", live_uri])
    out = json.loads(capsys.readouterr().out)
    measured = BalloonRunResult.from_dict(out["measured"])
    print("\n" + compare(simulate(measured.scenario), measured).table())
    assert code == 0 and out["agrees"] is True and out["max_error_mib"] <= TOLERANCE_MIB
    balloons = measured.scenario.balloons_mib()
    assert sorted({b for b in balloons if b > 0}) == [32, 64, 128]     # 2 shrinks, 2 grows
    for step, balloon in zip(measured.steps, balloons, strict=True):
        assert step.actual_mib == measured.scenario.memory_mib - balloon
        assert measured.start.memtotal_mib - step.memtotal_mib == pytest.approx(
            balloon, abs=TOLERANCE_MIB)
        assert step.rss_mib <= measured.start.rss_mib + TOLERANCE_MIB
    assert measured.provenance["balloon_features"][0] == "STATS_VQ"
    assert "DEFLATE_ON_OOM" not in measured.provenance["balloon_features"]


def test_with_deflate_on_oom_memtotal_stays_and_memavailable_falls(
        live_uri, guest_image, no_leftovers):
    scenario = load_scenario("memory-balloon-live-deflate")
    bar = Recorder()
    measured = run_on_host(scenario, uri=live_uri, progress=bar)
    c = compare(simulate(scenario), measured)
    print("\n" + c.table())
    assert c.agrees, c.table()
    assert bar.done == bar.total == len(scenario.targets_mib) + 1
    assert {"DEFLATE_ON_OOM", "REPORTING"} <= set(measured.provenance["balloon_features"])
    biggest = max(scenario.balloons_mib())
    step = measured.steps[scenario.balloons_mib().index(biggest)]
    assert step.memtotal_mib == pytest.approx(measured.start.memtotal_mib, abs=TOLERANCE_MIB)
    assert measured.start.memavailable_mib - step.memavailable_mib == pytest.approx(
        biggest, abs=TOLERANCE_MIB)


class Interrupting(Recorder):
    """A progress bar whose second update is a Ctrl-C: the balloon is half inflated."""

    def update(self, n=1):
        super().update(n)
        if self.done >= 2:
            raise KeyboardInterrupt


def test_an_interrupted_balloon_run_leaves_nothing_behind(live_uri, guest_image, no_leftovers):
    with pytest.raises(KeyboardInterrupt):
        run_on_host("memory-balloon-live", uri=live_uri, progress=Interrupting())

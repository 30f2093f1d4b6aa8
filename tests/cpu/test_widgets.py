"""The explorer: its pure function equals simulate(), and its sliders re-run it."""

from __future__ import annotations

import matplotlib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from kvmlab.cpu import CpuScenario, ready_verdict, simulate
from kvmlab.cpu import widgets as cpu_widgets
from kvmlab.cpu.result import ready_rows
from kvmlab.cpu.widgets import FIGSIZE, draw, explore, explorer, render, summary
from kvmlab.errors import ScenarioError
from kvmlab.figures import MIN_TEXT_PT, is_blank, new_figure, small_texts, smallest_text_pt


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def scenario_of(pcpus: int, vms: int, vcpus_per_vm: int, load: float) -> CpuScenario:
    return CpuScenario.from_dict({"pcpus": pcpus, "duration_s": 0.5, "vms": [
        {"name": f"vm{i + 1}", "vcpus": vcpus_per_vm, "load": load} for i in range(vms)]})


@settings(max_examples=20, deadline=None)
@given(pcpus=st.integers(1, 4), vms=st.integers(1, 3), vcpus_per_vm=st.integers(1, 3),
       load=st.sampled_from([1.0, 0.6, 0.25]), scheduler=st.sampled_from(["fair", "round-robin"]),
       seed=st.integers(0, 100))
def test_explore_is_simulate_of_alike_vms(pcpus, vms, vcpus_per_vm, load, scheduler, seed):
    got = explore(pcpus, vms, vcpus_per_vm, load, scheduler, duration_s=0.5, seed=seed)
    want = simulate(scenario_of(pcpus, vms, vcpus_per_vm, load), seed=seed, scheduler=scheduler)
    assert got.vcpus == want.vcpus
    assert got.timeline == want.timeline
    assert got.provenance["scheduler"] == scheduler and got.provenance["seed"] == seed
    assert [vm.vcpus for vm in got.scenario.vms] == [vcpus_per_vm] * vms


def test_explore_answers_the_textbook_case():
    r = explore(pcpus=2, vms=2, vcpus_per_vm=2, load=1.0, scheduler="fair", duration_s=1.0)
    assert [v.run_share for v in r.vcpus] == pytest.approx([0.5] * 4, abs=0.01)
    assert [v.wait_share for v in r.vcpus] == pytest.approx([0.5] * 4, abs=0.01)


def test_explore_rejects_bad_values():
    with pytest.raises(ScenarioError):
        explore(2, 0, 2, 1.0, "fair")
    with pytest.raises(ScenarioError, match="scheduler"):
        explore(2, 1, 2, 1.0, "lottery")
    with pytest.raises(ScenarioError, match="load"):
        explore(2, 1, 2, 1.5, "fair")


def test_ready_rows_are_per_vm_means_with_verdicts():
    r = explore(pcpus=3, vms=2, vcpus_per_vm=2, load=1.0, scheduler="fair", duration_s=1.0)
    rows = ready_rows(r)
    assert [row.vm for row in rows] == ["vm1", "vm2"]
    for row in rows:
        mine = [v for v in r.vcpus if v.vm == row.vm]
        assert row.ready_pct == pytest.approx(sum(v.ready_pct for v in mine) / len(mine))
        assert row.verdict == ready_verdict(row.ready_pct)
        assert row.ready_pct == pytest.approx(25.0, abs=1.0)
    idle = explore(pcpus=4, vms=1, vcpus_per_vm=2, load=1.0, scheduler="fair", duration_s=0.5)
    assert [row.verdict for row in ready_rows(idle)] == ["fine"]


def test_render_shows_gantt_then_shares_and_a_table():
    r = explore(2, 2, 2, 1.0, "fair", duration_s=0.5)
    fig, table = render(r, gantt_s=0.05)
    gantt_ax, shares_ax = fig.axes[:2]
    assert gantt_ax.get_xlim() == pytest.approx((0, 0.05))
    assert [b.get_height() for b in shares_ax.containers[0]] == pytest.approx(
        [v.run_share for v in r.vcpus])
    assert [row.vm for row in table] == ["vm1", "vm2"]
    assert "ready" in table._repr_html_()


def test_explore_keeps_its_results_and_answers_a_setting_again_at_once(monkeypatch):
    first = explore(3, 2, 2, 0.75, "fair", duration_s=0.3, seed=7)
    calls = []
    monkeypatch.setattr(cpu_widgets, "simulate", lambda *a, **k: calls.append(a))
    again = explore(3, 2, 2, 0.75, "fair", duration_s=0.3, seed=7)
    assert again is first and calls == []                # kept: the model did not run
    explore(3, 2, 2, 0.75, "fair", duration_s=0.3, seed=8)
    assert len(calls) == 1                                # another seed is another run


@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 2, 2), (8, 6, 4), (8, 1, 1)])
@pytest.mark.parametrize("scheduler", ["fair", "round-robin"])
def test_draw_is_readable_at_every_setting_in_one_figure(shape, scheduler):
    fig = new_figure(FIGSIZE, layout=None)
    result = explore(*shape, 1.0, scheduler)
    table = draw(fig, result)
    assert [row.vm for row in table] == [f"vm{i + 1}" for i in range(shape[1])]
    assert not is_blank(fig) and len(fig.axes) == 2
    assert smallest_text_pt(fig) >= MIN_TEXT_PT, small_texts(fig)
    assert fig.get_size_inches().tolist() == list(FIGSIZE)      # the size never changes
    gantt_ax, shares_ax = fig.axes
    (slices,) = gantt_ax.collections                           # one collection, all slices
    assert len(slices.get_paths()) == sum(1 for s in result.timeline if s.start_s < 0.1)
    assert [t.get_text() for t in shares_ax.get_xticklabels()] == [
        f"vm{i + 1}" for i in range(shape[1])]
    renderer = fig.canvas.get_renderer()
    inside = fig.bbox.padded(1)
    for artist in [*fig.axes, gantt_ax.get_legend(), shares_ax.get_legend()]:
        box = artist.get_tightbbox(renderer)
        assert inside.x0 <= box.x0 and box.x1 <= inside.x1, artist   # nothing cut off
        assert inside.y0 <= box.y0 and box.y1 <= inside.y1, artist


def test_summary_names_overcommit_and_scheduler():
    r = explore(3, 2, 2, 1.0, "round-robin", duration_s=0.3)
    assert summary(r).startswith("4 vCPUs on 3 pCPUs (overcommit 1.33x), round-robin")


def test_explorer_has_the_controls_and_reruns_on_change(monkeypatch):
    import ipywidgets as w

    calls = []
    real = cpu_widgets.explore

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(cpu_widgets, "explore", spy)
    box = explorer(duration_s=0.2, seed=4)
    controls = {c.description: c for col in box.children[0].children for c in col.children}
    assert set(controls) == {"pCPUs", "VMs", "vCPUs per VM", "load (busy)", "scheduler"}
    assert isinstance(controls["scheduler"], w.Dropdown)
    assert list(controls["scheduler"].options) == ["fair", "linux", "round-robin"]
    assert isinstance(box.children[2], w.Image)
    assert not any(isinstance(c, w.Output) for c in box.children)
    assert calls and calls[-1] == {"pcpus": 2, "vms": 2, "vcpus_per_vm": 2, "load": 1.0,
                                   "scheduler": "fair", "duration_s": 0.2, "seed": 4}
    shown = [bytes(box.explorer.image.value)]
    controls["pCPUs"].value = 3
    shown.append(bytes(box.explorer.image.value))
    controls["scheduler"].value = "round-robin"
    shown.append(bytes(box.explorer.image.value))
    assert calls[-1]["pcpus"] == 3 and calls[-1]["scheduler"] == "round-robin"
    assert len(set(shown)) == 3 and all(png[:4] == b"\x89PNG" for png in shown)
    assert "3 pCPUs" in box.explorer.above.value and "round-robin" in box.explorer.above.value
    assert "CPU ready" in box.explorer.below.value
    assert not plt.get_fignums()        # nothing goes through pyplot


def test_explorer_defaults_to_short_runs(monkeypatch):
    calls = []
    real = cpu_widgets.explore
    monkeypatch.setattr(cpu_widgets, "explore",
                        lambda *a, **k: calls.append(k) or real(*a, **k))
    explorer()
    assert calls[-1]["duration_s"] == cpu_widgets.DURATION_S == 0.5

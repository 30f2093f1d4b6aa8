"""Every lab's plot functions, with shipped inputs: readable (text >= 9 pt) and not blank."""

from __future__ import annotations

import matplotlib
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from kvmlab.figures import (
    MIN_TEXT_PT,
    NOTEBOOK_WIDTH_IN,
    is_blank,
    small_texts,
    smallest_text_pt,
)


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


class _Drawn:
    """What an explorer's draw function drew: its figure, as ``.figure``."""

    def __init__(self, figure):
        self.figure = figure


def _cpu_and_storage_plots():
    from kvmlab import cpu, storage
    from kvmlab.cpu import plot as cpu_plot
    from kvmlab.cpu import widgets as cpu_widgets
    from kvmlab.figures import new_figure
    from kvmlab.storage import plot as storage_plot
    from kvmlab.storage import widgets as storage_widgets
    from kvmlab.storage.model import image_after, simulate
    from kvmlab.storage.plot import cluster_map_layout

    def explorer_view(*shape, scheduler="fair", load=1.0):
        fig = new_figure(cpu_widgets.FIGSIZE, layout=None)
        cpu_widgets.draw(fig, cpu_widgets.explore(*shape, load, scheduler))
        return _Drawn(fig)

    def slider_view(name, n=None):
        s = storage.load_scenario(name)
        size, _rect = cluster_map_layout(image_after(s), 16, 0)
        fig = new_figure(size, layout=None)
        storage_widgets.draw_clusters(fig, s, len(s.writes) if n is None else n)
        return _Drawn(fig)

    def io_view(fmt, pattern):
        fig = new_figure(storage_widgets.IO_FIGSIZE, layout=None)
        storage_widgets.draw_io(fig, storage_widgets.io_compare(
            storage_widgets.io_workload(fmt, pattern, count=64)))
        return _Drawn(fig)

    seed = cpu.simulate(cpu.load_scenario("cpu-seed-example").with_duration(0.5), seed=1)
    first = storage.load_scenario("storage-first-writes")
    overlay = storage.simulate(storage.load_scenario("storage-overlay"))
    return {
        "cpu.explorer render": lambda: cpu_widgets.render(
            cpu_widgets.explore(8, 6, 4, 1.0, "fair", 0.5))[0].axes[0],
        "cpu.explorer 8x6x4 fair": lambda: explorer_view(8, 6, 4),
        "cpu.explorer 1x1x1 round-robin": lambda: explorer_view(1, 1, 1,
                                                                 scheduler="round-robin"),
        "cpu.explorer 2x2x2 load 0": lambda: explorer_view(2, 2, 2, load=0.0),
        "cpu.compare": lambda: cpu.compare(seed, seed).plot(),
        "cpu.gantt": lambda: cpu_plot.gantt(seed, until_s=0.05),
        "cpu.plot_shares": lambda: cpu_plot.plot_shares(seed),
        "cpu.plot_shares 24 vCPUs": lambda: cpu_plot.plot_shares(
            cpu_widgets.explore(8, 6, 4, 1.0, "fair")),
        "cpu.side_by_side shares": lambda: cpu_plot.side_by_side(
            [seed, cpu.simulate(seed.scenario, scheduler="round-robin")])[0],
        "storage.cluster map": lambda: image_after(first, len(first.writes)).plot(columns=16),
        "storage.cluster slider several-writes": lambda: slider_view("storage-several-writes"),
        "storage.cluster slider snapshots 2": lambda: slider_view("storage-snapshots", 2),
        "storage.io explorer overlay": lambda: io_view("overlay", "random"),
        "storage.io explorer raw": lambda: io_view("raw", "sequential"),
        "storage.guest_map": lambda: storage_plot.guest_map(overlay),
        "storage.map_pair": lambda: storage_plot.map_pair(overlay.map, overlay.map),
        "storage.simulate_io plot": lambda: storage_widgets.io_compare(
            storage_widgets.io_workload("qcow2", count=16)).plot(),
        "storage.simulate plot": lambda: simulate(first).plot(),
    }


MINE = {**_memory_plots(), **_network_plots(), **_experiment_plots(),
        **_cpu_and_storage_plots()}


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.mark.parametrize("name", sorted(MINE))
def test_every_figure_is_readable_and_drawn(name):
    fig = MINE[name]().figure
    assert not is_blank(fig)
    assert smallest_text_pt(fig) >= MIN_TEXT_PT, small_texts(fig)
    assert fig.get_figwidth() <= NOTEBOOK_WIDTH_IN            # shown at its own size

"""The pure functions under every lab's widgets, with generated arguments: a kvmlab error
naming the rule, or a valid result (figure, table, text), each call within
:data:`SECONDS` and :data:`MIB`; never another exception.

Each example keeps all arguments but (at most) one within or near their ranges and
replaces that one by anything (:data:`ANYTHING`), so that most examples get past the
first check and reach the model and the drawing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import matplotlib
import pytest
from hypothesis import given
from hypothesis import strategies as st

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from kvmlab.cpu import widgets as cpu_widgets
from kvmlab.cpu.model import SCHEDULERS
from kvmlab.cpu.result import CpuResult
from kvmlab.display import Table
from kvmlab.experiments import SweepTable, sweep
from kvmlab.experiments import widgets as experiment_widgets
from kvmlab.memory import widgets as memory_widgets
from kvmlab.memory.paging import Walk
from kvmlab.memory.tlb import PATTERNS, TraceResult
from kvmlab.network import widgets as network_widgets
from kvmlab.network.model import simulate as simulate_network
from kvmlab.network.result import NetworkResult
from kvmlab.network.scenario import Topology
from kvmlab.storage import widgets as storage_widgets
from kvmlab.storage.qcow2 import Allocation
from kvmlab.storage.result import IoResults
from kvmlab.storage.scenario import DISKS, IO_FORMATS, IO_PATTERNS, IoWorkload
from tests.fuzz.budget import REFUSED, refused, within_budget
from tests.fuzz.strategies import NASTY, fuzz_settings

SECONDS = 2.0
"""The most CPU time one call of a widget's pure function may take (drawing included)."""
LINUX_LONGEST_SECONDS = 3.0
"""The budget of the one slowest call: the ``linux`` model at the largest settings and the
longest run (:data:`kvmlab.cpu.widgets.MAX_EXPLORE_S`). It takes 1.0 to 1.1 s of CPU on a
quiet two-core machine, and took 2.1 s once while the host tests ran beside it (the
explorer itself runs 0.5 s, :data:`kvmlab.cpu.widgets.DURATION_S`)."""
MIB = 256
"""The most one call may grow the process's peak resident size by."""

ANYTHING = st.one_of(st.sampled_from(NASTY), st.none(), st.booleans(), st.integers(),
                     st.floats(), st.text(max_size=12), st.lists(st.integers(), max_size=3),
                     st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))
"""What may stand in for any one argument."""


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@dataclass(frozen=True)
class Near:
    """The values of one argument: ``valid`` ones, and ``edges`` at or past its bounds."""

    valid: st.SearchStrategy[Any]
    edges: tuple[Any, ...] = ()

    def strategy(self) -> st.SearchStrategy[Any]:
        """``valid`` three times in four, else an edge (for a lone draw)."""
        if not self.edges:
            return self.valid
        return st.sampled_from([self.valid] * 3 + [st.sampled_from(self.edges)]).flatmap(
            lambda s: s)


def mostly(valid: st.SearchStrategy[Any], *edges: Any) -> Near:
    """An argument's values: ``valid``, and ``edges`` now and then."""
    return Near(valid, edges)


def arguments(draw: Callable[..., Any], near: dict[str, Near | st.SearchStrategy[Any]]
              ) -> dict[str, Any]:
    """One value per argument: in half the examples all valid, in a quarter one argument at
    an edge, in a quarter one argument anything (:data:`ANYTHING`). ``draw`` is
    ``data.draw`` or a composite's ``draw``."""
    mode = draw(st.sampled_from(["valid", "valid", "edge", "anything"]))
    target = None if mode == "valid" else draw(st.sampled_from(list(near)))
    out = {}
    for name, values in near.items():
        values = values if isinstance(values, Near) else Near(values)
        if name != target:
            out[name] = draw(values.valid)
        elif mode == "edge" and values.edges:
            out[name] = draw(st.sampled_from(values.edges))
        else:
            out[name] = draw(ANYTHING)
    return out


def call(function: Any, *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)`` within the budget, or :data:`REFUSED`."""
    with within_budget(seconds=SECONDS, mib=MIB):
        return refused(lambda: function(*args, **kwargs), name=function.__name__)


def drawn(fig: Any) -> None:
    """A figure as the widget shows it: rendered once, within the budget."""
    assert isinstance(fig, Figure)
    with within_budget(seconds=SECONDS, mib=MIB):
        fig.canvas.draw()
    plt.close(fig)


def is_text(value: Any) -> None:
    assert isinstance(value, str) and value.strip() and "Traceback" not in value


# -- cpu ------------------------------------------------------------------------------------
@fuzz_settings(100, deadline_s=None)
@given(data=st.data())
def test_cpu_explore_render_summary(data):
    args = arguments(data.draw, {
        "pcpus": mostly(st.integers(1, 8), 0, 9, 1024), "vms": mostly(st.integers(1, 6), 0, 7),
        "vcpus_per_vm": mostly(st.integers(1, 4), 0, 5),
        "load": mostly(st.sampled_from([0.0, 0.05, 0.5, 1.0]) | st.floats(0, 1), -0.1, 1.5),
        "scheduler": mostly(st.sampled_from(SCHEDULERS), "lottery", "", "Fair"),
        "duration_s": mostly(st.sampled_from([1e-9, 0.01, 0.5, 2.0, 5.0]) | st.floats(0, 5),
                             0.0, -1.0, 5.5, 3600.0),
        "seed": mostly(st.integers(0, 2**64), -1)})
    gantt_s = data.draw(mostly(st.sampled_from([0.05, 0.1, 0.5, 2.0, 5.0]) | st.floats(0, 6),
                               0.0, -1.0, *NASTY).strategy(), label="gantt_s")
    result = call(cpu_widgets.explore, **args)
    if result is REFUSED:
        return
    assert isinstance(result, CpuResult) and result.source == "simulated"
    is_text(call(cpu_widgets.summary, result))
    figures = set(plt.get_fignums())
    shown = call(cpu_widgets.render, result, gantt_s)
    if shown is REFUSED:
        assert set(plt.get_fignums()) == figures, "render left a figure open when it refused"
        return
    fig, table = shown
    assert isinstance(table, Table) and len(table.rows) == len(result.scenario.vms)
    drawn(fig)


def test_cpu_render_of_a_run_where_nothing_ran():
    """Load 0: no vCPU ever runs, so the timeline is empty; the explorer still draws."""
    fig, table = call(cpu_widgets.render, call(cpu_widgets.explore, 2, 2, 2, 0.0, "fair"))
    assert [row.verdict for row in table] == ["fine", "fine"]
    drawn(fig)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_cpu_explorer_at_its_largest_settings(scheduler):
    """The slowest the explorer gets: every slider at its top, the longest run, and the
    longest Gantt chart it draws."""
    top = {name: high for name, (_low, high) in cpu_widgets.LIMITS.items()}
    budget = LINUX_LONGEST_SECONDS if scheduler == "linux" else SECONDS
    with within_budget(seconds=budget, mib=MIB):
        result = cpu_widgets.explore(**top, load=0.37, scheduler=scheduler,
                                     duration_s=cpu_widgets.MAX_EXPLORE_S)
    assert isinstance(result, CpuResult)
    slices = sorted(piece.start_s for piece in result.timeline)
    longest = slices[cpu_widgets.MAX_GANTT_SLICES - 1] if len(slices) >= (
        cpu_widgets.MAX_GANTT_SLICES) else result.duration_s
    fig, _table = call(cpu_widgets.render, result, longest)
    drawn(fig)


@fuzz_settings(40, deadline_s=None)
@given(value=ANYTHING)
def test_cpu_summary_and_render_refuse_what_is_not_a_result(value):
    assert call(cpu_widgets.summary, value) is REFUSED
    assert call(cpu_widgets.render, value) is REFUSED


# -- experiments ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def seeds_table() -> SweepTable:
    return sweep("cpu-overcommit", {"ratio": [1.5, 2], "load": 0.6, "duration_s": 0.5},
                 seeds=range(4), executor="serial", progress=False)


@fuzz_settings(150, deadline_s=None)
@given(data=st.data())
def test_experiments_first_seeds_and_band_widths(data, seeds_table):
    args = arguments(data.draw, {
        "table": st.just(seeds_table), "n": mostly(st.integers(1, 4), 0, 5, -1),
        "x": mostly(st.just("ratio"), "load", "seed", "wait_share", "nosuch", ""),
        "y": mostly(st.sampled_from(["wait_share", "run_share"]), "ratio", "seed", "nosuch"),
        "level": mostly(st.sampled_from([0.5, 0.9, 0.95, 0.99]) | st.floats(0.01, 0.99),
                        0.0, 1.0, -1.0, 2.0)})
    part = call(experiment_widgets.first_seeds, args["table"], args["n"])
    if part is REFUSED:
        return
    assert isinstance(part, SweepTable) and len(set(part["seed"])) == args["n"]
    widths = call(experiment_widgets.band_widths, part, args["x"], args["y"], args["level"])
    if widths is REFUSED:
        return
    assert isinstance(widths, dict)
    assert all(isinstance(w, float) for w in widths.values())


# -- memory ---------------------------------------------------------------------------------
PAGES = mostly(st.sampled_from(["4K", "2M", "1G", "4k"]), "8K", "", "2G", "4096")


@pytest.mark.parametrize("levels", memory_widgets.LEVELS)
@pytest.mark.parametrize("host_page", memory_widgets.SIZES)
@pytest.mark.parametrize("guest_page", memory_widgets.SIZES)
def test_memory_walk_view_of_every_explorer_choice(guest_page, host_page, levels):
    walk, text = call(memory_widgets.walk_view, guest_page, host_page, levels)
    assert isinstance(walk, Walk) and str(len(walk.refs)) in text


@fuzz_settings(60, deadline_s=None)
@given(data=st.data())
def test_memory_walk_view(data):
    args = arguments(data.draw, {"guest_page": PAGES, "host_page": PAGES,
                            "levels": mostly(st.sampled_from([4, 5]), 3, 6, 0)})
    answer = call(memory_widgets.walk_view, **args)
    if answer is REFUSED:
        return
    walk, text = answer
    assert isinstance(walk, Walk) and walk.refs
    is_text(text)


@fuzz_settings(150, deadline_s=None)
@given(data=st.data())
def test_memory_tlb_view(data):
    args = arguments(data.draw, {
        "working_set_kib": mostly(st.sampled_from([1, 64, 1024, 65536, 131072, 1 << 20,
                                                   1 << 30]) | st.integers(1, 1 << 17),
                                  0, -1, 1 << 40),
        "tlb_entries": mostly(st.sampled_from([1, 4, 64, 1536]) | st.integers(1, 4096),
                              0, 1 << 20),
        "page": PAGES, "pattern": mostly(st.sampled_from(PATTERNS), "zigzag"),
        "pwc_entries": mostly(st.sampled_from([0, 1, 32, 4096]), -1, 1 << 20),
        "accesses": mostly(st.sampled_from([1, 2000, 10_000]) | st.integers(1, 5000),
                           0, 10_001, 10**9),
        "seed": mostly(st.integers(0, 2**64), -1)})
    answer = call(memory_widgets.tlb_view, **args)
    if answer is REFUSED:
        return
    result, text = answer
    assert isinstance(result, TraceResult) and result.accesses == args["accesses"]
    assert 0 <= result.hit_rate <= 1
    is_text(text)


# -- network --------------------------------------------------------------------------------
HOSTS = mostly(st.sampled_from(["vm1", "vm2", "vm3", "broadcast", "unknown"]),
              "vm8", "vm9", "", "vm1:eth0")


@fuzz_settings(120, deadline_s=None)
@given(data=st.data())
def test_network_one_bridge_send_outcome_events(data):
    args = arguments(data.draw, {
        "guests": mostly(st.integers(1, 8), 0, 9),
        "ageing_s": mostly(st.sampled_from([0, 0.5, 300, 1e6]) | st.integers(0, 1000),
                           -1, 1e6 + 1, 0.001),
        "hairpin": st.booleans(), "flood": st.booleans(), "learning": st.booleans()})
    topology = call(network_widgets.one_bridge, **args)
    if topology is REFUSED:
        return
    assert isinstance(topology, Topology)
    assert call(network_widgets.outcome, topology) == "no frame sent yet"
    _send_some(data, topology)


@fuzz_settings(120, deadline_s=None)
@given(data=st.data())
def test_network_vlan_switch_send_outcome_events(data):
    modes = data.draw(st.sampled_from([
        *[st.lists(st.sampled_from(list(network_widgets.PORT_MODES)), min_size=1,
                   max_size=8)] * 3,
        st.sampled_from([[], ["access 10"] * 9, ["trunk 99"], ["access 10", ""],
                         ("access 10",), "access 10"]),
        st.lists(ANYTHING, max_size=3) | ANYTHING]).flatmap(lambda s: s), label="modes")
    topology = call(network_widgets.vlan_switch, modes)
    if topology is REFUSED:
        return
    assert isinstance(topology, Topology)
    _send_some(data, topology)


def _send_some(data: st.DataObject, topology: Topology) -> None:
    """A few frames sent in turn; after each, the outcome in words and one event."""
    for _ in range(data.draw(st.integers(1, 4), label="frames")):
        args = arguments(data.draw, {"topology": st.just(topology), "sender": HOSTS, "to": HOSTS,
                                "vlan": mostly(st.sampled_from([None, 0, 10, 20]),
                                               1, 4094, 4095, -1)})
        sent = call(network_widgets.send_frame, **args)
        if sent is REFUSED:
            return
        assert isinstance(sent, Topology) and len(sent.frames) == len(topology.frames) + 1
        topology = sent
        is_text(call(network_widgets.outcome, topology))
        result = call(simulate_network, topology)
        assert isinstance(result, NetworkResult)
        k = data.draw(mostly(st.integers(0, max(0, len(result.events) - 1)),
                             -1, len(result.events), *NASTY).strategy(), label="k")
        text = call(network_widgets.event_view, result, k)
        if text is not REFUSED:
            is_text(text)
        lines = call(network_widgets.table_lines, result.fdb)
        assert isinstance(lines, list) and all(isinstance(line, str) for line in lines)


@fuzz_settings(60, deadline_s=None)
@given(value=ANYTHING, fdb=st.one_of(ANYTHING, st.dictionaries(
    st.text(max_size=4), st.one_of(ANYTHING, st.dictionaries(st.text(max_size=4), ANYTHING,
                                                             max_size=2)), max_size=2)))
def test_network_functions_refuse_what_is_not_their_object(value, fdb):
    for function in (network_widgets.outcome, network_widgets.event_view):
        args = (value,) if function is network_widgets.outcome else (value, 0)
        assert call(function, *args) is REFUSED
    assert call(network_widgets.send_frame, value, "vm1", "vm2") is REFUSED
    lines = call(network_widgets.table_lines, fdb)
    assert lines is REFUSED or all(isinstance(line, str) for line in lines)


# -- storage --------------------------------------------------------------------------------
WRITES = mostly(st.lists(st.tuples(st.integers(0, (1 << 20) - 1), st.integers(1, 1 << 16))
                         .map(list), max_size=6),
                [[0]], [[0, 0]], [[-1, 10]], [[0, 1 << 40]], ["0,512"], [None], [[0, 512]] * 7)


@st.composite
def storage_scenarios(draw: Any) -> Any:
    """A small qcow2 scenario (of at least 1 MiB, its writes in the first MiB) as a dict,
    one field possibly at an edge or anything; now and then a name or another format."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(["storage-first-writes", "storage-no-such", ""]))
    fields = arguments(draw, {
        "virtual_size": mostly(st.sampled_from([1 << 20, 16 << 20, 1 << 30]), 0, 512, 1 << 40),
        "cluster_size": mostly(st.sampled_from([512, 4096, 65536, 2 << 20]), 3000, 0),
        "writes": WRITES})
    if draw(st.integers(0, 4)) == 0:
        fields["format"] = draw(st.sampled_from(["qcow2", "raw", "vmdk"]))
    return fields


@fuzz_settings(150, deadline_s=None)
@given(data=st.data(), scenario=storage_scenarios())
def test_storage_layout_after_and_describe_write(data, scenario):
    writes = scenario.get("writes") if isinstance(scenario, dict) else None
    most = len(writes) if isinstance(writes, list) else 3
    n = data.draw(mostly(st.integers(0, most), -1, most + 1, *NASTY).strategy(), label="n")
    layout = call(storage_widgets.layout_after, scenario, n)
    text = call(storage_widgets.describe_write, scenario, n)
    assert (layout is REFUSED) == (text is REFUSED)
    if layout is REFUSED:
        return
    assert isinstance(layout, list) and all(isinstance(a, Allocation) for a in layout)
    is_text(text)


@fuzz_settings(150, deadline_s=None)
@given(data=st.data())
def test_storage_io_workload_compare_summary(data):
    args = arguments(data.draw, {
        "format": mostly(st.sampled_from(IO_FORMATS), "vmdk"),
        "pattern": mostly(st.sampled_from(IO_PATTERNS), "zigzag"),
        "request_size": mostly(st.sampled_from(storage_widgets.REQUEST_SIZES), 0, 100, 1 << 30),
        "operation": mostly(st.sampled_from(list(storage_widgets.OPERATIONS)), "trim"),
        "disk": mostly(st.sampled_from(list(DISKS)), "tape"),
        "count": mostly(st.sampled_from([1, 256, 1000]) | st.integers(1, 300),
                        0, 1001, 100_000, 10**6),
        "prefill": st.booleans()})
    more = data.draw(st.dictionaries(
        mostly(st.sampled_from(["virtual_size", "passes", "queue_depth", "cluster_size",
                                "l2_cache_tables"]), "colour", "Passes").strategy(),
        mostly(st.sampled_from([1, 4, 8, 64, 512, 4096, 1 << 16, 1 << 20, 1 << 30]),
               *NASTY).strategy(), max_size=2), label="more")
    workload = call(storage_widgets.io_workload, **args, **more)
    if workload is REFUSED:
        return
    assert isinstance(workload, IoWorkload)
    seed = data.draw(mostly(st.integers(0, 2**64), -1, *NASTY).strategy(), label="seed")
    results = call(storage_widgets.io_compare, workload, seed)
    if results is REFUSED:
        return
    assert isinstance(results, IoResults)
    assert [r.workload.format for r in results][-1] == workload.format
    for r in results:
        is_text(call(storage_widgets.io_summary, r))


@fuzz_settings(40, deadline_s=None)
@given(value=ANYTHING)
def test_storage_functions_refuse_what_is_not_their_object(value):
    assert call(storage_widgets.io_compare, value) is REFUSED
    assert call(storage_widgets.io_summary, value) is REFUSED

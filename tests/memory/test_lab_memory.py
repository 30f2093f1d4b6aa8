"""The memory lab follows the lab contract: scenarios, the four verbs, results, comparisons."""

import ast
import json
from pathlib import Path

import pytest

from kvmlab import memory
from kvmlab.cli import main
from kvmlab.errors import ScenarioError
from kvmlab.lab import LABS, ROOMS, Comparison, lab
from kvmlab.memory.model import KERNEL_MAP
from kvmlab.memory.result import (
    BalloonResult,
    KsmResult,
    KsmSample,
    TraceResult,
    result_from_dict,
)
from kvmlab.memory.scenario import (
    DIRECT_MAP,
    KINDS,
    BalloonGuest,
    BalloonScenario,
    KsmScenario,
    TraceScenario,
)
from tests.fakes import Recorder

PACKAGE = Path(memory.__file__).parent
SHIPPED = ["memory-ksm-ten-contents", "memory-ksm-one-content", "memory-trace",
           "memory-balloon-three-guests"]
RECORDED = ["memory-ksm-ten-contents", "memory-ksm-one-content", "memory-trace"]




def test_the_lab_exports_the_verbs_and_has_every_room():
    assert lab("memory") is memory and "memory" in LABS
    for name in ("load_scenario", "simulate", "run_on_host", "compare", "recorded_result",
                 "KsmScenario", "TraceScenario", "BalloonScenario", "KsmResult",
                 "TraceResult", "BalloonResult", "run_ksm", "trace"):
        assert name in memory.__all__ and hasattr(memory, name)
    for room in ROOMS:
        assert (PACKAGE / f"{room}.py").is_file(), room


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenarios_load_by_name_path_dict_and_object(name, tmp_path):
    s = memory.load_scenario(name)
    assert s.name == name and s.description
    assert memory.load_scenario(s) is s
    assert memory.load_scenario(s.to_dict()) == s
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(s.to_dict()))
    assert memory.load_scenario(path) == memory.load_scenario(str(path)) == s
    assert type(s).from_dict(json.loads(json.dumps(s.to_dict()))) == s


@pytest.mark.parametrize("name", RECORDED)
def test_every_recording_has_its_shipped_scenario_and_is_measured(name):
    recorded = memory.recorded_result(name)
    assert recorded.source == "measured" and recorded.provenance["accelerator"]
    assert recorded.scenario == memory.load_scenario(name)
    assert result_from_dict(json.loads(json.dumps(recorded.to_dict()))) == recorded


@pytest.mark.parametrize(("data", "rule"), [
    ({"kind": "swap"}, "kind must be 'ksm', 'trace' or 'balloon'"),
    ({"pages": 10, "distinct": 1}, "kind must be"),
    ({"kind": "ksm", "pages": 10, "distinct": 1, "colour": 3},
     "unknown key 'colour' in the ksm scenario"),
    ({"kind": "ksm", "pages": True, "distinct": 1}, "at least 1 mergeable page"),
    ({"kind": "ksm", "pages": 10, "distinct": 1.5}, "distinct contents must be a whole number"),
    ({"kind": "ksm", "pages": 10, "distinct": 1, "duration_s": 0}, "more than 0"),
    ({"kind": "ksm", "pages": 10, "distinct": 1, "sleep_ms": 0, "scan_page_us": 0},
     "cannot both be 0"),
    ({"kind": "ksm", "pages": 10, "distinct": 1, "name": 7}, "name must be a string, not a number"),
    ({"kind": "trace", "samples": 0}, "at least 1 address"),
    ({"kind": "trace", "pages": 0}, "the buffer has 1-65536 pages"),
    ({"kind": "trace", "pages": 20000}, "must fit in half the guest's 128 MiB"),
    ({"kind": "trace", "memory_mib": 32}, "memory_mib must be from 64 to 4096 MiB"),
    ({"kind": "trace", "seed": -1}, "seed must be at least 0"),
    ({"kind": "trace", "seed": "x"}, "seed must be a whole number"),
    ({"kind": "balloon", "host_mib": 0}, "the host needs at least 1 MiB"),
    ({"kind": "balloon", "host_mib": 10, "guests": "web"},
     "guests .* must be a list, not a string"),
    ({"kind": "balloon", "host_mib": 10, "guests": [{"name": "a", "memory_mib": 4,
                                                    "balloon_mib": 4}]},
     "the balloon holds 0 to less than"),
    ({"kind": "balloon", "host_mib": 10, "guests": [{"name": "a", "memory_mib": 4,
                                                    "swap_mib": 4}]},
     "unknown key 'swap_mib' in the balloon guest scenario"),
])
def test_bad_scenarios_name_the_rule(data, rule):
    with pytest.raises(ScenarioError, match=rule):
        memory.load_scenario(data)


def test_a_scenario_that_is_neither_name_nor_data_is_refused():
    with pytest.raises(ScenarioError, match="a shipped name, a JSON file, a dict or a KsmScenario"):
        memory.load_scenario(42)


@pytest.mark.parametrize("name", SHIPPED)
def test_simulate_gives_the_result_type_run_on_host_gives_and_compares_equal(name):
    s = memory.load_scenario(name)
    r = memory.simulate(s)
    assert r.source == "simulated" and r.scenario.name == name
    assert type(r) is {"ksm": KsmResult, "trace": TraceResult,
                       "balloon": BalloonResult}[s.KIND]
    assert result_from_dict(json.loads(json.dumps(r.to_dict()))) == r
    c = memory.compare(r, r)
    assert isinstance(c, Comparison) and c.agrees and c.max_error == 0.0
    assert list(c.to_dict())[:3] == ["agrees", "max_error", "kind"]
    assert json.loads(json.dumps(c.to_dict()))["agrees"] is True
    assert "agrees: True" in c.table() and str(c) == c.table()


@pytest.mark.parametrize("name", RECORDED)
def test_the_model_agrees_with_every_recorded_real_run(name):
    measured = memory.recorded_result(name)
    c = memory.compare(memory.simulate(measured.scenario), measured)
    assert c.agrees, c.table()
    if isinstance(measured, TraceResult):
        assert c.max_error == 0.0 and c.to_dict()["walk_agreement"] == [200, 200]
    else:
        assert 0 < c.max_error < 0.1 and c.fitted is not None
        assert c.fitted.scenario.scan_page_us > 50     # TCG: far dearer than 2 us a page


def test_the_layout_rules_hold_for_every_recorded_address_and_page_sizes_vary():
    trace = memory.recorded_result("memory-trace")
    by_kind = {k: [t for t in trace.translations if t.kind == k] for k in KINDS}
    assert all(t.qemu_pa == t.va - KERNEL_MAP for t in by_kind["kernel-text"])
    assert all(t.qemu_pa == t.va - DIRECT_MAP[4] for t in by_kind["direct-map"])
    assert all(t.qemu_pa is None for t in by_kind["unmapped"])
    assert {t.page_size for t in by_kind["user"]} == {4096}
    # why the model predicts no page size for the kernel: both sizes occur
    assert {t.page_size for t in by_kind["kernel-text"]} == {4096, 2 << 20}
    assert {t.page_size for t in by_kind["direct-map"]} == {4096, 2 << 20}


def test_a_simulated_trace_touches_no_host_and_picks_what_the_real_one_picked():
    measured = memory.recorded_result("memory-trace")
    predicted = memory.simulate(measured.scenario)
    assert predicted.cr3 is None and predicted.pattern_seen == {} and predicted.memory == {}
    for p, m in zip(predicted.translations, measured.translations, strict=True):
        assert p.kind == m.kind and p.va % 4096 == m.va % 4096
        assert p.va == m.va or p.kind == "user"
    with pytest.raises(ScenarioError, match="asked no QEMU"):
        predicted.agreement()


def test_a_contradicted_prediction_is_counted_and_shown():
    measured = memory.recorded_result("memory-trace")
    i = next(i for i, t in enumerate(measured.translations) if t.kind == "kernel-text")
    wrong = measured.translations[i]
    measured.translations[i] = type(wrong)(**{**wrong.__dict__, "qemu_pa": 0x1234})
    c = memory.compare(memory.simulate(measured.scenario), measured)
    assert not c.agrees and c.max_error == pytest.approx(1 / 50)
    assert c.by_kind()["kernel-text"] == (49, 50)
    assert c.to_dict()["contradicted"][0]["va"] == hex(wrong.va)
    assert f"contradicted: kernel-text {wrong.va:#x}" in c.table()
    five = TraceResult(measured.scenario, "measured", measured.translations, 0, 5)
    assert memory.compare(memory.simulate(measured.scenario), five).max_error == 1.0


def test_a_trace_s_seed_comes_from_the_scenario_or_else_from_simulate():
    fixed = memory.simulate(TraceScenario(samples=8, seed=3), seed=99)
    assert fixed.scenario.seed == 3
    free = TraceScenario(samples=8, seed=None)
    assert memory.simulate(free, seed=3).translations == fixed.translations
    assert memory.simulate(free, seed=4).translations != fixed.translations
    with pytest.raises(ScenarioError, match="followed different addresses"):
        memory.compare(fixed, memory.simulate(free, seed=4))


def test_ksm_runs_that_differ_disagree_and_say_by_how_much():
    s = KsmScenario(100, 10, pages_to_scan=25, sleep_ms=20)
    model = memory.simulate(s)
    short = KsmResult(s, "measured", [*model.samples[:-1],
                                      KsmSample(s.duration_s, 3, 10, 80)])
    c = memory.compare(model, short)
    assert not c.agrees and c.max_error == pytest.approx(10 / 80)
    never = KsmResult(s, "measured", [KsmSample(0.0, 0, 0, 0), KsmSample(0.1, 1, 0, 0),
                                      KsmSample(1.5, 14, 0, 0)])
    c = memory.compare(model, never)
    assert not c.agrees and c.max_error == 1.0 and c.fitted.final() == (10, 90)


def test_balloons_that_differ_disagree_in_mib():
    s = memory.load_scenario("memory-balloon-three-guests")
    plan = memory.simulate(s)
    real = BalloonResult(s, "measured", (BalloonGuest("web", 4096, 1000, 2200),
                                         *s.guests[1:]))
    c = memory.compare(plan, real)
    assert not c.agrees and c.max_error == 24.0 and "24 MiB" in c.table()
    assert plan.promised_mib == 12288 and plan.needed_mib == 9216 and not plan.fits


@pytest.mark.parametrize(("pair", "rule"), [
    (lambda k, t: (k, t), "compare takes two KsmResult results"),
    (lambda k, t: (k, 3), "compare takes two MemoryResult results"),
    (lambda k, t: (k, KsmResult(KsmScenario(50, 1), "measured", k.samples)),
     "different scenarios \\(pages, distinct differ\\)"),
])
def test_mismatched_results_are_refused(pair, rule):
    ksm = memory.simulate("memory-ksm-ten-contents")
    trace = memory.simulate("memory-trace")
    with pytest.raises(ScenarioError, match=rule):
        memory.compare(*pair(ksm, trace))


def test_a_result_s_source_is_simulated_or_measured():
    with pytest.raises(ScenarioError, match="source is 'simulated' or 'measured'"):
        KsmResult(KsmScenario(5, 1), "guest kernel", [KsmSample(0.0, 0, 0, 0)])


def test_a_balloon_plan_can_only_be_simulated():
    with pytest.raises(ScenarioError, match=r"a balloon plan \(kind 'balloon'\) can only be "
                                            "simulated.*memory-balloon-live"):
        memory.run_on_host("memory-balloon-three-guests")


@pytest.mark.parametrize(("scenario", "total", "unit_done"), [
    (KsmScenario(100, 10, duration_s=0.5), 0.5, 0.5),
    (TraceScenario(samples=12), 12, 12),
    (BalloonScenario(100, (BalloonGuest("a", 10), BalloonGuest("b", 20))), 2, 2),
])
def test_progress_goes_to_a_tqdm_like_bar(scenario, total, unit_done):
    bar = Recorder()
    memory.simulate(scenario, progress=bar)
    assert bar.total == total and bar.done == pytest.approx(unit_done)
    memory.simulate(scenario, progress=False)
    with pytest.raises(ScenarioError, match="progress must be"):
        memory.simulate(scenario, progress=lambda done, total: None)


def test_the_ksm_model_s_progress_steps_change_nothing():
    s = KsmScenario(1000, 10, pages_to_scan=100, sleep_ms=20, scan_page_us=65)
    assert memory.simulate(s, progress=Recorder()) == memory.simulate(s)


# -- the commands -------------------------------------------------------------------------
def test_simulate_prints_the_result_as_json(capsys):
    assert main(["memory", "simulate", "memory-balloon-three-guests"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["source"] == "simulated" and out["needed_mib"] == 9216 and not out["fits"]


@pytest.mark.parametrize("name", RECORDED)
def test_compare_with_a_recording_prints_agreement(capsys, name):
    assert main(["memory", "compare", name, "--recorded", name]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["agrees"] is True and list(out)[:2] == ["agrees", "max_error"]
    assert "agrees: True" in captured.err


def test_run_refuses_a_balloon_plainly(capsys):
    assert main(["memory", "run", "memory-balloon-three-guests"]) == 2
    assert "can only be simulated" in capsys.readouterr().err


def test_the_ksm_command_keeps_its_output(capsys):
    assert main(["memory", "ksm", "100", "10", "--pages-to-scan", "25"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("100 pages, 10 contents: once merged, pages_shared 10, pages_sharing 90")
    assert main(["memory", "ksm", "100", "10", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["source"] == "simulated"


# -- house rules ----------------------------------------------------------------------------
def imports_of(path):
    """Every kvmlab module a file imports, at any depth (lazy imports count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


MODULES = {f"kvmlab.memory.{p.stem}": p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}


def test_no_import_cycles_inside_the_lab():
    edges = {m: {i for i in imports_of(p) if i in MODULES and i != m} for m, p in MODULES.items()}
    for m, p in MODULES.items():        # the package itself imports every module
        assert "kvmlab.memory" not in imports_of(p), f"{m} imports the package kvmlab.memory"
    done, stack = set(), []

    def visit(m):
        assert m not in stack, f"import cycle: {' -> '.join([*stack, m])}"
        if m in done:
            return
        stack.append(m)
        for n in edges[m]:
            visit(n)
        stack.pop()
        done.add(m)

    for m in edges:
        visit(m)


def test_rooms_keep_to_their_jobs_and_size():
    for name, path in MODULES.items():
        assert len(path.read_text().splitlines()) <= 600, name
        private = [i for i in imports_of(path)
                   if i.rsplit(".", 1)[-1].startswith("_") and i.startswith("kvmlab")]
        assert not private, (name, private)
    twin, model, plot = (imports_of(MODULES[f"kvmlab.memory.{m}"])
                         for m in ("twin", "model", "plot"))
    assert "simpy" not in twin and "kvmlab.memory.model" not in twin
    assert not any("libvirt" in i or "kvmlab.host" in i for i in model)
    assert not {"kvmlab.memory.model", "kvmlab.memory.twin", "simpy"} & plot

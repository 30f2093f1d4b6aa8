"""VA→PA→MA in a real running guest: the model's walk over the guest's real tables finds
the PA that QEMU finds, for kernel and user addresses (marked live)."""

import os

import pytest

from kvmlab.memory import compare, run_on_host, simulate
from kvmlab.memory.scenario import KINDS, TraceScenario

pytestmark = pytest.mark.live
SAMPLES = 240


@pytest.fixture(scope="module")
def chain(live_uri, guest_image):
    from kvmlab.host.cleanup import find_leftovers

    def ours() -> set:        # what another running kvmlab process owns is its business
        return {item for item in find_leftovers(live_uri)
                if item.owner_pid is None or item.owner_pid == os.getpid()}

    before = ours()
    result = run_on_host(TraceScenario(samples=SAMPLES, seed=None), uri=live_uri)
    assert ours() - before == set(), "the trace left objects behind"
    ok, n = result.agreement()
    assert result.scenario.seed == result.provenance["seed"] is not None
    print(f"\nseed {result.provenance['seed']}: {ok}/{n} addresses agree "
          f"({result.provenance['accelerator']}); by kind {result.by_kind()}\n{result.table(3)}")
    return result


def test_the_model_walking_real_tables_finds_qemu_s_pa_for_every_address(chain):
    assert chain.agreement() == (SAMPLES, SAMPLES), [t for t in chain.translations
                                                     if not t.agrees][:5]
    assert set(chain.by_kind()) == set(KINDS)
    mapped = [t for t in chain.translations if t.kind != "unmapped"]
    assert all(t.model_pa is not None for t in mapped)
    assert all(t.model_pa is None and t.fault for t in chain.translations
               if t.kind == "unmapped")


def test_what_the_memory_layout_predicts_holds_in_the_real_guest(chain):
    comparison = compare(simulate(chain.scenario), chain)
    assert comparison.agrees and comparison.max_error == 0.0, comparison.table()
    assert comparison.by_kind() == {kind: (SAMPLES // 4, SAMPLES // 4) for kind in KINDS}


def test_the_guest_kernel_s_own_pagemap_agrees_for_the_program_s_pages(chain):
    user = [t for t in chain.translations if t.kind == "user"]
    assert user and all(t.guest_pagemap_pa == t.model_pa for t in user)
    assert {t.page_size for t in user} == {4096}


def test_kernel_text_sits_where_nokaslr_puts_it_in_huge_pages(chain):
    text = [t for t in chain.translations if t.kind == "kernel-text"]
    assert all(t.model_pa == t.va - 0xFFFF_FFFF_8000_0000 for t in text)
    assert any(t.page_size == 2 << 20 for t in text)
    assert all(len(t.refs) == chain.levels - {4096: 0, 2 << 20: 1}[t.page_size] for t in text)


def test_every_mapped_address_leads_to_a_machine_address(chain):
    mapped = [t for t in chain.translations if t.model_pa is not None]
    assert all(t.hva is not None and t.ma is not None for t in mapped)
    # the offset inside the page survives every step of the chain
    assert all(t.va % 4096 == t.model_pa % 4096 == t.hva % 4096 == t.ma % 4096 for t in mapped)


def test_the_program_s_pattern_is_in_guest_memory_and_in_qemu_s_memory(chain):
    seen = chain.pattern_seen
    assert seen["via_pa"] == seen["via_hva"] == "KVMLAB-PAGE-000000"


def test_libvirt_and_the_host_report_the_guest_s_memory(chain):
    memory = chain.memory
    assert memory["max_memory_kib"] == 128 * 1024
    assert memory["libvirt_kib"]["actual"] == 128 * 1024
    assert memory["qemu_rss_kib"] > 0


def test_the_command_line_traces_a_live_guest(live_uri, guest_image, capsys, no_leftovers):
    from kvmlab.cli import main

    assert main(["memory", "trace", "--uri", live_uri, "--samples", "12", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("12/12 addresses: the model's walk over the guest's real tables")
    assert "KVMLAB-PAGE-000000" in out

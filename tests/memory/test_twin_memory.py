"""The memory twin's pure parts: the monitor's answers, the program's report, the samples."""

import json

import pytest

from kvmlab.errors import ExperimentFailed, ScenarioError
from kvmlab.memory.paging import PageTables, walk
from kvmlab.memory.physmem import TablesInMemory
from kvmlab.memory.result import TraceResult, Translation
from kvmlab.memory.scenario import DIRECT_MAP, KERNEL_TEXT, TraceScenario, sample_addresses
from kvmlab.memory.twin import (
    parse_gpa2hva,
    parse_gva2gpa,
    parse_program_output,
    parse_registers,
    parse_xp,
)

REGISTERS = """CPU#0
RAX=0000000000000ff6 RBX=00007fe37c0b6000 RCX=0000000007fab300 RDX=00007fe37c0b92c0
RIP=00000000004016d3 RFL=00000206 [-----P-] CPL=3 II=0 A20=1 SMM=0 HLT=0
CR0=80050033 CR2=00000000148ea6d8 CR3=00000000056a0000 CR4=000006b0
DR0=0000000000000000 DR1=0000000000000000 DR2=0000000000000000 DR3=0000000000000000
EFER=0000000000000d01
"""


def test_registers_as_qemu_prints_them():
    regs = parse_registers(REGISTERS)
    assert regs == {"RIP": 0x4016D3, "CR0": 0x80050033, "CR2": 0x148EA6D8, "CR3": 0x56A0000,
                    "CR4": 0x6B0, "EFER": 0xD01, "CPL": 3}


def test_translations_and_their_absence():
    assert parse_gva2gpa("gpa: 0x29c3000\r\n") == 0x29C3000
    assert parse_gva2gpa("Unmapped\r\n") is None
    assert parse_gpa2hva("Host virtual address for 0x1000000 (pc.ram) is 0x7f3950e00000\r\n") \
        == 0x7F3950E00000
    assert parse_gpa2hva("No memory is mapped at address 0x100000000\r\n") is None


def monitor_dump(pa, data):
    """What `xp /512gx PA` prints for ``data``: two words a line."""
    words = [int.from_bytes(data[i:i + 8], "little") for i in range(0, len(data), 8)]
    return "".join(f"{pa + 16 * i:016x}: " + " ".join(f"{w:#018x}" for w in words[2 * i:2 * i + 2])
                   + "\r\n" for i in range(len(words) // 2))


class FakeMonitor:
    """Guest memory shown through `xp` text, as the real monitor shows it."""

    def __init__(self, pages):
        self.pages = pages

    def read_page(self, pa):
        return parse_xp(monitor_dump(pa, self.pages.get(pa, bytes(4096))))


def test_a_walk_over_tables_read_through_xp_text_finds_the_model_s_address():
    from kvmlab.memory.physmem import table_pages

    model = PageTables(4, base=0x5000)
    model.map(0xFFFF_FFFF_8100_0000, 0x100_0000, 2 << 20)
    model.map(0x7FF4_6708_A000, 0x29C_2000)
    real = TablesInMemory(model.root, 4, FakeMonitor(table_pages(model)))
    for va in (0xFFFF_FFFF_8100_0042, 0x7FF4_6708_AC53, 0x1000):
        assert walk(va, real).address == model.walk(va).address


def test_the_program_s_report():
    console = ("KVMLAB-BOOTED\nKVMLAB-BEGIN\npid=86\nbuffer=0x7ff46708a000\npages=2\n"
               "page 0 va=0x7ff46708a000 present=1 pfn=0x29c2\n"
               "page 1 va=0x7ff46708b000 present=0 pfn=0x0\nKVMLAB-MEM-READY\n")
    report = parse_program_output(console)
    assert report == {"pid": 86, "pages": [(0x7FF46708A000, 0x29C2000), (0x7FF46708B000, None)]}
    with pytest.raises(ExperimentFailed, match="report is missing"):
        parse_program_output("KVMLAB-BOOTED\nsegfault\n")


@pytest.mark.parametrize("levels", [4, 5])
def test_samples_cover_every_kind_and_stay_in_their_regions(levels):
    pages = [0x7F00_0000_0000 + i * 4096 for i in range(8)]
    picks = sample_addresses(pages, levels, 128 << 20, 400, seed=3)
    assert [k for k, _ in picks[:4]] == ["user", "kernel-text", "direct-map", "unmapped"]
    for kind, va in picks:
        if kind == "user":
            assert va - va % 4096 in pages
        elif kind == "kernel-text":
            assert KERNEL_TEXT <= va < KERNEL_TEXT + (16 << 20)
        elif kind == "direct-map":
            assert DIRECT_MAP[levels] <= va < DIRECT_MAP[levels] + (64 << 20)
    assert picks == sample_addresses(pages, levels, 128 << 20, 400, seed=3)
    with pytest.raises(ScenarioError, match="at least 1 address"):
        sample_addresses(pages, levels, 128 << 20, 0)


def test_a_trace_survives_json_and_counts_agreement():
    trace = TraceResult(TraceScenario(samples=3), "measured", [
        Translation(0x7F00, "user", 0x2000, 0x2000, 4096, ((4, 0x5000, 0),),
                    hva=0x7F11_0000_2000, ma=0x1_2345_6000),
        Translation(0x1000, "unmapped", None, None, fault="not present"),
        Translation(0x7F08, "user", 0x2008, 0x3008, 4096)], 0x5000, 4)
    again = TraceResult.from_dict(json.loads(json.dumps(trace.to_dict())))
    assert again == trace
    assert again.agreement() == (2, 3)
    assert again.by_kind() == {"user": (1, 2), "unmapped": (1, 1)}
    assert trace.translations[0].chain() == \
        "VA 0x7f00 -> PA 0x2000 -> HVA 0x7f1100002000 -> MA 0x123456000"
    assert "0x123456000" in trace.table()

"""Walking tables as bytes in memory gives what the model's tables give, everywhere."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmlab.errors import ScenarioError
from kvmlab.memory.paging import HUGE, PRESENT, PageTables, check_canonical, walk
from kvmlab.memory.physmem import DictMemory, TablesInMemory, table_pages

GiB = 1 << 30


def sign_extend(va, bits):
    return va | (((1 << 64) - 1) ^ ((1 << bits) - 1)) if va >> (bits - 1) & 1 else va


@settings(max_examples=200)
@given(levels=st.sampled_from([4, 5]),
       pages=st.lists(st.tuples(st.integers(0, (1 << 45) - 1), st.integers(0, (1 << 20) - 1),
                                st.sampled_from([4096, 2 << 20, GiB])), min_size=1, max_size=8),
       offset=st.integers(0, 4095), probe=st.integers(0, (1 << 57) - 1))
def test_tables_read_from_memory_translate_like_the_model(levels, pages, offset, probe):
    bits = 12 + 9 * levels
    model = PageTables(levels, base=0x10_0000)
    mapped = []
    for va_page, pa_page, size in pages:
        va = sign_extend(va_page * size % (1 << bits), bits)
        try:
            model.map(va, pa_page * size % (1 << 40), size)
            mapped.append(va)
        except ScenarioError:
            continue                                     # inside a huge page already
    real = TablesInMemory(model.root, levels, DictMemory(table_pages(model)))
    for va in [*(m + offset for m in mapped), sign_extend(probe % (1 << bits), bits)]:
        expected, got = model.walk(va), walk(va, real)
        assert (got.address, got.fault, got.refs, got.leaf_level) == (
            expected.address, expected.fault, expected.refs, expected.leaf_level)


def test_kernel_addresses_are_canonical_and_walk_like_the_real_kernels():
    model = PageTables(4, base=0x10_0000)
    model.map(0xFFFF_FFFF_8100_0000, 0x100_0000, 2 << 20)   # kernel text, a 2 MiB page
    model.map(0xFFFF_8880_0000_0000, 0, GiB)                # direct map, a 1 GiB page
    text = model.walk(0xFFFF_FFFF_8100_0123)
    assert (text.address, text.page_size, len(text.refs)) == (0x100_0123, 2 << 20, 3)
    direct = model.walk(0xFFFF_8880_0123_4567)
    assert (direct.address, direct.page_size, len(direct.refs)) == (0x123_4567, GiB, 2)


@pytest.mark.parametrize("va", [1 << 47, 0xFFFF_0000_0000_0000, 0x0001_0000_0000_0000, 1 << 64])
def test_non_canonical_addresses_name_the_rule(va):
    with pytest.raises(ScenarioError, match=r"not a (canonical 48-bit|64-bit virtual) address"):
        check_canonical(va, 4)


def test_five_levels_widen_the_canonical_range():
    assert check_canonical(1 << 47, 5) == 1 << 47
    with pytest.raises(ScenarioError, match="canonical 57-bit address: bits 63-56"):
        check_canonical(1 << 56, 5)


def test_a_ps_bit_in_a_pml4_entry_is_a_reserved_bit_fault():
    root = bytearray(4096)
    root[0:8] = struct.pack("<Q", 0x20_0000 | PRESENT | HUGE)
    tables = TablesInMemory(0x1000, 4, DictMemory({0x1000: bytes(root)}))
    assert walk(0x10, tables).fault == "reserved bit: PS set in a PML4 entry"


@pytest.mark.parametrize(("root", "levels", "rule"), [
    (0x1234, 4, "4 KiB boundary"), (0x1000, 3, "4 or 5 levels")])
def test_bad_tables_name_the_rule(root, levels, rule):
    with pytest.raises(ScenarioError, match=rule):
        TablesInMemory(root, levels, DictMemory({}))


def test_each_table_is_read_once():
    model = PageTables(4)
    for i in range(16):
        model.map(0x4000_0000 + i * 4096, i * 4096)
    ram = DictMemory(table_pages(model))
    real = TablesInMemory(model.root, 4, ram)
    for i in range(16):
        assert walk(0x4000_0000 + i * 4096 + 7, real).address == i * 4096 + 7
    assert ram.reads == real.tables_read == 4

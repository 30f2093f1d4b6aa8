import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvmlab.cpu.probe import parse_cpu_list, parse_schedstat, parse_vcpu_comm, vcpu_threads


@given(st.sets(st.integers(0, 255), min_size=1))
def test_cpu_lists_expand_to_the_set_they_describe(cpus):
    ranges, run = [], []
    for c in sorted(cpus):
        if run and c == run[-1] + 1:
            run.append(c)
        else:
            if run:
                ranges.append(run)
            run = [c]
    ranges.append(run)
    text = ",".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in ranges)
    assert parse_cpu_list(text) == tuple(sorted(cpus))


@pytest.mark.parametrize(("comm", "index"), [("CPU 0/KVM", 0), ("CPU 12/TCG", 12),
                                             ("CPU 1/KVM\n", 1), ("qemu-system-x86", None),
                                             ("IO mon_iothread", None), ("CPU x/TCG", None)])
def test_vcpu_thread_names(comm, index):
    assert parse_vcpu_comm(comm) == index


def test_schedstat_of_this_very_thread_is_readable():
    with open(f"/proc/self/task/{os.getpid()}/schedstat") as f:
        run, wait, slices = parse_schedstat(f.read())
    assert run > 0 and wait >= 0 and slices > 0


def test_a_process_without_vcpu_threads_has_none():
    assert vcpu_threads(os.getpid()) == []


@pytest.mark.parametrize(("tid", "name", "role"), [(10, "qemu-system-x86", "main-loop"),
                                                   (11, "qemu-system-x86", "qemu-system-x86"),
                                                   (12, "CPU 3/KVM", "vcpu3"),
                                                   (13, "IO mon_iothread", "IO mon_iothread"),
                                                   (14, "call_rcu", "call_rcu")])
def test_each_qemu_thread_has_a_role(tid, name, role):
    from kvmlab.cpu.probe import qemu_thread_role

    assert qemu_thread_role(10, tid, name) == role

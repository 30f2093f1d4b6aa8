"""Owner records: pid, start time and boot id tell a live owner from a reused pid."""

import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from kvmlab.host.owner import Owner, boot_id, owner_record, parse_owner, process_start


def fake_proc(tmp_path, pid: int, comm: str, start: int):
    (tmp_path / str(pid)).mkdir(parents=True, exist_ok=True)
    rest = ["S"] + [str(i) for i in range(4, 22)] + [str(start)] + ["0"] * 30
    (tmp_path / str(pid) / "stat").write_text(f"{pid} ({comm}) {' '.join(rest)}\n")
    return tmp_path


@given(comm=st.text(alphabet=st.characters(blacklist_categories=["Cs"],
                                           blacklist_characters="\0\n"), max_size=15),
       start=st.integers(min_value=0, max_value=2**63))
def test_the_start_time_is_field_22_whatever_the_command_name(tmp_path_factory, comm, start):
    proc = fake_proc(tmp_path_factory.mktemp("proc"), 321, comm, start)
    assert process_start(321, proc) == start


def test_the_start_time_of_this_process_is_what_proc_says():
    stat = Path(f"/proc/{os.getpid()}/stat").read_text()
    fields = stat.rpartition(")")[2].split()
    assert process_start(os.getpid()) == int(fields[19])
    assert process_start(2**22 + 7) is None


@given(pid=st.integers(1, 2**22), start=st.integers(0, 2**40),
       boot=st.from_regex(r"[0-9a-f-]{1,36}", fullmatch=True),
       host=st.from_regex(r"[A-Za-z0-9.-]{1,30}", fullmatch=True))
def test_an_owner_record_reads_back_as_written(pid, start, boot, host):
    text = f"kvmlab guest; owner pid={pid} start={start} boot={boot} host={host}"
    assert parse_owner(text) == Owner(pid, start, boot, host)


def test_only_the_very_process_that_made_it_is_alive():
    me = parse_owner(owner_record())
    assert me is not None and me.pid == os.getpid() and me.state() == "alive"
    assert Owner(os.getpid(), (me.start or 0) + 1, boot_id(), me.host).state() == "gone"
    assert Owner(2**22 + 7, 1, boot_id()).state() == "gone"
    assert Owner(os.getpid(), me.start, "earlier-boot", me.host).state() == "gone"
    assert Owner(1, 1, "other-boot", "no-such-host.example").state() == "elsewhere"

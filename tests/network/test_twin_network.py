"""The real-kernel twin's pure parts: frames on the wire, the setup batches, the plan, and
reading the guest's report back."""

from kvmlab.data import scenario_dict
from kvmlab.network import Topology
from kvmlab.network.tool import source
from kvmlab.network.twin import (
    FDB_MARKER,
    MAGIC,
    frame_bytes,
    guest_script,
    part_result,
    parts_of,
    plan,
    read_report,
    setup_batches,
)

TWO = Topology.from_dict(scenario_dict("net-two-bridges"))
HAIRPIN = Topology.from_dict(scenario_dict("net-hairpin"))


def test_each_topology_gets_names_of_its_own():
    parts = parts_of([TWO, HAIRPIN])
    assert parts[1].first_frame == len(TWO.frames)
    assert parts[0].bridge("br1") == "b0_1" and parts[1].bridge("br0") == "b1_0"
    assert parts[0].port("br1:up1") == "p0_1_2" and parts[1].netns("vm3") == "h1_2"
    batches = setup_batches(parts)
    ip, bridge = "\n".join(batches.ip), "\n".join(batches.bridge)
    assert "link add eth0 netns h0_0 address 52:54:00:00:00:0a up type veth peer name p0_0_0" in ip
    assert "link set p0_0_2 master b0_0 up" in ip and "mcast_snooping 0" in ip
    assert "link set dev p1_0_0 learning on flood on mcast_flood on bcast_flood on hairpin on" \
        in bridge.splitlines()
    script = guest_script(parts)
    assert "kvmlab-frames netns h0_0 h0_1 h0_2 h0_3 h1_0 h1_1 h1_2" in script


def test_frames_carry_their_index_and_go_out_in_time_order():
    parts = parts_of([TWO, HAIRPIN])
    lines = plan(parts).splitlines()
    sends = [line.split() for line in lines if line.startswith("send")]
    assert [int(s[1]) for s in sends] == sorted(int(s[1]) for s in sends)
    assert len(sends) == len(TWO.frames) + len(HAIRPIN.frames)
    raw = bytes.fromhex(sends[0][4])
    assert raw[14:20] == MAGIC and len(raw) == 60
    assert sum(line.startswith("listen") for line in lines) == len(TWO.nics) + len(HAIRPIN.nics)
    assert lines[-2].startswith("end ") and lines[-1].startswith(f"then echo {FDB_MARKER}")
    assert frame_bytes(HAIRPIN.frames[1], 300)[20:22] == (300).to_bytes(2, "big")


def test_the_report_becomes_receivers_and_tables_in_the_topologys_own_names():
    parts = parts_of([HAIRPIN])
    f0 = frame_bytes(HAIRPIN.frames[0], 0).hex()
    fdb = ["52:54:00:00:00:0a dev p0_0_0 master b0_0 ",
           "aa:bb:cc:00:00:01 dev p0_0_0 master b0_0 permanent",
           "01:00:5e:00:00:01 dev b0_0 self permanent",
           "52:54:00:00:00:0b dev p9_0_0 master b9_0"]
    lines = ["TX 300100 h0_0 eth0", f"RX 300200 h0_1 eth0 - {f0}", f"RX 300300 h0_0 eth0 - {f0}",
             "RX 300400 h0_2 eth0 - ffffffffffff", "TX 400000 h0_0 eth0", "TX 500000 h0_0 eth0",
             "END 900000", FDB_MARKER, *fdb]
    seen = read_report(lines, len(HAIRPIN.frames))
    r = part_result(parts[0], seen, {}, {0: 0.0, 1: 0.1, 2: 0.2})
    assert r.receivers[0] == ("vm1:eth0", "vm2:eth0") and r.receivers[1] == ()
    assert r.fdb == {"br0": {"52:54:00:00:00:0a": "vnet0"}}
    assert len(seen.sent_at) == 3


def test_the_guest_tool_source_ships_with_the_package():
    assert b"PACKET_AUXDATA" in source() and b"CLONE_NEWNET" in source()


def test_an_arp_reply_is_read_and_matched_to_its_request():
    from kvmlab.network.twin import parse_arp_reply

    t = Topology.from_dict(scenario_dict("net-arp"))
    parts = parts_of([t])
    reply = bytes.fromhex("52540000000a52540000000b0806" "000108000604" "0002"
                          "52540000000b" "0a000002" "52540000000a" "0a000001")
    assert parse_arp_reply(reply) == ("52:54:00:00:00:0b", "10.0.0.2", "52:54:00:00:00:0a",
                                      "10.0.0.1")
    request = frame_bytes(t.frames[0], 0, "10.0.0.1").hex()
    lines = ["TX 300000 h0_0 eth0", f"RX 300100 h0_1 eth0 - {request}",
             f"RX 300200 h0_0 eth0 - {reply.hex()}", "TX 400000 h0_0 eth0",
             "TX 500000 h0_2 eth0", "END 900000", FDB_MARKER]
    seen = read_report(lines, len(t.frames))
    r = part_result(parts[0], seen, {}, {0: 0.0, 1: 0.1, 2: 0.2})
    assert r.receivers[0] == ("vm2:eth0",)
    assert (r.repliers[0], r.replies[0]) == ("vm2:eth0", ("vm1:eth0",))
    assert r.repliers[1:] == [None, None]

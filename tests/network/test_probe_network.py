"""The read-only host probe, on a sysfs tree laid out like the kernel's."""

from kvmlab.network.probe import FDB_ENTRY, host_bridges


def make_bridge(root, name, ports, fdb):
    dev = root / name
    (dev / "bridge").mkdir(parents=True)
    (dev / "bridge" / "ageing_time").write_text("30000\n")
    (dev / "bridge" / "stp_state").write_text("0\n")
    for number, (port, flags) in enumerate(ports.items(), start=1):
        p = dev / "brif" / port
        p.mkdir(parents=True)
        (p / "port_no").write_text(f"{number:#x}\n")
        for f in ("learning", "unicast_flood", "multicast_flood", "broadcast_flood",
                  "hairpin_mode"):
            (p / f).write_text("1\n" if flags.get(f, f != "hairpin_mode") else "0\n")
    (dev / "brforward").write_bytes(b"".join(
        FDB_ENTRY.pack(bytes.fromhex(mac.replace(":", "")), port_no, local, timer, 0, 0, 0)
        for mac, port_no, local, timer in fdb))


def test_bridges_ports_flags_and_learned_addresses(tmp_path):
    make_bridge(tmp_path, "br0", {"eth0": {}, "vnet0": {"hairpin_mode": True},
                                  "vnet1": {"learning": False}},
                [("52:54:00:00:00:0a", 2, 0, 120), ("aa:00:00:00:00:01", 1, 1, 0)])
    (tmp_path / "eth0").mkdir()                     # not a bridge
    [br] = host_bridges(tmp_path)
    assert br.name == "br0" and br.ageing_s == 300 and not br.stp
    assert [p.name for p in br.ports] == ["eth0", "vnet0", "vnet1"]
    assert br.ports[1].flags["hairpin"] and not br.ports[2].flags["learning"]
    assert br.learned() == {"52:54:00:00:00:0a": "vnet0"}
    assert br.fdb[0].age_s == 1.2

"""A libvirt NAT network rebuilt on a real kernel, inside the tiny guest.

The guest's own network namespace plays the libvirt host: the bridge from the network's
XML (``virbr0`` with 192.168.122.1/24 for ``default``), a real dnsmasq with the options
libvirt writes for it (:func:`dnsmasq_conf`), and masquerading as libvirt's rules do it
(:func:`nft_rules`, nftables instead of libvirt's iptables, the same matches). Each
guest of the scenario is a network namespace behind a veth whose other end (``vnetN``,
like libvirt's tap devices) is a bridge port; busybox ``udhcpc`` asks for its lease, one
guest after the other. An ``outside`` namespace behind an uplink holds a UDP server
(``kvmlab-nat serve``) that prints the source address and port it sees. At the end the
guest prints dnsmasq's leases file and the kernel's connection table
(``/proc/net/nf_conntrack``).

Nothing of this touches the host's own network: it all happens inside the guest.

Examples
--------
>>> from kvmlab.network.natscenario import load_nat_scenario
>>> print(dnsmasq_conf(load_nat_scenario("nat-default-network").network))
... # doctest: +ELLIPSIS
strict-order
...
interface=virbr0
dhcp-range=192.168.122.2,192.168.122.254,255.255.255.0
...
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kvmlab.errors import ExperimentFailed, ToolMissing
from kvmlab.host import ctool
from kvmlab.host.connect import check_uri
from kvmlab.host.guest import TransientGuest
from kvmlab.host.image import NAT_DIR, NAT_TOOLS, GuestImage, nat_tools_found
from kvmlab.host.signals import stop_signals_as_exit
from kvmlab.lab import MEASURED
from kvmlab.network.natresult import NatResult, Translation
from kvmlab.network.natscenario import SERVER_ADDRESS, NatScenario, load_nat_scenario
from kvmlab.network.tool import frames_tool
from kvmlab.network.virtnet import NAT_PORTS, NOT_NATTED, OUTSIDE_ADDRESS, VirtualNetwork
from kvmlab.progress import ProgressArg, check_progress, progress_bar

__all__ = ["LEASES_FILE", "dnsmasq_conf", "nat_guest_script", "nft_rules", "parse_conntrack",
           "read_nat_report", "run_nat_on_host"]

IP = "/opt/iproute2/ip"
BRIDGE = "/opt/iproute2/bridge"
LEASES_FILE = "/run/kvmlab-dnsmasq.leases"
HOSTS_FILE = "/run/kvmlab-dnsmasq.hostsfile"
MARK = "KVMLAB-NAT"


def dnsmasq_conf(net: VirtualNetwork) -> str:
    """dnsmasq's configuration as libvirt writes it for ``net`` (``/var/lib/libvirt/dnsmasq/
    NAME.conf``), with three changes for the guest: the pid and leases files under ``/run``,
    ``user=root`` (the guest has no other user) and ``port=0`` (no DNS: the lab is about
    DHCP). libvirt itself keeps leases through a helper (``leasefile-ro`` and
    ``dhcp-script``); a plain leases file holds the same MAC/address pairs."""
    assert net.address is not None and net.bridge
    mask = net.address.network.netmask
    lines = ["strict-order", "pid-file=/run/kvmlab-dnsmasq.pid", "except-interface=lo",
             "bind-dynamic", f"interface={net.bridge}"]
    lines += [f"dhcp-range={a},{b},{mask}" for a, b in net.dhcp_ranges]
    lines += ["dhcp-no-override", "dhcp-authoritative", f"dhcp-lease-max={net.dhcp_size}",
              f"dhcp-hostsfile={HOSTS_FILE}", f"dhcp-leasefile={LEASES_FILE}", "port=0",
              "user=root", "log-facility=/run/kvmlab-dnsmasq.log"]
    return "\n".join(lines) + "\n"


def nft_rules(net: VirtualNetwork) -> str:
    """libvirt's masquerading rules for ``net`` (its ``LIBVIRT_PRT`` chain) in nftables form:
    no NAT to local multicast and broadcast, TCP and UDP moved into ports 1024-65535,
    everything else masqueraded as it is.

    Examples
    --------
    >>> from kvmlab.network.natscenario import load_nat_scenario
    >>> "masquerade to :1024-65535" in nft_rules(load_nat_scenario("nat-default-network").network)
    True
    """
    assert net.address is not None
    sub = net.address.network
    low, high = NAT_PORTS
    lines = ["table ip kvmlab_nat {", "  chain postrouting {",
             "    type nat hook postrouting priority srcnat; policy accept;"]
    lines += [f"    ip saddr {sub} ip daddr {n} return" for n in NOT_NATTED]
    lines += [f"    ip saddr {sub} ip daddr != {sub} meta l4proto {{ tcp, udp }} "
              f"masquerade to :{low}-{high}",
              f"    ip saddr {sub} ip daddr != {sub} masquerade", "  }", "}"]
    return "\n".join(lines) + "\n"


def _udhcpc_script() -> str:
    return f"""#!/bin/sh
case "$1" in
bound|renew)
  {IP} addr add $ip/${{mask:-24}} dev $interface
  [ -n "$router" ] && {IP} route add default via ${{router%% *}} dev $interface
  echo "{MARK} LEASE $KVMLAB_GUEST $ip";;
esac
"""


def nat_guest_script(s: NatScenario) -> str:
    """The shell script that builds the NAT network in the guest and runs the scenario."""
    net = s.network
    assert net.address is not None and net.bridge
    br = net.bridge
    nss = " ".join(["outside", *(g.name for g in s.guests)])
    lines = ["set -e", "echo 1 > /proc/sys/kernel/printk", "echo KERNEL=$(uname -r)",
             "/bin/kvmlab-insmod net", "/bin/kvmlab-insmod nat",
             "mkdir -p /run/netns /var/lib/misc", f": > {HOSTS_FILE}",
             f"echo DNSMASQ=$({NAT_DIR}/dnsmasq --version | head -n 1)",
             f"/kvmlab/kvmlab-frames netns {nss}",
             "echo 1 > /proc/sys/net/ipv4/ip_forward",
             f"{IP} link add {br} type bridge stp_state 0 "
             f"forward_delay {round(net.delay_s * 100)}"]
    if net.stp:
        lines.append(f"{IP} link set {br} type bridge stp_state 1")
    lines += [f"{IP} addr add {net.address} dev {br}", f"{IP} link set {br} up",
              f"{IP} link add uplink up type veth peer name eth0 netns outside",
              f"{IP} addr add {OUTSIDE_ADDRESS}/24 dev uplink",
              f"{IP} -n outside addr add {SERVER_ADDRESS}/24 dev eth0",
              f"{IP} -n outside link set eth0 up", f"{IP} -n outside link set lo up"]
    for mac, (ip, _name) in net.static_hosts.items():
        lines.append(f"echo {mac},{ip} >> {HOSTS_FILE}")
    for i, g in enumerate(s.guests):
        lines += [f"{IP} link add vnet{i} type veth peer name eth0 netns {g.name} "
                  f"address {g.mac}",
                  f"{IP} link set vnet{i} master {br} up",
                  f"{IP} -n {g.name} link set eth0 up", f"{IP} -n {g.name} link set lo up"]
    lines += [f"{NAT_DIR}/nft -f /kvmlab/nat.nft",
              f"{NAT_DIR}/dnsmasq --conf-file=/kvmlab/dnsmasq.conf"]
    for port in sorted({c.dport for c in s.connections}):
        lines.append(f"{IP} netns exec outside /kvmlab/kvmlab-nat serve {port} "
                     f">> /run/kvmlab-seen &")
    for g in s.guests:                   # one lease after the other, in the scenario's order
        lines.append(f"{IP} netns exec {g.name} env KVMLAB_GUEST={g.name} udhcpc -i eth0 -f "
                     "-q -n -t 20 -T 1 -s /kvmlab/udhcpc.sh 2>/dev/null || "
                     f"echo '{MARK} NOLEASE {g.name}'")
    for i, c in enumerate(s.connections):
        lines.append(f"{IP} netns exec {c.guest} /kvmlab/kvmlab-nat send {c.sport} "
                     f"{SERVER_ADDRESS} {c.dport} c{i}")
    lines += ["sleep 1", f"echo {MARK} LEASES", f"cat {LEASES_FILE}",
              f"echo {MARK} CONNTRACK", "cat /proc/net/nf_conntrack",
              f"echo {MARK} SEEN", "cat /run/kvmlab-seen",
              f"echo {MARK} PS", "ps | grep [d]nsmasq || true",
              f"echo {MARK} BRIDGE", f"{BRIDGE} link show", f"{IP} -br link show type bridge",
              f"echo {MARK} END"]
    return "\n".join(lines) + "\n"


def parse_conntrack(line: str) -> dict[str, str] | None:
    """One line of ``/proc/net/nf_conntrack``: the original and reply directions.

    Examples
    --------
    >>> e = parse_conntrack("ipv4 2 udp 17 29 src=192.168.122.28 dst=203.0.113.2 sport=40000 "
    ...     "dport=5000 [UNREPLIED] src=203.0.113.2 dst=203.0.113.1 sport=5000 dport=20070 "
    ...     "mark=0 zone=0 use=2")
    >>> e["proto"], e["src"], e["sport"], e["reply_dst"], e["reply_dport"]
    ('udp', '192.168.122.28', '40000', '203.0.113.1', '20070')
    """
    words = line.split()
    if len(words) < 6 or words[0] != "ipv4":
        return None
    out = {"proto": words[2]}
    seen: set[str] = set()
    for w in words:
        key, eq, value = w.partition("=")
        if eq and key in ("src", "dst", "sport", "dport"):
            out[("reply_" if key in seen else "") + key] = value
            seen.add(key)
    return out if {"src", "reply_dst"} <= set(out) else None


def read_nat_report(s: NatScenario, lines: list[str], provenance: dict[str, Any]
                    ) -> NatResult:
    """The measured result from the guest's console lines (see :func:`nat_guest_script`)."""
    leases: dict[str, str] = {}
    part = ""
    lease_file, conntrack, seen, shown = [], [], {}, []
    for line in lines:
        words = line.split()
        if words[:1] == [MARK]:
            if words[1] == "LEASE" and len(words) == 4:
                leases[words[2]] = words[3]
            elif words[1] in ("LEASES", "CONNTRACK", "SEEN", "PS", "BRIDGE", "END"):
                part = words[1]
            continue
        if part == "LEASES" and len(words) >= 3:
            lease_file.append(f"{words[1]} {words[2]}")
        elif part == "CONNTRACK" and (entry := parse_conntrack(line)) is not None:
            conntrack.append(entry)
        elif part == "SEEN" and words[:1] == ["SEEN"] and len(words) == 4:
            seen[words[3]] = (words[1], int(words[2]))
        elif part in ("PS", "BRIDGE"):
            shown.append(line)
    translations, steps = [], []
    for i, c in enumerate(s.connections):
        src = leases.get(c.guest, "-")
        found = [e for e in conntrack if e["proto"] == c.proto and e["src"] == src
                 and e.get("sport") == str(c.sport) and e.get("dst") == SERVER_ADDRESS
                 and e.get("dport") == str(c.dport)]
        out = (found[0]["reply_dst"], int(found[0]["reply_dport"])) if found else ("-", 0)
        server = seen.get(f"c{i}")
        steps.append(f"connection {i}: conntrack {out[0]}:{out[1]}, the server saw "
                     + ("nothing" if server is None else f"{server[0]}:{server[1]}"))
        if server is not None and server != out:
            provenance.setdefault("disagreements", []).append(
                f"connection {i}: conntrack says {out}, the server saw {server}")
        translations.append(Translation(c.guest, src, c.sport, c.dport, *out))
    provenance["shown"] = shown
    return NatResult(s, MEASURED, leases, translations, sorted(lease_file), steps, provenance)


def run_nat_on_host(scenario: NatScenario | Mapping[str, Any] | str | Path, *,
                    uri: str | None = None, progress: ProgressArg = None,
                    image: GuestImage | None = None, timeout_s: float = 240.0) -> NatResult:
    """Run a NAT scenario on a real kernel with a real dnsmasq, in a tiny guest.

    Parameters
    ----------
    scenario : NatScenario, dict, str or Path
    uri : str, optional
        A QEMU libvirt URI (see :func:`kvmlab.host.guest.live_uri`).
    progress : None, bool or tqdm-like
        Three steps: the files, the guest, reading back.
    image : GuestImage, optional
    timeout_s : float

    Raises
    ------
    ScenarioError
        If the scenario, ``uri`` or ``progress`` breaks a rule (before anything starts).
    ToolMissing
        If the host has no dnsmasq or nft to copy into the guest (``scripts/setup-host.sh``
        installs ``dnsmasq-base`` and ``nftables``).
    HostUnavailable, ExperimentFailed
    """
    s = load_nat_scenario(scenario)
    check_uri(uri)
    progress = check_progress(progress)
    if missing := [t for t in NAT_TOOLS if t not in nat_tools_found()]:
        raise ToolMissing(f"{' and '.join(missing)} (for the guest's NAT network)",
                          "install dnsmasq-base and nftables (scripts/setup-host.sh does), "
                          "then `kvmlab image --force`")
    with stop_signals_as_exit(), progress_bar(progress, total=3, desc="NAT on a real kernel",
                                              unit="step") as bar:
        bar.set_postfix_str("writing dnsmasq's and nftables' configuration")
        files = {"kvmlab-frames": frames_tool(),
                 "kvmlab-nat": ctool.static_tool("kvmlab.network", "kvmlab-nat"),
                 "dnsmasq.conf": dnsmasq_conf(s.network).encode(),
                 "nat.nft": nft_rules(s.network).encode(),
                 "udhcpc.sh": _udhcpc_script().encode()}
        bar.update(1)
        bar.set_postfix_str(f"{len(s.guests)} guests ask a real dnsmasq for leases")
        with TransientGuest(nat_guest_script(s), uri=uri, purpose="network",
                            cmdline="ipv6.disable=1", image=image, files=files,
                            memory_mib=192 + 4 * len(s.guests),
                            lifetime_s=timeout_s + 120) as guest:
            out = guest.result(timeout_s)
            accel = guest.accel
        bar.update(1)
        bar.set_postfix_str("reading the leases file and the connection table")
        if out.exit_status != 0 or f"{MARK} END" not in out.lines:
            raise ExperimentFailed("the NAT network in the guest failed (exit status "
                                   f"{out.exit_status}):\n" + "\n".join(out.lines[-15:]))
        values = out.values()
        kernel = values.get("KERNEL", "unknown")
        provenance: dict[str, Any] = {
            "measured_on": f"Linux {kernel} in a tiny guest ({accel})",
            "guest_kernel": kernel, "accelerator": accel, "host_kernel": platform.release(),
            "dnsmasq": values.get("DNSMASQ", "unknown"),
            "network_xml": s.xml, "dnsmasq_conf": dnsmasq_conf(s.network),
            "nft_rules": nft_rules(s.network),
            "method": "bridge, veths and namespaces in a tiny guest; a real dnsmasq and "
                      "busybox udhcpc; nftables masquerading; /proc/net/nf_conntrack"}
        result = read_nat_report(s, out.lines, provenance)
        bar.update(1)
    return result

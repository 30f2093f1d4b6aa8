"""The model of a NAT scenario: dnsmasq's leases and the host's masquerading, in order.

The guests ask for their leases one after the other (:class:`~kvmlab.network.virtnet.Dnsmasq`
picks each address from a hash of the MAC); then each connection leaves through the
host's masquerading (:class:`~kvmlab.network.virtnet.Nat`). A simpy clock orders the
steps the way the real run does: one DHCP exchange after another, then the datagrams.

Examples
--------
>>> r = simulate_nat("nat-default-network")
>>> r.source, r.leases["vm1"], r.translations[0].out_ip
('simulated', '192.168.122.27', '203.0.113.1')
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import simpy

from kvmlab.lab import SIMULATED
from kvmlab.network.natresult import NatResult, Translation
from kvmlab.network.natscenario import SERVER_ADDRESS, NatScenario, load_nat_scenario
from kvmlab.network.virtnet import Dnsmasq, Nat
from kvmlab.progress import ProgressArg, check_progress, progress_bar

__all__ = ["DHCP_EXCHANGE_S", "simulate_nat"]

DHCP_EXCHANGE_S = 3.0
"""Model time of one DHCP exchange: dnsmasq pings an address for up to 3 s before it
offers it (it is not told ``no-ping``), which is most of a lease's time on the real run."""


def simulate_nat(scenario: NatScenario | Mapping[str, Any] | str | Path, *, seed: int = 0,
                 progress: ProgressArg = None) -> NatResult:
    """Leases and translations of a NAT scenario as the model predicts them.

    Parameters
    ----------
    scenario : NatScenario, dict, str or Path
        See :class:`~kvmlab.network.natscenario.NatScenario`.
    seed : int
        Unused (the model is deterministic); kept for the lab contract.
    progress : None, bool or tqdm-like
        One step per guest and per connection.
    """
    s = load_nat_scenario(scenario)
    progress = check_progress(progress)
    server, nat = Dnsmasq(s.network), Nat(s.network)
    leases: dict[str, str] = {}
    translations: list[Translation] = []
    steps: list[str] = []
    env = simpy.Environment()

    def run(bar: Any) -> Iterator[simpy.Event]:
        for g in s.guests:
            before = g.mac in server.leases
            lease = server.request(g.mac, now_s=env.now)
            leases[g.name] = lease.ip
            why = ("the MAC (client identifier 01:MAC) already holds a lease: dnsmasq "
                   "gives this guest the same address" if before else lease.how)
            steps.append(f"{env.now:6.1f}s  {g.name} ({g.mac}) gets {lease.ip}: {why}")
            bar.update(1)
            yield env.timeout(DHCP_EXCHANGE_S)
        for c in s.connections:
            src = leases[c.guest]
            verdict = nat.outbound(c.proto, src, c.sport, SERVER_ADDRESS, c.dport)
            assert verdict.translated is not None
            out_ip, out_port = verdict.translated[0], verdict.translated[1]
            translations.append(Translation(c.guest, src, c.sport, c.dport, out_ip, out_port))
            kept = out_port == c.sport
            steps.append(f"{env.now:6.1f}s  {c.guest} {src}:{c.sport} -> "
                         f"{SERVER_ADDRESS}:{c.dport} leaves as {out_ip}:"
                         + (f"{c.sport} (port kept: free)" if kept else
                            "another port (its own is taken or below 1024; the kernel "
                            "picks one from a random offset)"))
            bar.update(1)
            yield env.timeout(0.001)

    with progress_bar(progress, total=len(s.guests) + len(s.connections),
                      desc="NAT model", unit="step") as bar:
        env.process(run(bar))
        env.run()
    lease_file = sorted(f"{mac} {lease.ip}" for mac, lease in server.leases.items())
    return NatResult(s, SIMULATED, leases, translations, lease_file, steps,
                     {"model": "kvmlab.network.virtnet: dnsmasq's address_allocate "
                               "(SDBM hash of the MAC) and masquerading 1024-65535",
                      "seed": seed})

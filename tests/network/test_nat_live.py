"""libvirt's default NAT network on a real kernel with a real dnsmasq (marked live): the
model's leases and translated sources against dnsmasq's leases file and the kernel's
connection table."""

import shutil

import pytest

from kvmlab.lab import MEASURED
from kvmlab.network import compare, run_on_host, simulate
from tests.conftest import require

pytestmark = pytest.mark.live


def test_default_nat_network_agrees_with_real_dnsmasq_and_conntrack(live_uri, guest_image,
                                                                    no_leftovers):
    require(shutil.which("dnsmasq") is not None and shutil.which("nft") is not None,
            "dnsmasq or nft is not installed (scripts/setup-host.sh installs dnsmasq-base "
            "and nftables)")
    real = run_on_host("nat-default-network", uri=live_uri, image=guest_image)
    assert real.source == MEASURED and real.provenance["dnsmasq"].startswith("Dnsmasq")
    assert not real.provenance.get("disagreements"), real.provenance["disagreements"]
    # the leases file holds one lease per MAC: the two guests with one MAC share it
    assert len(real.lease_file) == len({g.mac for g in real.scenario.guests})
    assert real.leases["vm3"] == real.leases["vm5"]
    comparison = compare(simulate("nat-default-network"), real)
    assert comparison.agrees, comparison.table()

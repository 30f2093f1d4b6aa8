"""A read-only tour of a libvirt host: the node, its capabilities, domains, networks, storage.

Every function takes an open connection (from :func:`kvmlab.host.connect`), only *reads*
(it never starts, stops, defines or refreshes anything, so a read-only connection is
enough) and returns plain frozen dataclasses. Each dataclass knows the ``virsh`` command
that shows the same facts (its ``VIRSH`` attribute), prints as an aligned list of
``field  value`` lines and renders as an HTML table in a notebook. :func:`as_table` and
:class:`Table` lay out a list of them as a table.

A libvirt error never escapes as a raw ``libvirtError``: it becomes a
:class:`~kvmlab.errors.HostUnavailable` that says what was being read, why it failed and
what to do. An object that disappears while it is being listed (a guest undefined by
someone else a moment earlier) is left out instead.

Examples
--------
>>> from kvmlab.host import connect
>>> from kvmlab.host.tour import as_table, list_domains, node_info
>>> conn = connect("test:///default")
>>> node_info(conn).cpus                   # libvirt's test driver fakes a 16-CPU host
16
>>> domains = {d.name: d for d in list_domains(conn)}   # the test driver has one, "test"
>>> print(as_table([domains["test"]], columns=["name", "id", "state", "vcpus"]))
name  id  state    vcpus
----  --  -------  -----
test   1  running      2
>>> VIRSH_EQUIVALENT["list_domains"]
'virsh list --all'
"""

from kvmlab.display import Table, as_table, human_bytes
from kvmlab.host.inventory import (
    DomainInfo,
    NetworkInfo,
    PoolInfo,
    VolumeInfo,
    list_domains,
    list_networks,
    list_pools,
    state_word,
)
from kvmlab.host.node import (
    CapabilitiesSummary,
    GuestOffer,
    NodeInfo,
    capabilities_summary,
    node_info,
    parse_capabilities,
)

__all__ = [
    "VIRSH_EQUIVALENT",
    "CapabilitiesSummary",
    "DomainInfo",
    "GuestOffer",
    "NetworkInfo",
    "NodeInfo",
    "PoolInfo",
    "Table",
    "VolumeInfo",
    "as_table",
    "capabilities_summary",
    "human_bytes",
    "list_domains",
    "list_networks",
    "list_pools",
    "node_info",
    "parse_capabilities",
    "state_word",
]

VIRSH_EQUIVALENT: dict[str, str] = {
    "node_info": NodeInfo.VIRSH,
    "capabilities_summary": CapabilitiesSummary.VIRSH,
    "list_domains": DomainInfo.VIRSH,
    "list_networks": NetworkInfo.VIRSH,
    "list_pools": PoolInfo.VIRSH,
}
"""The ``virsh`` command(s) a practitioner would type to see what each function returns."""

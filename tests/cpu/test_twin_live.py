"""The CPU model against a real host: the same scenarios as real guests (marked live)."""

import pytest

from kvmlab.cpu import compare, load_scenario, run_on_host, simulate
from kvmlab.cpu.probe import host_cpu_count, vcpu_threads
from kvmlab.errors import ScenarioError
from kvmlab.host.guest import TransientGuest
from kvmlab.host.image import BOOT_MARKER

pytestmark = pytest.mark.live
TOLERANCE = 0.05
MEASURE_S = 6.0


@pytest.mark.parametrize("name", ["cpu-seed-example", "cpu-pinned-unequal",
                                  "cpu-unequal-shares", "cpu-duty-cycle"])
def test_simulated_shares_match_the_real_host(name, live_uri, guest_image, no_leftovers):
    scenario = load_scenario(name).with_duration(MEASURE_S)
    if scenario.pcpus > host_cpu_count():
        pytest.skip(f"{name} needs {scenario.pcpus} host CPUs")
    measured = run_on_host(scenario, uri=live_uri)
    comparison = compare(simulate(scenario, seed=0), measured)
    print(f"\n{name} ({measured.provenance['accelerator']}):\n{comparison.table()}")
    other = measured.provenance["other_load_pcpus"]
    runnable = {f"{d['vm']}/{d['vcpu']}": round(d["runnable_share"], 3)
                for d in measured.provenance["domstats"]}
    print("runnable shares:", runnable, "discarded:", measured.provenance["discarded_windows"])
    # Each VM's share is what the host's per-VM cgroups guarantee. How a VM's share splits
    # between its own unpinned vCPUs depends on where the kernel placed their threads: some
    # runs give one vCPU of vm1 0.8 and the other 0.15 (all runnable), which the model does
    # not predict; for such VMs only the VM's total is held to the tolerance.
    # Emulated (TCG) guests also lean on QEMU's own threads and locks, so a VM's demand is
    # not quite a pure busy loop: there, a run has given one VM 0.57 of its vCPUs' time
    # where fair sharing says 0.50 (and the other 0.43). Under KVM the bound is TOLERANCE.
    vm_tolerance = TOLERANCE if measured.provenance["accelerator"] == "kvm" else 2 * TOLERANCE
    sim_vm, real_vm = simulated_by_vm(comparison), measured.vm_utilisation()
    for vm, share in sim_vm.items():
        assert abs(share - real_vm[vm]) <= vm_tolerance, (vm, share, real_vm[vm], runnable)
    pinned = {vm.name for vm in scenario.vms if vm.pin is not None or vm.vcpus == 1}
    errors = [e for e in comparison.rows if e.vm in pinned]
    assert max((max(abs(e.run_error), abs(e.wait_error)) for e in errors),
               default=0.0) <= TOLERANCE, (
        f"{comparison.table()}\n(the host spent {other} pCPUs on other work meanwhile; "
        f"runnable shares {runnable}; discarded windows "
        f"{measured.provenance['discarded_windows']})")
    # libvirt's own per-vCPU run time tells the same story as the threads' schedstat
    for v, dom in zip(measured.vcpus, measured.provenance["domstats"], strict=True):
        assert (dom["vm"], dom["vcpu"]) == (v.vm, v.vcpu)
        assert dom["time_share"] == pytest.approx(v.run_share, abs=0.03)


def simulated_by_vm(comparison):
    return comparison.simulated.vm_utilisation()


def test_a_scenario_with_more_pcpus_than_the_host_is_refused_up_front(live_uri):
    too_many = host_cpu_count() + 1
    scenario = {"pcpus": too_many, "duration_s": 1, "vms": [{"name": "a", "vcpus": 1}]}
    with pytest.raises(ScenarioError, match=f"the scenario has {too_many} pCPUs but the host"):
        run_on_host(scenario, uri=live_uri)


def test_the_probe_lists_a_guests_vcpu_threads_with_their_pinning(live_uri, guest_image,
                                                                 no_leftovers):
    pcpus = min(2, host_cpu_count())
    pin = {0: [0], 1: [pcpus - 1]}
    with TransientGuest("sleep 30", vcpus=2, pinning=pin, uri=live_uri, purpose="probe",
                        image=guest_image) as guest:
        guest.wait_for(BOOT_MARKER, 90)
        threads = vcpu_threads(guest.qemu_pid())
    assert [t.vcpu for t in threads] == [0, 1]
    assert {t.name for t in threads} <= {"CPU 0/TCG", "CPU 1/TCG", "CPU 0/KVM", "CPU 1/KVM"}
    assert [t.allowed_pcpus for t in threads] == [(0,), (pcpus - 1,)]
    assert all(t.last_pcpu in t.allowed_pcpus for t in threads)
    assert all(t.run_ns > 0 and t.slices > 0 for t in threads)

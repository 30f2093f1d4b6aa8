"""CPU scenarios: physical CPUs, VMs with vCPUs, and what each vCPU wants to do.

A scenario is plain data. Its JSON form, which scripts may rely on::

    {"pcpus": 2, "duration_s": 20,
     "vms": [{"name": "vm1", "vcpus": 2, "pin": [0], "shares": 1024, "load": 1.0}]}

``pin`` (optional) restricts every vCPU of the VM to those physical CPUs, like
libvirt's ``<vcpupin>``; a list of lists pins each vCPU separately.
``emulator_pin`` (optional) restricts QEMU's other threads, its main loop among them, like
``<emulatorpin>`` (only the ``linux`` model has such threads). ``shares``
(optional, default 1024) is the VM's weight, like libvirt's ``<shares>``.
``load`` (optional, default 1.0) is the fraction of time each vCPU wants to run:
1.0 is a busy loop, 0.5 is busy for half of every ``period_ms`` (default 200) and
idle for the other half. ``trace`` (optional) replaces ``load`` with a recorded
pattern: a list of ``[busy_ms, idle_ms]`` pairs, repeated.

Every rule is checked here, when a scenario is built. :func:`load_scenario` reads a
shipped scenario by name, a JSON file or a dict; :func:`busy_scenario` and
:func:`overcommit_scenario` build hosts of alike VMs (the explorer's and the
``cpu-overcommit`` sweep's).

Examples
--------
>>> s = CpuScenario.from_dict({"pcpus": 2, "duration_s": 10,
...                            "vms": [{"name": "vm1", "vcpus": 2}, {"name": "vm2", "vcpus": 4}]})
>>> s.total_vcpus, s.overcommit
(6, 3.0)
>>> CpuScenario.from_dict({"pcpus": 2, "duration_s": 10,
...                        "vms": [{"name": "a", "vcpus": 1, "pin": [2]}]})
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: VM 'a' pins a vCPU to pCPU 2, but the host has pCPUs 0-1 ...
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvmlab.data import load_scenario_as
from kvmlab.errors import ScenarioError
from kvmlab.validate import (
    check_keys,
    is_real,
    is_whole,
    list_of,
    mapping,
    read_json_file,
    real_number,
    text,
    whole_number,
)

__all__ = ["DEFAULT_PERIOD_MS", "DEFAULT_SHARES", "MAX_DURATION_S", "MAX_MODEL_COST",
           "MAX_PCPUS", "MAX_VCPUS", "CpuScenario", "VmSpec", "as_scenario",
           "busy_scenario", "load_scenario", "overcommit_scenario"]

DEFAULT_SHARES = 1024
DEFAULT_PERIOD_MS = 200.0

# -- bounds: what the model computes in reasonable time and memory -------------------------
MAX_PCPUS = 1024
MAX_VCPUS = 4096
"""The most vCPUs of one scenario (all VMs); 10**9 vCPUs once took 2.8 GB, then MemoryError."""
MAX_DURATION_S = 3600.0
"""The longest run, simulated or measured, in seconds (an hour)."""
MIN_SLICE_MS = 0.01
MIN_PERIOD_MS = 0.1
MAX_MS = 3_600_000.0
"""The bounds of a time slice, a duty-cycle period and a trace value, in ms."""
MAX_MODEL_COST = 1_000_000
"""The most work the model is given: its scheduling slices (pcpus x duration_ms / slice_ms)
plus its vCPUs' busy/idle switches (vCPUs x duration_ms / cycle_ms x switches per cycle).
Measured on a 2-core x86_64 machine (Python 3.11, simpy 4): 1,000,000 slices of busy vCPUs
(2 pCPUs, 1500 s) took 8.2 s and 296 MiB with the timeline kept; 1,150,000 switches of 64
duty-cycled vCPUs took 10.8 s. So a run at the bound ends within about 10 s, and within 30 s on a
machine shared with other jobs, in well under 1 GiB."""


@dataclass(frozen=True)
class VmSpec:
    """One VM of a scenario. See the module docstring for the fields."""

    name: str
    vcpus: int
    pin: tuple[tuple[int, ...], ...] | None = None
    shares: int = DEFAULT_SHARES
    load: float = 1.0
    period_ms: float = DEFAULT_PERIOD_MS
    trace: tuple[tuple[float, float], ...] | None = None
    emulator_pin: tuple[int, ...] | None = None

    def segments_ms(self) -> tuple[tuple[float, float], ...]:
        """The repeated (busy_ms, idle_ms) pattern of each vCPU.

        Examples
        --------
        >>> VmSpec("v", 1, load=0.25, period_ms=200).segments_ms()
        ((50.0, 150.0),)
        """
        if self.trace is not None:
            return self.trace
        return ((self.load * self.period_ms, (1 - self.load) * self.period_ms),)

    @property
    def busy_fraction(self) -> float:
        """The long-run fraction of time each vCPU wants to run."""
        busy = sum(b for b, _ in self.segments_ms())
        return busy / sum(b + i for b, i in self.segments_ms())

    def allowed(self, vcpu: int, pcpus: int) -> tuple[int, ...]:
        """The pCPUs vCPU ``vcpu`` may run on."""
        if self.pin is None:
            return tuple(range(pcpus))
        return self.pin[vcpu] if len(self.pin) > 1 else self.pin[0]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "vcpus": self.vcpus}
        if self.pin is not None:
            out["pin"] = list(self.pin[0]) if len(self.pin) == 1 else [list(p) for p in self.pin]
        if self.emulator_pin is not None:
            out["emulator_pin"] = list(self.emulator_pin)
        if self.shares != DEFAULT_SHARES:
            out["shares"] = self.shares
        if self.trace is not None:
            out["trace"] = [list(seg) for seg in self.trace]
        else:
            out["load"] = self.load
            if self.period_ms != DEFAULT_PERIOD_MS:
                out["period_ms"] = self.period_ms
        return out


@dataclass(frozen=True)
class CpuScenario:
    """Physical CPUs, VMs, and how long to watch them.

    Parameters
    ----------
    pcpus : int
        Number of physical CPUs of the host.
    duration_s : float
        How long to simulate or measure, in seconds.
    vms : tuple of VmSpec
    slice_ms : float
        The scheduler's time slice (the Linux default base slice is a few ms).
    """

    pcpus: int
    duration_s: float
    vms: tuple[VmSpec, ...]
    slice_ms: float = 3.0
    name: str = ""
    description: str = field(default="", compare=False)

    @property
    def total_vcpus(self) -> int:
        return sum(vm.vcpus for vm in self.vms)

    @property
    def overcommit(self) -> float:
        """vCPUs per physical CPU (above 1 means overcommitted)."""
        return self.total_vcpus / self.pcpus

    def vm(self, name: str) -> VmSpec:
        """The VM called ``name``."""
        for vm in self.vms:
            if vm.name == name:
                return vm
        raise ScenarioError(f"no VM {name!r}; the scenario has {[v.name for v in self.vms]}")

    # -- (de)serialisation, with every rule checked in one place ---------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CpuScenario:
        """Build a scenario from its JSON form; raise ScenarioError naming a broken rule."""
        data = mapping(data, "a CPU scenario (pcpus, duration_s, vms)")
        check_keys(data, ("pcpus", "duration_s", "vms", "slice_ms", "name", "description"),
                   "the CPU scenario")
        for key in ("pcpus", "duration_s", "vms"):
            if key not in data:
                raise ScenarioError(f"a CPU scenario needs {key!r}")
        what = "pcpus (the number of physical CPUs)"
        pcpus = whole_number(whole_number(data["pcpus"], what, low=1), what, high=MAX_PCPUS)
        duration = real_number(data["duration_s"], "duration_s", high=MAX_DURATION_S,
                               unit="s")
        if duration <= 0:
            raise ScenarioError(f"duration_s must be positive, not {duration:g}")
        slice_ms = real_number(data.get("slice_ms", 3.0), "slice_ms", low=MIN_SLICE_MS,
                               high=MAX_MS, unit="ms")
        raw_vms = list_of(data["vms"], "vms (a non-empty list of VMs)", low=1, high=MAX_VCPUS)
        vms = tuple(_vm_from_dict(v, pcpus) for v in raw_vms)
        names = [vm.name for vm in vms]
        if len(set(names)) != len(names):
            raise ScenarioError(f"VM names must be unique, got {names}")
        total = sum(vm.vcpus for vm in vms)
        if total > MAX_VCPUS:
            raise ScenarioError(f"the VMs have {total} vCPUs; the model takes at most "
                                f"{MAX_VCPUS}")
        _check_cost(pcpus, duration, slice_ms, vms)
        return cls(pcpus=pcpus, duration_s=duration, vms=vms, slice_ms=slice_ms,
                   name=text(data.get("name", ""), "the scenario's name"),
                   description=text(data.get("description", ""), "the description",
                                    high=100_000))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.name:
            out["name"] = self.name
        if self.description:
            out["description"] = self.description
        out |= {"pcpus": self.pcpus, "duration_s": self.duration_s,
                "vms": [vm.to_dict() for vm in self.vms]}
        if self.slice_ms != 3.0:
            out["slice_ms"] = self.slice_ms
        return out

    @classmethod
    def load(cls, path: str | Path) -> CpuScenario:
        """Read a scenario from a JSON file."""
        return cls.from_dict(read_json_file(path, "scenario"))

    def with_duration(self, duration_s: float) -> CpuScenario:
        """The same scenario, watched for ``duration_s`` seconds."""
        return CpuScenario.from_dict({**self.to_dict(), "duration_s": duration_s})


def _check_cost(pcpus: int, duration_s: float, slice_ms: float,
                vms: tuple[VmSpec, ...]) -> None:
    """Refuse a scenario whose model run costs more than :data:`MAX_MODEL_COST`."""
    slices = pcpus * duration_s * 1000 / slice_ms
    switches = 0.0
    for vm in vms:
        segments = vm.segments_ms()
        cycle = sum(b + i for b, i in segments)
        if vm.busy_fraction < 1:
            switches += vm.vcpus * duration_s * 1000 / cycle * 2 * len(segments)
    if slices + switches > MAX_MODEL_COST:
        raise ScenarioError(
            f"this scenario is too large for the model: {slices:.3g} scheduling slices "
            f"(pcpus x duration_s / slice_ms) and {switches:.3g} busy/idle switches; the "
            f"model takes at most {MAX_MODEL_COST} of both together (about 10 s). Shorten "
            "duration_s, or lengthen slice_ms or period_ms")


def _vm_from_dict(data: Any, pcpus: int) -> VmSpec:
    data = mapping(data, "each VM")
    name = text(data.get("name", ""), "a VM's name", high=100)
    check_keys(data, ("name", "vcpus", "pin", "emulator_pin", "shares", "load", "period_ms",
                      "trace"), f"VM {name!r}")
    if not name:
        raise ScenarioError("every VM needs a name")
    vcpus = whole_number(whole_number(data.get("vcpus"), f"VM {name!r}: vcpus", low=1),
                         f"VM {name!r}: vcpus", high=MAX_VCPUS)
    shares = data.get("shares", DEFAULT_SHARES)
    if not is_whole(shares) or not 2 <= shares <= 10000:
        raise ScenarioError(f"VM {name!r}: shares must be a positive whole number from 2 to "
                            f"10000 (libvirt's default is {DEFAULT_SHARES}), not {shares!r}")
    load = real_number(data.get("load", 1.0), f"VM {name!r}: load")
    if not 0 <= load <= 1:
        raise ScenarioError(f"VM {name!r}: load is the busy fraction of each vCPU and must "
                            f"be between 0 and 1, not {load:g}")
    period = real_number(data.get("period_ms", DEFAULT_PERIOD_MS), f"VM {name!r}: period_ms",
                         low=MIN_PERIOD_MS, high=MAX_MS, unit="ms")
    pin = _pin(data.get("pin"), name, vcpus, pcpus)
    emulator_pin = _emulator_pin(data.get("emulator_pin"), name, pcpus)
    trace = None
    if data.get("trace") is not None:
        raw = list_of(data["trace"], f"VM {name!r}: trace (a list of [busy_ms, idle_ms])",
                      high=10_000)
        trace = tuple(_segment(seg, name) for seg in raw)
        if not trace or sum(b + i for b, i in trace) < MIN_PERIOD_MS:
            raise ScenarioError(f"VM {name!r}: a trace needs at least one [busy_ms, idle_ms] "
                                f"pair, with a total of at least {MIN_PERIOD_MS} ms")
    return VmSpec(name=name, vcpus=vcpus, pin=pin, shares=shares, load=load,
                  period_ms=period, trace=trace, emulator_pin=emulator_pin)


def _segment(seg: Any, name: str) -> tuple[float, float]:
    if not isinstance(seg, list | tuple) or len(seg) != 2:
        raise ScenarioError(f"VM {name!r}: each trace entry is [busy_ms, idle_ms], "
                            f"not {seg!r}")
    busy, idle = (real_number(x, f"VM {name!r}: trace value", high=MAX_MS) for x in seg)
    if busy < 0 or idle < 0:
        raise ScenarioError(f"VM {name!r}: trace times cannot be negative, got {list(seg)}")
    return busy, idle


def _pin(raw: Any, name: str, vcpus: int, pcpus: int) -> tuple[tuple[int, ...], ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list | tuple) or not raw or len(raw) > MAX_VCPUS:
        raise ScenarioError(f"VM {name!r}: pin is a list of pCPU numbers (or one such list "
                            f"per vCPU), not {raw!r}")
    per_vcpu = all(isinstance(x, list | tuple) for x in raw)
    sets = [list(x) for x in raw] if per_vcpu else [list(raw)]
    if per_vcpu and len(sets) != vcpus:
        raise ScenarioError(f"VM {name!r}: pin lists one pCPU set per vCPU, so it needs "
                            f"{vcpus} sets, not {len(sets)}")
    out = []
    for cpus in sets:
        if not cpus:
            raise ScenarioError(f"VM {name!r}: a vCPU must be allowed on at least one pCPU")
        out.append(_pcpu_set(cpus, name, "a vCPU", pcpus))
    return tuple(out)


def _emulator_pin(raw: Any, name: str, pcpus: int) -> tuple[int, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list | tuple) or not raw or any(
            isinstance(x, list | tuple) for x in raw):
        raise ScenarioError(f"VM {name!r}: emulator_pin is one list of pCPU numbers for "
                            f"QEMU's other threads, not {raw!r}")
    return _pcpu_set(raw, name, "its emulator threads", pcpus)


def _pcpu_set(cpus: Any, name: str, what: str, pcpus: int) -> tuple[int, ...]:
    """The sorted pCPUs of a pin, each a whole number below ``pcpus``."""
    for c in cpus:
        if not is_whole(c):
            raise ScenarioError(f"VM {name!r}: pCPU numbers are whole numbers, not {c!r}")
        if not 0 <= c < pcpus:
            raise ScenarioError(f"VM {name!r} pins {what} to pCPU {c}, but the host has "
                                f"pCPUs 0-{pcpus - 1} (pcpus={pcpus})")
    return tuple(sorted(set(cpus)))


# -- where scenarios come from ------------------------------------------------------------
def as_scenario(scenario: CpuScenario | Mapping[str, Any]) -> CpuScenario:
    """A scenario, from a scenario or its JSON form (a dict).

    Examples
    --------
    >>> as_scenario({"pcpus": 1, "duration_s": 1, "vms": [{"name": "a", "vcpus": 1}]}).pcpus
    1
    >>> as_scenario("cpu-seed-example")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: a CPU scenario is a CpuScenario or its JSON form (a dict), \
not 'cpu-seed-example'; load_scenario() reads one by name or from a file
    """
    if isinstance(scenario, CpuScenario):
        return scenario
    if isinstance(scenario, Mapping):
        return CpuScenario.from_dict(scenario)
    raise ScenarioError(f"a CPU scenario is a CpuScenario or its JSON form (a dict), not "
                        f"{scenario!r}; load_scenario() reads one by name or from a file")


def load_scenario(scenario: str | Path | Mapping[str, Any] | CpuScenario) -> CpuScenario:
    """A shipped scenario by name (``cpu-seed-example``), a scenario JSON file, or a dict.

    Parameters
    ----------
    scenario : str, Path, dict or CpuScenario
        A name of ``data/scenarios/`` (see :func:`kvmlab.data.scenario_names`), the path
        of a JSON file, the JSON form itself, or a scenario (returned as it is).

    Returns
    -------
    CpuScenario

    Raises
    ------
    ScenarioError
        If there is no such scenario, the file cannot be read, or a rule is broken.

    Examples
    --------
    >>> load_scenario("cpu-seed-example").total_vcpus
    6
    >>> load_scenario({"pcpus": 2, "duration_s": 1, "vms": [{"name": "a", "vcpus": 3}]}).overcommit
    1.5
    """
    return load_scenario_as(scenario, CpuScenario, CpuScenario.from_dict,
                            what="scenario", prefixes=["cpu-"])


def busy_scenario(pcpus: int, total_vcpus: int, vcpus_per_vm: int = 2, *, load: float = 1.0,
                  duration_s: float = 2.0, name: str = "", slice_ms: float = 3.0
                  ) -> CpuScenario:
    """A host with ``pcpus`` pCPUs and ``total_vcpus`` vCPUs in VMs of ``vcpus_per_vm``.

    The VMs are named ``vm1``, ``vm2``, ...; the last one is smaller when
    ``total_vcpus`` is not a multiple of ``vcpus_per_vm``. Every vCPU has the same
    ``load`` (1.0 is a busy loop).

    Examples
    --------
    >>> s = busy_scenario(2, 5, 2)
    >>> [(vm.name, vm.vcpus) for vm in s.vms], s.overcommit
    ([('vm1', 2), ('vm2', 2), ('vm3', 1)], 2.5)
    """
    if not is_whole(total_vcpus) or total_vcpus < 1:
        raise ScenarioError(f"a scenario needs at least one vCPU, not {total_vcpus!r}")
    whole_number(total_vcpus, "total_vcpus", high=MAX_VCPUS)
    vcpus_per_vm = whole_number(vcpus_per_vm, "vcpus_per_vm", low=1, high=MAX_VCPUS)
    sizes = [vcpus_per_vm] * (total_vcpus // vcpus_per_vm)
    if total_vcpus % vcpus_per_vm:
        sizes.append(total_vcpus % vcpus_per_vm)
    vms = [{"name": f"vm{i + 1}", "vcpus": n, "load": load} for i, n in enumerate(sizes)]
    return CpuScenario.from_dict({"name": name, "pcpus": pcpus, "duration_s": duration_s,
                                  "slice_ms": slice_ms, "vms": vms})


def overcommit_scenario(ratio: float, pcpus: int = 2, vcpus_per_vm: int = 2, *,
                        load: float = 1.0, duration_s: float = 2.0,
                        slice_ms: float = 3.0) -> CpuScenario:
    """Alike VMs at ``ratio`` vCPUs per pCPU: ``ratio * pcpus`` vCPUs, which must be whole.

    This is the scenario of every point of the ``cpu-overcommit`` sweep
    (:func:`kvmlab.sweep`). A ratio that does not give a whole number of vCPUs on
    ``pcpus`` pCPUs is refused rather than rounded, so the ratio a point shows is the
    ratio that ran.

    Parameters
    ----------
    ratio : float
        vCPUs per pCPU (above 1: overcommitted).
    pcpus : int
        Physical CPUs of the host.
    vcpus_per_vm : int
        vCPUs of each VM (the last VM may have fewer, see :func:`busy_scenario`).
    load : float
        The busy fraction of every vCPU (1.0: a busy loop).
    duration_s, slice_ms : float
        As in :class:`CpuScenario`.

    Returns
    -------
    CpuScenario
        Named ``sweep-<vcpus>-on-<pcpus>``.

    Raises
    ------
    ScenarioError
        If ``ratio`` is not positive, or ``ratio * pcpus`` is not a whole number.

    Examples
    --------
    >>> s = overcommit_scenario(1.5, pcpus=2)
    >>> s.name, [vm.vcpus for vm in s.vms], s.overcommit
    ('sweep-3-on-2', [2, 1], 1.5)
    >>> overcommit_scenario(1.2, pcpus=3)
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: ratio 1.2 on 3 pCPU(s) is 3.6 vCPUs; a ratio times pcpus \
must be a whole number of vCPUs (on 3 pCPU(s): steps of 0.333333)
    """
    if not is_real(ratio) or ratio <= 0:
        raise ScenarioError(f"ratio is vCPUs per pCPU, a positive number, not {ratio!r}")
    pcpus = whole_number(pcpus, "pcpus", low=1, high=MAX_PCPUS)
    if ratio * pcpus > MAX_VCPUS:
        raise ScenarioError(f"ratio {ratio:g} on {pcpus} pCPU(s) is {ratio * pcpus:g} vCPUs; "
                            f"the model takes at most {MAX_VCPUS}")
    total = round(ratio * pcpus)
    if abs(ratio * pcpus - total) > 1e-9:
        raise ScenarioError(f"ratio {ratio:g} on {pcpus} pCPU(s) is {ratio * pcpus:g} vCPUs; "
                            f"a ratio times pcpus must be a whole number of vCPUs (on "
                            f"{pcpus} pCPU(s): steps of {1 / pcpus:g})")
    return busy_scenario(pcpus, total, vcpus_per_vm, load=load, duration_s=duration_s,
                         name=f"sweep-{total}-on-{pcpus}", slice_ms=slice_ms)

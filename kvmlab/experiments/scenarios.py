"""What a sweep can run: named scenarios of the labs, or any function of yours.

A scenario is a function ``model(**params, seed=...)`` that returns a dict of figures
(numbers), and optionally ``host(**params, uri=..., progress=...)`` that measures the
same figures on a real libvirt host. Its keyword parameters and their defaults are the
parameters a grid may vary. The labs ship two:

``cpu-overcommit``
    Busy (or partly busy) VMs on a host with ``pcpus`` pCPUs at ``ratio`` vCPUs per pCPU:
    the vCPUs' mean wait (steal) share. Runs on the model and on a real host.
``tlb-working-set``
    A trace over a working set of ``working_set_kib`` KiB through a TLB and a page-walk
    cache in front of the two-dimensional walk: the hit rate and the references per access.

Examples
--------
>>> scenario_for("cpu-overcommit").model(ratio=2, duration_s=1, seed=0)["wait_share"]
0.5
>>> sorted(scenario_for("tlb-working-set").defaults)
['accesses', 'host_page', 'page', 'pattern', 'pwc_entries', 'tlb_entries', 'working_set_kib']
>>> scenario_for("cpu-overcomit")
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: no scenario 'cpu-overcomit'; the scenarios are ...
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kvmlab.errors import ScenarioError
from kvmlab.progress import ProgressArg
from kvmlab.validate import is_real, real_number, whole_number

Figures = dict[str, Any]


# -- CPU: wait share against overcommit ------------------------------------------------
def _cpu_scenario(ratio: float, pcpus: int, vcpus_per_vm: int, load: float,
                  duration_s: float) -> Any:
    """The scenario of one point: the CPU lab's rule (whole vCPUs only, never rounded)."""
    from kvmlab.cpu.scenario import overcommit_scenario

    return overcommit_scenario(ratio, pcpus, vcpus_per_vm, load=load, duration_s=duration_s)


def _cpu_figures(result: Any) -> Figures:
    from kvmlab.cpu.result import mean_shares

    runs = [v.run_share for v in result.vcpus]
    return {**mean_shares(result), "run_share_spread": round(max(runs) - min(runs), 6),
            "overcommit": result.scenario.overcommit}


def cpu_overcommit(ratio: float = 2.0, pcpus: int = 2, vcpus_per_vm: int = 2,
                   load: float = 1.0, duration_s: float = 2.0, scheduler: str = "fair",
                   *, seed: int = 0) -> Figures:
    """Simulate ``ratio * pcpus`` vCPUs on ``pcpus`` pCPUs; their mean shares.

    ``ratio * pcpus`` must be a whole number of vCPUs (see
    :func:`kvmlab.cpu.overcommit_scenario`): a ratio that is not is refused, not rounded.

    Examples
    --------
    Three vCPUs on two pCPUs, as a VM of two and a VM of one: each VM gets a pCPU's worth,
    so the lone vCPU runs all the time and the other two half of it.

    >>> cpu_overcommit(ratio=1.5, duration_s=1)
    {'run_share': 0.666667, 'wait_share': 0.333333, 'ready_pct': 33.3333, \
'run_share_spread': 0.496, 'overcommit': 1.5}
    """
    from kvmlab.cpu.model import simulate

    scenario = _cpu_scenario(ratio, pcpus, vcpus_per_vm, load, duration_s)
    return _cpu_figures(simulate(scenario, seed=seed, scheduler=scheduler,
                                 record_timeline=False))


def cpu_overcommit_on_host(ratio: float = 2.0, pcpus: int = 2, vcpus_per_vm: int = 2,
                           load: float = 1.0, duration_s: float = 2.0, *,
                           uri: str | None = None, progress: ProgressArg = None) -> Figures:
    """The same VMs as real guests on a libvirt host (:func:`kvmlab.cpu.run_on_host`).

    ``progress`` follows :mod:`kvmlab.progress`: the run reports its own steps (guests
    started, loads running, the measurement) to it.
    """
    from kvmlab.cpu.twin import run_on_host

    scenario = _cpu_scenario(ratio, pcpus, vcpus_per_vm, load, duration_s)
    result = run_on_host(scenario, uri=uri, progress=progress)
    return {**_cpu_figures(result), "accelerator": result.provenance.get("accelerator")}


def cpu_overcommit_estimate_s(ratio: float = 2.0, pcpus: int = 2, vcpus_per_vm: int = 2,
                              load: float = 1.0, duration_s: float = 2.0) -> float:
    """Rough seconds of one real run: boot the VMs, settle, measure, tear down.

    It checks the parameters first, so a sweep refuses a bad point before any guest boots.

    Examples
    --------
    >>> cpu_overcommit_estimate_s(ratio=3, duration_s=3)
    13.0
    """
    vms = len(_cpu_scenario(ratio, pcpus, vcpus_per_vm, load, duration_s).vms)
    return 6.0 + 1.0 * vms + 1.0 + duration_s


# -- Memory: TLB hit rate against the working set ---------------------------------------
MAX_WORKING_SET_KIB = 256 * 1024
"""The largest working set of ``tlb-working-set``, in KiB (256 MiB of 4 KiB pages: 65,536
pages mapped twice, by the guest and the nested tables)."""
MAX_ACCESSES = 500_000
"""The most accesses of one ``tlb-working-set`` trace. Measured on a 2-core x86_64 machine
(Python 3.11): both bounds at once took 16.7 s and 233 MiB; 1e9 KiB once never ended."""
MAX_CACHE_ENTRIES = 65536
"""The most TLB or page-walk-cache entries modelled."""


def tlb_working_set(working_set_kib: int = 256, pattern: str = "random", tlb_entries: int = 64,
                    pwc_entries: int = 32, page: str = "4K", host_page: str = "4K",
                    accesses: int = 20_000, *, seed: int = 0) -> Figures:
    """Run a trace of ``accesses`` over ``working_set_kib`` KiB through the TLB model.

    Examples
    --------
    >>> tlb_working_set(working_set_kib=128, accesses=5000)["hit_rate"]   # 32 pages fit
    0.9936
    """
    from kvmlab.memory.machine import identity_machine
    from kvmlab.memory.tlb import run, trace

    if not is_real(working_set_kib) or working_set_kib <= 0:
        raise ScenarioError(f"working_set_kib must be a positive number, "
                            f"not {working_set_kib!r}")
    real_number(working_set_kib, "working_set_kib", high=MAX_WORKING_SET_KIB, unit="KiB")
    whole_number(accesses, "accesses", low=1, high=MAX_ACCESSES)
    whole_number(tlb_entries, "tlb_entries", low=0, high=MAX_CACHE_ENTRIES)
    whole_number(pwc_entries, "pwc_entries", low=0, high=MAX_CACHE_ENTRIES)
    size = int(working_set_kib * 1024)
    guest, host = identity_machine(size, page, host_page)
    result = run(trace(pattern, accesses, size, seed=seed), guest, host,
                 tlb_entries=tlb_entries, pwc_entries=pwc_entries)
    return {"hit_rate": result.hit_rate, "refs_per_access": result.refs_per_access,
            "tlb_misses": result.tlb_misses}


# -- the registry ----------------------------------------------------------------------
@dataclass(frozen=True)
class Scenario:
    """A function to sweep, and optionally its real-host twin.

    Parameters
    ----------
    name : str
    model : callable
        ``model(**params, seed=...) -> dict`` of figures; must be importable by name (a
        module-level function) to run in other processes.
    host : callable, optional
        ``host(**params, uri=..., progress=...) -> dict``: the same figures, measured.
    estimate_s : callable, optional
        ``estimate_s(**params) -> float``: rough seconds of one host run, for the first
        time estimate before any run has finished.
    description : str
    """

    name: str
    model: Callable[..., Figures]
    host: Callable[..., Figures] | None = None
    estimate_s: Callable[..., float] | None = None
    description: str = ""
    defaults: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        params = inspect.signature(self.model).parameters
        defaults = {n: p.default for n, p in params.items()
                    if n != "seed" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        object.__setattr__(self, "defaults", defaults)
        if "seed" not in params and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            raise ScenarioError(f"a scenario function takes a 'seed' keyword (for its random "
                                f"numbers); {self.name} does not")

    def identity(self) -> str:
        """What saved runs are matched by: a shipped scenario's name, or a function's
        module and qualified name."""
        if self.name in SCENARIOS and SCENARIOS[self.name] is self:
            return self.name
        module = getattr(self.model, "__module__", "?")
        return f"{module}.{getattr(self.model, '__qualname__', self.name)}"

    def host_parameters(self) -> set[str]:
        """The parameters a real-host run takes."""
        if self.host is None:
            return set()
        return {n for n in inspect.signature(self.host).parameters
                if n not in ("uri", "progress")}

    def check(self, names: Mapping[str, Any] | set[str], *, on_host: bool = False) -> None:
        """Refuse grid parameters this scenario does not have, naming the ones it has."""
        known = self.host_parameters() if on_host else set(self.defaults)
        for name in names:
            if name not in known:
                hint = difflib.get_close_matches(name, known, n=1)
                where = "a real-host run of " if on_host else ""
                also = (" (it is a parameter of the model only: a real host has its own)"
                        if on_host and name in self.defaults else "")
                raise ScenarioError(
                    f"{where}{self.name} has no parameter {name!r}{also}"
                    f"{f'; did you mean {hint[0]!r}?' if hint else ''}; its parameters are "
                    f"{', '.join(sorted(known))}")


SCENARIOS: dict[str, Scenario] = {
    s.name: s for s in (
        Scenario("cpu-overcommit", cpu_overcommit, cpu_overcommit_on_host,
                 cpu_overcommit_estimate_s,
                 "vCPUs' wait (steal) share against vCPUs per pCPU"),
        Scenario("tlb-working-set", tlb_working_set, None, None,
                 "TLB hit rate and walk references against the working set"),
    )
}


def scenario_for(scenario: str | Scenario | Callable[..., Figures]) -> Scenario:
    """The :class:`Scenario` for a name, a Scenario, or a function of your own.

    A function of your own is swept as it is: its keyword parameters are the grid's,
    and it must accept ``seed``.
    """
    if isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, str):
        if scenario not in SCENARIOS:
            raise ScenarioError(f"no scenario {scenario!r}; the scenarios are "
                                f"{', '.join(SCENARIOS)} (or pass a function of your own)")
        return SCENARIOS[scenario]
    if callable(scenario):
        return Scenario(getattr(scenario, "__name__", repr(scenario)), scenario)
    raise ScenarioError(f"a scenario is a name ({', '.join(SCENARIOS)}), a Scenario or a "
                        f"function, not {scenario!r}")

"""How well each CPU scheduler of the model agrees with repeated real-host runs.

A real host is chaotic where guests compete for CPUs: *which* VM starves changes
from run to run. So one recording is compared with the model by VM means and by
the *spread* between VMs, each averaged over repetitions (recorded runs) and over
seeds (simulations):

per-VM run share
    each VM's mean run share per vCPU, averaged over the repetitions;
spread
    the largest minus the smallest per-VM run share of one run, averaged over runs.

Repetitions of a recording ``NAME`` are the recordings ``NAME``, ``NAME.r2``,
``NAME.r3`` and so on (:func:`recorded_repetitions`); ``kvmlab cpu record`` makes them.

Examples
--------
>>> row = agreement("cpu-seed-example", scheduler="fair", seeds=1, duration_s=1)
>>> row.name, row.repetitions, row.agrees
('cpu-seed-example', 5, True)
>>> sorted(row.real)
['vm1', 'vm2']
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from kvmlab.cpu.eevdf import Kernel
from kvmlab.cpu.linux import simulate_linux
from kvmlab.cpu.model import simulate
from kvmlab.cpu.noise import NOISE_PREFIX, HostNoise
from kvmlab.cpu.result import CpuResult, recorded_result
from kvmlab.data import check_name, load_recorded, recorded_names, scenario_names
from kvmlab.errors import ScenarioError
from kvmlab.validate import whole_number

__all__ = ["RECORDING", "RUN_TOLERANCE", "SPREAD_TOLERANCE", "Agreement", "agreement",
           "agreement_rows", "per_vm", "recorded_agreement", "recorded_repetitions",
           "repetition_name", "spread", "summary_rows"]

RUN_TOLERANCE = 0.05
"""Largest difference in per-VM mean run share per vCPU that counts as agreeing."""
SPREAD_TOLERANCE = 0.1
"""Largest difference in mean spread between VMs that counts as agreeing."""
RECORDING = "agreement-cpu"
"""The shipped table of every scheduler against every recorded CPU scenario, made by
``kvmlab cpu agreement --seeds 100 --save`` (a hundred seeds of each at full length take
ten minutes, so notebook 01 reads it instead of computing it). Fewer seeds leave the means of
a chaotic scenario a few hundredths off: ``cpu-overcommit-3x``'s largest per-VM error was
0.065 with seeds 0 to 39, 0.031 with 40 to 79 and 0.025 with 80 to 119."""


def repetition_name(name: str, repetition: int) -> str:
    """The recording name of repetition ``repetition`` (1 is ``name`` itself).

    >>> repetition_name("cpu-overcommit-3x", 1), repetition_name("cpu-overcommit-3x", 3)
    ('cpu-overcommit-3x', 'cpu-overcommit-3x.r3')
    """
    check_name(name)
    repetition = whole_number(repetition, "repetition", low=1)
    return name if repetition == 1 else f"{name}.r{repetition}"


def recorded_repetitions(name: str) -> list[CpuResult]:
    """Every recorded repetition of ``name``, the first one first.

    >>> [r.source for r in recorded_repetitions("cpu-seed-example")][:1]
    ['measured']
    """
    check_name(name)
    pattern = re.compile(re.escape(name) + r"\.r(\d+)")
    extra = sorted((int(m.group(1)), n) for n in recorded_names(name)
                   if (m := pattern.fullmatch(n)))
    return [recorded_result(name)] + [recorded_result(n) for _i, n in extra]


def per_vm(result: CpuResult, what: str = "run_share") -> dict[str, float]:
    """Each VM's mean ``run_share`` (or ``wait_share``) per vCPU in one result.

    >>> from kvmlab.data import scenario_dict
    >>> seed_example = scenario_dict("cpu-seed-example") | {"duration_s": 1}
    >>> per_vm(simulate(seed_example))
    {'vm1': 0.5, 'vm2': 0.25}
    """
    if what not in ("run_share", "wait_share"):
        raise ScenarioError(f"per_vm gives run_share or wait_share, not {what!r}")
    if what == "run_share":
        return result.vm_utilisation()
    out: dict[str, list[float]] = {}
    for v in result.vcpus:
        out.setdefault(v.vm, []).append(getattr(v, what))
    return {vm: round(statistics.fmean(s), 6) for vm, s in out.items()}


def spread(result: CpuResult) -> float:
    """The largest minus the smallest per-VM mean run share of one result.

    >>> from kvmlab.data import scenario_dict
    >>> spread(simulate(scenario_dict("cpu-seed-example") | {"duration_s": 1}))
    0.25
    """
    shares = per_vm(result).values()
    return round(max(shares) - min(shares), 6)


def _mean_per_vm(results: Sequence[CpuResult], what: str) -> dict[str, float]:
    rows = [per_vm(r, what) for r in results]
    return {vm: round(statistics.fmean(row[vm] for row in rows), 4) for vm in rows[0]}


@dataclass(frozen=True)
class Agreement:
    """One scenario: real host (mean over repetitions) against a scheduler (over seeds)."""

    name: str
    scheduler: str
    repetitions: int
    seeds: int
    real: dict[str, float]
    model: dict[str, float]
    real_wait: dict[str, float]
    model_wait: dict[str, float]
    real_spread: float
    model_spread: float

    @property
    def run_error(self) -> float:
        """The largest per-VM difference in mean run share per vCPU."""
        return round(max(abs(self.real[vm] - self.model[vm]) for vm in self.real), 4)

    @property
    def wait_error(self) -> float:
        """The largest per-VM difference in mean wait share per vCPU."""
        return round(max(abs(self.real_wait[vm] - self.model_wait[vm])
                         for vm in self.real_wait), 4)

    @property
    def spread_error(self) -> float:
        return round(abs(self.real_spread - self.model_spread), 4)

    @property
    def agrees(self) -> bool:
        """Per-VM mean run shares within :data:`RUN_TOLERANCE` and, on a chaotic host
        (where which VM loses changes between runs), the mean spread within
        :data:`SPREAD_TOLERANCE`."""
        return self.run_error <= RUN_TOLERANCE and (
            not self.chaotic or self.spread_error <= SPREAD_TOLERANCE)

    @property
    def chaotic(self) -> bool:
        """Whether the real spread is much wider than the spread of the real means."""
        means = self.real.values()
        return self.real_spread - (max(means) - min(means)) > RUN_TOLERANCE

    def to_dict(self) -> dict[str, Any]:
        out = {"agrees": self.agrees, "run_error": self.run_error,
               "wait_error": self.wait_error, "spread_error": self.spread_error,
               "chaotic": self.chaotic}
        out.update(asdict(self))
        return out


def agreement(name: str, *, scheduler: str = "linux", seeds: int = 5,
              duration_s: float | None = None,
              repetitions: Iterable[CpuResult] | None = None,
              kernel: Kernel | None = None, machine_group: bool = False) -> Agreement:
    """Compare the recorded repetitions of ``name`` with ``seeds`` simulations.

    The ``linux`` model gets the other work the first run had on its host on purpose
    (``provenance['noise']``, see :mod:`kvmlab.cpu.noise`; none if absent); the ``fair``
    model has no host besides the guests.

    Parameters
    ----------
    name : str
        A recording (and its repetitions ``NAME.rN``).
    scheduler : str
        One of :data:`kvmlab.cpu.model.SCHEDULERS`.
    seeds : int
        Simulations with seeds ``0 .. seeds-1``.
    duration_s : float, optional
        Simulate this long instead of the recording's duration (for quick looks).
    repetitions : iterable of CpuResult, optional
        Measured runs to use instead of the recordings (a live test's own runs).
    kernel : Kernel, optional
        The ``linux`` scheduler's kernel settings (default: the recordings' host), for
        trying a kernel feature (``Kernel(delay_dequeue=False)``, say).
    machine_group : bool
        The ``linux`` scheduler's VMs in libvirt's ``machine`` group (see
        :func:`~kvmlab.cpu.linux.simulate_linux`).

    Raises
    ------
    ScenarioError
        Without measured runs, or for a ``kernel`` or ``machine_group`` with another
        scheduler than ``linux``.
    """
    if (kernel is not None or machine_group) and scheduler != "linux":
        raise ScenarioError(f"kernel settings and machine_group are for the linux scheduler, "
                            f"not {scheduler!r}")
    runs = list(repetitions) if repetitions is not None else recorded_repetitions(name)
    if not runs:
        raise ScenarioError(f"no measured runs of {name!r} to compare with")
    seeds = whole_number(seeds, "seeds", low=1, high=100)
    scenario = runs[0].scenario
    if duration_s is not None:
        scenario = scenario.with_duration(duration_s)
    if scheduler == "linux":
        noise = HostNoise(**runs[0].provenance.get("noise", {}))
        sims = [simulate_linux(scenario, seed=seed, kernel=kernel, noise=noise,
                               machine_group=machine_group) for seed in range(seeds)]
    else:
        sims = [simulate(scenario, seed=seed, scheduler=scheduler, record_timeline=False)
                for seed in range(seeds)]
    return Agreement(
        name=name, scheduler=scheduler, repetitions=len(runs), seeds=seeds,
        real=_mean_per_vm(runs, "run_share"), model=_mean_per_vm(sims, "run_share"),
        real_wait=_mean_per_vm(runs, "wait_share"), model_wait=_mean_per_vm(sims, "wait_share"),
        real_spread=round(statistics.fmean(spread(r) for r in runs), 4),
        model_spread=round(statistics.fmean(spread(r) for r in sims), 4))


def agreement_rows(names: Sequence[str] | None = None,
                   schedulers: Sequence[str] = ("fair", "linux"),
                   seeds: int = 10, machine_group: bool = False) -> list[dict[str, Any]]:
    """:meth:`Agreement.to_dict` of every scheduler against every recorded scenario.

    ``names`` defaults to every shipped ``cpu-`` scenario that has recordings, each
    followed by its runs with other work on the host (``noise-NAME``, see
    :mod:`kvmlab.cpu.noise`) where there are such. ``machine_group`` applies to the
    ``linux`` scheduler only.
    """
    if names is None:
        names = [m for n in scenario_names("cpu-") for m in (n, NOISE_PREFIX + n)
                 if m in recorded_names(m)]
    return [agreement(name, scheduler=scheduler, seeds=seeds,
                      machine_group=machine_group and scheduler == "linux").to_dict()
            for name in names for scheduler in schedulers]


def recorded_agreement() -> dict[str, Any]:
    """The shipped agreement table (:data:`RECORDING`): ``seeds`` and ``rows``.

    >>> table = recorded_agreement()
    >>> table["seeds"], sorted({row["scheduler"] for row in table["rows"]})
    (100, ['fair', 'linux'])
    """
    return load_recorded(RECORDING)


def summary_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The columns a reader wants of :func:`agreement_rows`, one row per scenario and
    scheduler ("agrees" as text).

    >>> summary_rows(recorded_agreement()["rows"])[0]["scheduler"]
    'fair'
    """
    return [{"scenario": r["name"], "scheduler": r["scheduler"], "runs": r["repetitions"],
             "largest VM error": r["run_error"], "spread real": r["real_spread"],
             "spread model": r["model_spread"], "agrees": "yes" if r["agrees"] else "no"}
            for r in rows]

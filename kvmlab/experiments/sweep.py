"""Run a scenario over a grid of parameters and several seeds, on the model or a real host.

:func:`sweep` runs the model: in parallel processes on this machine by default, or on any
:class:`concurrent.futures.Executor` (a dask cluster's included: pass the
``distributed.Client`` or its ``client.get_executor()``), with a progress bar in the
notebook or the terminal. :func:`sweep_on_host` runs the same grid as real guests, one run
at a time, saving each result the moment it arrives so that a sweep that is interrupted (a
closed laptop, a killed kernel) resumes without redoing finished runs. Both return a
:class:`~kvmlab.experiments.table.SweepTable`.

Examples
--------
>>> t = sweep("cpu-overcommit", grid={"ratio": [0.5, 1, 2, 4], "duration_s": 1},
...           seeds=[0], executor="serial", progress=False)
>>> [(r["ratio"], r["wait_share"]) for r in t]
[(0.5, 0.0), (1, 0.0), (2, 0.5), (4, 0.75)]
>>> ax = t.plot("ratio", "wait_share")
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import numbers
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvmlab.errors import ExperimentFailed, KvmlabError, ScenarioError
from kvmlab.experiments.grid import PLAIN, check_seeds, expand, normalize, run_key
from kvmlab.experiments.scenarios import SCENARIOS, Figures, Scenario, scenario_for
from kvmlab.experiments.store import ResultStore
from kvmlab.experiments.table import SweepTable
from kvmlab.host.guest import live_uri
from kvmlab.host.image import cache_dir
from kvmlab.host.signals import die_with_owner, stop_signals_as_exit
from kvmlab.lab import MEASURED, SIMULATED
from kvmlab.progress import Progress, ProgressArg, progress_bar
from kvmlab.validate import is_whole


class SerialExecutor(cf.Executor):
    """An executor that runs each call at once, in this process (a baseline; debugging).

    Examples
    --------
    >>> SerialExecutor().submit(pow, 2, 10).result()
    1024
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        future: cf.Future[Any] = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - handed to whoever asks the future
            future.set_exception(exc)
        return future


class RunSteps:
    """What one run on a host reports, shown beside the sweep's bar, which counts runs.

    A lab's ``run_on_host`` reports its own steps (guests booted, windows measured) to the
    ``progress=`` it is given; the sweep hands it one of these, which passes what the run
    is doing (``set_postfix_str``) on to the sweep's bar, after the run's name, and leaves
    the counting of runs to the sweep.

    Examples
    --------
    >>> class Bar:
    ...     def update(self, n=1):
    ...         print("update", n)
    ...     def set_postfix_str(self, s="", refresh=True):
    ...         print(s)
    >>> steps = RunSteps(Bar(), "ratio=2, seed 0")
    >>> steps.set_postfix_str("booting kvmlab-vm1")
    ratio=2, seed 0: booting kvmlab-vm1
    >>> steps.update(1)                   # a step of the run, not a run: not counted
    """

    def __init__(self, bar: Progress, run: str) -> None:
        self.bar = bar
        self.run = run

    def update(self, n: float = 1) -> None:
        """A step of the run: the sweep counts whole runs, so nothing to do."""

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        """Show what the run is doing beside the sweep's bar."""
        self.bar.set_postfix_str(f"{self.run}: {s}" if s else self.run)


def run_one(model: Callable[..., Figures], params: Mapping[str, Any], seed: int) -> Figures:
    """One run of a model (a module-level function, so other processes can run it)."""
    return model(**params, seed=seed)


def _check_figures(spec: Scenario, params: Mapping[str, Any], figures: Any) -> Figures:
    """The figures as plain JSON-ready values (numpy numbers become Python ones)."""
    if not isinstance(figures, Mapping) or not figures:
        raise ScenarioError(f"{spec.name} must return a dict of figures (name to number); "
                            f"it returned {figures!r}")
    clash = set(figures) & ({*params, "seed", "source"})
    if clash:
        raise ScenarioError(f"{spec.name} returned the figure(s) {sorted(clash)}, which are "
                            "also parameter names; rename them")
    clean: Figures = {}
    for name, value in figures.items():
        if isinstance(value, str | bool) or value is None:
            clean[str(name)] = value
        elif isinstance(value, numbers.Integral):
            clean[str(name)] = int(value)
        elif isinstance(value, numbers.Real):
            clean[str(name)] = float(value)
        else:
            raise ScenarioError(f"{spec.name} returned the figure {name}={value!r}, a "
                                f"{type(value).__name__}; figures are numbers, strings, "
                                "booleans or None")
    return clean


def _figures_of(spec: Scenario, params: Mapping[str, Any], seed: int,
                get: Callable[[], Any]) -> Figures:
    """The checked figures of one run, or a kvmlab error that names the run."""
    where = f"{spec.name} with {dict(params)}, seed {seed}"
    try:
        return _check_figures(spec, params, get())
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: {exc}") from None
    except ExperimentFailed as exc:
        raise ExperimentFailed(f"{where}: {exc}") from None
    except KvmlabError:
        raise
    except Exception as exc:
        raise ExperimentFailed(f"{where} raised {type(exc).__name__}: {exc}") from exc


def local_cores() -> int:
    """The CPUs this process may run on (its affinity, which containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:            # pragma: no cover - not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def _executor(executor: Any, max_workers: int | None, runs: int) -> Iterator[cf.Executor]:
    """The executor to use; one made here is shut down afterwards (at once on an error)."""
    if max_workers is not None and not (is_whole(max_workers) and max_workers >= 1):
        raise ScenarioError(f"max_workers is a whole number of at least 1, not {max_workers!r}")
    if executor == "serial" or (executor is None and (runs <= 1 or max_workers == 1)):
        yield SerialExecutor()
        return
    if executor is None:
        workers = min(max_workers or local_cores(), runs)
        # fork: functions defined in a notebook or a script can run in the workers too
        pool = cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                      initializer=die_with_owner, initargs=(os.getpid(),))
        try:
            yield pool
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return
    if hasattr(executor, "get_executor") and not isinstance(executor, cf.Executor):
        executor = executor.get_executor()          # a dask.distributed Client
    if not isinstance(executor, cf.Executor):
        raise ScenarioError(f"executor must be a concurrent.futures.Executor, a "
                            f"dask.distributed Client, 'serial' or None; not {executor!r}")
    yield executor


def _outcomes(pool: cf.Executor, spec: Scenario, todo: list[tuple[dict[str, Any], int]]
              ) -> Iterator[tuple[dict[str, Any], int, cf.Future[Any]]]:
    """Each run's future as it finishes; in this process, one run at a time."""
    if isinstance(pool, SerialExecutor):
        for params, seed in todo:                   # run, then hand over, then the next
            yield params, seed, pool.submit(run_one, spec.model, params, seed)
        return
    futures = {pool.submit(run_one, spec.model, p, s): (p, s) for p, s in todo}
    try:
        for future in cf.as_completed(futures):
            yield *futures[future], future
    finally:
        for future in futures:
            future.cancel()


@dataclass(frozen=True)
class _Plan:
    spec: Scenario
    grid: dict[str, list[Any]]
    seeds: tuple[int, ...]
    points: list[dict[str, Any]]

    @property
    def runs(self) -> list[tuple[dict[str, Any], int]]:
        """Every run in table order: grid order, seed fastest."""
        return [(p, s) for p in self.points for s in self.seeds]

    def header(self, source: str, **more: Any) -> dict[str, Any]:
        """What a results file of this sweep must say it holds."""
        return {"scenario": self.spec.name, "function": self.spec.identity(),
                "defaults": {k: v if isinstance(v, PLAIN) else repr(v)
                             for k, v in self.spec.defaults.items()},
                "source": source, **more}


def _plan(scenario: Any, grid: Mapping[str, Any] | None, seeds: Iterable[int],
          on_host: bool) -> _Plan:
    spec = scenario_for(scenario)
    if on_host and spec.host is None:
        able = [n for n, s in SCENARIOS.items() if s.host is not None]
        raise ScenarioError(f"{spec.name} has no real-host version; the scenarios that run "
                            f"on a host are {', '.join(able)}")
    values = normalize(grid)
    spec.check(values, on_host=on_host)
    return _Plan(spec, values, check_seeds(seeds), expand(values))


def _table(plan: _Plan, results: Mapping[str, Figures], source: str) -> SweepTable:
    rows, figures = [], {}
    for params, seed in plan.runs:
        found = results[run_key(params, seed)]
        figures.update(dict.fromkeys(found))
        rows.append({**params, "seed": seed, "source": source, **found})
    return SweepTable(rows, list(plan.grid), list(figures), plan.spec.name)


def sweep(scenario: str | Scenario | Callable[..., Figures],
          grid: Mapping[str, Any] | None = None, seeds: Iterable[int] = (0,),
          executor: Any = None, *, save: str | Path | None = None,
          progress: ProgressArg = True, max_workers: int | None = None) -> SweepTable:
    """Run the model of ``scenario`` for every point of ``grid`` and every seed.

    Parameters
    ----------
    scenario : str, Scenario or callable
        A shipped scenario (``'cpu-overcommit'``, ``'tlb-working-set'``), or a function
        ``f(**params, seed=...) -> dict`` of your own (module-level, to run in processes).
    grid : mapping, optional
        Parameter name to the values to try (or to one value). Omitted parameters keep
        the scenario's defaults.
    seeds : iterable of int
        Every point runs once per seed.
    executor : None, 'serial', concurrent.futures.Executor or dask Client
        ``None``: a process per local core. ``'serial'``: in this process, one at a time.
        An executor of yours (a ``ThreadPoolExecutor``, a ``ProcessPoolExecutor``, a dask
        ``Client`` or ``client.get_executor()``) is used and left open.
    save : str or Path, optional
        A JSON Lines file: each run is saved the moment it ends, and runs already in the
        file are not run again (the sweep resumes).
    progress : bool or tqdm-like
        ``True``: a bar of runs (a widget in a notebook, a line in a terminal); ``False``
        or ``None``: silent; a tqdm-like bar of yours is told each finished run (see
        :mod:`kvmlab.progress`).
    max_workers : int, optional
        Processes of the default executor (default: every core).

    Returns
    -------
    SweepTable
        One row per run in grid order (seed fastest): parameters, seed,
        ``source='simulated'`` and figures, whatever order the runs finished in.

    Raises
    ------
    ScenarioError
        For an unknown scenario or parameter, a bad grid or seeds, or a run whose
        parameters break a rule (the message names the run and the rule).

    Examples
    --------
    >>> t = sweep("tlb-working-set", {"working_set_kib": [128, 1024], "accesses": 4000},
    ...           seeds=range(2), executor="serial", progress=False)
    >>> [(r["working_set_kib"], r["seed"], r["hit_rate"]) for r in t]
    [(128, 0, 0.992), (128, 1, 0.992), (1024, 0, 0.2535), (1024, 1, 0.263)]
    """
    plan = _plan(scenario, grid, seeds, on_host=False)
    spec, runs = plan.spec, plan.runs
    if save and "<lambda>" in spec.identity():
        raise ScenarioError("a lambda has no name that saved runs can be matched by; define "
                            "the function with def to use save=")
    store = ResultStore(save, plan.header(SIMULATED)) if save else None
    results: dict[str, Figures] = dict(store.results) if store else {}
    todo = [(p, s) for p, s in runs if run_key(p, s) not in results]
    with progress_bar(progress, total=len(runs), desc=spec.name, unit="run") as bar, \
            stop_signals_as_exit(), _executor(executor, max_workers, len(todo)) as pool, \
            contextlib.closing(_outcomes(pool, spec, todo)) as outcomes:
        if len(todo) < len(runs):
            bar.update(len(runs) - len(todo))          # saved by an earlier call
        for params, seed, future in outcomes:
            figures = _figures_of(spec, params, seed, future.result)
            results[run_key(params, seed)] = figures
            if store:
                store.add(params, seed, figures)
            bar.update(1)
    return _table(plan, results, SIMULATED)


def default_save_path(spec: Scenario, uri: str) -> Path:
    """Where a host sweep saves its runs unless told: one file per scenario and host.

    The same call, or one with more grid values or seeds, finds the same file and runs
    only what is missing.

    Examples
    --------
    >>> from kvmlab.experiments import scenario_for
    >>> default_save_path(scenario_for("cpu-overcommit"), "qemu:///system").name
    'cpu-overcommit-qemu-system.jsonl'
    """
    host = re.sub(r"[^A-Za-z0-9.@-]+", "-", uri).strip("-")
    return cache_dir() / "sweeps" / f"{spec.name}-{host}.jsonl"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def sweep_on_host(scenario: str | Scenario, grid: Mapping[str, Any] | None = None,
                  seeds: Iterable[int] = (0,), uri: str | None = None, *,
                  save: str | Path | None = None, fresh: bool = False,
                  progress: ProgressArg = True) -> SweepTable:
    """Run ``scenario`` over ``grid`` on a real host, one run at a time, resumably.

    Each run boots its guests, measures and removes them before the next one starts (the
    runs must not disturb each other). Each finished run is saved at once, so calling
    this again with the same arguments after an interruption (Ctrl-C, a killed kernel)
    runs only what is missing.

    Parameters
    ----------
    scenario : str or Scenario
        A scenario with a real-host version (``'cpu-overcommit'``).
    grid, seeds
        As for :func:`sweep`; on a real host a "seed" is a repetition (the host has its
        own randomness), and model-only parameters (``scheduler``) are refused.
    uri : str, optional
        A local QEMU libvirt URI (default: ``KVMLAB_URI`` unless it is the test driver,
        else ``qemu:///system`` for root and ``qemu:///session`` for others).
    save : str or Path, optional
        The results file (default: one per scenario, grid, seeds and host in kvmlab's
        cache folder, so the same call resumes).
    fresh : bool
        Forget the saved runs and start again.
    progress : bool or tqdm-like
        A bar of runs with a time estimate (``True``), silence (``False``, ``None``) or a
        tqdm-like bar of yours (see :mod:`kvmlab.progress`). Each run's host function gets
        ``progress=`` a :class:`RunSteps`, which shows the run's steps beside that bar.

    Returns
    -------
    SweepTable
        With ``source='measured'``.

    Raises
    ------
    ScenarioError
        If the scenario has no real-host version or the grid a model-only parameter.
    HostUnavailable, ExperimentFailed
        From the runs (finished runs stay saved).
    """
    plan = _plan(scenario, grid, seeds, on_host=True)
    spec, host_run = plan.spec, plan.spec.host
    assert host_run is not None
    uri = live_uri(uri)
    path = Path(save) if save else default_save_path(spec, uri)
    header = plan.header(MEASURED, uri=uri)
    if fresh and path.exists():
        ResultStore(path, header)             # refuses a file that is not this sweep's
        path.unlink()
    # Estimating each point's time also checks it, before the first guest boots.
    cost = [spec.estimate_s(**p) if spec.estimate_s else 0.0 for p in plan.points]
    store = ResultStore(path, header)
    # Seeds outermost: a drift of the host over time spreads over every grid point
    # instead of lining up with one parameter.
    todo = [(i, s) for s in plan.seeds for i, p in enumerate(plan.points)
            if run_key(p, s) not in store.results]
    runs = len(plan.points) * len(plan.seeds)
    with progress_bar(progress, total=runs, desc=f"{spec.name} on {uri}", unit="run") as bar, \
            stop_signals_as_exit():
        if len(todo) < runs:
            bar.update(runs - len(todo))               # saved by an earlier call
        if progress and todo:
            guess = sum(cost[i] for i, _ in todo)
            saved = f", {runs - len(todo)} already saved" if len(todo) < runs else ""
            plan_text = (f"{len(todo)} run(s) to do{saved}, about "
                         f"{_minutes(guess) + ' in all' if guess else '? (no estimate yet)'};"
                         f" results go to {path}")
            write = getattr(bar, "write", None)          # tqdm's: a line above the bar
            if callable(write):
                write(plan_text)
            else:
                bar.set_postfix_str(plan_text)
        for i, seed in todo:
            params = plan.points[i]
            steps = RunSteps(bar, f"{params}, seed {seed}")
            steps.set_postfix_str()
            figures = _figures_of(spec, params, seed, lambda p=params, st=steps: host_run(
                **p, uri=uri, progress=st))
            store.add(params, seed, figures)
            bar.update(1)
    return _table(plan, store.results, MEASURED)

"""Probabilistic sensitivity analysis: seeded draws -> model -> CE plane, CEAC/CEAF, EVPI, EVPPI.

``cea psa --country GB --draws 10000 --seed 1`` and ``cea psa --countries all --draws 5000``.
This module owns the random numbers (STYLE.md: "psa.py creates the Generator"); the model
(:func:`cea.igrt.model.run_model`) has none, and :mod:`cea.analysis.voi` turns per-draw results into the
decision-uncertainty tables. ``docs/psa.md`` explains the methods and how to read every output.

Draws
-----
Every parameter row gives its distribution through ``ParameterTable.distribution`` (method
of moments from ``value`` and ``se`` or the 95% range, so the centre is the base-case value).
Parameters are split into

- **clinical** (every row not in ``category = prices``): drawn once and shared by every
  country of a run, from the distributions of ``parameters.csv`` with the scenario applied
  but without ``country_overrides.csv``, with the optional Gaussian copula of
  ``inputs/correlations.csv``. A country whose override changes a parameter keeps the same
  random numbers through its own quantile function: x_c = F_c^-1(F_ref(x_ref)) (common
  random numbers; a fixed override, such as body weight, is simply the country's value);
- **prices** (``prices/<ISO2>.csv``): drawn per country, independently.

Seeding: one integer seed -> :class:`numpy.random.SeedSequence` children identified by a
``spawn_key``: ``(0,)`` for the clinical stream and ``(1, k)`` for a country's prices, where
k is the ISO2 code read as a base-256 integer ("GB" -> 0x4742). A country's streams
therefore depend only on the seed and its own code, never on which other countries are in
the run or their order: ``--country GB`` and ``--countries all`` give GB the same draws.

All draws are made before the model runs; the model then runs in chunks of
:data:`PSA_CHUNK_DRAWS` (progress is reported between chunks), so the draws never depend on
the chunk size.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import multiprocessing as mp
import os
import signal
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from cea.igrt import _kernel
from cea.analysis import voi
from cea.parameters import distributions as dist
from cea.analysis.incremental import icer_table
from cea.errors import CeaError
from cea.io.inputs import Inputs, load_inputs
from cea.igrt.model import (
    COST_CATEGORIES,
    COUNTS,
    ModelSpec,
    compiled_kernel,
    engine_setting,
    run_model,
)
from cea.parameters.table import ParameterTable, Scenario, build_parameter_table, load_scenario
from cea.run import (
    DEFAULT_OUTPUTS,
    BaseCase,
    OutputDir,
    apply_discount_settings,
    build_spec,
    comparisons_from_settings,
    provenance,
    results_table,
    trace_table,
)

#: Decision horizon (years) over which population EVPI counts annual incident cohorts,
#: discounted at the country's cost discount rate (docs/psa.md). Recorded in run.json.
DEFAULT_DECISION_HORIZON_YEARS = 5.0
#: The category of country price rows (drawn per country); every other row is clinical.
PRICE_CATEGORY = "prices"
#: spawn_key streams of the run's SeedSequence.
CLINICAL_STREAM, PRICE_STREAM = 0, 1
#: Draws per model call: progress granularity and the share of work per worker process
#: (results do not depend on it). 2,500 keeps the per-call overhead small and gives each of
#: two workers two chunks at 10,000 draws; the model bounds its own memory within a chunk.
PSA_CHUNK_DRAWS = 2500
#: Most worker processes for the model (one per CPU up to this).
MAX_WORKERS = 8
#: Central interval of the summary: 2.5% and 97.5% percentiles of the draws.
INTERVAL = (0.025, 0.975)
#: WTP grid: dense from 0 to WTP_GRID_FACTOR x the country's WTP (and its alternatives), then
#: up to WTP_GRID_ICER_FACTOR x the largest frontier ICER of the PSA means, capped at
#: WTP_GRID_CAP_FACTOR x the WTP, so the CEAC shows where each strategy takes over.
WTP_GRID_FACTOR = 5.0
WTP_GRID_ICER_FACTOR = 1.5
WTP_GRID_CAP_FACTOR = 100.0
WTP_GRID_POINTS = 101
#: Fewest draws a PSA accepts (variances and percentiles need a few).
MIN_DRAWS = 2
#: gzip level of draws.csv.gz / outcomes.csv.gz: 1 is several times faster than 9 for
#: about 10-20% larger files. mtime 0 makes the bytes reproducible.
GZIP_LEVEL = 1
#: Per-draw columns written to outcomes.csv.gz (discounted, plus undiscounted event counts).
OUTCOME_COLUMNS = ("cost", *COST_CATEGORIES, "qaly", "ly", *(f"{c}_undiscounted" for c in COUNTS))
#: An EVPPI above the EVPI by more than this (relative) is flagged in its status: the
#: regression estimator is biased upwards when the draws are few (Strong et al. 2014).
EVPPI_EXCESS_RTOL = 1e-6
#: Name of the EVPPI group holding every uncertain parameter (checked against the EVPI).
ALL_PARAMETERS = "all_parameters"


# --------------------------------------------------------------------------- seeding and draws


def country_key(code: str) -> int:
    """A country's stable stream number: its ISO2 code read as a base-256 integer ("GB" -> 18242)."""
    try:
        raw = code.upper().encode("ascii")
    except UnicodeEncodeError:
        raise CeaError(f"country code {code!r} must be ASCII") from None
    return int.from_bytes(raw, "big")


def clinical_seed(seed: int) -> np.random.SeedSequence:
    """SeedSequence of the clinical draws shared by every country."""
    return np.random.SeedSequence(_check_seed(seed), spawn_key=(CLINICAL_STREAM,))


def price_seed(seed: int, code: str) -> np.random.SeedSequence:
    """SeedSequence of one country's price draws (independent of the other countries)."""
    return np.random.SeedSequence(_check_seed(seed), spawn_key=(PRICE_STREAM, country_key(code)))


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise CeaError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def price_parameters(ptable: ParameterTable) -> list[str]:
    return [n for n in ptable.names if ptable.df.loc[n, "category"] == PRICE_CATEGORY]


def clinical_parameters(ptable: ParameterTable) -> list[str]:
    return [n for n in ptable.names if ptable.df.loc[n, "category"] != PRICE_CATEGORY]


def reference_table(inputs: Inputs, scenario: Scenario, code: str) -> ParameterTable:
    """Clinical reference: parameters.csv with the scenario, without country overrides."""
    return build_parameter_table(replace(inputs, overrides=None), code, scenario)


def correlation_matrix(inputs: Inputs) -> pd.DataFrame | None:
    """The copula correlation matrix from ``inputs/correlations.csv`` (None when absent).

    Unlisted pairs are 0; a pair listed twice (in either order) or a parameter paired with
    itself is an error. Positive definiteness is checked when sampling.
    """
    table = inputs.correlations
    if table is None or table.df.empty:
        return None
    df = table.df
    names: list[str] = []
    for _, r in df.iterrows():
        for c in ("parameter_a", "parameter_b"):
            if r[c] not in names:
                names.append(r[c])
    m = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    seen: dict[frozenset, int] = {}
    for _, r in df.iterrows():
        a, b, rho = r["parameter_a"], r["parameter_b"], float(r["correlation"])
        if a == b:
            raise table.error(
                f"parameter '{a}' is correlated with itself",
                row=int(r["_row"]),
                column="parameter_b",
            )
        key = frozenset((a, b))
        if key in seen:
            raise table.error(
                f"pair {a}/{b} is listed twice (also row {seen[key]})", row=int(r["_row"])
            )
        seen[key] = int(r["_row"])
        m.loc[a, b] = m.loc[b, a] = rho
    return m


def _cdf(d: dist.Distribution, x: np.ndarray) -> np.ndarray:
    """Distribution function of a univariate specification (for common random numbers)."""
    from scipy import stats  # here, not at the top: scipy.stats is slow to load

    if isinstance(d, dist.Beta):
        return stats.beta.cdf(x, d.alpha, d.beta)
    if isinstance(d, dist.Gamma):
        return stats.gamma.cdf(x, d.shape, scale=d.scale)
    if isinstance(d, dist.LogNormal):
        return stats.norm.cdf((np.log(x) - d.mu) / d.sigma)
    if isinstance(d, dist.Normal):
        return stats.norm.cdf(x, d.mu, d.sd)
    if isinstance(d, dist.Uniform):
        return stats.uniform.cdf(x, d.low, d.high - d.low)
    raise CeaError(f"no distribution function for {type(d).__name__}")


def sample_draws(
    inputs: Inputs,
    ptables: dict[str, ParameterTable],
    n_draws: int,
    seed: int,
    scenario: Scenario | None = None,
) -> dict[str, pd.DataFrame]:
    """PSA draws of every country: ``code -> DataFrame`` (index ``draw``, columns = parameters).

    Clinical columns are shared across countries (same random numbers; see the module
    docstring); price columns come from each country's own stream.
    """
    if (
        isinstance(n_draws, bool)
        or not isinstance(n_draws, int | np.integer)
        or n_draws < MIN_DRAWS
    ):
        raise CeaError(f"number of draws must be an integer >= {MIN_DRAWS}, got {n_draws!r}")
    n_draws = int(n_draws)
    scenario = scenario or Scenario()
    codes = list(ptables)
    ref = reference_table(inputs, scenario, codes[0])
    clinical = clinical_parameters(ref)
    ref_dists = {n: ref.distribution(n) for n in clinical}
    corr = correlation_matrix(inputs)
    shared = dist.sample_many(
        ref_dists, n_draws, np.random.Generator(np.random.PCG64(clinical_seed(seed))), corr
    )
    out = {}
    for code, pt in ptables.items():
        cols: dict[str, np.ndarray] = {}
        for n in clinical_parameters(pt):
            d_c, d_ref = pt.distribution(n), ref_dists.get(n)
            if d_ref is None:
                raise CeaError(f"parameter '{n}' of {code} is not in the clinical reference table")
            if d_c == d_ref:
                cols[n] = shared[n].to_numpy()
            elif isinstance(d_c, dist.Fixed):
                cols[n] = np.full(n_draws, float(d_c.value))
            elif isinstance(d_ref, dist.Fixed):
                raise CeaError(
                    f"parameter '{n}' is fixed in parameters.csv but uncertain for {code}: "
                    "a country override cannot add uncertainty"
                )
            else:
                cols[n] = d_c.ppf(np.clip(_cdf(d_ref, shared[n].to_numpy()), 0.0, 1.0))
        prices = price_parameters(pt)
        if prices:
            rng = np.random.Generator(np.random.PCG64(price_seed(seed, code)))
            pd_draws = dist.sample_many({n: pt.distribution(n) for n in prices}, n_draws, rng)
            for n in prices:
                cols[n] = pd_draws[n].to_numpy()
        out[code] = pd.DataFrame(
            {n: cols[n] for n in pt.names}, index=pd.RangeIndex(n_draws, name="draw")
        )
    return out


# --------------------------------------------------------------------------- running the model


class Progress:
    """Plain one-line progress on stderr, redrawn with a carriage return; silent unless enabled."""

    def __init__(self, total: int, enabled: bool | None = None, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = bool(self.stream.isatty()) if enabled is None else enabled
        self.total = max(1, total)
        self.done = 0
        self.start = time.perf_counter()

    def update(self, n: int, label: str = "") -> None:
        self.done += n
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        frac = self.done / self.total
        eta = elapsed * (1 - frac) / frac if frac > 0 else float("nan")
        width = 30
        bar = "#" * int(round(width * frac)) + "." * (width - int(round(width * frac)))
        self.stream.write(
            f"\rpsa {label} [{bar}] {self.done:,}/{self.total:,} draws {elapsed:6.1f} s, ~{eta:5.1f} s left"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class ModelRun:
    """Per-draw model results: ``cost``/``qaly`` as (D, K) arrays, the long outcomes table,
    the calibrated values per draw, and the seconds spent."""

    outcomes: pd.DataFrame
    calibrated: pd.DataFrame
    cost: np.ndarray
    qaly: np.ndarray
    seconds: float


def _one_blas_thread():
    """A context with BLAS on one thread, in this process and in the workers alike: the
    workers are the parallelism (BLAS threads on top oversubscribed the cores: the EVPPI
    regressions in two workers took 0.6-0.75 s with them, 0.28-0.33 s without), and with
    another thread count OpenBLAS may sum in another order, so results would depend on the
    number of workers."""
    from threadpoolctl import threadpool_limits  # here: cea.psa imports without it

    return threadpool_limits(1, user_api="blas")


def _quiet_worker() -> None:
    """Worker start-up common to every pool: Ctrl-C is the parent's to handle (it shuts the
    pool down); a worker interrupted too would print its own traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _warm_worker() -> None:
    """Model worker start-up: the kernels loaded (cea.igrt._kernel.warm) while the parent reads
    and draws, then one BLAS thread (after the imports, which may load a BLAS). A failure leaves
    the worker to the engine, as the model call would."""
    _quiet_worker()
    if engine_setting() != "numpy":
        try:
            _kernel.warm()
        except Exception:  # noqa: BLE001 - the first model call reports or falls back
            pass
    _one_blas_thread()


def _start_workers(pool: ProcessPoolExecutor) -> None:
    """Start a pool's worker processes now (with fork, the first task starts them all). If
    that fails part-way (a fork error, Ctrl-C), the workers already started are stopped: a
    pool whose manager thread never ran cannot shut them down, and the interpreter would wait
    for them at exit."""
    try:
        pool.submit(int)
    except BaseException:
        procs = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            proc.terminate()
            proc.join()
        raise


def model_pool(workers: int) -> ProcessPoolExecutor | None:
    """Worker processes for the model and the EVPPI regressions, or None for ``workers`` <= 1.

    Each worker loads the kernels as it starts (:func:`cea.igrt._kernel.warm`: 0.04 s from
    the ahead-of-time module, about 0.8 s of CPU through Numba's JIT); started before anything
    is read, they do it while the parent reads the inputs and draws. Workers are forked where
    the platform allows (they then start with the parent's modules already imported)."""
    if workers <= 1:
        return None
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_warm_worker)
    _start_workers(pool)
    return pool


def _kernels_compiled() -> bool:
    """False when the PSA will run the compiled kernels and they are not ready to load
    (:func:`cea.igrt._kernel.ready`: the ahead-of-time module not built yet, or Numba's cache
    empty): every worker would then compile them (20-40 s each), so the parent prepares them
    first (:func:`_prepare_kernels`)."""
    if engine_setting() == "numpy" or not _kernel.HAVE_NUMBA:
        return True
    return _kernel.ready()


def _prepare_kernels(draws: pd.DataFrame, spec: ModelSpec) -> None:
    """First run on this machine (or after an update): compile the kernels on one draw, once,
    before any worker needs them (they then load them from Numba's cache)."""
    print("cea: compiling the model's kernels for this machine (once)...", file=sys.stderr)
    _run_chunk(draws.iloc[:1], spec)


def _run_chunk(draws: pd.DataFrame, spec: ModelSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One model call (top level, so worker processes can run it), through the compiled
    kernel when Numba is available (cea.igrt.model.compiled_kernel)."""
    with compiled_kernel():
        res = run_model(draws, spec)
    return res.outcomes, res.calibrated


def default_workers(n_chunks: int) -> int:
    """Worker processes for ``n_chunks`` chunks: one per CPU (at most MAX_WORKERS), 1 for a
    single chunk (a pool costs more than it saves)."""
    return max(1, min(n_chunks, os.cpu_count() or 1, MAX_WORKERS))


def run_draws(
    draws: pd.DataFrame,
    spec: ModelSpec,
    chunk_draws: int = PSA_CHUNK_DRAWS,
    progress: Progress | None = None,
    label: str = "",
    workers: int | None = None,
    pool: ProcessPoolExecutor | None = None,
    meanwhile=None,
) -> ModelRun:
    """Run the model over all draws in chunks of ``chunk_draws`` (memory is bounded inside
    ``run_model``), in ``pool`` when given, else in ``workers`` processes (default
    :func:`default_workers`; a pool of :func:`model_pool` is started and closed here).
    ``meanwhile``: a function this process calls while the workers run the chunks (before
    them without workers, and then its time is not counted in the model's).

    Each chunk is the same model call whichever process runs it and whatever the number of
    workers, so the results are bit-identical with 1 or more workers.
    """
    if chunk_draws < 1:
        raise CeaError(f"chunk_draws must be >= 1, got {chunk_draws}")
    D, K = len(draws), len(spec.strategies)
    t0 = time.perf_counter()
    bounds = [(lo, min(D, lo + chunk_draws)) for lo in range(0, D, chunk_draws)]
    if pool is None:
        workers = default_workers(len(bounds)) if workers is None else max(1, int(workers))
    results: list = [None] * len(bounds)
    if pool is None and workers == 1:
        if meanwhile is not None:
            meanwhile()
            t0 = time.perf_counter()  # not counted in the model's time
        if not _kernels_compiled():
            _prepare_kernels(draws, spec)
        for i, (lo, hi) in enumerate(bounds):
            results[i] = _run_chunk(draws.iloc[lo:hi], spec)
            if progress is not None:
                progress.update(hi - lo, label)
    else:
        own = pool is None
        if own and not _kernels_compiled():
            _prepare_kernels(draws, spec)  # once here, then loaded (or inherited) by the workers
        pool = model_pool(workers) if own else pool
        try:
            futures = {
                pool.submit(_run_chunk, draws.iloc[lo:hi], spec): i
                for i, (lo, hi) in enumerate(bounds)
            }
            if meanwhile is not None:
                meanwhile()
            for fut in as_completed(futures):
                i = futures[fut]
                results[i] = fut.result()
                if progress is not None:
                    progress.update(bounds[i][1] - bounds[i][0], label)
        finally:
            if own:
                pool.shutdown(cancel_futures=True)
    parts = [r[0] for r in results]
    cal = [r[1] for r in results]
    # each chunk is strategy-major; put all draws of a strategy together, strategies in spec order
    out = pd.concat(parts, ignore_index=True)
    order = {s: i for i, s in enumerate(spec.strategy_names)}
    out = out.sort_values(
        ["strategy", "draw"],
        key=lambda s: s.map(order) if s.name == "strategy" else s,
        kind="stable",
    )
    out = out.reset_index(drop=True)
    cost = out["cost"].to_numpy().reshape(K, D).T.copy()
    qaly = out["qaly"].to_numpy().reshape(K, D).T.copy()
    return ModelRun(out, pd.concat(cal), cost, qaly, time.perf_counter() - t0)


# --------------------------------------------------------------------------- analysis


def wtp_grid(
    wtp: float, alternatives: Sequence[float] = (), icers: Sequence[float] = ()
) -> np.ndarray:
    """WTP values for the CEAC, EVPI and EVPPI curves (sorted, unique, always containing the
    country's WTP and its alternatives exactly)."""
    if not (math.isfinite(wtp) and wtp > 0):
        raise CeaError(f"willingness to pay must be > 0, got {wtp!r}")
    near = max([WTP_GRID_FACTOR * wtp, *alternatives])
    grid = [np.linspace(0.0, near, WTP_GRID_POINTS)]
    finite = [float(i) for i in icers if i is not None and math.isfinite(i) and i > 0]
    if finite:
        far = min(WTP_GRID_ICER_FACTOR * max(finite), WTP_GRID_CAP_FACTOR * wtp)
        if far > near:
            grid.append(np.linspace(near, far, WTP_GRID_POINTS))
    return np.unique(np.concatenate([*grid, [wtp], np.asarray(alternatives, float)]))


@dataclass
class PsaTables:
    """Result tables of one country's PSA (all also written as CSV)."""

    summary: pd.DataFrame
    incremental_means: pd.DataFrame
    ceac: pd.DataFrame
    evpi: pd.DataFrame
    evppi: pd.DataFrame
    evppi_by_wtp: pd.DataFrame
    convergence: pd.DataFrame
    ce_plane: pd.DataFrame
    headline: dict = field(default_factory=dict)


def _interval(x: np.ndarray) -> tuple[float, float]:
    lo, hi = np.quantile(x, INTERVAL)
    return float(lo), float(hi)


def parameter_groups(ptable: ParameterTable, draws: pd.DataFrame) -> dict[str, list[str]]:
    """EVPPI groups: the ``category`` column, uncertain parameters only (a column that varies
    across the draws), plus :data:`ALL_PARAMETERS`. Groups with no uncertain parameter are
    kept (EVPPI 0) so the table lists every category."""
    groups: dict[str, list[str]] = {}
    varying = [n for n in ptable.names if float(np.ptp(draws[n].to_numpy())) > 0]
    for n in ptable.names:
        cat = str(ptable.df.loc[n, "category"] or "uncategorised")
        groups.setdefault(cat, [])
        if n in varying:
            groups[cat].append(n)
    groups[ALL_PARAMETERS] = varying
    return groups


def analyse(
    run: ModelRun,
    draws: pd.DataFrame,
    ptable: ParameterTable,
    spec: ModelSpec,
    base_outcomes: pd.DataFrame,
    comparisons: Sequence[tuple[str, str]],
    decision_horizon_years: float = DEFAULT_DECISION_HORIZON_YEARS,
    pool: ProcessPoolExecutor | None = None,
) -> PsaTables:
    """Summary, CEAC/CEAF, EVPI, EVPPI by parameter group, convergence and CE-plane tables.

    ``pool`` (:func:`model_pool`): the EVPPI regressions run there while this process builds
    the other tables (the same function on the same arrays: the same results)."""
    country = ptable.country
    names = spec.strategy_names
    K, D = len(names), run.cost.shape[0]
    wtp = float(country.wtp_per_qaly)
    cost, qaly = run.cost, run.qaly
    out = run.outcomes
    mean_out = (
        out.groupby("strategy", sort=False)[["cost", "qaly", "ly"]]
        .mean()
        .reindex(names)
        .reset_index()
    )
    inc_means = icer_table(mean_out, cost="cost", effect="qaly", wtp=wtp)
    grid = wtp_grid(wtp, country.wtp_alternatives, inc_means["icer"].tolist())
    i_wtp = int(np.flatnonzero(grid == wtp)[0])

    groups = parameter_groups(ptable, draws)
    group_x = {g: draws[ps].to_numpy() if ps else np.empty((D, 0)) for g, ps in groups.items()}
    pending = {}
    if pool is not None:
        # the largest regression first, so that the workers finish together
        for g in sorted(group_x, key=lambda g: -group_x[g].shape[1]):
            pending[g] = pool.submit(voi.evppi_regression, cost, qaly, group_x[g], grid, wtp)

    # --- summary: strategies and named comparisons, PSA mean vs deterministic
    base = base_outcomes.set_index("strategy")
    rows = []

    def add(kind, name, measure, x, det=float("nan")):
        x = np.asarray(x, float)
        m = float(x.mean())
        lo, hi = _interval(x)
        diff = m - det
        rows.append(
            {
                "kind": kind,
                "name": name,
                "measure": measure,
                "psa_mean": m,
                "mc_se": float(x.std(ddof=1) / math.sqrt(D)),
                "interval_low": lo,
                "interval_high": hi,
                "deterministic": det,
                "psa_minus_deterministic": diff,
                "relative_difference": diff / abs(det)
                if det not in (0.0,) and math.isfinite(det)
                else float("nan"),
            }
        )

    prob = voi.ceac(cost, qaly, grid)
    for k, s in enumerate(names):
        sel = out["strategy"] == s
        for measure in ("cost", "qaly", "ly"):
            add("strategy", s, measure, out.loc[sel, measure], float(base.loc[s, measure]))
        add(
            "strategy",
            s,
            "nmb",
            wtp * qaly[:, k] - cost[:, k],
            wtp * float(base.loc[s, "qaly"]) - float(base.loc[s, "cost"]),
        )
        p = prob[i_wtp, k]
        rows.append(
            {
                "kind": "strategy",
                "name": s,
                "measure": "p_cost_effective",
                "psa_mean": p,
                "mc_se": math.sqrt(p * (1 - p) / D),
            }
        )
    idx = {s: k for k, s in enumerate(names)}
    for a, b in comparisons:
        ia, ib = idx[a], idx[b]
        name = f"{a} vs {b}"
        dc, dq = cost[:, ia] - cost[:, ib], qaly[:, ia] - qaly[:, ib]
        det_dc = float(base.loc[a, "cost"] - base.loc[b, "cost"])
        det_dq = float(base.loc[a, "qaly"] - base.loc[b, "qaly"])
        add("comparison", name, "inc_cost", dc, det_dc)
        add("comparison", name, "inc_qaly", dq, det_dq)
        add("comparison", name, "inmb", wtp * dq - dc, wtp * det_dq - det_dc)
        p = float(np.mean(wtp * dq - dc > 0))
        rows.append(
            {
                "kind": "comparison",
                "name": name,
                "measure": "p_inmb_positive",
                "psa_mean": p,
                "mc_se": math.sqrt(p * (1 - p) / D),
            }
        )
        mdq = float(dq.mean())
        rows.append(
            {
                "kind": "comparison",
                "name": name,
                "measure": "icer_of_means",
                "psa_mean": float(dc.mean()) / mdq if mdq != 0 else float("nan"),
                "deterministic": det_dc / det_dq if det_dq != 0 else float("nan"),
            }
        )
    summary = pd.DataFrame(rows)
    summary.insert(0, "wtp", wtp)

    # --- CEAC / CEAF / EVPI
    opt, p_opt = voi.ceaf(cost, qaly, grid, prob)
    ceac_df = pd.DataFrame(
        {
            "wtp": np.repeat(grid, K),
            "strategy": np.tile(names, len(grid)),
            "probability": prob.reshape(-1),
            "on_ceaf": (np.repeat(opt, K) == np.tile(np.arange(K), len(grid))),
        }
    )
    evpi_pp = voi.evpi(cost, qaly, grid)
    pop = country.population_eligible_annual
    rate = country.discount_rate_costs
    mult = (
        voi.population_multiplier(pop, decision_horizon_years, rate)
        if pop is not None
        else float("nan")
    )
    evpi_df = pd.DataFrame(
        {
            "wtp": grid,
            "evpi_per_patient": evpi_pp,
            "evpi_population": evpi_pp * mult,
            "optimal_strategy": [names[i] for i in opt],
            "p_optimal_cost_effective": p_opt,
        }
    )

    # --- EVPPI by parameter group (regression), at every wtp of the grid
    ev_rows, curves = [], []
    for g, params in groups.items():
        if g in pending:
            r = pending[g].result()
        else:
            r = voi.evppi_regression(cost, qaly, group_x[g], grid, r2_wtp=wtp)
        v = float(r.evppi[i_wtp])
        status = r.status
        if status == "ok" and v > evpi_pp[i_wtp] * (1 + EVPPI_EXCESS_RTOL):
            status = (
                "ok; exceeds EVPI: regression error (upward bias from noise with few draws, or a "
                "basis that misses the model's structure: see R^2)"
            )
        row = {
            "group": g,
            "n_parameters": len(params),
            "evppi_per_patient": v,
            "evppi_population": v * mult,
            "share_of_evpi": v / evpi_pp[i_wtp] if evpi_pp[i_wtp] > 0 else float("nan"),
            "n_terms": r.n_terms,
            "n_draws": r.n_draws,
            "basis": r.basis or "",
            "r2_min": float(np.nanmin(r.r2)) if np.isfinite(r.r2).any() else float("nan"),
            "status": status,
        }
        for k, s in enumerate(names[1:]):
            row[f"r2_{s}_vs_{names[0]}"] = float(r.r2[k])
        row["parameters"] = ";".join(params)
        ev_rows.append(row)
        curves.append(
            pd.DataFrame(
                {
                    "group": g,
                    "wtp": grid,
                    "evppi_per_patient": r.evppi,
                    "evppi_population": r.evppi * mult,
                }
            )
        )
    evppi_df = pd.DataFrame(ev_rows)
    evppi_by_wtp = pd.concat(curves, ignore_index=True)

    # --- convergence: running mean and MC SE of INMB (named comparisons) and P(cost-effective)
    conv = []
    nb = wtp * qaly - cost
    best = np.argmax(nb - nb[:, :1], axis=1)
    for a, b in comparisons:
        n, m, se = voi.running_mean_se(nb[:, idx[a]] - nb[:, idx[b]])
        conv.append(
            pd.DataFrame(
                {"measure": "inmb", "name": f"{a} vs {b}", "n_draws": n, "mean": m, "mc_se": se}
            )
        )
    for k, s in enumerate(names):
        n, m, _ = voi.running_mean_se((best == k).astype(float))
        se = np.sqrt(m * (1 - m) / n)
        conv.append(
            pd.DataFrame(
                {"measure": "p_cost_effective", "name": s, "n_draws": n, "mean": m, "mc_se": se}
            )
        )
    convergence = pd.concat(conv, ignore_index=True)

    # --- CE plane: every strategy against the first, per draw
    ref = names[0]
    plane = pd.DataFrame(
        {
            "draw": np.tile(draws.index.to_numpy(), K - 1),
            "strategy": np.repeat(names[1:], D),
            "reference": ref,
            "inc_cost": (cost[:, 1:] - cost[:, :1]).T.reshape(-1),
            "inc_qaly": (qaly[:, 1:] - qaly[:, :1]).T.reshape(-1),
        }
    )

    all_row = evppi_df.set_index("group").loc[ALL_PARAMETERS]
    headline = {
        "wtp": wtp,
        "currency": country.currency,
        "price_year": country.price_year,
        "n_draws": D,
        "optimal_strategy": names[int(opt[i_wtp])],
        "p_cost_effective": {s: float(prob[i_wtp, k]) for k, s in enumerate(names)},
        "evpi_per_patient": float(evpi_pp[i_wtp]),
        "evpi_population": float(evpi_pp[i_wtp] * mult),
        "population_eligible_annual": pop,
        "decision_horizon_years": decision_horizon_years,
        "population_discount_rate": rate,
        "population_multiplier": mult,
        "evppi_per_patient": {r["group"]: r["evppi_per_patient"] for r in ev_rows},
        "evppi_all_over_evpi": float(all_row["share_of_evpi"]),
        # the model is deterministic given all its parameters, so EVPPI(all) = EVPI exactly: the
        # regression's departure from it is the size of its error at this EVPI
        "evppi_regression_error": abs(float(all_row["evppi_per_patient"]) - float(evpi_pp[i_wtp])),
    }
    return PsaTables(
        summary, inc_means, ceac_df, evpi_df, evppi_df, evppi_by_wtp, convergence, plane, headline
    )


# --------------------------------------------------------------------------- orchestration


@dataclass
class CountryPsa:
    """One country's PSA: inputs, draws, per-draw results and tables."""

    code: str
    base: BaseCase
    draws: pd.DataFrame
    run: ModelRun
    tables: PsaTables

    @property
    def ptable(self) -> ParameterTable:
        return self.base.ptable

    @property
    def spec(self) -> ModelSpec:
        return self.base.spec


@dataclass
class PsaRun:
    countries: dict[str, CountryPsa]
    seed: int
    n_draws: int
    decision_horizon_years: float
    scenario: Scenario
    inputs: Inputs
    seconds: dict[str, float] = field(default_factory=dict)


def _base_case(inputs: Inputs, ptable: ParameterTable, spec: ModelSpec) -> BaseCase:
    from cea.analysis.incremental import pairwise
    from cea.igrt.model import run_model as _run

    res = _run(ptable.base(), spec, keep_traces=True)
    wtp = ptable.country.wtp_per_qaly
    comps = comparisons_from_settings(ptable.settings, spec)
    return BaseCase(
        inputs=inputs,
        ptable=ptable,
        spec=spec,
        outcomes=res.outcomes,
        results=results_table(res.outcomes, spec),
        incremental=icer_table(res.outcomes, cost="cost", effect="qaly", wtp=wtp),
        comparisons=pairwise(res.outcomes, comps, wtp=wtp) if comps else pd.DataFrame(),
        trace=trace_table(res.traces, spec),
        calibrated={k: float(v) for k, v in res.calibrated.iloc[0].items()},
    )


def run_psa(
    inputs: Inputs | Path | str = "inputs",
    countries: Sequence[str] | str | None = None,
    n_draws: int | None = None,
    seed: int | None = None,
    scenario: Scenario | Path | str | None = None,
    strategies: Sequence[str] | None = None,
    decision_horizon_years: float = DEFAULT_DECISION_HORIZON_YEARS,
    chunk_draws: int = PSA_CHUNK_DRAWS,
    progress: bool | None = False,
    workers: int | None = None,
) -> PsaRun:
    """The PSA of one or several countries (clinical draws shared; prices per country).

    ``countries``: an ISO2 code, a list, "all", or None (the settings' country). ``n_draws``
    and ``seed`` default to ``[run]`` of the settings (after the scenario). ``progress``:
    True/False, or None for "when stderr is a terminal". ``workers``: model processes
    (default one per CPU when there are several chunks; results do not depend on it).
    """
    t0 = time.perf_counter()
    pools: list[ProcessPoolExecutor] = []
    try:
        if n_draws is not None and workers != 1:
            # start the workers now: they set Numba up while this process reads and draws
            pools.append(_start_pool(n_draws, chunk_draws, workers))
        with _one_blas_thread():
            return _run_psa(
                t0, pools, inputs, countries, n_draws, seed, scenario, strategies,
                decision_horizon_years, chunk_draws, progress, workers,
            )  # fmt: skip
    finally:
        for pool in pools:
            if pool is not None:
                pool.shutdown(cancel_futures=True)


def _start_pool(n_draws, chunk_draws: int, workers: int | None) -> ProcessPoolExecutor | None:
    """The model pool for ``n_draws`` per country (None: run in this process)."""
    if not (isinstance(n_draws, int) and n_draws >= 1 and chunk_draws >= 1):
        return None  # the run rejects them
    n = default_workers(-(-n_draws // chunk_draws)) if workers is None else max(1, int(workers))
    return model_pool(n)


def _run_psa(
    t0, pools, inputs, countries, n_draws, seed, scenario, strategies, decision_horizon_years,
    chunk_draws, progress, workers,
) -> PsaRun:  # fmt: skip
    if not isinstance(inputs, Inputs):
        inputs = load_inputs(inputs)
    if scenario is not None and not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    scenario = scenario or Scenario()
    run_settings = {**inputs.settings.get("run", {}), **scenario.settings.get("run", {})}
    if countries is None:
        codes = [run_settings.get("country", "GB")]
    elif isinstance(countries, str):
        codes = (
            inputs.country_codes()
            if countries.strip().lower() == "all"
            else [c.strip() for c in countries.split(",") if c.strip()]
        )
    else:
        codes = list(countries)
    if not codes:
        raise CeaError("no country given")
    if len(set(codes)) != len(codes):
        raise CeaError(f"a country is listed twice: {', '.join(codes)}")
    n_draws = int(run_settings.get("n_draws", 1000)) if n_draws is None else n_draws
    seed = int(run_settings.get("seed", 1)) if seed is None else seed
    _check_seed(seed)
    if not (isinstance(decision_horizon_years, int | float) and decision_horizon_years > 0):
        raise CeaError(f"decision horizon must be > 0 years, got {decision_horizon_years!r}")
    late = not pools and workers != 1  # the workers start below, with the first country
    early = bool(pools) and pools[0] is not None
    pool = pools[0] if pools else None
    ptables = {c: build_parameter_table(inputs, c, scenario) for c in codes}
    all_draws = sample_draws(inputs, ptables, n_draws, seed, scenario)
    seconds = {"load_and_draw": time.perf_counter() - t0}
    bar = Progress(len(codes) * n_draws, enabled=progress)
    results = {}
    try:
        for code in codes:
            pt = ptables[code]
            spec = apply_discount_settings(
                build_spec(pt, inputs, list(strategies) if strategies else None), pt.settings
            )
            done = {}

            def base_case(code=code, pt=pt, spec=spec, done=done):
                t = time.perf_counter()
                done["base"] = _base_case(inputs, pt, spec)
                seconds[f"base_case_{code}"] = time.perf_counter() - t

            t1 = time.perf_counter()
            if early:
                early = False
                # a worker (which has loaded the kernels by now) checks they were ready: if
                # not, this process prepares them once (after the base case, whose errors
                # come first), before the workers run the model
                if not pool.submit(_kernels_compiled).result():
                    base_case()
                    _prepare_kernels(all_draws[code], spec)
            if late:
                late = False
                if not _kernels_compiled():
                    # prepare the kernels here once, so that the forked workers load (or
                    # inherit) them instead of each compiling them
                    base_case()
                    _prepare_kernels(all_draws[code], spec)
                pools.append(_start_pool(n_draws, chunk_draws, workers))  # the caller closes it
                pool = pools[-1]
            ready = time.perf_counter() - t1 - seconds.get(f"base_case_{code}", 0.0)
            # otherwise the base case runs while the workers run the model
            later = None if "base" in done else base_case
            run = run_draws(
                all_draws[code], spec, chunk_draws, bar, code, workers, pool, meanwhile=later
            )
            run = replace(run, seconds=run.seconds + ready)
            base = done["base"]
            comps = comparisons_from_settings(pt.settings, spec)
            t1 = time.perf_counter()
            tables = analyse(
                run, all_draws[code], pt, spec, base.outcomes, comps, decision_horizon_years, pool
            )
            seconds[f"model_{code}"] = run.seconds
            seconds[f"analysis_{code}"] = time.perf_counter() - t1
            results[code] = CountryPsa(code, base, all_draws[code], run, tables)
    finally:
        bar.close()
    seconds["total"] = time.perf_counter() - t0
    return PsaRun(results, seed, n_draws, float(decision_horizon_years), scenario, inputs, seconds)


# --------------------------------------------------------------------------- writing


def _csv_writes_as_pandas(dtype) -> bool:
    """Column types whose values the csv module writes as DataFrame.to_csv does (float32, dates
    and durations it writes otherwise)."""
    if isinstance(dtype, pd.CategoricalDtype):
        return False
    return dtype == np.float64 or dtype.kind in "iubO"  # O: text, mixed objects, pandas strings


def _csv_column(col: pd.Series) -> list:
    """A column's values as the csv module should write them: missing values empty, as
    pandas writes them (the csv module would write a float NaN as "nan")."""
    values = col.tolist()
    missing = col.isna()
    if missing.any():
        values = ["" if m else v for v, m in zip(values, missing.tolist(), strict=True)]
    return values


def _write_csv_gz(df: pd.DataFrame, path: Path) -> None:
    """Compressed CSV with reproducible bytes (no timestamp in the gzip header).

    The text is what ``df.to_csv(index=False)`` writes (floats as their shortest round-trip
    repr), written through the csv module: a third faster for 10,000s of rows (tested equal)."""
    if len(df.columns) and all(_csv_writes_as_pandas(t) for t in df.dtypes):
        text = io.StringIO()
        out = csv.writer(text, lineterminator="\n")
        out.writerow(df.columns)
        out.writerows(zip(*(_csv_column(df[c]) for c in df.columns), strict=True))
        body = text.getvalue()
    else:
        body = df.to_csv(index=False, lineterminator="\n")
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as gz,
    ):
        gz.write(body.encode("utf-8"))


def psa_conventions(psa: PsaRun) -> dict:
    return {
        "seed": psa.seed,
        "n_draws": psa.n_draws,
        "seeding": "numpy SeedSequence(seed) children by spawn_key: (0,) clinical draws shared by all "
        "countries; (1, int.from_bytes(ISO2, 'big')) each country's prices; PCG64 generators",
        "draws": "method of moments from value and se (or the 95% range) so the centre is the base-case value; "
        "clinical rows from parameters.csv + scenario (country overrides mapped by quantile, common random numbers); "
        "Gaussian copula from inputs/correlations.csv when present",
        "correlations": None
        if psa.inputs.correlations is None
        else [
            {
                "parameter_a": r["parameter_a"],
                "parameter_b": r["parameter_b"],
                "correlation": float(r["correlation"]),
            }
            for _, r in psa.inputs.correlations.df.iterrows()
        ],
        "interval": list(INTERVAL),
        "decision_horizon_years": psa.decision_horizon_years,
        "population_evpi": "EVPI per patient x sum_{t=0}^{H-1} population_eligible_annual / (1 + discount_rate_costs)^t",
        "evppi_method": "regression (Strong, Oakley & Brennan 2014): additive restricted cubic splines "
        f"(knots at quantiles {list(voi.SPLINE_KNOT_QUANTILES)}) plus pairwise linear interactions, "
        f"richest of {list(voi.BASES)} with terms < draws / {voi.MIN_DRAWS_PER_TERM}, else refused",
        "net_benefit": "NMB = wtp x QALY - cost, wtp = the country's WTP per QALY",
        "chunk_draws": PSA_CHUNK_DRAWS,
    }


def write_country(c: CountryPsa, psa: PsaRun, folder: Path, command: str) -> None:
    """Every file of one country's PSA into ``folder``. The per-draw files and the figures
    (seconds each) are written by worker processes where there are several CPUs, the tables
    meanwhile here; every file has the same bytes either way."""
    with _writer_pool(SLOW_FILES) as pool:
        _wait(_country_files(c, psa, folder, command, pool))


#: Files of a country written by the writer pool: two per-draw CSVs and five figures.
SLOW_FILES = 7


def _country_files(c: CountryPsa, psa: PsaRun, folder: Path, command: str, pool) -> list:
    """Writes one country's files into ``folder``: the slow ones (per-draw CSVs, figures; here
    when ``pool`` is None) submitted to ``pool`` first, then the tables and run.json here.
    Returns the pool's futures, for the caller to wait on."""
    from cea.report.plots.psa import figure_jobs

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "figures").mkdir(exist_ok=True)
    draws = c.draws.copy()
    for name, col in c.run.calibrated.items():
        draws[f"calibrated_{name}_per_year"] = col.to_numpy()
    cols = ["draw", "strategy", *[k for k in OUTCOME_COLUMNS if k in c.run.outcomes.columns]]
    t = c.tables
    jobs = [
        (_write_csv_gz, (c.run.outcomes[cols], folder / "outcomes.csv.gz")),
        (_write_csv_gz, (draws.reset_index(), folder / "draws.csv.gz")),
        *figure_jobs(
            t,
            c.ptable.country,
            folder / "figures",
            {s.strategy: s.label for s in c.spec.strategies},
        ),
    ]
    assert len(jobs) == SLOW_FILES
    pending = [pool.submit(f, *args) for f, args in jobs] if pool is not None else []
    t.summary.to_csv(folder / "summary.csv", index=False)
    t.incremental_means.to_csv(folder / "incremental_means.csv", index=False)
    t.ceac.to_csv(folder / "ceac.csv", index=False)
    t.evpi.to_csv(folder / "evpi.csv", index=False)
    t.evppi.to_csv(folder / "evppi.csv", index=False)
    t.evppi_by_wtp.to_csv(folder / "evppi_by_wtp.csv", index=False)
    t.convergence.to_csv(folder / "convergence.csv", index=False)
    c.ptable.df.to_csv(folder / "parameters.csv", index=False)
    meta = provenance(c.base, command, seed=psa.seed)
    meta["analysis"] = "psa"
    meta["psa"] = {
        **psa_conventions(psa),
        "headline": t.headline,
        "seconds": {k: v for k, v in psa.seconds.items() if k.endswith(c.code) or k == "total"},
    }
    (folder / "run.json").write_text(json.dumps(meta, indent=2, default=_json_default) + "\n")
    if pool is None:
        for f, args in jobs:
            f(*args)
    return pending


def _wait(futures: list) -> None:
    """Waits for the writer pool's futures, raising the first error."""
    for fut in futures:
        fut.result()


@contextmanager
def _writer_pool(n_jobs: int):
    """Forked worker processes for writing files (None: one CPU, or not Linux: forking a
    process that has loaded matplotlib is safe on Linux only). Forked, they start in
    milliseconds with the parent's modules imported (the jobs' arguments are still pickled)."""
    workers = min(n_jobs, os.cpu_count() or 1, MAX_WORKERS)
    if workers <= 1 or not sys.platform.startswith("linux"):
        yield None
        return
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=mp.get_context("fork"), initializer=_quiet_worker
    )
    _start_workers(pool)
    try:
        yield pool
    finally:
        pool.shutdown(cancel_futures=True)


def _json_default(x):
    if isinstance(x, np.integer | np.floating):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def regional_table(psa: PsaRun) -> pd.DataFrame:
    """One row per country: optimal strategy, P(cost-effective) of each strategy, EVPI."""
    rows = []
    for code, c in psa.countries.items():
        h = c.tables.headline
        country = c.ptable.country
        row = {
            "country": code,
            "currency": h["currency"],
            "price_year": h["price_year"],
            "wtp_per_qaly": h["wtp"],
            "optimal_strategy": h["optimal_strategy"],
        }
        row.update({f"p_ce_{s}": p for s, p in h["p_cost_effective"].items()})
        row["evpi_per_patient"] = h["evpi_per_patient"]
        row["evpi_per_patient_usd"] = h["evpi_per_patient"] / country.fx_lcu_per_usd
        row["evpi_population"] = h["evpi_population"]
        row["evpi_population_usd"] = h["evpi_population"] / country.fx_lcu_per_usd
        rows.append(row)
    return pd.DataFrame(rows)


def default_run_name(codes: Sequence[str], n_draws: int, all_countries: bool = False) -> str:
    who = "all" if all_countries else "-".join(codes)
    return f"psa_{who}_{n_draws}"


def write_outputs(psa: PsaRun, target: Path, command: str, force: bool = False) -> None:
    """outputs/<run>/: per-country files (in <code>/ subfolders when several countries)."""
    with OutputDir(target, force=force) as tmp:
        if len(psa.countries) == 1:
            (c,) = psa.countries.values()
            write_country(c, psa, tmp, command)
            return
        # every country's slow files in one pool: the workers stay busy across countries
        with _writer_pool(SLOW_FILES * len(psa.countries)) as pool:
            pending = []
            for code, c in psa.countries.items():
                pending += _country_files(c, psa, tmp / code, command, pool)
            _wait(pending)
        regional_table(psa).to_csv(tmp / "countries.csv", index=False)
        from cea.run import git_commit

        meta = {
            "package": "cea",
            "analysis": "psa",
            "command": command,
            "git_commit": git_commit(),
            "countries": list(psa.countries),
            "scenario": psa.scenario.name,
            "psa": psa_conventions(psa),
            "seconds": psa.seconds,
            "input_sha256": dict(sorted(psa.inputs.hashes.items())),
        }
        (tmp / "run.json").write_text(json.dumps(meta, indent=2, default=_json_default) + "\n")


# --------------------------------------------------------------------------- terminal


def _share(x: float) -> str:
    return f"{x:.0%}" if math.isfinite(x) else "n/a"


def _money(x: float) -> str:
    return f"{x:,.0f}" if math.isfinite(x) else "n/a"


def summary_text(c: CountryPsa) -> str:
    """A readable summary of one country's PSA for the terminal."""
    t, h, country = c.tables, c.tables.headline, c.ptable.country
    cur = country.currency
    s = t.summary
    lines = [
        f"PSA {country.name} ({country.code}) | {h['n_draws']:,} draws | {cur} {country.price_year} | "
        f"WTP {cur} {h['wtp']:,.0f} per QALY",
        "",
        f"{'strategy':<18}{'mean cost':>12}{'95% interval':>24}{'QALY':>8}{'95% interval':>16}"
        f"{'P(CE)':>7}{'cost PSA-det':>14}{'QALY PSA-det':>14}",
    ]
    for name in c.spec.strategy_names:
        r = s[(s["kind"] == "strategy") & (s["name"] == name)].set_index("measure")
        cost_iv = f"{r.loc['cost', 'interval_low']:,.0f} to {r.loc['cost', 'interval_high']:,.0f}"
        qaly_iv = f"{r.loc['qaly', 'interval_low']:.3f} to {r.loc['qaly', 'interval_high']:.3f}"
        lines.append(
            f"{name:<18}{r.loc['cost', 'psa_mean']:>12,.0f}{cost_iv:>24}{r.loc['qaly', 'psa_mean']:>8.3f}{qaly_iv:>16}"
            f"{r.loc['p_cost_effective', 'psa_mean']:>7.2f}"
            f"{r.loc['cost', 'relative_difference']:>13.2%} {r.loc['qaly', 'relative_difference']:>13.2%}"
        )
    comps = s[(s["kind"] == "comparison") & (s["measure"] == "inmb")]
    if not comps.empty:
        lines += ["", f"INMB at WTP ({cur}), mean [95% interval], P(INMB > 0):"]
        for _, r in comps.iterrows():
            p = s[(s["name"] == r["name"]) & (s["measure"] == "p_inmb_positive")]["psa_mean"].iloc[
                0
            ]
            lines.append(
                f"  {r['name']:<36}{r['psa_mean']:>12,.0f} [{r['interval_low']:,.0f} to {r['interval_high']:,.0f}]  {p:.2f}"
            )
    pop = h["population_eligible_annual"]
    lines += [
        "",
        f"optimal at WTP: {h['optimal_strategy']}",
        f"EVPI per patient: {cur} {_money(h['evpi_per_patient'])}; population ({_money(pop) if pop else 'n/a'} a year, "
        f"{h['decision_horizon_years']:g} years at {h['population_discount_rate']:.1%}): {cur} {_money(h['evpi_population'])}",
        "EVPPI per patient by parameter group (regression; R^2 min, terms/draws):",
    ]
    for _, r in t.evppi.iterrows():
        if str(r["status"]).startswith("ok"):
            flag = "" if r["status"] == "ok" else "  <- exceeds EVPI: regression error"
            lines.append(
                f"  {r['group']:<16}{cur} {_money(r['evppi_per_patient']):>10}  ({_share(r['share_of_evpi'])} of EVPI; "
                f"R^2 {r['r2_min']:.2f}, {r['n_terms']}/{r['n_draws']}, {r['basis']}){flag}"
            )
        else:
            lines.append(f"  {r['group']:<16}{r['status']}")
    err = h.get("evppi_regression_error")
    if err is not None and math.isfinite(err):
        lines.append(
            f"  check: EVPPI(all parameters) must equal the EVPI (the model is deterministic given "
            f"its parameters); the regression is off by {cur} {_money(err)}, the size of its error "
            "here: read group EVPPIs within that of 0 as 0"
        )
    return "\n".join(lines)


def _write_with_report(
    psa: PsaRun, inputs, target: Path, command: str, force: bool = False
) -> pd.DataFrame:
    """The files of :func:`write_outputs` for one country, and report.xlsx beside them: the
    base case (same inputs, country, scenario and strategies) as live formulas, the PSA
    sheets (summary, CEAC line chart, CE plane scatter chart, EVPI, EVPPI, convergence) and
    the verification sheet (base-case checks and the PSA table checks on these draws).
    Returns the check table."""
    from cea.report.workbook import write_analysis_report

    if len(psa.countries) != 1:
        raise CeaError("--report xlsx is written for one country: use --country, not --countries")
    (c,) = psa.countries.values()
    with OutputDir(target, force=force) as tmp:
        write_country(c, psa, tmp, command)
        return write_analysis_report(
            tmp,
            inputs,
            c.code,
            psa.scenario,
            list(c.spec.strategy_names),
            command,
            psa=c.tables,
            check_tables={
                "psa_draws": c.draws,
                "parameters": c.ptable,
                "ceac": c.tables.ceac,
                "evpi": c.tables.evpi,
            },
            verification_note=f"The PSA table checks ran on this PSA ({psa.n_draws:,} draws, seed "
            f"{psa.seed}); no tornado check (no DSA in this run: cea dsa --report xlsx).",
        )


def cli_psa(args) -> int:
    """``cea psa``: PSA and value of information for one country or several."""
    if args.country and args.countries:
        raise CeaError("give --country or --countries, not both")
    report = getattr(args, "report", None)
    if report and args.countries:
        raise CeaError("--report xlsx is written for one country: use --country, not --countries")
    countries = args.countries or args.country
    psa = run_psa(args.inputs, countries, args.draws, args.seed, args.scenario, progress=None)
    codes = list(psa.countries)
    every = bool(args.countries) and args.countries.strip().lower() == "all"
    out = (
        Path(args.out)
        if args.out
        else DEFAULT_OUTPUTS / default_run_name(codes, psa.n_draws, every)
    )
    command = " ".join(args.argv)
    verification = None
    if report == "xlsx":
        verification = _write_with_report(psa, args.inputs, out, command, force=args.force)
    else:
        write_outputs(psa, out, command, force=args.force)
    for c in psa.countries.values():
        print(summary_text(c))
        print()
    model_s = sum(v for k, v in psa.seconds.items() if k.startswith("model_"))
    print(
        f"model {model_s:.1f} s for {len(codes) * psa.n_draws:,} country-draws; total {psa.seconds['total']:.1f} s"
    )
    if verification is not None:
        from cea.report.workbook import verification_summary

        print(verification_summary(verification))
    print(f"written: {out}/")
    return 0

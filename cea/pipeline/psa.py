"""Probabilistic sensitivity analysis: seeded draws -> model -> outcomes -> PSA tables.

``cea psa --country GB --draws 10000 --seed 1`` and ``cea psa --countries all --draws 5000``.
The draws come from :mod:`cea.parameters.sampling` (one seed; clinical draws shared by every
country, prices per country); the model (:func:`cea.igrt.model.run_model`) has no random
numbers, and :mod:`cea.analysis.psa` turns per-draw outcomes into the decision-uncertainty
tables. ``docs/psa.md`` explains the methods and how to read every output.

All draws are made before the model runs; the model then runs in chunks of at most
:data:`PSA_CHUNK_DRAWS`, in threads (:mod:`cea.pipeline.parallel`; progress is reported as chunks
finish), so neither the draws nor the results depend on the chunk size or the number of threads.
"""

from __future__ import annotations

import ctypes
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cea.analysis import voi
from cea.analysis.outcomes import first_problem
from cea.analysis.psa import (
    DEFAULT_DECISION_HORIZON_YEARS,
    INTERVAL,
    PsaTables,
    analyse,
)
from cea.errors import CeaError
from cea.igrt.calibration import CALIBRATED
from cea.igrt.model import outcome_arrays
from cea.igrt.spec import ModelSpec, apply_discount_settings, build_spec
from cea.io.inputs import Inputs
from cea.io.load import load_inputs
from cea.parameters.sampling import check_seed, sample_draws
from cea.parameters.table import ParameterTable, Scenario, build_parameter_table, normalize_country
from cea.pipeline.base import BaseCase, as_scenario, build_base_case, comparisons_from_settings
from cea.pipeline.memory import BYTES_PER_PSA_DRAW, check_fits
from cea.pipeline.parallel import check_workers, in_threads
from cea.pipeline.spool import OUTCOME_COLUMNS, OutcomeStore

#: The engine's backend of the PSA: compiled.
DEFAULT_BACKEND = "numba"
#: Most draws per model call: progress granularity and memory (results do not depend on it).
PSA_CHUNK_DRAWS = 2500


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
    """Per-draw model results: ``cost``, ``qaly`` and ``ly`` as (D, K) arrays (what the
    analyses need), every outcome column of every draw on disk (``store``; the long table as
    :attr:`outcomes`), the calibrated values per draw, and the seconds spent."""

    store: OutcomeStore
    calibrated: pd.DataFrame
    cost: np.ndarray
    qaly: np.ndarray
    ly: np.ndarray
    seconds: float

    @property
    def outcomes(self) -> pd.DataFrame:
        """The long outcomes table, one row per (draw, strategy), all draws of a strategy
        together (read from disk: for small runs and tests; writers use ``store.frames()``)."""
        return self.store.frame()

    def per_draw(self, column: str) -> np.ndarray:
        """One outcome column (:data:`OUTCOME_COLUMNS`) as a (D, K) array, strategies in the
        model's order, read from disk: 8 x K bytes a draw, not the whole long table."""
        return self.store.column(column)


def _check_block(block: np.ndarray, names: list[str], draw_ids: np.ndarray) -> np.ndarray:
    """A chunk's outcomes as :func:`outcome_arrays` gives them, checked: (K, n, C) of
    :data:`OUTCOME_COLUMNS` for the draws ``draw_ids``, every number finite and no cost
    negative (the checks :func:`cea.analysis.outcomes.validate_outcomes` makes of a table; the
    panel of draws and strategies is whole by construction)."""
    expected = (len(names), len(draw_ids), len(OUTCOME_COLUMNS))
    if block.shape != expected:
        raise CeaError(f"the model's outcomes have the shape {block.shape}, expected {expected}")
    K, n, C = block.shape
    values = block.reshape(K * n, C)
    found = first_problem(values, list(OUTCOME_COLUMNS))
    if found is not None:
        i, c, problem = found
        k, d = divmod(i, n)
        raise CeaError(
            f"the PSA: {OUTCOME_COLUMNS[c]} is {values[i, c]:g} at draw {draw_ids[d]}, "
            f"strategy '{names[k]}': {problem}"
        )
    return block


def run_draws(
    draws: pd.DataFrame,
    spec: ModelSpec,
    chunk_draws: int = PSA_CHUNK_DRAWS,
    progress: Progress | None = None,
    label: str = "",
    backend: str = DEFAULT_BACKEND,
    workers: int | None = None,
) -> ModelRun:
    """Run the model over all draws in chunks of at most ``chunk_draws``, ``workers`` chunks
    at a time in threads (None: one per CPU; every thread gets a chunk when there are fewer
    than ``workers`` x ``chunk_draws`` draws). Progress is reported as chunks finish; the
    results do not depend on the chunk size or the number of threads.

    Each chunk's outcomes go to disk (:class:`OutcomeStore`) as it finishes and only per-draw
    cost, QALYs and life-years stay in memory, so memory grows by 3 x K x 8 bytes a draw
    beyond the draws themselves, whatever the number of draws. Every chunk stores its own
    results (disjoint slices of the arrays; the file under its lock), in its thread: the main
    thread only counts finished chunks, so no serial step grows with the draws."""
    if chunk_draws < 1:
        raise CeaError(f"chunk_draws must be >= 1, got {chunk_draws}")
    workers = check_workers(workers)
    D, names = len(draws), list(spec.strategy_names)
    t0 = time.perf_counter()
    chunk = max(1, min(chunk_draws, -(-D // workers)))
    store = OutcomeStore(names, draws.index.to_numpy(), OUTCOME_COLUMNS)
    kept = {c: np.empty((D, len(names))) for c in ("cost", "qaly", "ly")}
    calibrated = np.empty((D, len(CALIBRATED)))

    def one(lo: int) -> int:
        block, cal = outcome_arrays(draws.iloc[lo : lo + chunk], spec, OUTCOME_COLUMNS, backend)
        n = cal.shape[0]
        store.put(lo, _check_block(block, names, draws.index[lo : lo + n]))
        for c in kept:
            kept[c][lo : lo + n] = block[:, :, OUTCOME_COLUMNS.index(c)].T
        calibrated[lo : lo + n] = cal
        return n

    for n in in_threads(one, range(0, D, chunk), workers):
        if progress is not None:
            progress.update(n, label)
    cal = pd.DataFrame(calibrated, index=draws.index, columns=list(CALIBRATED))
    return ModelRun(store, cal, **kept, seconds=time.perf_counter() - t0)


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
    backend: str = DEFAULT_BACKEND,
    workers: int | None = None,
    evppi: bool = True,
) -> PsaRun:
    """The PSA of one or several countries (clinical draws shared; prices per country).

    ``countries``: an ISO2 code, a list, "all", or None (the settings' country). ``n_draws``
    and ``seed`` default to ``[run]`` of the settings (after the scenario). ``progress``:
    True/False, or None for "when stderr is a terminal". ``backend``: the engine's backend
    (``numba``, compiled, or ``numpy``; the same results to 1e-12). ``workers``: threads that
    run chunks of draws at the same time, and the analysis's blocks of draws (None: one per
    CPU); the results do not depend on it. ``evppi``: False leaves out the EVPPI (its tables
    empty; :func:`cea.analysis.psa.analyse`).
    """
    t0 = time.perf_counter()
    if not isinstance(inputs, Inputs):
        inputs = load_inputs(inputs)
    scenario = as_scenario(scenario)
    run_settings = {**inputs.settings.get("run", {}), **scenario.settings.get("run", {})}
    codes = _country_codes(inputs, countries, run_settings)
    n_draws = int(run_settings.get("n_draws", 1000)) if n_draws is None else n_draws
    seed = int(run_settings.get("seed", 1)) if seed is None else seed
    check_seed(seed)
    workers = check_workers(workers)
    if isinstance(n_draws, int) and n_draws > 0:  # other values are refused by sample_draws
        check_fits(
            n_draws * len(codes), BYTES_PER_PSA_DRAW, f"--draws {n_draws:,} for {len(codes)} "
            f"{'country' if len(codes) == 1 else 'countries'}",
            "at most {:,} draws in all would fit (draws times countries)",
        )  # fmt: skip
    if not (isinstance(decision_horizon_years, int | float) and decision_horizon_years > 0):
        raise CeaError(f"decision horizon must be > 0 years, got {decision_horizon_years!r}")
    ptables = {c: build_parameter_table(inputs, c, scenario) for c in codes}
    all_draws = sample_draws(inputs, ptables, n_draws, seed, scenario)
    # glibc keeps memory freed by other threads in their arenas; malloc_trim gives it back, so
    # that the analysis does not add its peak to what the model's chunks left behind
    trim = None
    if sys.platform.startswith("linux"):
        try:
            trim = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):  # not glibc
            pass
    seconds = {"load_and_draw": time.perf_counter() - t0}
    bar = Progress(len(codes) * n_draws, enabled=progress)
    results = {}
    try:
        for code in codes:
            pt = ptables[code]
            spec = apply_discount_settings(
                build_spec(pt, inputs, list(strategies) if strategies else None), pt.settings
            )
            t1 = time.perf_counter()
            base = build_base_case(inputs, ptable=pt, spec=spec, backend=backend)
            seconds[f"base_case_{code}"] = time.perf_counter() - t1
            run = run_draws(all_draws[code], spec, chunk_draws, bar, code, backend, workers)
            if trim is not None:  # what the model's threads freed, back to the system
                trim(0)
            comps = comparisons_from_settings(pt.settings, spec)
            t1 = time.perf_counter()
            tables = analyse(
                run.cost, run.qaly, run.ly, all_draws[code], pt, spec.strategy_names,
                base.outcomes, comps, decision_horizon_years, evppi, workers,
            )  # fmt: skip
            seconds[f"model_{code}"] = run.seconds
            seconds[f"analysis_{code}"] = time.perf_counter() - t1
            results[code] = CountryPsa(code, base, all_draws[code], run, tables)
    finally:
        bar.close()
    seconds["total"] = time.perf_counter() - t0
    return PsaRun(results, seed, n_draws, float(decision_horizon_years), scenario, inputs, seconds)


def _country_codes(inputs: Inputs, countries, run_settings: dict) -> list[str]:
    """The countries of a run: a code, a comma-separated list, "all", a sequence, or None (the
    settings' country)."""
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
    codes = [normalize_country(inputs, c) for c in codes]
    if not codes:
        raise CeaError("no country given")
    if len(set(codes)) != len(codes):
        raise CeaError(f"a country is listed twice: {', '.join(codes)}")
    return codes


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
        "population_evpi": "EVPI per patient x sum_{t=0}^{H-1} population_eligible_annual (1 + population_growth_annual)^t / (1 + discount_rate_costs)^t",
        "evppi_method": "not computed (--no-evppi)"
        if all(c.tables.evppi.empty for c in psa.countries.values())
        else "all_parameters: the EVPI (by definition); other groups: Gaussian-process "
        "regression (Strong, Oakley & Brennan 2014; squared-exponential kernel, a lengthscale per "
        "parameter, linear mean; lengthscales by maximum a posteriori on evenly spaced draws; "
        "reduced-rank fit to every draw, its smoothing by GCV), capped at the EVPI; standard error "
        f"from the influence function; told apart from 0 above {voi.RESOLVE_Z:g} standard errors",
        "net_benefit": "NMB = wtp x QALY - cost, wtp = the country's WTP per QALY",
        "chunk_draws": PSA_CHUNK_DRAWS,
    }


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

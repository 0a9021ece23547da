"""The IgRT model run over draws: parameter draws -> calibration -> declared cohorts (one per
strategy and subgroup) -> engine -> outcomes, subgroups weighted.

No I/O and no random numbers here. Every function is vectorized over draws: a draws table of
D rows (the base case, the DSA design or the PSA sample) goes through one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cea.engine.cohort import run_cohorts
from cea.engine.numpy_backend import probabilities
from cea.errors import ModelInputError
from cea.igrt.calibration import (
    CALIBRATED,
    calibrate,
    cumulative_incidence,
    label_draw,
    median_survival_years,
    run_declared,
)
from cea.igrt.declaration import SEVERE, Params, declare, time_profiles
from cea.igrt.spec import COST_CATEGORIES, DEAD, REWARDS, SUBGROUPS, ModelSpec, S, Strategy

#: The outcomes table's numeric columns, in its order (after ``draw`` and ``strategy``).
OUTCOME_TABLE_COLUMNS = (
    "cost",
    "cost_undiscounted",
    *(c for name in REWARDS for c in (name, f"{name}_undiscounted")),
)
#: Chunk size target: elements of one (draws x cohorts x cycles x states x states) array.
CHUNK_ELEMENTS = 24_000_000


@dataclass
class ModelResult:
    """Outcomes per draw and strategy, subgroup-weighted.

    outcomes: long table, one row per (draw, strategy): ``draw, strategy, cost`` (total
    discounted), ``qaly``, ``ly`` and every reward in :data:`REWARDS` discounted (bare
    name) and undiscounted (``<name>_undiscounted``), plus ``cost_undiscounted``.
    traces: when asked for, (strategy, subgroup) -> (D, T+1, S) state occupancy.
    per_cycle: when asked for, reward name (and ``cost``) -> (K, D, T+1): each trace row's
    undiscounted contribution per patient, subgroup-weighted, strategies in ``spec`` order
    (:class:`cea.engine.declaration.CohortResult`); summed over rows it is the
    ``<name>_undiscounted`` outcome.
    """

    outcomes: pd.DataFrame
    traces: dict[tuple[str, str], np.ndarray] | None = None
    calibrated: pd.DataFrame | None = None
    per_cycle: dict[str, np.ndarray] | None = None


def run_model(
    draws: pd.DataFrame,
    spec: ModelSpec,
    *,
    keep_traces: bool = False,
    calibrated: pd.DataFrame | None = None,
    chunk_draws: int | None = None,
    backend: str = "numpy",
    keep_per_cycle: bool = False,
) -> ModelResult:
    """Run every strategy and both subgroups for every draw.

    Parameters
    ----------
    draws : DataFrame, one row per draw, one column per parameter (input units).
    spec : ModelSpec.
    keep_traces : keep the (D, T+1, S) trace of each strategy and subgroup.
    calibrated : per-draw calibrated values (columns :data:`CALIBRATED`, per year, same index
        as ``draws``); calibrated per draw by :func:`calibrate` when None.
    chunk_draws : draws per engine call (bounds memory); chosen automatically when None.
    backend : the engine's backend, ``"numpy"`` or ``"numba"``
        (:func:`cea.engine.cohort.run_cohorts`); both give the same results to 1e-12.
    keep_per_cycle : also return each row's contribution (:attr:`ModelResult.per_cycle`;
        computed by the NumPy reference whatever ``backend`` says).

    Results do not depend on ``chunk_draws``.
    """
    res = _run(draws, spec, keep_traces, calibrated, chunk_draws, backend, keep_per_cycle)
    D, K = len(draws), len(spec.strategies)
    out = pd.DataFrame(
        {
            "draw": np.tile(draws.index.to_numpy(), K),
            "strategy": np.repeat(spec.strategy_names, D),
            **{name: res.columns[name].reshape(-1) for name in OUTCOME_TABLE_COLUMNS},
        }
    )
    return ModelResult(
        outcomes=out,
        traces=res.traces,
        calibrated=pd.DataFrame(res.calibrated, index=draws.index),
        per_cycle=res.per_cycle,
    )


def outcome_arrays(
    draws: pd.DataFrame, spec: ModelSpec, columns: Sequence[str], backend: str = "numpy"
) -> tuple[np.ndarray, np.ndarray]:
    """The numbers of :func:`run_model`'s outcomes table without the table: ``columns`` (of
    :data:`OUTCOME_TABLE_COLUMNS`) as a (K, D, C) array, strategies in ``spec`` order, and the
    calibrated values (:data:`CALIBRATED`) as a (D, 2) array. For callers that only need the
    numbers (the PSA's chunks): no long table to build and take apart again."""
    res = _run(draws, spec, False, None, None, backend, False)
    block = np.stack([res.columns[c] for c in columns], axis=-1)
    return block, np.stack([res.calibrated[c] for c in CALIBRATED], axis=-1)


@dataclass
class _Totals:
    """What :func:`_run` computes: outcome columns as (K, D) arrays, and the rest as in
    :class:`ModelResult` (calibrated values as name -> (D,))."""

    columns: dict[str, np.ndarray]
    traces: dict[tuple[str, str], np.ndarray] | None
    calibrated: dict[str, np.ndarray]
    per_cycle: dict[str, np.ndarray] | None


def _run(draws, spec, keep_traces, calibrated, chunk_draws, backend, keep_per_cycle) -> _Totals:
    """The body of :func:`run_model` (same arguments), up to its table."""
    D = len(draws)
    K = len(spec.strategies)
    # the subgroups differ only in detection: strategies that never test IgG run one cohort,
    # used for both subgroups
    cohorts: list[tuple[Strategy, str]] = []
    which = np.zeros((K, 2), dtype=int)  # (strategy, subgroup) -> cohort index
    for k, st in enumerate(spec.strategies):
        for g, sg in enumerate(SUBGROUPS):
            if st.trigger == "igg_below_threshold" or g == 0:
                cohorts.append((st, sg))
            which[k, g] = len(cohorts) - 1
    # the NumPy backend's (draws x cycles x states x states) transition array bounds the chunk;
    # the compiled backend stores no per-cycle array
    per_draw = len(cohorts) * spec.n_cycles * (1 if backend == "numba" else S * S)
    chunk = chunk_draws or max(1, CHUNK_ELEMENTS // per_draw)
    totals_disc = {name: np.zeros((K, 2, D)) for name in REWARDS}
    totals_und = {name: np.zeros((K, 2, D)) for name in REWARDS}
    traces = {} if keep_traces else None
    rows = {n: np.zeros((K, 2, D, spec.n_cycles + 1)) for n in REWARDS} if keep_per_cycle else {}
    cal = {name: np.zeros(D) for name in CALIBRATED}
    weights = np.zeros(D)
    timing = spec.timing()
    for lo in range(0, D, chunk):
        hi = min(D, lo + chunk)
        v = Params(draws.iloc[lo:hi], spec.unit_scale)
        if calibrated is None:
            v = calibrate(v, spec, backend)
        else:
            v = v.with_derived(**{n: calibrated[n].to_numpy(float)[lo:hi] for n in CALIBRATED})
        for name in CALIBRATED:
            cal[name][lo:hi] = v[name]
        weights[lo:hi] = v["p_igg_isotype"]
        models = [declare(st, sg, v, spec) for st, sg in cohorts]
        try:
            results = run_cohorts(models, time_profiles(v, spec), timing, backend=backend,
                                  keep_trace=keep_traces, keep_per_cycle=keep_per_cycle)  # fmt: skip
        except ModelInputError as exc:
            raise ModelInputError(label_draw(str(exc), v)) from None
        for name in REWARDS:
            present = [r for r in results if name in r.discounted]
            if not present:
                continue
            zero = np.zeros(hi - lo)
            disc = np.stack([r.discounted.get(name, zero) for r in results])
            und = np.stack([r.undiscounted.get(name, zero) for r in results])
            totals_disc[name][:, :, lo:hi] = disc[which]
            totals_und[name][:, :, lo:hi] = und[which]
            if keep_per_cycle:
                zero_rows = np.zeros((hi - lo, spec.n_cycles + 1))
                pc = np.stack([r.per_cycle.get(name, zero_rows) for r in results])
                rows[name][:, :, lo:hi] = pc[which]
        if keep_traces:
            for k, st in enumerate(spec.strategies):
                for g, sg in enumerate(SUBGROUPS):
                    traces.setdefault((st.strategy, sg), []).append(results[which[k, g]].trace)
    if keep_traces:
        traces = {key: np.concatenate(parts, axis=0) for key, parts in traces.items()}
    w = np.stack([weights, 1 - weights])  # (2, D): igg_isotype, non_igg
    # strategies whose subgroups share one cohort take its value as it is (w x + (1 - w) x is
    # not exactly x in floating point, which would let the subgroup share move them)
    shared = which[:, 0] == which[:, 1]

    def weighted(totals: np.ndarray) -> np.ndarray:
        out = (totals * w[None]).sum(axis=1)  # (K, D)
        out[shared] = totals[shared, 0]
        return out

    per_cycle = None
    if keep_per_cycle:
        per_cycle = {}
        for name in REWARDS:
            r = (rows[name] * w[None, :, :, None]).sum(axis=1)  # (K, D, T+1)
            r[shared] = rows[name][shared, 0]
            per_cycle[name] = r
        per_cycle["cost"] = sum(per_cycle[c] for c in COST_CATEGORIES)
    cols = {}
    for name in REWARDS:
        cols[name] = weighted(totals_disc[name])
        cols[f"{name}_undiscounted"] = weighted(totals_und[name])
    # the total cost, added category by category in their order (as a row sum of the table)
    cols["cost"] = _left_sum(cols[c] for c in COST_CATEGORIES)
    cols["cost_undiscounted"] = _left_sum(cols[f"{c}_undiscounted"] for c in COST_CATEGORIES)
    if not all(np.isfinite(c).all() for c in cols.values()):
        raise ModelInputError("the model produced non-finite results: check the parameter values")
    return _Totals(cols, traces, cal, per_cycle)


def _left_sum(parts) -> np.ndarray:
    """((a + b) + c) + ...: the order a row sum of the outcomes table adds its columns in."""
    parts = iter(parts)
    out = np.array(next(parts), dtype=float)
    for p in parts:
        out += p
    return out


# --------------------------------------------------------------------------- face validity


def _mixture(strategy: Strategy, v: Params, spec: ModelSpec, backend: str):
    """Subgroup-weighted trace (D, T+1, S) and expected severe infections per cycle (D, T)."""
    w_iso = v["p_igg_isotype"]
    trace = np.zeros((v.n, spec.n_cycles + 1, S))
    events = np.zeros((v.n, spec.n_cycles))
    for sg, w in (("igg_isotype", w_iso), ("non_igg", 1 - w_iso)):
        res = run_declared(strategy, sg, v, spec, backend, keep_events=True)
        trace += w[:, None, None] * res.trace
        events += w[:, None] * res.event_totals[SEVERE]
    return trace, events


def _strategy_params(draws: pd.DataFrame, spec: ModelSpec, strategy: str, calibrated, backend):
    st = {s.strategy: s for s in spec.strategies}[strategy]
    v = Params(draws, spec.unit_scale)
    if calibrated is None:
        v = calibrate(v, spec, backend)
    else:
        v = v.with_derived(**{n: calibrated[n].to_numpy(float) for n in CALIBRATED})
    return st, v


def severe_infection_incidence(
    draws: pd.DataFrame,
    spec: ModelSpec,
    strategy: str,
    months: float,
    calibrated: pd.DataFrame | None = None,
    backend: str = "numpy",
) -> np.ndarray:
    """Cumulative incidence of severe infection by ``months`` for one strategy, deaths censored
    (as a Kaplan-Meier estimate reports it): 1 - exp(-integral of the mean hazard among the
    alive), subgroups weighted. Returns (D,)."""
    st, v = _strategy_params(draws, spec, strategy, calibrated, backend)
    trace, events = _mixture(st, v, spec, backend)
    return cumulative_incidence(trace[:, :-1, :DEAD].sum(axis=2), events, spec, months)


def median_os_months(
    draws: pd.DataFrame,
    spec: ModelSpec,
    strategy: str,
    calibrated: pd.DataFrame | None = None,
    backend: str = "numpy",
) -> np.ndarray:
    """Median overall survival (months) of one strategy, subgroups weighted. Returns (D,)."""
    st, v = _strategy_params(draws, spec, strategy, calibrated, backend)
    trace, _ = _mixture(st, v, spec, backend)
    return median_survival_years(1.0 - trace[:, :, DEAD], spec.dt) * 12.0


def transition_probabilities(
    strategy: Strategy, subgroup: str, v: Params, spec: ModelSpec
) -> np.ndarray:
    """The (D, T, S, S) transition probabilities of one strategy and subgroup (``v`` calibrated)."""
    model = declare(strategy, subgroup, v, spec, with_rewards=False)
    return probabilities(model, time_profiles(v, spec), spec.n_cycles)

"""PSA tables from per-draw outcomes: summary against the deterministic base case, CEAC and
CEAF, EVPI (per patient and population), EVPPI by parameter group, convergence, CE plane."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from cea.analysis import voi
from cea.analysis.incremental import WTP_SOURCES, icer_table
from cea.errors import CeaError
from cea.parameters.table import ParameterTable

#: Decision horizon (years) over which population EVPI counts annual incident cohorts,
#: discounted at the country's cost discount rate (docs/psa.md). Recorded in run.json.
DEFAULT_DECISION_HORIZON_YEARS = 5.0


#: Draws of the CE-plane table (the first ones): what a plane shows, whatever the PSA's size.
CE_PLANE_DRAWS = 5000

#: Central interval of the summary: 2.5% and 97.5% percentiles of the draws.
INTERVAL = (0.025, 0.975)


#: WTP grid: dense from 0 to WTP_GRID_FACTOR x the country's WTP (and its alternatives), then
#: up to WTP_GRID_ICER_FACTOR x the largest frontier ICER of the PSA means, capped at
#: WTP_GRID_CAP_FACTOR x the WTP, so the CEAC shows where each strategy takes over.
WTP_GRID_FACTOR = 5.0


WTP_GRID_ICER_FACTOR = 1.5


WTP_GRID_CAP_FACTOR = 100.0


WTP_GRID_POINTS = 101


#: Name of the EVPPI group holding every uncertain parameter: its EVPPI is the EVPI.
ALL_PARAMETERS = "all_parameters"


#: Columns of the EVPPI table before the R^2 of each strategy and the group's parameters.
EVPPI_COLUMNS = (
    "group", "n_parameters", "evppi_per_patient", "se_per_patient", "evppi_population",
    "se_population", "share_of_evpi", "distinguishable_from_zero", "draws_needed",
    "draws_needed_evppi_per_patient", "estimate_per_patient", "method", "status", "n_draws",
    "n_fit", "n_terms", "edf", "r2_min",
)  # fmt: skip


#: Columns of the EVPPI table by WTP.
EVPPI_BY_WTP = ("group", "wtp", "evppi_per_patient", "evppi_population", "capped")


def wtp_grid(
    wtp: float, alternatives: Sequence[float] = (), icers: Sequence[float] = ()
) -> np.ndarray:
    """WTP values for the CEAC, EVPI and EVPPI curves (sorted, unique, always containing the
    country's WTP and its alternatives exactly)."""
    if not (math.isfinite(wtp) and wtp > 0):
        raise CeaError(f"willingness to pay must be > 0, got {wtp!r}")
    near = max([WTP_GRID_FACTOR * wtp, *alternatives])
    if not math.isfinite(near):
        raise CeaError(
            f"willingness to pay {wtp:g} per QALY: the curves' WTP grid, up to "
            f"{WTP_GRID_FACTOR:g} times it, is beyond the range of floating-point numbers: give "
            f"a smaller WTP ({WTP_SOURCES})"
        )
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


def parameter_groups(
    ptable: ParameterTable, draws: pd.DataFrame, workers: int | None = None
) -> dict[str, list[str]]:
    """EVPPI groups: the ``category`` column, uncertain parameters only (a column that varies
    across the draws), plus :data:`ALL_PARAMETERS`. Groups with no uncertain parameter are kept
    (EVPPI 0) so the table lists every category."""
    groups: dict[str, list[str]] = {}
    varying = [n for n in ptable.names if np.ptp(draws[n].to_numpy()) > 0]
    for n in ptable.names:
        cat = str(ptable.df.loc[n, "category"] or "uncategorised")
        groups.setdefault(cat, [])
        if n in varying:
            groups[cat].append(n)
    groups[ALL_PARAMETERS] = varying
    return groups


def per_draw(outcomes: pd.DataFrame, names: Sequence[str], column: str) -> np.ndarray:
    """One outcome as a (draw, strategy) array, strategies in the order ``names``, draws in
    the order of the outcomes table (which lists all draws of a strategy together)."""
    wide = outcomes.pivot(index="draw", columns="strategy", values=column)
    order = pd.unique(outcomes["draw"])
    return wide.loc[order, list(names)].to_numpy(dtype=float)


@dataclass
class _Draws:
    """What every PSA table is made from: per-draw cost, QALYs and life-years (D, K) of the
    strategies ``names``, the WTP grid and the index of the country's WTP in it."""

    names: list[str]
    cost: np.ndarray
    qaly: np.ndarray
    ly: np.ndarray
    wtp: float
    grid: np.ndarray
    i_wtp: int

    @property
    def n(self) -> int:
        return self.cost.shape[0]

    def index(self, strategy: str) -> int:
        return self.names.index(strategy)


def _group_means(x: np.ndarray, workers: int | None = None) -> np.ndarray:
    """Column means of ``x`` (D, K) as pandas' groupby computes them (compensated summation),
    the same to the last bit as the strategies' means of the long outcomes table: the ICER of
    the means, a small difference of large numbers, depends on it. Column by column (the same
    sums as the whole table's), in threads (``workers``), one column copied at a time in each."""
    one = np.zeros(len(x), dtype=np.intp)  # one group: every draw

    def mean(k: int) -> float:
        return pd.Series(x[:, k]).groupby(one).mean().iloc[0]

    return np.array(list(voi.in_threads(mean, range(x.shape[1]), workers)))


def _stat_row(kind, name, measure, x, det=float("nan")) -> dict:
    """One summary row: PSA mean, Monte Carlo SE, central interval, against the deterministic
    value."""
    x = np.asarray(x, float)
    m = float(x.mean())
    lo, hi = _interval(x)
    diff = m - det
    return {
        "kind": kind,
        "name": name,
        "measure": measure,
        "psa_mean": m,
        "mc_se": float(x.std(ddof=1) / math.sqrt(len(x))),
        "interval_low": lo,
        "interval_high": hi,
        "deterministic": det,
        "psa_minus_deterministic": diff,
        "relative_difference": diff / abs(det)
        if det not in (0.0,) and math.isfinite(det)
        else float("nan"),
    }


def _share_row(kind, name, measure, p: float, n: int) -> dict:
    return {"kind": kind, "name": name, "measure": measure, "psa_mean": p,
            "mc_se": math.sqrt(p * (1 - p) / n)}  # fmt: skip


def summary_table(
    d: _Draws,
    prob: np.ndarray,
    base_outcomes: pd.DataFrame,
    comparisons,
    workers: int | None = None,
) -> pd.DataFrame:
    """Per strategy and named comparison: PSA mean, MC SE and interval of cost, QALYs, LYs, NMB
    (INMB), against the deterministic base case; P(cost-effective) and P(INMB > 0); the ICER of
    the means. The strategies' and comparisons' rows are made in threads (``workers``)."""
    base = base_outcomes.set_index("strategy")
    wtp = d.wtp

    def strategy_rows(k: int) -> list[dict]:
        s, rows = d.names[k], []
        for measure in ("cost", "qaly", "ly"):
            x = np.ascontiguousarray(getattr(d, measure)[:, k])
            rows.append(_stat_row("strategy", s, measure, x, float(base.loc[s, measure])))
        det_nmb = wtp * float(base.loc[s, "qaly"]) - float(base.loc[s, "cost"])
        rows.append(_stat_row("strategy", s, "nmb", wtp * d.qaly[:, k] - d.cost[:, k], det_nmb))
        rows.append(_share_row("strategy", s, "p_cost_effective", prob[d.i_wtp, k], d.n))
        return rows

    def comparison_rows(pair: tuple[str, str]) -> list[dict]:
        a, b = pair
        ia, ib = d.index(a), d.index(b)
        name, rows = f"{a} vs {b}", []
        dc, dq = d.cost[:, ia] - d.cost[:, ib], d.qaly[:, ia] - d.qaly[:, ib]
        det_dc = float(base.loc[a, "cost"] - base.loc[b, "cost"])
        det_dq = float(base.loc[a, "qaly"] - base.loc[b, "qaly"])
        rows.append(_stat_row("comparison", name, "inc_cost", dc, det_dc))
        rows.append(_stat_row("comparison", name, "inc_qaly", dq, det_dq))
        rows.append(_stat_row("comparison", name, "inmb", wtp * dq - dc, wtp * det_dq - det_dc))
        p = float(np.mean(wtp * dq - dc > 0))
        rows.append(_share_row("comparison", name, "p_inmb_positive", p, d.n))
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
        return rows

    jobs = [partial(strategy_rows, k) for k in range(len(d.names))]
    jobs += [partial(comparison_rows, pair) for pair in comparisons]
    parts = voi.in_threads(lambda job: job(), jobs, workers)
    summary = pd.DataFrame([row for part in parts for row in part])
    summary.insert(0, "wtp", wtp)
    return summary


def ceac_table(d: _Draws, prob: np.ndarray, opt: np.ndarray) -> pd.DataFrame:
    """Long CEAC: probability each strategy is optimal at each WTP; ``on_ceaf``: it is the
    strategy of highest expected NMB there."""
    K = len(d.names)
    return pd.DataFrame(
        {
            "wtp": np.repeat(d.grid, K),
            "strategy": np.tile(d.names, len(d.grid)),
            "probability": prob.reshape(-1),
            "on_ceaf": (np.repeat(opt, K) == np.tile(np.arange(K), len(d.grid))),
        }
    )


def evppi_tables(
    d: _Draws,
    groups: dict[str, list[str]],
    draws: pd.DataFrame,
    evpi_pp: np.ndarray,
    mult: float,
    workers: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """EVPPI of each parameter group at the country's WTP (one row per group, with its standard
    error and whether it is told apart from 0) and at every WTP of the grid; no groups give
    both tables empty, with their columns.

    :data:`ALL_PARAMETERS` is the EVPI by definition (:func:`voi.evppi_all_parameters`); the
    other groups are estimated by Gaussian-process regression (:func:`voi.evppi_groups`, Strong,
    Oakley & Brennan 2014) and capped at the EVPI. Each group's draws go as the draws table's
    columns (views, not copies); groups and their blocks of draws run in ``workers`` threads."""
    i_wtp, names = d.i_wtp, d.names
    fits = voi.evppi_groups(
        d.cost, d.qaly,
        {g: [draws[n].to_numpy() for n in p] for g, p in groups.items() if p and g != ALL_PARAMETERS},
        d.grid, fit_wtp=d.wtp, se_wtp=[d.wtp], workers=workers, evpi_values=evpi_pp,
    )  # fmt: skip
    ev_rows, curves = [], []
    for g, params in groups.items():
        if g == ALL_PARAMETERS:
            r = voi.evppi_all_parameters(
                d.cost, d.qaly, d.grid, [d.wtp], workers=workers, evpi_values=evpi_pp
            )
        elif g in fits:
            r = fits[g]
        else:
            r = voi.evppi_gp(
                d.cost, d.qaly, [], d.grid, d.wtp, [d.wtp], evpi_values=evpi_pp, workers=workers
            )
        v, se, ev = float(r.evppi[i_wtp]), float(r.se[i_wtp]), float(evpi_pp[i_wtp])
        status = r.status
        if r.capped[i_wtp]:
            status = "ok; capped at the EVPI"
        resolved, target, draws_needed = voi.resolution(v, se, ev, r.n_draws)
        row = {
            "group": g,
            "n_parameters": len(params),
            "evppi_per_patient": v,
            "se_per_patient": se,
            "evppi_population": v * mult,
            "se_population": se * mult,
            "share_of_evpi": v / ev if ev > 0 else float("nan"),
            "distinguishable_from_zero": resolved,
            "draws_needed": draws_needed,
            "draws_needed_evppi_per_patient": target,
            "estimate_per_patient": float(r.estimate[i_wtp]),
            "method": r.method or "",
            "status": status,
            "n_draws": r.n_draws,
            "n_fit": r.n_fit,
            "n_terms": r.n_terms,
            "edf": r.edf,
            "r2_min": float(np.nanmin(r.r2)) if np.isfinite(r.r2).any() else float("nan"),
        }
        for k, s in enumerate(names[1:]):
            row[f"r2_{s}_vs_{names[0]}"] = float(r.r2[k])
        row["parameters"] = ";".join(params)
        ev_rows.append(row)
        curves.append(
            pd.DataFrame(
                {
                    "group": g,
                    "wtp": d.grid,
                    "evppi_per_patient": r.evppi,
                    "evppi_population": r.evppi * mult,
                    "capped": r.capped,
                }
            )  # fmt: skip
        )
    columns = [*EVPPI_COLUMNS, *(f"r2_{s}_vs_{names[0]}" for s in names[1:]), "parameters"]
    table = pd.DataFrame(ev_rows, columns=columns)
    table["draws_needed"] = table["draws_needed"].astype("Int64")
    by_wtp = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=EVPPI_BY_WTP)
    return table, by_wtp


def convergence_table(d: _Draws, comparisons, workers: int | None = None) -> pd.DataFrame:
    """Running mean and Monte Carlo SE over the draws of each comparison's INMB and each
    strategy's P(cost-effective); the strategy of highest net benefit in blocks of draws and
    the series in threads (``workers``)."""
    wtp, c, q = d.wtp, d.cost, d.qaly

    def best(lo: int, hi: int) -> np.ndarray:
        nb = wtp * q[lo:hi] - c[lo:hi]
        return np.argmax(nb - nb[:, :1], axis=1)

    best_k = np.concatenate(list(voi.in_blocks(best, d.n, workers)))

    def inmb(pair: tuple[str, str]) -> pd.DataFrame:
        a, b = d.index(pair[0]), d.index(pair[1])
        n, m, se = voi.running_mean_se((wtp * q[:, a] - c[:, a]) - (wtp * q[:, b] - c[:, b]))
        return pd.DataFrame({"measure": "inmb", "name": f"{pair[0]} vs {pair[1]}",
                             "n_draws": n, "mean": m, "mc_se": se})  # fmt: skip

    def p_ce(k: int) -> pd.DataFrame:
        n, m, _ = voi.running_mean_se((best_k == k).astype(float))
        se = np.sqrt(m * (1 - m) / n)
        return pd.DataFrame({"measure": "p_cost_effective", "name": d.names[k], "n_draws": n,
                             "mean": m, "mc_se": se})  # fmt: skip

    jobs = [partial(inmb, pair) for pair in comparisons]
    jobs += [partial(p_ce, k) for k in range(len(d.names))]
    return pd.concat(list(voi.in_threads(lambda job: job(), jobs, workers)), ignore_index=True)


def ce_plane_table(
    d: _Draws, draw_ids: np.ndarray, workers: int | None = None, n_draws: int | None = None
) -> pd.DataFrame:
    """Every strategy against the first, per draw, for the first ``n_draws`` draws (None:
    :data:`CE_PLANE_DRAWS`; what a CE plane shows, whatever the PSA's size: every draw's
    outcomes are in the per-draw file, the means of all draws in the incremental means):
    incremental cost and QALYs, the differences made in place, a strategy at a time in threads
    (``workers``)."""
    K, D = len(d.names), min(d.n, CE_PLANE_DRAWS if n_draws is None else n_draws)
    inc_cost, inc_qaly = np.empty((K - 1, D)), np.empty((K - 1, D))

    def differences(k: int) -> None:
        np.subtract(d.cost[:D, k + 1], d.cost[:D, 0], out=inc_cost[k])
        np.subtract(d.qaly[:D, k + 1], d.qaly[:D, 0], out=inc_qaly[k])

    list(voi.in_threads(differences, range(K - 1), workers))
    return pd.DataFrame(
        {
            "draw": np.tile(draw_ids[:D], K - 1),
            "strategy": np.repeat(d.names[1:], D),
            "reference": d.names[0],
            "inc_cost": inc_cost.reshape(-1),
            "inc_qaly": inc_qaly.reshape(-1),
        },
        copy=False,
    )


def analyse(
    cost: np.ndarray,
    qaly: np.ndarray,
    ly: np.ndarray,
    draws: pd.DataFrame,
    ptable: ParameterTable,
    names: Sequence[str],
    base_outcomes: pd.DataFrame,
    comparisons: Sequence[tuple[str, str]],
    decision_horizon_years: float = DEFAULT_DECISION_HORIZON_YEARS,
    evppi: bool = True,
    workers: int | None = None,
) -> PsaTables:
    """Summary, CEAC/CEAF, EVPI, EVPPI by parameter group, convergence and CE-plane tables.

    ``cost``, ``qaly``, ``ly``: the PSA's discounted per-draw outcomes, (D, K) arrays, draws
    in the order of ``draws`` (the parameter draws, index ``draw``), strategies in the order
    ``names`` (:func:`per_draw` makes them from a long outcomes table); ``base_outcomes``: the
    deterministic base case's outcomes. Only these three per-draw outcomes are needed, so
    the PSA keeps no long table of every draw's results in memory.

    ``evppi``: False leaves out the EVPPI (its two tables empty, with their columns; the
    headline's EVPPI dictionaries empty). The work over the draws runs in blocks of draws
    (:data:`voi.DRAW_BLOCK`) and tables in ``workers`` threads (None: one per CPU; the tables'
    column-by-column work only when the draws fill more than one block); the results do not
    depend on it."""
    country = ptable.country
    names = list(names)
    cost, qaly, ly = (np.asarray(a, float) for a in (cost, qaly, ly))
    if not cost.shape == qaly.shape == ly.shape == (len(draws), len(names)):
        raise CeaError(
            f"per-draw outcomes of shape {cost.shape}, {qaly.shape}, {ly.shape} for "
            f"{len(draws)} draws and {len(names)} strategies"
        )
    wtp = float(country.wtp_per_qaly)
    # the tables' column-by-column work in threads only when the draws fill more than one
    # block: below that each piece is too small to gain from a thread (10,000 draws: 0.09 s
    # with 2 threads against 0.07 s without)
    table_workers = workers if len(draws) > voi.DRAW_BLOCK else 1
    mean_out = pd.DataFrame(
        {"strategy": names, "cost": _group_means(cost, table_workers),
         "qaly": _group_means(qaly, table_workers), "ly": _group_means(ly, table_workers)}
    )  # fmt: skip
    inc_means = icer_table(mean_out, cost="cost", effect="qaly", wtp=wtp)
    grid = wtp_grid(wtp, country.wtp_alternatives, inc_means["icer"].tolist())
    d = _Draws(names, cost, qaly, ly, wtp, grid, int(np.flatnonzero(grid == wtp)[0]))
    prob = voi.ceac(d.cost, d.qaly, grid, workers)
    opt, p_opt = voi.ceaf(d.cost, d.qaly, grid, prob, workers)
    evpi_pp = voi.evpi(d.cost, d.qaly, grid, workers)
    pop, rate = country.population_eligible_annual, country.discount_rate_costs
    mult = (
        voi.population_multiplier(
            pop, decision_horizon_years, rate, country.population_growth_annual
        )
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
    groups = parameter_groups(ptable, draws, workers) if evppi else {}
    evppi_df, evppi_by_wtp = evppi_tables(d, groups, draws, evpi_pp, mult, workers)
    i = d.i_wtp
    headline = {
        "wtp": wtp,
        "currency": country.currency,
        "price_year": country.price_year,
        "n_draws": d.n,
        "optimal_strategy": names[int(opt[i])],
        "p_cost_effective": {s: float(prob[i, k]) for k, s in enumerate(names)},
        "evpi_per_patient": float(evpi_pp[i]),
        "evpi_population": float(evpi_pp[i] * mult),
        "population_eligible_annual": pop,
        "decision_horizon_years": decision_horizon_years,
        "population_discount_rate": rate,
        "population_multiplier": mult,
        "evppi_per_patient": dict(
            zip(evppi_df["group"], evppi_df["evppi_per_patient"], strict=True)
        ),
        "evppi_se_per_patient": dict(
            zip(evppi_df["group"], evppi_df["se_per_patient"], strict=True)
        ),
    }
    return PsaTables(
        summary_table(d, prob, base_outcomes, comparisons, table_workers),
        inc_means,
        ceac_table(d, prob, opt),
        evpi_df,
        evppi_df,
        evppi_by_wtp,
        convergence_table(d, comparisons, table_workers),
        ce_plane_table(d, draws.index.to_numpy(), table_workers),
        headline,
    )

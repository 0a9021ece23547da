"""Deterministic sensitivity analysis: one-way (tornado), two-way grids, scenarios, thresholds.

Every analysis builds a *design*, a draws table (one row per parameter set, one column per
parameter, index ``draw``), and sends it through the same vectorized call as the base case
and the PSA, :func:`cea.igrt.model.run_model`. The calibrated rates (``r_severe_on_bsab``,
``r_myeloma_death_off_bsab``) are recalibrated on every row, so moving a calibration target
(``p_severe_12m_no_igrt``, ``t_target_median_os_months``...) moves the calibrated rates too.

* **One-way**: the base row plus, for every parameter with a range, a row at its low and a
  row at its high value (2k + 1 rows). Ranges: ``ParameterTable.dsa_range`` (``low``/``high``
  of the table, else the 2.5 and 97.5 percentiles of the parameter's distribution);
  zero-width ranges are skipped and listed.
* **Two-way**: a grid over two parameters (their DSA ranges, base values added to each axis).
* **Scenarios**: every TOML file of ``inputs/scenarios/`` run as its own base case.
* **Threshold**: the parameter value where a comparison's INMB is zero: a vectorized scan
  locates sign changes, :func:`scipy.optimize.brentq` refines each.

Conventions (``docs/dsa.md``): INMB of ``a vs b`` = WTP x (QALY_a - QALY_b) - (cost_a - cost_b)
at the country's WTP; ICER quadrants and interpretations come from
:func:`cea.analysis.incremental.pairwise`; an ICER outside the base case's quadrant is reported as a
quadrant, never plotted as a number.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import brentq

from cea.analysis.incremental import icer_table, nmb, pairwise
from cea.errors import CeaError
from cea.io.inputs import Inputs, load_inputs
from cea.igrt.model import run_model
from cea.parameters.table import Scenario, build_parameter_table, load_scenario
from cea.run import (
    DEFAULT_OUTPUTS,
    BaseCase,
    OutputDir,
    apply_discount_settings,
    build_spec,
    comparisons_from_settings,
    provenance,
    results_table,
)

#: Probabilities are evaluated no closer than this to 1: the cure-fraction IgG-decline survival
#: S(t) = 1 - pi + pi exp(-lam t) is computed as log1p(...), which is -inf at pi = 1 once
#: exp(-lam t) underflows against 1 (p_igg_low_ever has high = 1.00). The shift changes results
#: by about this much and is recorded in ``ranges.csv`` (``evaluated_low``/``evaluated_high``).
PROB_EDGE = 1e-9
#: Bars drawn in a tornado figure (every parameter is in the CSV).
TORNADO_FIGURE_TOP = 20
#: Lines printed in the terminal summary.
SUMMARY_TOP = 10
#: Points of the vectorized scan that locates sign changes of the INMB before root finding.
THRESHOLD_SCAN_POINTS = 41
#: brentq tolerance on the parameter, relative to the width of the bracket.
THRESHOLD_XTOL_REL = 1e-12
#: brentq relative tolerance (scipy's floor is 4 x machine epsilon).
THRESHOLD_RTOL = 4 * np.finfo(float).eps
#: Natural bounds used when the DSA range holds no crossing: (0, 10 x value] for ratios,
#: rates, times and shape parameters (open at 0, where the model degenerates), [0, 10 x value]
#: for prices and quantities, [0, 1] for probabilities and utilities.
NATURAL_UPPER_FACTOR = 10.0
NATURAL_LOWER_FRACTION = 1e-3
UNIT_INTERVAL_PREFIXES = ("p_", "u_")
ZERO_ALLOWED_PREFIXES = ("c_", "q_")
POSITIVE_PREFIXES = ("r_", "rr_", "hr_", "or_", "t_", "k_", "n_")
#: |difference| at or below this counts as "no effect" (cost in currency units, QALYs).
NO_EFFECT_ATOL = 1e-9
#: Largest gap between a design's base row and a separate base-case run (relative).
BASE_CHECK_RTOL = 1e-8

BASE = "base"
LOW, HIGH = "low", "high"


# --------------------------------------------------------------------------- set-up


def parse_comparison(text: str) -> tuple[str, str]:
    """``"a:b"`` -> (intervention a, comparator b)."""
    parts = [p.strip() for p in str(text).split(":")]
    if len(parts) != 2 or not all(parts):
        raise CeaError(
            f"--comparison must be intervention:comparator, e.g. primary_ivig:preemptive_ivig; got '{text}'"
        )
    if parts[0] == parts[1]:
        raise CeaError(f"--comparison compares '{parts[0]}' with itself")
    return parts[0], parts[1]


def resolve_country(inputs: Inputs, scenario: Scenario, country: str | None) -> str:
    """The country as ``run_base_case`` chooses it: option, scenario, settings.toml, GB."""
    return (
        country
        or scenario.settings.get("run", {}).get("country")
        or inputs.settings.get("run", {}).get("country", "GB")
    )


def base_case_from_inputs(
    inputs: Inputs,
    country: str,
    scenario: Scenario | None = None,
    strategies: list[str] | None = None,
) -> BaseCase:
    """The base case from already loaded inputs (as :func:`cea.run.run_base_case`, no trace).

    Loading the inputs takes longer than a base-case run, so the scenario table loads them once.
    """
    scenario = scenario or Scenario()
    ptable = build_parameter_table(inputs, country, scenario)
    spec = apply_discount_settings(build_spec(ptable, inputs, strategies), ptable.settings)
    res = run_model(ptable.base(), spec)
    outcomes = res.outcomes
    wtp = ptable.country.wtp_per_qaly
    comps = comparisons_from_settings(ptable.settings, spec)
    return BaseCase(
        inputs=inputs,
        ptable=ptable,
        spec=spec,
        outcomes=outcomes,
        results=results_table(outcomes, spec),
        incremental=icer_table(outcomes, cost="cost", effect="qaly", wtp=wtp),
        comparisons=pairwise(outcomes, comps, wtp=wtp, extra=("severe_infections",))
        if comps
        else pd.DataFrame(),
        trace=pd.DataFrame(),
        calibrated={k: float(x) for k, x in res.calibrated.iloc[0].items()},
    )


def prepare(
    inputs: Inputs | Path | str,
    country: str | None = None,
    scenario: Scenario | Path | str | None = None,
    comparison: tuple[str, str] | str | None = None,
    strategies: list[str] | None = None,
) -> tuple[BaseCase, tuple[str, str]]:
    """Base case and the comparison to analyse.

    The comparison defaults to the first of the settings' ``comparisons``; strategies it names
    that are not in the strategy set (e.g. ``primary_ivig_q6w``) are added to it.
    """
    if not isinstance(inputs, Inputs):
        inputs = load_inputs(inputs)
    if scenario is not None and not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    scenario = scenario or Scenario()
    code = resolve_country(inputs, scenario, country)
    ptable = build_parameter_table(inputs, code, scenario)
    model = ptable.settings.get("model", {})
    known = list(inputs.strategies.df["strategy"])
    names = list(strategies or model.get("strategies") or known)
    if comparison is None:
        listed = [(a, b) for a, b in model.get("comparisons", []) if a in names and b in names]
        if not listed:
            raise CeaError(
                "no comparison in the settings: give --comparison intervention:comparator"
            )
        comp = tuple(listed[0])
    else:
        comp = parse_comparison(comparison) if isinstance(comparison, str) else tuple(comparison)
    unknown = [s for s in comp if s not in known]
    if unknown:
        raise CeaError(
            f"unknown strategy {', '.join(repr(s) for s in unknown)} in the comparison "
            f"(known: {', '.join(known)})"
        )
    names += [s for s in comp if s not in names]
    return base_case_from_inputs(inputs, code, scenario, names), comp


def check_parameter(ptable, name: str) -> None:
    if name not in ptable.df.index:
        raise CeaError(
            f"unknown parameter '{name}' (parameters.csv, prices/{ptable.country.code}.csv; "
            f"e.g. {', '.join(list(ptable.df.index)[:3])})"
        )


def evaluated_value(name: str, x: float) -> float:
    """The value sent to the model for ``name = x`` (probabilities kept below 1 by PROB_EDGE)."""
    if name.startswith("p_") and x > 1.0 - PROB_EDGE:
        return 1.0 - PROB_EDGE
    return float(x)


def natural_bounds(ptable, name: str) -> tuple[float, float] | None:
    """Widest sensible bracket for a threshold search, from the name's prefix (None: unknown)."""
    r = ptable.df.loc[name]
    value = float(r["value"])
    lo, hi = ptable.dsa_range(name)
    scale = max(abs(value), abs(lo), abs(hi))
    if name.startswith(UNIT_INTERVAL_PREFIXES):
        return 0.0, 1.0
    if scale == 0:
        return None
    if name.startswith(ZERO_ALLOWED_PREFIXES):
        return 0.0, NATURAL_UPPER_FACTOR * scale
    if name.startswith(POSITIVE_PREFIXES):
        return NATURAL_LOWER_FRACTION * (abs(value) or scale), NATURAL_UPPER_FACTOR * scale
    return None


def _fmt_value(x: float) -> str:
    if x is None or not math.isfinite(x):
        return str(x)
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def _money(x: float, currency: str = "") -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{currency + ' ' if currency else ''}{x:,.0f}"


def ranges_table(ptable, parameters: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The DSA range of every parameter and where it comes from.

    Returns
    -------
    ranges : DataFrame, one row per parameter moved: ``parameter, category, unit, dist,
        base_value, low, high, range_origin, evaluated_low, evaluated_high, base_in_range,
        source``. ``range_origin`` is "low/high (<file>)" or "2.5/97.5 percentiles of <dist>";
        ``evaluated_*`` are the values actually run (see :data:`PROB_EDGE`).
    skipped : DataFrame ``parameter, value, reason`` for zero-width ranges.
    """
    rows, skipped = [], []
    for name in parameters or list(ptable.df.index):
        check_parameter(ptable, name)
        r = ptable.df.loc[name]
        value = float(r["value"])
        lo, hi = ptable.dsa_range(name)
        if lo == hi:
            skipped.append(
                {
                    "parameter": name,
                    "value": value,
                    "reason": f"zero-width range ({r['dist']}, no low/high)"
                    if pd.isna(r["low"]) or pd.isna(r["high"])
                    else "low = high",
                }
            )
            continue
        from_table = not (pd.isna(r["low"]) or pd.isna(r["high"]))
        rows.append(
            {
                "parameter": name,
                "category": r["category"],
                "unit": r["unit"],
                "dist": r["dist"],
                "base_value": value,
                "low": lo,
                "high": hi,
                "range_origin": f"low/high ({r['origin']})"
                if from_table
                else f"2.5/97.5 percentiles of {r['dist']}(value, se)",
                "evaluated_low": evaluated_value(name, lo),
                "evaluated_high": evaluated_value(name, hi),
                "base_in_range": bool(min(lo, hi) <= value <= max(lo, hi)),
                "source": r["source"],
            }
        )
    return pd.DataFrame(rows), pd.DataFrame(skipped, columns=["parameter", "value", "reason"])


def _design_draws(base_row: pd.DataFrame, changes: list[dict[str, float]]) -> pd.DataFrame:
    """The base row repeated, row i with ``changes[i]`` applied; index ``draw`` = 0..n-1."""
    draws = pd.DataFrame(
        np.repeat(base_row.to_numpy(dtype=float), len(changes), axis=0),
        columns=base_row.columns,
        index=pd.Index(np.arange(len(changes)), name="draw"),
    )
    for i, ch in enumerate(changes):
        for name, x in ch.items():
            draws.iat[i, draws.columns.get_loc(name)] = evaluated_value(name, x)
    return draws


# --------------------------------------------------------------------------- per draw


def comparisons_by_draw(
    outcomes: pd.DataFrame, comparisons: list[tuple[str, str]], wtp: float
) -> pd.DataFrame:
    """:func:`cea.analysis.incremental.pairwise` at every draw: one row per (draw, comparison).

    One ``pairwise`` call: strategies are renamed ``<draw>|<strategy>`` so that every draw's
    comparisons are pairs of one table, with pairwise's quadrant and ICER conventions.
    """
    keyed = outcomes.assign(
        strategy=outcomes["draw"].astype(str) + "|" + outcomes["strategy"].astype(str)
    )
    draws = outcomes["draw"].drop_duplicates().to_numpy()
    pairs = [(f"{d}|{a}", f"{d}|{b}") for d in draws for a, b in comparisons]
    c = pairwise(keyed, pairs, wtp=wtp, extra=("severe_infections", "ig_grams"))
    c["intervention"] = [a for _ in draws for a, _b in comparisons]
    c["comparator"] = [b for _ in draws for _a, b in comparisons]
    c["comparison"] = c["intervention"] + " vs " + c["comparator"]
    c.insert(0, "draw", np.repeat(draws, len(comparisons)))
    return c


def optimal_by_draw(outcomes: pd.DataFrame, wtp: float) -> pd.DataFrame:
    """Per draw: the strategy of highest NMB (:func:`cea.analysis.incremental.icer_table` ``optimal``)
    and each strategy's status (ND/D/ED). Columns ``draw, strategy, nmb, status, optimal``."""
    frames = []
    for draw, g in outcomes.groupby("draw", sort=False):
        t = icer_table(g, cost="cost", effect="qaly", wtp=wtp)
        t = t[["strategy", "nmb", "status", "optimal"]].copy()
        t.insert(0, "draw", draw)
        frames.append(t)
    return pd.concat(frames, ignore_index=True)


def _label_columns(base: BaseCase, comparison: tuple[str, str] | None) -> dict:
    c = base.country
    out = {
        "country": c.code,
        "currency": c.currency,
        "price_year": c.price_year,
        "wtp_per_qaly": c.wtp_per_qaly,
        "scenario": base.ptable.scenario.name,
    }
    if comparison is not None:
        out["comparison"] = f"{comparison[0]} vs {comparison[1]}"
    return out


def _with_labels(df: pd.DataFrame, labels: dict) -> pd.DataFrame:
    df = df.copy()
    for i, (k, v) in enumerate(labels.items()):
        df.insert(i, k, v)
    return df


# --------------------------------------------------------------------------- running a design


@dataclass
class DesignResult:
    """``run_model`` on a design, with the rows the model could not evaluate set aside."""

    outcomes: pd.DataFrame  # feasible rows only
    calibrated: pd.DataFrame
    failures: dict[int, str]  # draw -> the model's message
    calls: int
    seconds: float


def run_design(draws: pd.DataFrame, spec) -> DesignResult:
    """One :func:`cea.igrt.model.run_model` call on the whole design.

    A single row the model cannot evaluate (e.g. a calibration target no rate can reach with the
    other parameters at that row's values) makes the vectorized call fail; then the design is split
    in halves, recursively, until each failing row is isolated (about 2 log2(n) more calls). Its
    message is kept in ``failures`` and its results are missing, not invented.
    """
    parts: list = []
    failures: dict[int, str] = {}
    calls = 0
    t0 = time.perf_counter()

    def run(d: pd.DataFrame) -> None:
        nonlocal calls
        calls += 1
        try:
            parts.append(run_model(d, spec))
        except CeaError as exc:
            if len(d) == 1:
                failures[int(d.index[0])] = re.sub(r" ?\(draw \d+\)", "", str(exc))
            else:
                half = len(d) // 2
                run(d.iloc[:half])
                run(d.iloc[half:])

    run(draws)
    if not parts:
        first = next(iter(failures.values()))
        raise CeaError(f"the model cannot be evaluated at any row of the design: {first}")
    return DesignResult(
        outcomes=pd.concat([p.outcomes for p in parts], ignore_index=True),
        calibrated=pd.concat([p.calibrated for p in parts]).sort_index(),
        failures=failures,
        calls=calls,
        seconds=time.perf_counter() - t0,
    )


# --------------------------------------------------------------------------- one-way


@dataclass
class OneWay:
    """A one-way DSA: the design and every strategy's results at every row."""

    base: BaseCase
    ranges: pd.DataFrame
    skipped: pd.DataFrame
    design: pd.DataFrame  # draw, parameter, side, value, evaluated_value
    draws: pd.DataFrame
    outcomes: pd.DataFrame  # run_model outcomes + parameter, side, value, nmb
    calibrated: pd.DataFrame
    optimal: pd.DataFrame  # optimal_by_draw
    seconds: float
    base_check: float  # largest relative gap between the design's base row and the base case
    failures: dict[int, str] = field(default_factory=dict)  # draw -> model message
    calls: int = 1

    @property
    def wtp(self) -> float:
        return self.base.country.wtp_per_qaly


def run_one_way(base: BaseCase, parameters: list[str] | None = None) -> OneWay:
    """Move every parameter with a range to its low and its high value, one at a time.

    One :func:`cea.igrt.model.run_model` call on the 2k + 1 row design (row 0 is the base case); see
    :func:`run_design` for rows the model cannot evaluate.
    """
    ranges, skipped = ranges_table(base.ptable, parameters)
    design_rows = [{"draw": 0, "parameter": BASE, "side": BASE, "value": np.nan}]
    changes: list[dict[str, float]] = [{}]
    for _, r in ranges.iterrows():
        for side in (LOW, HIGH):
            design_rows.append(
                {"draw": len(changes), "parameter": r["parameter"], "side": side, "value": r[side]}
            )
            changes.append({r["parameter"]: r[side]})
    design = pd.DataFrame(design_rows)
    design["evaluated_value"] = [
        evaluated_value(p, v) if p != BASE else np.nan
        for p, v in zip(design["parameter"], design["value"], strict=True)
    ]
    draws = _design_draws(base.ptable.base(), changes)
    res = run_design(draws, base.spec)
    if 0 in res.failures:
        raise CeaError(f"the base case cannot be evaluated: {res.failures[0]}")
    wtp = base.country.wtp_per_qaly
    out = res.outcomes.merge(design[["draw", "parameter", "side", "value"]], on="draw")
    out = out.sort_values("draw", kind="stable").reset_index(drop=True)
    out["nmb"] = nmb(out["cost"], out["qaly"], wtp)
    lead = ["draw", "parameter", "side", "value", "strategy", "cost", "qaly", "ly", "nmb"]
    out = out[lead + [c for c in out.columns if c not in lead]]
    return OneWay(
        base=base,
        ranges=ranges,
        skipped=skipped,
        design=design,
        draws=draws,
        outcomes=out,
        calibrated=res.calibrated,
        optimal=optimal_by_draw(res.outcomes, wtp),
        seconds=res.seconds,
        base_check=_base_check(res.outcomes, base),
        failures=res.failures,
        calls=res.calls,
    )


def _base_check(outcomes: pd.DataFrame, base: BaseCase) -> float:
    """Largest relative gap in cost and QALY between draw 0 of a design and the base case."""
    row0 = outcomes[outcomes["draw"] == outcomes["draw"].iloc[0]].set_index("strategy")
    ref = base.outcomes.set_index("strategy").loc[row0.index]
    gap = 0.0
    for col in ("cost", "qaly"):
        gap = max(gap, float((abs(row0[col] - ref[col]) / abs(ref[col]).clip(lower=1e-300)).max()))
    if gap > BASE_CHECK_RTOL:
        raise CeaError(
            f"internal check failed: the design's base row differs from the base case by {gap:.2e}"
        )
    return gap


TORNADO_COLUMNS = [
    "rank",
    "parameter",
    "category",
    "unit",
    "base_value",
    "low",
    "high",
    "range_origin",
    "inmb_base",
    "inmb_low",
    "inmb_high",
    "swing",
    "inmb_min",
    "inmb_max",
    "non_monotone",
    "decision_changes",
    "inc_cost_base",
    "inc_cost_low",
    "inc_cost_high",
    "inc_qaly_base",
    "inc_qaly_low",
    "inc_qaly_high",
    "quadrant_base",
    "quadrant_low",
    "quadrant_high",
    "icer_base",
    "icer_low",
    "icer_high",
    "icer_status",
    "icer_swing",
    "interpretation_low",
    "interpretation_high",
    "optimal_base",
    "optimal_low",
    "optimal_high",
    "enters_comparison",
    "enters_model",
    "model_error",
]


def tornado_table(ow: OneWay, comparison: tuple[str, str], outcome: str = "inmb") -> pd.DataFrame:
    """Tornado table for one comparison: INMB and ICER at each parameter's low and high.

    Columns (:data:`TORNADO_COLUMNS`, after the label columns country, currency, price_year,
    wtp_per_qaly, scenario, comparison):

    - ``inmb_*``: INMB = WTP x dQALY - dcost at the base, low and high value; ``swing`` =
      |inmb_high - inmb_low|; ``decision_changes``: INMB changes sign at an end.
    - ``quadrant_*`` (NE/SW/SE/NW/same) and ``icer_*`` (NaN outside NE and SW, as in
      :func:`cea.analysis.incremental.pairwise`). ``icer_status``: "numeric" when both ends stay in the base
      quadrant (NE or SW; then ``icer_swing`` = |icer_high - icer_low|), "quadrant flip at low/high/
      both" when an end leaves it (``interpretation_*`` says where to), "base not a ratio" when
      the base itself is SE/NW/same, "no change" when the ICER does not move.
    - ``optimal_*``: the strategy of highest NMB among all strategies at that row.
    - ``enters_comparison``: the comparison's cost or QALYs move; ``enters_model``: any
      strategy's cost or QALYs move.

    ``outcome="inmb"`` sorts by ``swing``; ``outcome="icer"`` puts quadrant flips first (by INMB
    swing), then numeric ICERs by ``icer_swing``, then the rest.
    """
    if outcome not in ("inmb", "icer"):
        raise CeaError(f"outcome must be 'inmb' or 'icer', got '{outcome}'")
    a, b = comparison
    every = ow.design["draw"]
    comp = comparisons_by_draw(ow.outcomes, [comparison], ow.wtp).set_index("draw").reindex(every)
    comp["quadrant"] = comp["quadrant"].fillna("not evaluable")
    comp["interpretation"] = comp["interpretation"].fillna("model not evaluable")
    opt = ow.optimal[ow.optimal["optimal"]].set_index("draw")["strategy"].reindex(every)
    opt = opt.fillna("")
    per = ow.outcomes.pivot_table(index="draw", columns="strategy", values=["cost", "qaly"])
    moved = (per - per.loc[0]).abs().reindex(every).fillna(0.0)
    ab_moved = moved.loc[:, [(v, s) for v in ("cost", "qaly") for s in (a, b)]].max(axis=1)
    all_moved = moved.max(axis=1)
    d = ow.design.set_index(["parameter", "side"])["draw"]
    base_row = comp.loc[0]
    rows = []
    for _, r in ow.ranges.iterrows():
        p = r["parameter"]
        lo, hi = comp.loc[d[(p, LOW)]], comp.loc[d[(p, HIGH)]]
        ends = [x for x in (lo["inmb"], hi["inmb"]) if np.isfinite(x)]
        errors = [
            f"{side}: {ow.failures[d[(p, side)]]}"
            for side in (LOW, HIGH)
            if d[(p, side)] in ow.failures
        ]
        row = {
            "parameter": p,
            "category": r["category"],
            "unit": r["unit"],
            "base_value": r["base_value"],
            "low": r["low"],
            "high": r["high"],
            "range_origin": r["range_origin"],
            "inmb_base": base_row["inmb"],
            "inmb_low": lo["inmb"],
            "inmb_high": hi["inmb"],
            # the bar runs from the base to each end, so it spans the base too; a response that
            # is not monotone over the range (both ends on the same side of the base) is flagged
            "swing": (max(ends + [base_row["inmb"]]) - min(ends + [base_row["inmb"]]))
            if len(ends) == 2
            else np.nan,
            "inmb_min": min(ends + [base_row["inmb"]]),
            "inmb_max": max(ends + [base_row["inmb"]]),
            "non_monotone": len(ends) == 2
            and (min(ends) - base_row["inmb"]) * (max(ends) - base_row["inmb"]) > 0
            and min(abs(e - base_row["inmb"]) for e in ends)
            > NO_EFFECT_ATOL * max(1.0, abs(base_row["inmb"])),
            "decision_changes": any(np.sign(x) != np.sign(base_row["inmb"]) for x in ends),
        }
        for tag, x in ((BASE, base_row), (LOW, lo), (HIGH, hi)):
            row[f"inc_cost_{tag}"] = x["inc_cost"]
            row[f"inc_qaly_{tag}"] = x["inc_effect"]
            row[f"quadrant_{tag}"] = x["quadrant"]
            row[f"icer_{tag}"] = x["icer"]
        row["interpretation_low"] = lo["interpretation"]
        row["interpretation_high"] = hi["interpretation"]
        row["icer_status"], row["icer_swing"] = _icer_status(row)
        row["optimal_base"] = opt.loc[0]
        row["optimal_low"] = opt.loc[d[(p, LOW)]]
        row["optimal_high"] = opt.loc[d[(p, HIGH)]]
        row["enters_comparison"] = bool(
            max(ab_moved.loc[d[(p, LOW)]], ab_moved.loc[d[(p, HIGH)]]) > NO_EFFECT_ATOL
        )
        row["enters_model"] = bool(
            max(all_moved.loc[d[(p, LOW)]], all_moved.loc[d[(p, HIGH)]]) > NO_EFFECT_ATOL
        )
        row["model_error"] = "; ".join(errors)
        rows.append(row)
    t = pd.DataFrame(rows)
    if outcome == "inmb":
        t = t.sort_values(["swing", "parameter"], ascending=[False, True], kind="stable")
    else:
        group = t["icer_status"].map(
            lambda s: 0 if s.startswith("quadrant flip") else 1 if s == "numeric" else 2
        )
        key = np.where(group == 0, t["swing"], t["icer_swing"].fillna(0.0))
        t = (
            t.assign(_g=group, _k=key)
            .sort_values(["_g", "_k", "parameter"], ascending=[True, False, True], kind="stable")
            .drop(columns=["_g", "_k"])
        )
    t.insert(0, "rank", np.arange(1, len(t) + 1))
    t = t[TORNADO_COLUMNS].reset_index(drop=True)
    return _with_labels(t, _label_columns(ow.base, comparison))


def _icer_status(row: dict) -> tuple[str, float]:
    q0, ql, qh = row["quadrant_base"], row["quadrant_low"], row["quadrant_high"]
    flips = [side for side, q in ((LOW, ql), (HIGH, qh)) if q != q0]
    if flips:
        return f"quadrant flip at {' and '.join(flips)}", np.nan
    if q0 not in ("NE", "SW"):
        return f"base not a ratio ({q0})", np.nan
    swing = abs(row["icer_high"] - row["icer_low"])
    return ("numeric" if swing > 0 else "no change"), swing


# --------------------------------------------------------------------------- two-way


@dataclass
class TwoWay:
    """A two-way grid: every strategy's results at every (p1, p2) point."""

    base: BaseCase
    parameters: tuple[str, str]
    axes: tuple[np.ndarray, np.ndarray]
    ranges: pd.DataFrame
    comparison: tuple[str, str]
    grid: pd.DataFrame  # one row per point: p1, p2, comparison results, optimal, nmb_<strategy>
    outcomes: pd.DataFrame  # long: draw, p1, p2, strategy, ...
    seconds: float
    base_check: float
    calls: int = 1
    failures: dict[int, str] = field(default_factory=dict)


def grid_axis(low: float, high: float, base_value: float, n: int) -> np.ndarray:
    """``n`` evenly spaced points from low to high, with the base value added (sorted, unique)."""
    if n < 2:
        raise CeaError(f"--grid must be at least 2, got {n}")
    return np.unique(np.append(np.linspace(low, high, n), base_value))


def run_two_way(
    base: BaseCase, p1: str, p2: str, comparison: tuple[str, str], n: int = 11
) -> TwoWay:
    """INMB of ``comparison`` and the optimal strategy over a grid of two parameters.

    Each axis spans the parameter's DSA range in ``n`` steps plus its base value, so the grid
    contains the base case. One :func:`cea.igrt.model.run_model` call on all grid points.
    """
    if p1 == p2:
        raise CeaError(f"--two-way needs two different parameters, got '{p1}' twice")
    ranges, skipped = ranges_table(base.ptable, [p1, p2])
    if not skipped.empty:
        raise CeaError(
            f"parameter '{skipped['parameter'].iloc[0]}' has no range to vary "
            f"({skipped['reason'].iloc[0]}); give it low/high in the inputs"
        )
    r = ranges.set_index("parameter")
    axes = tuple(
        grid_axis(r.loc[p, "low"], r.loc[p, "high"], r.loc[p, "base_value"], n) for p in (p1, p2)
    )
    x1, x2 = np.meshgrid(axes[0], axes[1], indexing="ij")
    points = list(zip(x1.ravel(), x2.ravel(), strict=True))
    draws = _design_draws(base.ptable.base(), [{p1: u, p2: v} for u, v in points])
    res = run_design(draws, base.spec)
    seconds = res.seconds
    wtp = base.country.wtp_per_qaly
    pts = pd.DataFrame({"draw": draws.index, p1: x1.ravel(), p2: x2.ravel()})
    b1, b2 = r.loc[p1, "base_value"], r.loc[p2, "base_value"]
    pts["is_base"] = (pts[p1] == b1) & (pts[p2] == b2)
    comp = comparisons_by_draw(res.outcomes, [comparison], wtp)
    opt = optimal_by_draw(res.outcomes, wtp)
    nmbs = opt.pivot(index="draw", columns="strategy", values="nmb").add_prefix("nmb_")
    grid = pts.merge(
        comp[["draw", "inc_cost", "inc_effect", "icer", "quadrant", "interpretation", "inmb"]],
        on="draw",
        how="left",
    ).rename(columns={"inc_effect": "inc_qaly"})
    grid["optimal_strategy"] = (
        grid["draw"].map(opt[opt["optimal"]].set_index("draw")["strategy"]).fillna("not evaluable")
    )
    grid = grid.merge(nmbs.reset_index(), on="draw", how="left")
    grid["model_error"] = [res.failures.get(int(d), "") for d in grid["draw"]]
    out = pts.merge(res.outcomes, on="draw")
    out["nmb"] = nmb(out["cost"], out["qaly"], wtp)
    base_draw = int(pts.loc[pts["is_base"], "draw"].iloc[0])
    if base_draw in res.failures:
        raise CeaError(f"the base case cannot be evaluated: {res.failures[base_draw]}")
    base_out = res.outcomes[res.outcomes["draw"] == base_draw]
    return TwoWay(
        base=base,
        parameters=(p1, p2),
        axes=axes,
        ranges=ranges,
        comparison=comparison,
        grid=grid,
        outcomes=out,
        seconds=seconds,
        base_check=_base_check(base_out, base),
        calls=res.calls,
        failures=res.failures,
    )


# --------------------------------------------------------------------------- scenarios


@dataclass
class ScenarioRun:
    path: str | None
    case: BaseCase


@dataclass
class Scenarios:
    base: BaseCase
    runs: list[ScenarioRun]
    strategies: pd.DataFrame
    comparisons: pd.DataFrame
    summary: pd.DataFrame
    seconds: float
    headline: tuple[str, str] | None = None
    errors: list[str] = field(default_factory=list)


def scenario_files(folder: Path | str) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise CeaError(f"scenario folder {folder} does not exist")
    files = sorted(folder.glob("*.toml"))
    if not files:
        raise CeaError(f"no scenario files (*.toml) in {folder}")
    return files


def run_scenarios(
    inputs: Inputs | Path | str,
    country: str | None = None,
    files: list[Path | str] | None = None,
    folder: Path | str | None = None,
) -> Scenarios:
    """Every scenario as its own base case, beside the base case.

    Comparisons reported per scenario: the base case's named comparisons whose two strategies
    both exist in the scenario, plus the scenario's own named comparisons (``in_base_case``
    False, no base values).
    """
    t0 = time.perf_counter()
    if not isinstance(inputs, Inputs):
        inputs = load_inputs(inputs)
    code = resolve_country(inputs, Scenario(), country)
    if files is None:
        if folder is None:
            if not Path(inputs.root).is_dir():
                raise CeaError("inputs are not a folder: give the scenario folder with --dir")
            folder = Path(inputs.root) / "scenarios"
        files = scenario_files(folder)
    base = base_case_from_inputs(inputs, code)
    runs = [ScenarioRun(None, base)]
    for f in files:
        sc = load_scenario(f)
        runs.append(ScenarioRun(str(f), base_case_from_inputs(inputs, code, sc)))
    base_comps = [tuple(x) for x in base.comparisons[["intervention", "comparator"]].to_numpy()]
    wtp = base.country.wtp_per_qaly
    strat_rows, comp_rows, summary_rows = [], [], []
    base_inc = base.incremental.set_index("strategy")
    base_pair = base.comparisons.set_index("comparison")
    base_opt = base_inc.index[base_inc["optimal"]][0]
    headline = base_comps[0] if base_comps else None
    for run in runs:
        case = run.case
        name = case.ptable.scenario.name
        names = case.spec.strategy_names
        inc = case.incremental.set_index("strategy")
        opt = inc.index[inc["optimal"]][0]
        res = case.results.set_index("strategy")
        for s in names:
            strat_rows.append(
                {
                    "scenario": name,
                    "strategy": s,
                    "cost": res.loc[s, "cost"],
                    "qaly": res.loc[s, "qaly"],
                    "ly": res.loc[s, "ly"],
                    "nmb": inc.loc[s, "nmb"],
                    "status": inc.loc[s, "status"],
                    "optimal": bool(inc.loc[s, "optimal"]),
                    "base_cost": base_inc.loc[s, "cost"] if s in base_inc.index else np.nan,
                    "base_qaly": base_inc.loc[s, "effect"] if s in base_inc.index else np.nan,
                    "base_nmb": base_inc.loc[s, "nmb"] if s in base_inc.index else np.nan,
                }
            )
        own = [tuple(x) for x in case.ptable.settings.get("model", {}).get("comparisons", [])]
        comps = [c for c in base_comps if c[0] in names and c[1] in names]
        comps += [c for c in own if c not in comps and c[0] in names and c[1] in names]
        pw = pairwise(case.outcomes, comps, wtp=wtp) if comps else pd.DataFrame()
        for _, c in pw.iterrows():
            in_base = c["comparison"] in base_pair.index
            bp = base_pair.loc[c["comparison"]] if in_base else None
            comp_rows.append(
                {
                    "scenario": name,
                    "comparison": c["comparison"],
                    "in_base_case": in_base,
                    "inc_cost": c["inc_cost"],
                    "inc_qaly": c["inc_effect"],
                    "icer": c["icer"],
                    "quadrant": c["quadrant"],
                    "interpretation": c["interpretation"],
                    "inmb": c["inmb"],
                    "cost_effective": c["cost_effective"],
                    "base_inc_cost": bp["inc_cost"] if in_base else np.nan,
                    "base_inc_qaly": bp["inc_effect"] if in_base else np.nan,
                    "base_icer": bp["icer"] if in_base else np.nan,
                    "base_quadrant": bp["quadrant"] if in_base else "",
                    "base_inmb": bp["inmb"] if in_base else np.nan,
                    "inmb_change": c["inmb"] - bp["inmb"] if in_base else np.nan,
                    "decision_changes": bool(
                        in_base and c["cost_effective"] != bp["cost_effective"]
                    ),
                }
            )
        srow = {
            "scenario": name,
            "description": case.ptable.scenario.description,
            "file": run.path or "",
            "strategies": ",".join(names),
            "optimal_strategy": opt,
            "optimal_changes": opt != base_opt,
        }
        if headline is not None:
            hl = f"{headline[0]} vs {headline[1]}"
            h = pw[pw["comparison"] == hl] if not pw.empty else pw
            srow["headline_comparison"] = hl
            if len(h):
                h = h.iloc[0]
                srow.update(
                    headline_inc_cost=h["inc_cost"],
                    headline_inc_qaly=h["inc_effect"],
                    headline_icer=h["icer"],
                    headline_quadrant=h["quadrant"],
                    headline_interpretation=h["interpretation"],
                    headline_inmb=h["inmb"],
                    headline_inmb_change=h["inmb"] - base_pair.loc[hl, "inmb"],
                )
            else:
                srow["headline_interpretation"] = "not in this scenario's strategies"
        srow["calibrated_r_severe_on_bsab"] = case.calibrated.get("r_severe_on_bsab")
        srow["calibrated_r_myeloma_death_off_bsab"] = case.calibrated.get(
            "r_myeloma_death_off_bsab"
        )
        summary_rows.append(srow)
    labels = _label_columns(base, None)
    labels.pop("scenario")
    return Scenarios(
        base=base,
        runs=runs,
        strategies=_with_labels(pd.DataFrame(strat_rows), labels),
        comparisons=_with_labels(pd.DataFrame(comp_rows), labels),
        summary=_with_labels(pd.DataFrame(summary_rows), labels),
        seconds=time.perf_counter() - t0,
        headline=headline,
    )


# --------------------------------------------------------------------------- threshold


@dataclass
class Threshold:
    """The value(s) of a parameter at which a comparison's INMB is zero."""

    base: BaseCase
    parameter: str
    comparison: tuple[str, str]
    base_value: float
    bracket: tuple[float, float]
    bracket_origin: str
    scan: pd.DataFrame  # value, inmb, inc_cost, inc_qaly, quadrant (every bracket scanned)
    roots: list[float]
    inmb_at_roots: list[float]  # model rerun at each root
    inmb_at_ends: tuple[float, float]
    message: str
    n_model_calls: int
    seconds: float
    dsa_range: tuple[float, float] | None = None

    @property
    def found(self) -> bool:
        return bool(self.roots)

    @property
    def threshold(self) -> float:
        """The crossing nearest the base value (NaN when there is none)."""
        if not self.roots:
            return math.nan
        return min(self.roots, key=lambda x: abs(x - self.base_value))


class _InmbFunction:
    """INMB of one comparison as a function of one parameter (other parameters at base)."""

    def __init__(self, base: BaseCase, parameter: str, comparison: tuple[str, str]):
        self.base = base
        self.parameter = parameter
        self.comparison = comparison
        # the two strategies only: the other strategies do not change this INMB
        self.spec = base.spec.with_strategies(
            [s for s in base.spec.strategies if s.strategy in comparison]
        )
        self.row = base.ptable.base()
        self.calls = 0

    def table(self, values) -> pd.DataFrame:
        values = np.atleast_1d(np.asarray(values, dtype=float))
        draws = _design_draws(self.row, [{self.parameter: x} for x in values])
        res = run_design(draws, self.spec)
        self.calls += res.calls
        c = comparisons_by_draw(res.outcomes, [self.comparison], self.base.country.wtp_per_qaly)
        c = c.set_index("draw").reindex(draws.index)
        return pd.DataFrame(
            {
                "value": values,
                "evaluated_value": [evaluated_value(self.parameter, x) for x in values],
                "inmb": c["inmb"].to_numpy(),
                "inc_cost": c["inc_cost"].to_numpy(),
                "inc_qaly": c["inc_effect"].to_numpy(),
                "quadrant": c["quadrant"].fillna("not evaluable").to_numpy(),
                "model_error": [res.failures.get(int(d), "") for d in draws.index],
            }
        )

    def __call__(self, x: float) -> float:
        t = self.table([x]).iloc[0]
        if t["model_error"]:
            raise CeaError(
                f"the model cannot be evaluated at {self.parameter} = {x:.6g}: {t['model_error']}"
            )
        return float(t["inmb"])


def _crossings(scan: pd.DataFrame) -> list[tuple[float, float]]:
    """Sub-brackets of a sorted scan where the INMB changes sign (or is exactly zero)."""
    x, y = scan["value"].to_numpy(), scan["inmb"].to_numpy()
    out = []
    for i in range(len(x) - 1):
        if not (np.isfinite(y[i]) and np.isfinite(y[i + 1])):
            continue  # the model could not be evaluated at one end
        if y[i] == 0:
            out.append((x[i], x[i]))
        elif np.sign(y[i]) != np.sign(y[i + 1]) and y[i + 1] != 0:
            out.append((x[i], x[i + 1]))
    if len(y) and y[-1] == 0:
        out.append((x[-1], x[-1]))
    return out


def find_threshold(
    base: BaseCase,
    parameter: str,
    comparison: tuple[str, str],
    low: float | None = None,
    high: float | None = None,
) -> Threshold:
    """Value(s) of ``parameter`` at which the INMB of ``comparison`` is zero.

    Bracket: ``[low, high]`` when given (both or one, the other from the DSA range); else the
    DSA range, widened to the natural bounds (:func:`natural_bounds`) when the INMB does not
    change sign within it. Each bracket is scanned in one vectorized model call
    (:data:`THRESHOLD_SCAN_POINTS` points plus the base value); every sign change found is
    refined with :func:`scipy.optimize.brentq` and the model is rerun at the root.
    """
    t0 = time.perf_counter()
    check_parameter(base.ptable, parameter)
    for s in comparison:
        if s not in base.spec.strategy_names:
            raise CeaError(f"strategy '{s}' is not in the strategy set")
    value = float(base.ptable.df.loc[parameter, "value"])
    dsa_lo, dsa_hi = base.ptable.dsa_range(parameter)
    f = _InmbFunction(base, parameter, comparison)
    brackets: list[tuple[tuple[float, float], str]] = []
    if low is not None or high is not None:
        lo = dsa_lo if low is None else float(low)
        hi = dsa_hi if high is None else float(high)
        brackets.append(((lo, hi), "given (--low/--high)"))
    else:
        if dsa_lo != dsa_hi:
            brackets.append(((dsa_lo, dsa_hi), "DSA range"))
        nat = natural_bounds(base.ptable, parameter)
        if nat is not None:
            brackets.append((nat, "natural bounds"))
    if not brackets:
        raise CeaError(
            f"parameter '{parameter}' has no range and no natural bounds: give --low and --high"
        )
    scans = []
    roots: list[float] = []
    for (lo, hi), origin in brackets:
        if not lo < hi:
            raise CeaError(f"threshold range for {parameter}: low {lo:g} must be below high {hi:g}")
        grid = np.unique(np.append(np.linspace(lo, hi, THRESHOLD_SCAN_POINTS), value))
        grid = grid[(grid >= lo) & (grid <= hi)]
        scan = f.table(grid)
        scan.insert(0, "bracket", origin)
        scans.append(scan)
        subs = _crossings(scan)
        if subs:
            xtol = THRESHOLD_XTOL_REL * (hi - lo)
            for a, b in subs:
                roots.append(a if a == b else brentq(f, a, b, xtol=xtol, rtol=THRESHOLD_RTOL))
            break
    scan = pd.concat(scans, ignore_index=True)
    (lo, hi), origin = brackets[len(scans) - 1]
    last = scans[-1]
    finite = last[np.isfinite(last["inmb"])]
    if finite.empty:
        raise CeaError(
            f"the model cannot be evaluated anywhere in the bracket for {parameter}: "
            f"{last['model_error'].iloc[0]}"
        )
    # the ends of the range where the model could be evaluated
    elo, ehi = float(finite["value"].iloc[0]), float(finite["value"].iloc[-1])
    ends = (float(finite["inmb"].iloc[0]), float(finite["inmb"].iloc[-1]))
    failed = last[last["model_error"] != ""]
    check = f.table(roots)["inmb"].tolist() if roots else []
    a, b = comparison
    cur = base.country.currency
    if roots:
        x = min(roots, key=lambda r: abs(r - value))
        msg = (
            f"INMB of {a} vs {b} is zero at {parameter} = {x:.6g} (base {value:.6g}; "
            f"searched {origin} [{lo:.6g}, {hi:.6g}]); INMB {_money(ends[0], cur)} at {elo:.6g} "
            f"and {_money(ends[1], cur)} at {ehi:.6g}"
        )
        if len(roots) > 1:
            msg += f"; {len(roots)} crossings: " + ", ".join(f"{r:.6g}" for r in roots)
        elif ends[0] * ends[1] < 0:
            side = "above" if ends[1] > 0 else "below"
            msg += f"; {a} is cost-effective against {b} for {parameter} {side} the threshold"
    else:
        sign = (
            "positive (a is cost-effective)"
            if ends[0] > 0
            else "negative (a is not cost-effective)"
        )
        where = " and ".join(f"{o} [{br[0]:.6g}, {br[1]:.6g}]" for br, o in brackets[: len(scans)])
        msg = (
            f"no threshold: the INMB of {a} vs {b} does not cross zero for {parameter} in {where}; "
            f"it is {sign} throughout ({_money(ends[0], cur)} at {elo:.6g}, "
            f"{_money(ends[1], cur)} at {ehi:.6g})"
        )
    if len(failed):
        msg += (
            f"; the model could not be evaluated at {len(failed)} of {len(last)} scanned values "
            f"({failed['value'].min():.6g} to {failed['value'].max():.6g}: "
            f"{failed['model_error'].iloc[0]})"
        )
    return Threshold(
        base=base,
        parameter=parameter,
        comparison=comparison,
        base_value=value,
        bracket=(lo, hi),
        bracket_origin=origin,
        scan=scan,
        roots=roots,
        inmb_at_roots=check,
        inmb_at_ends=ends,
        message=msg,
        n_model_calls=f.calls,
        seconds=time.perf_counter() - t0,
        dsa_range=(dsa_lo, dsa_hi),
    )


# --------------------------------------------------------------------------- summaries


def _header(base: BaseCase, comparison: tuple[str, str] | None = None) -> str:
    c = base.country
    s = (
        f"{c.name} ({c.code}) | {c.currency} {c.price_year} | WTP {c.wtp_per_qaly:,.0f} per QALY | "
        f"scenario: {base.ptable.scenario.name}"
    )
    if comparison is not None:
        s += f" | {comparison[0]} vs {comparison[1]}"
    return s


def _base_line(base: BaseCase, comparison: tuple[str, str]) -> str:
    pw = pairwise(base.outcomes, [comparison], wtp=base.country.wtp_per_qaly).iloc[0]
    cur = base.country.currency
    return (
        f"base case: dcost {_money(pw['inc_cost'], cur)}, dQALY {pw['inc_effect']:.4f}, "
        f"{pw['interpretation']}, INMB {_money(pw['inmb'], cur)}"
    )


def one_way_summary(ow: OneWay, table: pd.DataFrame, outcome: str, top: int = SUMMARY_TOP) -> str:
    comp = tuple(table["comparison"].iloc[0].split(" vs "))
    cur = ow.base.country.currency
    lines = [
        "One-way DSA | " + _header(ow.base, comp),
        _base_line(ow.base, comp),
        f"design: {len(ow.draws)} rows ({len(ow.ranges)} parameters x 2 + base) in "
        + (
            "one model call"
            if ow.calls == 1
            else f"{ow.calls} model calls (one, then halves to isolate rows it cannot evaluate)"
        )
        + f", {ow.seconds:.1f} s",
        "",
    ]
    if outcome == "inmb":
        head = (
            f"{'':>3} {'parameter':<34}{'range':>24}{'INMB low':>14}{'INMB high':>14}{'swing':>12}"
        )
        lines += [f"tornado on INMB ({cur}), by swing:", head, "-" * len(head)]
        for _, r in table.head(top).iterrows():
            flag = "  decision changes" if r["decision_changes"] else ""
            lines.append(
                f"{r['rank']:>3} {r['parameter']:<34}"
                f"{_fmt_value(r['low']) + ' to ' + _fmt_value(r['high']):>24}"
                f"{r['inmb_low']:>14,.0f}{r['inmb_high']:>14,.0f}{r['swing']:>12,.0f}{flag}"
            )
    else:
        head = f"{'':>3} {'parameter':<34}{'range':>24}  {'ICER at low':<34}{'ICER at high':<34}"
        lines += [
            f"tornado on the ICER ({cur} per QALY); quadrant flips first:",
            head,
            "-" * len(head),
        ]
        for _, r in table.head(top).iterrows():
            lines.append(
                f"{r['rank']:>3} {r['parameter']:<34}"
                f"{_fmt_value(r['low']) + ' to ' + _fmt_value(r['high']):>24}  "
                f"{r['interpretation_low']:<34}{r['interpretation_high']:<34}"
            )
    flips = table[table["decision_changes"]]["parameter"].tolist()
    lines.append("")
    lines.append(
        "INMB changes sign within the range of: " + (", ".join(flips) if flips else "no parameter")
    )
    for _, r in table[table["model_error"] != ""].iterrows():
        lines.append(f"model not evaluable for {r['parameter']} at {r['model_error']}")
    no_eff = table[~table["enters_comparison"]]["parameter"].tolist()
    if no_eff:
        lines.append(f"no effect on this comparison ({len(no_eff)}): " + ", ".join(no_eff))
    if not ow.skipped.empty:
        lines.append(
            f"skipped, zero-width range ({len(ow.skipped)}): " + ", ".join(ow.skipped["parameter"])
        )
    return "\n".join(lines)


def two_way_summary(tw: TwoWay) -> str:
    p1, p2 = tw.parameters
    g = tw.grid
    cur = tw.base.country.currency
    lines = [
        "Two-way DSA | " + _header(tw.base, tw.comparison),
        _base_line(tw.base, tw.comparison),
        f"grid: {len(tw.axes[0])} x {len(tw.axes[1])} points ({p1} {tw.axes[0][0]:.4g} to "
        f"{tw.axes[0][-1]:.4g}; {p2} {tw.axes[1][0]:.4g} to {tw.axes[1][-1]:.4g}; base values "
        f"included) in {'one model call' if tw.calls == 1 else f'{tw.calls} model calls'}, "
        f"{tw.seconds:.1f} s"
        + (
            f"; the model could not be evaluated at {len(tw.failures)} points"
            if tw.failures
            else ""
        ),
        f"INMB from {_money(g['inmb'].min(), cur)} to {_money(g['inmb'].max(), cur)}; "
        f"positive at {int((g['inmb'] > 0).sum())} of {len(g)} points",
        "optimal strategy at WTP: "
        + ", ".join(f"{s} {n}" for s, n in g["optimal_strategy"].value_counts().items())
        + " points",
    ]
    return "\n".join(lines)


def scenarios_summary(sc: Scenarios) -> str:
    cur = sc.base.country.currency
    lines = [
        "Scenarios | " + _header(sc.base),
        f"{len(sc.runs) - 1} scenarios beside the base case, {sc.seconds:.1f} s",
        "",
    ]
    hl = sc.headline
    if hl:
        lines.append(f"headline comparison: {hl[0]} vs {hl[1]} (INMB in {cur}; change vs base)")
    head = (
        f"{'scenario':<28}{'strategies':>10}  {'optimal at WTP':<18}{'INMB':>12}{'change':>10}"
        "  interpretation"
    )
    lines += [head, "-" * (len(head) + 24)]
    for _, r in sc.summary.iterrows():
        inmb_v = r.get("headline_inmb", np.nan)
        chg = r.get("headline_inmb_change", np.nan)
        lines.append(
            f"{r['scenario']:<28}{len(r['strategies'].split(',')):>10}  {r['optimal_strategy']:<18}"
            f"{(f'{inmb_v:,.0f}' if pd.notna(inmb_v) else 'n/a'):>12}"
            f"{(f'{chg:+,.0f}' if pd.notna(chg) else ''):>10}  "
            f"{r.get('headline_interpretation', '')}"
        )
    own = sc.comparisons[~sc.comparisons["in_base_case"]]
    if len(own):
        lines += ["", "scenario-specific comparisons:"]
        for _, r in own.iterrows():
            lines.append(
                f"  {r['scenario']:<26}{r['comparison']:<44}{r['interpretation']:<44}"
                f"INMB {_money(r['inmb'], cur)}"
            )
    return "\n".join(lines)


def threshold_summary(th: Threshold) -> str:
    lines = [
        "Threshold | " + _header(th.base, th.comparison),
        _base_line(th.base, th.comparison),
        th.message,
    ]
    for r, y in zip(th.roots, th.inmb_at_roots, strict=True):
        lines.append(f"  check: model rerun at {th.parameter} = {r:.10g} gives INMB {y:.3g}")
    lines.append(f"{th.n_model_calls} model calls, {th.seconds:.1f} s")
    return "\n".join(lines)


# --------------------------------------------------------------------------- writing


def _run_json(base: BaseCase, command: str, analysis: dict) -> str:
    prov = provenance(base, command)
    prov["analysis"] = analysis
    return json.dumps(prov, indent=2, default=_json_default) + "\n"


def _json_default(x):
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def _records(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.to_json(orient="records"))


def _title(base: BaseCase, comparison: tuple[str, str] | None) -> str:
    c = base.country
    s = f"{c.code}, {c.currency} {c.price_year}, WTP {c.wtp_per_qaly:,.0f}/QALY"
    if base.ptable.scenario.name != BASE:
        s += f", scenario {base.ptable.scenario.name}"
    if comparison is not None:
        s = f"{comparison[0]} vs {comparison[1]} | " + s
    return s


def write_one_way(ow: OneWay, comparison: tuple[str, str], folder: Path, command: str) -> list[str]:
    from cea.report.plots import dsa as plots

    folder = Path(folder)
    inmb_t = tornado_table(ow, comparison, "inmb")
    icer_t = tornado_table(ow, comparison, "icer")
    inmb_t.to_csv(folder / "tornado_inmb.csv", index=False)
    icer_t.to_csv(folder / "tornado_icer.csv", index=False)
    _with_labels(ow.ranges, _label_columns(ow.base, None)).to_csv(
        folder / "ranges.csv", index=False
    )
    ow.skipped.to_csv(folder / "skipped.csv", index=False)
    _with_labels(ow.outcomes, _label_columns(ow.base, None)).to_csv(
        folder / "dsa_outcomes.csv", index=False
    )
    comps = comparisons_from_settings(ow.base.ptable.settings, ow.base.spec)
    comps = [comparison] + [c for c in comps if tuple(c) != tuple(comparison)]
    allc = comparisons_by_draw(ow.outcomes, comps, ow.wtp).merge(
        ow.design[["draw", "parameter", "side", "value"]], on="draw"
    )
    lead = ["draw", "parameter", "side", "value"]
    allc = allc[lead + [c for c in allc.columns if c not in lead]]
    _with_labels(allc, _label_columns(ow.base, None)).to_csv(
        folder / "dsa_comparisons.csv", index=False
    )
    title = _title(ow.base, comparison)
    plots.tornado_inmb(inmb_t, folder / "tornado_inmb.png", title, top=TORNADO_FIGURE_TOP)
    plots.tornado_icer(icer_t, folder / "tornado_icer.png", title, top=TORNADO_FIGURE_TOP)
    analysis = {
        "analysis": "one-way DSA",
        "comparison": list(comparison),
        "outcome_measures": ["inmb", "icer"],
        "wtp_per_qaly": ow.wtp,
        "design_rows": len(ow.draws),
        "design": "row 0 = base case; then each parameter at its low, then its high value; "
        "one run_model call with per-row calibration",
        "model_seconds": ow.seconds,
        "base_row_vs_base_case_max_rel_gap": ow.base_check,
        "model_calls": ow.calls,
        "rows_not_evaluable": {str(k): v for k, v in ow.failures.items()},
        "prob_edge": PROB_EDGE,
        "range_rule": "low/high of the parameter table, else the 2.5 and 97.5 percentiles of the "
        "distribution built from value and se (ParameterTable.dsa_range)",
        "ranges": _records(
            ow.ranges[
                [
                    "parameter",
                    "base_value",
                    "low",
                    "high",
                    "range_origin",
                    "evaluated_low",
                    "evaluated_high",
                ]
            ]
        ),
        "skipped": _records(ow.skipped),
    }
    (folder / "run.json").write_text(_run_json(ow.base, command, analysis))
    return sorted(p.name for p in folder.iterdir())


def write_two_way(tw: TwoWay, folder: Path, command: str) -> list[str]:
    from cea.report.plots import dsa as plots

    folder = Path(folder)
    labels = _label_columns(tw.base, tw.comparison)
    grid = _with_labels(tw.grid, labels)
    grid.to_csv(folder / "twoway_grid.csv", index=False)
    _with_labels(tw.outcomes, _label_columns(tw.base, None)).to_csv(
        folder / "twoway_outcomes.csv", index=False
    )
    units = {p: str(tw.base.ptable.df.loc[p, "unit"]) for p in tw.parameters}
    plots.two_way(grid, tw.parameters, units, folder / "twoway.png", _title(tw.base, tw.comparison))
    analysis = {
        "analysis": "two-way DSA",
        "comparison": list(tw.comparison),
        "parameters": list(tw.parameters),
        "axes": {p: ax.tolist() for p, ax in zip(tw.parameters, tw.axes, strict=True)},
        "ranges": _records(tw.ranges[["parameter", "base_value", "low", "high", "range_origin"]]),
        "grid_points": len(tw.grid),
        "model_seconds": tw.seconds,
        "base_point_vs_base_case_max_rel_gap": tw.base_check,
        "model_calls": tw.calls,
        "points_not_evaluable": len(tw.failures),
        "prob_edge": PROB_EDGE,
    }
    (folder / "run.json").write_text(_run_json(tw.base, command, analysis))
    return sorted(p.name for p in folder.iterdir())


def write_scenarios(sc: Scenarios, folder: Path, command: str) -> list[str]:
    from cea.report.plots import dsa as plots

    folder = Path(folder)
    sc.summary.to_csv(folder / "scenario_summary.csv", index=False)
    sc.strategies.to_csv(folder / "scenario_strategies.csv", index=False)
    sc.comparisons.to_csv(folder / "scenario_comparisons.csv", index=False)
    plots.scenarios(sc.comparisons, folder / "scenarios.png", _title(sc.base, None))
    analysis = {
        "analysis": "scenarios",
        "seconds": sc.seconds,
        "headline_comparison": list(sc.headline) if sc.headline else None,
        "scenarios": [
            {
                "name": r.case.ptable.scenario.name,
                "description": r.case.ptable.scenario.description,
                "file": r.path,
                "sha256": r.case.ptable.scenario.sha256,
                "strategies": r.case.spec.strategy_names,
                "discount_rate_costs": r.case.spec.discount_rate_costs,
                "discount_rate_effects": r.case.spec.discount_rate_effects,
                "n_cycles": r.case.spec.n_cycles,
                "calibrated_per_year": r.case.calibrated,
            }
            for r in sc.runs
        ],
    }
    (folder / "run.json").write_text(_run_json(sc.base, command, analysis))
    return sorted(p.name for p in folder.iterdir())


def write_threshold(th: Threshold, folder: Path, command: str) -> list[str]:
    from cea.report.plots import dsa as plots

    folder = Path(folder)
    labels = _label_columns(th.base, th.comparison)
    row = {
        "parameter": th.parameter,
        "unit": th.base.ptable.df.loc[th.parameter, "unit"],
        "base_value": th.base_value,
        "dsa_low": th.dsa_range[0] if th.dsa_range else np.nan,
        "dsa_high": th.dsa_range[1] if th.dsa_range else np.nan,
        "bracket_low": th.bracket[0],
        "bracket_high": th.bracket[1],
        "bracket_origin": th.bracket_origin,
        "inmb_at_bracket_low": th.inmb_at_ends[0],
        "inmb_at_bracket_high": th.inmb_at_ends[1],
        "status": "found" if th.found else "no crossing",
        "threshold": th.threshold,
        "inmb_at_threshold": (
            th.inmb_at_roots[th.roots.index(th.threshold)] if th.found else np.nan
        ),
        "all_thresholds": ";".join(f"{r:.10g}" for r in th.roots),
        "message": th.message,
    }
    _with_labels(pd.DataFrame([row]), labels).to_csv(folder / "threshold.csv", index=False)
    scan = _with_labels(th.scan, labels)
    scan.to_csv(folder / "threshold_scan.csv", index=False)
    plots.threshold(scan, row, folder / "threshold.png", _title(th.base, th.comparison))
    analysis = {
        "analysis": "threshold",
        "method": "vectorized scan of the bracket, then scipy.optimize.brentq on each sign change; "
        "the model is rerun at each root",
        "xtol_relative_to_bracket": THRESHOLD_XTOL_REL,
        "scan_points": THRESHOLD_SCAN_POINTS,
        "model_calls": th.n_model_calls,
        "seconds": th.seconds,
        "prob_edge": PROB_EDGE,
        **{k: v for k, v in row.items()},
    }
    (folder / "run.json").write_text(_run_json(th.base, command, analysis))
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------- CLI


def _scenario_suffix(base: BaseCase) -> str:
    name = base.ptable.scenario.name
    return "" if name == BASE else f"_{name}"


def _write_report(
    ow: OneWay, comparison: tuple[str, str], args, folder: Path, command: str
) -> pd.DataFrame:
    """report.xlsx of ``cea dsa --report xlsx``: the base case (same inputs, country, scenario
    and strategies) as live formulas; sheet ``dsa`` the tornado table ordered by the INMB swing
    with a bar chart, ``dsa_tornado_icer`` the table ordered for the ICER; sheet
    ``verification`` the base-case checks and the tornado check on this tornado."""
    from cea.report.workbook import write_analysis_report

    inmb_t = tornado_table(ow, comparison, "inmb")
    icer_t = tornado_table(ow, comparison, "icer")
    return write_analysis_report(
        folder,
        args.inputs,
        ow.base.country.code,
        ow.base.ptable.scenario,
        list(ow.base.spec.strategy_names),
        command,
        dsa={"tornado": inmb_t, "tornado_icer": icer_t},
        check_tables={"tornado": inmb_t},
        verification_note=f"The tornado check ran on this workbook's tornado ({comparison[0]} vs "
        f"{comparison[1]}, sheet dsa); no PSA checks (no PSA in this run: cea psa --report xlsx).",
    )


def cli_dsa(args) -> int:
    """``cea dsa``: one-way tornado (default) or ``--two-way p1,p2`` grid; ``--report xlsx``
    (one-way only) adds report.xlsx (:func:`_write_report`)."""
    report = getattr(args, "report", None)
    if report and args.two_way:
        raise CeaError(
            "--report xlsx is written for the one-way DSA only: drop --two-way, or --report"
        )
    base, comp = prepare(args.inputs, args.country, args.scenario, args.comparison)
    command = " ".join(args.argv)
    code = base.country.code
    if args.two_way:
        names = [p.strip() for p in args.two_way.split(",")]
        if len(names) != 2 or not all(names):
            raise CeaError(
                f"--two-way needs two parameters separated by a comma, got '{args.two_way}'"
            )
        for p in names:
            check_parameter(base.ptable, p)
        tw = run_two_way(base, names[0], names[1], comp, args.grid)
        out = (
            Path(args.out)
            if args.out
            else (DEFAULT_OUTPUTS / f"twoway_{code}_{names[0]}_{names[1]}{_scenario_suffix(base)}")
        )
        with OutputDir(out, force=args.force) as tmp:
            files = write_two_way(tw, tmp, command)
        print(two_way_summary(tw))
    else:
        ow = run_one_way(base)
        out = (
            Path(args.out)
            if args.out
            else (DEFAULT_OUTPUTS / f"dsa_{code}_{comp[0]}_vs_{comp[1]}{_scenario_suffix(base)}")
        )
        verification = None
        with OutputDir(out, force=args.force) as tmp:
            files = write_one_way(ow, comp, tmp, command)
            if report == "xlsx":
                verification = _write_report(ow, comp, args, tmp, command)
                files = sorted([*files, "report.xlsx"])
        print(one_way_summary(ow, tornado_table(ow, comp, args.outcome), args.outcome))
        if verification is not None:
            from cea.report.workbook import verification_summary

            print(verification_summary(verification))
    print(f"\nwritten: {out}/ ({', '.join(files)})")
    return 0


def cli_scenarios(args) -> int:
    """``cea scenarios``: every scenario file beside the base case."""
    inputs = load_inputs(args.inputs)
    sc = run_scenarios(inputs, args.country, folder=args.dir)
    out = Path(args.out) if args.out else DEFAULT_OUTPUTS / f"scenarios_{sc.base.country.code}"
    with OutputDir(out, force=args.force) as tmp:
        files = write_scenarios(sc, tmp, " ".join(args.argv))
    print(scenarios_summary(sc))
    print(f"\nwritten: {out}/ ({', '.join(files)})")
    return 0


def cli_threshold(args) -> int:
    """``cea threshold``: the parameter value at which a comparison's INMB is zero."""
    base, comp = prepare(args.inputs, args.country, args.scenario, args.comparison)
    check_parameter(base.ptable, args.parameter)
    th = find_threshold(base, args.parameter, comp, args.low, args.high)
    out = (
        Path(args.out)
        if args.out
        else (
            DEFAULT_OUTPUTS
            / f"threshold_{base.country.code}_{args.parameter}_{comp[0]}_vs_{comp[1]}{_scenario_suffix(base)}"
        )
    )
    with OutputDir(out, force=args.force) as tmp:
        files = write_threshold(th, tmp, " ".join(args.argv))
    print(threshold_summary(th))
    print(f"\nwritten: {out}/ ({', '.join(files)})")
    return 0

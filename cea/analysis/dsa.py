"""Deterministic sensitivity analysis tables from a design's outcomes: comparisons and the
optimal strategy at every row, and the tornado table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cea.analysis.incremental import icer_table, pairwise
from cea.errors import CeaError
from cea.parameters.designs import BASE, HIGH, LOW

#: |difference| at or below this counts as "no effect" (cost in currency units, QALYs).
NO_EFFECT_ATOL = 1e-9


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


def with_labels(df: pd.DataFrame, labels: dict) -> pd.DataFrame:
    df = df.copy()
    for i, (k, v) in enumerate(labels.items()):
        df.insert(i, k, v)
    return df


def icer_status(row: dict) -> tuple[str, float]:
    q0, ql, qh = row["quadrant_base"], row["quadrant_low"], row["quadrant_high"]
    flips = [side for side, q in ((LOW, ql), (HIGH, qh)) if q != q0]
    if flips:
        return f"quadrant flip at {' and '.join(flips)}", np.nan
    if q0 not in ("NE", "SW"):
        return f"base not a ratio ({q0})", np.nan
    swing = abs(row["icer_high"] - row["icer_low"])
    return ("numeric" if swing > 0 else "no change"), swing


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


def tornado_table(
    outcomes: pd.DataFrame,
    design: pd.DataFrame,
    ranges: pd.DataFrame,
    optimal: pd.DataFrame,
    wtp: float,
    comparison: tuple[str, str],
    outcome: str = "inmb",
    failures: dict | None = None,
    labels: dict | None = None,
) -> pd.DataFrame:
    """Tornado table for one comparison from a one-way design's outcomes: INMB and ICER at
    each parameter's low and high.

    ``outcomes``: the model's outcomes at every row of the design (draw 0 the base case);
    ``design``: ``draw, parameter, side`` of each row; ``ranges``: the parameters moved
    (:func:`cea.parameters.designs.ranges_table`); ``optimal``: :func:`optimal_by_draw`;
    ``failures``: row -> the model's message, for rows it could not evaluate; ``labels``:
    columns put first (country, currency, ...).

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
    failures = failures or {}
    every = design["draw"]
    comp = comparisons_by_draw(outcomes, [comparison], wtp).set_index("draw").reindex(every)
    comp["quadrant"] = comp["quadrant"].fillna("not evaluable")
    comp["interpretation"] = comp["interpretation"].fillna("model not evaluable")
    opt = optimal[optimal["optimal"]].set_index("draw")["strategy"].reindex(every)
    opt = opt.fillna("")
    per = outcomes.pivot_table(index="draw", columns="strategy", values=["cost", "qaly"])
    moved = (per - per.loc[0]).abs().reindex(every).fillna(0.0)
    ab_moved = moved.loc[:, [(v, s) for v in ("cost", "qaly") for s in (a, b)]].max(axis=1)
    all_moved = moved.max(axis=1)
    d = design.set_index(["parameter", "side"])["draw"]
    base_row = comp.loc[0]
    rows = []
    for _, r in ranges.iterrows():
        p = r["parameter"]
        lo, hi = comp.loc[d[(p, LOW)]], comp.loc[d[(p, HIGH)]]
        ends = [x for x in (lo["inmb"], hi["inmb"]) if np.isfinite(x)]
        errors = [
            f"{side}: {failures[d[(p, side)]]}" for side in (LOW, HIGH) if d[(p, side)] in failures
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
        row["icer_status"], row["icer_swing"] = icer_status(row)
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
    return with_labels(t, labels or {})

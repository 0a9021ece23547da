"""Deterministic sensitivity analysis tables from outcomes: comparisons and the optimal
strategy at every row of a design, and the tornado table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cea.analysis.incremental import icer_table, pairwise
from cea.parameters.designs import HIGH, LOW

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

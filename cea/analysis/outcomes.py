"""The outcomes table: the one contract between the model and the analyses.

A long table, one row per (draw, strategy): ``draw, strategy, cost`` (total discounted),
every cost category, ``qaly``, ``ly`` and every event count, discounted (bare name) and
undiscounted (``<name>_undiscounted``). :func:`validate_outcomes` checks it; the tables of
this module reshape it for the base case.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cea.igrt.spec import COST_CATEGORIES, COUNTS, EFFECTS, STATES, ModelSpec


def results_table(outcomes: pd.DataFrame, spec: ModelSpec) -> pd.DataFrame:
    """One row per strategy: discounted and undiscounted totals by category, outcomes, counts."""
    labels = {s.strategy: s.label for s in spec.strategies}
    cols = ["strategy"]
    cols += ["cost", "cost_undiscounted"]
    for name in COST_CATEGORIES:
        cols += [name, f"{name}_undiscounted"]
    for name in EFFECTS:
        cols += [name, f"{name}_undiscounted"]
    for name in COUNTS:
        cols += [f"{name}_undiscounted", name]
    df = outcomes[cols].copy()
    df.insert(1, "label", df["strategy"].map(labels))
    return df.reset_index(drop=True)


def trace_table(traces: dict, spec: ModelSpec) -> pd.DataFrame:
    frames = []
    for (strategy, subgroup), tr in traces.items():
        tr = tr[0]  # base case: one draw
        df = pd.DataFrame(tr, columns=list(STATES))
        df.insert(0, "strategy", strategy)
        df.insert(1, "subgroup", subgroup)
        df.insert(2, "cycle", np.arange(len(df)))
        df.insert(3, "time_years", df["cycle"] * spec.dt)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)

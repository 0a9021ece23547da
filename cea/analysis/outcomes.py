"""The outcomes table: the one contract between the model and the analyses.

A long table, one row per (draw, strategy): ``draw, strategy, cost`` (total discounted),
every cost category, ``qaly``, ``ly`` and every event count, discounted (bare name) and
undiscounted (``<name>_undiscounted``). :func:`validate_outcomes` checks it; the tables of
this module reshape it for the base case.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cea.errors import CeaError
from cea.igrt.spec import COST_CATEGORIES, COUNTS, EFFECTS, STATES, ModelSpec

#: Columns every outcomes table has.
KEYS = ("draw", "strategy")
REQUIRED = (*KEYS, "cost", "qaly", "ly")


def validate_outcomes(outcomes: pd.DataFrame, what: str = "the model") -> pd.DataFrame:
    """Check the outcomes table and return it: the columns ``draw, strategy, cost, qaly, ly``;
    each (draw, strategy) once; a balanced panel (every draw has every strategy); every
    number finite. Raises CeaError naming the first problem (a draw and strategy where there
    is one); no cost negative (a dose weight below 0, say, from an impossible height).

    Follows heormodel's ``Outcomes`` contract: the analyses take this table and nothing else.
    """
    missing = [c for c in REQUIRED if c not in outcomes.columns]
    if missing:
        raise CeaError(f"{what}: outcomes lack the columns {', '.join(missing)}")
    keys = outcomes[list(KEYS)]
    dup = keys.duplicated()
    if dup.any():
        d, s = keys[dup].iloc[0]
        raise CeaError(f"{what}: outcomes list draw {d}, strategy '{s}' twice")
    n_draws, n_strategies = keys["draw"].nunique(), keys["strategy"].nunique()
    if len(outcomes) != n_draws * n_strategies:
        have = keys.groupby("draw")["strategy"].nunique()
        d = have.index[have < n_strategies][0]
        raise CeaError(
            f"{what}: draw {d} has {have[d]} of the {n_strategies} strategies (the panel of "
            "draws and strategies must be balanced)"
        )
    numbers = outcomes.drop(columns=list(KEYS)).select_dtypes("number")
    values = numbers.to_numpy(dtype=float)
    found = first_problem(values, list(numbers.columns))
    if found is not None:
        i, j, problem = found
        row = outcomes.iloc[i]
        raise CeaError(
            f"{what}: {numbers.columns[j]} is {values[i, j]:g} at draw {row['draw']}, "
            f"strategy '{row['strategy']}': {problem}"
        )
    return outcomes


def first_problem(values: np.ndarray, columns: list[str]) -> tuple[int, int, str] | None:
    """The first number of ``values`` (rows x ``columns``) the outcomes contract refuses, as
    (row, column, what is wrong): one not finite, then a cost (``cost``, ``cost_*``) below 0;
    None when there is none."""
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        return int(i), int(j), "check the parameter values"
    costs = [j for j, c in enumerate(columns) if c == "cost" or c.startswith("cost_")]
    negative = values[:, costs] < 0
    if negative.any():
        i, j = np.argwhere(negative)[0]
        return (
            int(i),
            costs[j],
            (
                "a cost cannot be negative: check the parameter values (a price, a dose, a body "
                "weight or height)"
            ),
        )
    return None


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

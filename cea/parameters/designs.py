"""DSA designs as draws tables: each parameter's range, and the base row repeated with
changes applied (one-way: 2k + 1 rows; two-way: a grid). The same model call runs them as it
runs the base case and the PSA draws."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cea.errors import CeaError, did_you_mean

#: Labels of a design's rows: the base row, and a parameter at its low or high value.
BASE = "base"
LOW, HIGH = "low", "high"


#: Probabilities are evaluated no closer than this to 1: the cure-fraction IgG-decline survival
#: S(t) = 1 - pi + pi exp(-lam t) is computed as log1p(...), which is -inf at pi = 1 once
#: exp(-lam t) underflows against 1 (p_igg_low_ever has high = 1.00). The shift changes results
#: by about this much and is recorded in ``ranges.csv`` (``evaluated_low``/``evaluated_high``).
PROB_EDGE = 1e-9


#: Natural bounds used when the DSA range holds no crossing: (0, 10 x value] for ratios,
#: rates, times and shape parameters (open at 0, where the model degenerates), [0, 10 x value]
#: for prices and quantities, [0, 1] for probabilities and utilities.
NATURAL_UPPER_FACTOR = 10.0


NATURAL_LOWER_FRACTION = 1e-3


UNIT_INTERVAL_PREFIXES = ("p_", "u_")


ZERO_ALLOWED_PREFIXES = ("c_", "q_")


POSITIVE_PREFIXES = ("r_", "rr_", "hr_", "or_", "t_", "k_", "n_")


#: Prefixes whose values may be negative (quantities such as a QALY loss); the other parameters
#: are refused below 0, on the command line and in an override alike (:func:`range_problem`).
SIGNED_PREFIXES = ("q_",)


def range_problem(name: str, low: float, high: float) -> str | None:
    """Why a range ``[low, high]`` (a single value: ``low == high``) leaves the values ``name``
    can take (a proportion or utility in [0, 1]; no negative value but for ``q_``), or None."""
    if name.startswith(UNIT_INTERVAL_PREFIXES) and not (0 <= low and high <= 1):
        return "a proportion must stay in [0, 1]"
    if not name.startswith(SIGNED_PREFIXES) and low < 0:
        if name.startswith("c_"):
            return "a price cannot be negative"
        return f"a '{name.split('_')[0]}_' parameter cannot be negative"
    return None


def check_parameter(ptable, name: str) -> None:
    if name not in ptable.df.index:
        raise CeaError(
            f"unknown parameter '{name}'{did_you_mean(name, ptable.df.index)} (parameters.csv, "
            f"prices/{ptable.country.code}.csv; `cea params` lists them)"
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


def design_draws(base_row: pd.DataFrame, changes: list[dict[str, float]]) -> pd.DataFrame:
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


def grid_axis(low: float, high: float, base_value: float, n: int) -> np.ndarray:
    """``n`` evenly spaced points from low to high, with the base value added (sorted, unique)."""
    if n < 2:
        raise CeaError(f"--grid must be at least 2, got {n}")
    return np.unique(np.append(np.linspace(low, high, n), base_value))

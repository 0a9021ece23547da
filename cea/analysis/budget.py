"""Budget impact arithmetic (ISPOR good practice: Sullivan SD et al., Value Health 2014;17:5-14).

Pure functions on arrays; no I/O. A cohort of newly eligible patients starts every calendar
year and is followed with the model's own per-cycle numbers (undiscounted, per patient):

1. :func:`year_shares` spreads each trace row's contribution over model years;
2. :func:`by_model_year` turns per-cycle numbers into per-patient numbers by year since start;
3. :func:`calendar_totals` adds up the cohorts: in calendar year y, the patients who started in
   year j <= y on strategy k contribute their per-patient number of model year y - j + 1.

Conventions (docs/budget.md): a cohort starts on the first day of its calendar year; a state
reward's trace row t stands for [(t - 1/2) dt, (t + 1/2) dt] clipped to the model's time (what
the trapezoid correction weights integrate), an event's or transition reward's row t for the
cycle ending there, [(t - 1) dt, t dt]; a contribution is split between model years in
proportion to the overlap.
"""

from __future__ import annotations

import numpy as np


def eligible_patients(first_year: float, growth: float, years: int) -> np.ndarray:
    """Newly eligible patients per calendar year: ``first_year x (1 + growth) ** (y - 1)``."""
    return first_year * (1.0 + growth) ** np.arange(years)


def year_shares(n_rows: int, dt: float, years: int, flow: bool = False) -> np.ndarray:
    """(years, n_rows): the share of trace row t's contribution that falls in model year a + 1.

    A state reward's row t stands for [(t - 1/2) dt, (t + 1/2) dt] clipped to the model's time
    [0, (n_rows - 1) dt] (the intervals partition it; the trapezoid weights integrate over
    them). A flow's row t (``flow``: an event or transition reward of cycle t - 1, which the
    engine puts on the row ending its cycle) stands for the cycle itself, [(t - 1) dt, t dt];
    row 0 of a flow holds only start rewards, at time 0. The share of year a is the overlap
    of the interval with [a, a + 1) divided by its length. A column sums to 1 when the row's
    interval ends within ``years``; the part beyond is left out.
    """
    t = np.arange(n_rows)
    if flow:
        lo, hi = np.maximum((t - 1.0) * dt, 0.0), t * dt
    else:
        lo = np.maximum((t - 0.5) * dt, 0.0)
        hi = np.minimum((t + 0.5) * dt, (n_rows - 1) * dt)
    a = np.arange(years)[:, None]
    overlap = np.clip(np.minimum(hi, a + 1.0) - np.maximum(lo, a), 0.0, None)
    length = hi - lo
    out = np.divide(overlap, length, out=np.zeros_like(overlap), where=length > 0)
    out[0, length == 0] = 1.0  # a point at time 0 (a flow's row 0): year 1
    return out


def by_model_year(per_cycle: np.ndarray, dt: float, years: int, flow: bool = False) -> np.ndarray:
    """Per-patient numbers by model year: (..., n_rows) per-cycle rows -> (..., years);
    ``flow`` for events and transition rewards (see :func:`year_shares`)."""
    per_cycle = np.asarray(per_cycle, float)
    return per_cycle @ year_shares(per_cycle.shape[-1], dt, years, flow).T


def calendar_totals(
    per_patient: np.ndarray, new_patients: np.ndarray, shares: np.ndarray
) -> np.ndarray:
    """Totals per calendar year of cohorts starting every year.

    per_patient : (K, A) per-patient numbers of each strategy by model year (A >= Y).
    new_patients : (Y,) patients starting in each calendar year.
    shares : (K, Y) the share of each year's new patients on each strategy.

    Returns (K, Y): ``out[k, y] = sum_{j <= y} new_patients[j] shares[k, j]
    per_patient[k, y - j]`` (0-based years).
    """
    per_patient = np.asarray(per_patient, float)
    starting = np.asarray(shares, float) * np.asarray(new_patients, float)[None, :]  # (K, Y)
    K, Y = starting.shape
    if per_patient.shape[0] != K or per_patient.shape[1] < Y:
        raise ValueError(
            f"per_patient has shape {per_patient.shape}; needs ({K}, >= {Y}) for {Y} years"
        )
    out = np.zeros((K, Y))
    for j in range(Y):  # the cohort starting in year j
        out[:, j:] += starting[:, j : j + 1] * per_patient[:, : Y - j]
    return out

"""Budget impact arithmetic (ISPOR good practice: Sullivan SD et al., Value Health 2014;17:5-14).

Pure functions on arrays; no I/O. A cohort of newly eligible patients starts every calendar
year and is followed with the model's own per-cycle numbers (undiscounted, per patient):

1. :func:`year_shares` spreads each trace row's contribution over model years;
2. :func:`by_model_year` turns per-cycle numbers into per-patient numbers by year since start;
3. :func:`calendar_totals` adds up the cohorts: in calendar year y, the patients who started in
   year j <= y on strategy k contribute their per-patient number of model year y - j + 1.

Conventions (docs/budget.md): a cohort starts on the first day of its calendar year; trace row
t stands for the interval [(t - 1/2) dt, (t + 1/2) dt] clipped to the model's time (the
half-cycle either side of its time, which is what the trapezoid correction weights integrate),
and its contribution is split between model years in proportion to the overlap.
"""

from __future__ import annotations

import numpy as np


def eligible_patients(first_year: float, growth: float, years: int) -> np.ndarray:
    """Newly eligible patients per calendar year: ``first_year x (1 + growth) ** (y - 1)``."""
    return first_year * (1.0 + growth) ** np.arange(years)


def year_shares(n_rows: int, dt: float, years: int) -> np.ndarray:
    """(years, n_rows): the share of trace row t's contribution that falls in model year a + 1.

    Row t stands for [(t - 1/2) dt, (t + 1/2) dt] clipped to the model's time [0, (n_rows - 1)
    dt] (the intervals partition it); its share of year a is the overlap of that interval with
    [a, a + 1) divided by the interval's length. A column sums to 1 when the row's interval
    ends within ``years``; the part beyond is left out.
    """
    t = np.arange(n_rows)
    lo = np.maximum((t - 0.5) * dt, 0.0)
    hi = np.minimum((t + 0.5) * dt, (n_rows - 1) * dt)
    a = np.arange(years)[:, None]
    overlap = np.clip(np.minimum(hi, a + 1.0) - np.maximum(lo, a), 0.0, None)
    return overlap / (hi - lo)


def by_model_year(per_cycle: np.ndarray, dt: float, years: int) -> np.ndarray:
    """Per-patient numbers by model year: (..., n_rows) per-cycle rows -> (..., years)."""
    per_cycle = np.asarray(per_cycle, float)
    return per_cycle @ year_shares(per_cycle.shape[-1], dt, years).T


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

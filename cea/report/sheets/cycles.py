"""The life_table and cycles sheets: background mortality by age, and per cycle the time,
correction weights, discount factors and time-dependent hazards shared by every strategy."""

from __future__ import annotations

import numpy as np
from openpyxl.utils import get_column_letter

from cea.engine.markov import correction_weights
from cea.errors import CeaError
from cea.report.sheets.cells import (
    FMT_GENERAL,
    FMT_INT,
    FMT_SMALL,
    INPUT_FILL,
    finish_sheet,
    put,
    put_formula,
    write_header,
    write_title,
)
from cea.report.sheets.state import CYC, CYC_FIRST, ReportState


# ---------------------------------------------------------------------- life table
def write_life_table(rs: ReportState):
    ws = rs.life = rs.sheet("life_table")
    c = rs.country
    mx = np.asarray(c.mx_by_age, float)
    write_title(
        ws,
        f"Background mortality, {c.name} ({c.life_table_sex}): hazard mx per year by single year of age",
        "From life_tables.csv (UN WPP 2024); ages below the table's first age take its first value; ages above the last take the last.",
    )
    write_header(ws, 4, ["age", "mx_per_year"])
    for a, value in enumerate(mx):
        put(ws, 5 + a, 1, a, FMT_INT)
        put(ws, 5 + a, 2, float(value), FMT_GENERAL, fill=INPUT_FILL)
    rs.names.define("mx_by_age", ws.title, 2, 5, 5 + len(mx) - 1)
    finish_sheet(ws, {1: 8, 2: 14}, freeze="A5")


# ---------------------------------------------------------------------- cycles
def write_cycles(rs: ReportState):
    ws = rs.cycles = rs.sheet("cycles")
    spec, T = rs.spec, rs.T
    assert ws.title == "cycles"
    write_title(
        ws,
        "Per cycle, shared by every strategy: time, correction weights, discount factors, time-dependent hazards",
        "Row t is the cohort at time t x dt; cycle t runs from row t to row t + 1. Hazards are cumulative over the cycle. "
        "surv_igg: share whose IgG is not yet low (cure fraction); low_igg_share: its complement averaged over the cycle; "
        "igrt_infection_mix: untreated infection rate of a primary/secondary patient on IgRT relative to low IgG. "
        "The last row's infection values repeat the last cycle's (rewards of the last row use the last cycle).",
    )
    write_header(ws, 4, list(CYC))
    weights = correction_weights(spec.correction, T)
    for t in range(T + 1):
        r = CYC_FIRST + t
        put(ws, r, 1, t, FMT_INT)
        put_formula(ws, r, 2, f"A{r}*cycle_length_years", FMT_SMALL)
        if t < T:
            put_formula(ws, r, 3, f"B{r + 1}", FMT_SMALL)
        put(ws, r, 4, float(weights[t]), FMT_GENERAL)
        for col, rate in ((5, "discount_rate_costs"), (6, "discount_rate_effects")):
            put_formula(ws, r, col, _discount_formula(spec.discount_step, rate, f"A{r}"), FMT_SMALL)
        if t < T:
            _cycle_hazards(rs, ws, r)
        else:  # the last row's rewards use the last cycle's values (engine reward_alignment)
            for col in (10, 14, 15):
                L = get_column_letter(col)
                put_formula(ws, r, col, f"{L}{r - 1}", FMT_SMALL)
        pi, lam = rs.n("p_igg_low_ever"), rs.n("r_igg_decline")
        put_formula(ws, r, 11, f'IF({pi}<1,LN(1+{pi}*(EXP(-{lam}*B{r})-1)),"")', FMT_GENERAL)
        put_formula(ws, r, 12, f"1+{pi}*(EXP(-{lam}*B{r})-1)", FMT_GENERAL)
    finish_sheet(ws, {1: 7}, freeze="B5", default_width=14)


def _cycle_hazards(rs: ReportState, ws, r: int):
    """Age, background mortality and the time-dependent hazards of the cycle on row ``r``."""
    n = rs.n
    pi, lam = n("p_igg_low_ever"), n("r_igg_decline")
    put_formula(ws, r, 7, f"{n('q_start_age_years')}+B{r}", FMT_SMALL)
    put_formula(
        ws,
        r,
        8,
        f"INDEX(mx_by_age,MIN(MAX(INT(G{r}),0),ROWS(mx_by_age)-1)+1)",
        FMT_GENERAL,
    )
    put_formula(ws, r, 9, f"H{r}*cycle_length_years", FMT_GENERAL)
    a = n("t_infection_hazard_anchor_months")
    k = n("k_infection_hazard_shape")
    put_formula(ws, r, 10, f"{a}*((C{r}/{a})^{k}-(B{r}/{a})^{k})/cycle_length_years", FMT_SMALL)
    # cure fraction S(t) = 1 - pi + pi exp(-lam t); pi = 1 is a plain exponential
    put_formula(ws, r, 13, f"IF({pi}<1,K{r}-K{r + 1},{lam}*(C{r}-B{r}))", FMT_GENERAL)
    put_formula(ws, r, 14, f"1-(L{r}+L{r + 1})/2", FMT_GENERAL)
    put_formula(ws, r, 15, f"{n('rr_infection_igg_normal')}*(1-N{r})+N{r}", FMT_GENERAL)
    m, k = n("t_median_tot_months"), n("k_tot_weibull_shape")
    put_formula(ws, r, 16, f"LN(2)*((C{r}/{m})^{k}-(B{r}/{m})^{k})", FMT_GENERAL)


def _discount_formula(step: str, rate: str, cycle_ref: str) -> str:
    """Excel formula of :func:`cea.engine.markov.discount_factors` for one trace row."""
    t = f"({cycle_ref}+discount_offset_cycles)"
    if step == "cycle":
        return f"(1+{rate})^(-({t}*cycle_length_years))"
    if step == "annual":
        return f"(1+{rate})^(-INT({t}*cycle_length_years+annual_step_guard_years))"
    if step == "per_cycle_rate":
        return f"(1+{rate}*cycle_length_years)^(-{t})"
    if step == "continuous":
        return f"EXP(-{rate}*({t}*cycle_length_years))"
    raise CeaError(f"report: discount_step '{step}' has no spreadsheet formula")

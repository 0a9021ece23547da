"""The per_state sheet: per strategy and alive state, the rates and rewards per person-cycle
(constant over time) that the trace sheets multiply with the state occupancy.

Each quantity is one row: a scalar in column D (:meth:`_Rows.scalar`), or one formula per alive
state in columns E:I (:meth:`_Rows.states`); its row is recorded in ``ReportState.ps`` for
:meth:`~cea.report.sheets.state.ReportState.ps_ref`.
"""

from __future__ import annotations

from collections.abc import Mapping

from cea.errors import CeaError
from cea.igrt.spec import STATES, SUBGROUPS, Strategy
from cea.report.sheets.cells import (
    FMT_GENERAL,
    HEADER_FONT,
    finish_sheet,
    put,
    put_formula,
    write_header,
    write_title,
)
from cea.report.sheets.state import ALIVE_SHORT, PS_STATE_COL, ReportState

CL = "cycle_length_years"
IGRT = ("I", "OI")  # the states on IgRT


class _Rows:
    """Writes the per_state rows one after the other."""

    def __init__(self, rs: ReportState, ws):
        self.rs, self.ws, self.r = rs, ws, 5

    def _label(self, owner: str, qty: str, unit: str):
        put(self.ws, self.r, 1, owner)
        put(self.ws, self.r, 2, qty)
        put(self.ws, self.r, 3, unit)

    def _done(self, owner: str, qty: str, how: str):
        put(self.ws, self.r, 10, how)
        self.rs.ps[(owner, qty)] = self.r
        self.r += 1

    def scalar(self, owner, qty, formula, unit="", how="", fmt=FMT_GENERAL):
        """A quantity with one value (column D)."""
        self._label(owner, qty, unit)
        put_formula(self.ws, self.r, 4, formula, fmt)
        self._done(owner, qty, how)

    def states(self, owner, qty, formulas: Mapping[str, str], unit="", how="", fmt=FMT_GENERAL):
        """A quantity per alive state (columns E:I); 0 in the states without a formula."""
        self._label(owner, qty, unit)
        for j, s in enumerate(ALIVE_SHORT):
            f = formulas.get(s)
            if f is None:
                put(self.ws, self.r, PS_STATE_COL + j, 0.0, fmt)
            else:
                put_formula(self.ws, self.r, PS_STATE_COL + j, f, fmt)
        self._done(owner, qty, how)

    def heading(self, text: str):
        put(self.ws, self.r, 1, text, font=HEADER_FONT)
        self.r += 1

    def skip(self):
        self.r += 1


def write_per_state(rs: ReportState):
    ws = rs.per_state = rs.sheet("per_state")
    assert ws.title == "per_state"
    write_title(
        ws,
        "Per strategy: rates and rewards per person-cycle in each state (constant over time)",
        "value: a scalar; state columns: per person per cycle spent in that state. Infection events per cycle are "
        "multiplied by cycles!J (infection hazard multiplier) on the trace sheets.",
    )
    write_header(ws, 4, ["strategy", "quantity", "unit", "value", *STATES[:5], "how"])
    rows = _Rows(rs, ws)
    _shared_rows(rows)
    rows.skip()
    for st in rs.strategies:
        rows.heading(f"{st.strategy}: {st.label}")
        if st.uses_igrt:
            _dose_rows(rows, st)
            _hazard_ratio_rows(rows, st)
        if st.trigger == "igg_below_threshold":
            _detection_rows(rows, st)
        _event_rate_rows(rows, st)
        _igrt_cost_rows(rows, st)
        _monitoring_rows(rows, st)
        _adverse_event_rows(rows, st)
        _other_cost_rows(rows, st)
        _qaly_rows(rows, st)
        rows.skip()
    finish_sheet(ws, {1: 26, 2: 38, 3: 18, 4: 14, 10: 80}, freeze="E5", default_width=16)


def _shared_rows(rows: _Rows):
    """The rates shared by every strategy."""
    n = rows.rs.n
    rows.scalar(
        "all",
        "myeloma_death_on_bsab_per_year",
        f"-LN(1-{n('p_nrm_12m')}*(1-{n('p_nrm_infection_share')}))",
        "per year",
        "non-infection non-relapse mortality at 12 months as a hazard: -ln(1 - p_nrm_12m x (1 - p_nrm_infection_share))",
    )
    rows.scalar(
        "all",
        "igrt_stop_hazard_per_cycle",
        f"LN(2)/{n('t_median_igrt_after_bsab_months')}*{CL}",
        "per cycle",
        "IgRT stops after bsAb: ln 2 / median x dt",
    )


def _dose_rows(rows: _Rows, st: Strategy):
    """Grams per administration (dosing weight, SCIG conversion, vial rounding) and
    administrations per cycle."""
    rs, o = rows.rs, st.strategy
    n = rs.n
    if st.dosing_weight != "flat":
        _dosing_weight_rows(rows, st)
        grams = f"{rs.st_cell(st, 'dose_g_per_kg')}*{rs.ps_ref(o, 'dosing_weight_kg')}"
    else:
        grams = rs.st_cell(st, "flat_dose_g")
    if st.is_scig:
        grams = f"{grams}*{n('q_scig_conversion')}"
    if st.vial_rounding_g > 0:
        rows.scalar(o, "grams_per_administration_unrounded", grams, "g")
        step = rs.st_cell(st, "vial_rounding_g")
        raw = rs.ps_ref(o, "grams_per_administration_unrounded")
        grams = f"-INT(-({raw}/{step}-vial_rounding_tolerance))*{step}"
    rows.scalar(
        o,
        "grams_per_administration",
        grams,
        "g",
        "dose x dosing weight (x SCIG conversion), rounded up to the vial size",
    )
    rows.scalar(
        o,
        "administrations_per_cycle",
        f"cycle_days/{rs.st_cell(st, 'interval_days')}",
        "per cycle",
    )


def _dosing_weight_rows(rows: _Rows, st: Strategy):
    """The dosing weight: actual, ideal (Devine) or adjusted body weight."""
    rs, o = rows.rs, st.strategy
    n = rs.n
    abw = n("q_body_weight_kg")
    above = f"({n('q_height_cm')}-devine_base_height_cm)"
    male = n("p_male")
    ibw = (
        f"{male}*(devine_base_kg_male+devine_kg_per_cm*{above})"
        f"+(1-{male})*(devine_base_kg_female+devine_kg_per_cm*{above})"
    )
    weight = {"actual": abw, "ideal": ibw}.get(st.dosing_weight)
    if st.dosing_weight == "adjusted":
        rows.scalar(
            o,
            "ideal_body_weight_kg",
            ibw,
            "kg",
            "Devine: male share x (50 + 0.906 x (height - 152.4)) + female share x (45.5 + ...)",
        )
        ibw_ref = rs.ps_ref(o, "ideal_body_weight_kg")
        weight = f"{ibw_ref}+adjusted_weight_factor*({abw}-{ibw_ref})"
    if weight is None:
        raise CeaError(f"report: strategy '{o}': unknown dosing_weight '{st.dosing_weight}'")
    rows.scalar(o, "dosing_weight_kg", weight, "kg", f"dosing weight: {st.dosing_weight}")


def _hazard_ratio_rows(rows: _Rows, st: Strategy):
    """Hazard ratios of severe and non-severe infections on IgRT (x rr_scig_vs_ivig)."""
    n, o, scig = rows.rs.n, st.strategy, st.is_scig
    hr_sev = n(st.hr_severe_parameter)
    hr_ns = n("hr_igrt_nonsevere")
    if scig:
        hr_sev, hr_ns = (
            f"{hr_sev}*{n('rr_scig_vs_ivig')}",
            f"{hr_ns}*{n('rr_scig_vs_ivig')}",
        )
    rows.scalar(
        o,
        "hr_severe_on_igrt",
        hr_sev,
        "ratio",
        f"{st.hr_severe_parameter}" + (" x rr_scig_vs_ivig" if scig else ""),
    )
    rows.scalar(
        o,
        "hr_nonsevere_on_igrt",
        hr_ns,
        "ratio",
        "hr_igrt_nonsevere" + (" x rr_scig_vs_ivig" if scig else ""),
    )


def _detection_rows(rows: _Rows, st: Strategy):
    """Preemptive strategies: IgG tests per cycle and the detection hazard per subgroup."""
    rs, o = rows.rs, st.strategy
    n = rs.n
    rows.scalar(
        o,
        "igg_tests_per_cycle_before_igrt",
        f"cycle_days/{n('q_igg_test_interval_days')}",
        "per cycle",
    )
    tests = rs.ps_ref(o, "igg_tests_per_cycle_before_igrt")
    for sg in SUBGROUPS:
        s = n("p_assay_sensitivity")
        if sg == "igg_isotype":
            s = f"{s}*(1-{n('p_masked_igg_isotype')})"
        rows.scalar(
            o,
            f"detection_hazard_per_cycle_{sg}",
            f"-{tests}*LN(1-MIN({s},detection_prob_cap))",
            "per cycle",
            "P(detect) per cycle = 1 - (1 - s)^tests as a cumulative hazard"
            + (" (s x (1 - p_masked) for IgG isotype)" if sg == "igg_isotype" else ""),
        )


def _infection_rates(rs: ReportState, st: Strategy, on: str, off: str, hr: str | None) -> dict:
    """Infections per person-cycle by state: rate on or off bsAb (x hazard ratio on IgRT)."""
    on, off = rs.n(on), rs.n(off)
    hr = rs.ps_ref(st.strategy, hr) if st.uses_igrt else None
    return {
        "N": f"{on}*{rs.n('rr_infection_igg_normal')}*{CL}",
        "L": f"{on}*{CL}",
        "I": f"{on}*{hr}*{CL}" if st.uses_igrt else f"{on}*{CL}",
        "OI": f"{off}*{hr}*{CL}" if st.uses_igrt else f"{off}*{CL}",
        "O": f"{off}*{CL}",
    }


def _event_rate_rows(rows: _Rows, st: Strategy):
    """Severe and non-severe infections and myeloma death per person-cycle."""
    rs, o = rows.rs, st.strategy
    mu_on = rs.ps_ref("all", "myeloma_death_on_bsab_per_year")
    mu_off = rs.n("r_myeloma_death_off_bsab")
    hr_os = rs.n("hr_igrt_os")
    rows.states(
        o,
        "severe_infections_per_cycle_base",
        _infection_rates(rs, st, "r_severe_on_bsab", "r_severe_off_bsab", "hr_severe_on_igrt"),
        "per person-cycle",
        "rate per year x dt; x cycles!J (infection multiplier) on the trace sheets, and on IgRT x cycles!O for primary/secondary strategies",
    )
    ns = _infection_rates(
        rs, st, "r_nonsevere_on_bsab", "r_nonsevere_off_bsab", "hr_nonsevere_on_igrt"
    )
    rows.states(o, "nonsevere_infections_per_cycle_base", ns, "per person-cycle")
    rows.states(
        o,
        "myeloma_death_hazard_per_cycle",
        {
            "N": f"{mu_on}*{CL}",
            "L": f"{mu_on}*{CL}",
            "I": f"{mu_on}*{hr_os}*{CL}",
            "OI": f"{mu_off}*{hr_os}*{CL}",
            "O": f"{mu_off}*{CL}",
        },
        "per cycle",
        "myeloma (non-infection) death; background and infection death are added per cycle",
    )


def _administrations(rs: ReportState, st: Strategy) -> str | None:
    return rs.ps_ref(st.strategy, "administrations_per_cycle") if st.uses_igrt else None


def _igrt_cost_rows(rows: _Rows, st: Strategy):
    """Immunoglobulin grams and infusions, its cost and its administration cost."""
    rs, o, uses, scig = rows.rs, st.strategy, st.uses_igrt, st.is_scig
    n, currency = rs.n, rs.country.currency
    admins = _administrations(rs, st)
    grams_ref = rs.ps_ref(o, "grams_per_administration") if uses else None
    rows.states(
        o,
        "ig_grams",
        {s: f"{grams_ref}*{admins}" for s in IGRT} if uses else {},
        "g per cycle",
    )
    rows.states(o, "infusions", {s: admins for s in IGRT} if uses else {}, "per cycle")
    price = n("c_scig_per_g") if scig else n("c_ivig_per_g")
    rows.states(
        o,
        "cost_ig",
        {s: f"{rs.ps_ref(o, 'ig_grams', s)}*{price}" for s in IGRT} if uses else {},
        currency,
        fmt=rs.money,
    )
    if uses:
        admin = (
            f"{n('c_scig_supplies_month')}*cycle_months"
            if scig
            else f"{n('c_ivig_admin')}*{admins}"
        )
        rows.states(
            o,
            "cost_ig_admin",
            {s: admin for s in IGRT},
            currency,
            "SCIG supplies per month, or IVIG administration per infusion",
            fmt=rs.money,
        )
    else:
        rows.states(o, "cost_ig_admin", {}, currency, fmt=rs.money)


def _monitoring_rows(rows: _Rows, st: Strategy):
    """IgG tests (monthly before IgRT for preemptive strategies, troughs on IgRT), their cost."""
    rs, o = rows.rs, st.strategy
    n = rs.n
    tests = {}
    if st.trigger == "igg_below_threshold":
        tests.update({s: f"cycle_days/{n('q_igg_test_interval_days')}" for s in ("N", "L")})
    if st.uses_igrt:
        tests.update({s: f"cycle_days/{n('q_trough_test_interval_days')}" for s in IGRT})
    rows.states(
        o,
        "igg_tests",
        tests,
        "per cycle",
        "monthly IgG before IgRT (preemptive); trough tests on IgRT",
    )
    rows.states(
        o,
        "cost_monitoring",
        {s: f"{rs.ps_ref(o, 'igg_tests', s)}*{n('c_igg_test')}" for s in ALIVE_SHORT},
        rs.country.currency,
        fmt=rs.money,
    )


def _adverse_event_rows(rows: _Rows, st: Strategy):
    """Infusion reactions and thromboembolic events on IgRT, and their cost."""
    rs, o = rows.rs, st.strategy
    n = rs.n
    if st.uses_igrt:
        if st.is_scig:
            react = f"{n('p_infusion_reaction')}*{n('or_scig_systemic_ae')}*cycle_days/{n('q_ivig_reference_interval_days')}"
            thr = f"{n('r_thromboembolism_ivig')}*{n('or_scig_systemic_ae')}*{CL}"
        else:
            react = f"{n('p_infusion_reaction')}*{_administrations(rs, st)}"
            thr = f"{n('r_thromboembolism_ivig')}*{CL}"
        rows.states(o, "infusion_reactions", {s: react for s in IGRT}, "per cycle")
        rows.states(o, "thromboembolic_events", {s: thr for s in IGRT}, "per cycle")
    else:
        rows.states(o, "infusion_reactions", {}, "per cycle")
        rows.states(o, "thromboembolic_events", {}, "per cycle")
    ae = {
        s: f"{rs.ps_ref(o, 'infusion_reactions', s)}*{n('c_infusion_reaction')}+{rs.ps_ref(o, 'thromboembolic_events', s)}*{n('c_thromboembolism')}"
        for s in IGRT
    }
    rows.states(
        o, "cost_adverse_events", ae if st.uses_igrt else {}, rs.country.currency, fmt=rs.money
    )


def _other_cost_rows(rows: _Rows, st: Strategy):
    """bsAb cost on bsAb and subsequent therapy off bsAb (when the run includes them)."""
    rs, o, spec = rows.rs, st.strategy, rows.rs.spec
    n = rs.n
    bsab = {}
    if spec.include_bsab_costs:
        price = f"{n(f'c_bsab_{spec.bsab_drug}_month')}*{n('p_bsab_price_paid')}"
        bsab = {s: f"{price}*cycle_months" for s in ("N", "L", "I")}
    rows.states(
        o,
        "cost_bsab",
        bsab,
        rs.country.currency,
        f"bsAb ({spec.bsab_drug}) per month on bsAb x share of list price paid",
        fmt=rs.money,
    )
    sub = {}
    if spec.include_subsequent_therapy:
        sub = {s: f"{n('c_subsequent_therapy_month')}*cycle_months" for s in ("OI", "O")}
    rows.states(o, "cost_subsequent_therapy", sub, rs.country.currency, fmt=rs.money)


def _qaly_rows(rows: _Rows, st: Strategy):
    """Life years, utility, process disutility, QALYs before infection losses, years on IgRT."""
    rs, o = rows.rs, st.strategy
    n = rs.n
    rows.states(o, "ly", {s: CL for s in ALIVE_SHORT}, "years")
    util = {s: f"{n('u_on_bsab')}*{CL}" for s in ("N", "L", "I")}
    util.update({s: f"{n('u_off_bsab')}*{CL}" for s in ("OI", "O")})
    rows.states(o, "utility_per_cycle", util, "QALY")
    if st.uses_igrt:
        loss = (
            f"{n('q_qaly_loss_scig_week')}*cycle_days/days_per_week"
            if st.is_scig
            else f"{n('q_qaly_loss_ivig_visit')}*{_administrations(rs, st)}"
        )
        rows.states(
            o,
            "process_disutility",
            {s: loss for s in IGRT},
            "QALY",
            "per SCIG week or per IVIG visit",
        )
    else:
        rows.states(o, "process_disutility", {}, "QALY")
    q = {}
    for s in ALIVE_SHORT:
        q[s] = (
            f"{rs.ps_ref(o, 'utility_per_cycle', s)}-{rs.ps_ref(o, 'infusion_reactions', s)}*{n('q_qaly_loss_infusion_reaction')}"
            f"-{rs.ps_ref(o, 'thromboembolic_events', s)}*{n('q_qaly_loss_thromboembolism')}-{rs.ps_ref(o, 'process_disutility', s)}"
        )
    rows.states(
        o,
        "qaly_before_infections",
        q,
        "QALY",
        "utility x dt - reaction and thrombosis losses - process disutility; infection losses are subtracted per cycle",
    )
    rows.states(o, "years_on_igrt", {s: CL for s in IGRT} if st.uses_igrt else {}, "years")

"""The settings sheet: cycle length, horizon, discount rates, WTP and the model's constants,
each a named cell the formulas use."""

from __future__ import annotations

from cea.analysis.incremental import COLLINEAR_RTOL
from cea.engine.markov import _ANNUAL_STEP_GUARD_YEARS as ANNUAL_STEP_GUARD_YEARS
from cea.igrt.declaration import (
    ADJUSTED_WEIGHT_FACTOR,
    DAYS_PER_WEEK,
    DETECTION_PROB_CAP,
    DEVINE_BASE_HEIGHT_CM,
    DEVINE_BASE_KG,
    DEVINE_KG_PER_CM,
)
from cea.report.sheets.cells import (
    FMT_GENERAL,
    INPUT_FILL,
    finish_sheet,
    put,
    put_formula,
    write_header,
    write_title,
)
from cea.report.sheets.state import ReportState

#: Tolerance of the vial rounding in :func:`cea.igrt.declaration.grams_per_administration` (an exact
#: multiple such as 30.000000001 g is not bumped up to the next vial).
VIAL_ROUNDING_TOLERANCE = 1e-9
#: Months per year (the model's ``cycle_months = dt x 12``).
MONTHS_PER_YEAR = 12.0
#: Relative difference between a workbook total and the engine accepted by the checks sheet.
CHECK_TOLERANCE = 1e-9

#: Settings written as formulas over other settings (named like the others).
FORMULA_SETTINGS = ("cycle_length_years", "cycle_months", "horizon_years")

#: The model's constants: (name, value, unit, note); not meant to be changed.
MODEL_CONSTANTS = (
    ("days_per_week", DAYS_PER_WEEK, "days", "model constant (SCIG process disutility per week)"),
    ("devine_base_kg_male", DEVINE_BASE_KG["male"], "kg", "Devine (1974) ideal body weight at 152.4 cm"),
    ("devine_base_kg_female", DEVINE_BASE_KG["female"], "kg", "Devine (1974)"),
    ("devine_kg_per_cm", DEVINE_KG_PER_CM, "kg per cm", "Devine (1974): 2.3 kg per inch"),
    ("devine_base_height_cm", DEVINE_BASE_HEIGHT_CM, "cm", "Devine (1974): 5 ft"),
    ("adjusted_weight_factor", ADJUSTED_WEIGHT_FACTOR, "", "adjusted weight = IBW + factor x (ABW - IBW)"),
    ("detection_prob_cap", DETECTION_PROB_CAP, "", "largest per-test detection probability (keeps LN finite)"),
    ("vial_rounding_tolerance", VIAL_ROUNDING_TOLERANCE, "", "an exact multiple of the vial size is not rounded up"),
    ("annual_step_guard_years", ANNUAL_STEP_GUARD_YEARS, "years", "whole-year discounting guard (discount_step annual)"),
    ("collinear_rtol", COLLINEAR_RTOL, "", "ICERs equal to this relative tolerance count as equal (extended dominance)"),
    ("check_tolerance", CHECK_TOLERANCE, "", "checks sheet: largest relative difference accepted"),
)  # fmt: skip


def write_settings(rs: ReportState):
    ws = rs.settings = rs.sheet("settings")
    write_title(
        ws,
        "Settings and model constants",
        "Named cells (Formulas > Name Manager). Yellow: settings a reviewer may change; the number of cycles and the correction rule are structural (they decide which rows and weights are written).",
    )
    write_header(ws, 4, ["name", "value", "unit", "note"])
    for i, (name, value, unit, note, editable) in enumerate(_settings_rows(rs)):
        r = 5 + i
        put(ws, r, 1, name)
        fill = INPUT_FILL if editable else None
        if isinstance(value, str) and value.startswith("=") and name in FORMULA_SETTINGS:
            put_formula(ws, r, 2, value[1:], FMT_GENERAL)
        else:
            put(ws, r, 2, value, fill=fill)
        put(ws, r, 3, unit)
        put(ws, r, 4, note)
        if not isinstance(value, str) or name in FORMULA_SETTINGS:
            rs.names.define(name, ws.title, 2, r)
    finish_sheet(ws, {1: 28, 2: 16, 3: 16, 4: 90}, freeze="A5")


def _settings_rows(rs: ReportState) -> list[tuple]:
    """(name, value, unit, note, editable) of every setting, in sheet order."""
    constants = [(name, float(v), unit, note, False) for name, v, unit, note in MODEL_CONSTANTS]
    return _country_rows(rs) + _time_rows(rs) + _discount_rows(rs) + _choice_rows(rs) + constants


def _country_rows(rs: ReportState) -> list[tuple]:
    c = rs.country
    return [
        ("country", c.code, "", c.name, False),
        ("currency", c.currency, "", "local currency of the price year", False),
        (
            "price_year",
            c.price_year,
            "",
            "every price inflated to this year with the country's CPI",
            False,
        ),
    ]


def _time_rows(rs: ReportState) -> list[tuple]:
    spec = rs.spec
    return [
        ("cycle_days", float(spec.cycle_days), "days", "one IVIG interval", True),
        ("days_per_year", float(spec.days_per_year), "days", "", True),
        ("cycle_length_years", "=cycle_days/days_per_year", "years", "dt", False),
        ("months_per_year", MONTHS_PER_YEAR, "months", "unit conversion", False),
        ("cycle_months", "=cycle_length_years*months_per_year", "months", "", False),
        (
            "n_cycles",
            int(rs.T),
            "cycles",
            "structural: one trace row per cycle boundary",
            False,
        ),
        ("horizon_years", "=n_cycles*cycle_length_years", "years", "", False),
    ]


def _discount_rows(rs: ReportState) -> list[tuple]:
    spec = rs.spec
    correction = spec.correction if isinstance(spec.correction, str) else "explicit weights"
    return [
        (
            "correction",
            correction,
            "",
            "within-cycle correction; its weights are in cycles!D (structural)",
            False,
        ),
        (
            "discount_step",
            spec.discount_step,
            "",
            "discount factor formula in cycles!E:F (structural)",
            False,
        ),
        ("discount_rate_costs", float(spec.discount_rate_costs), "per year", "", True),
        (
            "discount_rate_effects",
            float(spec.discount_rate_effects),
            "per year",
            "QALYs, LYs and event counts",
            True,
        ),
        (
            "discount_offset_cycles",
            float(spec.discount_offset_cycles),
            "cycles",
            "trace row t is discounted at (t + offset) cycles",
            True,
        ),
    ]


def _choice_rows(rs: ReportState) -> list[tuple]:
    spec, c = rs.spec, rs.country
    return [
        (
            "wtp_per_qaly",
            float(c.wtp_per_qaly),
            f"{c.currency} per QALY",
            f"willingness to pay ({c.wtp_basis})",
            True,
        ),
        ("bsab_drug", spec.bsab_drug, "", "selects c_bsab_<drug>_month (structural)", False),
        ("include_bsab_costs", str(spec.include_bsab_costs), "", "structural", False),
        (
            "include_subsequent_therapy",
            str(spec.include_subsequent_therapy),
            "",
            "structural",
            False,
        ),
        ("include_end_of_life", str(spec.include_end_of_life), "", "structural", False),
    ]

"""The inputs, prices and strategies sheets: every parameter, unit cost and strategy, as the
named or referenced cells the formulas use."""

from __future__ import annotations

from cea.igrt.calibration import CALIBRATED
from cea.report.sheets.cells import (
    FMT_GENERAL,
    FMT_INT,
    HEADER_FONT,
    INPUT_FILL,
    NOTE_FONT,
    abs_ref,
    clean,
    finish_sheet,
    put,
    put_formula,
    write_header,
    write_title,
)
from cea.report.sheets.state import ReportState

INPUT_COLUMNS = [
    "parameter",
    "value",
    "unit",
    "unit_scale",
    "model_value",
    "model_unit",
    "se",
    "low",
    "high",
    "dist",
    "category",
    "source",
    "evidence",
    "origin",
    "price_year",
    "inflation_factor",
    "note",
]
#: Columns of the inputs sheet copied from the parameter table as they are (from column G).
INPUT_DESCRIPTION = INPUT_COLUMNS[6:]
#: What each rate calibrated by the engine reproduces.
CALIBRATED_NOTES = {
    "r_severe_on_bsab": "severe-infection rate on bsAb with low IgG, so that the no-IgRT 12-month incidence equals p_severe_12m_no_igrt",
    "r_myeloma_death_off_bsab": "myeloma death after bsAb stops, so that the calibration cohort's median OS equals t_target_median_os_months",
}

PRICE_COLUMNS = [
    "item",
    "value",
    "unit",
    "currency",
    "price_year",
    "inflation_factor",
    "value_at_price_year",
    "low",
    "high",
    "se",
    "dist",
    "source",
    "evidence",
    "note",
]

STRATEGY_COLUMNS = [
    "strategy",
    "label",
    "trigger",
    "product",
    "dose_g_per_kg",
    "interval_days",
    "dosing_weight",
    "flat_dose_g",
    "vial_rounding_g",
    "start_after_severe_infection",
    "hr_severe_parameter",
    "source",
    "note",
]
#: Strategy columns a reviewer may change (for strategies that use IgRT).
STRATEGY_EDITABLE = ("dose_g_per_kg", "interval_days", "flat_dose_g", "vial_rounding_g")


# ---------------------------------------------------------------------- inputs
def write_inputs(rs: ReportState):
    ws = rs.inputs = rs.sheet("inputs")
    write_title(
        ws,
        f"Inputs: every parameter of {rs.country.name} ({rs.country.code}), scenario '{rs.ptable.scenario.name}'",
        "value in input units; model_value = value x unit_scale (rates per year, times in years) is the named cell "
        "the formulas use. Prices come from the prices sheet. Yellow: values a reviewer may change.",
    )
    write_header(ws, 4, INPUT_COLUMNS)
    rs.input_row = {}
    r = 5
    for name, rec in rs.ptable.df.iterrows():
        _parameter_row(rs, ws, r, name, rec)
        r += 1
    _calibrated_rows(rs, ws, r + 1)
    finish_sheet(
        ws,
        {1: 32, 2: 14, 3: 26, 4: 10, 5: 14, 6: 18, 10: 10, 11: 14, 12: 60, 13: 9, 14: 26, 17: 60},
        freeze="B5",
    )


def _parameter_row(rs: ReportState, ws, r: int, name: str, rec):
    scale = rs.ptable.unit_scale
    rs.input_row[name] = r
    put(ws, r, 1, name)
    if rec.get("category") == "prices":
        pass  # value filled in write_prices (a reference to the prices sheet)
    else:
        put(ws, r, 2, float(rec["value"]), FMT_GENERAL, fill=INPUT_FILL)
    put(ws, r, 3, rec["unit"])
    put(ws, r, 4, float(scale.get(name, 1.0)), FMT_GENERAL)
    put_formula(ws, r, 5, f"B{r}*D{r}", FMT_GENERAL)
    put(ws, r, 6, _model_unit(name, rec["unit"], scale.get(name, 1.0)))
    for j, key in enumerate(INPUT_DESCRIPTION):
        v = rec.get(key)
        put(
            ws,
            r,
            7 + j,
            v if not isinstance(v, float) else clean(v),
            FMT_GENERAL if key in ("se", "low", "high", "inflation_factor") else None,
        )
    if name not in CALIBRATED:
        rs.names.define(name, ws.title, 5, r)


def _calibrated_rows(rs: ReportState, ws, r: int):
    """The rates calibrated by the engine, below the parameters (from row ``r``)."""
    put(ws, r, 1, "calibrated by the engine (not recomputed in the workbook)", font=HEADER_FONT)
    put(
        ws,
        r + 1,
        1,
        "Changing an input that enters the calibration targets (p_severe_12m_no_igrt, t_target_median_os_months, survival and infection parameters) "
        "does not recalibrate these rates here: rerun `cea run`.",
        font=NOTE_FONT,
    )
    r += 2
    for name in CALIBRATED:
        put(ws, r, 1, name)
        put(ws, r, 2, float(rs.base.calibrated[name]), FMT_GENERAL)
        put(ws, r, 3, "per year")
        put(ws, r, 4, 1.0, FMT_GENERAL)
        put_formula(ws, r, 5, f"B{r}*D{r}", FMT_GENERAL)
        put(ws, r, 6, "per year")
        put(ws, r, 11, "calibrated")
        put(ws, r, 12, "calibrated by the engine (not recomputed in the workbook)")
        put(ws, r, 17, CALIBRATED_NOTES.get(name, ""))
        rs.names.define(name, ws.title, 5, r)
        rs.input_row[name] = r
        r += 1


def _model_unit(name: str, unit: str, scale: float) -> str:
    if name.startswith("r_") and scale != 1.0:
        return "per year"
    if name.startswith("t_") and scale != 1.0:
        return "years"
    return str(unit)


# ---------------------------------------------------------------------- prices
def write_prices(rs: ReportState):
    ws = rs.prices = rs.sheet("prices")
    c = rs.country
    df = rs.ptable.df[rs.ptable.df["category"] == "prices"]
    write_title(
        ws,
        f"Unit costs, {c.name}: {c.currency}, price year {c.price_year}",
        "value: the price used (inflated to the country's price year with its own CPI); value_at_price_year = value / "
        "inflation_factor. Change a value here and every formula follows.",
    )
    write_header(ws, 4, PRICE_COLUMNS)
    for i, (name, rec) in enumerate(df.iterrows()):
        r = 5 + i
        _price_row(rs, ws, r, name, rec)
        put_formula(rs.inputs, rs.input_row[name], 2, abs_ref(ws.title, 2, r), FMT_GENERAL)
    finish_sheet(ws, {1: 30, 2: 16, 3: 32, 12: 60, 14: 60}, freeze="B5")


def _price_row(rs: ReportState, ws, r: int, name: str, rec):
    c = rs.country
    put(ws, r, 1, name)
    put(ws, r, 2, float(rec["value"]), rs.money, fill=INPUT_FILL)
    unit = str(rec["unit"])
    put(ws, r, 3, unit[len(c.currency) + 1 :] if unit.startswith(c.currency + " ") else unit)
    put(ws, r, 4, c.currency)
    put(ws, r, 5, clean(rec["price_year"]), FMT_INT)
    put(ws, r, 6, clean(rec["inflation_factor"]), FMT_GENERAL)
    if clean(rec["inflation_factor"]):
        put_formula(ws, r, 7, f"B{r}/F{r}", rs.money)
    for j, key in enumerate(["low", "high", "se", "dist", "source", "evidence", "note"]):
        put(ws, r, 8 + j, rec.get(key), rs.money if key in ("low", "high", "se") else None)


# ---------------------------------------------------------------------- strategies
def write_strategies(rs: ReportState):
    ws = rs.strat = rs.sheet("strategies")
    write_title(
        ws,
        "Strategies compared",
        "Trigger and product are structural (they decide which formulas are written); dose, interval, flat dose and vial size are referenced by per_state.",
    )
    cols = STRATEGY_COLUMNS
    write_header(ws, 4, cols)
    table = rs.base.inputs.strategies.df.set_index("strategy")
    rs.strategy_col = {name: j + 1 for j, name in enumerate(cols)}
    for i, st in enumerate(rs.strategies):
        r = 5 + i
        rs.strategy_row[st.strategy] = r
        src = table.loc[st.strategy] if st.strategy in table.index else {}
        for j, v in enumerate(_strategy_values(st, src)):
            editable = cols[j] in STRATEGY_EDITABLE
            put(
                ws,
                r,
                j + 1,
                v,
                FMT_GENERAL if isinstance(v, float) else None,
                fill=INPUT_FILL if editable and st.uses_igrt else None,
            )
    finish_sheet(ws, {1: 26, 2: 34, 3: 24, 12: 50, 13: 60}, freeze="B5")


def _strategy_values(st, src) -> list:
    """A strategy's row, in the order of :data:`STRATEGY_COLUMNS`."""
    return [
        st.strategy,
        st.label,
        st.trigger,
        st.product,
        st.dose_g_per_kg,
        st.interval_days,
        st.dosing_weight,
        st.flat_dose_g,
        st.vial_rounding_g,
        str(st.start_after_severe_infection).lower(),
        st.hr_severe_parameter if st.uses_igrt else "",
        src.get("source", ""),
        src.get("note", ""),
    ]

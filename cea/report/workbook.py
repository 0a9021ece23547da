"""report.xlsx: the base case as live spreadsheet formulas a reviewer can recalculate.

The workbook rebuilds the model of :mod:`cea.igrt.model` cell by cell, so that a reviewer (or an
HTA body that asks for an executable model) can change a price, a utility or a rate in the
workbook and see every trace, total and ICER move, without Python:

==================  =====================================================================
``about``           question, country, currency, price year, conventions, provenance,
                    input hashes, CHEERS 2022 items answered and where
``inputs``          every parameter (value, unit, range, distribution, source, evidence)
                    and the two rates calibrated by the engine; each has a defined name
``prices``          the country's unit costs (currency, price year, inflation factor)
``strategies``      the strategies compared (dose, interval, rounding: referenced by the
                    formulas)
``settings``        cycle length, horizon, discount rates, WTP and the model's constants
``life_table``      background mortality hazard by single year of age
``cycles``          per cycle: time, correction weights, discount factors, background
                    mortality, the time-dependent hazards shared by all strategies
``per_state``       per strategy and state: infection rates, resource use, costs and QALYs
                    per person-cycle
``trace_<id>``      one per strategy, both subgroups: hazards, competing risks,
                    transition probabilities, state occupancy, events, costs by category,
                    QALYs and LYs per cycle, totals (undiscounted, discounted, weighted)
``results``         per strategy totals: formulas over the trace sheets
``incremental``     live full incremental analysis (dominance, extended dominance, ICERs,
                    NMB) beside the engine's table
``comparisons``     live named pairwise comparisons
``checks``          the workbook's totals beside the engine's values, with differences
``verification``    optional: the TECH-VER black-box checks (:func:`cea.verify.run_checks`,
                    what ``cea check`` prints), PASS/FAIL with detail and tolerance
``dsa``/``psa_*``   optional tables and native charts (tornado, CEAC, CE plane)
``regional``        optional regional comparison table
==================  =====================================================================

Every number the formulas use is a reference: to a defined name (a parameter such as
``c_ivig_per_g``, a setting such as ``cycle_length_years``) or to a cell of another sheet.
Structural choices (a strategy's trigger and product, the number of cycles, the correction
rule) decide which formulas are written. Text taken from the inputs is always written as
text, never as a formula.

The formulas reproduce :func:`cea.igrt.declaration.declare` and the engine conventions of
:mod:`cea.engine.markov`: competing exits (death, bsAb discontinuation) turned into probabilities
together, internal IgG/IgRT changes among those remaining; state rewards on trace rows with
the within-cycle correction weights; transition rewards (SCIG training on entering IgRT,
infection deaths on flows into ``dead``) counted once and discounted at the end of their
cycle; start rewards at time 0, undiscounted. ``tests/test_excel_reference.py`` recalculates
the workbook with LibreOffice and compares every total with the engine (relative 1e-9).

The writer computes nothing itself: it writes formulas and the engine's results. The command
helper at the end (:func:`write_analysis_report`) runs the base case and the checks
(:mod:`cea.verify`) for ``cea dsa/psa --report xlsx``; ``cea run --report xlsx`` is
:func:`cea.cli.cli_run`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from openpyxl import Workbook
from openpyxl.chart import BarChart, LineChart, Reference, ScatterChart, Series
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter, quote_sheetname
from openpyxl.workbook.defined_name import DefinedName

from cea import __version__
from cea.analysis.incremental import COLLINEAR_RTOL
from cea.engine.markov import _ANNUAL_STEP_GUARD_YEARS as ANNUAL_STEP_GUARD_YEARS
from cea.engine.markov import correction_weights
from cea.errors import CeaError
from cea.igrt.calibration import CALIBRATED
from cea.igrt.declaration import (
    ADJUSTED_WEIGHT_FACTOR,
    DAYS_PER_WEEK,
    DETECTION_PROB_CAP,
    DEVINE_BASE_HEIGHT_CM,
    DEVINE_BASE_KG,
    DEVINE_KG_PER_CM,
)
from cea.igrt.spec import COST_CATEGORIES, COUNTS, EFFECTS, STATES, SUBGROUPS, Strategy
from cea.io.provenance import run_json
from cea.io.workbook import save_workbook
from cea.pipeline.base import describe

#: Tolerance of the vial rounding in :func:`cea.igrt.model.grams_per_administration` (an exact
#: multiple such as 30.000000001 g is not bumped up to the next vial).
VIAL_ROUNDING_TOLERANCE = 1e-9
#: Months per year (the model's ``cycle_months = dt x 12``).
MONTHS_PER_YEAR = 12.0
#: Largest number of draws per series drawn on the CE plane chart (the table holds them all).
CE_PLANE_MAX_POINTS = 5000
#: Relative difference between a workbook total and the engine accepted by the checks sheet.
CHECK_TOLERANCE = 1e-9
#: Columns of the verification sheet (:data:`cea.verify.CHECK_COLUMNS`); ``passed`` as PASS/FAIL.
VERIFICATION_COLUMNS = ["check", "passed", "detail", "tolerance"]

SHORT = ("N", "L", "I", "OI", "O", "D")  # column codes of the six states, in STATES order
ALIVE_SHORT = SHORT[:5]
STATE_OF = dict(zip(SHORT, STATES, strict=True))
REWARD_NAMES = COST_CATEGORIES + EFFECTS + COUNTS
EFFECT_NAMES = set(EFFECTS + COUNTS)  # discounted at the effects rate (engine: effects=...)

# Styles
TITLE_FONT = Font(bold=True, size=13)
HEADER_FONT = Font(bold=True)
NOTE_FONT = Font(italic=True, color="555555")
HEADER_FILL = PatternFill("solid", fgColor="DDE5F0")
TOTAL_FILL = PatternFill("solid", fgColor="F2F2F2")
INPUT_FILL = PatternFill("solid", fgColor="FFF2CC")  # cells a reviewer may change
FAIL_FILL = PatternFill("solid", fgColor="F8CBAD")  # a verification check that failed
WRAP = Alignment(wrap_text=True, vertical="top")

FMT_PROB = "0.000000"
FMT_SMALL = "0.000000"
FMT_QALY = "0.000000"
FMT_INT = "0"
FMT_GENERAL = "General"
FMT_RATE = "0.0000%"

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CELL_LIKE = re.compile(r"^([A-Za-z]{1,3}\d+|[Rr]\d*[Cc]\d*)$")
_SHEET_BAD = re.compile(r"[^a-z0-9_]+")
SHEET_NAME_MAX = 31


def _money_format(currency: str, decimals: int = 2) -> str:
    digits = "0." + "0" * decimals if decimals else "0"
    code = re.sub(r"[^A-Za-z]", "", currency)[:3] or "LCU"
    return f'#,##{digits} "{code}"'


def snake_sheet_name(text: str, prefix: str = "", used: set[str] | None = None) -> str:
    """A snake_case sheet name of at most 31 characters, unique within ``used``."""
    base = _SHEET_BAD.sub("_", f"{prefix}{text}".lower()).strip("_") or "sheet"
    name = base[:SHEET_NAME_MAX]
    k = 2
    while used is not None and name in used:
        suffix = f"_{k}"
        name = base[: SHEET_NAME_MAX - len(suffix)] + suffix
        k += 1
    if used is not None:
        used.add(name)
    return name


def _clean(value):
    """numpy scalars to Python; NaN/inf and pandas NA to None (not storable in xlsx)."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def put(ws, row: int, col: int, value, fmt: str | None = None, font=None, fill=None):
    """Write a value. Strings are always text, never formulas (``=``, ``+``, ``-``, ``@``)."""
    cell = ws.cell(row=row, column=col)
    value = _clean(value)
    if isinstance(value, str):
        cell.value = value
        cell.data_type = "s"  # an input text such as "=HYPERLINK(...)" stays text
    else:
        cell.value = value
    if fmt:
        cell.number_format = fmt
    if font is not None:
        cell.font = font
    if fill is not None:
        cell.fill = fill
    return cell


def put_formula(ws, row: int, col: int, formula: str, fmt: str | None = None, font=None, fill=None):
    """Write a formula built by this module (``formula`` without the leading '=')."""
    cell = ws.cell(row=row, column=col)
    cell.value = "=" + formula
    if fmt:
        cell.number_format = fmt
    if font is not None:
        cell.font = font
    if fill is not None:
        cell.fill = fill
    return cell


def _sheet_ref(sheet: str) -> str:
    """A sheet name as a formula writes it: quoted only when it must be."""
    if _NAME_RE.match(sheet) and not _CELL_LIKE.match(sheet):
        return sheet
    return quote_sheetname(sheet)


def _abs(sheet: str, col: int, row: int) -> str:
    return f"{_sheet_ref(sheet)}!${get_column_letter(col)}${row}"


def _header(ws, row: int, names, start_col: int = 1):
    for j, name in enumerate(names):
        put(ws, row, start_col + j, name, font=HEADER_FONT, fill=HEADER_FILL)


def _title(ws, title: str, note: str = ""):
    put(ws, 1, 1, title, font=TITLE_FONT)
    if note:
        put(ws, 2, 1, note, font=NOTE_FONT)


def _finish(
    ws,
    widths: Mapping[int, float] | None = None,
    freeze: str | None = None,
    default_width: float = 12,
):
    ws.sheet_view.showGridLines = False
    if freeze:
        ws.freeze_panes = freeze
    for col in range(1, ws.max_column + 1):
        ws.column_dimensions[get_column_letter(col)].width = (widths or {}).get(col, default_width)


@dataclass
class _Names:
    """Defined names of the workbook: parameter/setting -> absolute cell reference."""

    wb: Workbook
    cells: dict[str, str] = field(default_factory=dict)
    _lower: set[str] = field(default_factory=set)

    def define(
        self, name: str, sheet: str, col: int, row: int, last_row: int | None = None
    ) -> None:
        ref = _abs(sheet, col, row)
        if last_row is not None:
            ref = f"{ref}:${get_column_letter(col)}${last_row}"
        self.cells[name] = ref
        if _NAME_RE.match(name) and "_" in name and name.lower() not in self._lower:
            self._lower.add(name.lower())
            self.wb.defined_names[name] = DefinedName(name, attr_text=ref)
        else:  # not usable as an Excel name: formulas use the cell reference instead
            self.cells[name] = ref

    def __call__(self, name: str) -> str:
        """What a formula writes for ``name``: the defined name, else the cell reference."""
        if name not in self.cells:
            raise CeaError(
                f"report: the workbook has no cell for '{name}' (not in the parameter table)"
            )
        if name in self.wb.defined_names:
            return name
        return self.cells[name]


# =========================================================================== the workbook


class _ReportWriter:
    """Builds report.xlsx from a :class:`cea.pipeline.base.BaseCase`."""

    def __init__(self, base, command: str):
        self.base = base
        self.command = command
        self.spec = base.spec
        self.ptable = base.ptable
        self.country = base.country
        self.T = self.spec.n_cycles
        self.wb = Workbook()
        self.names = _Names(self.wb)
        self.money = _money_format(self.country.currency)
        self.money0 = _money_format(self.country.currency, 0)
        self.used_sheets: set[str] = set()
        self.strategies: list[Strategy] = list(self.spec.strategies)
        self.trace_sheet: dict[str, str] = {}
        self.strategy_row: dict[str, int] = {}
        self.results_row: dict[str, int] = {}
        self.results_col: dict[str, int] = {}
        self.ps: dict[tuple[str, str], int] = {}  # (strategy or "all", quantity) -> per_state row

    # ------------------------------------------------------------------ helpers
    def sheet(self, name: str):
        name = snake_sheet_name(name, used=self.used_sheets)
        if (
            len(self.wb.sheetnames) == 1
            and self.wb.active.title == "Sheet"
            and self.wb.active.max_row == 1
        ):
            ws = self.wb.active
            ws.title = name
        else:
            ws = self.wb.create_sheet(name)
        return ws

    def n(self, name: str) -> str:
        return self.names(name)

    # ------------------------------------------------------------------ build
    def build(
        self, dsa=None, psa=None, regional=None, verification=None, verification_note=""
    ) -> Workbook:
        self.about = self.sheet("about")
        self.write_settings()
        self.write_inputs()
        self.write_prices()
        self.write_strategies()
        self.write_life_table()
        self.write_cycles()
        self.write_per_state()
        for st in self.strategies:
            self.write_trace(st)
        self.write_results()
        self.write_incremental()
        self.write_comparisons()
        self.write_checks()
        if verification is not None:
            self.write_verification(verification, verification_note)
        extra = []
        if dsa is not None:
            extra += self.write_dsa(dsa)
        if psa is not None:
            extra += self.write_psa(psa)
        if regional is not None:
            extra += self.write_regional(regional)
        self.write_about(extra)
        order = [
            "about",
            "inputs",
            "prices",
            "strategies",
            "settings",
            "results",
            "incremental",
            "comparisons",
            "checks",
            "verification",
        ]
        order += extra
        order += ["per_state", "cycles", "life_table"] + [
            self.trace_sheet[s.strategy] for s in self.strategies
        ]
        self.wb._sheets.sort(
            key=lambda ws: order.index(ws.title) if ws.title in order else len(order)
        )
        self.wb.active = 0
        self.wb.calculation.fullCalcOnLoad = True
        return self.wb

    # ------------------------------------------------------------------ settings
    def write_settings(self):
        ws = self.settings = self.sheet("settings")
        spec, c = self.spec, self.country
        _title(
            ws,
            "Settings and model constants",
            "Named cells (Formulas > Name Manager). Yellow: settings a reviewer may change; the number of cycles and the correction rule are structural (they decide which rows and weights are written).",
        )
        _header(ws, 4, ["name", "value", "unit", "note"])
        correction = spec.correction if isinstance(spec.correction, str) else "explicit weights"
        rows = [
            ("country", c.code, "", c.name, False),
            ("currency", c.currency, "", "local currency of the price year", False),
            (
                "price_year",
                c.price_year,
                "",
                "every price inflated to this year with the country's CPI",
                False,
            ),
            ("cycle_days", float(spec.cycle_days), "days", "one IVIG interval", True),
            ("days_per_year", float(spec.days_per_year), "days", "", True),
            ("cycle_length_years", "=cycle_days/days_per_year", "years", "dt", False),
            ("months_per_year", MONTHS_PER_YEAR, "months", "unit conversion", False),
            ("cycle_months", "=cycle_length_years*months_per_year", "months", "", False),
            (
                "n_cycles",
                int(self.T),
                "cycles",
                "structural: one trace row per cycle boundary",
                False,
            ),
            ("horizon_years", "=n_cycles*cycle_length_years", "years", "", False),
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
            (
                "days_per_week",
                float(DAYS_PER_WEEK),
                "days",
                "model constant (SCIG process disutility per week)",
                False,
            ),
            (
                "devine_base_kg_male",
                float(DEVINE_BASE_KG["male"]),
                "kg",
                "Devine (1974) ideal body weight at 152.4 cm",
                False,
            ),
            (
                "devine_base_kg_female",
                float(DEVINE_BASE_KG["female"]),
                "kg",
                "Devine (1974)",
                False,
            ),
            (
                "devine_kg_per_cm",
                float(DEVINE_KG_PER_CM),
                "kg per cm",
                "Devine (1974): 2.3 kg per inch",
                False,
            ),
            (
                "devine_base_height_cm",
                float(DEVINE_BASE_HEIGHT_CM),
                "cm",
                "Devine (1974): 5 ft",
                False,
            ),
            (
                "adjusted_weight_factor",
                float(ADJUSTED_WEIGHT_FACTOR),
                "",
                "adjusted weight = IBW + factor x (ABW - IBW)",
                False,
            ),
            (
                "detection_prob_cap",
                float(DETECTION_PROB_CAP),
                "",
                "largest per-test detection probability (keeps LN finite)",
                False,
            ),
            (
                "vial_rounding_tolerance",
                float(VIAL_ROUNDING_TOLERANCE),
                "",
                "an exact multiple of the vial size is not rounded up",
                False,
            ),
            (
                "annual_step_guard_years",
                float(ANNUAL_STEP_GUARD_YEARS),
                "years",
                "whole-year discounting guard (discount_step annual)",
                False,
            ),
            (
                "collinear_rtol",
                float(COLLINEAR_RTOL),
                "",
                "ICERs equal to this relative tolerance count as equal (extended dominance)",
                False,
            ),
            (
                "check_tolerance",
                float(CHECK_TOLERANCE),
                "",
                "checks sheet: largest relative difference accepted",
                False,
            ),
        ]
        for i, (name, value, unit, note, editable) in enumerate(rows):
            r = 5 + i
            put(ws, r, 1, name)
            fill = INPUT_FILL if editable else None
            if (
                isinstance(value, str)
                and value.startswith("=")
                and name in ("cycle_length_years", "cycle_months", "horizon_years")
            ):
                put_formula(ws, r, 2, value[1:], FMT_GENERAL)
            else:
                put(ws, r, 2, value, fill=fill)
            put(ws, r, 3, unit)
            put(ws, r, 4, note)
            if not isinstance(value, str) or name in (
                "cycle_length_years",
                "cycle_months",
                "horizon_years",
            ):
                self.names.define(name, ws.title, 2, r)
        _finish(ws, {1: 28, 2: 16, 3: 16, 4: 90}, freeze="A5")

    # ------------------------------------------------------------------ inputs
    def write_inputs(self):
        ws = self.inputs = self.sheet("inputs")
        df = self.ptable.df
        _title(
            ws,
            f"Inputs: every parameter of {self.country.name} ({self.country.code}), scenario '{self.ptable.scenario.name}'",
            "value in input units; model_value = value x unit_scale (rates per year, times in years) is the named cell "
            "the formulas use. Prices come from the prices sheet. Yellow: values a reviewer may change.",
        )
        cols = [
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
        _header(ws, 4, cols)
        scale = self.ptable.unit_scale
        self.input_row: dict[str, int] = {}
        r = 5
        for name, rec in df.iterrows():
            self.input_row[name] = r
            put(ws, r, 1, name)
            if rec.get("category") == "prices":
                pass  # value filled in write_prices (a reference to the prices sheet)
            else:
                put(ws, r, 2, float(rec["value"]), FMT_GENERAL, fill=INPUT_FILL)
            put(ws, r, 3, rec["unit"])
            put(ws, r, 4, float(scale.get(name, 1.0)), FMT_GENERAL)
            put_formula(ws, r, 5, f"B{r}*D{r}", FMT_GENERAL)
            put(ws, r, 6, _model_unit(name, rec["unit"], scale.get(name, 1.0)))
            for j, key in enumerate(
                [
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
            ):
                v = rec.get(key)
                put(
                    ws,
                    r,
                    7 + j,
                    v if not isinstance(v, float) else _clean(v),
                    FMT_GENERAL if key in ("se", "low", "high", "inflation_factor") else None,
                )
            if name not in CALIBRATED:
                self.names.define(name, ws.title, 5, r)
            r += 1
        r += 1
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
        notes = {
            "r_severe_on_bsab": "severe-infection rate on bsAb with low IgG, so that the no-IgRT 12-month incidence equals p_severe_12m_no_igrt",
            "r_myeloma_death_off_bsab": "myeloma death after bsAb stops, so that the calibration cohort's median OS equals t_target_median_os_months",
        }
        for name in CALIBRATED:
            put(ws, r, 1, name)
            put(ws, r, 2, float(self.base.calibrated[name]), FMT_GENERAL)
            put(ws, r, 3, "per year")
            put(ws, r, 4, 1.0, FMT_GENERAL)
            put_formula(ws, r, 5, f"B{r}*D{r}", FMT_GENERAL)
            put(ws, r, 6, "per year")
            put(ws, r, 11, "calibrated")
            put(ws, r, 12, "calibrated by the engine (not recomputed in the workbook)")
            put(ws, r, 17, notes.get(name, ""))
            self.names.define(name, ws.title, 5, r)
            self.input_row[name] = r
            r += 1
        _finish(
            ws,
            {
                1: 32,
                2: 14,
                3: 26,
                4: 10,
                5: 14,
                6: 18,
                10: 10,
                11: 14,
                12: 60,
                13: 9,
                14: 26,
                17: 60,
            },
            freeze="B5",
        )

    # ------------------------------------------------------------------ prices
    def write_prices(self):
        ws = self.prices = self.sheet("prices")
        c = self.country
        df = self.ptable.df[self.ptable.df["category"] == "prices"]
        _title(
            ws,
            f"Unit costs, {c.name}: {c.currency}, price year {c.price_year}",
            "value: the price used (inflated to the country's price year with its own CPI); value_at_price_year = value / "
            "inflation_factor. Change a value here and every formula follows.",
        )
        cols = [
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
        _header(ws, 4, cols)
        for i, (name, rec) in enumerate(df.iterrows()):
            r = 5 + i
            put(ws, r, 1, name)
            put(ws, r, 2, float(rec["value"]), self.money, fill=INPUT_FILL)
            unit = str(rec["unit"])
            put(
                ws, r, 3, unit[len(c.currency) + 1 :] if unit.startswith(c.currency + " ") else unit
            )
            put(ws, r, 4, c.currency)
            put(ws, r, 5, _clean(rec["price_year"]), FMT_INT)
            put(ws, r, 6, _clean(rec["inflation_factor"]), FMT_GENERAL)
            if _clean(rec["inflation_factor"]):
                put_formula(ws, r, 7, f"B{r}/F{r}", self.money)
            for j, key in enumerate(["low", "high", "se", "dist", "source", "evidence", "note"]):
                put(
                    ws, r, 8 + j, rec.get(key), self.money if key in ("low", "high", "se") else None
                )
            put_formula(self.inputs, self.input_row[name], 2, _abs(ws.title, 2, r), FMT_GENERAL)
        _finish(ws, {1: 30, 2: 16, 3: 32, 12: 60, 14: 60}, freeze="B5")

    # ------------------------------------------------------------------ strategies
    def write_strategies(self):
        ws = self.strat = self.sheet("strategies")
        _title(
            ws,
            "Strategies compared",
            "Trigger and product are structural (they decide which formulas are written); dose, interval, flat dose and vial size are referenced by per_state.",
        )
        cols = [
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
        _header(ws, 4, cols)
        table = self.base.inputs.strategies.df.set_index("strategy")
        self.strategy_col = {name: j + 1 for j, name in enumerate(cols)}
        for i, st in enumerate(self.strategies):
            r = 5 + i
            self.strategy_row[st.strategy] = r
            src = table.loc[st.strategy] if st.strategy in table.index else {}
            values = [
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
            for j, v in enumerate(values):
                editable = cols[j] in (
                    "dose_g_per_kg",
                    "interval_days",
                    "flat_dose_g",
                    "vial_rounding_g",
                )
                put(
                    ws,
                    r,
                    j + 1,
                    v,
                    FMT_GENERAL if isinstance(v, float) else None,
                    fill=INPUT_FILL if editable and st.uses_igrt else None,
                )
        _finish(ws, {1: 26, 2: 34, 3: 24, 12: 50, 13: 60}, freeze="B5")

    def st_cell(self, st: Strategy, col: str) -> str:
        return _abs(self.strat.title, self.strategy_col[col], self.strategy_row[st.strategy])

    # ------------------------------------------------------------------ life table
    def write_life_table(self):
        ws = self.life = self.sheet("life_table")
        c = self.country
        mx = np.asarray(c.mx_by_age, float)
        _title(
            ws,
            f"Background mortality, {c.name} ({c.life_table_sex}): hazard mx per year by single year of age",
            "From life_tables.csv (UN WPP 2024); ages below the table's first age take its first value; ages above the last take the last.",
        )
        _header(ws, 4, ["age", "mx_per_year"])
        for a, value in enumerate(mx):
            put(ws, 5 + a, 1, a, FMT_INT)
            put(ws, 5 + a, 2, float(value), FMT_GENERAL, fill=INPUT_FILL)
        self.names.define("mx_by_age", ws.title, 2, 5, 5 + len(mx) - 1)
        _finish(ws, {1: 8, 2: 14}, freeze="A5")

    # ------------------------------------------------------------------ cycles
    CYC_FIRST = 5
    CYC = {  # column of each per-cycle quantity on the cycles sheet
        "cycle": 1,
        "t0": 2,
        "t1": 3,
        "wcc": 4,
        "disc_costs": 5,
        "disc_effects": 6,
        "age": 7,
        "mx": 8,
        "h_background": 9,
        "f_infection": 10,
        "log_surv_igg": 11,
        "surv_igg": 12,
        "h_igg_decline": 13,
        "low_igg_share": 14,
        "igrt_infection_mix": 15,
        "h_discontinuation": 16,
    }

    def cyc(self, key: str, t: int) -> str:
        return _abs("cycles", self.CYC[key], self.CYC_FIRST + t)

    def write_cycles(self):
        ws = self.cycles = self.sheet("cycles")
        spec, T = self.spec, self.T
        assert ws.title == "cycles"
        _title(
            ws,
            "Per cycle, shared by every strategy: time, correction weights, discount factors, time-dependent hazards",
            "Row t is the cohort at time t x dt; cycle t runs from row t to row t + 1. Hazards are cumulative over the cycle. "
            "surv_igg: share whose IgG is not yet low (cure fraction); low_igg_share: its complement averaged over the cycle; "
            "igrt_infection_mix: untreated infection rate of a primary/secondary patient on IgRT relative to low IgG. "
            "The last row's infection values repeat the last cycle's (rewards of the last row use the last cycle).",
        )
        _header(ws, 4, list(self.CYC))
        weights = correction_weights(spec.correction, T)
        step = spec.discount_step
        for t in range(T + 1):
            r = self.CYC_FIRST + t
            put(ws, r, 1, t, FMT_INT)
            put_formula(ws, r, 2, f"A{r}*cycle_length_years", FMT_SMALL)
            if t < T:
                put_formula(ws, r, 3, f"B{r + 1}", FMT_SMALL)
            put(ws, r, 4, float(weights[t]), FMT_GENERAL)
            for col, rate in ((5, "discount_rate_costs"), (6, "discount_rate_effects")):
                put_formula(ws, r, col, _discount_formula(step, rate, f"A{r}"), FMT_SMALL)
            pi, lam = self.n("p_igg_low_ever"), self.n("r_igg_decline")
            if t < T:
                put_formula(ws, r, 7, f"{self.n('q_start_age_years')}+B{r}", FMT_SMALL)
                put_formula(
                    ws,
                    r,
                    8,
                    f"INDEX(mx_by_age,MIN(MAX(INT(G{r}),0),ROWS(mx_by_age)-1)+1)",
                    FMT_GENERAL,
                )
                put_formula(ws, r, 9, f"H{r}*cycle_length_years", FMT_GENERAL)
                a = self.n("t_infection_hazard_anchor_months")
                k = self.n("k_infection_hazard_shape")
                put_formula(
                    ws, r, 10, f"{a}*((C{r}/{a})^{k}-(B{r}/{a})^{k})/cycle_length_years", FMT_SMALL
                )
                # cure fraction S(t) = 1 - pi + pi exp(-lam t); pi = 1 is a plain exponential
                put_formula(ws, r, 13, f"IF({pi}<1,K{r}-K{r + 1},{lam}*(C{r}-B{r}))", FMT_GENERAL)
                put_formula(ws, r, 14, f"1-(L{r}+L{r + 1})/2", FMT_GENERAL)
                put_formula(
                    ws, r, 15, f"{self.n('rr_infection_igg_normal')}*(1-N{r})+N{r}", FMT_GENERAL
                )
                m, k = self.n("t_median_tot_months"), self.n("k_tot_weibull_shape")
                put_formula(ws, r, 16, f"LN(2)*((C{r}/{m})^{k}-(B{r}/{m})^{k})", FMT_GENERAL)
            else:  # the last row's rewards use the last cycle's values (engine reward_alignment)
                for col in (10, 14, 15):
                    L = get_column_letter(col)
                    put_formula(ws, r, col, f"{L}{r - 1}", FMT_SMALL)
            put_formula(ws, r, 11, f'IF({pi}<1,LN(1+{pi}*(EXP(-{lam}*B{r})-1)),"")', FMT_GENERAL)
            put_formula(ws, r, 12, f"1+{pi}*(EXP(-{lam}*B{r})-1)", FMT_GENERAL)
        _finish(ws, {1: 7}, freeze="B5", default_width=14)

    # ------------------------------------------------------------------ per state
    PS_STATE_COL = 5  # per_state columns E..I: the five alive states

    def ps_ref(self, owner: str, qty: str, state: str | None = None) -> str:
        r = self.ps[(owner, qty)]
        col = 4 if state is None else self.PS_STATE_COL + ALIVE_SHORT.index(state)
        return _abs("per_state", col, r)

    def ps_row_range(self, owner: str, qty: str) -> str:
        r = self.ps[(owner, qty)]
        a, b = get_column_letter(self.PS_STATE_COL), get_column_letter(self.PS_STATE_COL + 4)
        return f"per_state!${a}${r}:${b}${r}"

    def write_per_state(self):
        ws = self.per_state = self.sheet("per_state")
        assert ws.title == "per_state"
        n = self.n
        spec = self.spec
        _title(
            ws,
            "Per strategy: rates and rewards per person-cycle in each state (constant over time)",
            "value: a scalar; state columns: per person per cycle spent in that state. Infection events per cycle are "
            "multiplied by cycles!J (infection hazard multiplier) on the trace sheets.",
        )
        _header(ws, 4, ["strategy", "quantity", "unit", "value", *STATES[:5], "how"])
        r = 5

        def scalar(owner, qty, formula, unit="", how="", fmt=FMT_GENERAL):
            nonlocal r
            put(ws, r, 1, owner)
            put(ws, r, 2, qty)
            put(ws, r, 3, unit)
            put_formula(ws, r, 4, formula, fmt)
            put(ws, r, 10, how)
            self.ps[(owner, qty)] = r
            r += 1

        def states(owner, qty, formulas: Mapping[str, str], unit="", how="", fmt=FMT_GENERAL):
            nonlocal r
            put(ws, r, 1, owner)
            put(ws, r, 2, qty)
            put(ws, r, 3, unit)
            for j, s in enumerate(ALIVE_SHORT):
                f = formulas.get(s)
                if f is None:
                    put(ws, r, self.PS_STATE_COL + j, 0.0, fmt)
                else:
                    put_formula(ws, r, self.PS_STATE_COL + j, f, fmt)
            put(ws, r, 10, how)
            self.ps[(owner, qty)] = r
            r += 1

        cl = "cycle_length_years"
        scalar(
            "all",
            "myeloma_death_on_bsab_per_year",
            f"-LN(1-{n('p_nrm_12m')}*(1-{n('p_nrm_infection_share')}))",
            "per year",
            "non-infection non-relapse mortality at 12 months as a hazard: -ln(1 - p_nrm_12m x (1 - p_nrm_infection_share))",
        )
        scalar(
            "all",
            "igrt_stop_hazard_per_cycle",
            f"LN(2)/{n('t_median_igrt_after_bsab_months')}*{cl}",
            "per cycle",
            "IgRT stops after bsAb: ln 2 / median x dt",
        )
        mu_on = self.ps_ref("all", "myeloma_death_on_bsab_per_year")
        mu_off = n("r_myeloma_death_off_bsab")
        hr_os = n("hr_igrt_os")
        r += 1
        for st in self.strategies:
            o = st.strategy
            put(ws, r, 1, f"{o}: {st.label}", font=HEADER_FONT)
            r += 1
            uses, scig = st.uses_igrt, st.is_scig
            if uses:
                if st.dosing_weight != "flat":
                    abw = n("q_body_weight_kg")
                    above = f"({n('q_height_cm')}-devine_base_height_cm)"
                    male = n("p_male")
                    ibw = (
                        f"{male}*(devine_base_kg_male+devine_kg_per_cm*{above})"
                        f"+(1-{male})*(devine_base_kg_female+devine_kg_per_cm*{above})"
                    )
                    weight = {"actual": abw, "ideal": ibw}.get(st.dosing_weight)
                    if st.dosing_weight == "adjusted":
                        scalar(
                            o,
                            "ideal_body_weight_kg",
                            ibw,
                            "kg",
                            "Devine: male share x (50 + 0.906 x (height - 152.4)) + female share x (45.5 + ...)",
                        )
                        ibw_ref = self.ps_ref(o, "ideal_body_weight_kg")
                        weight = f"{ibw_ref}+adjusted_weight_factor*({abw}-{ibw_ref})"
                    if weight is None:
                        raise CeaError(
                            f"report: strategy '{o}': unknown dosing_weight '{st.dosing_weight}'"
                        )
                    scalar(
                        o, "dosing_weight_kg", weight, "kg", f"dosing weight: {st.dosing_weight}"
                    )
                    grams = (
                        f"{self.st_cell(st, 'dose_g_per_kg')}*{self.ps_ref(o, 'dosing_weight_kg')}"
                    )
                else:
                    grams = self.st_cell(st, "flat_dose_g")
                if scig:
                    grams = f"{grams}*{n('q_scig_conversion')}"
                if st.vial_rounding_g > 0:
                    scalar(o, "grams_per_administration_unrounded", grams, "g")
                    step = self.st_cell(st, "vial_rounding_g")
                    raw = self.ps_ref(o, "grams_per_administration_unrounded")
                    grams = f"-INT(-({raw}/{step}-vial_rounding_tolerance))*{step}"
                scalar(
                    o,
                    "grams_per_administration",
                    grams,
                    "g",
                    "dose x dosing weight (x SCIG conversion), rounded up to the vial size",
                )
                scalar(
                    o,
                    "administrations_per_cycle",
                    f"cycle_days/{self.st_cell(st, 'interval_days')}",
                    "per cycle",
                )
                hr_sev = n(st.hr_severe_parameter)
                hr_ns = n("hr_igrt_nonsevere")
                if scig:
                    hr_sev, hr_ns = (
                        f"{hr_sev}*{n('rr_scig_vs_ivig')}",
                        f"{hr_ns}*{n('rr_scig_vs_ivig')}",
                    )
                scalar(
                    o,
                    "hr_severe_on_igrt",
                    hr_sev,
                    "ratio",
                    f"{st.hr_severe_parameter}" + (" x rr_scig_vs_ivig" if scig else ""),
                )
                scalar(
                    o,
                    "hr_nonsevere_on_igrt",
                    hr_ns,
                    "ratio",
                    "hr_igrt_nonsevere" + (" x rr_scig_vs_ivig" if scig else ""),
                )
            if st.trigger == "igg_below_threshold":
                scalar(
                    o,
                    "igg_tests_per_cycle_before_igrt",
                    f"cycle_days/{n('q_igg_test_interval_days')}",
                    "per cycle",
                )
                tests = self.ps_ref(o, "igg_tests_per_cycle_before_igrt")
                for sg in SUBGROUPS:
                    s = n("p_assay_sensitivity")
                    if sg == "igg_isotype":
                        s = f"{s}*(1-{n('p_masked_igg_isotype')})"
                    scalar(
                        o,
                        f"detection_hazard_per_cycle_{sg}",
                        f"-{tests}*LN(1-MIN({s},detection_prob_cap))",
                        "per cycle",
                        "P(detect) per cycle = 1 - (1 - s)^tests as a cumulative hazard"
                        + (" (s x (1 - p_masked) for IgG isotype)" if sg == "igg_isotype" else ""),
                    )
            admins = self.ps_ref(o, "administrations_per_cycle") if uses else None
            rs, roff = n("r_severe_on_bsab"), n("r_severe_off_bsab")
            hs = self.ps_ref(o, "hr_severe_on_igrt") if uses else None
            sev = {
                "N": f"{rs}*{n('rr_infection_igg_normal')}*{cl}",
                "L": f"{rs}*{cl}",
                "I": f"{rs}*{hs}*{cl}" if uses else f"{rs}*{cl}",
                "OI": f"{roff}*{hs}*{cl}" if uses else f"{roff}*{cl}",
                "O": f"{roff}*{cl}",
            }
            states(
                o,
                "severe_infections_per_cycle_base",
                sev,
                "per person-cycle",
                "rate per year x dt; x cycles!J (infection multiplier) on the trace sheets, and on IgRT x cycles!O for primary/secondary strategies",
            )
            rn, rnoff = n("r_nonsevere_on_bsab"), n("r_nonsevere_off_bsab")
            hn = self.ps_ref(o, "hr_nonsevere_on_igrt") if uses else None
            ns = {
                "N": f"{rn}*{n('rr_infection_igg_normal')}*{cl}",
                "L": f"{rn}*{cl}",
                "I": f"{rn}*{hn}*{cl}" if uses else f"{rn}*{cl}",
                "OI": f"{rnoff}*{hn}*{cl}" if uses else f"{rnoff}*{cl}",
                "O": f"{rnoff}*{cl}",
            }
            states(o, "nonsevere_infections_per_cycle_base", ns, "per person-cycle")
            states(
                o,
                "myeloma_death_hazard_per_cycle",
                {
                    "N": f"{mu_on}*{cl}",
                    "L": f"{mu_on}*{cl}",
                    "I": f"{mu_on}*{hr_os}*{cl}",
                    "OI": f"{mu_off}*{hr_os}*{cl}",
                    "O": f"{mu_off}*{cl}",
                },
                "per cycle",
                "myeloma (non-infection) death; background and infection death are added per cycle",
            )
            igrt = ("I", "OI")
            grams_ref = self.ps_ref(o, "grams_per_administration") if uses else None
            states(
                o,
                "ig_grams",
                {s: f"{grams_ref}*{admins}" for s in igrt} if uses else {},
                "g per cycle",
            )
            states(o, "infusions", {s: admins for s in igrt} if uses else {}, "per cycle")
            price = n("c_scig_per_g") if scig else n("c_ivig_per_g")
            states(
                o,
                "cost_ig",
                {s: f"{self.ps_ref(o, 'ig_grams', s)}*{price}" for s in igrt} if uses else {},
                self.country.currency,
                fmt=self.money,
            )
            if uses:
                admin = (
                    f"{n('c_scig_supplies_month')}*cycle_months"
                    if scig
                    else f"{n('c_ivig_admin')}*{admins}"
                )
                states(
                    o,
                    "cost_ig_admin",
                    {s: admin for s in igrt},
                    self.country.currency,
                    "SCIG supplies per month, or IVIG administration per infusion",
                    fmt=self.money,
                )
            else:
                states(o, "cost_ig_admin", {}, self.country.currency, fmt=self.money)
            tests = {}
            if st.trigger == "igg_below_threshold":
                tests.update({s: f"cycle_days/{n('q_igg_test_interval_days')}" for s in ("N", "L")})
            if uses:
                tests.update({s: f"cycle_days/{n('q_trough_test_interval_days')}" for s in igrt})
            states(
                o,
                "igg_tests",
                tests,
                "per cycle",
                "monthly IgG before IgRT (preemptive); trough tests on IgRT",
            )
            states(
                o,
                "cost_monitoring",
                {s: f"{self.ps_ref(o, 'igg_tests', s)}*{n('c_igg_test')}" for s in ALIVE_SHORT},
                self.country.currency,
                fmt=self.money,
            )
            if uses:
                if scig:
                    react = f"{n('p_infusion_reaction')}*{n('or_scig_systemic_ae')}*cycle_days/{n('q_ivig_reference_interval_days')}"
                    thr = f"{n('r_thromboembolism_ivig')}*{n('or_scig_systemic_ae')}*{cl}"
                else:
                    react = f"{n('p_infusion_reaction')}*{admins}"
                    thr = f"{n('r_thromboembolism_ivig')}*{cl}"
                states(o, "infusion_reactions", {s: react for s in igrt}, "per cycle")
                states(o, "thromboembolic_events", {s: thr for s in igrt}, "per cycle")
            else:
                states(o, "infusion_reactions", {}, "per cycle")
                states(o, "thromboembolic_events", {}, "per cycle")
            ae = {
                s: f"{self.ps_ref(o, 'infusion_reactions', s)}*{n('c_infusion_reaction')}+{self.ps_ref(o, 'thromboembolic_events', s)}*{n('c_thromboembolism')}"
                for s in igrt
            }
            states(
                o, "cost_adverse_events", ae if uses else {}, self.country.currency, fmt=self.money
            )
            bsab = {}
            if spec.include_bsab_costs:
                bsab = {
                    s: f"{n(f'c_bsab_{spec.bsab_drug}_month')}*cycle_months"
                    for s in ("N", "L", "I")
                }
            states(
                o,
                "cost_bsab",
                bsab,
                self.country.currency,
                f"bsAb ({spec.bsab_drug}) per month on bsAb",
                fmt=self.money,
            )
            sub = {}
            if spec.include_subsequent_therapy:
                sub = {s: f"{n('c_subsequent_therapy_month')}*cycle_months" for s in ("OI", "O")}
            states(o, "cost_subsequent_therapy", sub, self.country.currency, fmt=self.money)
            states(o, "ly", {s: cl for s in ALIVE_SHORT}, "years")
            util = {s: f"{n('u_on_bsab')}*{cl}" for s in ("N", "L", "I")}
            util.update({s: f"{n('u_off_bsab')}*{cl}" for s in ("OI", "O")})
            states(o, "utility_per_cycle", util, "QALY")
            if uses:
                loss = (
                    f"{n('q_qaly_loss_scig_week')}*cycle_days/days_per_week"
                    if scig
                    else f"{n('q_qaly_loss_ivig_visit')}*{admins}"
                )
                states(
                    o,
                    "process_disutility",
                    {s: loss for s in igrt},
                    "QALY",
                    "per SCIG week or per IVIG visit",
                )
            else:
                states(o, "process_disutility", {}, "QALY")
            q = {}
            for s in ALIVE_SHORT:
                q[s] = (
                    f"{self.ps_ref(o, 'utility_per_cycle', s)}-{self.ps_ref(o, 'infusion_reactions', s)}*{n('q_qaly_loss_infusion_reaction')}"
                    f"-{self.ps_ref(o, 'thromboembolic_events', s)}*{n('q_qaly_loss_thromboembolism')}-{self.ps_ref(o, 'process_disutility', s)}"
                )
            states(
                o,
                "qaly_before_infections",
                q,
                "QALY",
                "utility x dt - reaction and thrombosis losses - process disutility; infection losses are subtracted per cycle",
            )
            states(o, "years_on_igrt", {s: cl for s in igrt} if uses else {}, "years")
            r += 1
        _finish(ws, {1: 26, 2: 38, 3: 18, 4: 14, 10: 80}, freeze="E5", default_width=16)

    # ------------------------------------------------------------------ trace sheets
    TR_HEADER = 11
    TR_FIRST = 12
    TOTAL_ROWS = {  # (subgroup or "weighted", discounted?) -> row
        ("igg_isotype", False): 4,
        ("igg_isotype", True): 5,
        ("non_igg", False): 6,
        ("non_igg", True): 7,
        ("weighted", False): 8,
        ("weighted", True): 9,
    }

    def trace_columns(self) -> list[str]:
        cols = ["subgroup", "cycle", "time_years", "wcc", "disc_costs", "disc_effects"]
        cols += [f"h_death_{s}" for s in ALIVE_SHORT]
        cols += [f"sev_{s}" for s in ALIVE_SHORT] + [f"ns_{s}" for s in ALIVE_SHORT]
        cols += ["h_start_N", "h_start_L"]
        for s in ALIVE_SHORT:
            cols += [f"hx_{s}", f"sx_{s}", f"fx_{s}"]
            if s in ("N", "L", "OI"):
                cols += [f"hi_{s}", f"si_{s}", f"fi_{s}"]
        cols += [f"p_{a}_{b}" for a, b in TRANSITIONS]
        cols += list(STATES) + ["row_sum_error"]
        cols += ["cost", *REWARD_NAMES]
        return cols

    def write_trace(self, st: Strategy):
        name = snake_sheet_name(st.strategy, prefix="trace_", used=self.used_sheets)
        ws = self.wb.create_sheet(name)
        self.trace_sheet[st.strategy] = name
        T, n = self.T, self.n
        cols = self.trace_columns()
        C = {c: get_column_letter(j + 1) for j, c in enumerate(cols)}
        self.trace_col = C
        o = st.strategy
        _title(
            ws,
            f"Trace: {st.label} ({o}), both subgroups; every cell a formula over inputs, prices, per_state and cycles",
            "States: N on_bsab_igg_normal, L on_bsab_igg_low, I on_bsab_igrt, OI off_bsab_igrt, O off_bsab, D dead. "
            "h_ cumulative hazards per cycle; hx/sx/fx exits (death, bsAb stop): total, exp(-total), (1-exp(-total))/total; "
            "hi/si/fi internal IgG/IgRT changes among those remaining. Reward columns: row contributions x correction weight "
            "(undiscounted); transition rewards on the row ending their cycle; start rewards on the 'start' row.",
        )
        _header(ws, self.TR_HEADER, cols)
        put(ws, 3, 1, "totals", font=HEADER_FONT)
        reward_cols = ["cost", *REWARD_NAMES]
        block_len = T + 3  # start row, T + 1 rows, a blank row
        blocks = {}
        for b, sg in enumerate(SUBGROUPS):
            start = self.TR_FIRST + b * block_len
            blocks[sg] = (start, start + 1 + T)
            self._write_block(ws, st, sg, start, C)
        # totals
        for (who, disc), r in self.TOTAL_ROWS.items():
            put(ws, r, 1, who, fill=TOTAL_FILL)
            put(ws, r, 2, "discounted" if disc else "undiscounted", fill=TOTAL_FILL)
            for rw in reward_cols:
                c = C[rw]
                fmt = self.money if rw.startswith("cost") else FMT_QALY
                if who == "weighted":
                    iso, non = (
                        self.TOTAL_ROWS[("igg_isotype", disc)],
                        self.TOTAL_ROWS[("non_igg", disc)],
                    )
                    w = n("p_igg_isotype")
                    put_formula(
                        ws,
                        r,
                        cols.index(rw) + 1,
                        f"{w}*{c}{iso}+(1-{w})*{c}{non}",
                        fmt,
                        fill=TOTAL_FILL,
                    )
                    continue
                a, z = blocks[who]
                if disc:
                    d = C["disc_effects"] if rw in EFFECT_NAMES else C["disc_costs"]
                    put_formula(
                        ws,
                        r,
                        cols.index(rw) + 1,
                        f"SUMPRODUCT({c}{a}:{c}{z},{d}{a}:{d}{z})",
                        fmt,
                        fill=TOTAL_FILL,
                    )
                else:
                    put_formula(
                        ws, r, cols.index(rw) + 1, f"SUM({c}{a}:{c}{z})", fmt, fill=TOTAL_FILL
                    )
        put(
            ws,
            10,
            1,
            "weighted = p_igg_isotype x igg_isotype + (1 - p_igg_isotype) x non_igg; discounted totals = SUMPRODUCT(column, discount factors)",
            font=NOTE_FONT,
        )
        self.trace_blocks = getattr(self, "trace_blocks", {})
        self.trace_blocks[o] = blocks
        widths = {1: 12, 2: 8}
        for j, c in enumerate(cols):
            if c in STATES:
                widths[j + 1] = 18
            elif c.startswith("cost") or c in REWARD_NAMES:
                widths[j + 1] = 16
        _finish(ws, widths, freeze=f"D{self.TR_FIRST}", default_width=11)

    def _write_block(self, ws, st: Strategy, sg: str, start: int, C: dict[str, str]):
        T, n = self.T, self.n
        o = st.strategy
        col = {c: j + 1 for j, c in enumerate(C)}

        def f(r, key, formula, fmt=FMT_GENERAL):
            put_formula(ws, r, col[key], formula, fmt)

        def v(r, key, value, fmt=FMT_GENERAL):
            put(ws, r, col[key], value, fmt)

        # --- the start row: start rewards, counted once at time 0 and never discounted
        put(ws, start, col["subgroup"], sg)
        put(ws, start, col["cycle"], "start")
        v(start, "disc_costs", 1.0)
        v(start, "disc_effects", 1.0)
        r0 = start + 1
        costs = [c for c in COST_CATEGORIES]
        for rw in REWARD_NAMES:
            v(start, rw, 0.0)
        if st.is_scig and st.trigger == "at_start":
            f(start, "cost_scig_training", f"{C[STATES[2]]}{r0}*{n('c_scig_training')}", self.money)
        f(start, "cost", f"SUM({C[costs[0]]}{start}:{C[costs[-1]]}{start})", self.money)

        det = None
        if st.trigger == "igg_below_threshold":
            det = self.ps_ref(o, f"detection_hazard_per_cycle_{sg}")
        start_low = st.trigger == "after_severe_infection" or (
            st.trigger == "igg_below_threshold" and st.start_after_severe_infection
        )
        start_normal = st.trigger == "after_severe_infection"
        mixed = st.trigger in ("at_start", "after_severe_infection")
        cf = n("p_case_fatality_severe")
        phi = n("p_continue_igrt_after_bsab")
        stop = self.ps_ref("all", "igrt_stop_hazard_per_cycle")
        trace_range = lambda r: f"{C[STATES[0]]}{r}:{C[STATES[4]]}{r}"  # noqa: E731  alive states
        sev_range = lambda r: f"{C['sev_N']}{r}:{C['sev_O']}{r}"  # noqa: E731
        ns_range = lambda r: f"{C['ns_N']}{r}:{C['ns_O']}{r}"  # noqa: E731
        m = {s: C[STATE_OF[s]] for s in SHORT}  # trace column of each state

        for t in range(T + 1):
            r = r0 + t
            put(ws, r, col["subgroup"], sg)
            put(ws, r, col["cycle"], t, FMT_INT)
            f(r, "time_years", self.cyc("t0", t), FMT_SMALL)
            f(r, "wcc", self.cyc("wcc", t))
            f(r, "disc_costs", self.cyc("disc_costs", t), FMT_SMALL)
            f(r, "disc_effects", self.cyc("disc_effects", t), FMT_SMALL)
            finf = self.cyc("f_infection", t)
            for s in ALIVE_SHORT:
                # primary/secondary patients on IgRT: the untreated rate of their expected IgG mix
                mix = f"*{self.cyc('igrt_infection_mix', t)}" if s == "I" and mixed else ""
                f(
                    r,
                    f"sev_{s}",
                    f"{self.ps_ref(o, 'severe_infections_per_cycle_base', s)}*{finf}{mix}",
                )
                f(
                    r,
                    f"ns_{s}",
                    f"{self.ps_ref(o, 'nonsevere_infections_per_cycle_base', s)}*{finf}{mix}",
                )
            if t < T:
                hbg = self.cyc("h_background", t)
                hd = self.cyc("h_discontinuation", t)
                hdec = self.cyc("h_igg_decline", t)
                for s in ALIVE_SHORT:
                    f(
                        r,
                        f"h_death_{s}",
                        f"{hbg}+{self.ps_ref(o, 'myeloma_death_hazard_per_cycle', s)}+{C[f'sev_{s}']}{r}*{cf}",
                    )
                if start_normal:
                    f(r, "h_start_N", f"{C['sev_N']}{r}")
                else:
                    v(r, "h_start_N", 0.0)
                parts = ([det] if det else []) + ([f"{C['sev_L']}{r}"] if start_low else [])
                if parts:
                    f(r, "h_start_L", "+".join(parts))
                else:
                    v(r, "h_start_L", 0.0)
                hx = {
                    "N": f"{hd}+{C['h_death_N']}{r}",
                    "L": f"{hd}+{C['h_death_L']}{r}",
                    "I": f"{hd}*{phi}+{hd}*(1-{phi})+{C['h_death_I']}{r}",
                    "OI": f"{C['h_death_OI']}{r}",
                    "O": f"{C['h_death_O']}{r}",
                }
                hi = {"N": f"{hdec}+{C['h_start_N']}{r}", "L": f"{C['h_start_L']}{r}", "OI": stop}
                for s in ALIVE_SHORT:
                    f(r, f"hx_{s}", hx[s])
                    f(r, f"sx_{s}", f"EXP(-{C[f'hx_{s}']}{r})")
                    f(
                        r,
                        f"fx_{s}",
                        f"IF({C[f'hx_{s}']}{r}>0,(1-{C[f'sx_{s}']}{r})/{C[f'hx_{s}']}{r},1)",
                    )
                    if s in hi:
                        f(r, f"hi_{s}", hi[s])
                        f(r, f"si_{s}", f"EXP(-{C[f'hi_{s}']}{r})")
                        f(
                            r,
                            f"fi_{s}",
                            f"IF({C[f'hi_{s}']}{r}>0,(1-{C[f'si_{s}']}{r})/{C[f'hi_{s}']}{r},1)",
                        )
                x = lambda k, s, r=r: f"{C[f'{k}_{s}']}{r}"  # noqa: E731
                P = {
                    ("N", "N"): f"{x('sx', 'N')}*{x('si', 'N')}",
                    ("N", "L"): f"{x('sx', 'N')}*({hdec}*{x('fi', 'N')})",
                    ("N", "I"): f"{x('sx', 'N')}*({C['h_start_N']}{r}*{x('fi', 'N')})",
                    ("N", "O"): f"{hd}*{x('fx', 'N')}",
                    ("N", "D"): f"{C['h_death_N']}{r}*{x('fx', 'N')}",
                    ("L", "L"): f"{x('sx', 'L')}*{x('si', 'L')}",
                    ("L", "I"): f"{x('sx', 'L')}*({C['h_start_L']}{r}*{x('fi', 'L')})",
                    ("L", "O"): f"{hd}*{x('fx', 'L')}",
                    ("L", "D"): f"{C['h_death_L']}{r}*{x('fx', 'L')}",
                    ("I", "I"): x("sx", "I"),
                    ("I", "OI"): f"{hd}*{phi}*{x('fx', 'I')}",
                    ("I", "O"): f"{hd}*(1-{phi})*{x('fx', 'I')}",
                    ("I", "D"): f"{C['h_death_I']}{r}*{x('fx', 'I')}",
                    ("OI", "OI"): f"{x('sx', 'OI')}*{x('si', 'OI')}",
                    ("OI", "O"): f"{x('sx', 'OI')}*({stop}*{x('fi', 'OI')})",
                    ("OI", "D"): f"{C['h_death_OI']}{r}*{x('fx', 'OI')}",
                    ("O", "O"): x("sx", "O"),
                    ("O", "D"): f"{C['h_death_O']}{r}*{x('fx', 'O')}",
                }
                for (a, b), formula in P.items():
                    f(r, f"p_{a}_{b}", formula, FMT_PROB)
            # --- the trace
            if t == 0:
                first = "I" if st.trigger == "at_start" else "N"
                for s in SHORT:
                    v(r, STATE_OF[s], 1.0 if s == first else 0.0, FMT_PROB)
            else:
                rp = r - 1
                for b in SHORT:
                    terms = [
                        f"{m[a]}{rp}*{C[f'p_{a}_{b}']}{rp}" for a, bb in TRANSITIONS if bb == b
                    ]
                    if b == "D":
                        terms.append(f"{m['D']}{rp}")
                    f(r, STATE_OF[b], "+".join(terms), FMT_PROB)
            f(r, "row_sum_error", f"ABS(SUM({m['N']}{r}:{m['D']}{r})-1)")
            # --- rewards on this row
            w = f"{C['wcc']}{r}"
            for rw in (
                "cost_ig",
                "cost_ig_admin",
                "cost_monitoring",
                "cost_adverse_events",
                "cost_bsab",
                "cost_subsequent_therapy",
                "ly",
                "ig_grams",
                "infusions",
                "igg_tests",
                "years_on_igrt",
                "thromboembolic_events",
                "infusion_reactions",
            ):
                fmt = self.money if rw.startswith("cost") else FMT_QALY
                f(r, rw, f"{w}*SUMPRODUCT({trace_range(r)},{self.ps_row_range(o, rw)})", fmt)
            f(r, "severe_infections", f"{w}*SUMPRODUCT({trace_range(r)},{sev_range(r)})", FMT_QALY)
            f(
                r,
                "nonsevere_infections",
                f"{w}*SUMPRODUCT({trace_range(r)},{ns_range(r)})",
                FMT_QALY,
            )
            f(
                r,
                "cost_severe_infections",
                f"{w}*SUMPRODUCT({trace_range(r)},{sev_range(r)})*{n('c_hosp_severe_infection')}",
                self.money,
            )
            f(
                r,
                "cost_nonsevere_infections",
                f"{w}*SUMPRODUCT({trace_range(r)},{ns_range(r)})*{n('c_outpatient_infection')}",
                self.money,
            )
            f(
                r,
                "qaly",
                f"{w}*(SUMPRODUCT({trace_range(r)},{self.ps_row_range(o, 'qaly_before_infections')})"
                f"-{n('q_qaly_loss_severe')}*SUMPRODUCT({trace_range(r)},{sev_range(r)})"
                f"-{n('q_qaly_loss_nonsevere')}*SUMPRODUCT({trace_range(r)},{ns_range(r)}))",
                FMT_QALY,
            )
            # transition rewards of cycle t - 1 land on row t (discounted at the end of their cycle)
            if t == 0:
                for rw in ("infection_deaths", "cost_scig_training", "cost_end_of_life"):
                    v(r, rw, 0.0)
            else:
                rp = r - 1
                terms = [
                    f"{m[s]}{rp}*{C[f'p_{s}_D']}{rp}*IF({C[f'h_death_{s}']}{rp}>0,{C[f'sev_{s}']}{rp}*{cf}/{C[f'h_death_{s}']}{rp},0)"
                    for s in ALIVE_SHORT
                ]
                f(r, "infection_deaths", "+".join(terms), FMT_QALY)
                if st.is_scig:
                    f(
                        r,
                        "cost_scig_training",
                        f"({m['N']}{rp}*{C['p_N_I']}{rp}+{m['L']}{rp}*{C['p_L_I']}{rp})*{n('c_scig_training')}",
                        self.money,
                    )
                else:
                    v(r, "cost_scig_training", 0.0)
                if self.spec.include_end_of_life:
                    deaths = "+".join(f"{m[s]}{rp}*{C[f'p_{s}_D']}{rp}" for s in ALIVE_SHORT)
                    f(r, "cost_end_of_life", f"({deaths})*{n('c_end_of_life')}", self.money)
                else:
                    v(r, "cost_end_of_life", 0.0)
            f(r, "cost", f"SUM({C[costs[0]]}{r}:{C[costs[-1]]}{r})", self.money)

    def trace_total(
        self, strategy: str, reward: str, discounted: bool, who: str = "weighted"
    ) -> str:
        sheet = self.trace_sheet[strategy]
        col = self.trace_columns().index(reward) + 1
        return _abs(sheet, col, self.TOTAL_ROWS[(who, discounted)])

    # ------------------------------------------------------------------ results
    def write_results(self):
        ws = self.results = self.sheet("results")
        c = self.country
        _title(
            ws,
            f"Results per strategy ({c.currency} {c.price_year}; costs discounted at the costs rate, QALYs, LYs and counts at the effects rate)",
            "Formulas over the trace sheets' weighted totals (rows 8-9). Counts are per patient; *_undiscounted columns are not discounted.",
        )
        cols = list(self.base.results.columns)
        _header(ws, 4, cols)
        self.results_col = {name: j + 1 for j, name in enumerate(cols)}
        for i, st in enumerate(self.strategies):
            r = 5 + i
            self.results_row[st.strategy] = r
            for j, name in enumerate(cols):
                cj = j + 1
                disc = not name.endswith("_undiscounted")
                base_name = name[: -len("_undiscounted")] if not disc else name
                fmt = self.money if base_name.startswith("cost") else FMT_QALY
                if name == "strategy":
                    put(ws, r, cj, st.strategy)
                elif name == "label":
                    put(ws, r, cj, st.label)
                elif base_name == "cost":
                    parts = [
                        f"{get_column_letter(self.results_col[k + ('' if disc else '_undiscounted')])}{r}"
                        for k in COST_CATEGORIES
                    ]
                    put_formula(ws, r, cj, "+".join(parts), fmt)
                elif base_name in REWARD_NAMES:
                    put_formula(ws, r, cj, self.trace_total(st.strategy, base_name, disc), fmt)
                else:  # a column the workbook does not rebuild: the engine's value
                    put(ws, r, cj, self.base.results.set_index("strategy").loc[st.strategy, name])
        widths = {1: 24, 2: 32}
        _finish(ws, widths, freeze="C5", default_width=16)

    def res(self, strategy: str, column: str, absolute: bool = True) -> str:
        r, c = self.results_row[strategy], self.results_col[column]
        return _abs("results", c, r) if absolute else f"results!{get_column_letter(c)}{r}"

    # ------------------------------------------------------------------ incremental
    def write_incremental(self):
        ws = self.incr = self.sheet("incremental")
        c = self.country
        k = len(self.strategies)
        _title(
            ws,
            f"Full incremental analysis, live (QALYs; {c.currency}; WTP = wtp_per_qaly on settings)",
            "D: strongly dominated (another strategy costs no more and gains no less). ED: extendedly dominated (its ICER "
            "from the cheaper candidates exceeds the ICER to a more effective one). ND: on the frontier; icer versus the "
            "previous frontier strategy. Grids below do the pairwise work. Right: the engine's table at write time.",
        )
        cols = [
            "order",
            "strategy",
            "label",
            "cost",
            "qaly",
            "ly",
            "nmb",
            "nhb",
            "cost_rank",
            "dominated_by_count",
            "candidate",
            "icer_in_max",
            "icer_out_min",
            "status",
            "reference",
            "inc_cost",
            "inc_qaly",
            "icer",
            "optimal",
        ]
        _header(ws, 4, cols)
        C = {name: get_column_letter(j + 1) for j, name in enumerate(cols)}
        self.incr_col = {name: j + 1 for j, name in enumerate(cols)}
        first, last = 5, 5 + k - 1
        rng = lambda key: f"${C[key]}${first}:${C[key]}${last}"  # noqa: E731
        g1 = last + 3  # grid: slopes into i from cheaper candidates
        g2 = g1 + k + 3  # grid: slopes out of i to more effective candidates
        g3 = g2 + k + 3  # grid: effects of frontier strategies below i
        gcol0 = 2  # grid column of strategy j = gcol0 + j
        self.incr_row = {}
        for i, st in enumerate(self.strategies):
            r = first + i
            self.incr_row[st.strategy] = r
            put(ws, r, 1, i + 1, FMT_INT)
            put(ws, r, 2, st.strategy)
            put(ws, r, 3, st.label)
            put_formula(ws, r, 4, self.res(st.strategy, "cost"), self.money)
            put_formula(ws, r, 5, self.res(st.strategy, "qaly"), FMT_QALY)
            put_formula(ws, r, 6, self.res(st.strategy, "ly"), FMT_QALY)
            put_formula(ws, r, 7, f"wtp_per_qaly*E{r}-D{r}", self.money)
            put_formula(ws, r, 8, f"E{r}-D{r}/wtp_per_qaly", FMT_QALY)
            put_formula(ws, r, 9, f"RANK(D{r},{rng('cost')},1)", FMT_INT)
            put_formula(
                ws,
                r,
                10,
                f"SUMPRODUCT(({rng('cost')}<=D{r})*({rng('qaly')}>=E{r})*((({rng('cost')}<D{r})+({rng('qaly')}>E{r})+({rng('order')}<A{r}))>0))",
                FMT_INT,
            )
            put_formula(ws, r, 11, f"IF(J{r}=0,1,0)", FMT_INT)
            g1r, g2r, g3r = g1 + 1 + i, g2 + 1 + i, g3 + 1 + i
            a, z = get_column_letter(gcol0), get_column_letter(gcol0 + k - 1)
            put_formula(
                ws, r, 12, f'IF(COUNT({a}{g1r}:{z}{g1r})=0,"",MAX({a}{g1r}:{z}{g1r}))', self.money
            )
            put_formula(
                ws, r, 13, f'IF(COUNT({a}{g2r}:{z}{g2r})=0,"",MIN({a}{g2r}:{z}{g2r}))', self.money
            )
            put_formula(
                ws,
                r,
                14,
                f'IF(K{r}=0,"D",IF(AND(ISNUMBER(L{r}),ISNUMBER(M{r})),IF(L{r}>M{r}*(1+collinear_rtol),"ED","ND"),"ND"))',
            )
            prev_e = f"{a}{g3r}:{z}{g3r}"
            prev_order = (
                f'SUMPRODUCT(({rng("status")}="ND")*({rng("qaly")}=MAX({prev_e}))*{rng("order")})'
            )
            has_prev = f'AND(N{r}="ND",COUNT({prev_e})>0)'
            put_formula(ws, r, 15, f'IF({has_prev},INDEX({rng("strategy")},{prev_order}),"")')
            put_formula(
                ws, r, 16, f'IF({has_prev},D{r}-INDEX({rng("cost")},{prev_order}),"")', self.money
            )
            put_formula(
                ws, r, 17, f'IF({has_prev},E{r}-INDEX({rng("qaly")},{prev_order}),"")', FMT_QALY
            )
            put_formula(ws, r, 18, f'IF(ISNUMBER(P{r}),P{r}/Q{r},"")', self.money)
            put_formula(ws, r, 19, f'IF(G{r}=MAX({rng("nmb")}),"optimal","")')
        titles = {
            g1: "grid 1: ICER of row strategy i from each less effective candidate j, (cost_i - cost_j) / (qaly_i - qaly_j)",
            g2: "grid 2: ICER from row strategy i to each more effective candidate j, (cost_j - cost_i) / (qaly_j - qaly_i)",
            g3: "grid 3: QALYs of frontier (ND) strategies less effective than row strategy i (the largest is its reference)",
        }
        for g, text in titles.items():
            put(ws, g - 1, 1, text, font=NOTE_FONT)
            put(ws, g, 1, "i \\ j", font=HEADER_FONT, fill=HEADER_FILL)
            for j, st in enumerate(self.strategies):
                put(ws, g, gcol0 + j, st.strategy, font=HEADER_FONT, fill=HEADER_FILL)
            for i, st in enumerate(self.strategies):
                ri = first + i
                gr = g + 1 + i
                put(ws, gr, 1, st.strategy, font=HEADER_FONT)
                for j in range(k):
                    rj = first + j
                    cell_col = gcol0 + j
                    if g == g1:
                        fm = f'IF(AND($K${ri}=1,$K${rj}=1,$E${rj}<$E${ri}),($D${ri}-$D${rj})/($E${ri}-$E${rj}),"")'
                        fmt = self.money
                    elif g == g2:
                        fm = f'IF(AND($K${ri}=1,$K${rj}=1,$E${rj}>$E${ri}),($D${rj}-$D${ri})/($E${rj}-$E${ri}),"")'
                        fmt = self.money
                    else:
                        fm = f'IF(AND($N${ri}="ND",$N${rj}="ND",$E${rj}<$E${ri}),$E${rj},"")'
                        fmt = FMT_QALY
                    put_formula(ws, gr, cell_col, fm, fmt)
        # the engine's table (values at write time)
        e0 = len(cols) + 2
        put(
            ws,
            3,
            e0,
            "engine (cea.analysis.incremental.icer_table) at write time",
            font=HEADER_FONT,
        )
        inc = self.base.incremental
        _header(ws, 4, list(inc.columns), start_col=e0)
        for i, (_, rec) in enumerate(inc.iterrows()):
            for j, name in enumerate(inc.columns):
                value = rec[name]
                if isinstance(value, (bool, np.bool_)):
                    value = str(bool(value))
                fmt = (
                    self.money
                    if name in ("cost", "inc_cost", "icer", "nmb")
                    else (FMT_QALY if name in ("effect", "inc_effect", "nhb") else None)
                )
                put(ws, 5 + i, e0 + j, value, fmt)
        widths = {1: 24, 2: 24, 3: 30, 15: 20, 19: 10}
        for j in range(len(inc.columns)):
            widths[e0 + j] = 16
        widths[e0 + list(inc.columns).index("note")] = 44 if "note" in inc.columns else 16
        _finish(ws, widths, freeze="C5", default_width=15)

    # ------------------------------------------------------------------ comparisons
    def write_comparisons(self):
        ws = self.comp = self.sheet("comparisons")
        _title(
            ws,
            "Named comparisons, live: intervention versus comparator (no dominance across other strategies)",
            "quadrant on the CE plane (QALYs on x): NE more costly and more effective, SW cheaper and less effective (icer = saving per QALY lost), SE dominant, NW dominated.",
        )
        cols = [
            "comparison",
            "intervention",
            "comparator",
            "inc_cost",
            "inc_effect",
            "icer",
            "quadrant",
            "inmb",
            "cost_effective",
            "inc_severe_infections",
            "cost_per_severe_infections_averted",
            "inc_infection_deaths",
            "cost_per_infection_deaths_averted",
        ]
        _header(ws, 4, cols)
        self.comp_col = {name: j + 1 for j, name in enumerate(cols)}
        self.comp_row = {}
        names = {s.strategy for s in self.strategies}
        comps = self.base.comparisons
        pairs = (
            [(r["intervention"], r["comparator"]) for _, r in comps.iterrows()]
            if not comps.empty
            else []
        )
        for i, (a, b) in enumerate(p for p in pairs if p[0] in names and p[1] in names):
            r = 5 + i
            self.comp_row[(a, b)] = r
            put(ws, r, 1, f"{a} vs {b}")
            put(ws, r, 2, a)
            put(ws, r, 3, b)
            put_formula(ws, r, 4, f"{self.res(a, 'cost')}-{self.res(b, 'cost')}", self.money)
            put_formula(ws, r, 5, f"{self.res(a, 'qaly')}-{self.res(b, 'qaly')}", FMT_QALY)
            put_formula(
                ws,
                r,
                7,
                f'IF(AND(D{r}=0,E{r}=0),"same",IF(AND(D{r}<=0,E{r}>=0),"SE",IF(AND(D{r}>=0,E{r}<=0),"NW",IF(E{r}>0,"NE","SW"))))',
            )
            put_formula(ws, r, 6, f'IF(OR(G{r}="NE",G{r}="SW"),D{r}/E{r},"")', self.money)
            put_formula(ws, r, 8, f"wtp_per_qaly*E{r}-D{r}", self.money)
            put_formula(ws, r, 9, f'IF(H{r}>0,"yes","no")')
            for cc, extra in ((10, "severe_infections"), (12, "infection_deaths")):
                L = get_column_letter(cc)
                put_formula(ws, r, cc, f"{self.res(a, extra)}-{self.res(b, extra)}", FMT_QALY)
                put_formula(ws, r, cc + 1, f'IF({L}{r}<0,D{r}/-{L}{r},"")', self.money)
        _finish(ws, {1: 36, 2: 22, 3: 22, 11: 20, 13: 20}, freeze="B5", default_width=15)

    # ------------------------------------------------------------------ checks
    def write_checks(self):
        ws = self.checks = self.sheet("checks")
        _title(
            ws,
            "Checks: the workbook's own totals beside the engine's values",
            "relative_difference = |workbook - engine| / |engine| (absolute when the engine value is 0). The engine values were "
            "written by cea at the time of the run; change an input and the differences show how far the workbook has moved.",
        )
        cols = [
            "check",
            "strategy",
            "quantity",
            "workbook",
            "engine",
            "difference",
            "relative_difference",
            "within_tolerance",
        ]
        _header(ws, 9, cols)
        r = 10
        first = r
        res = self.base.results.set_index("strategy")

        def numeric(check, strategy, qty, wb_ref, engine, fmt=FMT_GENERAL):
            nonlocal r
            put(ws, r, 1, check)
            put(ws, r, 2, strategy)
            put(ws, r, 3, qty)
            put_formula(ws, r, 4, wb_ref, fmt)
            engine = _clean(engine)
            put(ws, r, 5, engine, fmt)
            if (
                engine is None
            ):  # the engine has no number here (e.g. no ICER): the workbook must be blank too
                put_formula(ws, r, 6, f'IF(D{r}="",0,1)')
                put_formula(ws, r, 7, f"F{r}")
            else:
                put_formula(ws, r, 6, f'IF(ISNUMBER(D{r}),D{r}-E{r},"")', fmt)
                put_formula(
                    ws, r, 7, f"IF(ISNUMBER(F{r}),IF(E{r}=0,ABS(F{r}),ABS(F{r})/ABS(E{r})),1)"
                )
            put_formula(ws, r, 8, f'IF(G{r}<=check_tolerance,"yes","NO")')
            r += 1

        def text(check, strategy, qty, wb_ref, engine):
            nonlocal r
            put(ws, r, 1, check)
            put(ws, r, 2, strategy)
            put(ws, r, 3, qty)
            put_formula(ws, r, 4, wb_ref)
            put(ws, r, 5, engine)
            put_formula(ws, r, 7, f"IF(D{r}=E{r},0,1)")
            put_formula(ws, r, 8, f'IF(G{r}<=check_tolerance,"yes","NO")')
            r += 1

        for st in self.strategies:
            for name in self.base.results.columns:
                if name in ("strategy", "label"):
                    continue
                fmt = self.money if name.startswith("cost") else FMT_QALY
                numeric(
                    "results",
                    st.strategy,
                    name,
                    self.res(st.strategy, name),
                    res.loc[st.strategy, name],
                    fmt,
                )
        inc = self.base.incremental.set_index("strategy")
        for st in self.strategies:
            s = st.strategy
            rr = self.incr_row[s]
            text(
                "incremental",
                s,
                "status",
                _abs("incremental", self.incr_col["status"], rr),
                inc.loc[s, "status"],
            )
            text(
                "incremental",
                s,
                "reference",
                _abs("incremental", self.incr_col["reference"], rr),
                inc.loc[s, "reference"],
            )
            numeric(
                "incremental",
                s,
                "icer",
                _abs("incremental", self.incr_col["icer"], rr),
                inc.loc[s, "icer"],
                self.money,
            )
            if "nmb" in inc.columns:
                numeric(
                    "incremental",
                    s,
                    "nmb",
                    _abs("incremental", self.incr_col["nmb"], rr),
                    inc.loc[s, "nmb"],
                    self.money,
                )
        comps = self.base.comparisons
        for _, rec in comps.iterrows() if not comps.empty else []:
            key = (rec["intervention"], rec["comparator"])
            if key not in self.comp_row:
                continue
            rr = self.comp_row[key]
            for name in ("inc_cost", "inc_effect", "icer", "inmb"):
                fmt = FMT_QALY if name == "inc_effect" else self.money
                numeric(
                    "comparisons",
                    rec["comparison"],
                    name,
                    _abs("comparisons", self.comp_col[name], rr),
                    rec[name],
                    fmt,
                )
        last_numeric = r - 1
        # trace consistency: each trace row sums to 1
        for st in self.strategies:
            sheet = self.trace_sheet[st.strategy]
            c = get_column_letter(self.trace_columns().index("row_sum_error") + 1)
            for sg, (a, z) in self.trace_blocks[st.strategy].items():
                put(ws, r, 1, "trace")
                put(ws, r, 2, st.strategy)
                put(ws, r, 3, f"{sg}: largest |row sum - 1|")
                put_formula(ws, r, 4, f"MAX({_sheet_ref(sheet)}!{c}{a + 1}:{c}{z})", FMT_GENERAL)
                put(ws, r, 5, 0.0)
                put_formula(ws, r, 6, f"D{r}-E{r}", FMT_GENERAL)
                put_formula(ws, r, 7, f"ABS(F{r})", FMT_GENERAL)
                put_formula(ws, r, 8, f'IF(G{r}<=check_tolerance,"yes","NO")')
                r += 1
        # black-box expectations (TECH-VER): QALY <= LY, discounted <= undiscounted, costs >= 0
        for st in self.strategies:
            s = st.strategy
            for what, formula in (
                ("qaly <= ly", f"{self.res(s, 'qaly')}<={self.res(s, 'ly')}"),
                (
                    "discounted cost <= undiscounted",
                    f"{self.res(s, 'cost')}<={self.res(s, 'cost_undiscounted')}",
                ),
                ("cost >= 0", f"{self.res(s, 'cost')}>=0"),
            ):
                put(ws, r, 1, "black box")
                put(ws, r, 2, s)
                put(ws, r, 3, what)
                put_formula(ws, r, 4, f'IF({formula},"yes","NO")')
                put(ws, r, 5, "yes")
                put_formula(ws, r, 7, f"IF(D{r}=E{r},0,1)")
                put_formula(ws, r, 8, f'IF(G{r}<=check_tolerance,"yes","NO")')
                r += 1
        last = r - 1
        put(
            ws,
            4,
            1,
            "largest relative difference, workbook vs engine (results, incremental, comparisons)",
            font=HEADER_FONT,
        )
        put_formula(ws, 4, 4, f"MAX(G{first}:G{last_numeric})", "0.00E+00")
        put(ws, 5, 1, "tolerance (settings check_tolerance)", font=HEADER_FONT)
        put_formula(ws, 5, 4, "check_tolerance", "0.00E+00")
        put(ws, 6, 1, "checks failing", font=HEADER_FONT)
        put_formula(ws, 6, 4, f'COUNTIF(H{first}:H{last},"NO")', FMT_INT)
        put(ws, 7, 1, "verdict", font=HEADER_FONT)
        put_formula(
            ws,
            7,
            4,
            'IF(D6=0,"PASS: the workbook reproduces the engine","FAIL: see rows marked NO")',
        )
        self.check_rows = (first, last)
        _finish(ws, {1: 14, 2: 40, 3: 40, 4: 18, 5: 18, 6: 14, 7: 18, 8: 16}, freeze="A10")

    # ------------------------------------------------------------------ verification
    def write_verification(self, table: pd.DataFrame, note: str = ""):
        """The TECH-VER check table (:func:`cea.verify.run_checks`): one row per check."""
        missing = [c for c in VERIFICATION_COLUMNS if c not in table.columns]
        if missing:
            raise CeaError(
                f"report: the verification table needs columns {', '.join(VERIFICATION_COLUMNS)}; "
                f"missing {', '.join(missing)}"
            )
        ws = self.verification = self.sheet("verification")
        passed = [_pass_text(v) for v in table["passed"]]
        n_ok = passed.count("PASS")
        _title(
            ws,
            "Verification: TECH-VER black-box checks of the engine (Buyukkaramikli et al., "
            "PharmacoEconomics 2019;37:1391)",
            "Each check changes inputs to values whose effect is known a priori, runs the Python engine and "
            "compares (cea.verify.run_checks: the table 'cea check' prints; docs/verification.md). Computed "
            "when this workbook was written, on the engine, not on this workbook's formulas (the checks sheet "
            "compares those with the engine)." + (f" {note}" if note else ""),
        )
        summary = f"{'PASS' if n_ok == len(passed) and passed else 'FAIL'}: {n_ok} of {len(passed)} checks passed"
        put(ws, 3, 1, summary, font=HEADER_FONT)
        _header(ws, 4, VERIFICATION_COLUMNS)
        for i, (row, verdict) in enumerate(
            zip(table[VERIFICATION_COLUMNS].itertuples(index=False), passed, strict=True)
        ):
            r = 5 + i
            put(ws, r, 1, str(row.check))
            put(ws, r, 2, verdict, fill=None if verdict == "PASS" else FAIL_FILL)
            put(ws, r, 3, "" if _clean(row.detail) is None else str(row.detail)).alignment = WRAP
            put(
                ws, r, 4, "" if _clean(row.tolerance) is None else str(row.tolerance)
            ).alignment = WRAP
        _finish(ws, {1: 28, 2: 9, 3: 110, 4: 45}, freeze="A5")

    # ------------------------------------------------------------------ optional analyses
    def _frame_sheet(
        self, name: str, df: pd.DataFrame, title: str, note: str = "", start_row: int = 4
    ):
        ws = self.sheet(name)
        _title(ws, title, note)
        df = df.reset_index(drop=not _has_named_index(df))
        _header(ws, start_row, [str(c) for c in df.columns])
        for i, row in enumerate(df.itertuples(index=False)):
            for j, value in enumerate(row):
                col = str(df.columns[j])
                if isinstance(value, (bool, np.bool_)):
                    value = str(bool(value))
                put(ws, start_row + 1 + i, j + 1, value, self._fmt_for(col, value))
        widths = {j + 1: max(12, min(40, len(str(c)) + 4)) for j, c in enumerate(df.columns)}
        _finish(ws, widths, freeze=f"A{start_row + 1}")
        return ws, df

    def _fmt_for(self, col: str, value) -> str | None:
        if not isinstance(value, (int, float, np.number)) or isinstance(value, bool):
            return None
        lc = col.lower()
        if (
            any(k in lc for k in ("cost", "nmb", "icer", "price", "wtp", "evpi", "inmb", "value"))
            and "qaly" not in lc
        ):
            return self.money
        if lc.startswith(("p_", "prob")) or "probability" in lc:
            return FMT_PROB
        return FMT_GENERAL

    def write_dsa(self, dsa) -> list[str]:
        frames = _frames(dsa, "tornado")
        made = []
        tornado = frames.pop("tornado", None)
        if tornado is not None:
            ws, df = self._frame_sheet(
                "dsa",
                tornado,
                "One-way sensitivity analysis: tornado table (engine values)",
                "inmb_low / inmb_high: incremental net monetary benefit at the parameter's low / high value.",
            )
            made.append(ws.title)
            cols = list(df.columns)
            if {"parameter", "inmb_low", "inmb_high"} <= set(cols) and len(df):
                chart = BarChart()
                chart.type = "bar"
                chart.grouping = "clustered"
                chart.overlap = 100
                chart.title = "Tornado: INMB at each parameter's low and high value"
                chart.y_axis.title = f"INMB ({self.country.currency})"
                lo, hi = cols.index("inmb_low") + 1, cols.index("inmb_high") + 1
                for cidx in (lo, hi):
                    chart.add_data(
                        Reference(ws, min_col=cidx, min_row=4, max_row=4 + len(df)),
                        titles_from_data=True,
                    )
                chart.set_categories(
                    Reference(
                        ws, min_col=cols.index("parameter") + 1, min_row=5, max_row=4 + len(df)
                    )
                )
                chart.height = max(7.5, 0.5 * len(df) + 3)
                chart.width = 18
                ws.add_chart(chart, f"{get_column_letter(len(cols) + 2)}4")
        return made + self._other_frames(frames, "dsa", "Deterministic sensitivity analysis")

    def _other_frames(self, frames: dict, prefix: str, title: str) -> list[str]:
        """A sheet ``<prefix>_<key>`` for every other table of an analysis."""
        made = []
        for key, df in frames.items():
            if isinstance(df, pd.DataFrame):
                ws, _ = self._frame_sheet(f"{prefix}_{key}", df, f"{title}: {key}")
                made.append(ws.title)
        return made

    def write_psa(self, psa) -> list[str]:
        frames = _frames(psa, "summary")
        made = []
        summary = frames.pop("summary", None)
        if summary is not None:
            ws, _ = self._frame_sheet(
                "psa", summary, "Probabilistic sensitivity analysis: summary (engine values)"
            )
            made.append(ws.title)
        ceac = frames.pop("ceac", None)
        if ceac is not None:
            ceac = _wide_ceac(ceac)
            ws, df = self._frame_sheet(
                "psa_ceac",
                ceac,
                "Cost-effectiveness acceptability curves: probability each strategy has the highest NMB",
                "wtp per QALY in the first column; one column per strategy.",
            )
            made.append(ws.title)
            if len(df) and df.shape[1] > 1:
                chart = LineChart()
                chart.title = "CEAC"
                chart.y_axis.title = "probability cost-effective"
                chart.x_axis.title = f"WTP per QALY ({self.country.currency})"
                chart.y_axis.scaling.min = 0
                chart.y_axis.scaling.max = 1
                chart.add_data(
                    Reference(ws, min_col=2, max_col=df.shape[1], min_row=4, max_row=4 + len(df)),
                    titles_from_data=True,
                )
                chart.set_categories(Reference(ws, min_col=1, min_row=5, max_row=4 + len(df)))
                chart.width, chart.height = 20, 10
                ws.add_chart(chart, f"{get_column_letter(df.shape[1] + 2)}4")
        plane = frames.pop("ce_plane", None)
        if plane is not None:
            ws, df = self._frame_sheet(
                "psa_ce_plane",
                plane,
                "Cost-effectiveness plane: incremental cost and QALYs per draw",
            )
            made.append(ws.title)
            cols = list(df.columns)
            if {"inc_cost", "inc_qaly"} <= set(cols) and len(df):
                chart = ScatterChart()
                chart.title = "CE plane"
                chart.style = 13
                chart.x_axis.title = "incremental QALYs"
                chart.y_axis.title = f"incremental cost ({self.country.currency})"
                xc, yc = cols.index("inc_qaly") + 1, cols.index("inc_cost") + 1
                groups = [(None, 5, 4 + len(df))]
                by = next((c for c in ("comparison", "strategy") if c in cols), None)
                if by is not None:
                    groups = []
                    labels = df[by].astype(str).tolist()
                    start = 0
                    for i in range(1, len(labels) + 1):
                        if i == len(labels) or labels[i] != labels[start]:
                            groups.append((labels[start], 5 + start, 4 + i))
                            start = i
                for label, a, z in groups:
                    z = min(
                        z, a + CE_PLANE_MAX_POINTS - 1
                    )  # all draws are in the table; the chart shows the first ones
                    s = Series(
                        Reference(ws, min_col=yc, min_row=a, max_row=z),
                        Reference(ws, min_col=xc, min_row=a, max_row=z),
                        title=label,
                    )
                    s.marker.symbol = "circle"
                    s.marker.size = 3
                    s.graphicalProperties.line.noFill = True
                    chart.series.append(s)
                chart.width, chart.height = 20, 12
                ws.add_chart(chart, f"{get_column_letter(len(cols) + 2)}4")
        return made + self._other_frames(frames, "psa", "Probabilistic sensitivity analysis")

    def write_regional(self, regional) -> list[str]:
        frames = _frames(regional, "regional")
        made = []
        for key, df in frames.items():
            name = "regional" if key == "regional" else f"regional_{key}"
            ws, _ = self._frame_sheet(
                name,
                df,
                "Regional comparison (engine values): local currency, US$ and international $ (PPP)"
                if key == "regional"
                else f"Regional comparison: {key}",
            )
            made.append(ws.title)
        return made

    # ------------------------------------------------------------------ about
    def write_about(self, extra_sheets: list[str]):
        ws = self.about
        prov = run_json(self.command, describe(self.base), self.base.inputs.hashes)
        c, spec = self.country, self.spec
        conv = prov["conventions"]
        _title(
            ws,
            "cea report: cost-effectiveness of immunoglobulin replacement (IVIG/SCIG) with bispecific antibodies in myeloma",
        )
        put(
            ws,
            2,
            1,
            "Question: which immunoglobulin replacement strategy (none, preemptive or primary; IVIG or SCIG) is cost-effective for adults "
            "with relapsed/refractory multiple myeloma on a bispecific antibody, from the health-care payer's perspective?",
            font=NOTE_FONT,
        )
        rows = [
            ("country", f"{c.name} ({c.code})"),
            ("currency", c.currency),
            ("price_year", c.price_year),
            ("perspective", conv["perspective"]),
            ("scenario", f"{self.ptable.scenario.name}: {self.ptable.scenario.description}"),
            ("strategies", ", ".join(spec.strategy_names)),
            ("horizon", f"{spec.n_cycles} cycles = {spec.n_cycles * spec.dt:.4g} years"),
            ("cycle_length", f"{spec.cycle_days:g} days = {spec.dt:.6g} years"),
            ("discount_rate_costs", spec.discount_rate_costs),
            ("discount_rate_effects", spec.discount_rate_effects),
            ("discount_timing", conv["discount_timing"]),
            ("within_cycle_correction", str(conv["within_cycle_correction"])),
            ("transition_rewards", conv["transition_rewards"]),
            (
                "start_rewards",
                "counted once at time 0, not discounted (SCIG training when SCIG starts at bsAb start)",
            ),
            (
                "competing_risks",
                "exits (death, bsAb discontinuation) compete: p_i = H_i/H (1 - exp(-H)); internal IgG/IgRT changes compete among those remaining",
            ),
            ("subgroups", "igg_isotype and non_igg cohorts, weighted by p_igg_isotype"),
            ("wtp_per_qaly", f"{c.wtp_per_qaly:,.0f} {c.currency} ({c.wtp_basis})"),
            (
                "calibrated (per year)",
                ", ".join(f"{k} = {v:.10g}" for k, v in self.base.calibrated.items())
                + " (calibrated by the engine, not recomputed in the workbook)",
            ),
            ("seed", prov.get("seed")),
            ("version", f"cea {__version__}"),
            ("git_commit", prov.get("git_commit") or "unknown"),
            ("command", self.command),
            ("python", prov.get("python")),
            ("packages", ", ".join(f"{k} {v}" for k, v in prov.get("packages", {}).items())),
            (
                "recalculate",
                "Excel recalculates on opening (full calculation on load); LibreOffice: Data > Calculate > Recalculate Hard (Ctrl+Shift+F9). "
                "Then see checks!D4:D7.",
            ),
        ]
        put(ws, 4, 1, "item", font=HEADER_FONT, fill=HEADER_FILL)
        put(ws, 4, 2, "value", font=HEADER_FONT, fill=HEADER_FILL)
        r = 5
        for key, value in rows:
            put(ws, r, 1, key)
            put(
                ws,
                r,
                2,
                value
                if isinstance(value, (int, float)) and not isinstance(value, bool)
                else str(value),
            )
            r += 1
        r += 1
        put(ws, r, 1, "CHEERS 2022 item", font=HEADER_FONT, fill=HEADER_FILL)
        put(ws, r, 2, "where this workbook answers it", font=HEADER_FONT, fill=HEADER_FILL)
        r += 1
        has = set(extra_sheets)
        has_verification = hasattr(self, "verification")
        uncertainty = (
            ", ".join(s for s in extra_sheets if s.startswith(("dsa", "psa")))
            or "not in this run (cea dsa / cea psa)"
        )
        cheers = [
            (
                "5 study population",
                "about (question); inputs: q_start_age_years, q_body_weight_kg, p_igg_isotype",
            ),
            ("6 setting and location", f"about: {c.name}; prices; life_table"),
            ("7 comparators", "strategies"),
            ("8 perspective", "about: perspective"),
            ("9 time horizon", "about: horizon; settings: n_cycles, cycle_days"),
            (
                "10 discount rate",
                "about; settings: discount_rate_costs, discount_rate_effects; cycles!E:F",
            ),
            (
                "11-13 outcomes, measurement and valuation",
                "inputs: u_ and q_qaly_loss_ parameters with sources; per_state: utility_per_cycle",
            ),
            (
                "14 resources and costs",
                "prices; per_state (resource use per state and cycle); trace sheets (costs by category)",
            ),
            (
                "15 currency, price date and conversion",
                "about; prices: currency, price_year, inflation_factor",
            ),
            (
                "16 rationale and description of model",
                "about (conventions); per_state; cycles; trace sheets",
            ),
            (
                "17 analytics and assumptions",
                "settings; inputs (calibrated rates); cycles; trace sheets (competing risks); "
                "validation: checks (workbook vs engine)"
                + (
                    "; verification (TECH-VER black-box checks of the engine)"
                    if has_verification
                    else ""
                ),
            ),
            (
                "18 characterising heterogeneity",
                "trace sheets: igg_isotype and non_igg subgroups, weighted by p_igg_isotype",
            ),
            ("20 characterising uncertainty", uncertainty),
            ("22 study parameters", "inputs: value, range, distribution, unit, source, evidence"),
            ("23 summary of main results", "results; incremental; comparisons"),
            ("24 effect of uncertainty", uncertainty),
        ]
        if "regional" in has:
            cheers.append(("6 setting and location (other countries)", "regional"))
        for item, where in cheers:
            put(ws, r, 1, item)
            put(ws, r, 2, where)
            r += 1
        r += 1
        put(ws, r, 1, "input file", font=HEADER_FONT, fill=HEADER_FILL)
        put(ws, r, 2, "sha256", font=HEADER_FONT, fill=HEADER_FILL)
        r += 1
        for fname, sha in sorted(self.base.inputs.hashes.items()):
            put(ws, r, 1, fname)
            put(ws, r, 2, sha)
            r += 1
        if self.ptable.scenario.sha256:
            put(ws, r, 1, str(self.ptable.scenario.path))
            put(ws, r, 2, self.ptable.scenario.sha256)
            r += 1
        r += 1
        put(ws, r, 1, "sheets", font=HEADER_FONT, fill=HEADER_FILL)
        r += 1
        for name, text in SHEET_NOTES.items():
            put(ws, r, 1, name)
            put(ws, r, 2, text)
            r += 1
            if name != "checks":
                continue
            # the optional sheets, in workbook order, after checks
            optional = (["verification"] if has_verification else []) + list(extra_sheets)
            for extra in optional:
                put(ws, r, 1, extra)
                put(
                    ws,
                    r,
                    2,
                    OPTIONAL_SHEET_NOTES.get(extra, "optional analysis table (engine values)"),
                )
                r += 1
        _finish(ws, {1: 40, 2: 130})
        for row in ws.iter_rows(min_row=5, max_row=r, min_col=2, max_col=2):
            for cell in row:
                cell.alignment = WRAP


SHEET_NOTES = {
    "inputs": "every parameter with value, unit, range, distribution, source and evidence tag; model_value is the named cell the formulas use",
    "prices": "unit costs in the country's currency and price year; inflation factor from the item's price year",
    "strategies": "the strategies compared; dose, interval, flat dose and vial size are referenced",
    "settings": "cycle length, horizon, discount rates, WTP and the model's constants (named cells)",
    "results": "per strategy totals (formulas over the trace sheets)",
    "incremental": "live full incremental analysis; the engine's table on the right",
    "comparisons": "live named comparisons",
    "checks": "workbook totals beside the engine's values with their differences; PASS/FAIL in D7",
    "per_state": "per strategy and state: rates and rewards per person-cycle",
    "cycles": "per cycle: time, correction weights, discount factors, time-dependent hazards",
    "life_table": "background mortality by single year of age",
    "trace_<strategy>": "per strategy and subgroup: hazards, transition probabilities, trace, events, costs, QALYs; totals in rows 4-9",
}

OPTIONAL_SHEET_NOTES = {
    "verification": "TECH-VER black-box checks of the engine (cea check): PASS/FAIL, detail, tolerance",
    "dsa": "one-way DSA: tornado table (engine values) with a native bar chart",
    "dsa_tornado_icer": "one-way DSA: the tornado table ordered for the ICER",
    "psa": "PSA summary (engine values)",
    "psa_ceac": "cost-effectiveness acceptability curves, native line chart",
    "psa_ce_plane": "cost-effectiveness plane per draw, native scatter chart",
    "psa_incremental_means": "PSA: incremental analysis of the mean costs and QALYs over the draws",
    "psa_evpi": "PSA: expected value of perfect information by WTP",
    "psa_evppi": "PSA: expected value of partial perfect information by parameter group",
    "psa_evppi_by_wtp": "PSA: EVPPI by parameter group and WTP",
    "psa_convergence": "PSA: means and Monte Carlo standard errors by number of draws",
    "psa_headline": "PSA: headline numbers",
    "regional": "regional comparison (engine values)",
}

# (from, to) of the 18 possible transitions, in the order of the trace sheet's p_ columns
TRANSITIONS = (
    ("N", "N"),
    ("N", "L"),
    ("N", "I"),
    ("N", "O"),
    ("N", "D"),
    ("L", "L"),
    ("L", "I"),
    ("L", "O"),
    ("L", "D"),
    ("I", "I"),
    ("I", "OI"),
    ("I", "O"),
    ("I", "D"),
    ("OI", "OI"),
    ("OI", "O"),
    ("OI", "D"),
    ("O", "O"),
    ("O", "D"),
)


def _frames(obj, default_key: str) -> dict[str, pd.DataFrame]:
    """Tables passed for an optional analysis: a DataFrame, a mapping or a dataclass of them.
    A dict entry (e.g. a headline) becomes a key/value table; other entries are ignored."""
    if obj is None:
        return {}
    if isinstance(obj, pd.DataFrame):
        return {default_key: obj}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if not isinstance(obj, Mapping):
        raise CeaError(
            f"report: {default_key} must be a DataFrame or a mapping of DataFrames, got {type(obj).__name__}"
        )
    out = {}
    for key, value in obj.items():
        if isinstance(value, pd.DataFrame):
            out[str(key)] = value
        elif isinstance(value, Mapping) and value:
            out[str(key)] = pd.DataFrame(
                {
                    "key": [str(k) for k in value],
                    "value": [
                        _clean(v) if isinstance(v, (int, float, np.number)) else str(v)
                        for v in value.values()
                    ],
                }
            )
    return out


def _pass_text(value) -> str:
    """A check's ``passed`` as PASS or FAIL (a bool, or the text PASS/FAIL/true/false)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("pass", "true", "yes", "1"):
            return "PASS"
        if text in ("fail", "false", "no", "0", ""):
            return "FAIL"
        raise CeaError(f"report: a check's passed value must be PASS or FAIL, got {value!r}")
    value = _clean(value)
    return "PASS" if value is not None and bool(value) else "FAIL"


def _has_named_index(df: pd.DataFrame) -> bool:
    return df.index.name is not None or not isinstance(df.index, pd.RangeIndex)


def _wide_ceac(df: pd.DataFrame) -> pd.DataFrame:
    """A CEAC as wtp x strategy; a long table (wtp, strategy, probability) is pivoted."""
    cols = set(df.columns)
    if {"wtp", "strategy"} <= cols:
        value = next(
            (c for c in ("probability", "prob", "p_cost_effective", "value") if c in cols), None
        )
        if value is not None:
            wide = df.pivot_table(index="wtp", columns="strategy", values=value, sort=False)
            wide.columns = [str(c) for c in wide.columns]
            return wide.reset_index()
    if "wtp" not in cols and df.index.name:
        df = df.reset_index()
    return df


def _model_unit(name: str, unit: str, scale: float) -> str:
    if name.startswith("r_") and scale != 1.0:
        return "per year"
    if name.startswith("t_") and scale != 1.0:
        return "years"
    return str(unit)


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


def write_report(
    base,
    path: Path | str,
    command: str = "",
    dsa=None,
    psa=None,
    regional=None,
    verification: pd.DataFrame | None = None,
    verification_note: str = "",
) -> Path:
    """Write report.xlsx for a base case: inputs, live formula traces, results, checks.

    Parameters
    ----------
    base : cea.pipeline.base.BaseCase
        The deterministic base case (inputs, parameter table, spec, engine results).
    path : where to write the workbook (``.xlsx``).
    command : the command line that produced the run (recorded on the ``about`` sheet).
    dsa : DataFrame or dict of DataFrames, optional
        Tornado table with columns ``parameter, low_value, high_value, inmb_low, inmb_high``
        (sheet ``dsa`` with a native bar chart); other entries get their own sheets.
    psa : dict of DataFrames, optional
        ``summary`` (sheet ``psa``), ``ceac`` (wtp x strategy, or long wtp/strategy/probability;
        native line chart), ``ce_plane`` (draws with ``inc_cost``, ``inc_qaly`` and optionally
        ``comparison``; native scatter chart); other entries get their own sheets.
    regional : DataFrame or dict of DataFrames, optional
        The regional comparison table (sheet ``regional``).
    verification : DataFrame, optional
        The TECH-VER check table of :func:`cea.verify.run_checks` (columns ``check, passed,
        detail, tolerance``; what ``cea check`` prints): sheet ``verification``, one row per
        check with PASS/FAIL. ``verification_note``: a sentence added to the sheet's note
        (e.g. which PSA/DSA tables the table checks ran on).

    Returns
    -------
    Path of the written workbook.
    """
    path = Path(path)
    wb = _ReportWriter(base, command).build(
        dsa=dsa,
        psa=psa,
        regional=regional,
        verification=verification,
        verification_note=verification_note,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    save_workbook(wb, path)
    return path


# =========================================================================== commands


def verification_summary(table: pd.DataFrame) -> str:
    """One terminal line: how many of the report's verification checks passed."""
    n_ok = sum(_pass_text(v) == "PASS" for v in table["passed"])
    failed = [
        str(c)
        for c, v in zip(table["check"], table["passed"], strict=True)
        if _pass_text(v) != "PASS"
    ]
    return (
        f"verification: {n_ok} of {len(table)} TECH-VER checks passed"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
        + " (report.xlsx, sheet verification)"
    )

"""The checks and verification sheets: the workbook's own totals beside the engine's values,
trace and black-box consistency (checks); the TECH-VER check table of the engine
(:func:`cea.verify.run_checks`, what ``cea check`` prints) as PASS/FAIL (verification)."""

from __future__ import annotations

import math

import pandas as pd
from openpyxl.utils import get_column_letter

from cea.errors import CeaError
from cea.report.sheets.cells import (
    FAIL_FILL,
    FMT_GENERAL,
    FMT_INT,
    FMT_QALY,
    HEADER_FONT,
    WARN_FILL,
    WRAP,
    abs_ref,
    clean,
    finish_sheet,
    put,
    put_formula,
    sheet_ref,
    write_header,
    write_title,
)
from cea.report.sheets.state import ReportState, trace_columns

#: The verdict of a face-validity check outside its published band (as cea.verify.WARN prints
#: it): counted as passed, shown apart.
WARN = "WARN"
#: Columns of the verification sheet (:data:`cea.verify.CHECK_COLUMNS`); ``passed`` as PASS/FAIL.
VERIFICATION_COLUMNS = ["check", "passed", "detail", "tolerance"]

CHECK_COLUMNS = [
    "check",
    "strategy",
    "quantity",
    "workbook",
    "engine",
    "difference",
    "relative_difference",
    "within_tolerance",
]
CHECK_FIRST = 10  # first check row (header on row 9, summary on rows 4-7)
WITHIN = 'IF(G{r}<=check_tolerance,"yes","NO")'  # column H of every check


class _Checks:
    """Writes the check rows one after the other."""

    def __init__(self, rs: ReportState, ws):
        self.rs, self.ws, self.r = rs, ws, CHECK_FIRST

    def _label(self, check, strategy, qty):
        put(self.ws, self.r, 1, check)
        put(self.ws, self.r, 2, strategy)
        put(self.ws, self.r, 3, qty)

    def numeric(self, check, strategy, qty, wb_ref, engine, fmt=FMT_GENERAL):
        """A number of the workbook beside the engine's; blank in both when the engine has none."""
        ws, r = self.ws, self.r
        self._label(check, strategy, qty)
        put_formula(ws, r, 4, wb_ref, fmt)
        engine = clean(engine)
        put(ws, r, 5, engine, fmt)
        if (
            engine is None
        ):  # the engine has no number here (e.g. no ICER): blank in the workbook too
            put_formula(ws, r, 6, f'IF(D{r}="",0,1)')
            put_formula(ws, r, 7, f"F{r}")
        else:
            put_formula(ws, r, 6, f'IF(ISNUMBER(D{r}),D{r}-E{r},"")', fmt)
            put_formula(ws, r, 7, f"IF(ISNUMBER(F{r}),IF(E{r}=0,ABS(F{r}),ABS(F{r})/ABS(E{r})),1)")
        put_formula(ws, r, 8, WITHIN.format(r=r))
        self.r += 1

    def text(self, check, strategy, qty, wb_ref, engine):
        """A text of the workbook (formula ``wb_ref``) equal to the expected ``engine``."""
        ws, r = self.ws, self.r
        self._label(check, strategy, qty)
        put_formula(ws, r, 4, wb_ref)
        put(ws, r, 5, engine)
        put_formula(ws, r, 7, f"IF(D{r}=E{r},0,1)")
        put_formula(ws, r, 8, WITHIN.format(r=r))
        self.r += 1

    def zero(self, check, strategy, qty, wb_ref):
        """A number of the workbook that must be 0."""
        ws, r = self.ws, self.r
        self._label(check, strategy, qty)
        put_formula(ws, r, 4, wb_ref, FMT_GENERAL)
        put(ws, r, 5, 0.0)
        put_formula(ws, r, 6, f"D{r}-E{r}", FMT_GENERAL)
        put_formula(ws, r, 7, f"ABS(F{r})", FMT_GENERAL)
        put_formula(ws, r, 8, WITHIN.format(r=r))
        self.r += 1


# ---------------------------------------------------------------------- checks
def write_checks(rs: ReportState):
    ws = rs.checks = rs.sheet("checks")
    write_title(
        ws,
        "Checks: the workbook's own totals beside the engine's values",
        "relative_difference = |workbook - engine| / |engine| (absolute when the engine value is 0). The engine values were "
        "written by cea at the time of the run; change an input and the differences show how far the workbook has moved.",
    )
    write_header(ws, 9, CHECK_COLUMNS)
    checks = _Checks(rs, ws)
    _result_checks(rs, checks)
    _incremental_checks(rs, checks)
    _comparison_checks(rs, checks)
    last_numeric = checks.r - 1
    _trace_checks(rs, checks)
    _black_box_checks(rs, checks)
    last = checks.r - 1
    _check_summary(ws, CHECK_FIRST, last_numeric, last)
    rs.check_rows = (CHECK_FIRST, last)
    finish_sheet(ws, {1: 14, 2: 40, 3: 40, 4: 18, 5: 18, 6: 14, 7: 18, 8: 16}, freeze="A10")


def _result_checks(rs: ReportState, checks: _Checks):
    """Every number of the results sheet against the engine's results."""
    res = rs.base.results.set_index("strategy")
    for st in rs.strategies:
        for name in rs.base.results.columns:
            if name in ("strategy", "label"):
                continue
            fmt = rs.money if name.startswith("cost") else FMT_QALY
            value = res.loc[st.strategy, name]
            checks.numeric("results", st.strategy, name, rs.res(st.strategy, name), value, fmt)


def _incremental_checks(rs: ReportState, checks: _Checks):
    """Status, reference, ICER and NMB of the live incremental analysis against the engine's."""
    inc = rs.base.incremental.set_index("strategy")
    ref = lambda col, row: abs_ref("incremental", rs.incr_col[col], row)  # noqa: E731
    for st in rs.strategies:
        s = st.strategy
        rr = rs.incr_row[s]
        checks.text("incremental", s, "status", ref("status", rr), inc.loc[s, "status"])
        checks.text("incremental", s, "reference", ref("reference", rr), inc.loc[s, "reference"])
        checks.numeric("incremental", s, "icer", ref("icer", rr), inc.loc[s, "icer"], rs.money)
        if "nmb" in inc.columns:
            checks.numeric("incremental", s, "nmb", ref("nmb", rr), inc.loc[s, "nmb"], rs.money)


def _comparison_checks(rs: ReportState, checks: _Checks):
    """The named comparisons against the engine's."""
    comps = rs.base.comparisons
    for _, rec in comps.iterrows() if not comps.empty else []:
        key = (rec["intervention"], rec["comparator"])
        if key not in rs.comp_row:
            continue
        rr = rs.comp_row[key]
        for name in ("inc_cost", "inc_effect", "icer", "inmb"):
            fmt = FMT_QALY if name == "inc_effect" else rs.money
            ref = abs_ref("comparisons", rs.comp_col[name], rr)
            checks.numeric("comparisons", rec["comparison"], name, ref, rec[name], fmt)


def _trace_checks(rs: ReportState, checks: _Checks):
    """Trace consistency: each trace row sums to 1."""
    c = get_column_letter(trace_columns().index("row_sum_error") + 1)
    for st in rs.strategies:
        sheet = sheet_ref(rs.trace_sheet[st.strategy])
        for sg, (a, z) in rs.trace_blocks[st.strategy].items():
            largest = f"MAX({sheet}!{c}{a + 1}:{c}{z})"
            checks.zero("trace", st.strategy, f"{sg}: largest |row sum - 1|", largest)


def _black_box_checks(rs: ReportState, checks: _Checks):
    """Black-box expectations (TECH-VER): QALY <= LY, discounted <= undiscounted, costs >= 0."""
    for st in rs.strategies:
        s = st.strategy
        for what, formula in (
            ("qaly <= ly", f"{rs.res(s, 'qaly')}<={rs.res(s, 'ly')}"),
            (
                "discounted cost <= undiscounted",
                f"{rs.res(s, 'cost')}<={rs.res(s, 'cost_undiscounted')}",
            ),
            ("cost >= 0", f"{rs.res(s, 'cost')}>=0"),
        ):
            checks.text("black box", s, what, f'IF({formula},"yes","NO")', "yes")


def _check_summary(ws, first: int, last_numeric: int, last: int):
    """Rows 4-7: largest relative difference, tolerance, checks failing, verdict."""
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


# ---------------------------------------------------------------------- verification
def write_verification(rs: ReportState, table: pd.DataFrame, note: str = ""):
    """The TECH-VER check table (:func:`cea.verify.run_checks`): one row per check."""
    missing = [c for c in VERIFICATION_COLUMNS if c not in table.columns]
    if missing:
        raise CeaError(
            f"report: the verification table needs columns {', '.join(VERIFICATION_COLUMNS)}; "
            f"missing {', '.join(missing)}"
        )
    ws = rs.verification = rs.sheet("verification")
    passed = [
        WARN if pass_text(v) == "PASS" and str(d).startswith(WARN) else pass_text(v)
        for v, d in zip(table["passed"], table["detail"], strict=True)
    ]
    n_ok = sum(p != "FAIL" for p in passed)
    n_warn = passed.count(WARN)
    write_title(
        ws,
        "Verification: TECH-VER black-box checks of the engine (Buyukkaramikli et al., "
        "PharmacoEconomics 2019;37:1391)",
        "Each check changes inputs to values whose effect is known a priori, runs the Python engine and "
        "compares (cea.verify.run_checks: the table 'cea check' prints; docs/verification.md). Computed "
        "when this workbook was written, on the engine, not on this workbook's formulas (the checks sheet "
        "compares those with the engine)." + (f" {note}" if note else ""),
    )
    summary = f"{'PASS' if n_ok == len(passed) and passed else 'FAIL'}: {n_ok} of {len(passed)} checks passed"
    if n_warn:
        summary += (
            f" ({n_warn} face-validity values outside their published band: WARN, not failures)"
        )
    put(ws, 3, 1, summary, font=HEADER_FONT)
    write_header(ws, 4, VERIFICATION_COLUMNS)
    for i, (row, verdict) in enumerate(
        zip(table[VERIFICATION_COLUMNS].itertuples(index=False), passed, strict=True)
    ):
        r = 5 + i
        put(ws, r, 1, str(row.check))
        put(
            ws,
            r,
            2,
            verdict,
            fill=FAIL_FILL if verdict == "FAIL" else WARN_FILL if verdict == WARN else None,
        )
        detail = "" if clean(row.detail) is None else str(row.detail)
        tolerance = "" if clean(row.tolerance) is None else str(row.tolerance)
        put(ws, r, 3, detail).alignment = WRAP
        put(ws, r, 4, tolerance).alignment = WRAP
        # wrapped text needs its row height: spreadsheets do not fit it when they open a file
        lines = max(math.ceil(len(detail) / 100), math.ceil(len(tolerance) / 40), 1)
        ws.row_dimensions[r].height = 15 * lines
    finish_sheet(ws, {1: 28, 2: 9, 3: 110, 4: 45}, freeze="A5")


def pass_text(value) -> str:
    """A check's ``passed`` as PASS or FAIL (a bool, or the text PASS/FAIL/true/false)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("pass", "true", "yes", "1"):
            return "PASS"
        if text in ("fail", "false", "no", "0", ""):
            return "FAIL"
        raise CeaError(f"report: a check's passed value must be PASS or FAIL, got {value!r}")
    value = clean(value)
    return "PASS" if value is not None and bool(value) else "FAIL"

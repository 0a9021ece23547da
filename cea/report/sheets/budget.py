"""The ``budget`` sheet: the budget impact of ``cea budget`` as live formulas over the trace
sheets (:mod:`cea.pipeline.budget`, :mod:`cea.analysis.budget`).

Blocks, top to bottom: the inputs of the budget (new patients in year 1, growth, exchange
rate: editable), the new patients by year, the shares of each mix (editable, with their sums),
the per-patient numbers by year since start (SUMPRODUCT of a trace sheet's row contributions
and the year split), the budget by calendar year for the current mix, the new mix and their
difference, and at the bottom the year split of the trace rows.
"""

from __future__ import annotations

from openpyxl.utils import get_column_letter

from cea.errors import CeaError
from cea.igrt.spec import COST_CATEGORIES, FLOWS, SUBGROUPS
from cea.pipeline.budget import RESOURCES
from cea.report.sheets.cells import (
    FMT_GENERAL,
    FMT_INT,
    HEADER_FONT,
    NOTE_FONT,
    TOTAL_FILL,
    finish_sheet,
    put,
    put_formula,
    write_title,
)
from cea.report.sheets.state import ReportState, trace_columns

FIRST_YEAR_COL = 3  # column C holds year 1
FMT_YEAR = '"year "0'  # a year number shown as "year 1"
#: trace-sheet column of each measure the budget counts (chair hours: from infusions)
TRACE_COLUMN = {
    **{c: c for c in COST_CATEGORIES},
    "cost": "cost",
    "ig_grams": "ig_grams",
    "infusions": "infusions",
    "chair_hours": "infusions",
    "severe_infections": "severe_infections",
    "infection_deaths": "infection_deaths",
    "life_years": "ly",
}
MEASURES = (*COST_CATEGORIES, "cost", *(m for m, _ in RESOURCES))


def _header(ws, r: int, first: str, second: str, columns: list, fmt: str | None = None) -> None:
    """A block's header row: two labels, then one cell per column from the first year's."""
    put(ws, r, 1, first, font=HEADER_FONT)
    put(ws, r, 2, second, font=HEADER_FONT)
    for j, text in enumerate(columns):
        put(ws, r, FIRST_YEAR_COL + j, text, fmt, font=HEADER_FONT)


def write_budget(rs: ReportState, b) -> list[str]:
    """The budget sheet of a :class:`cea.pipeline.budget.Budget` whose base case is the
    report's; returns the sheet's name."""
    ws = rs.sheet("budget")
    c, Y = rs.country, b.years
    names = b.strategies
    missing = [n for n in names if n not in rs.trace_sheet]
    if missing:
        raise CeaError(
            f"the budget mix names {', '.join(missing)}, not in this report's strategies"
        )
    yc = [get_column_letter(FIRST_YEAR_COL + y) for y in range(Y)]  # year columns
    total_col = FIRST_YEAR_COL + Y
    write_title(
        ws,
        f"Budget impact, {c.name} ({c.code}): undiscounted, {c.currency} {c.price_year} prices; "
        "every cell a formula over the trace sheets except the inputs marked 'input'",
        "Each calendar year's eligible patients start a bispecific on its first day and are split "
        "between strategies by the mix; patients who started earlier are still counted. Per-patient "
        "numbers by year since start = weighted over subgroups, SUMPRODUCT(trace row contributions, "
        "year split) (+ the start row in year 1). Budget in calendar year y = sum over strategies "
        "and start years j <= y of new patients(j) x share(j) x per-patient(y - j + 1).",
    )
    r = 4
    put(ws, r, 1, "inputs", font=HEADER_FONT)
    inputs = {
        "new_patients_year_1": (
            c.population_eligible_annual,
            "patients",
            "countries.csv population_eligible_annual (input)",
        ),
        "growth": (
            c.population_growth_annual,
            "per year",
            "countries.csv population_growth_annual (input)",
        ),
        "fx": (c.fx_lcu_per_usd, f"{c.currency} per US$", f"macro.csv, {c.macro_year} (input)"),
    }
    cell = {}
    for key, (value, unit, note) in inputs.items():
        r += 1
        put(ws, r, 1, key)
        put(ws, r, FIRST_YEAR_COL, value, FMT_GENERAL)
        put(ws, r, 2, unit)
        put(ws, r, FIRST_YEAR_COL + 1, note, font=NOTE_FONT)
        cell[key] = f"${yc[0]}${r}"
    r += 2
    put(ws, r, 1, "new patients", font=HEADER_FONT)
    year_row = r  # the year numbers the formulas use
    for y in range(Y):
        put(ws, r, FIRST_YEAR_COL + y, y + 1, FMT_YEAR, font=HEADER_FONT)
    r += 1
    put(ws, r, 1, "starting a bispecific")
    put(ws, r, 2, "patients")
    n1, g = cell["new_patients_year_1"], cell["growth"]
    for y in range(Y):
        put_formula(ws, r, FIRST_YEAR_COL + y, f"{n1}*(1+{g})^({yc[y]}${year_row}-1)", FMT_GENERAL)
    new_row = r
    # shares (inputs) and their sums
    r += 2
    _header(ws, r, "mix", "strategy", [f"year {y + 1}" for y in range(Y)])
    put(ws, r, total_col, "budget_mix.csv (input)", font=NOTE_FONT)
    share_row: dict[tuple[str, str], int] = {}
    for mix, shares in b.shares.items():
        first = r + 1
        for k, name in enumerate(names):
            r += 1
            put(ws, r, 1, mix)
            put(ws, r, 2, name)
            for y in range(Y):
                put(ws, r, FIRST_YEAR_COL + y, float(shares[k, y]), FMT_GENERAL)
            share_row[(mix, name)] = r
        r += 1
        put(ws, r, 1, mix)
        put(ws, r, 2, "sum (must be 1)")
        for y in range(Y):
            put_formula(ws, r, FIRST_YEAR_COL + y, f"SUM({yc[y]}{first}:{yc[y]}{r - 1})",
                        FMT_GENERAL, fill=TOTAL_FILL)  # fmt: skip
    # the year split lives at the bottom: its rows are known now
    n_rows = rs.T + 1
    per_patient_rows = len(names) * len(MEASURES)
    budget_rows = 3 * (len(MEASURES) + 1)
    split_first = r + 8 + per_patient_rows + budget_rows  # state rewards
    flow_first = split_first + n_rows + 3  # events and transition rewards
    # per patient by year since start
    r += 2
    _header(ws, r, "per patient", "measure", [f"year {y + 1} since start" for y in range(Y)])
    cols = trace_columns()
    pp_row: dict[tuple[str, str], int] = {}
    w = rs.n("p_igg_isotype")
    for name in names:
        st = next(s for s in rs.strategies if s.strategy == name)
        sheet = rs.trace_sheet[name]
        blocks = rs.trace_blocks[name]
        is_ivig = st.uses_igrt and not st.is_scig
        first_category = r + 1
        for m in MEASURES:
            r += 1
            put(ws, r, 1, name)
            put(ws, r, 2, m)
            fmt = rs.money if m.startswith("cost") else FMT_GENERAL
            if m == "cost":  # the total of the categories above
                for y in range(Y):
                    put_formula(ws, r, FIRST_YEAR_COL + y,
                                f"SUM({yc[y]}{first_category}:{yc[y]}{r - 1})", fmt)  # fmt: skip
                pp_row[(name, m)] = r
                continue
            col = get_column_letter(cols.index(TRACE_COLUMN[m]) + 1)
            top = flow_first if m in FLOWS else split_first
            for y in range(Y):
                split = f"${yc[y]}${top}:${yc[y]}${top + n_rows - 1}"
                parts = []
                for sg in SUBGROUPS:
                    start, end = blocks[sg]
                    rows = f"'{sheet}'!${col}${start + 1}:${col}${end}"
                    term = f"SUMPRODUCT({rows},{split})"
                    if y == 0:
                        term += f"+'{sheet}'!${col}${start}"
                    parts.append(term)
                formula = f"{w}*({parts[0]})+(1-{w})*({parts[1]})"
                if m == "chair_hours":
                    formula = f"({formula})*{rs.n('q_ivig_chair_hours')}" if is_ivig else "0"
                put_formula(ws, r, FIRST_YEAR_COL + y, formula, fmt)
            pp_row[(name, m)] = r
    # budget by calendar year
    r += 2
    _header(ws, r, "budget", "measure", [*(f"calendar year {y + 1}" for y in range(Y)), "total"])
    budget_row: dict[tuple[str, str], int] = {}
    for mix in ("current", "new", "net"):
        for m in (*MEASURES, "cost_usd"):
            r += 1
            put(ws, r, 1, mix)
            put(ws, r, 2, m)
            fmt = (
                FMT_INT if m == "cost_usd" else (rs.money if m.startswith("cost") else FMT_GENERAL)
            )
            for y in range(Y):
                if m == "cost_usd":
                    f = f"{yc[y]}{budget_row[(mix, 'cost')]}/{cell['fx']}"
                elif mix == "net":
                    f = f"{yc[y]}{budget_row[('new', m)]}-{yc[y]}{budget_row[('current', m)]}"
                else:
                    terms = [
                        f"{yc[j]}${new_row}*{yc[j]}${share_row[(mix, name)]}"
                        f"*{yc[y - j]}${pp_row[(name, m)]}"
                        for name in names
                        for j in range(y + 1)
                    ]
                    f = "+".join(terms)
                put_formula(ws, r, FIRST_YEAR_COL + y, f, fmt)
            put_formula(ws, r, total_col, f"SUM({yc[0]}{r}:{yc[-1]}{r})", fmt, fill=TOTAL_FILL)
            budget_row[(mix, m)] = r
    # the year split of the trace rows: state rewards, then events and transition rewards
    dt = rs.n("cycle_length_years")
    for flow, top in ((False, split_first), (True, flow_first)):
        r += 2
        put(ws, r, 1, "year split, " + ("events" if flow else "states"), font=HEADER_FONT)
        put(
            ws,
            r,
            2,
            "events and transition rewards (infection deaths, SCIG training, end of life): row t "
            "holds the cycle ending there, [(t - 1), t] cycles; row 0 only start rewards"
            if flow
            else "state rewards: row t of a trace sheet stands for [(t - 1/2), (t + 1/2)] cycles "
            "clipped to the model's time",
            font=NOTE_FONT,
        )
        r += 1
        _header(ws, r, "trace row t", "from (years)", list(range(1, Y + 1)), FMT_YEAR)
        head = r
        assert r + 1 == top, "budget sheet layout"
        for t in range(n_rows):
            r += 1
            put(ws, r, 1, t)
            if flow:
                put_formula(ws, r, 2, f"MAX(($A{r}-1)*{dt},0)", FMT_GENERAL)
                hi = f"$A{r}*{dt}"
            else:
                put_formula(ws, r, 2, f"MAX(($A{r}-1/2)*{dt},0)", FMT_GENERAL)
                hi = f"MIN(($A{r}+1/2)*{dt},horizon_years)"
            for y in range(Y):
                a = f"{yc[y]}${head}"
                share = f"MAX(0,MIN({hi},{a})-MAX($B{r},{a}-1))/({hi}-$B{r})"
                if flow:  # row 0 of a flow: a point at time 0, in year 1
                    share = f"IF({hi}>$B{r},{share},IF({a}=1,1,0))"
                put_formula(ws, r, FIRST_YEAR_COL + y, share, FMT_GENERAL)
    finish_sheet(ws, {1: 22, 2: 26}, freeze="C4", default_width=16)
    return [ws.title]

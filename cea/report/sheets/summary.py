"""The ``summary`` sheet, first in the workbook: the decision in words (the engine's, at the
time of writing), then the key table and the cost-effective strategy as live formulas over the
``incremental`` sheet, so that an edited input moves them."""

from __future__ import annotations

from openpyxl.utils import get_column_letter

from cea.report.sheets.cells import (
    FMT_QALY,
    HEADER_FONT,
    NOTE_FONT,
    TOTAL_FILL,
    finish_sheet,
    put,
    put_formula,
    write_header,
    write_title,
)
from cea.report.sheets.results import INCREMENTAL_COLUMNS
from cea.report.sheets.state import ReportState

#: Key table: (header, incremental column, number format kind)
KEY_COLUMNS = (
    ("strategy", "strategy", None),
    ("label", "label", None),
    ("cost (discounted)", "cost", "money"),
    ("QALY (discounted)", "qaly", "qaly"),
    ("LY (discounted)", "ly", "qaly"),
    ("net monetary benefit at the WTP", "nmb", "money"),
    ("status", "status", None),
    ("ICER vs previous frontier strategy", "icer", "money"),
    ("cost-effective", "optimal", None),
)


def write_summary(rs: ReportState, decision_text: str | None) -> None:
    """The summary sheet (``decision_text``: the decision in words, or None)."""
    ws = rs.sheet("summary")
    c = rs.country
    write_title(
        ws,
        f"Summary: immunoglobulin replacement with bispecific antibodies in myeloma, {c.name} "
        f"({c.code}), scenario {rs.ptable.scenario.name}, {c.currency} {c.price_year}",
        "The key table and the cost-effective strategy below are live formulas (sheet "
        "incremental): change an input and they move. The decision in words is the engine's at "
        "the time of writing.",
    )
    r = 4
    put(ws, r, 1, "willingness to pay per QALY", font=HEADER_FONT)
    put_formula(ws, r, 3, "wtp_per_qaly", rs.money)
    r += 1
    put(ws, r, 1, "cost-effective strategy (live)", font=HEADER_FONT)
    inc = rs.incr.title
    first, last = min(rs.incr_row.values()), max(rs.incr_row.values())
    col = {name: get_column_letter(j + 1) for j, name in enumerate(INCREMENTAL_COLUMNS)}

    def rng(name: str) -> str:
        return f"{inc}!${col[name]}${first}:${col[name]}${last}"

    put_formula(
        ws, r, 3, f"INDEX({rng('label')},MATCH(MAX({rng('nmb')}),{rng('nmb')},0))", fill=TOTAL_FILL
    )
    r += 2
    write_header(ws, r, [h for h, _, _ in KEY_COLUMNS])
    for st in rs.strategies:
        r += 1
        src = rs.incr_row[st.strategy]
        for j, (_, name, kind) in enumerate(KEY_COLUMNS):
            fmt = rs.money if kind == "money" else FMT_QALY if kind == "qaly" else None
            put_formula(ws, r, j + 1, f"{inc}!{col[name]}{src}", fmt)
    r += 1
    put(
        ws,
        r,
        1,
        "status: ND not dominated (on the frontier), D dominated, ED extendedly dominated; "
        "costs and QALYs discounted",
        font=NOTE_FONT,
    )
    r += 2
    put(ws, r, 1, "The decision in words (cea engine, at the time of writing)", font=HEADER_FONT)
    if decision_text is None:
        r += 1
        put(ws, r, 1, "not computed for this report", font=NOTE_FONT)
    else:
        for line in decision_text.splitlines():
            r += 1
            put(ws, r, 1, line)
    finish_sheet(ws, {1: 28, 2: 30, 3: 18, 4: 14, 5: 14, 6: 18, 7: 10, 8: 20, 9: 14})

"""``cea template``: every input table of an inputs folder (or workbook) in one editable Excel
workbook, with data validation, column notes and an about sheet; :mod:`cea.io.workbook` reads
it back."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from cea.io.inputs import (
    EVIDENCE_TAGS,
    PREFIX_DISTS,
    PROBABILITY_PREFIXES,
    RATE_UNITS,
    SETTINGS_SCHEMA,
    TABLES,
    TIME_UNITS,
    Col,
    read_csv_text,
    read_toml,
)
from cea.io.load import load_inputs
from cea.io.workbook import (
    ABOUT_SHEET,
    HEADER_FILL,
    HEADER_FONT,
    SETTINGS_HEADER,
    SETTINGS_SHEET,
    _schema,
    _setting_value,
    _typed,
    _Workbook,
    save_workbook,
    sheet_for,
)

#: Extra empty rows that data validation covers below each table (for rows added by hand).
VALIDATION_EXTRA_ROWS = 500


COLUMN_NOTES = {
    "parameter": "identifier; its prefix states the type and allowed dist (p_ probability, r_ rate, rr_/hr_/or_ ratio, u_ utility, c_ price, q_ quantity, t_ time, k_ shape, d_ discount, n_ count)",
    "value": "base-case value, in the row's unit",
    "se": "standard error (PSA distribution by method of moments); blank: from low/high",
    "low": "low value for the one-way DSA (give both low and high, or neither)",
    "high": "high value for the one-way DSA",
    "dist": "PSA distribution",
    "unit": "unit; rates: per day/week/month/year; times: days/weeks/months/years",
    "category": "group used in reports",
    "group": "dirichlet group",
    "n": "patient count of a dirichlet row",
    "source": "where the number comes from ('assumption' if none); required",
    "evidence": "S sourced, S-d derived from sourced numbers, K known but not re-read, E estimate",
    "note": "free text",
    "strategy": "strategy id",
    "label": "name shown in reports",
    "trigger": "never, at_start (primary), igg_below_threshold (preemptive), after_severe_infection (secondary)",
    "product": "ivig or scig (blank for never)",
    "dose_g_per_kg": "IVIG-equivalent dose per administration",
    "interval_days": "days between administrations",
    "dosing_weight": "actual, ideal, adjusted or flat",
    "flat_dose_g": "grams per administration when dosing_weight is flat",
    "vial_rounding_g": "grams rounded up to this step (0 = none)",
    "start_after_severe_infection": "true: a preemptive strategy also starts IgRT after a severe infection",
    "hr_severe_parameter": "parameter holding the hazard ratio of severe infection on IgRT",
    "country": "ISO2 code",
    "currency": "ISO 4217 code",
    "price_year": "year of the prices (country: results year; price row: year of the source price)",
    "macro_year": "year of PPP, exchange rate and GDP in the macro sheet",
    "wtp_per_qaly": "willingness to pay per QALY in local currency",
    "wtp_basis": "explicit, informal or gdp_multiple",
    "item": "price identifier (c_...)",
}


def _raw_tables(
    source: Path,
) -> tuple[dict[str, tuple[list[str], list[tuple[int, list[str]]], str]], dict]:
    """Every table of an inputs folder or workbook as text: sheet -> (header, rows, delimiter)."""
    inputs = load_inputs(source)  # validates everything first: the template is a valid input
    files = [(TABLES[k][0], TABLES[k][3]) for k in ("parameters", "strategies", "countries")]
    files += [(f"prices/{code}.csv", False) for code in inputs.country_codes()]
    files += [
        (TABLES[k][0], TABLES[k][3])
        for k in (
            "overrides",
            "life_tables",
            "macro",
            "cpi",
            "correlations",
            "validation_targets",
            "budget_mix",
        )
    ]
    out = {}
    if source.suffix.lower() == ".xlsx":
        book = _Workbook(source)
        for file, optional in files:
            sheet = sheet_for(file)
            if optional and not book.has(sheet):
                continue
            header, rows = book.table_text(sheet)
            out[sheet] = (header, rows, ",")
        return out, inputs.settings
    for file, optional in files:
        p = source / file
        if optional and not p.is_file():
            continue
        header, rows, delim = read_csv_text(Path(source.name) / file, p.read_bytes())
        out[sheet_for(file)] = (header, rows, delim)
    settings, _ = read_toml(source / "settings.toml")
    return out, settings


def _put_text(cell, value) -> None:
    cell.value = value
    if isinstance(value, str):
        cell.data_type = "s"  # input text such as "=cmd" stays text


def write_template(source: Path | str, out: Path | str) -> Path:
    """Write every input table of ``source`` (a folder or a workbook) to one workbook."""
    source, out = Path(source), Path(out)
    tables, settings = _raw_tables(source)
    wb = openpyxl.Workbook()
    about = wb.active
    about.title = ABOUT_SHEET
    ws = wb.create_sheet(SETTINGS_SHEET)
    _write_settings(ws, settings)
    for sheet, (header, rows, delim) in tables.items():
        ws = wb.create_sheet(sheet)
        schema = {c.name: c for c in _schema(sheet)}
        for j, name in enumerate(header):
            cell = ws.cell(row=1, column=j + 1)
            _put_text(cell, name)
            cell.font = HEADER_FONT
            cell.fill = HEADER_FILL
            note = _column_note(schema.get(name), name)
            if note:
                cell.comment = Comment(note, "cea")
        for i, (_line, fields) in enumerate(rows):
            for j, text in enumerate(fields[: len(header)]):
                col = schema.get(header[j])
                value = _typed(text, col, delim)
                if col is not None and col.kind == "bool" and isinstance(value, str):
                    value = value.strip().lower()
                _put_text(ws.cell(row=2 + i, column=j + 1), value)
        _validate(ws, sheet, header, rows, schema)
        _format(ws, header)
    _write_about(about, tables, source)
    wb.active = 0
    save_workbook(wb, out)
    return out


def _write_settings(ws, settings: dict) -> None:
    for j, name in enumerate(SETTINGS_HEADER):
        cell = ws.cell(row=1, column=j + 1)
        _put_text(cell, name)
        cell.font = HEADER_FONT
        cell.fill = HEADER_FILL
    r = 2
    for section, values in settings.items():
        for key, value in values.items():
            _put_text(ws.cell(row=r, column=1), section)
            _put_text(ws.cell(row=r, column=2), key)
            if isinstance(value, (list, dict)):
                cell_value = json.dumps(value)  # a JSON list of strings/numbers is a TOML array
            elif isinstance(value, str) and _setting_value(value, "", 0) != value:
                cell_value = json.dumps(value)  # "10" or "true" as a string: quote it
            else:
                cell_value = value
            _put_text(ws.cell(row=r, column=3), cell_value)
            known = SETTINGS_SCHEMA.get(section, {})
            _put_text(ws.cell(row=r, column=4), "" if key in known else "not a known setting")
            r += 1
    _format(ws, list(SETTINGS_HEADER), widths={1: 10, 2: 28, 3: 60, 4: 30})


def _column_note(col: Col | None, name: str) -> str:
    parts = []
    if name in COLUMN_NOTES:
        parts.append(COLUMN_NOTES[name])
    if col is not None:
        kind = {"float": "number", "int": "whole number", "bool": "true/false", "str": "text"}[
            col.kind
        ]
        parts.append(kind + ("" if col.blank else ", required"))
        if col.choices:
            parts.append("one of: " + ", ".join(c for c in col.choices if c))
        if col.lo is not None or col.hi is not None:
            parts.append(
                f"range {'' if col.lo is None else f'{col.lo:g}'}..{'' if col.hi is None else f'{col.hi:g}'}"
            )
        if col.above is not None:
            parts.append(f"greater than {col.above:g}")
    return "; ".join(parts)


def _validate(ws, sheet: str, header: list[str], rows, schema: dict[str, Col]) -> None:
    """Drop-down lists for names, numeric bounds per column, [0, 1] for p_/u_ rows."""
    last = 1 + len(rows) + VALIDATION_EXTRA_ROWS
    for j, name in enumerate(header):
        col = schema.get(name)
        if col is None:
            continue
        letter = get_column_letter(j + 1)
        area = f"{letter}2:{letter}{last}"
        dv = None
        if col.choices:
            allowed = [c for c in col.choices if c]
            dv = DataValidation(
                type="list", formula1='"' + ",".join(allowed) + '"', allow_blank=col.blank
            )
            dv.error = f"{name} must be one of: {', '.join(allowed)}"
        elif col.kind == "bool":
            dv = DataValidation(type="list", formula1='"true,false"', allow_blank=True)
            dv.error = f"{name} must be true or false"
        elif col.kind in ("float", "int") and (col.lo is not None or col.hi is not None):
            kind = "whole" if col.kind == "int" else "decimal"
            if col.lo is not None and col.hi is not None:
                dv = DataValidation(
                    type=kind,
                    operator="between",
                    formula1=f"{col.lo:g}",
                    formula2=f"{col.hi:g}",
                    allow_blank=col.blank,
                )
            elif col.lo is not None:
                dv = DataValidation(
                    type=kind,
                    operator="greaterThanOrEqual",
                    formula1=f"{col.lo:g}",
                    allow_blank=col.blank,
                )
            else:
                dv = DataValidation(
                    type=kind,
                    operator="lessThanOrEqual",
                    formula1=f"{col.hi:g}",
                    allow_blank=col.blank,
                )
            dv.error = f"{name}: {_column_note(col, name)}"
        elif col.kind in ("float", "int") and col.above is not None:
            dv = DataValidation(
                type="whole" if col.kind == "int" else "decimal",
                operator="greaterThan",
                formula1=f"{col.above:g}",
                allow_blank=col.blank,
            )
            dv.error = f"{name}: {_column_note(col, name)}"
        elif col.kind in ("float", "int"):
            dv = DataValidation(
                type="decimal" if col.kind == "float" else "whole",
                operator="between",
                formula1="-1E+307",
                formula2="1E+307",
                allow_blank=col.blank,
            )
            dv.error = f"{name} must be a number"
        if name == "evidence" and not col.choices:
            dv = DataValidation(
                type="list", formula1='"' + ",".join(EVIDENCE_TAGS) + '"', allow_blank=True
            )
        if name == "unit" and sheet == "parameters":
            dv = None  # free text, checked by prefix when read
        if dv is not None:
            dv.showErrorMessage = True
            dv.errorTitle = f"{sheet}: {name}"
            ws.add_data_validation(dv)
            dv.add(area)
    # probabilities and utilities: value, low and high within [0, 1] on their rows
    name_col = "parameter" if "parameter" in header else ("item" if "item" in header else None)
    if name_col is None:
        return
    targets = [
        get_column_letter(header.index(c) + 1) for c in ("value", "low", "high") if c in header
    ]
    cells = []
    k = header.index(name_col)
    for i, (_line, fields) in enumerate(rows):
        if fields[k].strip().startswith(PROBABILITY_PREFIXES):
            cells += [f"{c}{2 + i}" for c in targets]
    if cells:
        dv = DataValidation(
            type="decimal", operator="between", formula1="0", formula2="1", allow_blank=True
        )
        dv.error = "a probability or utility (p_, u_) must be within [0, 1]"
        dv.errorTitle = f"{sheet}: probability"
        dv.showErrorMessage = True
        ws.add_data_validation(dv)
        for ref in cells:
            dv.add(ref)


def _format(ws, header: list[str], widths: dict[int, float] | None = None) -> None:
    ws.freeze_panes = "B2"
    ws.sheet_view.showGridLines = True
    for j, name in enumerate(header):
        width = (widths or {}).get(j + 1)
        if width is None:
            width = 60 if name in ("source", "note") else max(10, min(30, len(name) + 3))
        ws.column_dimensions[get_column_letter(j + 1)].width = width


def _write_about(ws, tables: dict, source: Path) -> None:
    rows = [
        ("cea input workbook", ""),
        (
            "what",
            "Every input table of cea in one workbook: edit the yellow-free cells like the CSV files, then run "
            "`cea run --inputs THIS.xlsx --country GB`. One table per sheet; row 1 is the header; one row per record.",
        ),
        ("source", str(source)),
        (
            "checks",
            "Reading validates every cell as the CSV reader does; errors name the sheet, row and column. Drop-down lists "
            "and numeric bounds help while typing; probabilities and utilities (p_, u_) must lie in [0, 1].",
        ),
        (
            "numbers",
            "Type plain numbers (0.035, not 3.5%). A formula is accepted if the workbook was saved by Excel or LibreOffice.",
        ),
        (
            "safety",
            "Workbooks with macros, external links, ActiveX or embedded objects are refused. Save as .xlsx.",
        ),
        (
            "settings",
            'One row per setting: section (run or model), key, value. Lists are written as ["a", "b"].',
        ),
        ("rate units", ", ".join(RATE_UNITS)),
        ("time units", ", ".join(TIME_UNITS)),
        ("prefixes", "; ".join(f"{k}: {', '.join(v)}" for k, v in PREFIX_DISTS.items())),
    ]
    for i, (k, v) in enumerate(rows):
        _put_text(ws.cell(row=1 + i, column=1), k)
        _put_text(ws.cell(row=1 + i, column=2), v)
    ws.cell(row=1, column=1).font = Font(bold=True, size=13)
    r = len(rows) + 2
    for j, name in enumerate(("sheet", "column", "description")):
        cell = ws.cell(row=r, column=1 + j)
        _put_text(cell, name)
        cell.font = HEADER_FONT
        cell.fill = HEADER_FILL
    r += 1
    _put_text(ws.cell(row=r, column=1), SETTINGS_SHEET)
    _put_text(ws.cell(row=r, column=2), "section, key, value")
    _put_text(
        ws.cell(row=r, column=3), "the settings of settings.toml; a scenario file may override them"
    )
    r += 1
    for sheet, (header, _rows, _d) in tables.items():
        schema = {c.name: c for c in _schema(sheet)}
        for name in header:
            _put_text(ws.cell(row=r, column=1), sheet)
            _put_text(ws.cell(row=r, column=2), name)
            _put_text(
                ws.cell(row=r, column=3),
                _column_note(schema.get(name), name) or "(not read by cea)",
            )
            r += 1
    ws.column_dimensions["A"].width = 22
    ws.column_dimensions["B"].width = 30
    ws.column_dimensions["C"].width = 110
    for row in ws.iter_rows(min_row=1, max_row=len(rows), min_col=2, max_col=2):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")

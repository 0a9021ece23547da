"""Cell writers, styles, number formats, defined names and sheet names of report.xlsx.

Strings are always written as text, never as formulas (:func:`put`); formulas are written only
by :func:`put_formula`, from text the sheet modules build.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter, quote_sheetname
from openpyxl.workbook.defined_name import DefinedName

from cea.errors import CeaError

# Styles
TITLE_FONT = Font(bold=True, size=13)
HEADER_FONT = Font(bold=True)
NOTE_FONT = Font(italic=True, color="555555")
HEADER_FILL = PatternFill("solid", fgColor="DDE5F0")
TOTAL_FILL = PatternFill("solid", fgColor="F2F2F2")
INPUT_FILL = PatternFill("solid", fgColor="FFF2CC")  # cells a reviewer may change
FAIL_FILL = PatternFill("solid", fgColor="F8CBAD")  # a verification check that failed
WARN_FILL = PatternFill("solid", fgColor="FFE699")  # a face-validity value outside its band
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


def money_format(currency: str, decimals: int = 2) -> str:
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


def clean(value):
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
    value = clean(value)
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
    """Write a formula built by the sheet modules (``formula`` without the leading '=')."""
    cell = ws.cell(row=row, column=col)
    cell.value = "=" + formula
    if fmt:
        cell.number_format = fmt
    if font is not None:
        cell.font = font
    if fill is not None:
        cell.fill = fill
    return cell


def sheet_ref(sheet: str) -> str:
    """A sheet name as a formula writes it: quoted only when it must be."""
    if _NAME_RE.match(sheet) and not _CELL_LIKE.match(sheet):
        return sheet
    return quote_sheetname(sheet)


def abs_ref(sheet: str, col: int, row: int) -> str:
    """An absolute reference to one cell of another sheet: ``sheet!$C$7``."""
    return f"{sheet_ref(sheet)}!${get_column_letter(col)}${row}"


def write_header(ws, row: int, names, start_col: int = 1):
    for j, name in enumerate(names):
        put(ws, row, start_col + j, name, font=HEADER_FONT, fill=HEADER_FILL)


def write_title(ws, title: str, note: str = ""):
    put(ws, 1, 1, title, font=TITLE_FONT)
    if note:
        put(ws, 2, 1, note, font=NOTE_FONT)


def print_setup(ws) -> None:
    """Printing: landscape A4, fit to one page wide (as many pages down as needed), the used
    range as print area, and the rows above the frozen pane (title and header) repeated on
    every page."""
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.print_options.gridLines = False
    ws.print_area = ws.dimensions
    frozen = re.fullmatch(r"[A-Z]+(\d+)", ws.freeze_panes or "")
    if frozen and int(frozen.group(1)) > 1:
        ws.print_title_rows = f"1:{int(frozen.group(1)) - 1}"


def finish_sheet(
    ws,
    widths: Mapping[int, float] | None = None,
    freeze: str | None = None,
    default_width: float = 12,
):
    """No grid lines, frozen panes and column widths (``default_width`` where not given)."""
    ws.sheet_view.showGridLines = False
    if freeze:
        ws.freeze_panes = freeze
    for col in range(1, ws.max_column + 1):
        ws.column_dimensions[get_column_letter(col)].width = (widths or {}).get(col, default_width)


@dataclass
class Names:
    """Defined names of the workbook: parameter/setting -> absolute cell reference."""

    wb: Workbook
    cells: dict[str, str] = field(default_factory=dict)
    _lower: set[str] = field(default_factory=set)

    def define(
        self, name: str, sheet: str, col: int, row: int, last_row: int | None = None
    ) -> None:
        ref = abs_ref(sheet, col, row)
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

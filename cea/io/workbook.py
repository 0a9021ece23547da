"""The Excel input template: every input table in one workbook, and its reader.

``cea template --out my_inputs.xlsx`` writes one sheet per table (``parameters``,
``strategies``, ``countries``, ``prices_<ISO2>`` per country, ``country_overrides``,
``life_tables``, ``macro``, ``cpi``, ``correlations`` when present, and ``settings`` as
section/key/value rows), an ``about`` sheet describing every column, and data validation
(allowed names as drop-down lists, numeric bounds, [0, 1] for probabilities and utilities).

``cea run --inputs my_inputs.xlsx`` reads it back through :func:`load_inputs_xlsx`, which
hands every sheet to the same validation as the CSV folder
(:func:`cea.io.inputs.assemble_inputs`, :func:`cea.io.inputs.table_from_rows`), so a bad cell gets
the same one-line error, naming the workbook and sheet as the file, e.g.
``my_inputs.xlsx [parameters], row 12, column 'value': 1.2 is outside [0, 1] ...``.

Numbers are written and read back exactly: a numeric cell is turned into text with
``repr(float)`` (the shortest text that gives the same double) before parsing, and written
with 17 significant digits where 16 would not round-trip, so the template run gives the same
results as the CSV run, to the last bit.

Safety. A workbook is a zip of XML files; before openpyxl opens it, :func:`check_workbook`
refuses macros (``vbaProject.bin``, ``.xlsm``), external links (``xl/externalLinks``),
ActiveX and embedded objects, too many or too large members, and XML with a DTD, entities
or external references (parsed with ``defusedxml``). Text is always written as text, never
as a formula.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time
from pathlib import Path

import defusedxml
import defusedxml.ElementTree as DET
import openpyxl
import tomllib
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from cea.errors import CeaError, InputFileError
from cea.io.inputs import (
    EVIDENCE_TAGS,
    MAX_FILE_BYTES,
    PREFIX_DISTS,
    PRICE_COLUMNS,
    PRICE_KEY,
    PROBABILITY_PREFIXES,
    RATE_UNITS,
    SETTINGS_SCHEMA,
    TABLES,
    TIME_UNITS,
    Col,
    Inputs,
    Table,
    _parse_float,
    assemble_inputs,
    load_inputs,
    read_csv_text,
    read_toml,
    table_from_rows,
)

#: Zip members accepted in a workbook (a normal one has 20-60).
MAX_MEMBERS = 2000
#: Total uncompressed size accepted (bytes): the bundled inputs are about 3 MB of XML.
MAX_UNCOMPRESSED_BYTES = 256 * 1024 * 1024
#: Largest accepted compression ratio of one member above MAX_RATIO_MIN_BYTES (zip bombs).
MAX_COMPRESSION_RATIO = 200
MAX_RATIO_MIN_BYTES = 1024 * 1024
#: Member names refused (lower case): macros, external links, ActiveX, embedded objects.
FORBIDDEN_MEMBERS = (
    ("vbaproject.bin", "contains macros (vbaProject.bin)"),
    ("xl/externallinks/", "contains external links (xl/externalLinks)"),
    ("xl/activex/", "contains ActiveX controls"),
    ("xl/embeddings/", "contains embedded objects"),
)
FORBIDDEN_CONTENT_TYPES = (("macroenabled", "is a macro-enabled workbook"),)
FORBIDDEN_SUFFIXES = {
    ".xlsm": "is a macro-enabled workbook (.xlsm): save it as .xlsx (Excel Workbook) without macros",
    ".xltm": "is a macro-enabled template (.xltm): save it as .xlsx",
    ".xlsb": "is a binary workbook (.xlsb): save it as .xlsx",
    ".xls": "is an old-format workbook (.xls): save it as .xlsx",
}
XML_SUFFIXES = (".xml", ".rels", ".vml")
#: Bytes read at a time while scanning a member.
SCAN_CHUNK = 1 << 16
#: Significant digits that always round-trip a double (openpyxl writes 16 by default).
ROUND_TRIP_DIGITS = 17
#: Extra empty rows that data validation covers below each table (for rows added by hand).
VALIDATION_EXTRA_ROWS = 500

SETTINGS_SHEET = "settings"
ABOUT_SHEET = "about"
SETTINGS_HEADER = ("section", "key", "value", "note")
HEADER_FONT = Font(bold=True)
HEADER_FILL = PatternFill("solid", fgColor="DDE5F0")
NUMBER_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")

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


# =========================================================================== safety


def check_workbook(path: Path | str, shown: str | None = None) -> None:
    """Refuse a workbook that is not a plain, reasonably sized .xlsx before opening it.

    Raises :class:`~cea.errors.InputFileError` (one line naming the file) for: a macro-enabled
    or binary format, a file that is not a zip, too many or too large members, macros,
    external links, ActiveX or embedded objects, and XML with a DTD, entity declarations or
    external references (``defusedxml``).
    """
    path = Path(path)
    shown = shown or path.name
    suffix = path.suffix.lower()
    if suffix in FORBIDDEN_SUFFIXES:
        raise InputFileError(shown, FORBIDDEN_SUFFIXES[suffix])
    if not path.is_file():
        raise InputFileError(shown, "file not found")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InputFileError(
            shown, f"file is {size:,} bytes, above the {MAX_FILE_BYTES:,}-byte limit"
        )
    if not zipfile.is_zipfile(path):
        raise InputFileError(shown, "is not an Excel .xlsx workbook (not a zip file)")
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
            if len(members) > MAX_MEMBERS:
                raise InputFileError(
                    shown, f"has {len(members):,} parts, above the limit of {MAX_MEMBERS:,}"
                )
            total = sum(m.file_size for m in members)
            if total > MAX_UNCOMPRESSED_BYTES:
                raise InputFileError(
                    shown,
                    f"unpacks to {total:,} bytes, above the {MAX_UNCOMPRESSED_BYTES:,}-byte limit",
                )
            for m in members:
                low = m.filename.lower()
                for pattern, problem in FORBIDDEN_MEMBERS:
                    if pattern in low:
                        raise InputFileError(
                            shown, f"{problem}: refused; save a copy without them as .xlsx"
                        )
                if m.file_size > MAX_RATIO_MIN_BYTES and m.file_size > MAX_COMPRESSION_RATIO * max(
                    1, m.compress_size
                ):
                    raise InputFileError(
                        shown,
                        f"part {m.filename} is compressed more than {MAX_COMPRESSION_RATIO}:1 (a zip bomb?): refused",
                    )
            if "[Content_Types].xml" not in zf.namelist() or "xl/workbook.xml" not in zf.namelist():
                raise InputFileError(shown, "is not an Excel .xlsx workbook (no xl/workbook.xml)")
            for m in members:
                if m.filename.lower().endswith(XML_SUFFIXES):
                    _scan_xml(zf, m, shown)
            types = zf.read("[Content_Types].xml").decode("utf-8", "replace").lower()
            for pattern, problem in FORBIDDEN_CONTENT_TYPES:
                if pattern in types:
                    raise InputFileError(
                        shown, f"{problem}: save it as .xlsx (Excel Workbook) without macros"
                    )
    except zipfile.BadZipFile as exc:
        raise InputFileError(shown, f"is not a valid .xlsx workbook ({exc})") from None


def _scan_xml(zf: zipfile.ZipFile, member: zipfile.ZipInfo, shown: str) -> None:
    """Parse one XML member with defusedxml: no DTD, no entities, no external references."""
    try:
        with zf.open(member) as fh:
            for _event, elem in DET.iterparse(
                fh, events=("end",), forbid_dtd=True, forbid_entities=True, forbid_external=True
            ):
                elem.clear()
    except defusedxml.DefusedXmlException as exc:
        kind = type(exc).__name__.replace("Forbidden", "").lower() or "unsafe construct"
        raise InputFileError(
            shown, f"part {member.filename} has unsafe XML ({kind} declarations are refused)"
        ) from None
    except DET.ParseError as exc:
        raise InputFileError(
            shown, f"part {member.filename} is not well-formed XML ({exc})"
        ) from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InputFileError(shown, f"part {member.filename} cannot be read ({exc})") from None


# =========================================================================== numbers


@contextlib.contextmanager
def exact_numbers() -> Iterator[None]:
    """While saving with openpyxl, write every float so that it reads back as the same double.

    openpyxl formats numbers with ``'%.16g'``, which changes some doubles in the last bit
    (0.1 + 0.2 is written as 0.3). Inside this block a float that 16 digits would change is
    written with 17 significant digits.
    """
    import openpyxl.cell._writer as cell_writer

    original = cell_writer.safe_string

    def safe_string(value):
        if isinstance(value, float) and math.isfinite(value):
            short = f"{value:.16g}"
            return short if float(short) == value else f"{value:.{ROUND_TRIP_DIGITS}g}"
        return original(value)

    cell_writer.safe_string = safe_string
    try:
        yield
    finally:
        cell_writer.safe_string = original


@contextlib.contextmanager
def fast_cells() -> Iterator[None]:
    """While saving with openpyxl, write plain number, formula and text cells as ready XML.

    openpyxl (without lxml) builds and serializes an element tree per cell, about 70 us each:
    7 s for the 130,000 cells of a report. Plain cells are written here as the same XML text
    directly to the sheet stream; anything else (hyperlinks, rich text, array formulas, dates,
    booleans, empty styled cells), or another writer (lxml), goes through openpyxl unchanged.
    ``tests/test_report.py`` checks that the bytes written are identical either way.
    """
    import openpyxl.cell._writer as cell_writer
    import openpyxl.worksheet._writer as sheet_writer

    original = sheet_writer.write_cell

    def write_cell(xf, worksheet, cell, styled=None):
        raw = getattr(xf, "_file", None)
        value, kind = cell._value, cell.data_type
        if (
            raw is None
            or original is not cell_writer.etree_write_cell
            or cell.hyperlink is not None
            or kind not in ("n", "f", "s")
            or type(value) not in (str, int, float)
            or value == ""
        ):
            return original(xf, worksheet, cell, styled)
        head = (
            f'<c r="{cell.coordinate}" s="{cell.style_id}"'
            if styled
            else f'<c r="{cell.coordinate}"'
        )
        if kind == "f":
            raw(f"{head}><f>{_escape(value[1:])}</f><v /></c>")
        elif kind == "s":
            space = ' xml:space="preserve"' if value.strip() and value != value.strip() else ""
            raw(f'{head} t="inlineStr"><is><t{space}>{_escape(value)}</t></is></c>')
        else:
            raw(f'{head} t="n"><v>{cell_writer.safe_string(value)}</v></c>')

    sheet_writer.write_cell = write_cell
    try:
        yield
    finally:
        sheet_writer.write_cell = original


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def save_workbook(wb, path) -> None:
    """Save with exact numbers (:func:`exact_numbers`) and the fast cell writer (:func:`fast_cells`)."""
    with exact_numbers(), fast_cells():
        wb.save(path)


def cell_text(value) -> str:
    """A cell's value as the text a CSV file would hold (numbers repr-exact)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return str(value)


# =========================================================================== reading


def sheet_for(file_name: str) -> str:
    """Sheet holding a table: ``parameters.csv`` -> ``parameters``, ``prices/GB.csv`` -> ``prices_GB``."""
    stem = file_name[: -len(".csv")] if file_name.endswith(".csv") else file_name
    return stem.replace("/", "_")


class _Workbook:
    """The raw cells of every sheet, read once (formulas replaced by their saved values)."""

    def __init__(self, path: Path):
        self.path = path
        self.name = path.name
        check_workbook(path, self.name)
        self.sheets: dict[str, list[tuple[int, list]]] = {}
        self.lookup: dict[str, str] = {}
        formulas: dict[str, set[tuple[int, int]]] = {}
        try:
            wb = openpyxl.load_workbook(path, read_only=True, data_only=False)
        except Exception as exc:  # noqa: BLE001  openpyxl raises many types on a damaged file
            raise InputFileError(
                self.name, f"cannot be opened as an .xlsx workbook ({type(exc).__name__}: {exc})"
            ) from None
        try:
            for ws in wb.worksheets:
                rows = []
                for line, row in enumerate(ws.iter_rows(min_row=1), start=1):
                    values = []
                    for j, cell in enumerate(row):
                        v = getattr(cell, "value", None)
                        if getattr(cell, "data_type", None) == "f":
                            formulas.setdefault(ws.title, set()).add((line, j))
                        values.append(v)
                    rows.append((line, values))
                self.sheets[ws.title] = rows
                self.lookup[ws.title.lower()] = ws.title
        finally:
            wb.close()
        if formulas:
            self._cached_values(formulas)

    def _cached_values(self, formulas: dict[str, set[tuple[int, int]]]) -> None:
        """Formulas typed by a user: take the value the spreadsheet saved with them."""
        wb = openpyxl.load_workbook(self.path, read_only=True, data_only=True)
        try:
            for title, cells in formulas.items():
                saved = {
                    line: [c.value if hasattr(c, "value") else None for c in row]
                    for line, row in enumerate(wb[title].iter_rows(min_row=1), start=1)
                }
                rows = dict(self.sheets[title])
                for line, j in sorted(cells):
                    values = saved.get(line, [])
                    cached = values[j] if j < len(values) else None
                    if cached is None:
                        raise InputFileError(
                            f"{self.name} [{title}]",
                            f"cell {get_column_letter(j + 1)}{line} holds a formula without a saved value: type the value, "
                            "or open and save the workbook in Excel or LibreOffice",
                            row=line,
                        )
                    rows[line][j] = cached
                self.sheets[title] = sorted(rows.items())
        finally:
            wb.close()

    def has(self, sheet: str) -> bool:
        return sheet.lower() in self.lookup

    def shown(self, sheet: str) -> str:
        return f"{self.name} [{self.lookup.get(sheet.lower(), sheet)}]"

    def table_text(self, sheet: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
        """Header and data rows of a sheet as text, like a CSV file (header = first non-empty row)."""
        shown = self.shown(sheet)
        rows = self.sheets[self.lookup[sheet.lower()]]
        header: list[str] | None = None
        out: list[tuple[int, list[str]]] = []
        for line, cells in rows:
            texts = [cell_text(v) for v in cells]
            if all(not t.strip() for t in texts):
                continue
            if header is None:
                while texts and not texts[-1].strip():
                    texts.pop()
                header = [t.strip() for t in texts]
                continue
            extra = [j for j in range(len(header), len(texts)) if texts[j].strip()]
            if extra:
                raise InputFileError(
                    shown,
                    f"cell {get_column_letter(extra[0] + 1)}{line} holds a value beyond the last header column",
                    row=line,
                )
            texts = (texts + [""] * len(header))[: len(header)]
            out.append((line, texts))
        if header is None:
            raise InputFileError(shown, "sheet is empty")
        return header, out


def _sha(header: list[str], rows: list[tuple[int, list[str]]]) -> str:
    text = "\n".join(
        ",".join(json.dumps(c) for c in cells) for cells in [header, *[r for _, r in rows]]
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_inputs_xlsx(path: Path | str) -> Inputs:
    """Read an input workbook written by ``cea template`` (or edited from one).

    Every sheet goes through the CSV validation; errors name ``<workbook> [<sheet>]``, the
    row as the spreadsheet shows it and the column.
    """
    path = Path(path)
    book = _Workbook(path)

    def read(
        file_name: str, columns: Sequence[Col], key: Sequence[str], optional: bool = False
    ) -> Table | None:
        sheet = sheet_for(file_name)
        if not book.has(sheet):
            if optional:
                return None
            raise InputFileError(book.name, f"has no sheet '{sheet}' (the {file_name} table)")
        header, rows = book.table_text(sheet)
        return table_from_rows(
            book.shown(sheet), header, rows, columns, key=key, sha256=_sha(header, rows)
        )

    def read_settings() -> tuple[dict, str, str]:
        shown = book.shown(SETTINGS_SHEET)
        if not book.has(SETTINGS_SHEET):
            raise InputFileError(
                book.name,
                f"has no sheet '{SETTINGS_SHEET}' (section/key/value rows of settings.toml)",
            )
        settings = _settings_from_rows(book, shown)
        text = json.dumps(settings, sort_keys=True)
        return settings, hashlib.sha256(text.encode("utf-8")).hexdigest(), shown

    inputs = assemble_inputs(path, read, read_settings)
    inputs.hashes[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return inputs


def _settings_from_rows(book: _Workbook, shown: str) -> dict:
    rows = book.sheets[book.lookup[SETTINGS_SHEET]]
    header = None
    settings: dict[str, dict] = {}
    seen: dict[tuple[str, str], int] = {}
    for line, cells in rows:
        if all(cell_text(v).strip() == "" for v in cells):
            continue
        if header is None:
            header = [cell_text(v).strip() for v in cells]
            for col in SETTINGS_HEADER[:3]:
                if col not in header:
                    raise InputFileError(shown, "required column is missing", row=line, column=col)
            continue
        get = lambda name: cells[header.index(name)] if header.index(name) < len(cells) else None  # noqa: E731, B023
        section, key = cell_text(get("section")).strip(), cell_text(get("key")).strip()
        if not section or not key:
            raise InputFileError(
                shown,
                "section and key are both required",
                row=line,
                column="section" if not section else "key",
            )
        if (section, key) in seen:
            raise InputFileError(
                shown,
                f"setting [{section}] {key} appears twice (first on row {seen[(section, key)]})",
                row=line,
                column="key",
            )
        seen[(section, key)] = line
        settings.setdefault(section, {})[key] = _setting_value(get("value"), shown, line)
    if header is None:
        raise InputFileError(shown, "sheet is empty")
    return settings


def _setting_value(value, shown: str, line: int):
    """A settings cell: Excel booleans and numbers as they are; text as a TOML value
    (``true``, ``10``, ``["a", "b"]``), or as a plain string when it is not one."""
    if isinstance(value, (bool, int, float)):
        return value
    if value is None:
        raise InputFileError(shown, "value is empty", row=line, column="value")
    text = cell_text(value).strip()
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        if any(ch in text for ch in "[]{}\"'=#\n"):
            raise InputFileError(
                shown,
                f'\'{text}\' is not a valid value (TOML syntax, e.g. ["a", "b"])',
                row=line,
                column="value",
            ) from None
        return text


# =========================================================================== writing the template


def _raw_tables(
    source: Path,
) -> tuple[dict[str, tuple[list[str], list[tuple[int, list[str]]], str]], dict]:
    """Every table of an inputs folder or workbook as text: sheet -> (header, rows, delimiter)."""
    inputs = load_inputs(source)  # validates everything first: the template is a valid input
    files = [(TABLES[k][0], TABLES[k][3]) for k in ("parameters", "strategies", "countries")]
    files += [(f"prices/{code}.csv", False) for code in inputs.country_codes()]
    files += [
        (TABLES[k][0], TABLES[k][3])
        for k in ("overrides", "life_tables", "macro", "cpi", "correlations")
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


def _schema(sheet: str) -> tuple[Col, ...]:
    if sheet.startswith("prices_"):
        return PRICE_COLUMNS
    for file, cols, _key, _opt in TABLES.values():
        if sheet_for(file) == sheet:
            return cols
    return ()


def _typed(text: str, col: Col | None, delim: str):
    """A CSV field as the cell value to write: numbers as numbers, the rest as text."""
    s = text.strip()
    if s == "":
        return None
    kind = col.kind if col is not None else None
    if kind in ("float", "int"):
        try:
            value = _parse_float(s, delim)
        except ValueError:
            return text
        if kind == "int" and value == int(value):
            return int(value)
        return value
    if kind is None and NUMBER_RE.match(s):
        value = float(s)
        if math.isfinite(value):
            return int(value) if re.fullmatch(r"[+-]?\d+", s) else value
    return text


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


def cli_template(args) -> int:
    """``cea template --out FILE.xlsx [--inputs DIR|FILE] [--force]``."""
    out = Path(args.out)
    if out.suffix.lower() != ".xlsx":
        raise CeaError(f"--out {out}: the template must be an .xlsx file")
    if out.exists() and not getattr(args, "force", False):
        raise CeaError(f"{out} already exists: use --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".xlsx", dir=out.parent)
    os.close(fd)
    try:
        write_template(Path(args.inputs), tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(
        f"written: {out} (every input table of {args.inputs}; edit it and run `cea run --inputs {out}`)"
    )
    return 0


__all__ = [
    "PRICE_KEY",
    "check_workbook",
    "cli_template",
    "exact_numbers",
    "fast_cells",
    "save_workbook",
    "load_inputs_xlsx",
    "write_template",
]

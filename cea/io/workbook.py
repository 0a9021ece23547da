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
refuses macros (``vbaProject.bin``, ``.xlsm``, or a part declared as a VBA project by its
content type or relationship, whatever its name), external links (``xl/externalLinks``), data
connections (``xl/connections.xml``), ActiveX and embedded objects, too many or too large
members, and XML with a DTD, entities or external references (parsed with ``defusedxml``).
A cell openpyxl cannot read (text in a numeric cell, a date that is not one, a shared-string
index past the table, a reference past column XFD) is refused naming its sheet and row. Text
is always written as text, never as a formula.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import re
import zipfile
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time
from pathlib import Path

import defusedxml
import defusedxml.ElementTree as DET
import openpyxl
import tomllib
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter

from cea.errors import InputFileError
from cea.io.inputs import (
    MAX_FILE_BYTES,
    PRICE_COLUMNS,
    PRICE_KEY,
    TABLES,
    Col,
    Inputs,
    Table,
    _parse_float,
    assemble_inputs,
    table_from_rows,
    unreadable,
)

#: Zip members accepted in a workbook (a normal one has 20-60).
MAX_MEMBERS = 2000
#: Total uncompressed size accepted (bytes): the bundled inputs are about 3 MB of XML.
MAX_UNCOMPRESSED_BYTES = 256 * 1024 * 1024
#: Largest accepted compression ratio of one member above MAX_RATIO_MIN_BYTES (zip bombs).
MAX_COMPRESSION_RATIO = 200
#: Most cells read from a workbook, every sheet, blanks within a row included (the template of
#: the bundled inputs holds about 33,000): bounds the memory of a sheet whose rows are padded
#: to a far column.
MAX_CELLS = 5_000_000
MAX_RATIO_MIN_BYTES = 1024 * 1024
#: Member names refused (lower case): macros, external links, ActiveX, embedded objects.
FORBIDDEN_MEMBERS = (
    ("vbaproject.bin", "contains macros (vbaProject.bin)"),
    ("xl/externallinks/", "contains external links (xl/externalLinks)"),
    ("xl/activex/", "contains ActiveX controls"),
    ("xl/embeddings/", "contains embedded objects"),
    ("xl/connections.xml", "contains data connections (xl/connections.xml)"),
)
#: Declared in [Content_Types].xml or as a relationship type in any .rels part, whatever the
#: part is named (a renamed VBA project is still declared as one).
FORBIDDEN_CONTENT_TYPES = (
    ("macroenabled", "is a macro-enabled workbook"),
    ("vbaproject", "contains macros (a VBA project part)"),
    ("spreadsheetml.connections", "contains data connections"),
)
FORBIDDEN_RELATIONSHIPS = (
    ("/relationships/vbaproject", "contains macros (a VBA project part)"),
    ("/relationships/connections", "contains data connections"),
    ("/relationships/externallink", "contains external links"),
)
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

SETTINGS_SHEET = "settings"
ABOUT_SHEET = "about"
SETTINGS_HEADER = ("section", "key", "value", "note")
HEADER_FONT = Font(bold=True)
HEADER_FILL = PatternFill("solid", fgColor="DDE5F0")
NUMBER_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


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
    try:  # zipfile.is_zipfile takes a file it cannot read for one that is not a zip
        path.open("rb").close()
    except OSError as exc:
        raise unreadable(shown, exc) from None
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
            for m in members:
                if m.filename.lower().endswith(".rels"):
                    rels = zf.read(m).decode("utf-8", "replace").lower()
                    for pattern, problem in FORBIDDEN_RELATIONSHIPS:
                        if pattern in rels:
                            raise InputFileError(
                                shown, f"{problem} ({m.filename}): refused; save a copy "
                                "without them as .xlsx"
                            )  # fmt: skip
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
    ``tests/test_report_workbook.py`` checks that the bytes written are identical either way.
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
    """Save with exact numbers (:func:`exact_numbers`) and the fast cell writer (:func:`fast_cells`).

    The workbook is built in memory and then written in one go: openpyxl leaves its zip file
    open when a write fails (a full disk), and closing it later prints a traceback of its own.
    """
    buffer = io.BytesIO()
    with exact_numbers(), fast_cells():
        wb.save(buffer)
    with open(path, "wb") as fh:
        fh.write(buffer.getbuffer())


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
        self.cells = 0
        formulas: dict[str, set[tuple[int, int]]] = {}
        try:
            wb = openpyxl.load_workbook(path, read_only=True, data_only=False)
        except Exception as exc:  # noqa: BLE001  openpyxl raises many types on a damaged file
            raise InputFileError(
                self.name, f"cannot be opened as an .xlsx workbook ({type(exc).__name__}: {exc})"
            ) from None
        try:
            for ws in wb.worksheets:
                rows = self._read_rows(ws, formulas)
                self.sheets[ws.title] = rows
                self.lookup[ws.title.lower()] = ws.title
        finally:
            wb.close()
        if formulas:
            self._cached_values(formulas)

    def _read_rows(self, ws, formulas: dict[str, set[tuple[int, int]]]) -> list[tuple[int, list]]:
        """The cells of one sheet, row by row. openpyxl parses a sheet while it is iterated, so a
        damaged cell (text in a numeric cell, a date that is not one, a shared-string index past
        the table, a reference beyond column XFD) raises here: it is named by sheet and row."""
        rows: list[tuple[int, list]] = []
        # the sheet's used range as saved (one stray cell at XFD1048576 makes it the whole
        # sheet) would pad every row to its last column and yield every row to its last row:
        # without it, a row holds its cells and an empty row is empty (and is not kept)
        ws.reset_dimensions()
        try:
            for line, row in enumerate(ws.iter_rows(min_row=1), start=1):
                if not row:
                    continue
                self.cells += len(row)
                if self.cells > MAX_CELLS:
                    raise InputFileError(
                        f"{self.name} [{ws.title}]",
                        f"the workbook holds more than {MAX_CELLS:,} cells (this row reaches "
                        f"column {get_column_letter(len(row))}): delete the cells beyond the "
                        "tables (Ctrl+End in Excel shows the last one)",
                        row=line,
                    )
                values = []
                for j, cell in enumerate(row):
                    if getattr(cell, "data_type", None) == "f":
                        formulas.setdefault(ws.title, set()).add((line, j))
                    values.append(getattr(cell, "value", None))
                rows.append((line, values))
        except InputFileError:
            raise
        except Exception as exc:  # noqa: BLE001  openpyxl raises many types on a damaged cell
            line = rows[-1][0] + 1 if rows else 1
            raise InputFileError(
                f"{self.name} [{ws.title}]",
                f"a damaged cell cannot be read ({type(exc).__name__}: {exc})",
                row=line,
            ) from None
        return rows

    def _cached_values(self, formulas: dict[str, set[tuple[int, int]]]) -> None:
        """Formulas typed by a user: take the value the spreadsheet saved with them."""
        wb = openpyxl.load_workbook(self.path, read_only=True, data_only=True)
        try:
            for title, cells in formulas.items():
                wb[title].reset_dimensions()  # as in _read_rows
                saved = {
                    line: [c.value if hasattr(c, "value") else None for c in row]
                    for line, row in enumerate(wb[title].iter_rows(min_row=1), start=1)
                    if row
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
    except RecursionError:  # tomllib recurses once a level of nested arrays or tables
        raise InputFileError(
            shown, "is not a valid value: nested too deeply", row=line, column="value"
        ) from None
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


__all__ = [
    "PRICE_KEY",
    "check_workbook",
    "exact_numbers",
    "fast_cells",
    "save_workbook",
    "load_inputs_xlsx",
]

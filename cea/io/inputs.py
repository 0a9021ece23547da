"""The only reader of ``inputs/``: every table is parsed and validated here.

Each problem is reported as one :class:`~cea.errors.InputFileError` naming the file, the
row as a spreadsheet shows it (header = row 1) and the column. Habits of Excel users are
accepted: a UTF-8 byte-order mark is ignored, and a ``;``-separated file with decimal
commas (what Excel writes in many European locales) is read as such. Input files are only
ever read, never written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import tomllib

from cea.errors import InputFileError, did_you_mean

#: Largest input file accepted (bytes). The bundled life table is 0.3 MB.
MAX_FILE_BYTES = 50 * 1024 * 1024
#: Evidence tags (docs/evidence.md): sourced, derived, known but not re-read, estimate.
EVIDENCE_TAGS = ("S", "S-d", "K", "E")
TRUE_WORDS = ("true", "yes", "1", "y")
FALSE_WORDS = ("false", "no", "0", "n", "")


@dataclass(frozen=True)
class Col:
    """One column of an input table.

    kind is ``str``, ``float``, ``int`` or ``bool``; ``blank`` allows empty cells;
    ``lo``/``hi`` bound numeric values (inclusive), ``above`` from below (exclusive: a divisor
    or a threshold, which 0 would make infinite or meaningless); ``choices`` restricts strings.
    """

    name: str
    kind: str = "str"
    blank: bool = False
    choices: tuple[str, ...] | None = None
    lo: float | None = None
    hi: float | None = None
    required: bool = True
    above: float | None = None


RATE_UNITS = {"per day": 365.25, "per week": 365.25 / 7, "per month": 12.0, "per year": 1.0}
TIME_UNITS = {"days": 1 / 365.25, "weeks": 7 / 365.25, "months": 1 / 12, "years": 1.0}

#: Allowed distributions by parameter-name prefix (docs/conventions.md, parameter prefixes).
PREFIX_DISTS: dict[str, tuple[str, ...]] = {
    "p_": ("beta", "fixed"),
    "u_": ("beta", "fixed"),
    "r_": ("gamma", "lognormal", "fixed"),
    "rr_": ("lognormal", "fixed"),
    "hr_": ("lognormal", "fixed"),
    "or_": ("lognormal", "fixed"),
    "c_": ("gamma", "fixed"),
    "q_": ("gamma", "normal", "fixed"),
    "t_": ("gamma", "lognormal", "fixed"),
    "k_": ("gamma", "lognormal", "fixed"),
    "d_": ("fixed",),
    "n_": ("fixed", "gamma"),
}
PROBABILITY_PREFIXES = ("p_", "u_")

#: ``label``: the parameter's name for readers (figures), without its unit (the ``unit`` column
#: gives it); optional: a blank or missing label shows the code.
PARAMETER_COLUMNS = (
    Col("parameter"),
    Col("label", blank=True, required=False),
    Col("value", "float"),
    Col("se", "float", blank=True, lo=0),
    Col("low", "float", blank=True),
    Col("high", "float", blank=True),
    Col("dist", choices=("beta", "gamma", "lognormal", "normal", "uniform", "fixed", "dirichlet")),
    Col("unit"),
    Col("category", blank=True, required=False),
    Col("group", blank=True, required=False),
    Col("n", "float", blank=True, lo=0, required=False),
    Col("source"),
    Col("evidence", choices=EVIDENCE_TAGS),
    Col("note", blank=True, required=False),
)

STRATEGY_COLUMNS = (
    Col("strategy"),
    Col("label", blank=True, required=False),
    Col("trigger", choices=("never", "at_start", "igg_below_threshold", "after_severe_infection")),
    Col("product", blank=True, choices=("ivig", "scig", "")),
    Col("dose_g_per_kg", "float", blank=True, lo=0),
    Col("interval_days", "float", blank=True, lo=0),
    Col("dosing_weight", blank=True, choices=("actual", "ideal", "adjusted", "flat", "")),
    Col("flat_dose_g", "float", blank=True, lo=0),
    Col("vial_rounding_g", "float", blank=True, lo=0),
    Col("start_after_severe_infection", "bool", blank=True),
    Col("hr_severe_parameter", blank=True, required=False),
    Col("source", blank=True, required=False),
    Col("note", blank=True, required=False),
)

COUNTRY_COLUMNS = (
    Col("country"),
    Col("name"),
    Col("currency"),
    Col("price_year", "int", lo=1990, hi=2100),
    Col("macro_year", "int", lo=1990, hi=2100),
    Col("wtp_per_qaly", "float", blank=True, above=0),
    Col("wtp_basis", choices=("explicit", "informal", "gdp_multiple")),
    Col("wtp_gdp_multiple", "float", blank=True, above=0),
    Col("wtp_alternatives", blank=True),
    Col("discount_rate_costs", "float", lo=0, hi=0.2),
    Col("discount_rate_effects", "float", lo=0, hi=0.2),
    Col("scig_conversion", "float", lo=0.5, hi=3),
    Col("population_eligible_annual", "float", blank=True, lo=0),
    Col("population_growth_annual", "float", blank=True, lo=-0.5, hi=1, required=False),
    Col("life_table_sex", choices=("both", "male", "female")),
    Col("source", blank=True, required=False),
    Col("evidence", blank=True, required=False),
    Col("note", blank=True, required=False),
)

PRICE_COLUMNS = (
    Col("item"),
    Col("label", blank=True, required=False),
    Col("value", "float", lo=0),
    Col("low", "float", blank=True, lo=0),
    Col("high", "float", blank=True, lo=0),
    Col("se", "float", blank=True, lo=0),
    Col("dist", choices=("gamma", "fixed")),
    Col("unit"),
    Col("currency"),
    Col("price_year", "int", lo=1990, hi=2100),
    Col("source"),
    Col("evidence", choices=EVIDENCE_TAGS),
    Col("note", blank=True, required=False),
)

OVERRIDE_COLUMNS = (
    Col("country"),
    Col("parameter"),
    Col("value", "float"),
    Col("source"),
    Col("evidence", choices=EVIDENCE_TAGS),
    Col("note", blank=True, required=False),
)

LIFE_TABLE_COLUMNS = (
    Col("country_iso2"),
    Col("sex", choices=("male", "female", "both")),
    Col("age", "int", lo=0, hi=130),
    Col("mx", "float", lo=0),
    Col("qx", "float", lo=0, hi=1),
    Col("source", blank=True, required=False),
)

MACRO_COLUMNS = (
    Col("country_iso2"),
    Col("currency"),
    Col("year", "int"),
    Col("ppp_lcu_per_intl_dollar", "float", blank=True, above=0),
    Col("usd_exchange_rate_lcu_per_usd", "float", blank=True, above=0),
    Col("gdp_per_capita_usd", "float", blank=True, above=0),
)

CPI_COLUMNS = (
    Col("country_iso2"),
    Col("year", "int"),
    Col("cpi_index", "float", blank=True, above=0),
)

CORRELATION_COLUMNS = (
    Col("parameter_a"),
    Col("parameter_b"),
    Col("correlation", "float", lo=-1, hi=1),
    Col("source", blank=True, required=False),
    Col("evidence", blank=True, required=False),
)

#: Face-validity measures of ``validation_targets.csv`` (computed by
#: :mod:`cea.pipeline.validation`): measure -> (needs a comparator, needs months).
VALIDATION_MEASURES: dict[str, tuple[bool, bool]] = {
    "severe_infection_incidence": (False, True),
    "infection_death_share": (False, True),
    "infection_death_share_trial_mix": (True, True),
    "death_risk_ratio": (True, True),
    "igrt_cost_ratio_per_year": (True, False),
    "related_cost_ratio": (True, False),
}

#: The longest model horizon settings.toml allows (years; a lifetime from any start age).
MAX_HORIZON_YEARS = 60

VALIDATION_TARGET_COLUMNS = (
    Col("id"),
    Col("measure", choices=tuple(VALIDATION_MEASURES)),
    Col("strategy"),
    Col("comparator", blank=True),
    Col("months", "float", blank=True, lo=0, hi=12 * MAX_HORIZON_YEARS),
    Col("published_value", "float", lo=0),
    Col("low", "float", lo=0),
    Col("high", "float", lo=0),
    Col("tolerance_rule"),
    Col("conditions"),
    Col("source"),
    Col("evidence", choices=EVIDENCE_TAGS),
    Col("note", blank=True, required=False),
)

#: Years of a budget impact analysis (ISPOR: 1-5 years): the share columns of budget_mix.csv.
BUDGET_YEARS = 5
BUDGET_MIXES = ("current", "new")
#: How far the shares of one mix and year may be from 1 (rounding in a spreadsheet).
BUDGET_SHARE_TOLERANCE = 1e-6

BUDGET_MIX_COLUMNS = (
    Col("mix", choices=BUDGET_MIXES),
    Col("strategy"),
    *(Col(f"year_{y}", "float", lo=0, hi=1) for y in range(1, BUDGET_YEARS + 1)),
    Col("source"),
    Col("note", blank=True, required=False),
)


# --------------------------------------------------------------------------- raw reading


def _check_is_file(path: Path, shown: Path) -> None:
    if path.is_dir():
        raise InputFileError(shown, "is a folder, not a file")
    if not path.is_file():
        raise InputFileError(shown, "file not found")


def unreadable(shown, exc: OSError) -> InputFileError:
    """A read that failed (permission, I/O error) as an input error naming the file: the CLI's
    handler of other OSErrors speaks of failed writes."""
    return InputFileError(shown, f"cannot be read ({exc.strerror or type(exc).__name__})")


def _read_bytes(path: Path, shown: Path) -> bytes:
    """The file's bytes, refusing one above MAX_FILE_BYTES before reading it."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputFileError(
                shown, f"file is {size:,} bytes, above the {MAX_FILE_BYTES:,}-byte limit"
            )
        return path.read_bytes()
    except OSError as exc:
        raise unreadable(shown, exc) from None


def _decode(path: Path, data: bytes) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise InputFileError(
            path, f"file is {len(data):,} bytes, above the {MAX_FILE_BYTES:,}-byte limit"
        )
    if not data.strip():
        raise InputFileError(path, "file is empty")
    if data[:4] == b"PK\x03\x04":
        raise InputFileError(
            path,
            "is a zip/Excel file, not a CSV: in Excel use File > Save As > 'CSV UTF-8 (Comma delimited)'",
        )
    csv_file = Path(path).suffix.lower() == ".csv"
    save_as = (
        "in Excel use File > Save As > 'CSV UTF-8 (Comma delimited)'"
        if csv_file
        else "save it as UTF-8"
    )
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # Excel's "Unicode Text", Notepad's "Unicode"
        raise InputFileError(path, f"is UTF-16 text, not UTF-8: {save_as}")
    if b"\x00" in data:
        kind = "a CSV text file" if csv_file else "a text file"
        raise InputFileError(path, f"is a binary file (contains NUL bytes), not {kind}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFileError(
            path,
            f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at position {exc.start}): {save_as}",
        ) from None


def _sniff_delimiter(path: Path, text: str) -> str:
    lines = text.splitlines()  # empty when the file held only a byte-order mark
    header = lines[0] if lines else ""
    if "," in header:
        return ","
    if ";" in header:
        return ";"
    if "\t" in header:
        raise InputFileError(
            path, "is tab-separated: save it as 'CSV UTF-8 (Comma delimited)'", row=1
        )
    return ","


def read_csv_text(path: Path, data: bytes) -> tuple[list[str], list[tuple[int, list[str]]], str]:
    """Split a CSV into header and rows (with spreadsheet row numbers). Returns the delimiter too."""
    text = _decode(path, data)
    delim = _sniff_delimiter(path, text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim, strict=True)
    rows: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    try:
        for fields in reader:
            line = reader.line_num
            if not fields or all(not f.strip() for f in fields):
                continue
            if header is None:
                header = [f.strip() for f in fields]
                continue
            rows.append((line, fields))
    except csv.Error as exc:
        raise InputFileError(path, f"is not valid CSV ({exc})", row=reader.line_num) from None
    if header is None:
        raise InputFileError(path, "file is empty")
    return header, rows, delim


def _parse_float(text: str, delim: str) -> float:
    s = text.strip().replace("\u00a0", "").replace(" ", "")
    if delim == ";" and "," in s:
        if "." in s:
            raise ValueError("ambiguous number (both '.' and ','): remove the thousands separator")
        s = s.replace(",", ".")
    if s.endswith("%"):
        raise ValueError("percent sign: write the value as a decimal (0.05, not 5%)")
    value = float(s)
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


#: Characters refused in a text cell: the C0 and C1 controls but tab and line breaks (Excel's
#: XML cannot hold them; a terminal would act on them in an error line).
CONTROL_CHARACTERS = frozenset(
    chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)] if chr(c) not in "\t\n\r"
)
_CONTROL = re.compile("[" + re.escape("".join(sorted(CONTROL_CHARACTERS))) + "]")


def _parse_cell(col: Col, raw: str, delim: str):
    s = raw.strip()
    if s == "":
        if not col.blank:
            raise ValueError("is empty")
        return None if col.kind in ("float", "int") else (False if col.kind == "bool" else "")
    if col.kind == "str":
        bad = _CONTROL.search(s)
        if bad is not None:  # a spreadsheet refuses it, and it would garble the one error line
            raise ValueError(f"holds the control character {bad.group()!r}")
        if col.choices is not None and s not in col.choices:
            allowed = ", ".join(c for c in col.choices if c)
            raise ValueError(f"'{s}' is not one of: {allowed}")
        return s
    if col.kind == "bool":
        low = s.lower()
        if low in TRUE_WORDS:
            return True
        if low in FALSE_WORDS:
            return False
        raise ValueError(f"'{s}' is not true/false")
    try:
        value = _parse_float(s, delim)
    except ValueError as exc:
        msg = str(exc)
        if msg.startswith("could not convert") or "invalid literal" in msg:
            msg = "not a number"
        raise ValueError(
            f"'{s}' is {msg}" if not msg.startswith(("ambiguous", "percent")) else msg
        ) from None
    if col.kind == "int":
        if value != int(value):
            raise ValueError(f"'{s}' is not a whole number")
        value = int(value)
    if col.lo is not None and value < col.lo:
        raise ValueError(f"{s} is below the minimum {col.lo:g}")
    if col.above is not None and not value > col.above:
        raise ValueError(f"{s} must be greater than {col.above:g}")
    if col.hi is not None and value > col.hi:
        raise ValueError(f"{s} is above the maximum {col.hi:g}")
    return value


@dataclass
class Table:
    """A parsed input table: ``df`` has one column per schema column plus ``_row``."""

    path: Path
    df: pd.DataFrame
    sha256: str

    def error(
        self, problem: str, row: int | None = None, column: str | None = None
    ) -> InputFileError:
        return InputFileError(self.path, problem, row=row, column=column)


def read_table(
    path: Path | str,
    columns: Sequence[Col],
    *,
    key: Sequence[str] = (),
    display: str | None = None,
) -> Table:
    """Read and validate one CSV table.

    Parameters
    ----------
    path : file to read.
    columns : schema; required columns must be present, extra columns are ignored.
    key : columns whose combination must be unique.
    display : the name used in messages (defaults to the path as given).
    """
    path = Path(path)
    shown = Path(display) if display else path
    _check_is_file(path, shown)
    data = _read_bytes(path, shown)
    header, rows, delim = read_csv_text(shown, data)
    return table_from_rows(
        shown, header, rows, columns, key=key, delim=delim, sha256=hashlib.sha256(data).hexdigest()
    )


def table_from_rows(
    shown: Path | str,
    header: list[str],
    rows: list[tuple[int, list[str]]],
    columns: Sequence[Col],
    *,
    key: Sequence[str] = (),
    delim: str = ",",
    sha256: str = "",
) -> Table:
    """Validate a table given as text cells (from a CSV or a spreadsheet sheet).

    ``rows`` holds (row number as the user sees it, cells as strings). Used by the CSV reader
    and by the Excel input reader, so both give the same one-line errors.
    """
    shown = Path(shown)
    header = [str(h).strip() for h in header]
    seen: set[str] = set()
    for name in header:
        if name in seen and name:  # unnamed columns (Excel's empty ones) are ignored
            raise InputFileError(
                shown, f"column '{name}' appears twice in the header", row=1, column=name
            )
        seen.add(name)
    for col in columns:
        if col.required and col.name not in header:
            raise InputFileError(shown, "required column is missing", row=1, column=col.name)
    index = {name: i for i, name in enumerate(header)}
    records = []
    for line, fields in rows:
        if len(fields) != len(header):
            raise InputFileError(
                shown,
                f"has {len(fields)} fields but the header has {len(header)} (a truncated row, "
                "or an unquoted separator inside a value)",
                row=line,
            )
        rec: dict = {"_row": line}
        for col in columns:
            if col.name not in index:
                rec[col.name] = None if col.kind in ("float", "int") else ""
                continue
            try:
                rec[col.name] = _parse_cell(col, fields[index[col.name]], delim)
            except ValueError as exc:
                raise InputFileError(shown, str(exc), row=line, column=col.name) from None
        records.append(rec)
    if not records:
        raise InputFileError(shown, "has a header but no data rows")
    df = pd.DataFrame.from_records(records)
    if key:
        dup = df.duplicated(subset=list(key), keep="first")
        if dup.any():
            first_dup = df[dup].iloc[0]
            keyval = ", ".join(str(first_dup[k]) for k in key)
            earlier = df[(df[list(key)] == first_dup[list(key)]).all(axis=1)].iloc[0]["_row"]
            raise InputFileError(
                shown,
                f"duplicate {'/'.join(key)} '{keyval}' (first on row {earlier})",
                row=int(first_dup["_row"]),
                column=key[0],
            )
    return Table(path=shown, df=df, sha256=sha256)


# --------------------------------------------------------------------------- TOML


def read_toml(path: Path | str, display: str | None = None) -> tuple[dict, str]:
    """Read a TOML file; returns (content, sha256)."""
    path = Path(path)
    shown = Path(display) if display else path
    _check_is_file(path, shown)
    data = _read_bytes(path, shown)
    text = _decode(shown, data) if data.strip() else ""
    try:
        content = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        raise InputFileError(
            shown, f"is not valid TOML: {getattr(exc, 'msg', exc)}", row=line
        ) from None
    except RecursionError:  # tomllib recurses once a level of nested arrays or tables
        raise InputFileError(shown, "is not valid TOML: nested too deeply") from None
    return content, hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- the inputs


@dataclass
class Inputs:
    """Every table of an inputs folder, validated. Nothing here is country-specific yet."""

    root: Path
    parameters: Table
    strategies: Table
    countries: Table
    prices: dict[str, Table]
    overrides: Table | None
    life_tables: Table
    macro: Table
    cpi: Table
    correlations: Table | None
    settings: dict
    hashes: dict[str, str] = field(default_factory=dict)
    #: ``validation_targets.csv`` (optional): published figures for the face-validity rows of
    #: ``cea check`` (:mod:`cea.pipeline.validation`); None when the file is absent
    validation_targets: Table | None = None
    #: ``budget_mix.csv`` (optional): the current and new mix of strategies by year for
    #: ``cea budget`` (:mod:`cea.pipeline.budget`); None when the file is absent
    budget_mix: Table | None = None

    def country_codes(self) -> list[str]:
        return list(self.countries.df["country"])


def _whole(v) -> bool:
    """A TOML integer (not true/false, which Python counts as the integers 1 and 0)."""
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v) -> bool:
    """A TOML integer or float (not true/false)."""
    return isinstance(v, int | float) and not isinstance(v, bool)


SETTINGS_SCHEMA: dict[str, dict[str, Callable[[object], bool]]] = {
    "run": {
        "country": lambda v: isinstance(v, str),
        "seed": lambda v: _whole(v) and v >= 0,
        "n_draws": lambda v: _whole(v) and v >= 1,
    },
    "budget": {
        "horizon_years": lambda v: _whole(v) and 1 <= v <= BUDGET_YEARS,
    },
    "model": {
        "horizon_years": lambda v: _number(v) and 0 < v <= MAX_HORIZON_YEARS,
        # from one day: shorter cycles (10 years of 0.01-day cycles, 365,250 cycles) only exhaust
        # memory
        "cycle_days": lambda v: _number(v) and 1 <= v <= 366,
        "days_per_year": lambda v: _number(v) and 360 <= v <= 366,
        "correction": lambda v: (
            isinstance(v, str)
            or (
                isinstance(v, list)
                and all(_number(w) for w in v)
                and all(math.isfinite(w) for w in v)
            )
        ),
        "discount_offset_cycles": lambda v: _number(v) and -1 <= v <= 1,
        "discount_step": lambda v: v in ("cycle", "annual"),
        "discount_rate_costs": lambda v: _number(v) and 0 <= v <= 0.2,
        "discount_rate_effects": lambda v: _number(v) and 0 <= v <= 0.2,
        "bsab_drug": lambda v: isinstance(v, str),
        "include_bsab_costs": lambda v: isinstance(v, bool),
        "include_subsequent_therapy": lambda v: isinstance(v, bool),
        "include_end_of_life": lambda v: isinstance(v, bool),
        "strategies": lambda v: (
            isinstance(v, list) and len(v) >= 1 and all(isinstance(s, str) for s in v)
        ),
        "comparisons": lambda v: (
            isinstance(v, list)
            and all(
                isinstance(c, list) and len(c) == 2 and all(isinstance(s, str) for s in c)
                for c in v
            )
        ),
    },
}


def check_settings(settings: dict, where: str) -> None:
    """Validate a (possibly partial) settings dict against SETTINGS_SCHEMA."""
    for section, values in settings.items():
        if section not in SETTINGS_SCHEMA:
            raise InputFileError(
                where, f"unknown section [{section}] (known: {', '.join(SETTINGS_SCHEMA)})"
            )
        if not isinstance(values, dict):
            raise InputFileError(where, f"[{section}] must be a table of settings")
        for key, value in values.items():
            check = SETTINGS_SCHEMA[section].get(key)
            if check is None:
                raise InputFileError(where, f"unknown setting '{key}' in [{section}]", column=key)
            if not check(value):
                raise InputFileError(
                    where, f"invalid value {value!r} for setting '{key}' in [{section}]", column=key
                )


def load_inputs_folder(root: Path | str) -> Inputs:
    """Read and validate every table of an inputs folder."""
    root = Path(root)
    if not root.is_dir():
        found = root.exists() or root.is_symlink()
        raise InputFileError(
            root,
            "is not a folder: give an inputs folder or an .xlsx input workbook"
            if found
            else "inputs folder not found",
        )

    def shown(name: str) -> str:
        return str(Path(root.name) / name) if root.name else name

    def read(
        name: str, columns: Sequence[Col], key: Sequence[str], optional: bool = False
    ) -> Table | None:
        if optional and not (root / name).exists():  # a folder of its name is refused
            return None
        return read_table(root / name, columns, key=key, display=shown(name))

    def settings() -> tuple[dict, str, str]:
        content, sha = read_toml(root / "settings.toml", display=shown("settings.toml"))
        return content, sha, shown("settings.toml")

    return assemble_inputs(root, read, settings)


#: (file name, schema, unique key, optional) of every table; prices/<ISO2>.csv per country.
TABLES = {
    "parameters": ("parameters.csv", PARAMETER_COLUMNS, ("parameter",), False),
    "strategies": ("strategies.csv", STRATEGY_COLUMNS, ("strategy",), False),
    "countries": ("countries.csv", COUNTRY_COLUMNS, ("country",), False),
    "overrides": ("country_overrides.csv", OVERRIDE_COLUMNS, ("country", "parameter"), True),
    "life_tables": ("life_tables.csv", LIFE_TABLE_COLUMNS, ("country_iso2", "sex", "age"), False),
    "macro": ("macro.csv", MACRO_COLUMNS, ("country_iso2", "year"), False),
    "cpi": ("cpi.csv", CPI_COLUMNS, ("country_iso2", "year"), False),
    "correlations": ("correlations.csv", CORRELATION_COLUMNS, ("parameter_a", "parameter_b"), True),
    "validation_targets": ("validation_targets.csv", VALIDATION_TARGET_COLUMNS, ("id",), True),
    "budget_mix": ("budget_mix.csv", BUDGET_MIX_COLUMNS, ("mix", "strategy"), True),
}
PRICE_KEY = ("item",)


def assemble_inputs(
    root: Path,
    read: Callable[[str, Sequence[Col], Sequence[str], bool], Table | None],
    read_settings: Callable[[], tuple[dict, str, str]],
) -> Inputs:
    """Read every table through ``read(file name, schema, key, optional)`` and run the
    cross-table checks. Shared by the CSV folder reader and the Excel workbook reader."""

    def get(name: str) -> Table | None:
        file, cols, key, optional = TABLES[name]
        return read(file, cols, key, optional)

    parameters = get("parameters")
    _check_parameters(parameters)
    strategies = get("strategies")
    _check_strategies(strategies, set(parameters.df["parameter"]))
    countries = get("countries")
    _check_countries(countries)
    prices: dict[str, Table] = {}
    for code in countries.df["country"]:
        prices[code] = read(f"prices/{code}.csv", PRICE_COLUMNS, PRICE_KEY, False)
        _check_prices(prices[code], code, countries)
    _check_price_items(prices)
    overrides = get("overrides")
    if overrides is not None:
        _check_overrides(overrides, set(countries.df["country"]), parameters)
    life_tables = get("life_tables")
    macro = get("macro")
    cpi = get("cpi")
    correlations = get("correlations")
    if correlations is not None:
        known = set(parameters.df["parameter"])
        for _, r in correlations.df.iterrows():
            for c in ("parameter_a", "parameter_b"):
                if r[c] not in known:
                    raise correlations.error(
                        f"unknown parameter '{r[c]}'{did_you_mean(r[c], known)}",
                        row=int(r["_row"]),
                        column=c,
                    )
    targets = get("validation_targets")
    if targets is not None:
        _check_validation_targets(targets, set(strategies.df["strategy"]))
    budget_mix = get("budget_mix")
    if budget_mix is not None:
        _check_budget_mix(budget_mix, set(strategies.df["strategy"]))
    settings, settings_hash, settings_name = read_settings()
    check_settings(settings, settings_name)
    tables = [parameters, strategies, countries, *prices.values(), life_tables, macro, cpi]
    tables += [t for t in (overrides, correlations, targets, budget_mix) if t is not None]
    hashes = {str(t.path): t.sha256 for t in tables}
    hashes[settings_name] = settings_hash
    return Inputs(
        root=root,
        parameters=parameters,
        strategies=strategies,
        countries=countries,
        prices=prices,
        overrides=overrides,
        life_tables=life_tables,
        macro=macro,
        cpi=cpi,
        correlations=correlations,
        settings=settings,
        hashes=hashes,
        validation_targets=targets,
        budget_mix=budget_mix,
    )


# --------------------------------------------------------------------------- table checks


def _prefix(name: str) -> str | None:
    for pre in sorted(PREFIX_DISTS, key=len, reverse=True):
        if name.startswith(pre):
            return pre
    return None


def check_parameter_row(table: Table, r: pd.Series, name_col: str = "parameter") -> None:
    """Check one parameter (or price) row: prefix vs dist, ranges, bounds, units."""
    row = int(r["_row"])
    name = r[name_col]
    pre = _prefix(name)
    if pre is None:
        raise table.error(
            f"parameter '{name}' has no known type prefix ({', '.join(PREFIX_DISTS)})",
            row=row,
            column=name_col,
        )
    dist = r["dist"]
    if dist != "dirichlet" and dist not in PREFIX_DISTS[pre]:
        raise table.error(
            f"'{dist}' is not allowed for a '{pre}' parameter (allowed: {', '.join(PREFIX_DISTS[pre])})",
            row=row,
            column="dist",
        )
    value, low, high = r["value"], r["low"], r["high"]
    for col, v in (("value", value), ("low", low), ("high", high)):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        if pre in PROBABILITY_PREFIXES and not 0 <= v <= 1:
            raise table.error(
                f"{v:g} is outside [0, 1] for a probability or utility", row=row, column=col
            )
        if (
            pre not in ("q_", "k_", "rr_", "hr_", "or_")
            and pre not in PROBABILITY_PREFIXES
            and v < 0
        ):
            raise table.error(f"{v:g} is negative", row=row, column=col)
        if pre in ("rr_", "hr_", "or_", "q_") and v < 0:
            raise table.error(f"{v:g} is negative", row=row, column=col)
        if (pre == "t_" or name.endswith("_interval_days")) and v <= 0:
            raise table.error(
                f"{v:g} must be greater than 0 (a duration or interval)", row=row, column=col
            )
    low_ok = low is not None and not (isinstance(low, float) and math.isnan(low))
    high_ok = high is not None and not (isinstance(high, float) and math.isnan(high))
    if low_ok != high_ok:
        raise table.error(
            "give both low and high, or neither", row=row, column="low" if not low_ok else "high"
        )
    if low_ok and not low <= value <= high:
        raise table.error(
            f"value {value:g} is not within low {low:g} and high {high:g}", row=row, column="value"
        )
    unit = r["unit"].strip().lower()
    if pre == "r_" and unit not in RATE_UNITS:
        raise table.error(
            f"rate unit '{r['unit']}' is not one of: {', '.join(RATE_UNITS)}",
            row=row,
            column="unit",
        )
    if pre == "t_" and unit not in TIME_UNITS:
        raise table.error(
            f"time unit '{r['unit']}' is not one of: {', '.join(TIME_UNITS)}",
            row=row,
            column="unit",
        )
    if not str(r.get("source", "")).strip():
        raise table.error(
            "source is empty: every number needs a source or 'assumption'", row=row, column="source"
        )


def _check_parameters(table: Table) -> None:
    """Every parameter row's type, range and source; a dirichlet row needs its group. (Whether
    ``value`` and ``se`` make a valid distribution is checked where the distributions are built:
    :func:`cea.parameters.table.check_distributions`.)"""
    for _, r in table.df.iterrows():
        check_parameter_row(table, r)
        if r["dist"] == "dirichlet" and not str(r.get("group", "")).strip():
            raise table.error(
                "a dirichlet parameter needs a group", row=int(r["_row"]), column="group"
            )


def _check_strategies(table: Table, parameter_names: set[str]) -> None:
    for _, r in table.df.iterrows():
        row = int(r["_row"])
        if r["trigger"] == "never":
            continue
        if r["product"] not in ("ivig", "scig"):
            raise table.error(
                "an IgRT strategy needs product ivig or scig", row=row, column="product"
            )
        if not r["interval_days"]:
            raise table.error(
                "an IgRT strategy needs interval_days > 0", row=row, column="interval_days"
            )
        weight = r["dosing_weight"] or "actual"
        if weight == "flat":
            if not r["flat_dose_g"]:
                raise table.error(
                    "flat dosing needs flat_dose_g > 0", row=row, column="flat_dose_g"
                )
        elif not r["dose_g_per_kg"]:
            raise table.error(
                "weight-based dosing needs dose_g_per_kg > 0", row=row, column="dose_g_per_kg"
            )
        hr = str(r.get("hr_severe_parameter") or "").strip()
        if hr and hr not in parameter_names:
            raise table.error(
                f"unknown parameter '{hr}'{did_you_mean(hr, parameter_names)}",
                row=row,
                column="hr_severe_parameter",
            )


def _check_countries(table: Table) -> None:
    for _, r in table.df.iterrows():
        row = int(r["_row"])
        if r["wtp_basis"] == "gdp_multiple":
            if not r["wtp_gdp_multiple"]:
                raise table.error(
                    "wtp_basis gdp_multiple needs wtp_gdp_multiple > 0",
                    row=row,
                    column="wtp_gdp_multiple",
                )
        elif not r["wtp_per_qaly"]:
            raise table.error("wtp_per_qaly is empty", row=row, column="wtp_per_qaly")
        try:
            parse_wtp_alternatives(r["wtp_alternatives"])
        except ValueError as exc:
            raise table.error(str(exc), row=row, column="wtp_alternatives") from None


def parse_wtp_alternatives(text: str) -> list[tuple[str, float]]:
    """Parse ``"20000;30000"`` or ``"0.5xGDP;3xGDP"`` into [("value", 20000.0), ("gdp", 0.5), ...]."""
    out: list[tuple[str, float]] = []
    for part in str(text or "").split(";"):
        s = part.strip()
        if not s:
            continue
        if s.lower().endswith("xgdp"):
            num = s[:-4].strip()
            kind = "gdp"
        else:
            num, kind = s, "value"
        try:
            v = float(num)
        except ValueError:
            raise ValueError(f"'{s}' is neither a number nor a multiple like '3xGDP'") from None
        if not math.isfinite(v) or v <= 0:
            raise ValueError(f"'{s}' must be a positive number")
        out.append((kind, v))
    return out


def _check_prices(table: Table, code: str, countries: Table) -> None:
    currency = countries.df.set_index("country").loc[code, "currency"]
    for _, r in table.df.iterrows():
        row = int(r["_row"])
        if not str(r["item"]).startswith("c_"):
            raise table.error(
                f"price item '{r['item']}' must start with 'c_'", row=row, column="item"
            )
        if r["currency"] != currency:
            raise table.error(
                f"currency '{r['currency']}' differs from the country's currency '{currency}' in countries.csv",
                row=row,
                column="currency",
            )
        check_parameter_row(table, r, name_col="item")
        if r["dist"] == "gamma" and r["value"] > 0 and r["se"] is None and r["low"] is None:
            raise table.error("a gamma price needs se or low/high", row=row, column="se")


def _check_price_items(prices: dict[str, Table]) -> None:
    """Every country prices the same items: a row missing from one country's file is an error
    naming the country, the file, the item and the countries that price it."""
    items = {code: set(t.df["item"]) for code, t in prices.items()}
    every = set().union(*items.values()) if items else set()
    for code, table in prices.items():
        missing = sorted(every - items[code])
        if missing:
            have = [c for c in prices if missing[0] in items[c]]
            more = (
                f" (and {len(missing) - 1} more: {', '.join(missing[1:])})"
                if len(missing) > 1
                else ""
            )
            raise table.error(
                f"country {code} has no row for price item '{missing[0]}'{more}; every country must price "
                f"the same items ({len(have)} of {len(prices)} price it: {', '.join(have)})"
            )


def _check_validation_targets(table: Table, strategies: set[str]) -> None:
    """validation_targets.csv: known strategies; a comparator and months where the measure
    needs them (:data:`VALIDATION_MEASURES`); low <= published_value <= high."""
    for _, r in table.df.iterrows():
        row = int(r["_row"])
        needs_comparator, needs_months = VALIDATION_MEASURES[r["measure"]]
        for c in ("strategy", "comparator"):
            if r[c] and r[c] not in strategies:
                raise table.error(f"unknown strategy '{r[c]}' (not in strategies.csv)", row, c)
        if needs_comparator and not r["comparator"]:
            raise table.error(f"measure '{r['measure']}' needs a comparator", row, "comparator")
        if needs_months and (r["months"] is None or not r["months"] > 0):
            raise table.error(f"measure '{r['measure']}' needs months > 0", row, "months")
        if not r["low"] <= r["published_value"]:
            raise table.error(
                f"low {r['low']:g} is above published_value {r['published_value']:g}", row, "low"
            )
        if not r["published_value"] <= r["high"]:
            raise table.error(
                f"high {r['high']:g} is below published_value {r['published_value']:g}",
                row,
                "high",
            )


def _check_budget_mix(table: Table, strategies: set[str]) -> None:
    """budget_mix.csv: known strategies; both mixes; each mix's shares sum to 1 every year."""
    df = table.df
    for _, r in df.iterrows():
        if r["strategy"] not in strategies:
            raise table.error(
                f"unknown strategy '{r['strategy']}'{did_you_mean(r['strategy'], strategies)}",
                int(r["_row"]),
                "strategy",
            )
    for mix in BUDGET_MIXES:
        rows = df[df["mix"] == mix]
        if rows.empty:
            raise table.error(f"no row for the '{mix}' mix (both 'current' and 'new' are needed)")
        for y in range(1, BUDGET_YEARS + 1):
            total = float(rows[f"year_{y}"].sum())
            if abs(total - 1.0) > BUDGET_SHARE_TOLERANCE:
                raise table.error(
                    f"the shares of the '{mix}' mix sum to {total:.6g} in year {y}, not 1",
                    int(rows["_row"].iloc[0]),
                    f"year_{y}",
                )


def _check_overrides(table: Table, countries: set[str], parameters: Table) -> None:
    known = set(parameters.df["parameter"])
    for _, r in table.df.iterrows():
        row = int(r["_row"])
        if r["country"] not in countries:
            raise table.error(f"unknown country '{r['country']}'", row=row, column="country")
        if r["parameter"] not in known:
            raise table.error(
                f"unknown parameter '{r['parameter']}'{did_you_mean(r['parameter'], known)}",
                row=row,
                column="parameter",
            )

"""Robustness: property-based tests of the engine and the readers, and ``cea run`` against
malformed inputs, interruption, concurrent runs and an existing output folder.

The promise tested (README, "Exit codes"): bad input or options give one line on stderr
naming the problem and exit code 2, with no traceback and nothing written (no output folder,
no ``.<name>.tmp-*`` folder left beside it); inputs are only ever read; an interrupted run
(Ctrl-C) exits 130 and leaves nothing; a killed run may leave a hidden temporary folder but
never the output folder; runs into different folders do not interfere.

Subprocess runs are started in parallel by module-scoped fixtures; tests read their results.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cea.engine.markov import CORRECTIONS, make_transition_array, run_markov
from cea.errors import CeaError, InputFileError, ModelInputError
from cea.io.inputs import (
    CONTROL_CHARACTERS,
    MAX_FILE_BYTES,
    PRICE_COLUMNS,
    TABLES,
    Col,
    read_table,
    read_toml,
    table_from_rows,
)

REPO = Path(__file__).resolve().parents[1]
INPUTS = REPO / "inputs"
TWO = "none,primary_ivig"
WORKERS = max(2, os.cpu_count() or 2)


# =========================================================================== engine (hypothesis)


@st.composite
def markov_models(draw):
    """A random valid model: D draws, T cycles, S states, rows of P summing to 1."""
    S = draw(st.integers(2, 5))
    T = draw(st.integers(1, 8))
    D = draw(st.integers(1, 3))
    unit = st.floats(0.0, 1.0, allow_nan=False, allow_subnormal=False)
    raw = draw(hnp.arrays(np.float64, (D, T, S, S), elements=unit))
    # some exact zeros and absorbing states, as real models have
    absorbing = draw(st.lists(st.integers(0, S - 1), max_size=2))
    for s in absorbing:
        raw[:, :, s, :] = 0.0
    total = raw.sum(axis=-1, keepdims=True)
    empty = total[..., 0] == 0
    raw[empty] = np.eye(S)[np.nonzero(empty)[2]]
    P = raw / raw.sum(axis=-1, keepdims=True)
    start = draw(
        hnp.arrays(np.float64, (S,), elements=st.floats(0.0, 1000.0, allow_subnormal=False))
    )
    reward = draw(hnp.arrays(np.float64, (S,), elements=st.floats(0.0, 1e6, allow_subnormal=False)))
    return {
        "start": start,
        "P": P,
        "reward": reward,
        "correction": draw(st.sampled_from(CORRECTIONS)),
        "rate": draw(st.floats(0.0, 0.2)),
        "cycle": draw(st.sampled_from([1.0, 0.5, 28 / 365.25])),
        "innermost": draw(st.booleans()),
    }


@settings(max_examples=150, deadline=None)
@given(markov_models())
def test_engine_conserves_mass_and_stays_non_negative(m):
    P = m["P"]
    if m["innermost"]:
        P = make_transition_array(*P.shape[:3])
        P[...] = m["P"]
    res = run_markov(
        m["start"],
        P,
        n_cycles=P.shape[1],
        state_rewards={"cost": m["reward"], "qaly": m["reward"] / 1e6},
        effects=("qaly",),
        discount_rate_costs=m["rate"],
        discount_rate_effects=m["rate"],
        cycle_length_years=m["cycle"],
        correction=m["correction"],
    )
    total = m["start"].sum()
    assert res.trace.shape == (P.shape[0], P.shape[1] + 1, P.shape[2])
    assert (res.trace >= 0).all()
    np.testing.assert_allclose(res.trace.sum(axis=-1), total, rtol=1e-12, atol=1e-12)
    for name in ("cost", "qaly"):
        disc, und = np.asarray(res.discounted[name]), np.asarray(res.undiscounted[name])
        assert np.isfinite(disc).all() and (disc >= 0).all()
        assert (disc <= und * (1 + 1e-12) + 1e-12).all()


@settings(max_examples=100, deadline=None)
@given(markov_models(), st.integers(0, 10_000), st.sampled_from(["up", "negative", "nan"]))
def test_engine_rejects_an_invalid_probability_with_model_input_error(m, where, how):
    P = m["P"].copy()
    flat = P.reshape(-1)
    i = where % flat.size
    flat[i] = {"up": flat[i] + 0.01, "negative": -0.01, "nan": np.nan}[how]
    with pytest.raises(ModelInputError):
        run_markov(m["start"], P, n_cycles=P.shape[1], state_rewards={"cost": m["reward"]})


# =========================================================================== readers (hypothesis)

SCHEMAS = [(name, spec[1], spec[2]) for name, spec in TABLES.items()] + [
    ("prices", PRICE_COLUMNS, ("item",))
]
AWKWARD_CELLS = [
    "",
    " ",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e400",
    "-0",
    "5%",
    "1,5",
    "1.000,5",
    "0x10",
    "1_000",
    "\u0661\u0662",
    "true",
    "maybe",
    "beta",
    "fixed",
    "S",
    "GB",
    "p_male",
    '"',
    "a\nb",
    "\u00a0",
    "\ufeff",
    "9" * 400,
]
cells = st.one_of(
    st.sampled_from(AWKWARD_CELLS),
    st.text(max_size=8),
    st.floats().map(repr),
    st.integers().map(str),
)


@st.composite
def raw_tables(draw):
    name, columns, key = draw(st.sampled_from(SCHEMAS))
    names = [c.name for c in columns]
    header = draw(
        st.lists(st.sampled_from([*names, "extra", ""]), min_size=0, max_size=len(names) + 2)
    )
    if draw(st.booleans()):
        header = names  # most often a complete header, so the cell parsers are reached
    n_rows = draw(st.integers(0, 4))
    rows = []
    for i in range(n_rows):
        width = len(header) if draw(st.integers(0, 5)) else draw(st.integers(0, len(header) + 2))
        rows.append((i + 2, draw(st.lists(cells, min_size=width, max_size=width))))
    return name, columns, key, header, rows, draw(st.sampled_from([",", ";"]))


@settings(max_examples=250, deadline=None)
@given(raw_tables())
def test_table_from_rows_raises_only_input_file_error(t):
    name, columns, key, header, rows, delim = t
    try:
        table = table_from_rows(f"{name}.csv", header, rows, columns, key=key, delim=delim)
    except InputFileError as exc:
        assert str(exc).startswith(f"{name}.csv")
        assert "\n" not in str(exc)  # one line, whatever the cells hold
    else:
        assert len(table.df) == len(rows)


csv_bytes = st.one_of(
    st.binary(max_size=300),
    st.text(alphabet=',;"\n\r\t a1.-e%\u00e9\ufeff', max_size=300).map(lambda s: s.encode("utf-8")),
    st.text(max_size=200).map(
        lambda s: ("parameter,value,se,low,high,dist,unit,source,evidence\n" + s).encode()
    ),
)


def test_a_line_break_in_a_cell_keeps_the_error_on_one_line():
    header = [c.name for c in TABLES["parameters"][1]]
    cells = ["p_male", "0.5\n0.6", *[""] * (len(header) - 2)]
    with pytest.raises(InputFileError) as info:
        table_from_rows("parameters.csv", header, [(2, cells)], TABLES["parameters"][1])
    assert "\n" not in str(info.value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csv_bytes, st.sampled_from(SCHEMAS))
def test_read_table_on_arbitrary_bytes_raises_only_input_file_error(data, schema):
    name, columns, key = schema
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        path.write_bytes(data)
        try:
            read_table(path, columns, key=key, display=f"{name}.csv")
        except InputFileError as exc:
            assert str(exc).startswith(f"{name}.csv")
            assert "\n" not in str(exc)
        assert path.read_bytes() == data  # never written


def test_a_file_holding_only_a_bom_is_empty(tmp_path):
    path = tmp_path / "parameters.csv"
    path.write_bytes(b"\xef\xbb\xbf")
    with pytest.raises(InputFileError, match="file is empty"):
        read_table(path, TABLES["parameters"][1])


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_read_toml_on_arbitrary_bytes_raises_only_input_file_error(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.toml"
        path.write_bytes(data)
        try:
            content, digest = read_toml(path)
        except InputFileError:
            pass
        else:
            assert isinstance(content, dict) and digest == hashlib.sha256(data).hexdigest()


ROUND_TRIP_SCHEMA = (
    Col("name"),
    Col("x", "float"),
    Col("k", "int"),
    Col("flag", "bool", blank=True),
    Col("note", blank=True, required=False),
)
clean_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=12,
)
clean_text = clean_text.filter(
    lambda s: s == s.strip() and s.strip() != "" and not set(s) & CONTROL_CHARACTERS
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            clean_text,
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(-(10**12), 10**12),
            st.booleans(),
            st.one_of(st.just(""), clean_text),
        ),
        min_size=1,
        max_size=6,
        unique_by=lambda r: r[0],
    ),
    st.sampled_from([",", ";"]),
    st.booleans(),
)
def test_valid_tables_round_trip(records, delim, bom):
    # written as Excel would (';' with decimal commas in some locales), read back exactly
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delim, lineterminator="\r\n")
    w.writerow([c.name for c in ROUND_TRIP_SCHEMA])
    for name, x, k, flag, note in records:
        number = repr(x).replace(".", ",") if delim == ";" else repr(x)
        w.writerow([name, number, k, "true" if flag else "false", note])
    data = (b"\xef\xbb\xbf" if bom else b"") + buf.getvalue().encode("utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        path.write_bytes(data)
        table = read_table(path, ROUND_TRIP_SCHEMA, key=("name",))
    df = table.df
    assert list(df["name"]) == [r[0] for r in records]
    assert [float(v) for v in df["x"]] == [r[1] for r in records]
    assert list(df["k"]) == [r[2] for r in records]
    assert list(df["flag"]) == [r[3] for r in records]
    assert list(df["note"]) == [r[4] for r in records]
    assert table.sha256 == hashlib.sha256(data).hexdigest()


# =========================================================================== extreme valid inputs


@pytest.fixture(scope="module")
def base_gb():
    from cea.pipeline.base import run_base_case

    return run_base_case(INPUTS, "GB")


def _pi_one(base):
    """Base case with p_igg_low_ever = 1 (every patient's IgG falls; its DSA high value)."""
    from cea.igrt.model import run_model

    return run_model(base.ptable.base().assign(p_igg_low_ever=1.0), base.spec)


def test_everyone_becoming_hypogammaglobulinemic_runs(base_gb):
    res = _pi_one(base_gb)
    out = res.outcomes.set_index("strategy")
    assert np.isfinite(out.select_dtypes("number").to_numpy()).all()
    base = base_gb.outcomes.set_index("strategy")
    # more patients with low IgG: more severe infections without IgRT
    assert out.loc["none", "severe_infections"] > base.loc["none", "severe_infections"]


def test_every_parameter_at_the_ends_of_its_range_runs(base_gb):
    # the ends exactly as written (the DSA nudges probabilities of 1 by PROB_EDGE), in one
    # vectorized run of the model with calibration: finite, non-negative, QALY <= LY
    from cea.igrt.model import run_model

    base = base_gb.ptable.base()
    rows, labels = [], []
    for name in base_gb.ptable.names:
        for side, x in zip(("low", "high"), base_gb.ptable.dsa_range(name), strict=True):
            rows.append(base.iloc[0].copy())
            rows[-1][name] = x
            labels.append(f"{name} {side}")
    draws = pd.DataFrame(rows).reset_index(drop=True).rename_axis("draw")
    out = run_model(draws, base_gb.spec).outcomes
    numbers = out.select_dtypes("number")
    assert np.isfinite(numbers.to_numpy()).all()
    costs = [c for c in out.columns if c.startswith("cost")]
    assert (out[costs] >= 0).all().all()
    bad = out[out["qaly"] > out["ly"] * (1 + 1e-12)]
    assert bad.empty, [labels[d] for d in bad["draw"]]


# =========================================================================== subprocess helpers


def cea_cmd(*args: str, code: str | None = None) -> list[str]:
    return [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "cea", *args]


#: Starts a command the way a terminal does, with Ctrl-C at its default action. A suite run as
#: a background job of a non-interactive shell (``bash .ci/run &``, nohup) inherits SIGINT
#: ignored; Python then keeps ignoring it, and a Ctrl-C test would wait for nothing. exec keeps
#: the default disposition, so the command proper starts with Python's KeyboardInterrupt.
AS_FROM_A_TERMINAL = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def interactive(cmd: list[str]) -> list[str]:
    return [sys.executable, "-c", AS_FROM_A_TERMINAL, *cmd]


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def run(cmd: list[str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, env=env(), capture_output=True, text=True, timeout=timeout)


def copy_inputs(dest: Path) -> Path:
    for src in INPUTS.rglob("*"):
        if src.is_file():
            target = dest / src.relative_to(INPUTS)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(src.read_bytes())
    return dest


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (sparse files hashed in chunks)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h = hashlib.sha256()
            with p.open("rb") as f:
                for chunk in iter(lambda f=f: f.read(1 << 20), b""):
                    h.update(chunk)
            out[str(p.relative_to(folder))] = h.hexdigest()
    return out


def leftovers(out: Path) -> list[str]:
    """Anything a run into ``out`` left beside it (temporary or half-replaced folders)."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def edit_csv(path: Path, fn) -> None:
    """Rewrite a CSV through ``fn(header, rows) -> (header, rows)``."""
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    header, body = fn(rows[0], rows[1:])
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *body])
    path.write_text(buf.getvalue(), encoding="utf-8")


def set_cell(path: Path, key: str, column: str, value: str) -> None:
    def fn(header, rows):
        for r in rows:
            if r[0] == key:
                r[header.index(column)] = value
        return header, rows

    edit_csv(path, fn)


# =========================================================================== malformed inputs


def _truncate_mid_row(root: Path) -> None:
    lines = (root / "parameters.csv").read_bytes().split(b"\n")
    cut = b"\n".join(lines[:10]) + b"\n" + lines[10].split(b",")[0] + b",0.5"
    (root / "parameters.csv").write_bytes(cut)


def _truncate_in_quotes(root: Path) -> None:
    data = (root / "strategies.csv").read_bytes()
    (root / "strategies.csv").write_bytes(data[: data.index(b'"') + 5])


def _not_utf8(root: Path) -> None:
    text = (
        (root / "countries.csv")
        .read_text(encoding="utf-8")
        .replace("United Kingdom", "Royaume-Uni \u00e9")
    )
    (root / "countries.csv").write_bytes(text.encode("cp1252"))


def _huge(root: Path) -> None:
    with (root / "life_tables.csv").open("r+b") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk space used


def _drop_column(name: str, column: str):
    def fn(root: Path) -> None:
        def drop(header, rows):
            i = header.index(column)
            return header[:i] + header[i + 1 :], [r[:i] + r[i + 1 :] for r in rows]

        edit_csv(root / name, drop)

    return fn


def _duplicate_row(name: str, key: str):
    def fn(root: Path) -> None:
        edit_csv(root / name, lambda h, rows: (h, rows + [next(r for r in rows if r[0] == key)]))

    return fn


def _cell(name: str, key: str, column: str, value: str):
    return lambda root: set_cell(root / name, key, column, value)


def _write(name: str, data: bytes):
    def fn(root: Path) -> None:
        (root / name).write_bytes(data)

    return fn


def _header_only(name: str):
    def fn(root: Path) -> None:
        first = (root / name).read_bytes().split(b"\n")[0]
        (root / name).write_bytes(first + b"\n")

    return fn


def _tabs(root: Path) -> None:
    rows = list(csv.reader(io.StringIO((root / "parameters.csv").read_text(encoding="utf-8"))))
    buf = io.StringIO()
    csv.writer(buf, delimiter="\t", lineterminator="\n").writerows(rows)
    (root / "parameters.csv").write_text(buf.getvalue(), encoding="utf-8")


def _settings(text: str):
    def fn(root: Path) -> None:
        (root / "settings.toml").write_text((root / "settings.toml").read_text() + text)

    return fn


def _scenario(text: str):
    def fn(root: Path) -> list[str]:
        path = root.parent / "scenario.toml"
        path.write_text('name = "bad"\ndescription = "Malformed on purpose."\n' + text)
        return ["--scenario", str(path)]

    return fn


def _xlsx_not_zip(root: Path) -> list[str]:
    path = root.parent / "bad.xlsx"
    path.write_bytes(b"parameter,value\nthis is a CSV renamed to .xlsx\n")
    return ["--inputs", str(path)]


def _no_folder(root: Path) -> list[str]:
    return ["--inputs", str(root.parent / "no_such_folder")]


P, S, C, G = "parameters.csv", "strategies.csv", "countries.csv", "prices/GB.csv"
#: id -> (mutation of a copy of inputs/ (may return extra CLI args), text the one-line error contains)
MALFORMED = {
    "truncated_row": (_truncate_mid_row, "fields but the header has"),
    "truncated_in_quotes": (_truncate_in_quotes, "is not valid CSV"),
    "not_utf8": (_not_utf8, "is not UTF-8 text"),
    "binary_nul": (_write("life_tables.csv", b"country_iso2,sex\x00,age\n"), "binary file"),
    "zip_saved_as_csv": (_write(S, b"PK\x03\x04\x14\x00\x06\x00"), "is a zip/Excel file"),
    "wrong_type": (_cell(P, "p_male", "value", "abc"), "'abc' is not a number"),
    "nan": (_cell(P, "u_on_bsab", "value", "nan"), "not a finite number"),
    "inf": (_cell(G, "c_ivig_per_g", "value", "inf"), "not a finite number"),
    "percent": (_cell(P, "p_male", "value", "58%"), "percent sign"),
    "probability_above_1": (_cell(P, "p_male", "value", "1.5"), "outside [0, 1]"),
    "negative_price": (_cell(G, "c_ivig_per_g", "value", "-5"), "below the minimum 0"),
    "discount_rate_out_of_range": (
        _cell(C, "GB", "discount_rate_costs", "0.5"),
        "above the maximum 0.2",
    ),
    "year_not_whole": (_cell(C, "GB", "price_year", "2024.5"), "not a whole number"),
    "bool_not_bool": (
        _cell(S, "none", "start_after_severe_infection", "maybe"),
        "is not true/false",
    ),
    "unknown_dist": (_cell(P, "p_male", "dist", "weibull"), "'weibull' is not one of"),
    "unknown_strategy_parameter": (
        _cell(S, "primary_ivig", "hr_severe_parameter", "hr_nope"),
        "unknown parameter 'hr_nope'",
    ),
    "unknown_override_parameter": (
        _cell("country_overrides.csv", "JP", "parameter", "q_nope"),
        "unknown parameter 'q_nope'",
    ),
    "currency_mismatch": (
        _cell(G, "c_ivig_per_g", "currency", "EUR"),
        "differs from the country's currency",
    ),
    "duplicate_parameter": (_duplicate_row(P, "p_male"), "duplicate parameter 'p_male'"),
    "duplicate_country": (_duplicate_row(C, "GB"), "duplicate country 'GB'"),
    "missing_column": (_drop_column(P, "source"), "required column is missing"),
    "empty_file": (_write(S, b""), "file is empty"),
    "header_only": (_header_only(C), "has a header but no data rows"),
    "missing_file": (lambda root: (root / G).unlink(), "file not found"),
    "tab_separated": (_tabs, "is tab-separated"),
    "huge_file": (_huge, "-byte limit"),
    "settings_not_toml": (_settings("\n[model\n"), "is not valid TOML"),
    "settings_unknown_key": (_settings("\n[extra]\nx = 1\n"), "unknown section [extra]"),
    # tomllib recurses once a level: a RecursionError traceback
    "settings_nested_too_deeply": (
        _settings("\nx = " + "[" * 100_000 + "]" * 100_000 + "\n"),
        "inputs/settings.toml: is not valid TOML: nested too deeply",
    ),
    "scenario_nested_too_deeply": (
        _scenario("[parameters]\np_male = " + "{a = " * 5_000 + "1" + "}" * 5_000 + "\n"),
        "scenario.toml: is not valid TOML: nested too deeply",
    ),
    "scenario_not_a_number": (_scenario('[parameters]\np_male = "high"\n'), "must be a number"),
    "scenario_out_of_range": (
        _scenario("[parameters]\np_male = 1.5\n"),
        "p_male = 1.5: a proportion must stay in [0, 1]",
    ),
    "scenario_unreachable_target": (
        _scenario("[parameters]\nt_target_median_os_months = 500\n"),
        "cannot calibrate",
    ),
    "inputs_folder_missing": (_no_folder, "inputs folder not found"),
    "xlsx_not_a_zip": (_xlsx_not_zip, "bad.xlsx"),
    "line_break_in_cell": (_cell(P, "p_male", "value", "0.5\n0.6"), "is not a number"),
    # a zero divides: `cea compare` ended in a ZeroDivisionError traceback (exchange rate), the
    # prices in an error blaming prices/GB.csv (CPI), the WTP in "wtp_per_qaly is empty"
    "exchange_rate_zero": (
        _cell("macro.csv", "GB", "usd_exchange_rate_lcu_per_usd", "0"),
        "column 'usd_exchange_rate_lcu_per_usd': 0 must be greater than 0",
    ),
    "cpi_zero": (_cell("cpi.csv", "GB", "cpi_index", "0"), "column 'cpi_index': 0 must be"),
    "wtp_zero": (
        _cell(C, "GB", "wtp_per_qaly", "0"),
        "inputs/countries.csv, row 3, column 'wtp_per_qaly': 0 must be greater than 0",
    ),
    # se**2 overflowed Python's float power (OverflowError and a traceback)
    "beta_se_overflows": (_cell(P, "p_male", "se", "1e200"), "is too large for mean"),
    # and se**2 underflowed to 0: a ZeroDivisionError and a traceback
    "beta_se_underflows": (
        _cell(P, "p_male", "se", "1e-200"),
        "inputs/parameters.csv, row 5, column 'se': parameter 'p_male': beta se 1e-200 is too small",
    ),
    "gamma_price_se_overflows": (
        _cell(G, "c_scig_training", "se", "1e300"),
        "inputs/prices/GB.csv, row 5, column 'se': parameter 'c_scig_training': gamma",
    ),
    "gamma_price_overflows": (
        _cell(G, "c_scig_training", "value", "1e308"),
        "inputs/prices/GB.csv, row 5, column 'se': parameter 'c_scig_training': gamma",
    ),
    "set_price_overflows": (
        lambda root: ["--inputs", str(root), "--set", "c_ivig_per_g=1e308"],
        "--set c_ivig_per_g=1e+308",
    ),
}


#: One case per kind of problem runs as a real subprocess (``python -m cea run``); the other
#: cases run in-process through ``cea.cli.main``, the same code without the interpreter
#: start-up (about 2.5 s a run).
SUBPROCESS_CASES = (
    "truncated_row",
    "not_utf8",
    "wrong_type",
    "nan",
    "probability_above_1",
    "unknown_dist",
    "duplicate_parameter",
    "missing_column",
    "empty_file",
    "huge_file",
    "xlsx_not_a_zip",
)


class Outcome:
    """What a run printed and returned, and what it left on disk."""

    def __init__(self, returncode, stdout, stderr, out, before, after):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr
        self.out, self.before, self.after = out, before, after


def _prepare(base: Path, name: str) -> tuple[list[str], Path, Path]:
    case = base / name
    root = copy_inputs(case / "inputs")
    extra = MALFORMED[name][0](root) or ["--inputs", str(root)]
    out = case / "results" / "out"
    out.parent.mkdir()
    return ["run", *extra, "--country", "GB", "--strategies", TWO, "--out", str(out)], case, out


@pytest.fixture(scope="module")
def malformed_runs(tmp_path_factory):
    """id -> Outcome of ``python -m cea run`` on a copy of inputs/ with that problem."""
    base = tmp_path_factory.mktemp("malformed")

    def one(name):
        args, case, out = _prepare(base, name)
        before = digests(case)
        proc = run(cea_cmd(*args))
        return name, Outcome(proc.returncode, proc.stdout, proc.stderr, out, before, digests(case))

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return dict(pool.map(one, SUBPROCESS_CASES))


def _params(names) -> list:
    return [pytest.param(name, id=name) for name in names]


def _assert_refused(o: Outcome, name: str) -> None:
    assert "Traceback" not in o.stderr, o.stderr
    assert o.returncode == 2, o.stderr
    lines = o.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), o.stderr
    assert MALFORMED[name][1] in lines[0], lines[0]
    assert o.stdout == ""
    assert not o.out.exists() and leftovers(o.out) == [] and list(o.out.parent.iterdir()) == []
    assert o.after == o.before, "an input file was modified"


@pytest.mark.parametrize("name", _params(SUBPROCESS_CASES))
def test_malformed_input_one_line_exit_2_nothing_written(malformed_runs, name):
    _assert_refused(malformed_runs[name], name)


IN_PROCESS_CASES = [n for n in MALFORMED if n not in SUBPROCESS_CASES]


@pytest.mark.parametrize("name", _params(IN_PROCESS_CASES))
def test_malformed_input_in_process(tmp_path, capsys, name):
    from cea.cli import main

    args, case, out = _prepare(tmp_path, name)
    before = digests(case)
    rc = main(args)
    captured = capsys.readouterr()
    _assert_refused(Outcome(rc, captured.out, captured.err, out, before, digests(case)), name)


def test_a_distribution_too_wide_for_the_floats_is_named_by_the_psa(tmp_path):
    # a lognormal se of 1000 (log scale) draws ratios of inf: `cea psa` refused them deep in
    # the engine ("transition probability ... is nan", no file named) after NumPy's
    # RuntimeWarning lines from its threads
    root = copy_inputs(tmp_path / "inputs")
    set_cell(root / "parameters.csv", "rr_scig_vs_ivig", "se", "1000")
    row = 1 + [r.split(",")[0] for r in (root / "parameters.csv").read_text().splitlines()].index(
        "rr_scig_vs_ivig"
    )
    out = tmp_path / "out"
    before = digests(root)
    proc = run(cea_cmd("psa", "--inputs", str(root), "--draws", "50", "--out", str(out)))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if not x.startswith("cea: compiling")]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(
        f"error: inputs/parameters.csv, row {row}, column 'se': parameter 'rr_scig_vs_ivig': draw "
    ), lines[0]
    assert not out.exists() and leftovers(out) == []
    assert digests(root) == before


def test_malformed_errors_name_the_file_row_and_column(malformed_runs):
    assert malformed_runs["wrong_type"].stderr == (
        "error: inputs/parameters.csv, row 5, column 'value': 'abc' is not a number\n"
    )
    assert malformed_runs["probability_above_1"].stderr.startswith(
        "error: inputs/parameters.csv, row 5, column 'value'"
    )
    assert "column 'source'" in malformed_runs["missing_column"].stderr


# =========================================================================== interruption

#: Runs ``cea`` with the output writer slowed down: it writes everything into the temporary
#: folder, prints where, then sleeps, so a signal lands while the output is half-way.
SLOW_WRITE = """
import sys, time
import cea.report.base as run
write = run.write_base_outputs
def slow(base, folder, command):
    write(base, folder, command)
    print("WRITTEN", folder, flush=True)
    time.sleep(120)
run.write_base_outputs = slow
from cea.cli import main
sys.exit(main(sys.argv[1:]))
"""
#: The same with the computation slowed down (before any output folder exists); ``cea run``
#: imports ``run_base_case`` from :mod:`cea.pipeline.base` when it runs.
SLOW_COMPUTE = """
import sys, time
import cea.pipeline.base as run
compute = run.run_base_case
def slow(*args, **kwargs):
    base = compute(*args, **kwargs)
    print("COMPUTED", flush=True)
    time.sleep(120)
    return base
run.run_base_case = slow
from cea.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _signal_run(out: Path, code: str, marker: str, sig: int) -> tuple[int, str, str]:
    proc = subprocess.Popen(
        interactive(
            cea_cmd("run", "--country", "GB", "--strategies", TWO, "--out", str(out), code=code)
        ),
        cwd=REPO,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith(marker), line + proc.stderr.read()
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, line + stdout, stderr


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    base = tmp_path_factory.mktemp("interrupt")
    cases = {
        "sigint_writing": (SLOW_WRITE, "WRITTEN", signal.SIGINT),
        "sigkill_writing": (SLOW_WRITE, "WRITTEN", signal.SIGKILL),
        "sigint_computing": (SLOW_COMPUTE, "COMPUTED", signal.SIGINT),
    }

    def one(item):
        name, (code, marker, sig) = item
        out = base / name / "out"
        out.parent.mkdir()
        return name, (*_signal_run(out, code, marker, sig), out)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return dict(pool.map(one, cases.items()))


def test_ctrl_c_while_writing_exits_130_and_leaves_nothing(interrupted):
    rc, stdout, stderr, out = interrupted["sigint_writing"]
    tmp_folder = Path(stdout.split()[1])
    assert tmp_folder.parent == out.parent and tmp_folder.name.startswith(".out.tmp-")
    assert rc == 130, stderr
    assert stderr == "interrupted: no output written\n"
    assert not out.exists() and not tmp_folder.exists() and list(out.parent.iterdir()) == []


def test_ctrl_c_while_computing_exits_130_and_leaves_nothing(interrupted):
    rc, _, stderr, out = interrupted["sigint_computing"]
    assert rc == 130 and stderr == "interrupted: no output written\n"
    assert list(out.parent.iterdir()) == []


def test_killed_run_never_leaves_the_output_folder(interrupted):
    # SIGKILL cannot be caught: the hidden temporary folder may stay, the target never appears
    rc, _, _, out = interrupted["sigkill_writing"]
    assert rc == -signal.SIGKILL
    assert not out.exists()
    left = [p.name for p in out.parent.iterdir()]
    assert left and all(name.startswith(".out.tmp-") for name in left), left


def test_ctrl_c_at_an_arbitrary_moment_never_half_writes(tmp_path):
    # the real CLI, no hooks: whenever the signal lands, the folder is complete or absent
    out = tmp_path / "out"
    proc = subprocess.Popen(
        interactive(cea_cmd("run", "--country", "GB", "--strategies", TWO, "--out", str(out))),
        cwd=REPO,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.5)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert leftovers(out) == []
    if out.exists():
        # complete; a signal after the folder was moved into place may still end the process
        # (130 with the folder named, or -SIGINT during interpreter shutdown)
        assert {"results.csv", "incremental.csv", "comparisons.csv", "trace.csv", "run.json"} <= {
            p.name for p in out.iterdir()
        }
        json.loads((out / "run.json").read_text())
        assert proc.returncode in (0, 130, -signal.SIGINT), stderr
        if proc.returncode == 130:
            assert stderr == f"interrupted after the output was complete: {out}/\n"
    else:
        assert proc.returncode in (130, -signal.SIGINT), stderr


def test_ctrl_c_after_the_folder_is_in_place_says_so(tmp_path, monkeypatch, capsys):
    # interrupted while printing the summary: the folder is complete, and the message must not
    # claim that nothing was written
    import cea.io.output as output
    import cea.report.base as report_base
    from cea.cli import main

    def interrupt(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_base, "summary_text", interrupt)
    monkeypatch.setattr(output, "COMMITTED", [])
    out = tmp_path / "out"
    rc = main(["run", "--country", "GB", "--strategies", TWO, "--out", str(out)])
    assert rc == 130
    assert capsys.readouterr().err == f"interrupted after the output was complete: {out}/\n"
    assert (out / "run.json").is_file() and (out / "results.csv").is_file()


@pytest.mark.parametrize("force", [False, True])
def test_ctrl_c_during_the_move_into_place_is_held_until_the_output_is_recorded(
    tmp_path, monkeypatch, force, request
):
    """Ctrl-C arriving while the folder is moved into place (and, with --force, while the old
    one is moved aside) is delivered only once the move is complete and recorded: no
    temporary or old folder is left, and the CLI names the complete folder."""
    import cea.io.output as output

    # Python's own Ctrl-C handler, whatever this process inherited (a job started in the
    # background of a shell ignores SIGINT, and then nothing is raised, rightly)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    target = tmp_path / "out"
    if force:
        with output.OutputDir(target) as tmp:
            (tmp / "a.csv").write_text("old\n")
    monkeypatch.setattr(output, "COMMITTED", [])
    moves = {"rename": os.rename, "replace": os.replace}

    def interrupted(name):
        def move(src, dst):
            os.kill(os.getpid(), signal.SIGINT)  # the signal lands during the move
            moves[name](src, dst)

        return move

    monkeypatch.setattr(os, "rename", interrupted("rename"))
    monkeypatch.setattr(os, "replace", interrupted("replace"))
    with pytest.raises(KeyboardInterrupt):
        with output.OutputDir(target, force=force) as tmp:
            (tmp / "a.csv").write_text("new\n")
    committed = list(output.COMMITTED)
    monkeypatch.undo()
    assert committed == [target]
    assert (target / "a.csv").read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


#: The slowed-down writer again, waiting for a file to appear instead of sleeping.
WAIT_WRITE = """
import os, sys, time
import cea.report.base as run
write = run.write_base_outputs
def waiting(base, folder, command):
    write(base, folder, command)
    print("WRITTEN", folder, flush=True)
    deadline = time.time() + 120
    while not os.path.exists(os.environ["CEA_TEST_GO"]) and time.time() < deadline:
        time.sleep(0.05)
run.write_base_outputs = waiting
from cea.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_folder_created_meanwhile_is_not_replaced_without_force(tmp_path):
    # run A has checked that the folder is free and is writing; run B creates it meanwhile;
    # A must then refuse (exit 2, nothing of A left) rather than replace B's output
    out, go = tmp_path / "out", tmp_path / "go"
    a = subprocess.Popen(
        cea_cmd(
            "run",
            "--country",
            "GB",
            "--strategies",
            "none,primary_ivig",
            "--out",
            str(out),
            code=WAIT_WRITE,
        ),
        cwd=REPO,
        env={**env(), "CEA_TEST_GO": str(go)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert a.stdout.readline().startswith("WRITTEN")
        b = run(
            cea_cmd(
                "run", "--country", "GB", "--strategies", "none,primary_scig", "--out", str(out)
            )
        )
        assert b.returncode == 0, b.stderr
    finally:
        go.touch()
        _, a_err = a.communicate(timeout=120)
    strategies = (out / "results.csv").read_text().splitlines()[2].split(",")[0]
    assert a.returncode == 2 and a_err.count("\n") == 1 and "another run" in a_err, a_err
    assert strategies == "primary_scig"  # B's output is intact
    assert leftovers(out) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["go", "out"]


# =========================================================================== concurrency and --force


@pytest.fixture(scope="module")
def concurrent(tmp_path_factory):
    """Two runs into different folders at the same time, then one alone for reference."""
    base = tmp_path_factory.mktemp("concurrent")
    before = digests(INPUTS)
    args = ("run", "--country", "GB", "--strategies", TWO, "--out")
    procs = [
        subprocess.Popen(
            cea_cmd(*args, str(base / name)),
            cwd=REPO,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in ("a", "b")
    ]
    results = [p.communicate(timeout=180) + (p.returncode,) for p in procs]
    sequential = run(cea_cmd(*args, str(base / "alone")))
    return base, results, sequential, before, digests(INPUTS)


def test_concurrent_runs_do_not_interfere(concurrent):
    base, results, sequential, _, _ = concurrent
    assert sequential.returncode == 0, sequential.stderr
    for _, stderr, rc in results:
        assert rc == 0, stderr
    for name in ("results.csv", "incremental.csv", "comparisons.csv", "trace.csv"):
        reference = (base / "alone" / name).read_bytes()
        assert (base / "a" / name).read_bytes() == reference, name
        assert (base / "b" / name).read_bytes() == reference, name
    assert sorted(p.name for p in base.iterdir()) == ["a", "alone", "b"]


def test_runs_never_modify_the_inputs(concurrent):
    _, _, _, before, after = concurrent
    assert after == before


def test_existing_output_folder_needs_force(tmp_path, capsys):
    # in-process (cea.cli.main): the same code as the command without the start-up time
    from cea.cli import main

    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["run", "--country", "GB", "--strategies", TWO, "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists" in err and "--force" in err
    assert (out / "keep.txt").read_text() == "mine" and leftovers(out) == []
    # a folder cea did not write is not replaced, even with --force
    assert main([*args, "--force"]) == 2
    assert "cea did not write it" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine" and leftovers(out) == []
    # an output folder of cea's is
    (out / "keep.txt").unlink()
    out.rmdir()
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args, "--force"]) == 0
    assert f"written: {out}/" in capsys.readouterr().out
    assert (out / "results.csv").is_file()
    assert leftovers(out) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# =========================================================================== --force safety


def test_force_never_replaces_the_inputs_a_folder_holding_them_or_the_current_folder(
    tmp_path, monkeypatch
):
    # --force replaces only a folder cea wrote (it holds the .cea-output marker)
    from cea.cli import main

    inputs = copy_inputs(tmp_path / "x")
    before = digests(inputs)
    base = ["run", "--inputs", str(inputs), "--strategies", TWO, "--force", "--out"]
    assert main([*base, str(inputs)]) == 2
    assert main([*base, str(inputs / "..")]) == 2
    monkeypatch.chdir(tmp_path)
    assert main([*base, "."]) == 2
    (tmp_path / "f.txt").write_text("mine")
    assert main([*base, str(tmp_path / "f.txt")]) == 2
    assert digests(inputs) == before and (tmp_path / "f.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []
    out = tmp_path / "out"
    assert main([*base, str(out)]) == 0 and (out / ".cea-output").is_file()
    assert main([*base, str(out)]) == 0  # an output folder cea wrote is replaced


@pytest.mark.parametrize("kind", ["folder", "workbook", "scenario"])
def test_force_never_replaces_an_output_folder_holding_this_runs_inputs(tmp_path, capsys, kind):
    # an output folder of cea's, into which the user then put the inputs (a copy of inputs/, a
    # workbook, a scenario file): --force deleted them with the old output
    from cea.cli import main

    out = tmp_path / "out"
    base = ["run", "--strategies", TWO, "--out", str(out)]
    assert main(base) == 0
    if kind == "folder":
        inputs = copy_inputs(out / "inputs")
        extra = ["--inputs", str(inputs)]
    elif kind == "workbook":
        inputs = out / "my.xlsx"
        assert main(["template", "--out", str(inputs)]) == 0
        extra = ["--inputs", str(inputs)]
    else:
        inputs = out / "s.toml"
        inputs.write_text('description = "mine"\n[parameters]\nc_ivig_per_g = 30\n')
        extra = ["--scenario", str(inputs)]
    before = digests(out)
    capsys.readouterr()
    assert main([*base, *extra, "--force"]) == 2
    err = capsys.readouterr().err
    assert (
        err == f"error: --force will not replace {out}: it holds {inputs}, an input of this run\n"
    )
    assert digests(out) == before and leftovers(out) == []


def test_template_force_does_not_replace_a_folder(tmp_path):
    from cea.cli import main

    (tmp_path / "d.xlsx").mkdir()
    assert main(["template", "--out", str(tmp_path / "d.xlsx"), "--force"]) == 2
    assert (tmp_path / "d.xlsx").is_dir()


def test_template_force_never_replaces_its_input_workbook(tmp_path, capsys):
    # `cea template --inputs my.xlsx --out my.xlsx --force` rewrote the user's workbook
    from cea.cli import main

    book = tmp_path / "my.xlsx"
    assert main(["template", "--out", str(book)]) == 0
    before = digests(tmp_path)
    capsys.readouterr()
    for out in (book, tmp_path / "." / "my.xlsx"):
        assert main(["template", "--inputs", str(book), "--out", str(out), "--force"]) == 2
        err = capsys.readouterr().err
        assert err == f"error: --force will not replace {out}: it is the input workbook\n"
    assert digests(tmp_path) == before


# =========================================================================== writing that fails


def test_an_output_path_through_a_file_or_too_long_is_one_line_and_leaves_nothing(tmp_path, capsys):
    from cea.cli import main

    (tmp_path / "f.txt").write_text("mine")
    base = ["run", "--strategies", TWO, "--out"]
    assert main([*base, str(tmp_path / "f.txt" / "sub")]) == 2
    assert "f.txt is a file, not a folder" in capsys.readouterr().err
    assert main([*base, str(tmp_path / ("a" * 245))]) == 2  # the temporary name is too long
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "File name too long" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_outputs_respect_the_umask(tmp_path):
    out = tmp_path / "out"
    code = (
        "import os, sys; os.umask(0o022); from cea.cli import main; "
        f"sys.exit(main(['run', '--strategies', '{TWO}', '--out', {str(out)!r}]))"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True).returncode == 0
    )
    assert out.stat().st_mode & 0o777 == 0o755
    assert (out / "results.csv").stat().st_mode & 0o777 == 0o644


def test_a_reader_that_stops_early_does_not_fail_a_complete_run(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        cea_cmd("run", "--strategies", TWO, "--out", str(out)),
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    proc.stdout.close()  # like `cea run ... | head -c 0`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0, err
    assert "Traceback" not in err and (out / "results.csv").is_file()


def test_control_characters_in_an_error_are_shown_escaped(monkeypatch, capsys):
    import cea.cli as cli

    def fail(args):
        raise cli.CeaError("strategy 'a\x1b[31mred\x01' is unknown")

    monkeypatch.setitem(cli.COMMANDS, "run", fail)
    assert cli.main(["run"]) == 2
    err = capsys.readouterr().err
    assert err == "error: strategy 'a\\x1b[31mred\\x01' is unknown\n"


def test_an_overflowing_input_is_one_line_without_numpys_warning(tmp_path, capsys):
    # dose_g_per_kg = 1e308 overflows the grams: refused in one line, no RuntimeWarning lines
    from cea.cli import main

    root = copy_inputs(tmp_path / "x")
    lines = (root / "strategies.csv").read_text().splitlines()
    header = lines[0].split(",")
    for k, line in enumerate(lines[1:], 1):
        cells = line.split(",")
        if cells[0] == "primary_ivig":
            cells[header.index("dose_g_per_kg")] = "1e308"
            lines[k] = ",".join(cells)
    (root / "strategies.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    args = ["run", "--inputs", str(root), "--strategies", TWO, "--out", str(out)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(args) == 2
    assert [w for w in caught if issubclass(w.category, RuntimeWarning)] == []
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert not out.exists()


def test_a_height_that_gives_no_body_weight_is_refused_in_one_line(tmp_path, capsys):
    # a height of 0 cm gives a negative ideal (Devine) and adjusted body weight: the dose and
    # the Ig cost were negative (cost_ig -8,178), written with exit 0
    from cea.cli import main

    root = copy_inputs(tmp_path / "x")
    set_cell(root / "parameters.csv", "q_height_cm", "low", "0")
    set_cell(root / "parameters.csv", "q_height_cm", "value", "0")
    out = tmp_path / "out"
    args = ["run", "--inputs", str(root), "--strategies", "none,primary_ivig_adjbw", "--out",
            str(out)]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: strategy 'primary_ivig_adjbw'"), err
    # Devine at 0 cm: 50 (men) or 45.5 kg (women) - 2.3 kg x 60 inches = -88 or -92.5 kg;
    # p_male 0.58: 0.58 x -88 + 0.42 x -92.5 = -89.9 kg
    assert "ideal body weight (Devine) is -89.9 kg at q_height_cm = 0 (draw 0)" in err, err
    assert not out.exists()
    # in a two-way grid such points are not evaluable, as points the model cannot run are
    set_cell(root / "parameters.csv", "q_height_cm", "value", "100")
    args = ["dsa", "--inputs", str(root), "--scenario", "ivig_adjusted_weight", "--two-way",
            "q_height_cm,c_ivig_per_g", "--grid", "3", "--comparison", "primary_ivig:none",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    grid = pd.read_csv(out / "twoway_grid.csv")
    low = grid[grid["q_height_cm"] == 0]
    assert (low["optimal_strategy"] == "not evaluable").all() and low["inmb"].isna().all()
    assert low["model_error"].str.contains("ideal body weight").all()
    assert grid.loc[grid["q_height_cm"] >= 100, "inmb"].notna().all()


def test_a_start_age_beyond_every_integer_is_read_at_the_life_tables_last_age(tmp_path, capsys):
    # ages past the life table take its last row (docs/model.md): a start age of 1e308 read as
    # 129 does (the cohort dies too fast for the trial's median OS), where its conversion to
    # whole years had wrapped round to age 0 and the run went through with a child's mortality
    from cea.cli import main

    errors = []
    for age in ("129", "1e308"):
        root = copy_inputs(tmp_path / age)
        set_cell(root / "parameters.csv", "q_start_age_years", "low", "")
        set_cell(root / "parameters.csv", "q_start_age_years", "high", "")
        set_cell(root / "parameters.csv", "q_start_age_years", "value", age)
        assert main(["run", "--inputs", str(root), "--out", str(tmp_path / f"o{age}")]) == 2
        errors.append(capsys.readouterr().err)
    assert errors[0] == errors[1] and "cannot calibrate myeloma death after bsAb" in errors[0]


def test_a_body_weight_of_zero_is_refused_where_a_dose_is_weighed(tmp_path, capsys):
    # q_body_weight_kg = 0 gave a dose of 0 g and IgRT at no Ig cost, with exit 0
    from cea.cli import main

    root = copy_inputs(tmp_path / "x")
    set_cell(root / "parameters.csv", "q_body_weight_kg", "low", "0")
    set_cell(root / "parameters.csv", "q_body_weight_kg", "value", "0")
    out = tmp_path / "out"
    assert main(["run", "--inputs", str(root), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "doses by actual body weight, and q_body_weight_kg is 0" in err
    assert not out.exists()
    # flat doses weigh nothing: the same inputs run a flat-dose strategy
    args = [
        "run",
        "--inputs",
        str(root),
        "--strategies",
        "none,primary_ivig_flat30",
        "--out",
        str(out),
    ]
    assert main(args) == 0, capsys.readouterr().err


def test_a_negative_cost_in_the_outcomes_is_refused_naming_it():
    # the last guard, whatever the cause: a cost below 0 in the outcomes stops the analyses
    from cea.analysis.outcomes import validate_outcomes

    table = pd.DataFrame({"draw": [0, 0], "strategy": ["a", "b"], "cost": [10.0, -2.5],
                          "qaly": [1.0, 1.0], "ly": [1.0, 1.0]})  # fmt: skip
    with pytest.raises(CeaError, match=r"the PSA: cost is -2.5 at draw 0, strategy 'b': a cost"):
        validate_outcomes(table, "the PSA")
    table.loc[1, "cost"] = 0.0
    assert validate_outcomes(table, "the PSA") is table


def test_explicit_correction_weights_run_every_command_that_reads_them(tmp_path):
    # a list of n_cycles + 1 weights (settings.toml) equal to the half-cycle correction gives the
    # half-cycle results: the calibration and the validation targets read shorter horizons,
    # which no correction weighs, and the cycle-halving check compares at the half-cycle
    # correction (a list has no counterpart at half the cycle length)
    from cea.io.load import load_inputs
    from cea.pipeline.base import build_base_case
    from cea.pipeline.validation import face_validity
    from cea.verify import check_cycle_halving

    root = copy_inputs(tmp_path / "x")
    named = build_base_case(load_inputs(root), "GB")
    T = named.spec.n_cycles
    weights = ", ".join(["0.5", *["1.0"] * (T - 1), "0.5"])
    text = (root / "settings.toml").read_text()
    assert 'correction = "half_cycle"' in text
    (root / "settings.toml").write_text(
        text.replace('correction = "half_cycle"', f"correction = [{weights}]", 1)
    )
    listed = build_base_case(load_inputs(root), "GB")
    assert isinstance(listed.spec.correction, tuple) and len(listed.spec.correction) == T + 1
    cols = ["strategy", "cost", "qaly", "ly"]
    pd.testing.assert_frame_equal(listed.outcomes[cols], named.outcomes[cols])
    check = check_cycle_halving(listed)
    assert check.passed and "half-cycle correction at both" in check.detail, check.detail
    assert check.detail.split(": ", 1)[1] == check_cycle_halving(named).detail.split(": ", 1)[1]
    pd.testing.assert_frame_equal(face_validity(listed), face_validity(named))


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux /proc), all its threads' children."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:  # the thread ended meanwhile
            pass
    return found


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_a_killed_psa_leaves_no_process_holding_the_callers_pipes(tmp_path):
    """The PSA runs in threads of its own process: while it runs it has no child process, and
    after SIGKILL nothing holds the caller's pipes open (the caller's wait ends at once)."""
    proc = subprocess.Popen(
        cea_cmd("psa", "--country", "GB", "--draws", "20000", "--out", str(tmp_path / "o")),
        cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        seen: set[int] = set()
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline and proc.poll() is None:
            seen.update(_children(proc.pid))
            time.sleep(0.05)
        assert seen == set()
        proc.kill()
        proc.communicate(timeout=10)  # pipes closed by the kill: no orphan holds them
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not (tmp_path / "o").exists()

"""Readers: every problem is one error naming file, row and column; Excel habits are accepted;
prices are inflated and converted by hand-checkable arithmetic."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cea.errors import CeaError, InputFileError
from cea.io.inputs import PARAMETER_COLUMNS, read_table
from cea.io.load import load_inputs
from cea.parameters.table import Scenario, build_parameter_table, load_scenario

INPUTS = Path("inputs")


@pytest.fixture()
def tmp_inputs(tmp_path: Path) -> Path:
    dst = tmp_path / "inputs"
    shutil.copytree(INPUTS, dst)
    return dst


def edit_csv(path: Path, row: int, column: str, value: str) -> None:
    """Set one cell; ``row`` is the spreadsheet row (header = 1)."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.loc[row - 2, column] = value
    df.to_csv(path, index=False)


def error_of(root: Path) -> InputFileError:
    with pytest.raises(InputFileError) as info:
        load_inputs(root)
    return info.value


def param_row(root: Path, name: str) -> int:
    df = pd.read_csv(root / "parameters.csv", dtype=str)
    return int(df.index[df["parameter"] == name][0]) + 2


@pytest.mark.parametrize(
    ("parameter", "column", "value", "needle"),
    [
        ("p_case_fatality_severe", "value", "1.2", "outside [0, 1]"),
        ("u_on_bsab", "value", "-0.1", "outside [0, 1]"),
        ("hr_igrt_severe", "value", "abc", "not a number"),
        ("hr_igrt_severe", "value", "nan", "not a finite number"),
        ("hr_igrt_severe", "value", "inf", "not a finite number"),
        ("r_severe_off_bsab", "value", "", "is empty"),
        ("r_severe_off_bsab", "dist", "weibull", "not one of"),
        ("p_case_fatality_severe", "dist", "gamma", "not allowed for a 'p_' parameter"),
        ("r_severe_off_bsab", "unit", "per fortnight", "rate unit"),
        ("r_severe_off_bsab", "source", "", "is empty"),
        ("r_severe_off_bsab", "value", "5%", "decimal"),
        ("r_severe_off_bsab", "high", "0.015", "not within low"),
        ("q_qaly_loss_severe", "value", "-0.01", "negative"),
    ],
)
def test_bad_parameter_cell_names_file_row_column(tmp_inputs, parameter, column, value, needle):
    row = param_row(tmp_inputs, parameter)
    edit_csv(tmp_inputs / "parameters.csv", row, column, value)
    err = error_of(tmp_inputs)
    assert err.row == row and "parameters.csv" in err.file
    assert needle in str(err)
    assert "\n" not in str(err)


def test_negative_price_is_refused(tmp_inputs):
    edit_csv(tmp_inputs / "prices/GB.csv", 2, "value", "-5")
    err = error_of(tmp_inputs)
    assert (
        "prices/GB.csv" in err.file
        and err.row == 2
        and err.column == "value"
        and "below the minimum" in str(err)
    )


def test_duplicate_key_missing_column_empty_binary_not_utf8(tmp_inputs):
    p = tmp_inputs / "parameters.csv"
    text = p.read_text()
    lines = text.splitlines()
    p.write_text("\n".join([*lines, lines[3]]) + "\n")
    err = error_of(tmp_inputs)
    assert "duplicate parameter" in str(err) and err.row == len(lines) + 1
    p.write_text(text.replace(",dist,", ",distribution,", 1))
    err = error_of(tmp_inputs)
    assert err.column == "dist" and "missing" in str(err)
    p.write_text("")
    assert "empty" in str(error_of(tmp_inputs))
    p.write_bytes(b"\x00\x01binary")
    assert "binary" in str(error_of(tmp_inputs))
    p.write_bytes(text.encode("utf-8").replace(b"Mayo", b"Ma\xffyo"))
    assert "not UTF-8" in str(error_of(tmp_inputs))
    p.write_bytes(b"PK\x03\x04rest")
    assert "zip/Excel" in str(error_of(tmp_inputs))
    p.write_text("\n".join(lines[:5] + [lines[5][:30]]) + "\n")
    err = error_of(tmp_inputs)
    assert err.row == 6 and "truncated" in str(err)


def test_missing_file_and_unknown_strategy_parameter(tmp_inputs):
    (tmp_inputs / "prices/DE.csv").unlink()
    err = error_of(tmp_inputs)
    assert "prices/DE.csv" in err.file and "not found" in str(err)


def test_bom_and_semicolon_decimal_comma_read_as_the_original(tmp_inputs):
    original = read_table(INPUTS / "parameters.csv", PARAMETER_COLUMNS, key=("parameter",)).df
    p = tmp_inputs / "parameters.csv"
    p.write_bytes(b"\xef\xbb\xbf" + (INPUTS / "parameters.csv").read_bytes())
    bom = read_table(p, PARAMETER_COLUMNS, key=("parameter",)).df
    pd.testing.assert_frame_equal(original, bom)
    # what Excel writes in a German locale: ';' separators and decimal commas
    df = pd.read_csv(INPUTS / "parameters.csv", dtype=str, keep_default_na=False)
    for col in ("value", "se", "low", "high", "n"):
        df[col] = df[col].str.replace(".", ",", regex=False)
    df.to_csv(p, sep=";", index=False)
    semi = read_table(p, PARAMETER_COLUMNS, key=("parameter",)).df
    pd.testing.assert_frame_equal(original, semi)


def test_inputs_are_not_modified(tmp_inputs):
    before = {f: f.read_bytes() for f in tmp_inputs.rglob("*") if f.is_file()}
    table = build_parameter_table(load_inputs(tmp_inputs), "GB")
    assert len(table.df) > 40
    after = {f: f.read_bytes() for f in tmp_inputs.rglob("*") if f.is_file()}
    assert before == after


# --------------------------------------------------------------------------- prices and countries


def test_price_inflated_with_the_country_cpi_by_hand():
    t = build_parameter_table(load_inputs(INPUTS), "GB")
    # NHS 2018/19 average GBP 34 per g (price year 2018) x CPI(2024)/CPI(2018)
    # = 34 x 147.410764 / 117.579064 = 42.6262...
    assert t.df.loc["c_ivig_per_g", "value"] == pytest.approx(
        34 * 147.410764 / 117.579064, rel=1e-9
    )
    assert t.df.loc["c_ivig_per_g", "low"] == pytest.approx(25 * 147.410764 / 117.579064, rel=1e-9)
    assert t.df.loc["c_ivig_per_g", "price_year"] == 2018


def test_country_context_and_gdp_threshold_by_hand():
    inputs = load_inputs(INPUTS)
    macro = pd.read_csv(INPUTS / "macro.csv")
    row = macro[(macro.country_iso2 == "IN") & (macro.year == 2024)].iloc[0]
    india = build_parameter_table(inputs, "IN").country
    # wtp_basis gdp_multiple, multiple 1: GDP per capita in rupees = USD GDP x INR per USD
    assert india.wtp_per_qaly == pytest.approx(
        row.gdp_per_capita_usd * row.usd_exchange_rate_lcu_per_usd, rel=1e-12
    )
    assert india.ppp_lcu_per_intl_dollar == row.ppp_lcu_per_intl_dollar
    gb = build_parameter_table(inputs, "GB").country
    assert gb.wtp_per_qaly == 20000 and gb.discount_rate_costs == 0.035 and gb.currency == "GBP"
    # life table: the model's hazard at age 66 is WPP's m(x) for the 65-69 group
    lt = pd.read_csv(INPUTS / "life_tables.csv")
    m66 = lt[(lt.country_iso2 == "GB") & (lt.sex == "both") & (lt.age == 66)].mx.iloc[0]
    assert gb.mx_by_age[66] == m66


def test_country_override_and_scenario_override():
    inputs = load_inputs(INPUTS)
    jp = build_parameter_table(inputs, "JP")
    assert jp.df.loc["q_body_weight_kg", "value"] == 58
    assert "country_overrides.csv" in jp.df.loc["q_body_weight_kg", "origin"]
    scen = load_scenario(INPUTS / "scenarios/direct_survival_effect.toml")
    t = build_parameter_table(inputs, "GB", scen)
    assert t.df.loc["hr_igrt_os", "value"] == 0.8 and t.df.loc["hr_igrt_os", "origin"].startswith(
        "scenario"
    )


def test_unit_scale_converts_months_to_years():
    t = build_parameter_table(load_inputs(INPUTS), "GB")
    assert t.unit_scale["r_igg_decline"] == 12.0  # per month -> per year
    assert t.unit_scale["t_median_tot_months"] == pytest.approx(1 / 12)
    assert t.unit_scale["r_thromboembolism_ivig"] == 1.0  # already per year


def test_bad_scenario_is_one_line(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('description = "x"\n[parameters]\nno_such_parameter = 1\n')
    with pytest.raises(CeaError) as info:
        build_parameter_table(load_inputs(INPUTS), "GB", load_scenario(p))
    assert "unknown parameter 'no_such_parameter'" in str(info.value)
    p.write_text('description = "x"\n[settings.model]\nhorizon_years = "ten"\n')
    with pytest.raises(CeaError):
        load_scenario(p)
    p.write_text("[parameters\n")
    with pytest.raises(InputFileError) as info:
        load_scenario(p)
    assert "not valid TOML" in str(info.value)


def test_every_parameter_row_builds_with_its_centre_at_value():
    t = build_parameter_table(load_inputs(INPUTS), "GB", Scenario())
    for name in t.names:
        d = t.distribution(name)
        assert d.centre() == pytest.approx(float(t.df.loc[name, "value"]), rel=1e-9), name
        assert str(t.df.loc[name, "source"]).strip(), name
    lo, hi = t.dsa_range("c_scig_training")  # gamma without low/high: 2.5/97.5 percentiles
    assert lo < t.df.loc["c_scig_training", "value"] < hi
    assert np.isfinite([lo, hi]).all()


@pytest.mark.parametrize(
    "line",
    [
        'correction = ["a"]',
        "correction = [[1]]",
        "cycle_days = 1e-300",
        "cycle_days = 0.001",
        # TOML's true is a Python int: it was taken as seed 1, 1 draw, a 1-year horizon
        "seed = true",
        "n_draws = true",
        "horizon_years = true",
        "cycle_days = true",
        "days_per_year = false",
        "discount_offset_cycles = false",
    ],
)
def test_settings_that_would_crash_or_exhaust_memory_are_refused(tmp_path, line):
    # a correction must be a name or a list of numbers; cycles from one day (0.001-day cycles
    # over 10 years would be 3.65 million cycles)
    import re
    import shutil

    root = tmp_path / "inputs"
    shutil.copytree(INPUTS, root)
    key = line.split(" = ")[0]
    text = (root / "settings.toml").read_text()
    (root / "settings.toml").write_text(re.sub(rf"^{key} *=.*$", line, text, count=1, flags=re.M))
    with pytest.raises(InputFileError, match=rf"settings.toml, column '{key}': invalid value"):
        load_inputs(root)


def test_a_control_character_in_a_text_cell_is_refused_in_one_line(tmp_path):
    # a strategy label "Primary\x01IVIG" crashed the workbook writers (Excel's XML cannot hold
    # it): the reader refuses it, naming file, row and column, the character escaped
    import shutil

    root = tmp_path / "inputs"
    shutil.copytree(INPUTS, root)
    text = (root / "strategies.csv").read_text()
    (root / "strategies.csv").write_text(text.replace("Primary IVIG", "Primary\x01IVIG", 1))
    with pytest.raises(InputFileError, match=r"strategies.csv, row \d+, column 'label'") as info:
        load_inputs(root)
    assert "\x01" not in str(info.value) and "\\x01" in str(info.value)


def test_a_file_given_as_the_inputs_folder_is_named_as_not_a_folder(tmp_path):
    f = tmp_path / "settings.toml"
    f.write_text("")
    with pytest.raises(
        InputFileError, match=r"settings.toml: is not a folder: give an inputs folder"
    ):
        load_inputs(f)
    with pytest.raises(InputFileError, match=r"nowhere: inputs folder not found"):
        load_inputs(tmp_path / "nowhere")


@pytest.mark.parametrize("name", ["parameters.csv", "prices/GB.csv", "settings.toml"])
def test_a_folder_where_an_input_file_belongs_is_named_as_a_folder(tmp_inputs, name):
    # it was "file not found", though the user can see it there
    (tmp_inputs / name).unlink()
    (tmp_inputs / name).mkdir()
    err = error_of(tmp_inputs)
    assert str(err) == f"inputs/{name}: is a folder, not a file"


@pytest.mark.parametrize("name", ["countries.csv", "settings.toml"])
def test_a_utf16_file_is_named_as_utf16(tmp_inputs, name):
    # what Excel's "Unicode Text" writes: it was "a binary file ... not a CSV text file" (also
    # for the TOML file)
    p = tmp_inputs / name
    p.write_bytes(p.read_text(encoding="utf-8").encode("utf-16"))
    err = error_of(tmp_inputs)
    assert str(err).startswith(f"inputs/{name}: is UTF-16 text, not UTF-8: "), str(err)


def test_empty_trailing_columns_are_ignored_as_one_is(tmp_inputs):
    # Excel saves columns once touched beyond the table as empty ones (",,"): one was ignored,
    # two were refused as "column '' appears twice in the header"
    original = read_table(INPUTS / "parameters.csv", PARAMETER_COLUMNS, key=("parameter",)).df
    p = tmp_inputs / "parameters.csv"
    rows = list(csv.reader(io.StringIO((INPUTS / "parameters.csv").read_text(encoding="utf-8"))))
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows([r + ["", "", ""] for r in rows])
    p.write_text(buf.getvalue(), encoding="utf-8")
    pd.testing.assert_frame_equal(read_table(p, PARAMETER_COLUMNS, key=("parameter",)).df, original)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('correction = "bogus"', "unknown within-cycle correction 'bogus'; valid names are"),
        (
            "correction = [0.5, 1, 0.5]",
            "weights have shape (3,); expected (n_cycles + 1,) = (131,)",
        ),
    ],
)
def test_a_correction_the_engine_refuses_is_named_by_its_file(tmp_inputs, capsys, line, problem):
    # it was "calibration_none (non_igg): unknown within-cycle correction 'bogus'; ...", no file
    from cea.cli import main

    text = (tmp_inputs / "settings.toml").read_text()
    (tmp_inputs / "settings.toml").write_text(text.replace('correction = "half_cycle"', line, 1))
    out = tmp_inputs.parent / "out"
    assert main(["run", "--inputs", str(tmp_inputs), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: inputs/settings.toml, column 'correction': ") and problem in err
    assert err.count("\n") == 1 and not out.exists()
    # the same from a scenario names the scenario file
    (tmp_inputs / "settings.toml").write_text(text)
    scenario = tmp_inputs.parent / "s.toml"
    scenario.write_text(f'description = "x"\n[settings.model]\n{line}\n')
    assert main(["run", "--inputs", str(tmp_inputs), "--scenario", str(scenario), "--out",
                 str(out)]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith(f"error: {scenario}, column 'correction': ") and problem in err


def test_an_unreadable_input_is_named_as_unreadable_not_unwritable(tmp_inputs, capsys, monkeypatch):
    # a file the user may not read (chmod 000, tests run as root: simulated) was reported as
    # "cannot write inputs/parameters.csv: Permission denied"
    import errno

    from cea.cli import main
    from cea.io.template import write_template

    book = tmp_inputs.parent / "my.xlsx"
    write_template(tmp_inputs, book)
    read_bytes, open_ = Path.read_bytes, Path.open

    def refuse(name):
        def check(path):
            if path.name == name:
                raise PermissionError(errno.EACCES, "Permission denied", str(path))

        return check

    for name, inputs, shown in [
        ("parameters.csv", tmp_inputs, "inputs/parameters.csv"),
        ("settings.toml", tmp_inputs, "inputs/settings.toml"),
        ("my.xlsx", book, "my.xlsx"),
    ]:
        check = refuse(name)
        monkeypatch.setattr(Path, "read_bytes", lambda p, c=check: c(p) or read_bytes(p))
        monkeypatch.setattr(Path, "open", lambda p, *a, c=check, **k: c(p) or open_(p, *a, **k))
        out = tmp_inputs.parent / "out"
        assert main(["run", "--inputs", str(inputs), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err == f"error: {shown}: cannot be read (Permission denied)\n", err
        assert not out.exists()

"""Quick what-ifs without editing files: ``--set``, ``--wtp``, ``--scenario NAME``, ``cea params``,
scenario values on a DSA bound, country codes in any case, and the closest name suggested for a
misspelt parameter, strategy, scenario or country."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd
import pytest

from cea.cli import main
from cea.io.load import load_inputs
from cea.parameters.table import Scenario, build_parameter_table, with_command_line

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def inputs():
    return load_inputs(REPO / "inputs")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def params_of(capsys, *argv: str) -> pd.DataFrame:
    code, out, _ = run(capsys, "params", "--format", "csv", *argv)
    assert code == 0
    return pd.read_csv(io.StringIO(out)).set_index("parameter")


def test_set_equals_the_same_value_in_a_scenario_file(tmp_path, capsys):
    scenario = tmp_path / "cheap_ig.toml"
    scenario.write_text('description = "cheaper Ig"\n[parameters]\nc_ivig_per_g = 21.5\n')
    a, b = tmp_path / "a", tmp_path / "b"
    assert run(capsys, "run", "--set", "c_ivig_per_g=21.5", "--out", str(a))[0] == 0
    assert run(capsys, "run", "--scenario", str(scenario), "--out", str(b))[0] == 0
    ra, rb = pd.read_csv(a / "results.csv"), pd.read_csv(b / "results.csv")
    pd.testing.assert_frame_equal(ra, rb)
    p = pd.read_csv(a / "parameters.csv").set_index("parameter")
    assert p.loc["c_ivig_per_g", "value"] == 21.5
    assert p.loc["c_ivig_per_g", "origin"] == "command line: --set c_ivig_per_g=21.5"
    # an overridden price is taken in the country's price year: no inflation applied to it
    assert p.loc["c_ivig_per_g", "price_year"] == 2024
    assert p.loc["c_ivig_per_g", "inflation_factor"] == 1.0


def test_set_comes_after_the_scenario_and_is_repeatable(capsys):
    p = params_of(capsys, "--scenario", "talquetamab", "--set", "hr_igrt_severe=0.5",
                  "--set", "c_ivig_admin=400")  # fmt: skip
    assert p.loc["hr_igrt_severe", "value"] == 0.5
    assert p.loc["c_ivig_admin", "value"] == 400
    assert p.loc["hr_igrt_severe", "origin"] == "command line: --set hr_igrt_severe=0.5"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--set", "c_ivig_per_gram=20"], "--set c_ivig_per_gram: unknown parameter; did you mean 'c_ivig_per_g'?"),
        (["--set", "c_ivig_per_g=abc"], "--set c_ivig_per_g: 'abc' is not a number"),
        (["--set", "c_ivig_per_g=nan"], "is not a finite number"),
        (["--set", "c_ivig_per_g"], "write it as name=value"),
        (["--set", "c_ivig_per_g=1", "--set", "c_ivig_per_g=2"], "--set c_ivig_per_g is given twice"),
        (["--set", "p_male=1.5"], "p_male = 1.5: a proportion must stay in [0, 1]"),
        (["--set", "c_ivig_per_g=-3"], "c_ivig_per_g = -3: a price cannot be negative"),
        (["--set", "k_tot_weibull_shape=-1"], "k_tot_weibull_shape = -1: a 'k_' parameter cannot be negative"),
        (["--wtp", "0"], "--wtp must be a number > 0"),
        (["--scenario", "talquetamb"], "unknown scenario 'talquetamb'; did you mean 'talquetamab'?"),
        (["--country", "UK"], "unknown country 'UK'; did you mean GB (United Kingdom)?"),
        (["--country", "germany"], "did you mean DE (Germany)?"),
        (["--strategies", "none,primary_ivg"], "did you mean 'primary_ivig'?"),
    ],
)  # fmt: skip
def test_bad_what_ifs_are_one_line_with_the_closest_name(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "run", *argv, "--out", str(out))
    assert code == 2 and stdout == "" and not out.exists()
    assert err.startswith("error: ") and err.count("\n") == 1
    assert message in err, err


def test_unknown_scenario_name_lists_the_available_ones(capsys):
    code, _, err = run(capsys, "run", "--scenario", "nothing_like_it")
    assert code == 2
    assert (
        "(in inputs/scenarios: bsab_discount, declining_infection_hazard, direct_survival_effect"
        in err
    )


def test_scenarios_dir_names_a_file_or_a_missing_folder_as_such(capsys, tmp_path):
    # a file given to --dir was reported as a folder that does not exist
    afile = tmp_path / "one.toml"
    afile.write_text("")
    for where, what in ((afile, "is a file, not a folder"), (tmp_path / "no", "does not exist")):
        code, _, err = run(capsys, "scenarios", "--dir", str(where), "--out", str(tmp_path / "o"))
        assert code == 2
        assert (
            err == f"error: scenario folder {where} {what} (--dir takes a folder of TOML files)\n"
        )
    assert not (tmp_path / "o").exists()


def test_scenario_by_bare_name_is_the_file(capsys, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run(capsys, "run", "--scenario", "horizon_5y", "--out", str(a))[0] == 0
    path = REPO / "inputs" / "scenarios" / "horizon_5y.toml"
    assert run(capsys, "run", "--scenario", str(path), "--out", str(b))[0] == 0
    pd.testing.assert_frame_equal(pd.read_csv(a / "results.csv"), pd.read_csv(b / "results.csv"))


def test_wtp_replaces_the_countrys_threshold(capsys, tmp_path):
    out = tmp_path / "w"
    code, stdout, _ = run(capsys, "run", "--wtp", "50000", "--out", str(out))
    assert code == 0 and "WTP 50,000 per QALY (--wtp)" in stdout
    comp = pd.read_csv(out / "comparisons.csv")
    # INMB = WTP x dQALY - dCost at the new WTP
    for _, r in comp.iterrows():
        assert r["inmb"] == pytest.approx(
            50000 * r["inc_effect"] - r["inc_cost"], rel=1e-12, abs=1e-6
        )


@pytest.mark.parametrize(
    "argv",
    [
        ["dsa", "--wtp", "1e308"],
        ["run", "--wtp", "1.5e308"],
    ],
)  # fmt: skip
def test_a_wtp_whose_net_benefit_overflows_is_refused_in_one_line(capsys, tmp_path, argv):
    # WTP x QALYs = inf: `cea dsa` and `cea run` ended in an IndexError traceback (no strategy
    # optimal), as did `cea compare` with such a WTP in countries.csv
    out = tmp_path / "o"
    code, stdout, err = run(capsys, *argv, "--out", str(out))
    assert code == 2 and stdout == "", err
    wtp = float(argv[-1])
    assert (
        err.startswith(f"error: willingness to pay {wtp:g} per QALY times ")
        and err.count("\n") == 1
    ), err
    assert not out.exists()


def test_a_wtp_whose_curves_overflow_is_refused_naming_where_a_wtp_comes_from(capsys, tmp_path):
    # the PSA's WTP grid runs to 5 x the WTP: 1e308 gave "willingness to pay must be finite
    # numbers >= 0", naming neither the value nor where it comes from
    out = tmp_path / "o"
    code, _, err = run(capsys, "psa", "--draws", "20", "--wtp", "1e308", "--out", str(out))
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: willingness to pay 1e+308 per QALY: the curves' WTP grid"), err
    assert err.rstrip().endswith(
        "(countries.csv wtp_per_qaly, or wtp_gdp_multiple x gdp_per_capita_usd, or --wtp)"
    )
    assert not out.exists()


@pytest.mark.parametrize(
    ("strategies", "problem"),
    [
        # was "a strategy is listed twice in the settings", though it came from the option
        ("none,none,primary_ivig", "--strategies lists 'none' twice"),
        # was "unknown strategy '', ''"
        (",", "--strategies lists an empty name (at position 1)"),
        ("none,,primary_ivig", "--strategies lists an empty name (at position 2)"),
    ],
)
def test_strategies_listed_twice_or_empty_are_named(capsys, tmp_path, strategies, problem):
    out = tmp_path / "o"
    code, stdout, err = run(capsys, "run", "--strategies", strategies, "--out", str(out))
    assert code == 2 and stdout == "" and err == f"error: {problem}\n"
    assert not out.exists()


@pytest.mark.parametrize("command", ["run", "template"])
def test_an_empty_out_is_refused(capsys, tmp_path, monkeypatch, command):
    # `--out ""` (an unset shell variable) was taken as no --out: the run went to outputs/
    monkeypatch.chdir(tmp_path)
    code, stdout, err = run(capsys, command, "--inputs", str(REPO / "inputs"), "--out", " ")
    assert code == 2 and stdout == ""
    assert err == "error: --out is empty: give a folder (or, for template, an .xlsx file)\n"
    assert list(tmp_path.iterdir()) == []


def test_wtp_is_refused_for_several_countries(capsys):
    for argv in (["compare", "--wtp", "1000"], ["psa", "--countries", "all", "--wtp", "1000"]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "--wtp is in one country's currency" in err


def test_a_scenario_value_on_the_dsa_bound_is_accepted(inputs):
    # hr_igrt_severe: lognormal 0.45 (0.20-1.00). 0.2 is the tornado's own low end: the range
    # moves with the value, scaled by 0.2 / 0.45, so the log-scale spread is kept
    sc = with_command_line(Scenario(), ["hr_igrt_severe=0.2"])
    row = build_parameter_table(inputs, "GB", sc).df.loc["hr_igrt_severe"]
    assert row["value"] == 0.2
    assert row["low"] == pytest.approx(0.2 * 0.2 / 0.45, rel=1e-12)
    assert row["high"] == pytest.approx(1.0 * 0.2 / 0.45, rel=1e-12)
    assert math.log(row["high"] / row["low"]) == pytest.approx(math.log(1.0 / 0.2), rel=1e-12)
    # the high end too, and a gamma price on its low end (the bound moves to the value)
    sc = with_command_line(Scenario(), ["hr_igrt_severe=1.0", "c_ivig_admin=250"])
    df = build_parameter_table(inputs, "GB", sc).df
    assert df.loc["hr_igrt_severe", "high"] == pytest.approx(1.0 / 0.45, rel=1e-12)
    assert df.loc["c_ivig_admin", ["value", "low", "high"]].tolist() == [250, 250, 500]


def test_country_codes_in_any_case(capsys, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run(capsys, "run", "--country", "gb", "--out", str(a))[0] == 0
    assert run(capsys, "run", "--country", "GB", "--out", str(b))[0] == 0
    pd.testing.assert_frame_equal(pd.read_csv(a / "results.csv"), pd.read_csv(b / "results.csv"))
    code, stdout, _ = run(capsys, "psa", "--countries", "gb,us", "--draws", "20",
                          "--out", str(tmp_path / "p"))  # fmt: skip
    assert code == 0 and (tmp_path / "p" / "GB").is_dir() and (tmp_path / "p" / "US").is_dir()


def test_params_lists_every_parameter_with_its_source(capsys, inputs):
    p = params_of(capsys, "--country", "us")
    table = build_parameter_table(inputs, "US").df
    assert list(p.index) == list(table.index)
    assert (p["value"].to_numpy() == table["value"].astype(float).to_numpy()).all()
    assert p["source"].notna().all() and p["evidence"].notna().all()
    assert {"dsa_low", "dsa_high", "dist", "unit", "price_year"} <= set(p.columns)
    # the DSA range is the row's low/high, else the distribution's 2.5th-97.5th percentiles
    assert p.loc["hr_igrt_severe", ["dsa_low", "dsa_high"]].tolist() == [0.2, 1.0]
    code, text, _ = run(capsys, "params", "--country", "GB")
    assert code == 0 and "United Kingdom (GB)" in text and "c_ivig_per_g" in text


# --------------------------------------------------------------------------- output folder names


def readme_commands() -> list[list[str]]:
    """The `cea ...` example commands of the README's command table, as argument lists."""
    import re
    import shlex

    text = (REPO / "README.md").read_text()
    found = []
    for cell in re.findall(r"^\| `(cea [^`]*)`", text, flags=re.M):
        args = shlex.split(cell)[1:]
        if args and args[0] in ("run", "compare", "dsa", "scenarios", "threshold", "psa"):
            found.append(args)
    return found


def test_readme_example_commands_get_distinct_default_folders():
    # each command's default name is built from the options below (country, scenario, ...)
    # plus name_suffix: two README examples of one command never share a folder
    from cea.cli import build_parser, name_suffix

    commands = [c for c in readme_commands() if "--out" not in c]
    assert len(commands) >= 12
    keys = {}
    for argv in commands:
        args = build_parser().parse_args(argv)
        named = ("country", "countries", "scenario", "comparison", "two_way", "parameter", "draws")
        key = (args.command, *(str(getattr(args, k, None)) for k in named), name_suffix(args))
        assert key not in keys, f"{argv} and {keys[key]} write to the same folder"
        keys[key] = argv


def test_runs_that_differ_never_collide_and_say_where_they_wrote(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "inputs").symlink_to(REPO / "inputs")
    written = []
    for argv in (
        ["run"],
        ["run", "--strategies", "none,primary_ivig"],
        ["run", "--report", "xlsx"],
        ["run", "--set", "c_ivig_per_g=20"],
        ["run", "--set", "c_ivig_per_g=25"],
        ["psa", "--draws", "20", "--seed", "3"],
        ["psa", "--draws", "20", "--seed", "4"],
    ):
        code, out, err = run(capsys, *argv)
        assert code == 0, err
        written.append(out.strip().splitlines()[-1].split("written: ")[-1])
    assert len(set(written)) == len(written)
    # the two-strategy run did not replace the full base case
    full = pd.read_csv(tmp_path / "outputs" / "base_GB" / "results.csv")
    assert len(full) == 5 and (tmp_path / "outputs" / "base_GB_none-primary_ivig").is_dir()


def test_two_way_range_spans_the_axes_given(tmp_path, capsys):
    """--range replaces an axis's DSA range (an Ig price from 0, the bispecific's share of
    list price over 0 to 1); the grid still holds the base case; the summary states the
    decision and the view with bispecific costs excluded."""
    out = tmp_path / "tw"
    code, text, _ = run(capsys, "dsa", "--two-way", "c_ivig_per_g,p_bsab_price_paid",
                        "--range", "c_ivig_per_g=0:60", "--range", "p_bsab_price_paid=0:1",
                        "--grid", "4", "--comparison", "primary_ivig:none", "--out", str(out))  # fmt: skip
    assert code == 0
    grid = pd.read_csv(out / "twoway_grid.csv")
    assert sorted(set(grid["c_ivig_per_g"])) == pytest.approx([0, 20, 40, 42.63, 60], abs=0.01)
    assert sorted(set(grid["p_bsab_price_paid"])) == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert grid["is_base"].sum() == 1
    # cheaper Ig and a cheaper bispecific both raise primary IVIG's INMB against none
    free = grid[(grid["c_ivig_per_g"] == 0) & (grid["p_bsab_price_paid"] == 0)]["inmb"].iloc[0]
    assert free > grid.loc[grid["is_base"], "inmb"].iloc[0]
    assert "At GBP 20,000 per QALY the cost-effective strategy is No IgRT (none)" in text
    assert "With bispecific costs during added survival excluded" in text
    for bad, problem in [
        ("p_bsab_price_paid=0:1.5", "a proportion must stay in [0, 1]"),
        ("c_ivig_per_g=-5:10", "a price cannot be negative"),
        ("c_ivig_per_g=10", "write NAME=LOW:HIGH"),
        ("hr_igrt_severe=0.2:1", "not one of the two parameters"),
    ]:
        code, _, err = run(capsys, "dsa", "--two-way", "c_ivig_per_g,p_bsab_price_paid",
                           "--range", bad, "--out", str(tmp_path / "bad"))  # fmt: skip
        assert code == 2 and problem in err and err.count("\n") == 1
        assert not (tmp_path / "bad").exists()
    # --range belongs to --two-way, once per parameter
    code, _, err = run(capsys, "dsa", "--range", "c_ivig_per_g=0:9", "--out", str(tmp_path / "b2"))
    assert code == 2 and "--range sets an axis of --two-way" in err
    code, _, err = run(capsys, "dsa", "--two-way", "c_ivig_per_g,p_bsab_price_paid", "--range",
                       "c_ivig_per_g=0:9", "--range", "c_ivig_per_g=0:8", "--out", str(tmp_path / "b3"))  # fmt: skip
    assert code == 2 and "--range c_ivig_per_g is given twice" in err


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        # a negative hazard ratio ran: grid points with negative costs and QALYs, exit 0
        (["dsa", "--two-way", "c_ivig_per_g,hr_igrt_severe", "--range", "hr_igrt_severe=-1:1"],
         "--range hr_igrt_severe=-1:1: a 'hr_' parameter cannot be negative"),
        (["dsa", "--two-way", "c_ivig_per_g,r_severe_off_bsab", "--range",
          "r_severe_off_bsab=-0.5:0.5"],
         "--range r_severe_off_bsab=-0.5:0.5: a 'r_' parameter cannot be negative"),
        # a probability searched over [-5, 5]: exit 0, a threshold table over impossible values
        (["threshold", "--parameter", "p_male", "--comparison", "primary_ivig:none", "--low", "-5",
          "--high", "5"],
         "threshold range for p_male: [-5, 5]: a proportion must stay in [0, 1]"),
        (["threshold", "--parameter", "hr_igrt_severe", "--comparison", "primary_ivig:none",
          "--low", "-1"],
         "threshold range for hr_igrt_severe: [-1, 1]: a 'hr_' parameter cannot be negative"),
        # a NaN bound was reported as "low nan must be below high 50"
        (["threshold", "--parameter", "c_ivig_per_g", "--comparison", "primary_ivig:none", "--low",
          "nan", "--high", "50"],
         "threshold range for c_ivig_per_g: low and high must be finite numbers, got nan and 50"),
    ],
)  # fmt: skip
def test_a_range_outside_the_parameters_values_is_refused(tmp_path, capsys, argv, problem):
    out = tmp_path / "o"
    code, text, err = run(capsys, *argv, "--out", str(out))
    assert code == 2 and text == "", err
    assert err == f"error: {problem}\n"
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["threshold", "--parameter", "hr_igrt_severe", "--comparison", "primary_ivig:none"],
        ["compare", "--countries", "GB,DE"],
    ],
)
def test_every_summary_states_the_decision_beside_the_view_without_bsab_costs(
    tmp_path, capsys, argv
):
    code, text, _ = run(capsys, *argv, "--out", str(tmp_path / "o"))
    assert code == 0
    assert (
        "bispecific costs during added survival excluded (NICE DSU 2014 discusses when this is defensible)"
        in text
    )
    if argv[0] == "threshold":
        assert "At GBP 20,000 per QALY the cost-effective strategy is No IgRT (none)" in text
    else:
        assert "without bsAb costs*" in text
        # DE: primary SCIG against primary IVIG differs by under 0.001 QALY: flagged
        de = next(line for line in text.splitlines() if line.startswith("DE ") and "~" in line)
        assert "164~" in de

"""Budget impact (``cea budget``): the year split, the cohorts by calendar year (hand-computed),
a 100% single-strategy mix against the model's per-patient numbers, the shares that must sum
to 1, and the command with --set, scenarios and --countries.

The budget sheet of report.xlsx, recalculated by LibreOffice, is compared with these numbers
in tests/test_excel_reference.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cea.analysis.budget import by_model_year, calendar_totals, eligible_patients, year_shares
from cea.cli import main
from cea.errors import InputFileError
from cea.io.load import load_inputs
from cea.parameters.table import Scenario
from cea.pipeline.budget import budget_impact

REPO = Path(__file__).resolve().parents[1]
INPUTS = REPO / "inputs"


@pytest.fixture(scope="module")
def inputs():
    return load_inputs(INPUTS)


@pytest.fixture(scope="module")
def gb(inputs):
    return budget_impact(inputs, "GB")


def test_year_shares_hand_computed():
    """Half-year cycles, 5 rows at 0, 0.5, 1, 1.5, 2 years: row intervals [0, .25], [.25, .75],
    [.75, 1.25], [1.25, 1.75], [1.75, 2]; row 2 is split half and half."""
    a = year_shares(5, 0.5, 2)
    np.testing.assert_allclose(a, [[1, 1, 0.5, 0, 0], [0, 0, 0.5, 1, 1]])
    # a horizon beyond the years asked: the part after them is left out
    np.testing.assert_allclose(year_shares(5, 0.5, 1), [[1, 1, 0.5, 0, 0]])
    # 28-day cycles: every row is counted once over enough years
    np.testing.assert_allclose(year_shares(131, 28 / 365.25, 11).sum(axis=0), 1.0)


def test_calendar_totals_two_years_hand_computed():
    """Two strategies, two years. Per patient by year since start: A 10 then 4, B 20 then 8.
    100 patients start in year 1 (all on A), 110 in year 2 (half on each).
    Year 1: 100 x 10 = 1000 on A. Year 2: A 100 x 4 + 55 x 10 = 950; B 55 x 20 = 1100."""
    out = calendar_totals([[10, 4], [20, 8]], [100, 110], [[1, 0.5], [0, 0.5]])
    np.testing.assert_allclose(out, [[1000, 950], [0, 1100]])
    np.testing.assert_allclose(eligible_patients(100, 0.1, 2), [100, 110])


def test_per_patient_years_add_up_to_the_undiscounted_totals(gb):
    """Over the whole horizon, a patient's numbers by year add up to the model's undiscounted
    totals (computed by the engine without the per-cycle rows)."""
    spec, o = gb.base.spec, gb.base.outcomes.set_index("strategy")
    years = int(np.ceil(spec.n_cycles * spec.dt))
    for name in (
        "cost",
        "cost_ig",
        "cost_bsab",
        "ig_grams",
        "severe_infections",
        "infection_deaths",
        "ly",
    ):
        by_year = by_model_year(gb.base.per_cycle[name], spec.dt, years)
        col = "cost_undiscounted" if name == "cost" else f"{name}_undiscounted"
        np.testing.assert_allclose(by_year.sum(axis=1), o.loc[gb.strategies, col], rtol=1e-12)


def test_single_strategy_mix_is_patients_times_per_patient_numbers(tmp_path):
    """Everyone on primary IVIG in the new mix, no IgRT in the current one, no growth: each
    calendar year is the eligible patients times the sum of the per-patient numbers of the
    years since start of the cohorts alive, and year 1 is N x the first year's cost."""
    root = tmp_path / "inputs"
    shutil.copytree(INPUTS, root)
    (root / "budget_mix.csv").write_text(
        "mix,strategy,year_1,year_2,year_3,year_4,year_5,source\n"
        "current,none,1,1,1,1,1,test\nnew,primary_ivig,1,1,1,1,1,test\n"
    )
    countries = pd.read_csv(root / "countries.csv")
    countries["population_growth_annual"] = 0.0
    countries.to_csv(root / "countries.csv", index=False)
    b = budget_impact(load_inputs(root), "GB")
    n = b.country.population_eligible_annual
    for mix, name in (("current", "none"), ("new", "primary_ivig")):
        pp = b.per_patient["cost"][b.strategies.index(name)]
        expected = [n * pp[: y + 1].sum() for y in range(5)]
        np.testing.assert_allclose(b.totals[mix]["cost"], expected, rtol=1e-12)
        assert b.totals[mix]["cost"][0] == pytest.approx(n * pp[0], rel=1e-12)
    # no IgRT uses no Ig, no chair
    assert not b.totals["current"]["ig_grams"].any()
    assert not b.totals["current"]["chair_hours"].any()
    # IVIG chair hours = infusion visits x hours per visit (3.5)
    np.testing.assert_allclose(b.totals["new"]["chair_hours"], 3.5 * b.totals["new"]["infusions"])


def test_categories_add_up_and_net_is_new_minus_current(gb):
    from cea.igrt.spec import COST_CATEGORIES

    for mix in ("current", "new", "net"):
        total = sum(gb.totals[mix][c] for c in COST_CATEGORIES)
        np.testing.assert_allclose(total, gb.totals[mix]["cost"], rtol=1e-12)
    for m, v in gb.totals["net"].items():
        np.testing.assert_allclose(v, gb.totals["new"][m] - gb.totals["current"][m])
    # table: cumulative = running sum; US$ = local / exchange rate
    t = gb.table[(gb.table["mix"] == "net") & (gb.table["measure"] == "cost")]
    np.testing.assert_allclose(t["cumulative"], np.cumsum(gb.totals["net"]["cost"]))
    np.testing.assert_allclose(t["value_usd"], t["value"] / gb.country.fx_lcu_per_usd)
    # primary IgRT costs Ig and avoids infections
    assert (gb.totals["net"]["cost_ig"] > 0).all()
    assert (gb.totals["net"]["severe_infections"] < 0).all()


def _mix_root(tmp_path, text: str) -> Path:
    root = tmp_path / "inputs"
    shutil.copytree(INPUTS, root)
    (root / "budget_mix.csv").write_text(text)
    return root


@pytest.mark.parametrize(
    "text, problem",
    [
        (
            "mix,strategy,year_1,year_2,year_3,year_4,year_5,source\n"
            "current,none,1,1,1,1,1,t\nnew,none,0.5,0.5,0.5,0.5,0.5,t\n"
            "new,primary_ivig,0.5,0.6,0.5,0.5,0.5,t\n",
            "row 3, column 'year_2': the shares of the 'new' mix sum to 1.1 in year 2, not 1",
        ),
        (
            "mix,strategy,year_1,year_2,year_3,year_4,year_5,source\n"
            "current,none,1,1,1,1,1,t\nnew,primary_ivgi,1,1,1,1,1,t\n",
            "unknown strategy 'primary_ivgi'; did you mean 'primary_ivig'?",
        ),
        (
            "mix,strategy,year_1,year_2,year_3,year_4,year_5,source\ncurrent,none,1,1,1,1,1,t\n",
            "no row for the 'new' mix",
        ),
        (
            "mix,strategy,year_1,year_2,year_3,year_4,year_5,source\n"
            "current,none,1,1,1,1,1.5,t\nnew,none,1,1,1,1,1,t\n",
            "column 'year_5'",
        ),
    ],
)
def test_bad_mix_is_refused_naming_file_row_and_column(tmp_path, capsys, text, problem):
    root = _mix_root(tmp_path, text)
    with pytest.raises(InputFileError) as err:
        load_inputs(root)
    assert "budget_mix.csv" in str(err.value) and problem in str(err.value)
    code = main(["budget", "--inputs", str(root), "--out", str(tmp_path / "out")])
    _, stderr = capsys.readouterr()
    assert code == 2 and stderr.count("\n") == 1 and "budget_mix.csv" in stderr
    assert not (tmp_path / "out").exists()


def test_a_budget_beyond_the_floats_range_is_refused_naming_the_population(tmp_path, capsys):
    # population_eligible_annual = 1e308 wrote budget.csv full of inf, exit 0
    root = tmp_path / "inputs"
    shutil.copytree(INPUTS, root)
    countries = root / "countries.csv"
    lines = countries.read_text().splitlines(keepends=True)
    header = lines[0].split(",")
    col = header.index("population_eligible_annual")
    row = next(i for i, line in enumerate(lines) if line.startswith("GB,"))
    cells = lines[row].split(",")
    assert cells[col] == "900"  # before the quoted source and notes, so a plain split holds
    cells[col] = "1e308"
    lines[row] = ",".join(cells)
    countries.write_text("".join(lines))
    out = tmp_path / "out"
    code = main(["budget", "--inputs", str(root), "--country", "GB", "--out", str(out)])
    stdout, stderr = capsys.readouterr()
    assert code == 2 and stdout == "", stderr
    assert stderr.startswith(
        f"error: inputs/countries.csv, row {row + 1}, column 'population_eligible_annual': "
    ), stderr
    assert stderr.count("\n") == 1 and "1e+308" in stderr
    assert not out.exists()


def test_cli_budget_with_set_scenario_and_countries(tmp_path, capsys):
    out = tmp_path / "a"
    assert main(["budget", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "net budget impact (GBP)" in text and "infection deaths avoided" in text
    base = pd.read_csv(out / "budget.csv")
    assert {"budget.csv", "budget.png", "budget.svg", "run.json"} <= {p.name for p in out.iterdir()}
    # --set: Ig at twice the price doubles the Ig line and moves nothing but costs
    runs = {}
    for price in (10, 20):
        folder = tmp_path / f"ig{price}"
        argv = ["budget", "--set", f"c_ivig_per_g={price}", "--set", f"c_scig_per_g={price}"]
        assert main([*argv, "--out", str(folder)]) == 0
        runs[price] = pd.read_csv(folder / "budget.csv").set_index(["mix", "year", "measure"])
    ig = (slice(None), slice(None), "cost_ig")
    assert (runs[10].loc[ig, "value"].xs("new") > 0).all()
    np.testing.assert_allclose(runs[20].loc[ig, "value"], 2 * runs[10].loc[ig, "value"], rtol=1e-12)
    for m in ("cost_bsab", "cost_ig_admin", "ig_grams", "severe_infections"):
        rows = (slice(None), slice(None), m)
        np.testing.assert_allclose(runs[20].loc[rows, "value"], runs[10].loc[rows, "value"])
        np.testing.assert_allclose(
            runs[20].loc[rows, "value"],
            base.set_index(["mix", "year", "measure"]).loc[rows, "value"],
        )
    # a scenario: no bispecific costs
    nob = tmp_path / "nob"
    assert main(["budget", "--scenario", "no_bsab_costs", "--out", str(nob)]) == 0
    t = pd.read_csv(nob / "budget.csv")
    assert (t.loc[t["measure"] == "cost_bsab", "value"] == 0).all()
    # several countries, one table
    several = tmp_path / "several"
    assert main(["budget", "--countries", "gb,de", "--years", "3", "--out", str(several)]) == 0
    t = pd.read_csv(several / "budget.csv")
    assert sorted(set(t["country"])) == ["DE", "GB"] and t["year"].max() == 3
    key = ["mix", "year", "measure"]
    gb3 = t[(t["country"] == "GB")].set_index(key)["value"]
    gb5 = base.set_index(key)["value"]
    np.testing.assert_allclose(gb3, gb5.loc[gb3.index], rtol=1e-12)  # years 1-3 do not move


def test_years_out_of_range_and_short_horizon_are_refused(inputs, capsys):
    assert main(["budget", "--years", "6"]) == 2
    assert "--years must be 1 to 5" in capsys.readouterr().err
    short = Scenario(settings={"model": {"horizon_years": 2}})
    with pytest.raises(Exception, match="horizon"):
        budget_impact(inputs, "GB", short, years=5)


def test_year_split_equals_the_engine_run_to_the_end_of_the_year(inputs):
    """An independent reference for the year split: with cycles of exactly 1/13 year, the
    first model year of every per-patient number (state rewards with the trapezoid, events
    and transition rewards on the row ending their cycle, start rewards) equals the
    undiscounted totals of the same model run with a horizon of 1 year, and years 1 + 2 those
    of a 2-year horizon (the calibrated rates of the 10-year run kept)."""
    import dataclasses

    from cea.igrt.calibration import CALIBRATED
    from cea.igrt.model import run_model
    from cea.igrt.spec import COST_CATEGORIES, FLOWS, REWARDS
    from cea.pipeline.base import build_base_case

    sc = Scenario(
        settings={
            "model": {
                "cycle_days": 365.25 / 13,
                "include_end_of_life": True,
                "strategies": ["none", "preemptive_scig", "primary_ivig", "primary_scig"],
            }
        }
    )
    base = build_base_case(inputs, "GB", sc, keep_trace=False, keep_per_cycle=True)
    spec = base.spec
    assert spec.dt == pytest.approx(1 / 13, rel=1e-15)
    draws = base.ptable.base()
    cal = pd.DataFrame([[base.calibrated[n] for n in CALIBRATED]], columns=list(CALIBRATED),
                       index=draws.index)  # fmt: skip
    assert set(FLOWS) <= set(REWARDS)
    for years in (1, 2):
        short = dataclasses.replace(spec, n_cycles=13 * years)
        o = run_model(draws, short, calibrated=cal).outcomes.set_index("strategy")
        for name in (*COST_CATEGORIES, "ly", "qaly", "severe_infections", "infection_deaths",
                     "ig_grams", "infusions"):  # fmt: skip
            by_year = by_model_year(base.per_cycle[name], spec.dt, years, flow=name in FLOWS)
            expected = o.loc[spec.strategy_names, f"{name}_undiscounted"].to_numpy()
            # infection events use the hazard of their cycle, and the engine values the last
            # trace row (half weight) at the last cycle's hazard: in the 1-year run that is
            # cycle 12's, in the 10-year run cycle 13's (a few parts in a million); a wrong
            # split (half a cycle out) is off by percents
            timed = name in ("cost_severe_infections", "cost_nonsevere_infections", "qaly",
                             "severe_infections")  # fmt: skip
            np.testing.assert_allclose(by_year.sum(axis=1), expected,
                                       rtol=2e-5 if timed else 1e-9, atol=1e-12,
                                       err_msg=f"{name}, {years} year(s)")  # fmt: skip
    # something of each kind was compared
    assert base.per_cycle["cost_scig_training"][1:].sum() > 0  # start and transition rewards
    assert base.per_cycle["infection_deaths"].sum() > 0


def test_a_mix_of_strategies_a_scenario_does_not_run_is_refused(inputs, tmp_path, capsys):
    with pytest.raises(
        Exception, match="budget_mix.csv names primary_ivig, primary_scig, which scenario"
    ):
        budget_impact(
            inputs,
            "GB",
            Scenario(name="two", settings={"model": {"strategies": ["none", "preemptive_ivig"]}}),
        )
    code = main(["budget", "--scenario", "ivig_q6w", "--out", str(tmp_path / "q6w")])
    err = capsys.readouterr().err
    assert code == 2 and "which scenario 'ivig_q6w' does not run" in err
    assert not (tmp_path / "q6w").exists()


def test_several_countries_with_a_set_price_say_it_is_one_number_in_every_currency(
    tmp_path, capsys
):
    code = main(["budget", "--countries", "gb,de", "--set", "c_ivig_per_g=30", "--out",
                 str(tmp_path / "o")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert (
        "c_ivig_per_g set by the scenario or --set: the same number is used in every country" in out
    )
    assert "cost-effective" in out and "without bsAb costs*" in out

"""Face validity (cea/pipeline/validation.py, inputs/validation_targets.csv): the model-side
figures on hand-checkable cases, the targets file's loader, and the lines ``cea check`` adds."""

from __future__ import annotations

import csv
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cea import verify as checks
from cea.errors import InputFileError
from cea.io.inputs import VALIDATION_MEASURES
from cea.io.load import load_inputs
from cea.pipeline import validation as val
from cea.pipeline.base import run_base_case

REPO = Path(__file__).resolve().parents[1]
INPUTS = REPO / "inputs"
TARGETS = "validation_targets.csv"


@pytest.fixture(scope="module")
def base_gb():
    return run_base_case(INPUTS, "GB")


def _draws(base, **values):
    draws = base.ptable.base().copy()
    for name, value in values.items():
        draws[name] = float(value)
    return draws


# --------------------------------------------------------------------------- model side


def test_no_igrt_effect_gives_the_calibration_target_on_primary_ivig(base_gb):
    """With a hazard ratio of 1, and the same infection rate whatever the IgG (so that the IgG
    mix on IgRT is irrelevant), primary IVIG is the no-IgRT cohort: its 12-month incidence is
    the calibration target p_severe_12m_no_igrt (0.45) exactly."""
    d = _draws(base_gb, hr_igrt_severe=1.0, rr_infection_igg_normal=1.0)
    assert float(d["p_severe_12m_no_igrt"].iloc[0]) == 0.45
    primary = val.severe_incidence(base_gb, "primary_ivig", 12.0, d)
    none = val.severe_incidence(base_gb, "none", 12.0, d)
    assert primary[0] == pytest.approx(0.45, abs=1e-9)
    assert none[0] == pytest.approx(0.45, abs=1e-9)


def test_base_case_no_igrt_incidence_is_the_target_and_ivig_lowers_it(base_gb):
    assert val.severe_incidence(base_gb, "none", 12.0)[0] == pytest.approx(0.45, abs=1e-9)
    primary = val.severe_incidence(base_gb, "primary_ivig", 12.0)[0]
    preemptive = val.severe_incidence(base_gb, "preemptive_ivig", 12.0)[0]
    assert primary < preemptive < 0.45


@pytest.mark.parametrize("strategy", ["none", "preemptive_ivig", "primary_ivig"])
def test_six_month_incidence_is_below_the_twelve_month_one(base_gb, strategy):
    six = val.severe_incidence(base_gb, strategy, 6.0)[0]
    twelve = val.severe_incidence(base_gb, strategy, 12.0)[0]
    assert 0.0 < six < twelve < 1.0


def test_without_infections_nobody_dies_of_infection(base_gb):
    d = _draws(base_gb, p_severe_12m_no_igrt=0.0, r_severe_off_bsab=0.0)
    assert val.infection_death_share(base_gb, "none", 22.8, d)[0] == 0.0
    mix = val.infection_death_share_trial_mix(base_gb, "primary_ivig", "none", 22.8, d)
    assert mix[0] == 0.0


def test_infection_deaths_grow_with_time_and_start_at_zero(base_gb):
    shares = [val.infection_death_share(base_gb, "none", m)[0] for m in (0.0, 0.5, 6, 12, 22.8)]
    assert shares[0] == 0.0
    assert all(a < b for a, b in zip(shares, shares[1:], strict=False))


def test_the_trial_mix_weights_the_two_arms_by_p_trial_igrt_use(base_gb):
    share = float(base_gb.ptable.base()["p_trial_igrt_use"].iloc[0])
    assert share == 0.46
    ivig = val.infection_death_share(base_gb, "primary_ivig", 22.8)[0]
    none = val.infection_death_share(base_gb, "none", 22.8)[0]
    mix = val.infection_death_share_trial_mix(base_gb, "primary_ivig", "none", 22.8)[0]
    assert ivig < mix < none
    assert mix == pytest.approx(0.46 * ivig + 0.54 * none, rel=1e-12)


def test_without_fatal_infections_igrt_changes_no_death(base_gb):
    """IgRT saves lives only through fewer fatal infections (hr_igrt_os = 1): with a case
    fatality of 0 the all-cause death risk ratio is 1 at every time."""
    d = _draws(base_gb, p_case_fatality_severe=0.0)
    for months in (12.0, 24.0):
        assert val.death_risk_ratio(base_gb, "primary_ivig", "none", months, d)[0] == (
            pytest.approx(1.0, abs=1e-12)
        )
    # with fatal infections, fewer infections mean fewer deaths
    assert val.death_risk_ratio(base_gb, "primary_ivig", "none", 12.0)[0] < 1.0


def test_deaths_by_zero_months_is_zero_and_by_the_horizon_below_one(base_gb):
    assert val.deaths_by(base_gb, "none", 0.0)[0] == 0.0
    assert 0.5 < val.deaths_by(base_gb, "none", 36.0)[0] < 1.0


def test_ig_cost_per_patient_year_by_hand(base_gb):
    """Ig + administration per year on IgRT, from the GB inputs: IVIG 0.4 g/kg x 69 kg every 28
    days at c_ivig_per_g plus one visit c_ivig_admin; SCIG 0.1 g/kg x 69 kg (x the GB conversion
    1.0) weekly at c_scig_per_g plus c_scig_supplies_month (training set to 0, else it is spread
    over the years on IgRT)."""
    d = _draws(base_gb, c_scig_training=0.0)
    row = d.iloc[0]
    assert row["q_body_weight_kg"] == 69 and row["q_scig_conversion"] == 1.0
    per_year_28 = 365.25 / 28
    ivig = (0.4 * 69 * row["c_ivig_per_g"] + row["c_ivig_admin"]) * per_year_28
    scig = 0.1 * 69 * row["c_scig_per_g"] * 365.25 / 7 + row["c_scig_supplies_month"] * 12
    assert val.igrt_cost_per_year(base_gb, "primary_ivig", d)[0] == pytest.approx(ivig, rel=1e-12)
    assert val.igrt_cost_per_year(base_gb, "primary_scig", d)[0] == pytest.approx(scig, rel=1e-12)
    ratio = val.igrt_cost_ratio_per_year(base_gb, "primary_scig", "primary_ivig", d)[0]
    assert ratio == pytest.approx(scig / ivig, rel=1e-12)


def test_related_cost_leaves_out_the_myeloma_costs(base_gb):
    o = base_gb.outcomes.set_index("strategy").loc["primary_ivig"]
    expected = o["cost"] - o["cost_bsab"] - o["cost_subsequent_therapy"] - o["cost_end_of_life"]
    assert val.related_cost(base_gb, "primary_ivig")[0] == pytest.approx(expected, rel=1e-12)


def test_implied_hazard_ratio_by_hand():
    # ln(1 - 0.35) / ln(1 - 0.45) = -0.430783 / -0.597837
    assert val.implied_hazard_ratio(0.35, 0.45) == pytest.approx(0.720569, abs=1e-6)
    assert val.implied_hazard_ratio(0.45, 0.45) == 1.0


def test_the_hazard_ratio_matching_a_published_incidence(base_gb):
    hr = val.hr_for_incidence(base_gb, "primary_ivig", 12.0, 0.35)
    # 0.45 gives about 26% and 1 gives about 45%: the root lies between
    assert 0.45 < hr < 1.0
    d = _draws(base_gb, hr_igrt_severe=hr)
    assert val.severe_incidence(base_gb, "primary_ivig", 12.0, d)[0] == pytest.approx(
        0.35, abs=1e-5
    )


def test_a_weaker_effect_raises_incidence_and_lowers_the_gains(base_gb):
    """hr_igrt_severe 0.72 instead of 0.45: more infections on IVIG, fewer averted, a smaller
    QALY gain (the INMB is not tested: fewer life-years also mean less bsAb drug cost)."""
    weak = val.effect_scenario(base_gb, 0.72)
    assert weak.incidence["none"] == pytest.approx(0.45, abs=1e-9)
    assert weak.incidence["primary_ivig"] > val.severe_incidence(base_gb, "primary_ivig", 12.0)[0]
    c0 = base_gb.comparisons.set_index("comparison")
    c1 = weak.comparisons.set_index("comparison")
    key = "primary_ivig vs none"
    assert 0 < c1.loc[key, "inc_effect"] < c0.loc[key, "inc_effect"]
    assert c0.loc[key, "inc_severe_infections"] < c1.loc[key, "inc_severe_infections"] < 0


def test_face_validity_has_one_row_per_target(base_gb):
    table = val.face_validity(base_gb)
    ids = [r["id"] for r in csv.DictReader((INPUTS / TARGETS).open(encoding="utf-8"))]
    assert list(table["id"]) == ids
    assert np.isfinite(table["model_value"].to_numpy(float)).all()
    mohan = table.set_index("id").loc["mohan2025_no_ivig_12m"]
    assert mohan["model_value"] == pytest.approx(0.45, abs=1e-9) and mohan["inside_band"]


def test_every_measure_has_a_computation(base_gb):
    row = {"strategy": "primary_scig", "comparator": "primary_ivig", "months": 12.0}
    for measure in VALIDATION_MEASURES:
        value = val.target_value(base_gb, {**row, "measure": measure})
        assert np.isfinite(value).all() and value[0] > 0, measure


# --------------------------------------------------------------------------- the targets file


def _inputs_copy(tmp_path: Path) -> Path:
    root = tmp_path / "inputs"
    shutil.copytree(INPUTS, root)
    return root


def _edit_target(root: Path, row: int, column: str, value: str) -> None:
    """Set one cell of validation_targets.csv (row as a spreadsheet shows it: header = 1)."""
    path = root / TARGETS
    rows = list(csv.reader(path.open(encoding="utf-8", newline="")))
    rows[row - 1][rows[0].index(column)] = value
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("published_value", "abc", "not a number"),
        ("low", "0.5", "above published_value"),
        ("high", "0.1", "below published_value"),
        ("measure", "median_os", "median_os"),
        ("strategy", "no_such_strategy", "unknown strategy 'no_such_strategy'"),
        ("months", "", "needs months > 0"),
        ("evidence", "X", "X"),
    ],
)
def test_a_malformed_target_is_one_line_naming_file_row_and_column(
    tmp_path, column, value, problem
):
    root = _inputs_copy(tmp_path)
    _edit_target(root, 3, column, value)
    with pytest.raises(InputFileError) as info:
        load_inputs(root)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"inputs/{TARGETS}, row 3, column '{column}': "), msg
    assert problem in msg


def test_a_ratio_target_needs_a_comparator(tmp_path):
    root = _inputs_copy(tmp_path)
    rows = list(csv.DictReader((root / TARGETS).open(encoding="utf-8")))
    n = next(i for i, r in enumerate(rows) if r["measure"] == "death_risk_ratio") + 2
    _edit_target(root, n, "comparator", "")
    with pytest.raises(
        InputFileError, match=rf"row {n}, column 'comparator': .*needs a comparator"
    ):
        load_inputs(root)


def test_without_the_targets_file_there_are_no_validation_rows(tmp_path, base_gb):
    root = _inputs_copy(tmp_path)
    (root / TARGETS).unlink()
    inputs = load_inputs(root)
    assert inputs.validation_targets is None
    base = replace(base_gb, inputs=inputs)
    assert val.face_validity(base).empty
    assert checks.validation_checks(base) == []


# --------------------------------------------------------------------------- cea check lines


def test_validation_lines_name_target_values_band_source_and_result(base_gb):
    results = checks.validation_checks(base_gb)
    table = base_gb.inputs.validation_targets.df
    assert [r.name for r in results] == [f"validation_{i}" for i in table["id"]]
    assert all(r.passed for r in results)
    text = checks.format_checks(
        pd.DataFrame([tuple(r) for r in results], columns=checks.CHECK_COLUMNS)
    )
    for r, (_, t) in zip(results, table.iterrows(), strict=True):
        line = next(x for x in text.splitlines() if f"  {r.name}: " in x)
        verdict = line.split("  ", 1)[0]
        assert verdict in ("PASS", "WARN")
        assert f"published {t['published_value']:g}, band {t['low']:g} to {t['high']:g}" in line
        assert t["source"] in line and "model " in line
    mohan = next(x for x in text.splitlines() if "validation_mohan2025_no_ivig_12m" in x)
    assert mohan.startswith("PASS  ") and "model 0.45 " in mohan


def test_a_value_outside_its_band_is_a_warning_not_a_failure(base_gb):
    inputs = replace(base_gb.inputs)
    df = inputs.validation_targets.df.copy()
    i = df.index[df["id"] == "mohan2025_no_ivig_12m"][0]
    df.loc[i, ["low", "published_value", "high"]] = [0.6, 0.7, 0.8]  # 0.45 lies below
    inputs.validation_targets = replace(inputs.validation_targets, df=df)
    base = replace(base_gb, inputs=inputs)
    results = {r.name: r for r in checks.validation_checks(base)}
    warned = results["validation_mohan2025_no_ivig_12m"]
    assert warned.passed and warned.detail.startswith("WARN: outside band: model 0.45 ")
    table = pd.DataFrame([tuple(r) for r in results.values()], columns=checks.CHECK_COLUMNS)
    text = checks.format_checks(table)
    assert "WARN  validation_mohan2025_no_ivig_12m: WARN: outside band" in text
    n = len(table)
    assert f"{n} of {n} checks passed" in text and "outside their band (WARN" in text


def test_a_validation_computation_that_raises_is_a_failure(base_gb):
    inputs = replace(base_gb.inputs)
    df = inputs.validation_targets.df.copy()
    df.loc[df.index[0], "strategy"] = "no_such_strategy"
    inputs.validation_targets = replace(inputs.validation_targets, df=df)
    (result,) = checks.validation_checks(replace(base_gb, inputs=inputs))
    assert result.name == "validation"
    assert not result.passed and "no_such_strategy" in result.detail


def _targets_with_months(tmp_path, months: str):
    root = tmp_path / "inputs"
    shutil.copytree(INPUTS, root)
    path = root / "validation_targets.csv"
    rows = list(csv.reader(path.open(encoding="utf-8", newline="")))
    col = rows[0].index("months")
    rows[1][col] = months
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    return root, rows[1][rows[0].index("id")]


def test_a_target_no_horizon_reaches_is_refused_naming_its_row(tmp_path, capsys):
    # months = 1e308 was computed at the horizon's end and shown as "by 1e+308 months"
    from cea.cli import main

    root, _ = _targets_with_months(tmp_path, "1e308")
    assert main(["check", "--inputs", str(root)]) == 2
    _, err = capsys.readouterr()
    assert err.startswith("error: inputs/validation_targets.csv, row 2, column 'months': "), err
    assert "720" in err and err.count("\n") == 1, err


def test_a_target_past_this_runs_horizon_is_a_warning_not_computed(tmp_path):
    # 121 months is past the 10-year horizon of the bundled settings (130 cycles of 28 days,
    # 119.6 months) but within a longer one: the row is not computed and the check warns
    from cea.io.load import load_inputs
    from cea.pipeline.base import build_base_case
    from cea.pipeline.validation import BEYOND_HORIZON, face_validity
    from cea.verify import WARN, validation_checks

    root, target = _targets_with_months(tmp_path, "121")
    base = build_base_case(load_inputs(root), "GB")
    table = face_validity(base).set_index("id")
    assert np.isnan(table.loc[target, "model_value"]) and not table.loc[target, "inside_band"]
    assert table.loc[target, "model_conditions"].startswith(f"{BEYOND_HORIZON} (119.6 months)")
    (check,) = [c for c in validation_checks(base) if c.name.endswith(target)]
    assert check.passed and check.detail.startswith(f"{WARN}: {BEYOND_HORIZON}")
    others = table.drop(index=target)
    assert np.isfinite(others["model_value"]).all()

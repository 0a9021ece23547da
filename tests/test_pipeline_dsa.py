"""Deterministic sensitivity analysis on the real GB inputs: one-way/tornado, two-way,
scenarios, thresholds, and the three commands through a subprocess (issue 4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cea.igrt.model import run_model
from cea.io.load import load_inputs
from cea.parameters import designs
from cea.pipeline import dsa

REPO = Path(__file__).resolve().parents[1]
INPUTS = REPO / "inputs"
PP = ("primary_ivig", "preemptive_ivig")
PN = ("primary_ivig", "none")


@pytest.fixture(scope="module")
def inputs():
    return load_inputs(INPUTS)


@pytest.fixture(scope="module")
def base(inputs):
    case, comp = dsa.prepare(inputs, "GB", comparison=PP)
    assert comp == PP
    return case


@pytest.fixture(scope="module")
def one_way(base):
    """The one-way DSA, counting the model calls it makes."""
    calls = []
    original = dsa.run_model

    def counting(draws, spec, **kw):
        calls.append(len(draws))
        return original(draws, spec, **kw)

    dsa.run_model = counting
    try:
        ow = dsa.run_one_way(base)
    finally:
        dsa.run_model = original
    return ow, calls


def comparison_of(case, comp):
    c = case.comparisons.set_index("comparison").loc[f"{comp[0]} vs {comp[1]}"]
    return c


# --------------------------------------------------------------------------- one-way


def test_design_is_one_vectorized_call_of_2k_plus_1_rows(one_way, base):
    ow, calls = one_way
    k = len(ow.ranges)
    assert calls == [2 * k + 1]
    pd.testing.assert_frame_equal(ow.draws.iloc[[0]], base.ptable.base(), check_names=False)
    # every other row differs from the base row in its own parameter only
    diff = ow.draws.iloc[1:].to_numpy() != ow.draws.iloc[[0]].to_numpy()
    changed = [set(ow.draws.columns[row]) for row in diff]
    for params, (_, d) in zip(changed, ow.design.iloc[1:].iterrows(), strict=True):
        assert params <= {d["parameter"]}
    # results are kept for every strategy at every row
    assert len(ow.outcomes) == len(ow.draws) * len(base.spec.strategies)
    assert ow.base_check < 1e-9


def test_ranges_table_and_skipped(one_way, base):
    ow, _ = one_way
    r = ow.ranges.set_index("parameter")
    assert set(ow.skipped["parameter"]) == {
        "t_infection_hazard_anchor_months",
        "q_ivig_reference_interval_days",
        "c_subsequent_therapy_month",
        "c_end_of_life",
    }
    assert (r["low"] != r["high"]).all()
    # low/high from the table
    assert (r.loc["hr_igrt_severe", "low"], r.loc["hr_igrt_severe", "high"]) == (0.2, 1.0)
    assert r.loc["hr_igrt_severe", "range_origin"].startswith("low/high")
    # no low/high: 2.5 and 97.5 percentiles of the gamma built from value and se
    d = base.ptable.distribution("c_scig_training")
    assert r.loc["c_scig_training", "low"] == pytest.approx(float(d.ppf(0.025)), rel=1e-12)
    assert r.loc["c_scig_training", "high"] == pytest.approx(float(d.ppf(0.975)), rel=1e-12)
    assert r.loc["c_scig_training", "range_origin"].startswith("2.5/97.5 percentiles")
    # p_igg_low_ever's high of 1.00 is evaluated just below 1 (model singular at exactly 1)
    assert r.loc["p_igg_low_ever", "evaluated_high"] == 1 - designs.PROB_EDGE
    assert r["base_in_range"].all()


@pytest.mark.parametrize("comp", [PP, PN])
def test_base_case_inside_every_tornado_bar(one_way, base, comp):
    ow, _ = one_way
    t = dsa.tornado_table(ow, comp)
    base_inmb = comparison_of(base, comp)["inmb"]
    assert t["inmb_base"].to_numpy() == pytest.approx(base_inmb, rel=1e-9)
    tol = 1e-9 * abs(base_inmb)
    lo_end = np.minimum(t["inmb_low"], t["inmb_high"])
    hi_end = np.maximum(t["inmb_low"], t["inmb_high"])
    between = (lo_end <= base_inmb + tol) & (base_inmb - tol <= hi_end)
    # the base lies between the two ends of every bar, except where the response is not
    # monotone over the range: then both ends are on one side of the base (the base value lies
    # inside the range, so INMB(base) being below or above both ends proves the turn), the row
    # is flagged, and the drawn bar (base to each end) still spans the base
    assert (between | t["non_monotone"]).all()
    assert not (between & t["non_monotone"]).any()
    assert ((t["inmb_min"] <= base_inmb + tol) & (base_inmb - tol <= t["inmb_max"])).all()
    # sorted by swing, largest first
    assert (np.diff(t["swing"].to_numpy()) <= 0).all()
    assert list(t["rank"]) == list(range(1, len(t) + 1))


def test_parameters_that_do_not_enter_a_comparison_have_zero_swing(one_way):
    ow, _ = one_way
    t = dsa.tornado_table(ow, PP).set_index("parameter")
    # c_scig_per_g prices SCIG grams only (cohort_arrays: price_g = c_scig_per_g if is_scig);
    # the calibration cohorts are no-IgRT and IVIG; so neither IVIG arm sees it, while the SCIG
    # strategies do
    assert t.loc["c_scig_per_g", "swing"] == 0.0
    assert not t.loc["c_scig_per_g", "enters_comparison"]
    assert t.loc["c_scig_per_g", "enters_model"]
    # elranatamab's price is read only when bsab_drug = "elranatamab": no strategy sees it
    assert t.loc["c_bsab_elranatamab_month", "swing"] == 0.0
    assert not t.loc["c_bsab_elranatamab_month", "enters_model"]
    # p_igg_isotype weights two subgroups that differ only in IgG-test detection (masking);
    # primary IVIG and no IgRT never test, and calibration uses one subgroup: no effect on
    # primary_ivig vs none, but an effect on the preemptive comparison
    tn = dsa.tornado_table(ow, PN).set_index("parameter")
    assert tn.loc["p_igg_isotype", "swing"] == 0.0
    assert t.loc["p_igg_isotype", "swing"] > 0


def test_linear_price_gives_the_hand_derived_swing(one_way, base):
    """INMB = WTP dQALY - dcost and cost_ig = price x discounted grams, so moving the IVIG price
    from low to high changes the INMB of primary vs preemptive IVIG by
    -(high - low) x (grams_primary - grams_preemptive). The discounted ``ig_grams`` count is
    discounted at the effects rate, equal to the costs rate in GB (3.5%)."""
    ow, _ = one_way
    assert base.spec.discount_rate_costs == base.spec.discount_rate_effects
    t = dsa.tornado_table(ow, PP).set_index("parameter").loc["c_ivig_per_g"]
    g = base.outcomes.set_index("strategy")["ig_grams"]
    d_grams = (
        g["primary_ivig"] - g["preemptive_ivig"]
    )  # primary treats from day 0 and the never-low
    assert d_grams > 0
    expected = -(t["high"] - t["low"]) * d_grams
    assert t["inmb_high"] - t["inmb_low"] == pytest.approx(expected, rel=1e-9)
    assert t["swing"] == pytest.approx(abs(expected), rel=1e-9)
    # QALYs do not move with a price
    assert t["inc_qaly_low"] == pytest.approx(t["inc_qaly_high"], rel=1e-12)


def test_icer_that_flips_quadrant_is_reported_not_a_number(one_way):
    ow, _ = one_way
    t = dsa.tornado_table(ow, PP, outcome="icer")
    # base: NE (primary costs more and gains a little); with hr_igrt_severe = 1 IgRT prevents
    # nothing and primary IVIG is dominated
    r = t.set_index("parameter").loc["hr_igrt_severe"]
    assert r["quadrant_base"] == "NE" and r["quadrant_high"] == "NW"
    assert np.isnan(r["icer_high"]) and np.isnan(r["icer_swing"])
    assert r["icer_status"] == "quadrant flip at high"
    assert r["interpretation_high"] == "dominated"
    # the ICER table puts quadrant flips first; numeric rows have an icer_swing
    flips = t["icer_status"].str.startswith("quadrant flip")
    assert flips.iloc[: flips.sum()].all()
    numeric = t[t["icer_status"] == "numeric"]
    assert (numeric["icer_swing"] > 0).all() and np.isfinite(numeric["icer_low"]).all()


def test_rows_the_model_cannot_evaluate_are_isolated_not_invented(base):
    # a 0.5-month median OS cannot be reached by any myeloma death rate after the bsAb stops
    # (patients stay on the bsAb for a median of 11.3 months): that row alone fails
    draws = designs.design_draws(base.ptable.base(), [{}, {"t_target_median_os_months": 0.5}, {}])
    res = dsa.run_design(draws, base.spec)
    assert list(res.failures) == [1]
    assert "cannot calibrate" in res.failures[1]
    assert sorted(res.outcomes["draw"].unique()) == [0, 2]
    o = res.outcomes.set_index(["draw", "strategy"])["cost"]
    ref = base.outcomes.set_index("strategy")["cost"]
    for d in (0, 2):
        np.testing.assert_allclose(o.loc[d].loc[ref.index], ref, rtol=1e-9)


# --------------------------------------------------------------------------- two-way


def test_two_way_grid_at_base_values_equals_base_case(base):
    tw = dsa.run_two_way(base, "hr_igrt_severe", "c_ivig_per_g", PP, n=3)
    assert len(tw.grid) == 4 * 4  # 3 points + the base value on each axis
    b = tw.grid[tw.grid["is_base"]]
    assert len(b) == 1
    assert b["inmb"].iloc[0] == pytest.approx(comparison_of(base, PP)["inmb"], rel=1e-9)
    inc = base.incremental.set_index("strategy")
    for s in base.spec.strategy_names:
        assert b[f"nmb_{s}"].iloc[0] == pytest.approx(inc.loc[s, "nmb"], rel=1e-9)
    assert b["optimal_strategy"].iloc[0] == inc.index[inc["optimal"]][0]
    # at a fixed HR, INMB is linear in the IVIG price (slope: minus the extra discounted grams)
    g = tw.grid[tw.grid["hr_igrt_severe"] == base.ptable.df.loc["hr_igrt_severe", "value"]]
    slope = np.diff(g["inmb"]) / np.diff(g["c_ivig_per_g"])
    np.testing.assert_allclose(slope, slope[0], rtol=1e-9)


# --------------------------------------------------------------------------- threshold


def test_threshold_of_a_linear_price_matches_the_analytic_root(base):
    # primary SCIG vs primary IVIG: INMB(p) = INMB0 - (p - p0) x grams_scig, zero at
    # p* = p0 + INMB0 / grams_scig; the crossing lies inside the DSA range (30-55)
    th = dsa.find_threshold(base, "c_scig_per_g", ("primary_scig", "primary_ivig"))
    g = base.outcomes.set_index("strategy").loc["primary_scig", "ig_grams"]
    inmb0 = comparison_of(base, ("primary_scig", "primary_ivig"))["inmb"]
    p0 = base.ptable.df.loc["c_scig_per_g", "value"]
    assert th.bracket_origin == "DSA range"
    assert th.threshold == pytest.approx(p0 + inmb0 / g, rel=1e-9)
    assert abs(th.inmb_at_roots[0]) < 1e-6


def test_threshold_widens_to_natural_bounds_and_reruns_to_zero(base):
    th = dsa.find_threshold(base, "hr_igrt_severe", PP)
    # INMB < 0 across the DSA range 0.2-1.0, so the search widens to (0, 10 x 0.45]
    assert th.bracket_origin == "natural bounds"
    assert th.bracket == pytest.approx((0.45 * designs.NATURAL_LOWER_FRACTION, 10.0))
    assert th.found and th.threshold > 1.0
    # rerun the model at the threshold, independently of find_threshold
    draws = base.ptable.base()
    draws["hr_igrt_severe"] = th.threshold
    out = run_model(draws, base.spec).outcomes.set_index("strategy")
    wtp = base.country.wtp_per_qaly
    d = out.loc["primary_ivig"] - out.loc["preemptive_ivig"]
    inmb = wtp * d["qaly"] - d["cost"]
    assert abs(inmb) < 1e-6 * abs(comparison_of(base, PP)["inmb"])


def test_threshold_without_crossing_names_the_inmb_at_both_ends(base):
    th = dsa.find_threshold(base, "c_bsab_elranatamab_month", PP)
    assert not th.found and np.isnan(th.threshold)
    assert "no threshold" in th.message and "negative" in th.message
    assert th.inmb_at_ends[0] == pytest.approx(comparison_of(base, PP)["inmb"], rel=1e-9)
    assert f"{th.inmb_at_ends[0]:,.0f}" in th.message
    assert f"{th.inmb_at_ends[1]:,.0f}" in th.message


def test_natural_bounds_by_prefix(base):
    pt = base.ptable
    assert designs.natural_bounds(pt, "p_case_fatality_severe") == (0.0, 1.0)
    assert designs.natural_bounds(pt, "u_on_bsab") == (0.0, 1.0)
    v = pt.df.loc["c_ivig_per_g", "value"]
    lo, hi = designs.natural_bounds(pt, "c_ivig_per_g")
    assert lo == 0.0 and hi == pytest.approx(10 * pt.dsa_range("c_ivig_per_g")[1])
    assert hi >= 10 * v
    assert designs.natural_bounds(pt, "t_infection_hazard_anchor_months")[0] > 0


# --------------------------------------------------------------------------- scenarios


def test_scenarios_beside_the_base_case(inputs, base):
    files = [INPUTS / "scenarios" / "ivig_q6w.toml", INPUTS / "scenarios" / "post_covid.toml"]
    sc = dsa.run_scenarios(inputs, "GB", files=files)
    s = sc.summary.set_index("scenario")
    assert list(s.index) == ["base", "ivig_q6w", "post_covid"]
    assert s.loc["base", "headline_inmb"] == pytest.approx(comparison_of(base, PP)["inmb"])
    # ivig_q6w keeps the base comparison (both strategies present) and adds its own
    assert "primary_ivig_q6w" in s.loc["ivig_q6w", "strategies"].split(",")
    assert "preemptive_scig" not in s.loc["ivig_q6w", "strategies"].split(",")
    c = sc.comparisons
    q6 = c[c["scenario"] == "ivig_q6w"].set_index("comparison")
    assert not q6.loc["primary_ivig_q6w vs primary_ivig", "in_base_case"]
    assert "primary_scig vs primary_ivig" not in q6.index  # not in both
    assert q6.loc["primary_ivig vs preemptive_ivig", "inmb_change"] == pytest.approx(0, abs=1e-6)
    # a lower case fatality moves the result
    assert s.loc["post_covid", "headline_inmb_change"] != 0
    assert {"country", "currency", "wtp_per_qaly"} <= set(sc.summary.columns)


# --------------------------------------------------------------------------- command line


def _cea(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "cea", *args, "--inputs", str(INPUTS)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    """Every command at once (they are independent): name -> (returncode, stdout, stderr, out)."""
    root = tmp_path_factory.mktemp("cli")
    runs = {
        "dsa": ["dsa", "--country", "GB", "--comparison", "primary_ivig:preemptive_ivig"],
        "two_way": [
            "dsa",
            "--country",
            "GB",
            "--two-way",
            "hr_igrt_severe,c_ivig_per_g",
            "--grid",
            "4",
        ],
        "scenarios": ["scenarios", "--country", "GB"],
        "threshold": [
            "threshold",
            "--country",
            "GB",
            "--parameter",
            "c_scig_per_g",
            "--comparison",
            "primary_scig:primary_ivig",
        ],
        "bad_parameter": [
            "threshold",
            "--country",
            "GB",
            "--parameter",
            "hr_nope",
            "--comparison",
            "primary_ivig:none",
        ],
    }
    procs = {}
    for name, args in runs.items():
        out = root / name
        procs[name] = (_cea(*args, "--out", str(out), cwd=root), out)
    results = {}
    for name, (p, out) in procs.items():
        stdout, stderr = p.communicate(timeout=300)
        results[name] = (p.returncode, stdout, stderr, out)
    return results


@pytest.mark.parametrize(
    "name, files",
    [
        (
            "dsa",
            [
                "tornado_inmb.csv",
                "tornado_inmb.png",
                "tornado_inmb.svg",
                "tornado_icer.csv",
                "tornado_icer.png",
                "tornado_icer.svg",
                "ranges.csv",
                "skipped.csv",
                "dsa_outcomes.csv",
                "dsa_comparisons.csv",
                "run.json",
            ],
        ),
        (
            "two_way",
            ["twoway_grid.csv", "twoway_outcomes.csv", "twoway.png", "twoway.svg", "run.json"],
        ),
        (
            "scenarios",
            [
                "scenario_summary.csv",
                "scenario_strategies.csv",
                "scenario_comparisons.csv",
                "scenarios.png",
                "scenarios.svg",
                "run.json",
            ],
        ),
        (
            "threshold",
            ["threshold.csv", "threshold_scan.csv", "threshold.png", "threshold.svg", "run.json"],
        ),
    ],
)
def test_cli_commands_write_their_files(cli, name, files):
    code, stdout, stderr, out = cli[name]
    assert code == 0, stderr
    for f in files:
        assert (out / f).is_file(), f
    prov = json.loads((out / "run.json").read_text())
    assert prov["country"]["code"] == "GB" and prov["country"]["currency"] == "GBP"
    assert prov["country"]["wtp_per_qaly"] == 20000
    assert "inputs/parameters.csv" in " ".join(prov["input_sha256"])
    assert "git_commit" in prov and prov["analysis"]
    assert "GBP" in stdout and "written:" in stdout


def test_cli_outputs_content(cli):
    _, stdout, _, out = cli["dsa"]
    t = pd.read_csv(out / "tornado_inmb.csv")
    assert t["swing"].iloc[0] == t["swing"].max()  # the file is sorted by swing, largest first
    assert {"hr_igrt_severe", "p_igg_low_ever"} <= set(t["parameter"].head(3))
    assert (
        t[["country", "currency", "comparison"]].iloc[0]
        == ["GB", "GBP", "primary_ivig vs preemptive_ivig"]
    ).all()
    ranges = json.loads((out / "run.json").read_text())["analysis"]["ranges"]
    assert {r["parameter"] for r in ranges} == set(t["parameter"])
    _, stdout, _, out = cli["scenarios"]
    s = pd.read_csv(out / "scenario_summary.csv")
    assert len(s) == 1 + len(list((INPUTS / "scenarios").glob("*.toml")))
    _, stdout, _, out = cli["threshold"]
    th = pd.read_csv(out / "threshold.csv").iloc[0]
    assert th["status"] == "found" and abs(th["inmb_at_threshold"]) < 1e-6


def test_cli_bad_parameter_exits_2_with_one_line(cli):
    code, stdout, stderr, out = cli["bad_parameter"]
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown parameter 'hr_nope'")
    assert not out.exists()


def test_cli_bad_two_way_parameter_in_process(tmp_path, capsys):
    # the same entry point as the console script, without a second interpreter start-up
    from cea.cli import main

    out = tmp_path / "tw"
    args = ["dsa", "--country", "GB", "--two-way", "hr_igrt_severe,c_nope", "--out", str(out)]
    assert main([*args, "--inputs", str(INPUTS)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: unknown parameter 'c_nope'")
    assert not out.exists()

"""Regional comparison (cea.analysis.regional, cea.pipeline.regional): conversions, threshold prices, every country, the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import brentq

from cea.analysis.regional import (
    ANY_PRICE,
    MAX_PRICE,
    MIN_PRICE,
    NO_PRICE,
    PRICE_ITEMS,
    REGIONAL_COLUMNS,
    from_intl,
    from_usd,
    threshold_price,
    to_intl,
    to_usd,
)
from cea.cli import main
from cea.igrt.model import run_model
from cea.io.load import load_inputs
from cea.parameters.table import Scenario, build_parameter_table
from cea.pipeline.regional import compare_countries

REPO = Path(__file__).resolve().parents[1]
INPUTS = REPO / "inputs"
BASE_COUNTRIES = (
    "US",
    "GB",
    "CA",
    "DE",
    "FR",
    "IT",
    "ES",
    "NL",
    "AU",
    "JP",
    "IN",
    "BR",
    "CN",
    "ZA",
)
#: |INMB| at the threshold price, relative to the arms' total costs (float rounding only).
INMB_ZERO_RTOL = 1e-9


@pytest.fixture(scope="module")
def regional():
    """The base-case comparison of all 14 countries, run once for the module."""
    return compare_countries(INPUTS, "all")


def _rerun(cr, overrides: list[dict[str, float]]) -> pd.DataFrame:
    """Costs and QALYs of every strategy for each set of price overrides (one stacked run,
    the calibration reused). Returns the outcomes with ``draw`` = position in ``overrides``."""
    base = cr.ptable.base()
    rows = []
    for ov in overrides:
        r = base.iloc[0].copy()
        for k, v in ov.items():
            r[k] = v
        rows.append(r)
    draws = pd.DataFrame(rows, index=pd.Index(range(len(rows)), name="draw"))
    cal = pd.DataFrame(
        np.repeat(cr.calibrated.to_numpy(), len(rows), axis=0),
        columns=cr.calibrated.columns,
        index=draws.index,
    )
    return run_model(draws, cr.spec, calibrated=cal).outcomes


def _inmb(out: pd.DataFrame, draw: int, a: str, b: str, wtp: float) -> float:
    o = out[out["draw"] == draw].set_index("strategy")
    return wtp * (o.loc[a, "qaly"] - o.loc[b, "qaly"]) - (o.loc[a, "cost"] - o.loc[b, "cost"])


# --------------------------------------------------------------------------- conversions


def test_us_dollars_at_ppp_one_equal_themselves(regional):
    us = regional.regional[regional.regional["country"] == "US"]
    assert (us["fx_lcu_per_usd"] == 1.0).all() and (us["ppp_lcu_per_intl_dollar"] == 1.0).all()
    for stem in ("inc_cost", "inmb", "threshold_price", "current_price", "wtp"):
        np.testing.assert_array_equal(us[f"{stem}_usd"], us[f"{stem}_lcu"])
        np.testing.assert_array_equal(us[f"{stem}_intl"], us[f"{stem}_lcu"])
    assert to_usd(123.45, 1.0) == 123.45 and to_intl(123.45, 1.0) == 123.45


@given(
    x=st.floats(-1e9, 1e9, allow_nan=False),
    rate=st.floats(1e-3, 1e5, allow_nan=False),
)
def test_conversion_round_trips(x, rate):
    assert from_intl(to_intl(x, rate), rate) == pytest.approx(x, rel=1e-12, abs=1e-12)
    assert from_usd(to_usd(x, rate), rate) == pytest.approx(x, rel=1e-12, abs=1e-12)


def test_table_conversions_are_consistent(regional):
    reg = regional.regional
    # back from international dollars and US dollars to local currency
    for stem in ("inc_cost", "inmb", "wtp", "current_price"):
        np.testing.assert_allclose(
            from_intl(reg[f"{stem}_intl"], reg["ppp_lcu_per_intl_dollar"]),
            reg[f"{stem}_lcu"],
            rtol=1e-12,
        )
        np.testing.assert_allclose(
            from_usd(reg[f"{stem}_usd"], reg["fx_lcu_per_usd"]), reg[f"{stem}_lcu"], rtol=1e-12
        )
    # ratios do not depend on the currency
    ne = reg[reg["quadrant"].isin(["NE", "SW"])]
    np.testing.assert_allclose(ne["icer_usd"] / ne["wtp_usd"], ne["icer_over_wtp"], rtol=1e-12)
    np.testing.assert_allclose(ne["icer_intl"] / ne["wtp_intl"], ne["icer_over_wtp"], rtol=1e-12)
    np.testing.assert_allclose(
        ne["icer_usd"] / ne["gdp_per_capita_usd"], ne["icer_over_gdp"], rtol=1e-12
    )
    np.testing.assert_allclose(
        reg["inc_cost_lcu"], reg["cost_intervention_lcu"] - reg["cost_comparator_lcu"], rtol=1e-12
    )
    # no ICER (and no ratio) for dominant or dominated comparisons
    assert (
        reg.loc[reg["quadrant"].isin(["SE", "NW"]), ["icer_lcu", "icer_over_wtp"]]
        .isna()
        .all()
        .all()
    )


# --------------------------------------------------------------------------- threshold price


def test_threshold_price_by_hand():
    # INMB(p) = -1000 - 100 (p - 50): zero at p = 40, cost-effective below it
    assert threshold_price(-1000.0, 100.0, 50.0) == (pytest.approx(40.0, rel=1e-15), MAX_PRICE)
    # INMB(0) = -6000 + 100 x 50 = -1000 < 0: no price >= 0 works; the root is -10
    assert threshold_price(-6000.0, 100.0, 50.0) == (pytest.approx(-10.0, rel=1e-15), NO_PRICE)
    # the intervention uses 100 g fewer: INMB(p) = -1000 + 100 (p - 50), cost-effective above 60
    assert threshold_price(-1000.0, -100.0, 50.0) == (pytest.approx(60.0, rel=1e-15), MIN_PRICE)
    # ... and with INMB(0) = 1000 > 0 at any price
    assert threshold_price(6000.0, -100.0, 50.0) == (pytest.approx(-10.0, rel=1e-15), ANY_PRICE)
    # the price does not enter the comparison
    p, status = threshold_price(5.0, 0.0, 50.0)
    assert np.isnan(p) and status == ANY_PRICE
    p, status = threshold_price(-5.0, 0.0, 50.0)
    assert np.isnan(p) and status == NO_PRICE


@pytest.mark.parametrize("code", ["GB", "US", "NL", "JP"])
def test_threshold_price_gives_zero_inmb_in_the_model(regional, code):
    """Put p* back into the model (price overridden, calibration reused): INMB = 0."""
    cr = regional.countries[code]
    rows = regional.regional[
        (regional.regional["country"] == code) & regional.regional["threshold_price_lcu"].notna()
    ]
    assert len(rows) == len(cr.comparisons)
    out = _rerun(cr, [{r.price_item: r.threshold_price_lcu} for r in rows.itertuples()])
    for k, r in enumerate(rows.itertuples()):
        scale = max(r.cost_intervention_lcu, r.cost_comparator_lcu)
        assert (
            abs(_inmb(out, k, r.intervention, r.comparator, r.wtp_lcu)) <= INMB_ZERO_RTOL * scale
        ), r.comparison


@pytest.mark.parametrize(
    "comparison",
    ["primary_scig vs primary_ivig", "primary_ivig vs none", "primary_ivig vs preemptive_ivig"],
)
def test_threshold_price_matches_root_finding(regional, comparison):
    """Brent's method on the model rerun finds the same price as the analytic formula."""
    cr = regional.countries["GB"]
    r = regional.regional.set_index(["country", "comparison"]).loc[("GB", comparison)]
    a, b = r["intervention"], r["comparator"]

    def inmb(p: float) -> float:
        return _inmb(_rerun(cr, [{r["price_item"]: p}]), 0, a, b, r["wtp_lcu"])

    width = 10 * r["current_price_lcu"]
    root = brentq(
        inmb,
        r["threshold_price_lcu"] - width,
        r["threshold_price_lcu"] + width,
        xtol=1e-10,
        rtol=1e-12,
    )
    assert root == pytest.approx(r["threshold_price_lcu"], rel=1e-8)


def test_threshold_status_agrees_with_inmb(regional):
    reg = regional.regional
    assert (reg["cost_effective"] == (reg["inmb_lcu"] > 0)).all()
    mx = reg[reg["threshold_status"] == MAX_PRICE]
    assert ((mx["current_price_lcu"] < mx["threshold_price_lcu"]) == mx["cost_effective"]).all()
    assert (mx["threshold_price_lcu"] > 0).all() and (mx["price_slope_g"] > 0).all()
    no = reg[reg["threshold_status"] == NO_PRICE]
    assert (~no["cost_effective"]).all() and (no["inmb_at_zero_price_lcu"] <= 0).all()
    # INMB(0) = INMB(p_now) + dG p_now, and p* = p_now (1 + change)
    np.testing.assert_allclose(
        reg["inmb_at_zero_price_lcu"],
        reg["inmb_lcu"] + reg["price_slope_g"] * reg["current_price_lcu"],
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        reg["threshold_price_lcu"],
        reg["current_price_lcu"] * (1 + reg["price_change_needed"]),
        rtol=1e-12,
    )
    # SCIG vs IVIG: threshold on the SCIG price; same-product and vs-none: that product
    assert (
        reg.loc[reg["comparison"] == "primary_scig vs primary_ivig", "price_item"] == "c_scig_per_g"
    ).all()
    assert (
        reg.loc[reg["comparison"] == "primary_ivig vs none", "price_item"] == "c_ivig_per_g"
    ).all()
    assert (
        reg.loc[reg["comparison"] == "primary_scig vs preemptive_scig", "price_item"]
        == "c_scig_per_g"
    ).all()


def test_thresholds_at_base_wtp_match_the_regional_table(regional):
    thr = regional.thresholds
    base = thr[thr["wtp_kind"] == "base"].set_index(["country", "comparison"])
    reg = regional.regional.set_index(["country", "comparison"])
    np.testing.assert_allclose(
        base["threshold_price_lcu"], reg.loc[base.index, "threshold_price_lcu"], rtol=1e-12
    )
    # a higher WTP never lowers a maximum price (dQALY > 0 for IgRT vs no IgRT)
    vs_none = thr[thr["comparison"].str.endswith("vs none") & (thr["wtp_kind"] == "multiple")]
    for _, g in vs_none.groupby(["country", "comparison"]):
        assert np.all(np.diff(g.sort_values("wtp_multiple")["threshold_price_lcu"]) > 0)


@pytest.mark.parametrize("code", BASE_COUNTRIES)
def test_raising_the_ig_price_never_lowers_a_cost(regional, code):
    cr = regional.countries[code]
    factors = (1.0, 1.01, 1.5, 3.0)
    out = _rerun(cr, [{i: cr.price(i) * f for i in PRICE_ITEMS.values()} for f in factors])
    cost = out.pivot(index="strategy", columns="draw", values="cost")
    assert (np.diff(cost.to_numpy(), axis=1) >= 0).all()
    uses = {s.strategy: s.uses_igrt for s in cr.spec.strategies}
    for s in cost.index:
        if uses[s]:
            assert (np.diff(cost.loc[s].to_numpy()) > 0).all(), s
        else:
            assert np.ptp(cost.loc[s].to_numpy()) == 0.0, s
    # the base case run agrees with the rerun at today's prices (calibration reused)
    np.testing.assert_allclose(
        cost[0].to_numpy(), cr.outcomes.loc[cost.index, "cost"].to_numpy(), rtol=1e-12
    )


# --------------------------------------------------------------------------- every country


def test_every_country_passes_validation_and_runs(regional):
    inputs = load_inputs(INPUTS)
    assert tuple(inputs.country_codes()) == BASE_COUNTRIES
    for code in BASE_COUNTRIES:
        pt = build_parameter_table(inputs, code, Scenario())
        for item in PRICE_ITEMS.values():
            assert pt.df.loc[item, "value"] > 0 and pt.df.loc[item, "unit"].startswith(
                pt.country.currency
            )
    reg = regional.regional
    assert list(reg.columns) == REGIONAL_COLUMNS
    assert list(dict.fromkeys(reg["country"])) == list(BASE_COUNTRIES)
    n_comp = len(regional.countries["GB"].comparisons)
    assert n_comp == 8 and len(reg) == len(BASE_COUNTRIES) * n_comp
    numeric = [
        "cost_intervention_lcu",
        "qaly_intervention",
        "inc_cost_usd",
        "inc_qaly",
        "inmb_intl",
        "threshold_price_intl",
    ]
    assert np.isfinite(reg[numeric].to_numpy(float)).all()
    assert reg["threshold_status"].isin([MAX_PRICE, MIN_PRICE, NO_PRICE, ANY_PRICE]).all()
    strat = regional.strategies
    assert len(strat) == len(BASE_COUNTRIES) * 5
    assert (strat["cost_lcu"] >= 0).all() and (strat["qaly"] <= strat["ly"]).all()
    assert (strat.groupby("country")["optimal"].sum() == 1).all()


def test_optimal_strategy_has_the_highest_nmb(regional):
    strat = regional.strategies
    for r in regional.optimal.itertuples():
        s = strat[strat["country"] == r.country]
        nmb = r.wtp_lcu * s["qaly"] - s["cost_lcu"]
        assert s.loc[nmb.idxmax(), "strategy"] == r.optimal_strategy
    kinds = regional.optimal.groupby("country")["wtp_kind"].value_counts().unstack(fill_value=0)
    assert (kinds["base"] == 1).all() and (kinds["multiple"] == 5).all()
    gb = regional.optimal[
        (regional.optimal["country"] == "GB") & (regional.optimal["wtp_kind"] == "alternative")
    ]
    assert list(gb["wtp_lcu"]) == list(regional.countries["GB"].country.wtp_alternatives)


def test_scenario_price_override_is_flagged():
    res = compare_countries(
        INPUTS, "GB", Scenario(name="cheap", description="d", parameters={"c_ivig_per_g": 10.0})
    )
    assert any("c_ivig_per_g" in w for w in res.warnings)
    assert res.countries["GB"].price("c_ivig_per_g") == 10.0


# --------------------------------------------------------------------------- command line


def test_cli_writes_tables_figures_and_provenance(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert (
        main(["compare", "--countries", "gb,US", "--inputs", str(INPUTS), "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "ICER / WTP" in printed and "threshold Ig price" in printed
    for name in (
        "regional.csv",
        "regional_strategies.csv",
        "regional_optimal.csv",
        "regional_thresholds.csv",
        "run.json",
    ):
        assert (out / name).is_file(), name
    for name in ("icer_vs_wtp", "threshold_price", "net_benefit_heatmap"):
        assert (out / f"{name}.png").stat().st_size > 10_000, name
        assert (out / f"{name}.svg").read_text().lstrip().startswith("<?xml"), name
    reg = pd.read_csv(out / "regional.csv")
    assert list(reg["country"].unique()) == ["GB", "US"]
    meta = json.loads((out / "run.json").read_text())
    assert set(meta["countries"]) == {"GB", "US"}
    gb = meta["countries"]["GB"]
    assert (
        gb["currency"] == "GBP" and gb["fx_lcu_per_usd"] > 0 and gb["ppp_lcu_per_intl_dollar"] > 0
    )
    assert {"to_usd", "to_intl", "threshold_price"} <= set(meta["conventions"])
    assert any(k.endswith("GB.csv") for k in meta["input_sha256"])
    # an existing folder is refused without --force, before any model run
    assert main(["compare", "--countries", "GB", "--inputs", str(INPUTS), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_cli_unknown_country(capsys):
    assert (
        main(["compare", "--countries", "GB,XX", "--inputs", str(INPUTS), "--out", "unused"]) == 2
    )
    err = capsys.readouterr().err
    assert "unknown country 'XX'" in err and len(err.strip().splitlines()) == 1


def test_cli_missing_price_names_country_file_and_item(tmp_path):
    inputs = tmp_path / "inputs"
    shutil.copytree(INPUTS, inputs)
    prices = inputs / "prices" / "GB.csv"
    lines = prices.read_text().splitlines(keepends=True)
    prices.write_text("".join(line for line in lines if not line.startswith("c_ivig_admin,")))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cea",
            "compare",
            "--inputs",
            str(inputs),
            "--countries",
            "GB",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "GB" in err and "prices/GB.csv" in err and "c_ivig_admin" in err
    assert not out.exists()
    assert not [
        p for p in tmp_path.iterdir() if p.name.startswith(".out")
    ]  # no temporary folder left


def test_docs_explain_every_column(regional):
    text = (REPO / "docs" / "regional.md").read_text()
    tables = (regional.regional, regional.strategies, regional.optimal, regional.thresholds)
    missing = sorted(
        {
            c
            for t in tables
            for c in t.columns
            if f"`{c}`" not in text and not c.startswith("price_slope_c_")
        }
    )
    assert not missing, missing

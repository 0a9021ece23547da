"""Tests for the PSA (parameters/sampling, analysis/psa, pipeline/psa, report/psa): draws (centres,
sample means, seeding, sharing across countries,
correlations), the full-model PSA (reproducibility, chunking, TECH-VER checks, seeded pin),
output files and the command line."""

from __future__ import annotations

import gzip
import io
import json
import math
import re
import shutil
import time
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from scipy import stats

from cea.analysis import psa as analysis_psa
from cea.cli import main
from cea.errors import CeaError
from cea.io.load import load_inputs
from cea.parameters import distributions as dist
from cea.parameters import sampling
from cea.parameters.table import build_parameter_table
from cea.pipeline import psa
from cea.pipeline.spool import OUTCOME_COLUMNS
from cea.report import psa as report_psa

INPUTS = Path(__file__).resolve().parents[1] / "inputs"
N_SAMPLE = 20_000
#: seeded pin (docs/conventions.md, seeded regression): GB, seed 1, PIN_DRAWS draws, default strategies
PIN_DRAWS = 200
PIN_RTOL = 1e-9


@pytest.fixture(scope="module")
def inputs():
    return load_inputs(INPUTS)


@pytest.fixture(scope="module")
def all_tables(inputs):
    return {c: build_parameter_table(inputs, c) for c in inputs.country_codes()}


@pytest.fixture(scope="module")
def all_draws(inputs, all_tables):
    return sampling.sample_draws(inputs, all_tables, N_SAMPLE, seed=1)


@pytest.fixture(scope="module")
def gb_psa(inputs):
    """The GB PSA of the seeded pin (full model, default strategies and horizon)."""
    return psa.run_psa(inputs, "GB", n_draws=PIN_DRAWS, seed=1)


# --------------------------------------------------------------------------- draws


def test_every_distribution_centre_is_the_value(all_tables):
    for code, pt in all_tables.items():
        for name in pt.names:
            d = pt.distribution(name)
            assert d.centre() == pytest.approx(
                float(pt.df.loc[name, "value"]), rel=1e-6, abs=1e-12
            ), (code, name)


def sample_mean_z(pt, draws) -> dict[str, float]:
    """(sample mean - value) / SE for every uncertain row; lognormal rows, whose value is the
    median, on the log scale. Fixed rows must equal their value exactly."""
    out = {}
    for name in pt.names:
        d, x = pt.distribution(name), draws[name].to_numpy()
        value = float(pt.df.loc[name, "value"])
        if isinstance(d, dist.Fixed):
            assert np.all(x == value), name
            continue
        if isinstance(d, dist.LogNormal):
            x, value = np.log(x), math.log(value)
        out[name] = (x.mean() - value) / (x.std(ddof=1) / math.sqrt(len(x)))
    return out


def test_sample_means_within_three_standard_errors(all_tables, all_draws):
    z = sample_mean_z(all_tables["GB"], all_draws["GB"])
    assert len(z) > 30
    bad = {k: v for k, v in z.items() if abs(v) > 3}
    assert not bad, bad


def test_sample_means_every_country_family_wise(all_tables, all_draws):
    # ~600 rows over 14 countries: at 3 SE about 1.6 would fail by chance, so use the
    # Bonferroni bound for a family-wise error of 0.1% (|z| < 5.0)
    z = {
        (c, k): v
        for c, pt in all_tables.items()
        for k, v in sample_mean_z(pt, all_draws[c]).items()
    }
    bound = stats.norm.ppf(1 - 0.001 / (2 * len(z)))
    bad = {k: v for k, v in z.items() if abs(v) > bound}
    assert not bad, (bound, bad)


def test_clinical_draws_shared_and_prices_per_country(inputs, all_tables, all_draws):
    gb = all_draws["GB"]
    clinical = sampling.clinical_parameters(all_tables["GB"])
    prices = sampling.price_parameters(all_tables["GB"])
    assert "c_ivig_per_g" in prices and "hr_igrt_severe" in clinical
    for code, draws in all_draws.items():
        for name in clinical:
            d_gb, d_c = all_tables["GB"].distribution(name), all_tables[code].distribution(name)
            if d_gb == d_c:
                np.testing.assert_array_equal(draws[name], gb[name], err_msg=f"{code} {name}")
    # a country override (body weight 58 kg in JP) is the country's own fixed value
    assert (all_draws["JP"]["q_body_weight_kg"] == 58).all() and (
        gb["q_body_weight_kg"] == 69
    ).all()
    # prices come from independent streams: GB and US IVIG price draws are uncorrelated
    rho = stats.spearmanr(all_draws["GB"]["c_ivig_per_g"], all_draws["US"]["c_ivig_per_g"])[0]
    assert abs(rho) < 4 / math.sqrt(N_SAMPLE)


def test_a_country_draws_do_not_depend_on_the_other_countries(inputs, all_tables, all_draws):
    alone = sampling.sample_draws(inputs, {"US": all_tables["US"]}, N_SAMPLE, seed=1)["US"]
    pd.testing.assert_frame_equal(alone, all_draws["US"], check_exact=True)
    reordered = sampling.sample_draws(
        inputs, {"ZA": all_tables["ZA"], "US": all_tables["US"]}, N_SAMPLE, seed=1
    )
    pd.testing.assert_frame_equal(reordered["US"], all_draws["US"], check_exact=True)
    other_seed = sampling.sample_draws(inputs, {"US": all_tables["US"]}, N_SAMPLE, seed=2)["US"]
    assert not np.array_equal(other_seed["c_ivig_per_g"], alone["c_ivig_per_g"])
    assert not np.array_equal(other_seed["hr_igrt_severe"], alone["hr_igrt_severe"])


def test_seed_streams_are_keyed_by_country_code():
    assert sampling.country_key("GB") == 0x4742
    assert sampling.price_seed(1, "GB").spawn_key == (sampling.PRICE_STREAM, 0x4742)
    assert sampling.clinical_seed(1).spawn_key == (sampling.CLINICAL_STREAM,)
    with pytest.raises(CeaError):
        sampling.clinical_seed(-1)


def copy_inputs(tmp_path: Path) -> Path:
    dst = tmp_path / "inputs"
    shutil.copytree(INPUTS, dst)
    return dst


def test_uncertain_country_override_keeps_common_random_numbers(tmp_path):
    # a country override of an uncertain parameter: the country's draws are its own
    # distribution's quantiles of the shared uniforms (same ranks, centre = new value)
    root = copy_inputs(tmp_path)
    ov = pd.read_csv(root / "country_overrides.csv")
    row = ov.iloc[0].copy()
    row["country"], row["parameter"], row["value"] = "US", "p_igg_low_ever", 0.8
    pd.concat([ov, row.to_frame().T]).to_csv(root / "country_overrides.csv", index=False)
    inputs = load_inputs(root)
    tables = {c: build_parameter_table(inputs, c) for c in ("GB", "US")}
    draws = sampling.sample_draws(inputs, tables, N_SAMPLE, seed=4)
    gb, us = draws["GB"]["p_igg_low_ever"], draws["US"]["p_igg_low_ever"]
    assert stats.spearmanr(gb, us)[0] == pytest.approx(1.0, abs=1e-9)
    se = us.std() / math.sqrt(N_SAMPLE)
    assert abs(us.mean() - 0.8) < 3 * se and abs(gb.mean() - 0.709) < 3 * se


def test_correlations_from_the_inputs_table(tmp_path):
    root = copy_inputs(tmp_path)
    pd.DataFrame(
        {
            "parameter_a": ["u_on_bsab"],
            "parameter_b": ["u_off_bsab"],
            "correlation": [0.6],
            "source": ["test"],
            "evidence": ["E"],
        }
    ).to_csv(root / "correlations.csv", index=False)
    inputs = load_inputs(root)
    tables = {"GB": build_parameter_table(inputs, "GB")}
    d = sampling.sample_draws(inputs, tables, N_SAMPLE, seed=1)["GB"]
    # Gaussian copula: Spearman = (6 / pi) asin(rho / 2)
    want = 6 / math.pi * math.asin(0.3)
    assert stats.spearmanr(d["u_on_bsab"], d["u_off_bsab"])[0] == pytest.approx(want, abs=0.02)
    # the centre is unchanged by the copula
    se = d["u_on_bsab"].std() / math.sqrt(N_SAMPLE)
    assert abs(d["u_on_bsab"].mean() - 0.72) < 3 * se


@pytest.mark.parametrize(
    "rows, match",
    [
        (
            [
                ("u_on_bsab", "u_off_bsab", 0.9),
                ("u_on_bsab", "q_qaly_loss_severe", 0.9),
                ("u_off_bsab", "q_qaly_loss_severe", -0.9),
            ],
            "positive definite",
        ),
        ([("u_on_bsab", "u_off_bsab", 0.5), ("u_off_bsab", "u_on_bsab", 0.5)], "listed twice"),
        ([("u_on_bsab", "u_on_bsab", 0.5)], "itself"),
    ],
)
def test_bad_correlation_tables_are_refused(tmp_path, rows, match):
    root = copy_inputs(tmp_path)
    pd.DataFrame(rows, columns=["parameter_a", "parameter_b", "correlation"]).to_csv(
        root / "correlations.csv", index=False
    )
    inputs = load_inputs(root)
    with pytest.raises(CeaError, match=match):
        sampling.sample_draws(inputs, {"GB": build_parameter_table(inputs, "GB")}, 100, seed=1)


def test_too_few_draws_is_a_user_error(inputs):
    with pytest.raises(CeaError, match="draws"):
        sampling.sample_draws(inputs, {"GB": build_parameter_table(inputs, "GB")}, 1, seed=1)


# --------------------------------------------------------------------------- the full-model PSA


def test_ceac_sums_to_one_at_every_wtp(gb_psa):
    ceac = gb_psa.countries["GB"].tables.ceac
    sums = ceac.groupby("wtp")["probability"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, rtol=0, atol=1e-12)
    # the CEAF has exactly one strategy at every wtp
    assert (ceac.groupby("wtp")["on_ceaf"].sum() == 1).all()


def test_evpi_nonnegative_and_evppi_table_consistent(gb_psa):
    t = gb_psa.countries["GB"].tables
    assert (t.evpi["evpi_per_patient"] >= 0).all()
    at_wtp = float(t.evpi.loc[t.evpi["wtp"] == t.headline["wtp"], "evpi_per_patient"].iloc[0])
    ok = t.evppi[t.evppi["status"].str.startswith("ok")]
    # no group is ever reported above the EVPI: an estimate above it is capped and says so
    assert (ok["evppi_per_patient"] <= at_wtp).all()
    assert (ok["se_per_patient"] >= 0).all()
    capped = ok["estimate_per_patient"] > ok["evppi_per_patient"]
    assert (ok.loc[capped, "status"] == "ok; capped at the EVPI").all()
    # a group either is told apart from 0 (more than 2 SE above it) or is not, with draws needed
    # when its SE is positive
    apart = ok["distinguishable_from_zero"].astype(bool)
    assert (ok.loc[apart, "evppi_per_patient"] > 2 * ok.loc[apart, "se_per_patient"]).all()
    unknown = ~apart & (ok["se_per_patient"] > 0)
    assert ok.loc[unknown, "draws_needed"].notna().all()
    refused = t.evppi[t.evppi["status"].str.startswith("refused")]
    assert refused["evppi_per_patient"].isna().all()
    # population EVPI = per patient x the discounted population over the decision horizon
    c = gb_psa.countries["GB"].ptable.country
    g = c.population_growth_annual  # the eligible population grows as in the budget impact
    assert g == 0.02
    mult = sum(
        c.population_eligible_annual * (1 + g) ** t * (1 + c.discount_rate_costs) ** -t
        for t in range(5)
    )
    np.testing.assert_allclose(
        t.evpi["evpi_population"], t.evpi["evpi_per_patient"] * mult, rtol=1e-12
    )
    np.testing.assert_allclose(
        t.evppi["se_population"], t.evppi["se_per_patient"] * mult, rtol=1e-12
    )


def test_all_parameters_is_the_evpi_and_the_summary_says_so(gb_psa):
    # EVPPI(all parameters) = EVPI by definition (the model is deterministic given its
    # parameters): reported as the EVPI itself at every WTP, not estimated by regression
    c = gb_psa.countries["GB"]
    t = c.tables
    all_row = t.evppi.set_index("group").loc[analysis_psa.ALL_PARAMETERS]
    at_wtp = float(t.evpi.loc[t.evpi["wtp"] == t.headline["wtp"], "evpi_per_patient"].iloc[0])
    assert all_row["evppi_per_patient"] == at_wtp and all_row["method"] == "evpi"
    curve = t.evppi_by_wtp[t.evppi_by_wtp["group"] == analysis_psa.ALL_PARAMETERS]
    np.testing.assert_array_equal(curve["evppi_per_patient"], t.evpi["evpi_per_patient"])
    text = report_psa.summary_text(c)
    assert "= the EVPI, by definition" in text
    assert "regression error" not in text and "exceeds EVPI" not in text


def test_evppi_words_for_the_payer():
    def row(**kw):
        base = {"status": "ok", "method": "gp", "evppi_per_patient": 0.0, "se_per_patient": 0.0,
                "share_of_evpi": 0.0, "distinguishable_from_zero": False,
                "draws_needed": pd.NA, "draws_needed_evppi_per_patient": float("nan"),
                "estimate_per_patient": 0.0}  # fmt: skip
        return pd.Series({**base, **kw})

    words = report_psa.evppi_words
    told = row(evppi_per_patient=14.0, se_per_patient=5.0, share_of_evpi=0.56,
               distinguishable_from_zero=True, estimate_per_patient=14.0)  # fmt: skip
    assert words(told, "GBP", 10_000) == "GBP        14 +- 5  (56% of EVPI)"
    unsure = row(evppi_per_patient=3.0, se_per_patient=5.0, share_of_evpi=0.12,
                 draws_needed=112_000, draws_needed_evppi_per_patient=3.0)  # fmt: skip
    assert words(unsure, "GBP", 10_000).endswith(
        "cannot be told apart from 0 at 10,000 draws; about 112,000 draws would tell an EVPPI "
        "of GBP 3 from 0"
    )
    assert "never favours another strategy" in words(row(), "GBP", 10_000)
    capped = row(evppi_per_patient=25.0, se_per_patient=6.0, share_of_evpi=1.0,
                 status="ok; capped at the EVPI", estimate_per_patient=31.0)  # fmt: skip
    text = words(capped, "GBP", 10_000)
    assert "the regression gave GBP 31 +- 6, above the EVPI" in text and "capped" in text
    assert words(row(status="refused: 9 parameters need at least 101 draws, have 100"), "GBP",
                 100).startswith("refused")  # fmt: skip


def test_psa_mean_close_to_deterministic(gb_psa):
    # TECH-VER: the PSA mean is near the deterministic result (non-linearity and lognormal
    # medians make them differ a little; the summary reports the difference)
    s = gb_psa.countries["GB"].tables.summary
    rows = s[(s["kind"] == "strategy") & s["measure"].isin(["cost", "qaly", "ly"])]
    assert rows["relative_difference"].abs().max() < 0.05
    np.testing.assert_allclose(
        rows["psa_minus_deterministic"], rows["psa_mean"] - rows["deterministic"], rtol=1e-12
    )


def test_summary_intervals_contain_means(gb_psa):
    s = gb_psa.countries["GB"].tables.summary
    iv = s.dropna(subset=["interval_low"])
    assert ((iv["interval_low"] <= iv["psa_mean"]) & (iv["psa_mean"] <= iv["interval_high"])).all()


def test_seeded_regression_pin(gb_psa):
    """Mean costs and QALYs of the GB PSA, seed 1, 200 draws (docs/conventions.md: change only in a
    commit that says why)."""
    out = gb_psa.countries["GB"].run.outcomes
    means = out.groupby("strategy", sort=False)[["cost", "qaly"]].mean()
    for s, (cost, qaly) in PIN.items():
        assert means.loc[s, "cost"] == pytest.approx(cost, rel=PIN_RTOL), s
        assert means.loc[s, "qaly"] == pytest.approx(qaly, rel=PIN_RTOL), s


#: pinned from run_psa(INPUTS, "GB", n_draws=200, seed=1) with the model of 2f6df6a
PIN = {
    "none": (410368.6359480764, 1.3792862359172715),
    "preemptive_ivig": (440667.08312506846, 1.4352394188344726),
    "preemptive_scig": (436912.63242490427, 1.4353375088122728),
    "primary_ivig": (459543.1044920742, 1.4615613378609837),
    "primary_scig": (452907.7354521305, 1.4617629203447993),
}


def test_rerun_is_bit_identical(inputs, gb_psa):
    again = psa.run_psa(inputs, "GB", n_draws=PIN_DRAWS, seed=1)
    a, b = gb_psa.countries["GB"], again.countries["GB"]
    pd.testing.assert_frame_equal(a.draws, b.draws, check_exact=True)
    pd.testing.assert_frame_equal(a.run.outcomes, b.run.outcomes, check_exact=True)
    pd.testing.assert_frame_equal(a.tables.evppi, b.tables.evppi, check_exact=True)


def test_results_do_not_depend_on_chunk_size(inputs, gb_psa):
    small = psa.run_psa(inputs, "GB", n_draws=PIN_DRAWS, seed=1, chunk_draws=37)
    a, b = gb_psa.countries["GB"], small.countries["GB"]
    pd.testing.assert_frame_equal(a.draws, b.draws, check_exact=True)
    num = [c for c in a.run.outcomes.columns if c not in ("draw", "strategy")]
    assert (
        (a.run.outcomes[["draw", "strategy"]] == b.run.outcomes[["draw", "strategy"]]).all().all()
    )
    # each draw's calibration stops on its own: identical whatever draws share a call
    pd.testing.assert_frame_equal(a.run.calibrated, b.run.calibrated, check_exact=True)
    # NumPy's matrix products may sum in another order for another number of draws (~1e-15)
    np.testing.assert_allclose(
        b.run.outcomes[num].to_numpy(), a.run.outcomes[num].to_numpy(), rtol=1e-13, atol=1e-13
    )


def test_results_do_not_depend_on_the_number_of_threads(inputs):
    # the same chunks run one at a time or three at a time (the compiled kernel in several
    # threads at once): identical results, in the same order
    kw = dict(n_draws=120, seed=4, chunk_draws=23)
    one = psa.run_psa(inputs, "GB", workers=1, **kw).countries["GB"]
    three = psa.run_psa(inputs, "GB", workers=3, **kw).countries["GB"]
    pd.testing.assert_frame_equal(one.run.outcomes, three.run.outcomes, check_exact=True)
    pd.testing.assert_frame_equal(one.run.calibrated, three.run.calibrated, check_exact=True)
    np.testing.assert_array_equal(one.run.cost, three.run.cost)


def test_a_chunk_with_a_non_finite_outcome_is_refused_naming_draw_and_strategy():
    block = np.ones((2, 3, len(OUTCOME_COLUMNS)))
    block[1, 2, OUTCOME_COLUMNS.index("qaly")] = np.nan
    with pytest.raises(CeaError, match=r"qaly is nan at draw 12, strategy 'b'"):
        psa._check_block(block, ["a", "b"], np.array([10, 11, 12]))
    with pytest.raises(CeaError, match="shape"):
        psa._check_block(block[:, :2], ["a", "b"], np.array([10, 11, 12]))


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_bad_number_of_threads_is_refused(inputs, workers):
    with pytest.raises(CeaError, match="workers must be a whole number >= 1"):
        psa.run_psa(inputs, "GB", n_draws=50, seed=1, workers=workers)


def test_both_backends_give_the_same_psa(inputs):
    # the compiled backend (the PSA's default) and the NumPy backend: the same draws give the
    # same outcomes, calibrated rates and tables to rounding
    kw = dict(n_draws=300, seed=2, strategies=["none", "preemptive_scig"])
    fast = psa.run_psa(inputs, "GB", backend="numba", **kw).countries["GB"]
    ref = psa.run_psa(inputs, "GB", backend="numpy", **kw).countries["GB"]
    num = ref.run.outcomes.select_dtypes("number").columns
    np.testing.assert_allclose(
        fast.run.outcomes[num].to_numpy(), ref.run.outcomes[num].to_numpy(), rtol=1e-11, atol=1e-12
    )
    pd.testing.assert_frame_equal(fast.run.calibrated, ref.run.calibrated, rtol=1e-11)
    for name in ("summary", "evpi", "ceac"):
        pd.testing.assert_frame_equal(
            getattr(fast.tables, name), getattr(ref.tables, name), rtol=1e-9, atol=1e-9
        )


def test_a_country_gets_the_same_results_alone_or_with_others(inputs):
    alone = psa.run_psa(inputs, "US", n_draws=30, seed=5, strategies=["none", "primary_ivig"])
    both = psa.run_psa(
        inputs, ["GB", "US"], n_draws=30, seed=5, strategies=["none", "primary_ivig"]
    )
    pd.testing.assert_frame_equal(
        alone.countries["US"].draws, both.countries["US"].draws, check_exact=True
    )
    pd.testing.assert_frame_equal(
        alone.countries["US"].run.outcomes, both.countries["US"].run.outcomes, check_exact=True
    )
    regional = psa.regional_table(both)
    assert list(regional["country"]) == ["GB", "US"]


def test_progress_only_when_enabled():
    buf = io.StringIO()
    bar = psa.Progress(10, enabled=True, stream=buf)
    bar.update(5, "GB")
    bar.close()
    assert "5/10" in buf.getvalue()
    quiet = io.StringIO()
    bar = psa.Progress(10, enabled=None, stream=quiet)  # a StringIO is not a terminal
    bar.update(10)
    bar.close()
    assert quiet.getvalue() == ""


def test_wtp_grid_contains_thresholds():
    g = analysis_psa.wtp_grid(20000, (30000, 51000), icers=(500000.0, float("nan")))
    assert 20000 in g and 30000 in g and 51000 in g and g[0] == 0
    assert g[-1] == pytest.approx(750000.0) and np.all(np.diff(g) > 0)
    with pytest.raises(CeaError):
        analysis_psa.wtp_grid(0, ())


# --------------------------------------------------------------------------- outputs and CLI


def test_convergence_figure_draws_log_spaced_points_with_both_ends():
    from cea.report.plots.psa import CONVERGENCE_MAX_POINTS, _log_thinned

    g = pd.DataFrame({"n_draws": np.arange(1, 20_001), "mean": np.zeros(20_000)})
    n = _log_thinned(g)["n_draws"].to_numpy()
    assert n[0] == 1 and n[-1] == 20_000 and len(n) <= CONVERGENCE_MAX_POINTS
    assert np.all(np.diff(n) > 0)
    # evenly spaced on the log axis where rounding to whole draws no longer matters
    step = np.diff(np.log(n[n > 2000]))
    assert step.max() / step.min() < 1.1 and step.mean() == pytest.approx(
        np.log(20_000) / (CONVERGENCE_MAX_POINTS - 1), rel=0.05
    )
    short = g.iloc[:50]
    assert _log_thinned(short) is short


def test_compressed_csv_has_reproducible_bytes(tmp_path):
    # the per-draw files are gzip with no timestamp in the header: the same table gives the same
    # bytes at any time
    df = pd.DataFrame({"draw": [0, 1], "x": [0.1, np.nan]})
    report_psa.write_csv_gz([df], tmp_path / "a.csv.gz")
    raw = (tmp_path / "a.csv.gz").read_bytes()
    assert raw[4:8] == b"\x00\x00\x00\x00"  # MTIME field of the gzip header (RFC 1952)
    assert gzip.decompress(raw).decode() == "draw,x\n0,0.1\n1,\n"


def test_several_countries_write_one_folder_each_with_the_files_of_a_single_run(tmp_path):
    # several countries are written one after the other; each country's
    # folder holds the files a run of that country alone writes, byte for byte
    argv = ["psa", "--draws", "30", "--seed", "4"]
    assert main([*argv, "--countries", "GB,US", "--out", str(tmp_path / "both")]) == 0
    assert main([*argv, "--country", "US", "--out", str(tmp_path / "us")]) == 0
    both = tmp_path / "both"
    assert pd.read_csv(both / "countries.csv")["country"].tolist() == ["GB", "US"]
    assert json.loads((both / "run.json").read_text())["countries"] == ["GB", "US"]
    for name in ("outcomes.parquet", "draws.parquet", "summary.csv", "evppi.csv"):
        assert (both / "US" / name).read_bytes() == (tmp_path / "us" / name).read_bytes(), name
        assert (both / "GB" / name).is_file()
    for fig in ("ce_plane", "ceac", "evpi", "evppi", "convergence"):
        assert (both / "GB" / "figures" / f"{fig}.png").stat().st_size > 10_000
        assert (both / "US" / "figures" / f"{fig}.png").stat().st_size > 10_000
    for fig in ("countries_p_ce", "countries_ceac"):  # the figures that compare countries
        assert (both / "figures" / f"{fig}.png").stat().st_size > 10_000
        assert (both / "figures" / f"{fig}.svg").is_file()


def test_cli_writes_every_output(tmp_path, capsys):
    out = tmp_path / "psa_gb"
    argv = ["psa", "--country", "GB", "--draws", "40", "--seed", "3", "--out", str(out)]
    t0 = time.perf_counter()
    assert main(argv) == 0
    took = time.perf_counter() - t0
    printed = capsys.readouterr().out
    assert "EVPI per patient" in printed and "PSA-det" in printed
    # the printed total is the process's wall time, the writing of every file included (here
    # the test process's: at least this command's)
    total = float(re.search(r"total ([0-9.]+) s \(the command's wall time", printed).group(1))
    assert total >= round(took, 1) - 0.1
    for f in (
        "draws.parquet",
        "outcomes.parquet",
        "summary.csv",
        "ceac.csv",
        "evpi.csv",
        "evppi.csv",
        "evppi_by_wtp.csv",
        "convergence.csv",
        "incremental_means.csv",
        "parameters.csv",
        "run.json",
        "figures/ce_plane.png",
        "figures/ceac.png",
        "figures/evpi.png",
        "figures/evppi.png",
        "figures/convergence.png",
        *(f"figures/{name}.svg" for name in ("ce_plane", "ceac", "evpi", "evppi", "convergence")),
    ):
        assert (out / f).is_file(), f
    meta = json.loads((out / "run.json").read_text())
    assert meta["seed"] == 3 and meta["psa"]["n_draws"] == 40
    assert meta["psa"]["decision_horizon_years"] == analysis_psa.DEFAULT_DECISION_HORIZON_YEARS
    assert "git_commit" in meta and meta["input_sha256"] and "conventions" in meta
    draws = pd.read_parquet(out / "draws.parquet")
    outcomes = pd.read_parquet(out / "outcomes.parquet")
    assert len(draws) == 40 and len(outcomes) == 40 * 5
    assert "calibrated_r_severe_on_bsab_per_year" in draws.columns
    assert not list(out.glob("*.csv.gz"))
    # the written per-draw numbers are exact (float64 kept as it is)
    again = psa.run_psa(INPUTS, "GB", n_draws=40, seed=3).countries["GB"]
    pd.testing.assert_frame_equal(outcomes, again.run.outcomes.reset_index(drop=True))
    np.testing.assert_array_equal(draws[again.draws.columns].to_numpy(), again.draws.to_numpy())
    assert draws["draw"].tolist() == list(range(40))
    # an existing folder is refused without --force: exit code 2, nothing changed
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err


def test_per_draw_csv_holds_the_same_table_as_parquet(tmp_path):
    # --per-draw csv writes outcomes.csv.gz and draws.csv.gz instead, with the same table
    # (columns, order, every number to the last bit through the shortest repr)
    argv = ["psa", "--country", "GB", "--draws", "25", "--seed", "5"]
    assert main([*argv, "--out", str(tmp_path / "pq")]) == 0
    assert main([*argv, "--per-draw", "csv", "--out", str(tmp_path / "csv")]) == 0
    assert not list((tmp_path / "csv").glob("*.parquet"))
    for name in ("outcomes", "draws"):
        from_csv = pd.read_csv(tmp_path / "csv" / f"{name}.csv.gz")
        from_parquet = pd.read_parquet(tmp_path / "pq" / f"{name}.parquet")
        pd.testing.assert_frame_equal(from_csv, from_parquet, check_dtype=False, rtol=0, atol=0)
        assert len(from_csv) == (25 * 5 if name == "outcomes" else 25)
    assert (tmp_path / "csv" / "summary.csv").read_bytes() == (
        tmp_path / "pq" / "summary.csv"
    ).read_bytes()


def test_cli_rejects_country_and_countries(capsys):
    assert main(["psa", "--country", "GB", "--countries", "all", "--draws", "10"]) == 2
    assert "not both" in capsys.readouterr().err


def test_per_draw_arrays_and_means_equal_the_long_table(gb_psa):
    # the PSA keeps only (D, K) cost, QALYs and LYs in memory (the long table is on disk): they
    # are the long table's columns, and the means of the strategies are its groupby means to
    # the last bit (the ICER of means, a small difference of large numbers, depends on it)
    c = gb_psa.countries["GB"]
    out, names = c.run.outcomes, c.spec.strategy_names
    for col in ("cost", "qaly", "ly"):
        np.testing.assert_array_equal(getattr(c.run, col), analysis_psa.per_draw(out, names, col))
    means = out.groupby("strategy", sort=False)[["cost", "qaly", "ly"]].mean()
    inc = c.tables.incremental_means.set_index("strategy")
    for s in names:
        assert (inc.loc[s, "cost"], inc.loc[s, "effect"]) == tuple(means.loc[s, ["cost", "qaly"]])
    np.testing.assert_array_equal(
        c.run.per_draw("cost_bsab"), analysis_psa.per_draw(out, names, "cost_bsab")
    )
    assert list(out.columns) == ["draw", "strategy", *OUTCOME_COLUMNS]
    assert list(pd.unique(out["strategy"])) == names


def test_analysis_without_evppi_leaves_its_tables_empty_and_the_rest_unchanged(gb_psa):
    c = gb_psa.countries["GB"]
    args = (c.run.cost, c.run.qaly, c.run.ly, c.draws, c.ptable, c.spec.strategy_names,
            c.base.outcomes, psa.comparisons_from_settings(c.ptable.settings, c.spec))  # fmt: skip
    without = analysis_psa.analyse(*args, evppi=False)
    full = c.tables
    assert without.evppi.empty and without.evppi_by_wtp.empty
    assert list(without.evppi.columns) == list(full.evppi.columns)
    assert list(without.evppi_by_wtp.columns) == list(full.evppi_by_wtp.columns)
    assert without.headline["evppi_per_patient"] == {}
    assert without.headline["evppi_se_per_patient"] == {}
    for name in ("summary", "incremental_means", "ceac", "evpi", "convergence", "ce_plane"):
        pd.testing.assert_frame_equal(getattr(without, name), getattr(full, name), check_exact=True)
    assert without.headline["evpi_per_patient"] == full.headline["evpi_per_patient"]
    run = psa.run_psa(INPUTS, "GB", n_draws=40, seed=2, evppi=False)
    assert run.countries["GB"].tables.evppi.empty


def test_analysis_does_not_depend_on_blocks_or_threads(gb_psa, monkeypatch):
    # blocks of 64 draws (4 blocks of the 200) in 1 or 3 threads: the same tables, bit for bit
    # whatever the threads; against one block, the same to rounding. The value of information
    # is a small difference of large means (net benefits up to 1e6 at the top of the WTP grid),
    # so summing in other blocks moves it by the rounding of those means, which can be a large
    # part of a value near 0: the bound is relative to the column's largest value (1e-12 of it,
    # an empirical bound; the differences measured are about 2e-14 of it)
    c = gb_psa.countries["GB"]
    args = (c.run.cost, c.run.qaly, c.run.ly, c.draws, c.ptable, c.spec.strategy_names,
            c.base.outcomes, psa.comparisons_from_settings(c.ptable.settings, c.spec))  # fmt: skip
    monkeypatch.setattr(analysis_psa.voi, "DRAW_BLOCK", 64)
    one = analysis_psa.analyse(*args, workers=1)
    three = analysis_psa.analyse(*args, workers=3)
    for name in ("summary", "ceac", "evpi", "evppi", "evppi_by_wtp", "convergence", "ce_plane"):
        pd.testing.assert_frame_equal(getattr(one, name), getattr(three, name), check_exact=True)
        got, want = getattr(one, name), getattr(c.tables, name)
        if name in ("summary", "ceac", "convergence", "ce_plane"):
            pd.testing.assert_frame_equal(got, want, check_exact=True)
            continue
        pd.testing.assert_index_equal(got.columns, want.columns)
        pd.testing.assert_index_equal(got.index, want.index)
        for col in want.columns:
            g, w = got[col], want[col]
            if not pd.api.types.is_float_dtype(w):
                pd.testing.assert_series_equal(g, w)
                continue
            assert (g.isna() == w.isna()).all(), col
            if w.notna().any():
                scale = np.nanmax(np.abs(w.to_numpy()))
                np.testing.assert_allclose(g, w, rtol=0, atol=1e-12 * scale, err_msg=col)


def test_draws_are_the_numbers_of_the_shared_frame_held_once(inputs):
    # the draws as they were made before they went straight into one array: the clinical
    # stream as a DataFrame of sample_many, a country's columns mapped from it, then its prices
    codes = ["GB", "US", "DE"]
    tables = {c: build_parameter_table(inputs, c) for c in codes}
    got = sampling.sample_draws(inputs, tables, 500, seed=3)
    ref = sampling.reference_table(inputs, table_scenario := sampling.Scenario(), codes[0])
    ref_dists = {n: ref.distribution(n) for n in sampling.clinical_parameters(ref)}
    rng = np.random.Generator(np.random.PCG64(sampling.clinical_seed(3)))
    shared = dist.sample_many(ref_dists, 500, rng, sampling.correlation_matrix(inputs))
    assert table_scenario == sampling.Scenario()
    for code, pt in tables.items():
        cols = {}
        for n in sampling.clinical_parameters(pt):
            d_c, d_ref = pt.distribution(n), ref_dists[n]
            x = shared[n].to_numpy()
            if d_c == d_ref:
                cols[n] = x
            elif isinstance(d_c, dist.Fixed):
                cols[n] = np.full(500, float(d_c.value))
            else:
                cols[n] = d_c.ppf(np.clip(sampling._cdf(d_ref, x), 0.0, 1.0))
        prices = sampling.price_parameters(pt)
        rng = np.random.Generator(np.random.PCG64(sampling.price_seed(3, code)))
        cols.update(dist.sample_many({n: pt.distribution(n) for n in prices}, 500, rng))
        want = pd.DataFrame({n: np.asarray(cols[n]) for n in pt.names},
                            index=pd.RangeIndex(500, name="draw"))  # fmt: skip
        pd.testing.assert_frame_equal(got[code], want, check_exact=True)
        # the uncertain columns are views of one column-major array, the fixed ones take no
        # memory (stride 0, read-only)
        varying = [n for n in pt.names if not isinstance(pt.distribution(n), dist.Fixed)]
        fixed = [n for n in pt.names if n not in varying]
        assert len(varying) > 10 and len(fixed) > 5
        held = got[code][varying[0]].to_numpy()
        while held.base is not None:
            held = held.base
        assert held.flags.f_contiguous and held.shape == (500, len(varying))
        for n in varying:
            x = got[code][n].to_numpy()
            assert x.strides == (8,) and np.shares_memory(x, held)
        for n in fixed:
            x = got[code][n].to_numpy()
            assert x.strides == (0,) and not x.flags.writeable
    alone = sampling.sample_draws(inputs, {"US": tables["US"]}, 500, seed=3)["US"]
    pd.testing.assert_frame_equal(alone, got["US"], check_exact=True)


def test_no_evppi_leaves_out_only_the_evppi(tmp_path, capsys):
    # --no-evppi: no EVPPI file, figure or summary lines, run.json says so, and every other
    # table is byte for byte the one a run with the EVPPI writes
    argv = ["psa", "--country", "GB", "--draws", "30", "--seed", "2"]
    assert main([*argv, "--out", str(tmp_path / "with")]) == 0
    capsys.readouterr()
    assert main([*argv, "--no-evppi", "--out", str(tmp_path / "without")]) == 0
    printed = capsys.readouterr().out
    assert "EVPPI: not computed in this run (--no-evppi)." in printed
    assert "EVPPI per patient by parameter group" not in printed
    with_, without = tmp_path / "with", tmp_path / "without"
    assert {p.name for p in with_.glob("*.csv")} - {p.name for p in without.glob("*.csv")} == {
        "evppi.csv",
        "evppi_by_wtp.csv",
    }
    for p in without.glob("*.csv"):
        assert p.read_bytes() == (with_ / p.name).read_bytes(), p.name
    assert not (without / "figures" / "evppi.png").exists()
    assert (without / "figures" / "ceac.png").is_file()
    meta = json.loads((without / "run.json").read_text())
    assert meta["psa"]["evppi_method"] == "not computed (--no-evppi)"
    assert "Gaussian-process" in json.loads((with_ / "run.json").read_text())["psa"]["evppi_method"]


def test_ce_plane_holds_the_first_draws_and_its_figure_the_means_of_all(monkeypatch, tmp_path):
    # the CE-plane table keeps the first CE_PLANE_DRAWS draws (here 12 of 40), each strategy
    # minus the first; the figure's large markers are the means of all 40 draws
    from cea.report.plots.psa import plot_all

    monkeypatch.setattr(analysis_psa, "CE_PLANE_DRAWS", 12)
    c = psa.run_psa(INPUTS, "GB", n_draws=40, seed=6, evppi=False).countries["GB"]
    plane, names = c.tables.ce_plane, list(c.spec.strategy_names)
    assert len(plane) == 12 * (len(names) - 1)
    for k, s in enumerate(names[1:], start=1):
        rows = plane[plane["strategy"] == s]
        assert rows["draw"].tolist() == list(range(12))
        np.testing.assert_array_equal(rows["inc_cost"], c.run.cost[:12, k] - c.run.cost[:12, 0])
        np.testing.assert_array_equal(rows["inc_qaly"], c.run.qaly[:12, k] - c.run.qaly[:12, 0])
    labels = {s.strategy: s.label for s in c.spec.strategies}
    fig = next(f for f in plot_all(c.tables, c.ptable.country, tmp_path, labels)
               if "Cost-effectiveness plane" in f.axes[0].get_title())  # fmt: skip
    assert "12 of 40 draws shown" in fig.axes[0].get_title()
    # the workbook's CE-plane sheet says which draws it holds
    from cea.report.workbook import write_report

    write_report(c.base, tmp_path / "report.xlsx", "test", psa=c.tables)
    note = openpyxl.load_workbook(tmp_path / "report.xlsx")["psa_ce_plane"]["A2"].value
    assert note.startswith("12 draws a series: the PSA's first (at most 12)")
    markers = {
        col.get_label(): col.get_offsets()[0]
        for col in fig.axes[0].collections
        if not col.get_label().startswith("_")
    }
    for k, s in enumerate(names[1:], start=1):
        want = [
            c.run.qaly[:, k].mean() - c.run.qaly[:, 0].mean(),
            c.run.cost[:, k].mean() - c.run.cost[:, 0].mean(),
        ]
        np.testing.assert_allclose(markers[labels[s]], want, rtol=1e-9)


def test_parquet_without_pyarrow_is_one_line_before_any_work(monkeypatch, capsys, tmp_path):
    # an installation without pyarrow: refused at once (exit 2, one line naming the way out),
    # and --per-draw csv still works
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a)
    )
    out = tmp_path / "psa"
    argv = ["psa", "--country", "GB", "--draws", "20", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pyarrow" in err and "--per-draw csv" in err
    assert not out.exists()
    assert main([*argv, "--per-draw", "csv"]) == 0
    assert (out / "outcomes.csv.gz").is_file()

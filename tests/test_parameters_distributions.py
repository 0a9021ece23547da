"""Tests for cea/parameters/distributions.py: hand-computed fits, table rules, copula, Dirichlet."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from cea.errors import CeaError
from cea.parameters.distributions import (
    DIST_NAMES,
    Z_975,
    Beta,
    Dirichlet,
    Fixed,
    Gamma,
    LogNormal,
    Normal,
    Uniform,
    build,
    build_dirichlet,
    correlated_uniforms,
    percentile_range,
    sample_many,
)

EXACT = 1e-12
N_MC = 200_000


def scipy_frozen(d):
    """The same distribution written independently in scipy's parametrization."""
    if isinstance(d, Beta):
        return stats.beta(d.alpha, d.beta)
    if isinstance(d, Gamma):
        return stats.gamma(d.shape, scale=d.scale)
    if isinstance(d, LogNormal):
        return stats.lognorm(d.sigma, scale=math.exp(d.mu))
    if isinstance(d, Normal):
        return stats.norm(d.mu, d.sd)
    if isinstance(d, Uniform):
        return stats.uniform(d.low, d.high - d.low)
    raise TypeError(d)


# (description, row as passed to build, expected family); each value is the base case
ROWS = [
    ("beta se", dict(dist="beta", value=0.12, se=0.025), Beta),
    ("beta ci", dict(dist="beta", value=0.82, low=0.76, high=0.88), Beta),
    ("beta n", dict(dist="beta", value=117 / 165, n=165), Beta),
    ("gamma se", dict(dist="gamma", value=0.05, se=0.0175), Gamma),
    ("gamma ci", dict(dist="gamma", value=1250.0, low=900.0, high=1700.0), Gamma),
    ("lognormal ci", dict(dist="lognormal", value=0.90, low=0.75, high=1.08), LogNormal),
    ("lognormal se", dict(dist="lognormal", value=0.45, se=0.411), LogNormal),
    ("normal", dict(dist="normal", value=69.0, se=15.0), Normal),
    ("uniform", dict(dist="uniform", value=1.25, low=1.0, high=1.5), Uniform),
    ("fixed", dict(dist="fixed", value=28.0, low=20.0, high=35.0), Fixed),
]
ROW_IDS = [r[0] for r in ROWS]


# --------------------------------------------------------------------------- hand cases


def test_z_975_is_the_normal_quantile():
    assert Z_975 == stats.norm.ppf(0.975)


def test_beta_from_mean_se_recovers_counts():
    # Beta(117, 48): mean = 117/165 = 0.70909; var = 117*48 / (165**2 * 166) = 5616 / 4519350
    mean = 117 / 165
    se = math.sqrt(117 * 48 / (165**2 * 166))
    b = Beta.from_mean_se(mean, se)
    # common = mean(1-mean)/se**2 - 1 = (117*48/165**2) / (117*48/(165**2*166)) - 1 = 165
    assert b.alpha == pytest.approx(117, rel=EXACT)
    assert b.beta == pytest.approx(48, rel=EXACT)
    assert b.describe() == "Beta(alpha=117.0, beta=48.0)"


def test_gamma_from_mean_se_by_hand():
    # shape = (0.05/0.0175)**2 = 2.857142857**2 = 8.163265306; scale = 0.0175**2/0.05 = 0.006125
    g = Gamma.from_mean_se(0.05, 0.0175)
    assert g.shape == pytest.approx(400 / 49, rel=EXACT)
    assert g.scale == pytest.approx(0.006125, rel=EXACT)
    # docs/evidence.md 2.1 rounds this to Gamma(8.2, 0.0061)
    assert g.describe() == "Gamma(shape=8.16327, scale=0.006125)"


def test_lognormal_from_ci_by_hand():
    # HR 0.45 (0.20-1.00): mu = ln 0.45 = -0.79851; sigma = (ln 1 - ln 0.2)/3.919928 = 1.609438/3.919928
    d = LogNormal.from_ci(0.45, 0.20, 1.00)
    assert d.mu == pytest.approx(math.log(0.45), rel=EXACT)
    assert d.sigma == pytest.approx(math.log(5) / 3.919927969080108, rel=EXACT)
    # docs/evidence.md divides by 3.92 instead of 3.919928: sigma differs by 18 parts per million
    assert d.sigma == pytest.approx(math.log(5) / 3.92, rel=2e-5)
    assert d.centre() == pytest.approx(0.45, rel=EXACT)
    # mu is ln(value), not the midpoint of the logs (ln 0.2 + ln 1)/2 = ln 0.447
    assert d.mu != pytest.approx((math.log(0.2) + math.log(1.0)) / 2, rel=1e-3)


def test_normal_percentiles_by_hand():
    # 10 -/+ 1.959964 * 2 = 6.080072, 13.919928
    lo, hi = percentile_range(Normal(10, 2))
    assert lo == pytest.approx(10 - 3.919927969080108, rel=EXACT)
    assert hi == pytest.approx(10 + 3.919927969080108, rel=EXACT)


def test_percentile_range_other_quantiles_and_fixed():
    # Uniform(0, 4): 10% and 90% quantiles are 0.4 and 3.6
    assert percentile_range(Uniform(0, 4), 0.1, 0.9) == pytest.approx((0.4, 3.6), rel=EXACT)
    assert percentile_range(Fixed(28)) == (28.0, 28.0)


def test_lognormal_centre_is_median_mean_is_larger():
    # exp(mu + sigma**2/2) with mu = 0, sigma = 0.5: exp(0.125) = 1.133148
    d = LogNormal(0.0, 0.5)
    assert d.centre() == d.median() == 1.0
    assert d.mean() == pytest.approx(math.exp(0.125), rel=EXACT)


def test_describe_and_params():
    assert Normal(10, 2).describe() == "Normal(mean=10.0, sd=2.0)"
    assert Normal(10, 2).params() == {"mean": 10.0, "sd": 2.0}
    assert Uniform(1, 1.5).describe() == "Uniform(low=1.0, high=1.5)"
    assert Fixed(28).describe() == "Fixed(value=28.0)"
    assert LogNormal(0, 0.5).params() == {"mu": 0.0, "sigma": 0.5}
    assert Dirichlet((20, 30, 50)).describe() == "Dirichlet(alpha=[20.0, 30.0, 50.0])"
    assert Dirichlet((20, 30, 50)).params() == {"alpha": [20.0, 30.0, 50.0]}


def test_specifications_are_frozen():
    b = Beta(2, 3)
    with pytest.raises(AttributeError):
        b.alpha = 4
    assert b == Beta(2.0, 3.0) and hash(b) == hash(Beta(2.0, 3.0))


# --------------------------------------------------------------------------- every family


@pytest.mark.parametrize("_, row, family", ROWS, ids=ROW_IDS)
def test_centre_equals_value(_, row, family):
    d = build(**row, name="x")
    assert type(d) is family
    assert d.centre() == pytest.approx(row["value"], rel=EXACT)


@pytest.mark.parametrize("_, row, family", ROWS, ids=ROW_IDS)
def test_sample_mean_within_4_se(_, row, family):
    d = build(**row)
    x = d.sample(N_MC, np.random.default_rng(20240601))
    assert x.shape == (N_MC,)
    if isinstance(d, Fixed):
        assert np.all(x == row["value"])
        return
    se_mean = scipy_frozen(d).std() / math.sqrt(N_MC)
    assert abs(x.mean() - d.mean()) < 4 * se_mean


@pytest.mark.parametrize("_, row, family", ROWS, ids=ROW_IDS)
def test_ppf_half_is_median_and_matches_scipy(_, row, family):
    d = build(**row)
    assert float(d.ppf(0.5)) == pytest.approx(d.median(), rel=EXACT)
    if isinstance(d, Fixed):
        np.testing.assert_array_equal(d.ppf([0.01, 0.5, 0.99]), [28.0] * 3)
        return
    ref = scipy_frozen(d)
    u = np.array([1e-6, 0.025, 0.3, 0.5, 0.9, 0.975, 1 - 1e-6])
    np.testing.assert_allclose(d.ppf(u), ref.ppf(u), rtol=EXACT)
    assert d.mean() == pytest.approx(ref.mean(), rel=1e-10)
    assert d.median() == pytest.approx(ref.median(), rel=1e-10)
    # vectorized: keeps the shape of u
    assert d.ppf(np.full((3, 4), 0.5)).shape == (3, 4)


def test_ppf_rejects_probabilities_outside_0_1():
    with pytest.raises(CeaError, match=r"\[0, 1\]"):
        Normal(0, 1).ppf([0.5, 1.2])
    with pytest.raises(CeaError, match=r"\[0, 1\]"):
        Fixed(1).ppf([np.nan])


def test_sample_uses_only_the_given_generator():
    d = Gamma(2, 3)
    a = d.sample(5, np.random.default_rng(7))
    np.random.seed(0)  # noqa: NPY002 -- the global RNG must not matter
    b = d.sample(5, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(CeaError, match="number of draws"):
        d.sample(-1, np.random.default_rng(7))


@given(
    mean=st.floats(0.001, 0.999),
    frac=st.floats(0.01, 0.99),
)
@settings(max_examples=60, deadline=None)
def test_beta_method_of_moments_round_trip(mean, frac):
    se = frac * math.sqrt(mean * (1 - mean))  # se**2 < mean(1-mean) always
    b = Beta.from_mean_se(mean, se)
    assert b.mean() == pytest.approx(mean, rel=EXACT)
    assert scipy_frozen(b).std() == pytest.approx(se, rel=1e-9)


@given(mean=st.floats(1e-4, 1e6), cv=st.floats(0.01, 3.0))
@settings(max_examples=60, deadline=None)
def test_gamma_method_of_moments_round_trip(mean, cv):
    g = Gamma.from_mean_se(mean, cv * mean)
    assert g.mean() == pytest.approx(mean, rel=EXACT)
    assert scipy_frozen(g).std() == pytest.approx(cv * mean, rel=1e-9)


def test_constructor_errors():
    with pytest.raises(CeaError, match="strictly between 0 and 1"):
        Beta.from_mean_se(1.2, 0.1)
    with pytest.raises(CeaError, match=r"too large.*mean\*\(1-mean\) = 0\.09"):
        Beta.from_mean_se(0.1, 0.35)  # 0.1225 >= 0.1 * 0.9
    with pytest.raises(CeaError, match="gamma mean must be > 0"):
        Gamma.from_mean_se(-1, 0.1)
    with pytest.raises(CeaError, match="alpha must be a finite number > 0"):
        Beta(0, 1)
    with pytest.raises(CeaError, match="low < high"):
        Uniform(2, 1)
    with pytest.raises(CeaError, match="0 < low < value < high"):
        LogNormal.from_ci(0.45, 0.5, 1.0)
    with pytest.raises(CeaError, match="sd must be"):
        Normal(0, 0)


# --------------------------------------------------------------------------- build()


def test_build_dist_name_is_case_insensitive_and_stripped():
    assert build(" Beta ", 0.12, se=0.025) == Beta.from_mean_se(0.12, 0.025)
    assert build("GAMMA", 0.05, se=0.0175) == Gamma.from_mean_se(0.05, 0.0175)


def test_build_unknown_dist_lists_valid_names():
    with pytest.raises(CeaError) as err:
        build("weibull", 1.0, se=0.1, name="r_x")
    msg = str(err.value)
    assert msg.startswith("parameter 'r_x': unknown dist 'weibull'")
    assert all(nm in msg for nm in DIST_NAMES)
    assert "\n" not in msg


def test_build_dirichlet_row_is_redirected_to_groups():
    with pytest.raises(CeaError, match="parameter 'p_a': dirichlet rows are built per group"):
        build("dirichlet", 0.2, n=100, name="p_a")


def test_build_se_takes_precedence_over_low_high():
    # low/high are for the DSA; the PSA uses se when both are given
    d = build("beta", 0.82, se=0.03, low=0.70, high=0.90)
    assert d == Beta.from_mean_se(0.82, 0.03)


@pytest.mark.parametrize("family, dist", [(Beta, "beta"), (Gamma, "gamma"), (Normal, "normal")])
def test_build_se_from_ci_normal_approximation(family, dist):
    # 0.76-0.88: se = 0.12 / (2 * 1.959964) = 0.0306128
    d = build(dist, 0.82, low=0.76, high=0.88)
    assert d == family.from_mean_se(0.82, 0.12 / 3.919927969080108)


def test_build_blank_cells_may_be_nan():
    # pandas reads an empty CSV cell as NaN
    d = build("beta", 0.82, se=np.nan, low=0.76, high=0.88, n=np.nan)
    assert d == Beta.from_mean_se(0.82, 0.12 / (2 * Z_975))
    assert build("fixed", 28, se=None, low=pd.NA, high=float("nan")) == Fixed(28)


def test_build_beta_from_n():
    # value 0.709 from 117/165: Beta(117, 48)
    d = build("beta", 117 / 165, n=165, name="p_hypo")
    assert (d.alpha, d.beta) == pytest.approx((117, 48), rel=EXACT)


@pytest.mark.parametrize(
    "args, message",
    [
        (dict(dist="beta", value=0.12), "beta needs se or low/high"),
        (dict(dist="gamma", value=0.05), "gamma needs se or low/high"),
        (dict(dist="normal", value=69), "normal needs se or low/high"),
        (dict(dist="lognormal", value=0.45), r"lognormal needs se \(log scale\) or low/high"),
        (dict(dist="uniform", value=1.25), "uniform needs low and high"),
        (dict(dist="beta", value=1.2, se=0.1), r"beta value must be in \[0, 1\], got 1.2"),
        (dict(dist="beta", value=-0.1, se=0.1), r"beta value must be in \[0, 1\]"),
        (dict(dist="beta", value=0.0, se=0.01), "beta value 0.0 has no spread; use dist=fixed"),
        (dict(dist="beta", value=1.0, low=0.9, high=1.0), "beta value 1.0 has no spread"),
        (dict(dist="beta", value=0.5, se=0.6), "beta se 0.6 is too large for mean 0.5"),
        (dict(dist="beta", value=0.5, se=0.1, n=10), "give se or n, not both"),
        (dict(dist="beta", value=0.5, n=0), "n must be > 0"),
        (dict(dist="gamma", value=0.0, se=1.0), "gamma value must be > 0.*use dist=fixed"),
        (dict(dist="gamma", value=-5.0, se=1.0), "gamma value must be > 0"),
        (dict(dist="gamma", value=5.0, se=1.0, n=10), "n is used only by beta and dirichlet"),
        (dict(dist="gamma", value=5.0, se=0.0), "se must be > 0"),
        (dict(dist="gamma", value=5.0, se=-1.0), "se must be > 0"),
        (dict(dist="lognormal", value=0.0, se=0.3), "lognormal value must be > 0"),
        (dict(dist="lognormal", value=-1.0, low=0.5, high=2), "lognormal value must be > 0"),
        (dict(dist="lognormal", value=0.3, low=0.5, high=2.0), "0 < low < value < high"),
        (dict(dist="lognormal", value=2.0, low=0.5, high=2.0), "0 < low < value < high"),
        (dict(dist="normal", value=100, low=50, high=80), r"value 100.0 lies outside low/high"),
        (dict(dist="gamma", value=5.0, low=1.0), "give both low and high"),
        (dict(dist="gamma", value=5.0, low=9.0, high=1.0), "low must be < high"),
        (dict(dist="uniform", value=1.42, low=1.0, high=1.5), "must be the midpoint.*centre"),
        (dict(dist="uniform", value=1.25, se=0.1, low=1.0, high=1.5), "leave se blank"),
        (dict(dist="beta", value=None, se=0.1), "value is missing"),
        (dict(dist="beta", value=np.nan, se=0.1), "value is missing"),
        (dict(dist="beta", value="abc", se=0.1), "value must be a number, got 'abc'"),
        (dict(dist="gamma", value=5.0, se=np.inf), "se must be finite"),
    ],
)
def test_build_errors_name_the_parameter(args, message):
    with pytest.raises(CeaError, match=message) as err:
        build(**args, name="p_test")
    text = str(err.value)
    assert text.startswith("parameter 'p_test': ")
    assert "\n" not in text


def test_build_uniform_midpoint_tolerance():
    # 1e-9 relative: value off by 1e-12 is accepted, off by 1e-6 is not
    assert build("uniform", 1.25 + 1e-12, low=1.0, high=1.5) == Uniform(1.0, 1.5)
    with pytest.raises(CeaError, match="midpoint"):
        build("uniform", 1.25 + 1e-6, low=1.0, high=1.5)
    # symmetric around zero: tolerance relative to the range, not to the midpoint 0
    assert build("uniform", 0.0, low=-1.0, high=1.0).centre() == 0.0


def test_build_fixed_needs_no_spread_and_ignores_low_high():
    d = build("fixed", 28, low=20, high=35, name="q_ivig_g_month")
    assert d == Fixed(28.0)
    assert build("fixed", 0.0) == Fixed(0.0)  # a zero is fine when it does not vary
    assert build("fixed", 1.0) == Fixed(1.0)
    assert build("fixed", 0.03, se=0, low=0.03, high=0.03) == Fixed(0.03)
    with pytest.raises(CeaError, match="parameter 'd_c': give both low and high"):
        build("fixed", 0.03, low=0.0, name="d_c")


def test_build_beta_value_at_bound_of_ci_is_allowed():
    # docs/evidence.md: grade 3/4 infection 55.2% (44.8%-55.2%)
    d = build("beta", 0.552, low=0.448, high=0.552)
    assert d.centre() == pytest.approx(0.552, rel=EXACT)


# --------------------------------------------------------------------------- Dirichlet


def test_dirichlet_from_proportions_and_counts():
    d = Dirichlet.from_proportions([0.2, 0.3, 0.5], 100)
    assert d.alpha == pytest.approx((20, 30, 50), rel=EXACT)
    assert Dirichlet.from_counts([20, 30, 50]) == Dirichlet((20.0, 30.0, 50.0))
    np.testing.assert_allclose(d.mean(), [0.2, 0.3, 0.5], rtol=EXACT)
    np.testing.assert_allclose(d.centre(), [0.2, 0.3, 0.5], rtol=EXACT)


def test_dirichlet_draws_sum_to_one_and_means_equal_proportions():
    d = build_dirichlet(["p_a", "p_b", "p_c"], [0.2, 0.3, 0.5], [100, 100, 100])
    x = d.sample(N_MC, np.random.default_rng(3))
    assert x.shape == (N_MC, 3)
    np.testing.assert_allclose(x.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    for i, p in enumerate([0.2, 0.3, 0.5]):
        m = d.marginal(i)
        # marginal of component i: Beta(alpha_i, alpha_0 - alpha_i); Beta(20, 80) for i = 0
        assert m.mean() == pytest.approx(p, rel=EXACT)
        se_mean = scipy_frozen(m).std() / math.sqrt(N_MC)
        assert abs(x[:, i].mean() - p) < 4 * se_mean
    assert (d.marginal(0).alpha, d.marginal(0).beta) == (20.0, 80.0)
    # the marginal gives component-wise DSA percentiles
    lo, hi = percentile_range(d.marginal(0))
    assert np.mean(x[:, 0] < lo) == pytest.approx(0.025, abs=0.002)
    assert np.mean(x[:, 0] > hi) == pytest.approx(0.025, abs=0.002)


def test_build_dirichlet_scalar_n():
    assert build_dirichlet(["a", "b"], [0.25, 0.75], 40) == Dirichlet((10.0, 30.0))


@pytest.mark.parametrize(
    "values, counts, message",
    [
        ([0.2, 0.3, 0.4], 100, "values must sum to 1, they sum to 0.9"),
        ([0.2, 0.3, 0.5], [100, 100, 0], "n must be a patient count > 0"),
        ([0.2, 0.3, 0.5], [100, -5, 100], "n must be a patient count > 0"),
        ([0.2, 0.3, 0.5], [np.nan] * 3, "n must be a patient count > 0"),
        ([0.2, 0.3, 0.5], [20, 30, 50], "total patient count, the same on every row"),
        ([0.0, 0.5, 0.5], 100, "value of 'p_a' must be a proportion > 0"),
        ([0.2, 0.3, 0.5], [100, 100], "3 names but 2 counts"),
    ],
)
def test_build_dirichlet_errors(values, counts, message):
    with pytest.raises(CeaError, match=message) as err:
        build_dirichlet(["p_a", "p_b", "p_c"], values, counts)
    assert str(err.value).startswith("dirichlet group (p_a, p_b, p_c): ")


def test_dirichlet_has_no_ppf_or_percentiles():
    d = Dirichlet((2, 3))
    with pytest.raises(CeaError, match="cannot take part in correlations"):
        d.ppf([0.5])
    with pytest.raises(CeaError, match="give each row a low/high"):
        percentile_range(d)


# --------------------------------------------------------------------------- copula

CORR = pd.DataFrame(
    [[1.0, 0.6, -0.3], [0.6, 1.0, 0.2], [-0.3, 0.2, 1.0]],
    index=["p_a", "c_b", "rr_c"],
    columns=["p_a", "c_b", "rr_c"],
)


def test_correlated_uniforms_hit_target_correlation():
    u = correlated_uniforms(100_000, CORR, np.random.default_rng(11))
    assert u.shape == (100_000, 3)
    assert np.all((u > 0) & (u < 1))
    np.testing.assert_allclose(np.corrcoef(stats.norm.ppf(u), rowvar=False), CORR, atol=0.01)


def test_sample_many_correlation_and_marginals():
    dists = {
        "p_a": Beta.from_mean_se(0.12, 0.025),
        "c_b": Gamma.from_mean_se(1250, 300),
        "u_x": Beta.from_mean_se(0.82, 0.03),  # not correlated
        "rr_c": LogNormal.from_ci(0.90, 0.75, 1.08),
    }
    draws = sample_many(dists, 100_000, np.random.default_rng(5), CORR)
    assert list(draws.columns) == ["p_a", "c_b", "u_x", "rr_c"]
    assert draws.index.name == "draw" and draws.index[-1] == 99_999
    # Gaussian copula: Spearman rho_s = (6/pi) asin(rho/2) whatever the marginals; 0.6 -> 0.5824
    rank = draws.rank().corr().loc[CORR.index, CORR.columns].to_numpy()
    target = 6 / np.pi * np.arcsin(CORR.to_numpy() / 2)
    np.testing.assert_allclose(rank, target, atol=0.01)
    # normal scores recover the copula matrix itself
    scores = pd.DataFrame(
        {k: stats.norm.ppf(scipy_frozen(dists[k]).cdf(draws[k])) for k in CORR.index}
    )
    np.testing.assert_allclose(scores.corr().to_numpy(), CORR.to_numpy(), atol=0.01)
    # the uncorrelated parameter stays uncorrelated
    assert abs(draws.rank().corr().loc["u_x", "p_a"]) < 0.01
    # marginals are preserved
    for k, d in dists.items():
        assert stats.kstest(draws[k], scipy_frozen(d).cdf).pvalue > 0.001, k


def test_sample_many_same_seed_bit_identical():
    dists = {
        "p_a": Beta(20, 147),
        "c_b": Gamma(17, 73),
        ("p_x", "p_y", "p_z"): Dirichlet((20, 30, 50)),
        "rr_c": LogNormal(-0.1, 0.09),
        "q_d": Fixed(28),
    }
    a = sample_many(dists, 1000, np.random.default_rng(1), CORR)
    b = sample_many(dists, 1000, np.random.default_rng(1), CORR)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert list(a.columns) == ["p_a", "c_b", "p_x", "p_y", "p_z", "rr_c", "q_d"]
    np.testing.assert_allclose(a[["p_x", "p_y", "p_z"]].sum(axis=1), 1.0, atol=1e-12)
    assert (a["q_d"] == 28).all()
    c = sample_many(dists, 1000, np.random.default_rng(2), CORR)
    assert not np.array_equal(a["p_a"], c["p_a"])


def test_sample_many_without_corr_draws_in_mapping_order():
    dists = {"a": Gamma(2, 3), "b": Normal(0, 1), "f": Fixed(1.0), "c": Beta(2, 5)}
    got = sample_many(dists, 50, np.random.default_rng(9))
    rng = np.random.default_rng(9)
    for k, d in dists.items():
        np.testing.assert_array_equal(got[k].to_numpy(), d.sample(50, rng))


def test_sample_many_corr_order_does_not_matter():
    dists = {"p_a": Beta(20, 147), "c_b": Gamma(17, 73), "rr_c": LogNormal(-0.1, 0.09)}
    shuffled = CORR.loc[["rr_c", "p_a", "c_b"], ["c_b", "rr_c", "p_a"]]
    a = sample_many(dists, 100, np.random.default_rng(4), CORR)
    b = sample_many(dists, 100, np.random.default_rng(4), shuffled)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_non_positive_definite_matrix_rejected():
    # each pair is a valid correlation but together they are impossible: eigenvalues 1.9, 1.9, -0.8
    bad = np.array([[1.0, 0.9, 0.9], [0.9, 1.0, -0.9], [0.9, -0.9, 1.0]])
    with pytest.raises(CeaError, match=r"not positive definite \(smallest eigenvalue -0\.8"):
        correlated_uniforms(10, bad, np.random.default_rng(0))


@pytest.mark.parametrize(
    "matrix, message",
    [
        ([[1.0, 0.5], [0.4, 1.0]], "not symmetric"),
        ([[1.0, 0.5], [0.5, 0.9]], "1 on the diagonal"),
        ([[1.0, 1.5], [1.5, 1.0]], r"in \[-1, 1\]"),
        ([[1.0, 1.0], [1.0, 1.0]], "not positive definite"),
        ([[1.0, np.nan], [np.nan, 1.0]], "non-finite"),
        ([[1.0, 0.5, 0.1], [0.5, 1.0, 0.2]], "must be square"),
    ],
)
def test_invalid_correlation_matrices(matrix, message):
    with pytest.raises(CeaError, match=message):
        correlated_uniforms(10, np.array(matrix), np.random.default_rng(0))


def test_sample_many_rejects_bad_correlation_names():
    dists = {"p_a": Beta(2, 5), ("p_x", "p_y"): Dirichlet((2, 3))}
    corr = pd.DataFrame([[1, 0.3], [0.3, 1]], index=["p_a", "p_x"], columns=["p_a", "p_x"])
    with pytest.raises(CeaError, match="parameter 'p_x': Dirichlet parameters cannot"):
        sample_many(dists, 10, np.random.default_rng(0), corr)
    corr.index = corr.columns = ["p_a", "p_q"]
    with pytest.raises(CeaError, match="unknown parameter 'p_q'"):
        sample_many(dists, 10, np.random.default_rng(0), corr)


def test_sample_many_rejects_bad_keys():
    with pytest.raises(CeaError, match="keyed by a tuple of 2 parameter names"):
        sample_many({"p_x": Dirichlet((2, 3))}, 10, np.random.default_rng(0))
    with pytest.raises(CeaError, match="only a Dirichlet"):
        sample_many({("a", "b"): Beta(2, 3)}, 10, np.random.default_rng(0))
    with pytest.raises(CeaError, match="more than once: p_x"):
        sample_many(
            {"p_x": Beta(2, 3), ("p_x", "p_y"): Dirichlet((2, 3))}, 10, np.random.default_rng(0)
        )

"""Tests for cea/analysis/voi.py: CEAC/CEAF/EVPI invariants, EVPPI by regression against closed forms
and a nested Monte Carlo estimate on toy models (not the IgRT model), diagnostics, refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from cea.analysis import voi
from cea.errors import CeaError

EXACT = 1e-12


def normal_gain(m: float, s: float) -> float:
    """E[max(0, X)] - max(0, m) for X ~ N(m, s^2): s phi(m/s) + m Phi(m/s) - max(0, m)."""
    z = m / s
    return s * stats.norm.pdf(z) + m * stats.norm.cdf(z) - max(0.0, m)


def two_strategy(inb: np.ndarray, wtp: float = 1.0):
    """cost/effect arrays whose INB (strategy 1 vs 0) at ``wtp`` is ``inb``: cost 0, effect inb/wtp."""
    D = len(inb)
    cost = np.zeros((D, 2))
    effect = np.column_stack([np.zeros(D), inb / wtp])
    return cost, effect


# --------------------------------------------------------------------------- CEAC, CEAF, EVPI


@settings(max_examples=40, deadline=None)
@given(
    D=st.integers(2, 60),
    K=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_ceac_sums_to_one_and_evpi_nonnegative(D, K, seed):
    rng = np.random.default_rng(seed)
    cost = rng.gamma(2.0, 1000.0, (D, K))
    effect = rng.normal(1.0, 0.3, (D, K))
    grid = np.linspace(0, 20000, 17)
    prob = voi.ceac(cost, effect, grid)
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, rtol=0, atol=EXACT)
    assert np.all(voi.evpi(cost, effect, grid) >= 0)
    opt, p_opt = voi.ceaf(cost, effect, grid)
    np.testing.assert_array_equal(p_opt, prob[np.arange(len(grid)), opt])


def test_ceac_by_hand():
    # 4 draws, 2 strategies, effect 0 for both; strategy 1 cheaper in draws 0 and 2 only
    cost = np.array([[10.0, 5.0], [10.0, 12.0], [10.0, 9.0], [10.0, 11.0]])
    effect = np.zeros((4, 2))
    np.testing.assert_allclose(voi.ceac(cost, effect, [0.0]), [[0.5, 0.5]], atol=EXACT)
    # expected costs 10 vs 9.25: strategy 1 optimal; EVPI = mean(max INB) - max mean INB
    # INB_1 = [5, -2, 1, -1]; max(0, INB) mean = 6/4 = 1.5; mean INB = 0.75 -> EVPI 0.75
    assert voi.evpi(cost, effect, 0.0)[0] == pytest.approx(0.75, abs=EXACT)
    opt, p = voi.ceaf(cost, effect, 0.0)
    assert opt[0] == 1 and p[0] == pytest.approx(0.5)


def test_evpi_zero_when_one_strategy_always_best():
    rng = np.random.default_rng(3)
    cost = rng.gamma(5, 100, (500, 3))
    cost[:, 1] = cost.min(axis=1) - 1.0  # strategy 1 cheapest in every draw, same effect
    effect = np.ones((500, 3))
    assert voi.evpi(cost, effect, [0.0, 1e4]) == pytest.approx([0.0, 0.0], abs=1e-9)


def test_evpi_closed_form_normal():
    # INB ~ N(m, s^2): EVPI = s phi(m/s) + m Phi(m/s) - max(0, m)
    m, s, D = 0.3, 1.0, 400_000
    inb = np.random.default_rng(11).normal(m, s, D)
    got = voi.evpi(*two_strategy(inb), 1.0)[0]
    se = np.maximum(inb, 0).std() / math.sqrt(D)
    assert got == pytest.approx(normal_gain(m, s), abs=4 * se)


def test_population_multiplier_by_hand():
    # 900 a year for 5 years at 3.5%: 900 (1 + 1/1.035 + 1/1.035^2 + 1/1.035^3 + 1/1.035^4)
    want = 900 * sum(1.035**-t for t in range(5))
    assert voi.population_multiplier(900, 5, 0.035) == pytest.approx(want, rel=EXACT)
    # half a year more counts half of year 6's discounted cohort
    assert voi.population_multiplier(900, 5.5, 0.035) == pytest.approx(
        want + 450 * 1.035**-5, rel=EXACT
    )
    assert voi.population_multiplier(100, 3, 0.0) == pytest.approx(300.0, rel=EXACT)
    with pytest.raises(CeaError):
        voi.population_multiplier(100, 0, 0.03)


# --------------------------------------------------------------------------- EVPPI: regression


def test_evppi_linear_gaussian_closed_form():
    # INB = a + b + c with independent normals; E[INB | a] = a + E[b] + E[c] ~ N(m, sd_a^2), so
    # EVPPI(a) = normal_gain(m, sd_a); EVPPI(a, b, c) = EVPI = normal_gain(m, sqrt(sum var))
    D = 40_000
    rng = np.random.default_rng(5)
    sds = np.array([1.0, 0.5, 0.25])
    X = rng.normal(0.0, sds, (D, 3))
    m = 0.2
    inb = m + X.sum(axis=1)
    cost, effect = two_strategy(inb)
    ra = voi.evppi_regression(cost, effect, X[:, :1], 1.0)
    assert ra.status == "ok" and ra.basis == "spline+interactions"
    assert ra.evppi[0] == pytest.approx(normal_gain(m, 1.0), rel=0.03)
    rall = voi.evppi_regression(cost, effect, X, 1.0)
    assert rall.r2[0] == pytest.approx(1.0, abs=1e-9)
    assert rall.evppi[0] == pytest.approx(voi.evpi(cost, effect, 1.0)[0], rel=1e-6)
    assert rall.evppi[0] == pytest.approx(normal_gain(m, float(np.sqrt((sds**2).sum()))), rel=0.03)
    # R^2 of the one-parameter fit is its share of the variance: 1 / 1.3125
    assert ra.r2[0] == pytest.approx(1 / 1.3125, abs=0.02)


def toy_net_benefit(phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """A non-linear 3-strategy toy: phi = (effect size, price), psi = (baseline risk, utility).

    NB_0 = 0; NB_1 = 20000 x risk x (1 - hr) x utility - 60 x price;
    NB_2 = 20000 x risk x (1 - hr^2) x utility - 120 x price - 100.
    """
    hr, price = phi[:, 0], phi[:, 1]
    risk, u = psi[:, 0], psi[:, 1]
    nb1 = 20000 * risk * (1 - hr) * u - 60 * price
    nb2 = 20000 * risk * (1 - hr**2) * u - 120 * price - 100
    return np.column_stack([np.zeros_like(hr), nb1, nb2])


def toy_sample_phi(n, rng):
    return np.column_stack([rng.lognormal(np.log(0.6), 0.3, n), rng.gamma(25, 1.0, n)])


def toy_sample_psi(phi, n, rng):
    return np.column_stack([rng.beta(20, 80, n), rng.beta(70, 30, n)])


def toy_cost_effect(phi, psi):
    nb = toy_net_benefit(phi, psi)
    return -nb, np.zeros_like(nb)  # net benefit carried as minus the cost (wtp irrelevant)


def test_evppi_regression_agrees_with_nested_monte_carlo():
    rng = np.random.default_rng(2024)
    D = 20_000
    phi = toy_sample_phi(D, rng)
    psi = toy_sample_psi(None, D, rng)
    cost, effect = toy_cost_effect(phi, psi)
    reg = voi.evppi_regression(cost, effect, phi, 0.0)
    nested, se = voi.evppi_nested(
        toy_net_benefit, toy_sample_phi, toy_sample_psi, 1500, 2000, np.random.default_rng(7)
    )
    evpi = voi.evpi(cost, effect, 0.0)[0]
    assert 0 < reg.evppi[0] <= evpi
    # the nested estimator's inner-loop bias is small with 2,000 inner draws; allow 3 SE plus 5%
    assert reg.evppi[0] == pytest.approx(nested, abs=3 * se + 0.05 * nested)


def test_evppi_all_parameters_equals_evpi_and_each_group_below():
    rng = np.random.default_rng(99)
    D = 20_000
    phi = toy_sample_phi(D, rng)
    psi = toy_sample_psi(None, D, rng)
    cost, effect = toy_cost_effect(phi, psi)
    X = np.column_stack([phi, psi])
    evpi = voi.evpi(cost, effect, 0.0)[0]
    everything = voi.evppi_regression(cost, effect, X, 0.0)
    # NB is a smooth deterministic function of the 4 parameters: the fit is near exact
    assert everything.r2.min() > 0.99
    # within Monte Carlo error of the EVPI: SE of mean(max INB) over the draws
    nb = -cost
    se = (nb.max(axis=1) - nb[:, 0]).std() / math.sqrt(D)
    assert everything.evppi[0] == pytest.approx(evpi, abs=3 * se)
    for cols in ([0], [1], [2], [3], [0, 1], [2, 3]):
        r = voi.evppi_regression(cost, effect, X[:, cols], 0.0)
        assert 0 <= r.evppi[0] <= evpi * (1 + 1e-9), cols


def test_evppi_linear_in_wtp_fit_matches_separate_fits():
    # one fit of dC and dE gives the EVPPI at every wtp: equal to fitting the INB at each wtp
    rng = np.random.default_rng(1)
    D = 3000
    X = rng.normal(size=(D, 2))
    cost = np.column_stack([np.zeros(D), 1000 + 300 * X[:, 0] + rng.normal(0, 200, D)])
    effect = np.column_stack([np.zeros(D), 0.05 + 0.02 * X[:, 1] ** 2 + rng.normal(0, 0.01, D)])
    grid = np.array([0.0, 20000.0, 50000.0])
    together = voi.evppi_regression(cost, effect, X, grid)
    for i, w in enumerate(grid):
        inb = w * effect[:, 1] - cost[:, 1]
        alone = voi.evppi_regression(*two_strategy(inb), X, 1.0)
        assert together.evppi[i] == pytest.approx(alone.evppi[0], rel=1e-9, abs=1e-9)


# --------------------------------------------------------------------------- diagnostics and refusals


def test_refuses_when_terms_reach_a_tenth_of_draws():
    rng = np.random.default_rng(0)
    D = 100
    cost, effect = two_strategy(rng.normal(size=D))
    # 10 parameters: linear basis has 10 terms, 10 * 10 >= 100 draws -> refused
    r = voi.evppi_regression(cost, effect, rng.normal(size=(D, 10)), 1.0)
    assert r.basis is None and r.status.startswith("refused") and np.isnan(r.evppi).all()
    # 9 parameters: linear (9 terms, 90 < 100) is allowed, splines are not
    r = voi.evppi_regression(cost, effect, rng.normal(size=(D, 9)), 1.0)
    assert r.basis == "linear" and r.n_terms == 9
    assert voi.choose_basis(2, 1000) == "spline+interactions"  # 2 x 4 + 1 = 9 terms
    assert voi.choose_basis(24, 1000) == "spline"  # 96 terms; with interactions 372
    assert voi.choose_basis(25, 1000) == "linear"  # 100 spline terms: 100 x 10 >= 1000
    assert voi.n_basis_terms(3, "spline+interactions") == 3 * 4 + 3


def test_row_count_mismatch_is_an_error():
    # BCEA#53: inputs and outputs with different numbers of draws must not pass silently
    cost, effect = two_strategy(np.zeros(50))
    with pytest.raises(CeaError, match="rows"):
        voi.evppi_regression(cost, effect, np.zeros((49, 1)), 1.0)


def test_no_uncertain_parameters_gives_zero():
    cost, effect = two_strategy(np.random.default_rng(0).normal(size=50))
    r = voi.evppi_regression(cost, effect, np.empty((50, 0)), 1.0)
    assert r.status == "no uncertain parameters" and r.evppi[0] == 0.0


def test_spline_basis_is_linear_beyond_outer_knots_and_fits_smooth_curves():
    z = np.linspace(-3, 3, 2001)
    A = voi.design_matrix(z[:, None], "spline")
    assert A.shape == (2001, 1 + 4)
    knots = np.quantile((z - z.mean()) / z.std(), voi.SPLINE_KNOT_QUANTILES)
    zs = (z - z.mean()) / z.std()
    outside = zs > knots[-1] + 1e-9
    # second differences vanish beyond the last knot (natural spline)
    d2 = np.diff(A[outside], n=2, axis=0)
    assert np.abs(d2).max() < 1e-9
    # a smooth non-linear function is fitted well (sin bends back in the tails, where the
    # natural spline is linear: judge by the root mean square error)
    y = np.sin(z)
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    assert np.sqrt(np.mean((A @ coef - y) ** 2)) < 0.03


def test_parameter_with_few_values_falls_back_to_linear_terms():
    x = np.repeat([0.0, 1.0], 50)
    A = voi.design_matrix(x[:, None], "spline")
    assert A.shape == (100, 2)  # intercept + linear: the knots coincide


def test_running_mean_se_by_hand():
    x = np.arange(1.0, 11.0)  # 1..10
    n, m, se = voi.running_mean_se(x, points=[2, 5, 10])
    np.testing.assert_array_equal(n, [2, 5, 10])
    np.testing.assert_allclose(m, [1.5, 3.0, 5.5], rtol=EXACT)
    want = [np.std(x[:k], ddof=1) / math.sqrt(k) for k in (2, 5, 10)]
    np.testing.assert_allclose(se, want, rtol=1e-12)
    pts = voi.running_points(10_000)
    assert pts[0] == 10 and pts[-1] == 10_000 and np.all(np.diff(pts) > 0)


@pytest.mark.parametrize("K, D", [(1, 50), (2, 400), (5, 3000)])
def test_mean_of_the_maximum_follows_each_draws_envelope_exactly(K, D):
    # the envelope computation against every line evaluated at every lam (plain loop), on an
    # unsorted grid with repeats, lines crossing inside and outside it, exact ties and a line
    # equal to the zero line
    rng = np.random.default_rng(K * D)
    dc = rng.normal(1e4, 5e3, (K, D))
    de = rng.normal(0.1, 0.2, (K, D))
    dc[:, :5], de[:, :5] = 0.0, 0.0  # lines equal to the zero line
    if K > 1:
        dc[1, 5:20], de[1, 5:20] = dc[0, 5:20], de[0, 5:20]  # two strategies tie
    w = np.concatenate([[3e5, 0.0, 5e4, 5e4], np.linspace(0, 2e5, 41), [1e7]])
    want = np.array(
        [np.mean([max(0.0, *(lam * de[k, d] - dc[k, d] for k in range(K))) for d in range(D)])
         for lam in w]
    )  # fmt: skip
    got = voi._mean_max(dc, de, w)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)

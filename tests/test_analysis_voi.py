"""Tests for cea/analysis/voi.py: CEAC/CEAF/EVPI invariants, EVPPI by regression against closed forms
and a nested Monte Carlo estimate on toy models (not the IgRT model), diagnostics, refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize, stats

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
    # growing 10% a year, undiscounted: 100 + 110 + 121
    assert voi.population_multiplier(100, 3, 0.0, 0.1) == pytest.approx(331.0, rel=EXACT)
    with pytest.raises(CeaError):
        voi.population_multiplier(100, 0, 0.03)


# --------------------------------------------------------------------------- EVPPI: closed forms


def product_gain(mu: float) -> float:
    """EVPPI of (x1, x2) when INB = mu + x1 x2 + (terms independent of them), x1, x2 ~ N(0, 1).

    E[INB | x1, x2] = mu + x1 x2. Given x1, mu + x1 x2 ~ N(mu, x1^2), so
    E[max(0, mu + x1 x2) | x1] = |x1| phi(mu / |x1|) + mu Phi(mu / |x1|) (the normal gain), and
    EVPPI = E_x1[that] - max(0, mu), one integral over the standard normal x1 (quadrature).
    Neither x1 nor x2 alone has any value: E[INB | x1] = E[INB | x2] = mu.
    """

    def inner(x1: float) -> float:
        s = abs(x1)
        if s == 0.0:
            return max(0.0, mu) * stats.norm.pdf(0.0)
        return (s * stats.norm.pdf(mu / s) + mu * stats.norm.cdf(mu / s)) * stats.norm.pdf(x1)

    return integrate.quad(inner, -np.inf, np.inf)[0] - max(0.0, mu)


def test_product_gain_quadrature_against_plain_monte_carlo():
    # the closed form itself: 4,000,000 plain draws of max(0, mu + x1 x2) (SE about 0.0005)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4_000_000, 2))
    mc = np.maximum(0.5 + x[:, 0] * x[:, 1], 0).mean() - 0.5
    assert product_gain(0.5) == pytest.approx(mc, abs=0.002)


def test_evppi_linear_gaussian_closed_form():
    # INB = m + a + b + c with independent normals; E[INB | a] = m + a ~ N(m, sd_a^2), so
    # EVPPI(a) = normal_gain(m, sd_a); EVPPI(a, b, c) = EVPI = normal_gain(m, sqrt(sum var))
    D = 20_000
    rng = np.random.default_rng(5)
    sds = np.array([1.0, 0.5, 0.25])
    X = rng.normal(0.0, sds, (D, 3))
    m = 0.2
    inb = m + X.sum(axis=1)
    cost, effect = two_strategy(inb)
    ra = voi.evppi_gp(cost, effect, X[:, :1], 1.0)
    assert ra.status == "ok" and ra.method == "gp"
    want = normal_gain(m, 1.0)  # 0.5 phi(0.2) + 0.2 Phi(0.2) - 0.2 = 0.4964...
    assert 0 < ra.se[0] < 0.05 * want  # a real standard error, not one wide enough for anything
    assert ra.evppi[0] == pytest.approx(want, abs=3 * ra.se[0])
    # R^2 of the one-parameter fit is its share of the variance: 1 / 1.3125
    assert ra.r2[0] == pytest.approx(1 / 1.3125, abs=0.02)
    rall = voi.evppi_all_parameters(cost, effect, 1.0)
    assert rall.evppi[0] == voi.evpi(cost, effect, 1.0)[0] and rall.method == "evpi"
    assert rall.evppi[0] == pytest.approx(
        normal_gain(m, float(np.sqrt((sds**2).sum()))), abs=3 * rall.se[0]
    )


def test_evppi_recovers_an_interaction_no_additive_fit_can_see():
    # INB = 0.5 + x1 x2 + x3: neither x1 nor x2 alone has value (E[INB | x1] = 0.5 > 0), but
    # together they have product_gain(0.5); x3 is noise to the group
    mu, D = 0.5, 10_000
    rng = np.random.default_rng(11)
    X = rng.normal(size=(D, 3))
    cost, effect = two_strategy(mu + X[:, 0] * X[:, 1] + X[:, 2])
    want = product_gain(mu)
    pair = voi.evppi_gp(cost, effect, X[:, :2], 1.0)
    assert 0 < pair.se[0] < 0.1 * want
    assert pair.evppi[0] == pytest.approx(want, abs=3 * pair.se[0])
    for j in (0, 1):
        alone = voi.evppi_gp(cost, effect, X[:, j : j + 1], 1.0)
        assert alone.evppi[0] <= 3 * alone.se[0] + 1e-12  # truth 0
        assert not voi.distinguishable_from_zero(alone.evppi[0], alone.se[0])


def test_evppi_standard_error_covers_the_truth():
    # 12 independent PSAs of 3,000 draws of the interaction model: the truth lies within 2 SE
    # about 95% of the time; at least 9 of 12 (P(fewer | 95% coverage) < 0.2%)
    mu, D = 0.5, 3000
    want = product_gain(mu)
    z = []
    for seed in range(12):
        X = np.random.default_rng(100 + seed).normal(size=(D, 3))
        r = voi.evppi_gp(*two_strategy(mu + X[:, 0] * X[:, 1] + X[:, 2]), X[:, :2], 1.0)
        z.append((r.evppi[0] - want) / r.se[0])
    z = np.abs(np.array(z))
    assert (z <= 2).sum() >= 9, z


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


def test_evppi_agrees_with_nested_monte_carlo():
    rng = np.random.default_rng(2024)
    D = 10_000
    phi = toy_sample_phi(D, rng)
    psi = toy_sample_psi(None, D, rng)
    cost, effect = toy_cost_effect(phi, psi)
    reg = voi.evppi_gp(cost, effect, phi, 0.0)
    nested, se = voi.evppi_nested(
        toy_net_benefit, toy_sample_phi, toy_sample_psi, 1500, 2000, np.random.default_rng(7)
    )
    evpi = voi.evpi(cost, effect, 0.0)[0]
    assert 0 < reg.evppi[0] <= evpi
    # two independent estimates: 3 SE of their difference, plus 2% for the nested estimator's
    # upward bias from its inner maximum (O(1 / n_inner))
    assert reg.evppi[0] == pytest.approx(nested, abs=3 * math.hypot(se, reg.se[0]) + 0.02 * nested)


def test_all_parameters_is_the_evpi_with_its_monte_carlo_se():
    rng = np.random.default_rng(99)
    D = 5000
    phi = toy_sample_phi(D, rng)
    psi = toy_sample_psi(None, D, rng)
    cost, effect = toy_cost_effect(phi, psi)
    r = voi.evppi_all_parameters(cost, effect, [0.0, 1.0])
    np.testing.assert_array_equal(r.evppi, voi.evpi(cost, effect, [0.0, 1.0]))
    # SE = sd(max_k INB_k - INB_kbar) / sqrt(D), kbar the strategy of highest mean
    nb = -cost
    kbar = int(np.argmax(nb.mean(axis=0)))
    want = (nb.max(axis=1) - nb[:, kbar]).std(ddof=1) / math.sqrt(D)
    assert r.se[0] == pytest.approx(want, rel=1e-12)
    # every group below it (capped if need be)
    X = np.column_stack([phi, psi])
    for cols in ([0], [1], [2], [3], [0, 1], [2, 3]):
        g = voi.evppi_gp(cost, effect, X[:, cols], 0.0)
        assert 0 <= g.evppi[0] <= r.evppi[0], cols


def test_an_estimate_above_the_evpi_is_capped_and_flagged():
    # the EVPPI of a group is at most the EVPI; given a (false) EVPI of half the estimate, the
    # result is that bound, and the estimate is kept apart with the flag
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2000, 2))
    cost, effect = two_strategy(0.2 + X[:, 0] + X[:, 1])
    free = voi.evppi_gp(cost, effect, X[:, :1], 1.0)
    bound = np.array([free.estimate[0] / 2])
    r = voi.evppi_gp(cost, effect, X[:, :1], 1.0, evpi_values=bound)
    assert r.evppi[0] == bound[0] and r.estimate[0] == free.estimate[0] and r.capped[0]
    assert not free.capped[0]


def test_one_fit_gives_the_evppi_at_every_wtp():
    # INB is linear in wtp: the EVPPI at each wtp of a grid equals the EVPPI computed at that
    # wtp alone with the same hyperparameter wtp (one smoother of dC and dE serves every wtp)
    rng = np.random.default_rng(1)
    D = 3000
    X = rng.normal(size=(D, 2))
    cost = np.column_stack([np.zeros(D), 1000 + 300 * X[:, 0] + rng.normal(0, 200, D)])
    effect = np.column_stack([np.zeros(D), 0.05 + 0.02 * X[:, 1] ** 2 + rng.normal(0, 0.01, D)])
    grid = np.array([0.0, 20000.0, 50000.0])
    together = voi.evppi_gp(cost, effect, X, grid, fit_wtp=20000.0)
    for i, w in enumerate(grid):
        alone = voi.evppi_gp(cost, effect, X, w, fit_wtp=20000.0)
        assert together.evppi[i] == pytest.approx(alone.evppi[0], rel=1e-9, abs=1e-12)
        assert together.se[i] == pytest.approx(alone.se[0], rel=1e-9, abs=1e-12)


def test_same_draws_same_evppi_whatever_the_threads():
    rng = np.random.default_rng(8)
    D = 2000
    X = rng.normal(size=(D, 4))
    cost, effect = two_strategy(0.3 + X[:, 0] * X[:, 1] + X[:, 2] + X[:, 3])
    groups = {"a": X[:, :2], "b": X[:, 2:], "c": X[:, 1:3]}
    one = voi.evppi_groups(cost, effect, groups, [0.5, 1.0], workers=1)
    two = voi.evppi_groups(cost, effect, groups, [0.5, 1.0], workers=2)
    again = voi.evppi_groups(cost, effect, groups, [0.5, 1.0], workers=2)
    for g in groups:
        for r in (two[g], again[g]):
            np.testing.assert_array_equal(r.evppi, one[g].evppi)
            np.testing.assert_array_equal(r.se, one[g].se)


def test_evppi_groups_share_the_threads_between_groups_and_their_blocks(monkeypatch):
    # the groups take the threads first and each group's blocks the ones left over, so no more
    # than ``workers`` threads run at once (a pool in a pool would run workers x groups)
    rng = np.random.default_rng(9)
    X = rng.normal(size=(300, 3))
    cost, effect = two_strategy(0.3 + X[:, 0] + X[:, 1] * X[:, 2])
    seen, real = [], voi._evppi_gp
    monkeypatch.setattr(
        voi, "_evppi_gp", lambda *a, workers=None, **k: seen.append(workers) or real(*a, **k)
    )
    for groups, workers, inner in (
        ({"a": X[:, :1], "b": X[:, 1:], "c": X}, 8, 2),  # 3 groups, 8 threads: 3 x 2
        ({"a": X[:, :1], "b": X[:, 1:], "c": X}, 2, 1),  # fewer threads than groups
        ({"a": X}, 4, 4),  # one group: all its blocks' threads
    ):
        seen.clear()
        voi.evppi_groups(cost, effect, groups, [1.0], workers=workers)
        assert seen == [inner] * len(groups)
        assert min(len(groups), workers) * inner <= workers


# --------------------------------------------------------------------------- EVPPI: pieces


def test_influence_function_standard_error_by_hand():
    # 4 draws, 2 strategies: fitted g = [1, -1, 2, -2] (mean 0: strategy 0 kept, kbar = 0),
    # observed INB y = [1.5, -0.5, 1, -3]. k* = 1 where g > 0 (draws 0 and 2).
    # gain = max(0, g) = [1, 0, 2, 0] -> EVPPI 0.75
    # IF + EVPPI = gain + (y - g) where k* = 1 = [1 + 0.5, 0, 2 - 1, 0] = [1.5, 0, 1, 0]
    # sd (ddof 1): mean 0.625, squares of deviations 0.765625 + 0.390625 + 0.140625 + 0.390625
    # = 1.6875, / 3 = 0.5625, sd 0.75; SE = 0.75 / sqrt(4) = 0.375
    g = np.array([[1.0], [-1.0], [2.0], [-2.0]])
    y = np.array([[1.5], [-0.5], [1.0], [-3.0]])
    value, se = voi.evppi_se(y, g)
    assert value == pytest.approx(0.75, abs=EXACT)
    assert se == pytest.approx(0.375, abs=EXACT)


def test_draws_needed_by_hand():
    # SE 5 at 10,000 draws; to put an EVPPI of 2.5 two SE above 0 needs SE 1.25, i.e.
    # (5 / 1.25)^2 = 16 times the draws: 160,000
    assert voi.draws_to_resolve(2.5, 5.0, 10_000) == 160_000
    assert voi.draws_to_resolve(2.5, 0.0, 10_000) is None
    # told apart: 12 > 2 x 5
    told, target, need = voi.resolution(12.0, 5.0, 25.0, 10_000)
    assert told and math.isnan(target) and need is None
    # not told apart, estimate 1 below 10% of the EVPI of 25: target 2.5 -> 160,000 draws
    assert voi.resolution(1.0, 5.0, 25.0, 10_000) == (False, 2.5, 160_000)
    # not told apart: target max(3, 10% of 25 = 2.5) = 3; 10,000 x (10 / 3)^2 = 111,111.1,
    # rounded up to the thousand
    told, target, need = voi.resolution(3.0, 5.0, 25.0, 10_000)
    assert not told and target == 3.0 and need == 112_000
    # an estimate of 0 with SE 0: the group never changes the decision; no draws to name
    told, target, need = voi.resolution(0.0, 0.0, 25.0, 10_000)
    assert not told and math.isnan(target) and need is None


def test_subsample_is_evenly_spaced_and_needs_no_random_numbers():
    idx = voi.subsample_index(10_000, 250)
    assert len(idx) == 250 and idx[0] == 0 and idx[-1] == 9999
    assert np.all(np.diff(idx) > 0) and np.ptp(np.diff(idx)) <= 1
    np.testing.assert_array_equal(voi.subsample_index(100, 250), np.arange(100))
    assert voi.hyperparameter_draws(1) == voi.GP_HYPER_DRAWS_MIN
    assert voi.hyperparameter_draws(4) == 4 * voi.GP_HYPER_DRAWS_PER_PARAMETER
    assert voi.hyperparameter_draws(40) == voi.GP_HYPER_DRAWS_MAX


def test_gp_likelihood_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    n, p = 60, 3
    Z = rng.normal(size=(n, p))
    Y = np.column_stack([np.sin(Z[:, 0]) + Z[:, 1] * Z[:, 2], Z[:, 0] ** 2])
    Y += 0.1 * rng.normal(size=Y.shape)
    H = np.column_stack([np.ones(n), Z])
    theta = np.array([0.1, -0.2, 0.3, np.log(0.05)])
    _, grad = voi._gp_neg_log_likelihood(theta, Z, Y, H)
    numeric = optimize.approx_fprime(
        theta, lambda t: voi._gp_neg_log_likelihood(t, Z, Y, H)[0], 1e-6
    )
    np.testing.assert_allclose(grad, numeric, rtol=1e-4)


def test_gp_finds_no_structure_in_noise():
    # INB independent of the group: long lengthscales, a near-linear fit, R^2 near 0
    rng = np.random.default_rng(4)
    D = 4000
    X = rng.normal(size=(D, 3))
    r = voi.evppi_gp(*two_strategy(-0.5 + rng.normal(size=D)), X, 1.0)
    assert r.r2[0] < 0.01 and r.edf < 10
    assert not voi.distinguishable_from_zero(r.evppi[0], r.se[0])


# --------------------------------------------------------------------------- diagnostics and refusals


def test_refuses_with_too_few_draws_per_parameter():
    rng = np.random.default_rng(0)
    D = 100
    cost, effect = two_strategy(rng.normal(size=D))
    # 9 parameters: 100 draws <= 10 x (9 + 1) -> refused, never a number
    r = voi.evppi_gp(cost, effect, rng.normal(size=(D, 9)), 1.0)
    assert r.method is None and r.status.startswith("refused") and np.isnan(r.evppi).all()
    # 8 parameters: 100 > 90 -> estimated
    r = voi.evppi_gp(cost, effect, rng.normal(size=(D, 8)), 1.0)
    assert r.method == "gp" and np.isfinite(r.evppi).all()


def test_row_count_mismatch_is_an_error():
    # BCEA#53: inputs and outputs with different numbers of draws must not pass silently
    cost, effect = two_strategy(np.zeros(50))
    with pytest.raises(CeaError, match="rows"):
        voi.evppi_gp(cost, effect, np.zeros((49, 1)), 1.0)


def test_no_uncertain_parameters_gives_zero():
    cost, effect = two_strategy(np.random.default_rng(0).normal(size=50))
    r = voi.evppi_gp(cost, effect, np.empty((50, 0)), 1.0)
    assert r.status == "no uncertain parameters" and r.evppi[0] == 0.0
    r = voi.evppi_gp(cost, effect, np.ones((50, 2)), 1.0)  # constant columns are not uncertain
    assert r.status == "no uncertain parameters"


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


# --------------------------------------------------------------------------- blocks of draws


def blocked_case(D: int = 1003, K: int = 4, seed: int = 11):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(D, 2))
    cost = rng.normal(1e4, 2e3, (D, K)) + 3e3 * X[:, :1] * np.arange(K)
    effect = rng.normal(1.0, 0.1, (D, K)) + 0.05 * X[:, 1:] ** 2 * np.arange(K)
    return cost, effect, X, np.concatenate([np.linspace(0, 1e5, 41), [7e3, 3e5]])


def test_ceac_and_evpi_in_blocks_are_the_direct_formulas(monkeypatch):
    cost, effect, _, w = blocked_case()
    inb = w[:, None, None] * (effect - effect[:, :1]) - (cost - cost[:, :1])  # (W, D, K)
    best = np.argmax(inb, axis=2)  # ties: first
    ceac = np.stack([(best == k).mean(axis=1) for k in range(cost.shape[1])], axis=1)
    evpi = inb.max(axis=2).mean(axis=1) - inb.mean(axis=1).max(axis=1)
    monkeypatch.setattr(voi, "DRAW_BLOCK", 100)  # 11 blocks, the last of 3 draws
    for workers in (1, 3):
        np.testing.assert_array_equal(voi.ceac(cost, effect, w, workers), ceac)
        np.testing.assert_allclose(voi.evpi(cost, effect, w, workers), evpi, rtol=1e-12, atol=1e-9)
        opt, _ = voi.ceaf(cost, effect, w, workers=workers)
        np.testing.assert_array_equal(opt, np.argmax(inb.mean(axis=1), axis=1))
    np.testing.assert_array_equal(voi.evpi(cost, effect, w, 1), voi.evpi(cost, effect, w, 3))


def test_ceac_ties_go_to_the_first_strategy_as_argmax():
    # small whole numbers: many draws have two or more strategies with exactly the same net
    # benefit at a grid point; each counts for the first of them, as argmax does
    rng = np.random.default_rng(5)
    cost = rng.integers(0, 4, (2000, 6)).astype(float)
    effect = rng.integers(0, 3, (2000, 6)).astype(float)
    w = np.arange(0.0, 5.0, 0.5)
    inb = w[:, None, None] * (effect - effect[:, :1]) - (cost - cost[:, :1])
    best = np.argmax(inb, axis=2)
    want = np.stack([(best == k).mean(axis=1) for k in range(6)], axis=1)
    assert (np.sort(inb, axis=2)[:, :, -1] == np.sort(inb, axis=2)[:, :, -2]).mean() > 0.2
    np.testing.assert_array_equal(voi.ceac(cost, effect, w), want)


def test_standard_errors_in_blocks_are_those_of_every_draw(monkeypatch):
    cost, effect, _, w = blocked_case()
    dc, de = voi.incremental(cost, effect)
    want = [voi.evppi_se(lam * de[:, 1:] - dc[:, 1:], lam * de[:, 1:] - dc[:, 1:])[1] for lam in w]
    monkeypatch.setattr(voi, "DRAW_BLOCK", 100)
    got = voi.evppi_all_parameters(cost, effect, w, workers=2)
    np.testing.assert_allclose(got.se, want, rtol=1e-12)
    np.testing.assert_array_equal(got.evppi, voi.evpi(cost, effect, w))
    # a fit that is not the data: blocks of g and of the influence function, kbar from all
    fitted = 0.5 * (w[3] * de[:, 1:] - dc[:, 1:]) + 100.0
    obs = w[3] * de[:, 1:] - dc[:, 1:]
    parts = [voi._se_sums(obs[lo : lo + 100], fitted[lo : lo + 100]) for lo in range(0, 1003, 100)]
    assert voi._se_from_sums(parts) == pytest.approx(voi.evppi_se(obs, fitted)[1], rel=1e-12)


def test_evppi_in_blocks_and_threads(monkeypatch):
    # the GP's passes over the draws in blocks of 100 draws: the same EVPPI as in one block to
    # rounding, and the same bits in 1 or 3 threads
    cost, effect, X, w = blocked_case()
    whole = voi.evppi_gp(cost, effect, X, w, fit_wtp=7e3, keep_fitted=True)
    monkeypatch.setattr(voi, "DRAW_BLOCK", 100)
    one = voi.evppi_gp(
        cost, effect, [X[:, 0], X[:, 1]], w, fit_wtp=7e3, workers=1, keep_fitted=True
    )
    three = voi.evppi_gp(cost, effect, X, w, fit_wtp=7e3, workers=3)
    assert whole.evppi.max() > 100.0 and one.n_terms == whole.n_terms
    for f in ("evppi", "estimate", "se", "r2"):
        np.testing.assert_array_equal(getattr(one, f), getattr(three, f))
        np.testing.assert_allclose(getattr(one, f), getattr(whole, f), rtol=1e-10, atol=1e-9)
    assert one.edf == three.edf == pytest.approx(whole.edf, rel=1e-12)
    np.testing.assert_allclose(one.fitted[0], whole.fitted[0], rtol=1e-10, atol=1e-6)

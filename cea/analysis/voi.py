"""Decision uncertainty and value of information from PSA samples: CEAC, CEAF, EVPI, EVPPI.

Everything here works on arrays of per-draw results and never runs the model. Inputs are

- ``cost`` and ``effect``: (D, K) arrays, one row per PSA draw, one column per strategy, in
  the order of the strategy list (paired by draw: every strategy sees the same draws);
- ``wtp``: willingness to pay per unit of effect, a scalar or a (W,) grid.

Conventions
-----------
- Net benefit NB_k = wtp * effect_k - cost_k. Every calculation works on incremental net
  benefit against the first strategy, INB_k = NB_k - NB_0 (INB_0 = 0): maxima and the
  choice of strategy are unchanged, and the large common part of the costs (the bsAb) does
  not cancel in floating point.
- **CEAC**: P(strategy k has the highest NB) at each wtp, over the draws; the values of all
  strategies sum to 1 at every wtp (ties go to the first strategy listed).
- **CEAF**: the strategy with the highest *expected* NB at each wtp (the decision under
  current information) and its CEAC value (Fenwick, Claxton & Sculpher, Health Econ
  2001;10:779-787).
- **EVPI** per patient = E[max_k NB_k] - max_k E[NB_k] (>= 0 by Jensen's inequality, and
  exactly 0 only when one strategy is optimal in every draw).
- **EVPPI** of a parameter group phi = E_phi[max_k E(NB_k | phi)] - max_k E[NB_k]. The inner
  conditional expectation is estimated by regressing each strategy's incremental cost and
  incremental effect on a flexible basis of phi (Strong, Oakley & Brennan, Med Decis Making
  2014;34:311-326, the "GAM" method of SAVI, BCEA and voi). Because INB is linear in wtp,
  E[INB | phi] = wtp * E[dE | phi] - E[dC | phi], so one fit per group gives the EVPPI at every
  wtp. The basis is additive natural cubic splines (restricted cubic splines, Harrell 2015,
  section 2.4.5) of each parameter plus all pairwise products of the linear terms; the
  richest of :data:`BASES` with fewer than ``draws / MIN_DRAWS_PER_TERM`` terms is used, and the
  group is refused (EVPPI not reported) when even the linear basis is too large
  (dampack#111). R^2 of each fit is reported as a diagnostic: a low R^2 with a large EVPPI
  is suspect, and the EVPPI of all parameters together should come close to the EVPI.
- :func:`evppi_nested` is the two-level Monte Carlo estimator for small test cases.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from cea.errors import CeaError

#: The EVPPI regression is refused when it has this many draws per term or fewer
#: (terms >= draws / 10 is refused), so the fit cannot chase Monte Carlo noise (dampack#111).
MIN_DRAWS_PER_TERM = 10
#: Knots of each parameter's restricted cubic spline at these quantiles (Harrell's default
#: for 5 knots); 5 knots give 4 terms per parameter (linear + 3 non-linear).
SPLINE_KNOT_QUANTILES = (0.05, 0.275, 0.5, 0.725, 0.95)
#: Bases tried from the richest down; the first with few enough terms is used.
BASES = ("spline+interactions", "spline", "linear")
#: Pairwise interactions only for groups of at most this many parameters: their number grows
#: as p^2 / 2 (43 parameters would give 903 terms), and larger groups use the additive splines.
MAX_INTERACTION_PARAMS = 8
#: Eigenvalues of A'A below this fraction of the largest are treated as zero (collinear terms).
EIGEN_RTOL = 1e-12
#: EVPI and EVPPI below this fraction of the scale of the incremental net benefit are rounding
#: of equal terms (E[max] - max E when one strategy is best in every draw) and reported as 0.
NOISE_RTOL = 1e-12
#: WTP values computed together in the CEAC and the EVPI / EVPPI maxima (bounds memory to
#: WTP_BLOCK x draws per array; results do not depend on it).
WTP_BLOCK = 32
#: Relative tolerance under which two knots are the same (parameter with few distinct values).
KNOT_RTOL = 1e-9


def _as_2d(x, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 2:
        raise CeaError(f"{what} must be (draws, strategies), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise CeaError(f"{what} has non-finite values")
    return a


def _check_pair(cost, effect) -> tuple[np.ndarray, np.ndarray]:
    c, e = _as_2d(cost, "cost"), _as_2d(effect, "effect")
    if c.shape != e.shape:
        raise CeaError(f"cost {c.shape} and effect {e.shape} must have the same shape")
    if c.shape[0] < 2 or c.shape[1] < 1:
        raise CeaError(f"need at least 2 draws and 1 strategy, got {c.shape}")
    return c, e


def incremental(cost, effect) -> tuple[np.ndarray, np.ndarray]:
    """Incremental cost and effect of every strategy against the first: two (D, K) arrays
    whose first column is 0."""
    c, e = _check_pair(cost, effect)
    return c - c[:, :1], e - e[:, :1]


def _wtp_grid(wtp) -> np.ndarray:
    w = np.atleast_1d(np.asarray(wtp, dtype=float))
    if w.ndim != 1 or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise CeaError("willingness to pay must be finite numbers >= 0")
    return w


def ceac(cost, effect, wtp) -> np.ndarray:
    """Cost-effectiveness acceptability curves of all strategies.

    Returns (W, K): the share of draws in which each strategy has the highest net benefit at
    each wtp; every row sums to 1.
    """
    dc, de = incremental(cost, effect)
    w = _wtp_grid(wtp)
    D, K = dc.shape
    dcT, deT = np.ascontiguousarray(dc.T), np.ascontiguousarray(de.T)
    out = np.empty((len(w), K))
    for lo in range(0, len(w), WTP_BLOCK):
        lam = w[lo : lo + WTP_BLOCK, None]
        # running argmax over strategies on contiguous (wtp block x D) arrays (ties: first)
        best_v = lam * deT[0] - dcT[0]
        best_k = np.zeros(best_v.shape, dtype=np.intp)
        v = np.empty_like(best_v)
        for k in range(1, K):
            np.multiply(lam, deT[k], out=v)
            v -= dcT[k]
            better = v > best_v
            np.copyto(best_v, v, where=better)
            best_k[better] = k
        for k in range(K):
            out[lo : lo + WTP_BLOCK, k] = np.count_nonzero(best_k == k, axis=1) / D
    return out


def _mean_max(dcT: np.ndarray, deT: np.ndarray, w: np.ndarray) -> np.ndarray:
    """mean over draws of max(0, max_k (lam de_k - dc_k)) for each lam in w, (W,).

    dcT, deT: (K-1, D) incremental cost and effect of strategies 1..K-1 (strategy 0 gives 0).
    Exact, without evaluating every line at every lam: as lam grows, each draw's maximum
    follows the upper envelope of its lines (the zero line and one per strategy), whose slope
    only increases. From the line on top at the smallest lam, the next piece starts where a
    steeper line crosses it first; at most K pieces per draw. Each piece adds its slope and
    intercept to the grid points it covers (difference arrays), so the cost is K^2 x D, not
    W x K x D; the sums agree with the direct evaluation to rounding (tested).
    """
    D = dcT.shape[1]
    slopes = np.vstack([np.zeros((1, D)), deT])  # line k: lam * slopes[k] - costs[k]
    costs = np.vstack([np.zeros((1, D)), dcT])
    order = np.argsort(w, kind="stable")
    grid = w[order]
    W = len(grid)
    draws = np.arange(D)
    start = np.full(D, grid[0])
    top = np.argmax(grid[0] * slopes - costs, axis=0)
    slope_sum, cost_sum = np.zeros(W + 1), np.zeros(W + 1)
    live = np.ones(D, dtype=bool)  # draws whose envelope has pieces left
    for _ in range(len(slopes)):
        a, c = slopes[top, draws], costs[top, draws]
        rise = slopes - a
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = np.where(rise > 0, (costs - c) / rise, np.inf)
        cross = np.maximum(cross, start)  # a crossing behind start by rounding: here
        nxt = np.argmin(cross, axis=0)
        end = cross[nxt, draws]
        first = np.where(live, np.searchsorted(grid, start), W)
        past = np.where(live, np.searchsorted(grid, end), W)
        slope_sum += np.bincount(first, a, W + 1) - np.bincount(past, a, W + 1)
        cost_sum += np.bincount(first, c, W + 1) - np.bincount(past, c, W + 1)
        live &= np.isfinite(end)
        if not live.any():
            break
        top, start = np.where(live, nxt, top), np.where(live, end, start)
    out = np.empty(W)
    out[order] = (grid * np.cumsum(slope_sum)[:W] - np.cumsum(cost_sum)[:W]) / D
    return out


def expected_inb(cost, effect, wtp) -> np.ndarray:
    """Mean incremental net benefit against the first strategy, (W, K)."""
    dc, de = incremental(cost, effect)
    w = _wtp_grid(wtp)
    return w[:, None] * de.mean(axis=0)[None, :] - dc.mean(axis=0)[None, :]


def ceaf(cost, effect, wtp, prob: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cost-effectiveness acceptability frontier.

    Returns (optimal strategy index (W,), its probability of being cost-effective (W,)).
    The optimal strategy maximises expected net benefit (ties: first listed). ``prob``: the
    CEAC at the same wtp values when already computed (:func:`ceac`).
    """
    opt = np.argmax(expected_inb(cost, effect, wtp), axis=1)
    prob = ceac(cost, effect, wtp) if prob is None else prob
    return opt, prob[np.arange(len(opt)), opt]


def evpi(cost, effect, wtp) -> np.ndarray:
    """Expected value of perfect information per patient at each wtp, (W,).

    EVPI = mean_draws(max_k INB_k) - max_k mean_draws(INB_k), with INB against strategy 0.
    """
    dc, de = incremental(cost, effect)
    w = _wtp_grid(wtp)
    first = _mean_max(np.ascontiguousarray(dc[:, 1:].T), np.ascontiguousarray(de[:, 1:].T), w)
    best_mean = (w[:, None] * de.mean(axis=0)[None, :] - dc.mean(axis=0)[None, :]).max(axis=1)
    # Jensen: never negative; tiny values either side of 0 are rounding of equal terms
    return _clean(first - best_mean, dc, de, w)


def _clean(value: np.ndarray, dc: np.ndarray, de: np.ndarray, w: np.ndarray) -> np.ndarray:
    """0 for values within rounding of 0: below NOISE_RTOL x the scale of the incremental net
    benefit at each wtp (w x max mean |dE| + max mean |dC|)."""
    scale = w * np.abs(de).mean(axis=0).max() + np.abs(dc).mean(axis=0).max()
    return np.where(value > NOISE_RTOL * scale, value, 0.0)


def population_multiplier(
    population_annual: float, horizon_years: float, discount_rate: float
) -> float:
    """Discounted number of patients affected by the decision over its horizon.

    sum over years t = 0 .. H-1 of population_annual / (1 + r)^t, where H = horizon_years
    (a fractional last year counts pro rata); each year's incident cohort is treated at the
    start of its year.
    """
    if population_annual is None or not np.isfinite(population_annual) or population_annual < 0:
        raise CeaError(f"population must be a number >= 0, got {population_annual!r}")
    if not horizon_years > 0:
        raise CeaError(f"decision horizon must be > 0 years, got {horizon_years!r}")
    if not 0 <= discount_rate < 1:
        raise CeaError(f"discount rate must be in [0, 1), got {discount_rate!r}")
    whole = int(np.floor(horizon_years))
    years = np.arange(whole)
    total = float(np.sum((1.0 + discount_rate) ** -years.astype(float)))
    frac = horizon_years - whole
    if frac > 0:
        total += frac * (1.0 + discount_rate) ** -float(whole)
    return population_annual * total


# --------------------------------------------------------------------------- regression basis


def _rcs_columns(z: np.ndarray, knots: np.ndarray) -> list[np.ndarray]:
    """Non-linear columns of a restricted (natural) cubic spline with the given knots.

    For j = 1..K-2 (Harrell 2015, eq. 2.25, scaled by (t_K - t_1)^2 for conditioning):
    (z - t_j)+^3 - (z - t_{K-1})+^3 (t_K - t_j)/(t_K - t_{K-1}) + (z - t_K)+^3 (t_{K-1} - t_j)/(t_K - t_{K-1}).
    Linear beyond the outer knots.
    """
    t = knots
    K = len(t)
    scale = (t[-1] - t[0]) ** 2
    u = np.maximum(z[None, :] - t[:, None], 0.0)
    cube = u * u * u  # (K, D): (z - t_j)+^3 for every knot, once
    cols = []
    for j in range(K - 2):
        c = (
            cube[j]
            - cube[K - 2] * ((t[K - 1] - t[j]) / (t[K - 1] - t[K - 2]))
            + cube[K - 1] * ((t[K - 2] - t[j]) / (t[K - 1] - t[K - 2]))
        )
        cols.append(c / scale)
    return cols


def n_basis_terms(n_params: int, basis: str, knots: int = len(SPLINE_KNOT_QUANTILES)) -> int:
    """Number of regression terms (excluding the intercept) of a basis for ``n_params``."""
    if basis == "linear":
        return n_params
    per = 1 + max(0, knots - 2)
    terms = n_params * per
    if basis == "spline+interactions":
        terms += n_params * (n_params - 1) // 2
    elif basis != "spline":
        raise CeaError(f"unknown basis '{basis}' (known: {', '.join(BASES)})")
    return terms


def design_matrix(X, basis: str = "spline+interactions") -> np.ndarray:
    """Regression design for the EVPPI: intercept plus the basis terms of each column of X.

    X : (D, p) parameter draws. Each column is standardised; "linear" uses it alone,
    "spline" adds the restricted cubic spline terms with knots at
    :data:`SPLINE_KNOT_QUANTILES` (fewer when the column has few distinct values), and
    "spline+interactions" also adds the products of every pair of standardised columns.
    Returns (D, 1 + terms).
    """
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if basis not in BASES:
        raise CeaError(f"unknown basis '{basis}' (known: {', '.join(BASES)})")
    D, p = X.shape
    sd = X.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    Z = (X - X.mean(axis=0)) / sd
    cols = [np.ones(D)]
    all_knots = np.quantile(Z, SPLINE_KNOT_QUANTILES, axis=0) if basis != "linear" else None
    for j in range(p):
        z = Z[:, j]
        cols.append(z)
        if basis != "linear":
            knots = all_knots[:, j]
            span = max(1.0, float(np.abs(knots).max()))
            if np.all(np.diff(knots) > KNOT_RTOL * span):
                cols.extend(_rcs_columns(z, knots))
    if basis == "spline+interactions":
        for a in range(p):
            for b in range(a + 1, p):
                cols.append(Z[:, a] * Z[:, b])
    return np.column_stack(cols)


def choose_basis(n_params: int, n_draws: int) -> str | None:
    """The richest basis with terms < n_draws / MIN_DRAWS_PER_TERM, or None (refused).
    Interactions only up to MAX_INTERACTION_PARAMS parameters."""
    for basis in BASES:
        if basis == "spline+interactions" and n_params > MAX_INTERACTION_PARAMS:
            continue
        if n_basis_terms(n_params, basis) * MIN_DRAWS_PER_TERM < n_draws:
            return basis
    return None


# --------------------------------------------------------------------------- EVPPI


@dataclass
class EvppiResult:
    """EVPPI of one parameter group.

    evppi : (W,) per patient at each wtp of the grid (NaN when refused).
    r2 : (K-1,) R^2 of the fitted incremental net benefit of strategies 1..K-1 against
        strategy 0 at ``r2_wtp`` (NaN for a constant INB).
    n_terms : regression terms excluding the intercept; n_draws : draws used.
    basis : the basis used, or None when refused; status : "ok" or the reason for refusing.
    """

    evppi: np.ndarray
    r2: np.ndarray
    n_terms: int
    n_draws: int
    basis: str | None
    status: str
    r2_wtp: float = float("nan")
    fitted: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)


def evppi_regression(
    cost,
    effect,
    X,
    wtp,
    r2_wtp: float | None = None,
    basis: str | None = None,
    keep_fitted: bool = False,
) -> EvppiResult:
    """EVPPI of the parameters in the columns of X by non-parametric regression.

    Parameters
    ----------
    cost, effect : (D, K) per-draw results per strategy.
    X : (D, p) the group's parameter draws (the same draws that produced cost and effect).
    wtp : scalar or (W,) grid.
    r2_wtp : wtp at which R^2 is reported (default: the last of the grid).
    basis : force a basis; by default the richest allowed by :func:`choose_basis`. A forced
        basis is still refused when it has too many terms.

    Returns
    -------
    EvppiResult. evppi = mean_draws(max_k g_k) - max_k mean_draws(g_k), where g_k is the fitted
    E[INB_k | X]; the fits keep the mean of INB (the design has an intercept), so the second
    term equals the one in the EVPI.
    """
    dc, de = incremental(cost, effect)
    D, K = dc.shape
    w = _wtp_grid(wtp)
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.shape[0] != D:
        raise CeaError(
            f"parameter draws have {X.shape[0]} rows but the results have {D} draws (BCEA#53)"
        )
    if not np.all(np.isfinite(X)):
        raise CeaError("parameter draws have non-finite values")
    p = X.shape[1]
    r2_at = float(w[-1] if r2_wtp is None else r2_wtp)
    nan_w, nan_k = np.full(len(w), np.nan), np.full(K - 1, np.nan)
    if p == 0:
        return EvppiResult(np.zeros(len(w)), nan_k, 0, D, None, "no uncertain parameters", r2_at)
    chosen = basis or choose_basis(p, D)
    if chosen is None or n_basis_terms(p, chosen) * MIN_DRAWS_PER_TERM >= D:
        terms = n_basis_terms(p, chosen or "linear")
        return EvppiResult(
            nan_w,
            nan_k,
            terms,
            D,
            None,
            f"refused: {terms} terms need more than {terms * MIN_DRAWS_PER_TERM} draws, have {D}",
            r2_at,
        )
    A = design_matrix(X, chosen)
    Y = np.concatenate([dc[:, 1:], de[:, 1:]], axis=1)  # (D, 2(K-1))
    fit = A @ _least_squares(A, Y)
    fc, fe = fit[:, : K - 1], fit[:, K - 1 :]
    first = _mean_max(np.ascontiguousarray(fc.T), np.ascontiguousarray(fe.T), w)
    # the fits keep the means (intercept), so the baseline is max(0, max_k mean INB_k)
    base = np.maximum(
        (w[:, None] * fe.mean(axis=0)[None, :] - fc.mean(axis=0)[None, :]).max(axis=1), 0.0
    )
    out = _clean(first - base, dc, de, w)
    inb = r2_at * de[:, 1:] - dc[:, 1:]
    g = r2_at * fe - fc
    sst = ((inb - inb.mean(axis=0)) ** 2).sum(axis=0)
    sse = ((inb - g) ** 2).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(sst > 0, 1.0 - sse / sst, np.nan)
    return EvppiResult(
        evppi=out,
        r2=r2,
        n_terms=A.shape[1] - 1,
        n_draws=D,
        basis=chosen,
        status="ok",
        r2_wtp=r2_at,
        fitted=(fc, fe) if keep_fitted else None,
    )


def _least_squares(A: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Least-squares coefficients through the normal equations, solved by an eigendecomposition
    of A'A that drops directions with eigenvalue below EIGEN_RTOL x the largest (a collinear
    basis then behaves like the minimum-norm solution). The columns are standardised, so A'A is
    well conditioned; this is 10-50 times faster than an SVD of A for 10,000+ draws."""
    G = A.T @ A
    lam, V = np.linalg.eigh(G)
    keep = lam > EIGEN_RTOL * lam.max()
    Vk = V[:, keep]
    return Vk @ ((Vk.T @ (A.T @ Y)) / lam[keep][:, None])


def evppi_nested(
    net_benefit: Callable[[np.ndarray, np.ndarray], np.ndarray],
    sample_group: Callable[[int, np.random.Generator], np.ndarray],
    sample_rest: Callable[[np.ndarray, int, np.random.Generator], np.ndarray],
    n_outer: int,
    n_inner: int,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """Two-level Monte Carlo EVPPI, for checking the regression on small models.

    For each of ``n_outer`` draws phi_i of the group, draw ``n_inner`` values of the other
    parameters given phi_i, average the net benefit of each strategy over them, and take the
    maximum; EVPPI = mean_i max_k mean_j NB_k(phi_i, psi_ij) - max_k mean NB_k. The outer
    baseline term uses the same inner samples. The estimator is biased upwards by O(1/n_inner)
    (the inner maximum of noisy means); choose n_inner large.

    Parameters
    ----------
    net_benefit : (phi (N, p), psi (N, q)) -> (N, K) net benefit.
    sample_group : (n, rng) -> (n, p) draws of the group.
    sample_rest : (phi (p,), n, rng) -> (n, q) draws of the other parameters given phi_i.

    Returns
    -------
    (evppi, Monte Carlo standard error of the first term).
    """
    phi = np.asarray(sample_group(n_outer, rng), dtype=float).reshape(n_outer, -1)
    cond = []
    for i in range(n_outer):
        psi = np.asarray(sample_rest(phi[i], n_inner, rng), dtype=float).reshape(n_inner, -1)
        nb = np.asarray(net_benefit(np.repeat(phi[i : i + 1], n_inner, axis=0), psi), dtype=float)
        cond.append(nb.mean(axis=0))
    cond = np.asarray(cond)  # (n_outer, K)
    best = cond.max(axis=1)
    value = float(best.mean() - cond.mean(axis=0).max())
    return value, float(best.std(ddof=1) / np.sqrt(n_outer))


# --------------------------------------------------------------------------- convergence


def running_mean_se(
    x, points: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Running mean and its Monte Carlo standard error sd / sqrt(n) of a (D,) or (D, m) series.

    Returns (n at each point, mean (P, ...), se (P, ...)); ``points`` default to about 200
    draw counts spaced evenly on a log scale from 10 (or 2) to D.
    """
    x = np.asarray(x, dtype=float)
    D = x.shape[0]
    if D < 2:
        raise CeaError("need at least 2 draws for a running standard error")
    if points is None:
        points = running_points(D)
    n = np.asarray(points, dtype=int)
    c1 = np.cumsum(x, axis=0)
    # running variance from shifted sums (shift by the overall mean for accuracy)
    xc = x - x.mean(axis=0)
    s1 = np.cumsum(xc, axis=0)
    s2 = np.cumsum(xc**2, axis=0)
    idx = n - 1
    shape = (-1,) + (1,) * (x.ndim - 1)
    nn = n.reshape(shape).astype(float)
    mean = c1[idx] / nn
    var = (s2[idx] - s1[idx] ** 2 / nn) / np.maximum(nn - 1, 1)
    se = np.sqrt(np.maximum(var, 0.0) / nn)
    return n, mean, se


def running_points(D: int, n_points: int = 200) -> np.ndarray:
    """About ``n_points`` distinct draw counts from min(10, D) to D, evenly spaced on a log scale."""
    lo = min(10, D) if D > 2 else 2
    pts = np.unique(np.round(np.geomspace(lo, D, n_points)).astype(int))
    return pts[(pts >= 2) & (pts <= D)]

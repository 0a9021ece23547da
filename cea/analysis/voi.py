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
- **EVPPI** of a parameter group phi = E_phi[max_k E(NB_k | phi)] - max_k E[NB_k]
  (:func:`evppi_gp`). The inner conditional expectation is estimated by Gaussian-process
  regression of each strategy's incremental cost and effect on phi (Strong, Oakley & Brennan,
  Med Decis Making 2014;34:311-326, the "GP" method of SAVI and the voi package): a
  squared-exponential kernel with a lengthscale per parameter, so interactions among the
  group's parameters are fitted, lengthscales by maximum marginal likelihood on a subsample,
  and the posterior mean fitted to every draw by a reduced-rank GP whose smoothing is chosen by
  generalised cross-validation on every draw, so the cost is linear in the draws. Because INB is linear in wtp, E[INB | phi] = wtp * E[dE | phi] - E[dC | phi], so one fit
  per group gives the EVPPI at every wtp. Each EVPPI has a standard error (:func:`evppi_se`,
  from its influence function: Monte Carlo error of the outer mean and error of the fit), and
  is capped at the EVPI (above it is estimation error, kept apart in ``estimate``).
- The EVPPI of all uncertain parameters together is the EVPI by definition (the model is
  deterministic given its parameters): :func:`evppi_all_parameters` reports it as such.
- :func:`evppi_nested` is the two-level Monte Carlo estimator for small test cases.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import chain, islice

import numpy as np
from scipy import linalg, optimize
from threadpoolctl import threadpool_limits

from cea.errors import CeaError

#: A group is refused (EVPPI not reported) with this many draws per parameter or fewer: the
#: linear mean of the GP has an unpenalised term per parameter (dampack#111).
MIN_DRAWS_PER_TERM = 10
#: The GP hyperparameters of a group of p parameters are estimated on GP_HYPER_DRAWS_PER_PARAMETER
#: x p draws at evenly spaced positions, at least GP_HYPER_DRAWS_MIN and at most GP_HYPER_DRAWS_MAX
#: (SAVI and the voi package use min(30 p, 250); with 60 draws for 2 parameters the interaction
#: test of tests/test_analysis_voi.py was missed in 1 PSA of 30, with 100 in none). Each
#: likelihood evaluation costs draws^3.
GP_HYPER_DRAWS_PER_PARAMETER = 30
GP_HYPER_DRAWS_MIN = 100
GP_HYPER_DRAWS_MAX = 250
#: Draws, at evenly spaced positions, among which the inducing points of the fit to every draw
#: are chosen (at least MIN_DRAWS_PER_TERM x (p + 1)). The fit costs draws x (inducing points)^2.
GP_INDUCING_DRAWS = 150
#: Bounds of the GP lengthscales, in standard deviations of the parameter: from a tenth (a
#: sharper bend than a PSA distribution supports) to 1,000 (no effect).
GP_LENGTHSCALE_BOUNDS = (0.1, 1e3)
#: Log-normal prior of each lengthscale (in standard deviations of the parameter, kernel
#: exp(-(dz / l)^2)): mean and sd of log l, the mean plus log(p) / 2 for p parameters. It is the
#: dimension-scaled prior of Hvarfner, Hellsten & Nardi (ICML 2024), LogNormal(sqrt(2) +
#: log(p) / 2, sqrt(3)) for inputs on [0, 1] and kernel exp(-dz^2 / (2 l^2)), in these units
#: (x sqrt(2) x 3.46 standard deviations per unit range: +1.59 on the log scale). It breaks the
#: tie between "no effect" (long lengthscales) and "white noise fitted as signal" (lengthscales
#: shorter than the spacing of the draws), which the likelihood cannot tell apart.
GP_LENGTHSCALE_PRIOR = (np.sqrt(2.0) + 1.59, np.sqrt(3.0))
#: Inverse-gamma (shape, scale) prior of the noise ratio eta, as in SAVI (Strong et al. 2014):
#: keeps eta away from 0, where the fit would interpolate noise.
GP_NOISE_RATIO_PRIOR = (0.001, 1.0)
#: Noise ratios eta among which generalised cross-validation on every draw chooses the GP fit's
#: smoothing (every quarter decade from 1e-6; the largest is, to rounding, the linear fit).
GCV_ETA_GRID = 10.0 ** np.arange(-6.0, 10.01, 0.25)
#: Bounds of the GP noise ratio eta = residual variance / signal variance.
GP_NOISE_RATIO_BOUNDS = (1e-8, 1e4)
#: Added to the diagonal of the unit-variance kernel matrix for a stable Cholesky factor.
GP_JITTER = 1e-8
#: Starting lengthscales of L-BFGS-B, times sqrt(p) (the typical distance between two draws in
#: standard deviations is sqrt(2p)); the best optimum is kept. A start at very long lengthscales
#: would stall: the kernel is flat there and so is the likelihood.
GP_STARTS = (1.0,)
#: Iteration limit of L-BFGS-B for the hyperparameters, and its relative tolerance on the log
#: posterior. Most groups converge in about 10 evaluations; the 13 prices of the IgRT model went
#: on for over 100, fitting noise in the subsample that the GCV on every draw then rejected
#: (it chose the linear fit): the limit bounds the time and the GCV judges the result.
GP_MAX_ITERATIONS = 30
GP_FTOL = 1e-6
#: Largest block of GP features (draws x basis columns x 8 bytes) held at once, so the memory of
#: the fit does not grow with the draws; blocks that stay in the CPU's cache were faster than one
#: large block (1.2 s against 2.2-2.8 s at 100,000 draws and 259 columns). Results agree to
#: rounding whatever the blocks.
GP_FEATURE_BYTES = 4 * 2**20
#: The pivoted Cholesky factorisation that picks the GP's inducing points stops when no point
#: of the subsample has more than this variance (of 1) left unexplained by the points chosen.
NYSTROM_TOL = 1e-6
#: An EVPPI is told apart from 0 when it is more than this many standard errors above it.
RESOLVE_Z = 2.0
#: An EVPPI not told apart from 0: the draws needed are those that would tell apart an EVPPI of
#: this share of the EVPI (or the estimate, if larger), the smallest worth knowing about.
MATERIAL_SHARE_OF_EVPI = 0.1
#: Draw counts in the "draws needed" statements are rounded up to a multiple of this.
DRAWS_ROUNDING = 1000
#: EVPI and EVPPI below this fraction of the scale of the incremental net benefit are rounding
#: of equal terms (E[max] - max E when one strategy is best in every draw) and reported as 0.
NOISE_RTOL = 1e-12
#: WTP values computed together in the CEAC (bounds memory to WTP_BLOCK x DRAW_BLOCK per array;
#: results do not depend on it).
WTP_BLOCK = 32
#: Draws per block of the per-draw work (the CEAC, the exact mean of the maximum, the means, the
#: EVPPI's fit, fitted values and standard errors): bounds its temporaries whatever the number of
#: draws, and the blocks run in threads (:func:`in_blocks`). The blocks do not depend on the
#: number of threads and their sums are added in block order, so no result does; with at most
#: this many draws there is one block and the sums are those of the whole arrays.
DRAW_BLOCK = 16_384


def cpus() -> int:
    """The CPUs this process may use (its affinity, where the system tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


#: Items started ahead of the one being yielded, per thread: keeps every thread busy while the
#: caller takes the results in order.
AHEAD = 2


def in_threads(fn: Callable, items: Iterable, workers: int | None = None) -> Iterator:
    """``fn(item)`` for every item, ``workers`` at a time in threads (None: one per CPU; the
    compiled kernel and NumPy's loops release the interpreter's lock), yielded in the items'
    order: the package's one thread helper (the model's chunks, the analysis's blocks). At
    most AHEAD x ``workers`` items are started ahead of the one yielded, and a result is let
    go once yielded, so memory does not grow with the number of items (the caller streams
    them). An exception in one item cancels the items not yet started and is raised once the
    running ones have finished. One worker, or one item, runs in the caller's thread: starting
    threads for a single item only costs (the analysis of 10,000 draws is one block of draws)."""
    items = iter(items)
    n = workers or cpus()
    first = list(islice(items, 2))
    items = chain(first, items)
    if n <= 1 or len(first) < 2:
        for item in items:
            yield fn(item)
        return

    state = np.geterr()  # the caller's np.errstate, which a new thread does not inherit

    def run(item):
        with np.errstate(**state):
            return fn(item)

    def submit(item):
        return pool.submit(run, item)

    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="cea-worker") as pool:
        pending = deque(submit(item) for item in islice(items, AHEAD * n))
        try:
            while pending:
                result = pending.popleft().result()
                for item in islice(items, 1):
                    pending.append(submit(item))
                yield result
                del result
        finally:
            for future in pending:
                future.cancel()


def in_blocks(
    fn: Callable, n_draws: int, workers: int | None = None, size: int | None = None
) -> Iterator:
    """``fn(lo, hi)`` of every block of ``size`` (default :data:`DRAW_BLOCK`) draws, in threads
    (:func:`in_threads`), yielded in the order of the blocks."""
    size = size or DRAW_BLOCK
    return in_threads(lambda lo: fn(lo, min(n_draws, lo + size)), range(0, n_draws, size), workers)


def _block_sums(parts) -> tuple:
    """Sums of the blocks' tuples of arrays, term by term, added in the order of the blocks."""
    total = None
    for part in parts:
        total = list(part) if total is None else [t + x for t, x in zip(total, part, strict=True)]
    return tuple(total)


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


def ceac(cost, effect, wtp, workers: int | None = None) -> np.ndarray:
    """Cost-effectiveness acceptability curves of all strategies.

    Returns (W, K): the share of draws in which each strategy has the highest net benefit at
    each wtp; every row sums to 1. Blocks of draws count in threads (``workers``); the counts
    are whole numbers, so the shares are the same to the bit whatever the blocks.
    """
    c, e = _check_pair(cost, effect)
    w = _wtp_grid(wtp)
    D = len(c)
    counts = _block_sums(
        in_blocks(lambda lo, hi: (_ceac_counts(c[lo:hi], e[lo:hi], w),), D, workers)
    )
    return counts[0] / D


def _ceac_counts(c: np.ndarray, e: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(W, K) draws of ``c``, ``e`` in which each strategy has the highest net benefit."""
    dc, de = c - c[:, :1], e - e[:, :1]
    K = dc.shape[1]
    dcT, deT = np.ascontiguousarray(dc.T), np.ascontiguousarray(de.T)
    out = np.empty((len(w), K))
    for lo in range(0, len(w), WTP_BLOCK):
        lam = w[lo : lo + WTP_BLOCK, None]
        # running argmax over strategies on contiguous (wtp block x D) arrays (ties: first)
        best_v = lam * deT[0] - dcT[0]
        best_k = np.zeros(best_v.shape, dtype=np.min_scalar_type(K))
        v = np.empty_like(best_v)
        better = np.empty(best_v.shape, dtype=bool)
        for k in range(1, K):
            np.multiply(lam, deT[k], out=v)
            v -= dcT[k]
            np.greater(v, best_v, out=better)
            np.maximum(best_v, v, out=best_v)
            np.copyto(best_k, k, where=better)
        for k in range(K):
            out[lo : lo + WTP_BLOCK, k] = np.count_nonzero(best_k == k, axis=1)
    return out


def _mean_max(dcT: np.ndarray, deT: np.ndarray, w: np.ndarray) -> np.ndarray:
    """mean over draws of max(0, max_k (lam de_k - dc_k)) for each lam in w, (W,).

    dcT, deT: (K-1, D) incremental cost and effect of strategies 1..K-1 (strategy 0 gives 0).
    Exact, without evaluating every line at every lam (:func:`_envelope_sums`); blocks of draws
    add their sums before the mean is formed (:func:`_from_envelope`).
    """
    order = np.argsort(w, kind="stable")
    return _from_envelope(_envelope_sums(dcT, deT, w[order]), w, order, dcT.shape[1])


def _envelope_sums(dcT: np.ndarray, deT: np.ndarray, grid: np.ndarray) -> tuple:
    """The sums behind :func:`_mean_max` over the draws of ``dcT``, ``deT`` at the sorted
    ``grid``: two (W + 1,) difference arrays, of the slopes and of the intercepts of each draw's
    maximum over the grid points.

    As lam grows, each draw's maximum follows the upper envelope of its lines (the zero line and
    one per strategy), whose slope only increases. From the line on top at the smallest lam, the
    next piece starts where a steeper line crosses it first; at most K pieces per draw. Each
    piece adds its slope and intercept to the grid points it covers (difference arrays), so the
    cost is K^2 x D, not W x K x D; the sums agree with the direct evaluation to rounding
    (tested).
    """
    D = dcT.shape[1]
    slopes = np.vstack([np.zeros((1, D)), deT])  # line k: lam * slopes[k] - costs[k]
    costs = np.vstack([np.zeros((1, D)), dcT])
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
    return slope_sum, cost_sum


def _from_envelope(sums: tuple, w: np.ndarray, order: np.ndarray, D: int) -> np.ndarray:
    """:func:`_mean_max` at ``w`` from the sums of :func:`_envelope_sums` over D draws at the
    grid ``w[order]``."""
    slope_sum, cost_sum = sums
    grid = w[order]
    W = len(grid)
    out = np.empty(W)
    out[order] = (grid * np.cumsum(slope_sum)[:W] - np.cumsum(cost_sum)[:W]) / D
    return out


def _incremental_sums(dc: np.ndarray, de: np.ndarray) -> tuple:
    """Sums over the draws of the incremental cost and effect ``dc``, ``de`` (n, K) and of
    their absolute values, (K,) each."""
    return dc.sum(axis=0), de.sum(axis=0), np.abs(dc).sum(axis=0), np.abs(de).sum(axis=0)


def expected_inb(cost, effect, wtp, workers: int | None = None) -> np.ndarray:
    """Mean incremental net benefit against the first strategy, (W, K)."""
    c, e = _check_pair(cost, effect)
    w = _wtp_grid(wtp)

    def block(lo: int, hi: int) -> tuple:
        return _incremental_sums(c[lo:hi] - c[lo:hi, :1], e[lo:hi] - e[lo:hi, :1])

    sdc, sde, _, _ = _block_sums(in_blocks(block, len(c), workers))
    return w[:, None] * (sde / len(c))[None, :] - (sdc / len(c))[None, :]


def ceaf(
    cost, effect, wtp, prob: np.ndarray | None = None, workers: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cost-effectiveness acceptability frontier.

    Returns (optimal strategy index (W,), its probability of being cost-effective (W,)).
    The optimal strategy maximises expected net benefit (ties: first listed). ``prob``: the
    CEAC at the same wtp values when already computed (:func:`ceac`).
    """
    opt = np.argmax(expected_inb(cost, effect, wtp, workers), axis=1)
    prob = ceac(cost, effect, wtp, workers) if prob is None else prob
    return opt, prob[np.arange(len(opt)), opt]


def evpi(cost, effect, wtp, workers: int | None = None) -> np.ndarray:
    """Expected value of perfect information per patient at each wtp, (W,).

    EVPI = mean_draws(max_k INB_k) - max_k mean_draws(INB_k), with INB against strategy 0;
    blocks of draws in threads (``workers``).
    """
    c, e = _check_pair(cost, effect)
    w = _wtp_grid(wtp)
    D = len(c)
    order = np.argsort(w, kind="stable")

    def block(lo: int, hi: int) -> tuple:
        dc, de = c[lo:hi] - c[lo:hi, :1], e[lo:hi] - e[lo:hi, :1]
        envelope = _envelope_sums(
            np.ascontiguousarray(dc[:, 1:].T), np.ascontiguousarray(de[:, 1:].T), w[order]
        )
        return *envelope, *_incremental_sums(dc, de)

    *envelope, sdc, sde, adc, ade = _block_sums(in_blocks(block, D, workers))
    first = _from_envelope(envelope, w, order, D)
    best_mean = (w[:, None] * (sde / D)[None, :] - (sdc / D)[None, :]).max(axis=1)
    # Jensen: never negative; tiny values either side of 0 are rounding of equal terms
    return _clean(first - best_mean, w * (ade / D).max() + (adc / D).max())


def _clean(value: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """0 for values within rounding of 0: below NOISE_RTOL x the scale of the incremental net
    benefit at each wtp (w x max mean |dE| + max mean |dC|)."""
    return np.where(value > NOISE_RTOL * scale, value, 0.0)


def population_multiplier(
    population_annual: float, horizon_years: float, discount_rate: float, growth: float = 0.0
) -> float:
    """Discounted number of patients affected by the decision over its horizon.

    sum over years t = 0 .. H-1 of population_annual (1 + g)^t / (1 + r)^t, where H =
    horizon_years (a fractional last year counts pro rata) and g the yearly growth of the
    eligible population (as the budget impact counts it); each year's incident cohort is
    treated at the start of its year.
    """
    if population_annual is None or not np.isfinite(population_annual) or population_annual < 0:
        raise CeaError(f"population must be a number >= 0, got {population_annual!r}")
    if not horizon_years > 0:
        raise CeaError(f"decision horizon must be > 0 years, got {horizon_years!r}")
    if not 0 <= discount_rate < 1:
        raise CeaError(f"discount rate must be in [0, 1), got {discount_rate!r}")
    if not growth > -1:
        raise CeaError(f"population growth must be above -1, got {growth!r}")
    ratio = (1.0 + growth) / (1.0 + discount_rate)
    whole = int(np.floor(horizon_years))
    years = np.arange(whole)
    total = float(np.sum(ratio ** years.astype(float)))
    frac = horizon_years - whole
    if frac > 0:
        total += frac * ratio ** float(whole)
    return population_annual * total


# --------------------------------------------------------------------------- EVPPI


@dataclass
class EvppiResult:
    """EVPPI of one parameter group at each wtp of a grid.

    evppi : (W,) per patient, never above the EVPI (NaN when refused).
    se : (W,) its standard error (NaN where not computed, see ``se_wtp``).
    evpi : (W,) the EVPI of the same draws, the upper bound.
    estimate : (W,) the estimator's value before capping at the EVPI; where it is above the
        EVPI (``capped``), the difference is estimation error, not value.
    r2 : (K-1,) R^2 of the fitted incremental net benefit of strategies 1..K-1 against
        strategy 0 at ``r2_wtp`` (NaN for a constant INB; 1 for all parameters).
    method : "gp", "evpi" (all parameters: EVPPI = EVPI) or None (refused / nothing uncertain).
    status : "ok" or the reason for refusing.
    n_draws : draws used; n_fit : draws on which the hyperparameters were estimated;
    n_terms : columns of the regression basis (1 + p + inducing points); edf : its effective degrees of freedom
        (trace of the smoother); lengthscales : (p,) in standard deviations of each parameter;
        noise_ratio : residual variance over GP signal variance.
    """

    evppi: np.ndarray
    se: np.ndarray
    evpi: np.ndarray
    estimate: np.ndarray
    r2: np.ndarray
    method: str | None
    status: str
    n_draws: int
    n_fit: int = 0
    n_terms: int = 0
    edf: float = float("nan")
    r2_wtp: float = float("nan")
    lengthscales: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    noise_ratio: float = float("nan")
    fitted: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def capped(self) -> np.ndarray:
        """(W,) True where the estimate was above the EVPI and is reported as the EVPI."""
        return np.isfinite(self.estimate) & (self.estimate > self.evppi)


def _check_group(X, D: int) -> list[np.ndarray]:
    """A group's parameter draws as a list of (D,) columns: X is (D,), (D, p), or a sequence of
    (D,) columns (columns of the PSA's draws table are views of it, not copies)."""
    if isinstance(X, list | tuple):
        cols = [np.asarray(x, dtype=float) for x in X]
    else:
        X = np.asarray(X, dtype=float)
        X = X[:, None] if X.ndim == 1 else X
        if X.ndim != 2:
            raise CeaError(f"parameter draws must be (draws, parameters), got shape {X.shape}")
        cols = [X[:, j] for j in range(X.shape[1])]
    for x in cols:
        if x.shape != (D,):
            raise CeaError(
                f"parameter draws have {len(x)} rows but the results have {D} draws (BCEA#53)"
            )
        if not np.all(np.isfinite(x)):
            raise CeaError("parameter draws have non-finite values")
    return cols


def _wtp_subset(w: np.ndarray, se_wtp) -> np.ndarray:
    """Indices of the grid ``w`` at which a standard error is wanted (all when None)."""
    if se_wtp is None:
        return np.arange(len(w))
    want = _wtp_grid(se_wtp)
    idx = np.flatnonzero(np.isin(w, want))
    if len(np.unique(w[idx])) != len(np.unique(want)):
        raise CeaError("se_wtp must be values of the wtp grid")
    return idx


def evppi_se(inb: np.ndarray, fitted_inb: np.ndarray) -> tuple[float, float]:
    """EVPPI from fitted values and its standard error by the influence function.

    inb, fitted_inb : (D, K-1) incremental net benefit of strategies 1..K-1 against strategy 0
    at one wtp, observed and fitted (E[INB | group]), the fit keeping the means.

    With g_k = E[INB_k | phi] (g_0 = 0), k*(phi) = argmax_k g_k and kbar = argmax_k E[INB_k],
    EVPPI = E[g_k*(phi) - g_kbar(phi)]. Its influence function (as for the value of an optimal
    treatment rule; Luedtke & van der Laan 2016) is

        IF = g_k* - g_kbar - EVPPI + (INB_k* - g_k*) - (INB_kbar - g_kbar),

    the spread of the conditional gain over the draws (Monte Carlo error of the outer mean) plus
    the residuals in the draws where the decision changes (error of the fit, which is what a
    regression on a subsample would lose). SE = sd(IF) / sqrt(D); it scales as 1 / sqrt(D), so
    four times the draws halve it. It leaves out bias (a basis that misses the model's
    structure), which the tests bound on models with a known EVPPI.

    Returns (EVPPI, SE).
    """
    D = inb.shape[0]
    g = np.concatenate([np.zeros((D, 1)), fitted_inb], axis=1)
    y = np.concatenate([np.zeros((D, 1)), inb], axis=1)
    kbar = int(np.argmax(g.mean(axis=0)))
    kstar = np.argmax(g, axis=1)
    rows = np.arange(D)
    gain = g[rows, kstar] - g[:, kbar]
    infl = gain + (y[rows, kstar] - g[rows, kstar]) - (y[:, kbar] - g[:, kbar])
    return float(gain.mean()), float(infl.std(ddof=1) / np.sqrt(D)) if D > 1 else float("nan")


def _se_sums(inb: np.ndarray, fitted_inb: np.ndarray) -> tuple:
    """The sums over a block of draws behind :func:`evppi_se`, for every strategy as kbar
    (known only once every block is summed): the sums of g (K,), of the influence function (K,)
    and of its squared deviations from the block's mean (K,), and the block's draws."""
    n = inb.shape[0]
    g = np.concatenate([np.zeros((n, 1)), fitted_inb], axis=1)
    y = np.concatenate([np.zeros((n, 1)), inb], axis=1)
    kstar = np.argmax(g, axis=1)
    rows = np.arange(n)
    total, dev2 = np.empty(g.shape[1]), np.empty(g.shape[1])
    for kbar in range(g.shape[1]):
        gain = g[rows, kstar] - g[:, kbar]
        infl = gain + (y[rows, kstar] - g[rows, kstar]) - (y[:, kbar] - g[:, kbar])
        total[kbar] = infl.sum()
        dev2[kbar] = ((infl - total[kbar] / n) ** 2).sum()
    return g.sum(axis=0), total, dev2, n


def _se_from_sums(parts: list) -> float:
    """The standard error of :func:`evppi_se` from the blocks' :func:`_se_sums`, in block order:
    kbar from the mean of g, then the variance of the influence function from the blocks' means
    and squared deviations (Chan, Golub & LeVeque's pairwise update; with one block, exactly
    ``std(ddof=1)``)."""
    D = sum(p[3] for p in parts)
    if D < 2:
        return float("nan")
    kbar = int(np.argmax(_block_sums([p[:1] for p in parts])[0] / D))
    mean = _block_sums([(p[1][kbar],) for p in parts])[0] / D
    dev2 = _block_sums([(p[2][kbar] + p[3] * (p[1][kbar] / p[3] - mean) ** 2,) for p in parts])[0]
    return float(np.sqrt(dev2 / (D - 1)) / np.sqrt(D))


def evppi_all_parameters(
    cost, effect, wtp, se_wtp=None, workers: int | None = None, evpi_values=None
) -> EvppiResult:
    """EVPPI of all the model's uncertain parameters together: the EVPI, by definition.

    The model is deterministic given its parameters, so E(NB_k | all parameters) is NB_k itself
    and the EVPPI formula is the EVPI formula; no regression is involved. ``se`` is the Monte
    Carlo standard error of the EVPI, sd(max_k INB_k - INB_kbar) / sqrt(D)
    (:func:`evppi_se` with the fit equal to the data), over blocks of draws in threads.
    ``evpi_values``: the EVPI at ``wtp`` when already computed.
    """
    c, e = _check_pair(cost, effect)
    D, K = c.shape
    w = _wtp_grid(wtp)
    ev = evpi(c, e, w, workers) if evpi_values is None else np.asarray(evpi_values, float)
    se = np.full(len(w), np.nan)
    at = _wtp_subset(w, se_wtp)

    def block(lo: int, hi: int) -> list:
        dc, de = c[lo:hi] - c[lo:hi, :1], e[lo:hi] - e[lo:hi, :1]
        return [_se_sums(inb, inb) for inb in (w[i] * de[:, 1:] - dc[:, 1:] for i in at)]

    if K > 1:
        parts = list(in_blocks(block, D, workers))
        for j, i in enumerate(at):
            se[i] = _se_from_sums([p[j] for p in parts])
    else:
        se[at] = 0.0
    return EvppiResult(
        evppi=ev, se=se, evpi=ev, estimate=ev.copy(), r2=np.ones(K - 1), method="evpi",
        status="ok", n_draws=D, r2_wtp=float(w[-1]),
    )  # fmt: skip


def subsample_index(n_draws: int, n: int) -> np.ndarray:
    """``n`` draws at evenly spaced positions (all when n >= n_draws).

    PSA draws are independent and identically distributed, so any fixed set of positions is a
    random subsample: it needs no random numbers, and the same draws always give the same
    subsample (and the same EVPPI)."""
    if n >= n_draws:
        return np.arange(n_draws)
    return np.unique(np.linspace(0, n_draws - 1, n).round().astype(np.intp))


def hyperparameter_draws(n_params: int) -> int:
    """Draws on which the GP hyperparameters of ``n_params`` parameters are estimated."""
    return int(
        np.clip(GP_HYPER_DRAWS_PER_PARAMETER * n_params, GP_HYPER_DRAWS_MIN, GP_HYPER_DRAWS_MAX)
    )


def _sq_exp_kernel(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """exp(-|a - b|^2) for every row a of A and b of B (inputs already divided by the
    lengthscales), (len(A), len(B))."""
    sq = (A * A).sum(axis=1)[:, None] + (B * B).sum(axis=1)[None, :] - 2.0 * (A @ B.T)
    np.maximum(sq, 0.0, out=sq)
    np.negative(sq, out=sq)
    return np.exp(sq, out=sq)


def _gp_neg_log_likelihood(theta: np.ndarray, Z: np.ndarray, Y: np.ndarray, H: np.ndarray):
    """Negative log marginal likelihood of the GP and its gradient in theta.

    theta = (log lengthscale_1..p, log eta). Each column y of Y (n, J) is modelled as
    N(H beta, s^2 (C + eta I)) with C_ab = exp(-sum_d ((z_ad - z_bd) / l_d)^2), H = [1, Z]
    (the linear mean of Strong et al. 2014); beta and s^2 are profiled out per column (GLS and
    its residual variance), the lengthscales and eta are shared by the columns. Up to a constant,
    NLL = (n / 2) sum_j log s_j^2 + (J / 2) log|K|, K = C + eta I, and
    dNLL/dtheta = -tr(W dK/dtheta) / 2 with W = sum_j a_j a_j' / s_j^2 - J K^-1, a_j = K^-1 (y_j - H beta_j)
    (beta and s^2 at their optimum do not move the gradient).
    """
    n, J = Y.shape
    ell, eta = np.exp(theta[:-1]), float(np.exp(theta[-1]))
    U = Z / ell
    C = _sq_exp_kernel(U, U)
    K = C + (eta + GP_JITTER) * np.eye(n)
    try:
        L = linalg.cho_factor(K, lower=True, check_finite=False)
    except linalg.LinAlgError:
        return np.inf, np.zeros_like(theta)
    KiH = linalg.cho_solve(L, H, check_finite=False)
    KiY = linalg.cho_solve(L, Y, check_finite=False)
    beta = np.linalg.solve(H.T @ KiH, KiH.T @ Y)
    alpha = KiY - KiH @ beta
    s2 = np.maximum(((Y - H @ beta) * alpha).sum(axis=0) / n, np.finfo(float).tiny)
    nll = 0.5 * n * np.log(s2).sum() + J * np.log(np.diag(L[0])).sum()
    Kinv, info = linalg.lapack.dpotri(L[0], lower=1)  # from the Cholesky factor: n^3 / 3
    if info != 0:
        return np.inf, np.zeros_like(theta)
    Kinv = np.tril(Kinv) + np.tril(Kinv, -1).T
    W = (alpha / s2) @ alpha.T - J * Kinv
    M = W * C
    grad_ell = -(2.0 * ((U * U).T @ M.sum(axis=1)) - 2.0 * (U * (M @ U)).sum(axis=0))
    grad_eta = -0.5 * eta * np.trace(W)
    # priors (maximum a posteriori): log-normal on each lengthscale, inverse gamma on eta
    mu, sigma = _lengthscale_prior(Z.shape[1])
    dev = (theta[:-1] - mu) / sigma**2
    a, b = GP_NOISE_RATIO_PRIOR
    nll += 0.5 * float(((theta[:-1] - mu) ** 2).sum()) / sigma**2 + (a + 1) * theta[-1] + b / eta
    return float(nll), np.append(grad_ell + dev, grad_eta + (a + 1) - b / eta)


def _lengthscale_prior(p: int) -> tuple[float, float]:
    """Mean and sd of log lengthscale under the prior: GP_LENGTHSCALE_PRIOR, median scaled by sqrt(p)."""
    mu, sigma = GP_LENGTHSCALE_PRIOR
    return mu + 0.5 * np.log(p), sigma


def gp_hyperparameters(Z: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, float]:
    """Lengthscales (p,) and noise ratio eta of the GP by maximum marginal likelihood.

    Z : (n, p) standardised parameters of the subsample; Y : (n, J) targets (columns with no
    variance are dropped, the others scaled to unit variance so that each counts alike).
    Maximum a posteriori, with the priors :data:`GP_LENGTHSCALE_PRIOR` and
    :data:`GP_NOISE_RATIO_PRIOR`; L-BFGS-B from the prior median lengthscales and eta = 1, within
    :data:`GP_LENGTHSCALE_BOUNDS` and :data:`GP_NOISE_RATIO_BOUNDS`.
    """
    n, p = Z.shape
    sd = Y.std(axis=0)
    keep = sd > NOISE_RTOL * max(1.0, float(np.abs(Y).max(initial=0.0)))
    if not keep.any():  # nothing to fit: smooth and noisy, the fit is the mean
        return np.full(p, GP_LENGTHSCALE_BOUNDS[1]), GP_NOISE_RATIO_BOUNDS[1]
    Ys = (Y[:, keep] - Y[:, keep].mean(axis=0)) / sd[keep]
    H = np.column_stack([np.ones(n), Z])
    bounds = [tuple(np.log(GP_LENGTHSCALE_BOUNDS))] * p + [tuple(np.log(GP_NOISE_RATIO_BOUNDS))]
    best = None
    for start in GP_STARTS:
        x0 = np.append(np.full(p, np.log(start * np.sqrt(p))), 0.0)
        res = optimize.minimize(
            _gp_neg_log_likelihood, x0, args=(Z, Ys, H), jac=True, method="L-BFGS-B",
            bounds=bounds, options={"maxiter": GP_MAX_ITERATIONS, "ftol": GP_FTOL},
        )  # fmt: skip
        if best is None or res.fun < best.fun:
            best = res
    res = best
    return np.exp(res.x[:-1]), float(np.exp(res.x[-1]))


def _gp_fit(
    z: Callable, y: Callable, D: int, sub: np.ndarray, ell: np.ndarray, T: np.ndarray,
    workers: int | None = None,
) -> tuple[Callable, int, float, float]:  # fmt: skip
    """Posterior mean of the GP at every draw, fitted to every draw (linear in the draws).

    A reduced-rank GP (subset of regressors with Nystrom features; Rasmussen & Williams 2006,
    section 8.3): the kernel part is spanned by k(z, z_r) at r inducing points z_r chosen among
    the subsample by a pivoted Cholesky factorisation of its kernel matrix, K_rr = L L', stopped
    when the kernel left unexplained is below :data:`NYSTROM_TOL` (smooth fits need few points);
    the features psi(z) = L^-1 k(Z_r, z) give psi(z)'psi(z') ~ k(z, z'). With the linear mean, the
    fit is ridge regression of Y on F = [1, Z, psi] with penalty eta on the psi coefficients (the
    GP prior, in units of the noise) and none on the mean; the normal equations are summed over
    blocks of draws, so memory does not grow with them.

    eta, the amount of smoothing, is chosen on every draw by generalised cross-validation (GCV,
    as mgcv chooses a GAM's smoothing parameters) of the targets Y @ T, over a grid of
    :data:`GCV_ETA_GRID` (a large eta is the linear fit): the lengthscales come from a subsample,
    but how much of the shape they allow is real is judged on all the draws. With
    G = F'F, P = diag(0 for the mean, 1 for psi) and the generalised eigenvectors V (V'GV = I,
    V'PV = diag(mu)), the fit at eta has s_i = 1 / (1 + eta mu_i), edf = sum s_i,
    RSS = y'y - sum_i c_i^2 (2 s_i - s_i^2) with c = V'F'y, GCV = D RSS / (D - edf)^2.

    ``z(rows, order)``: the standardised parameters of the draws ``rows`` (a slice or indices)
    as an (n, p) array in memory order ``order``; ``y(lo, hi)``: the targets of draws lo..hi,
    (n, J). Blocks of draws (:func:`in_blocks`) sum the normal equations in threads.

    Returns (fitted(lo, hi): the fit at draws lo..hi, (n, J); number of basis columns; effective
    degrees of freedom; eta).
    """
    Us = z(sub, "C") / ell
    p = Us.shape[1]
    c, piv, rank, _ = linalg.lapack.dpstrf(_sq_exp_kernel(Us, Us), tol=NYSTROM_TOL, lower=1)
    m = max(int(rank), 1)
    Ur = Us[piv[:m] - 1]  # LAPACK pivots count from 1
    proj = linalg.solve_triangular(np.tril(c[:m, :m]), np.eye(m), lower=True).T  # L^-T
    q = 1 + p + m
    # features in chunks of at most GP_FEATURE_BYTES, blocks of whole chunks, computed twice
    # (for the normal equations, then for the fitted values)
    rows = max(1, GP_FEATURE_BYTES // (8 * q))
    block = rows * max(1, DRAW_BLOCK // rows)

    def features(lo: int, hi: int) -> np.ndarray:
        Z = z(slice(lo, hi), "F")
        F = np.empty((hi - lo, q))
        F[:, 0] = 1.0
        F[:, 1 : 1 + p] = Z
        np.matmul(_sq_exp_kernel(Z / ell, Ur), proj, out=F[:, 1 + p :])
        return F

    def normal_equations(lo: int, hi: int) -> tuple[list, np.ndarray]:
        terms = []
        for a in range(lo, hi, rows):
            F = features(a, min(hi, a + rows))
            terms.append((F.T @ F, F.T @ y(a, min(hi, a + rows))))
        return terms, (y(lo, hi) @ T) ** 2

    # the chunks' terms added one after the other in the order of the draws, as one pass over
    # them would: the fit is ill-conditioned (the jitter below), so another order of the sums
    # would move it by more than rounding
    G, b, yy = np.zeros((q, q)), np.zeros((q, T.shape[0])), np.zeros((1, T.shape[1]))
    for terms, sq in in_blocks(normal_equations, D, workers, block):
        for FtF, FtY in terms:
            G += FtF
            b += FtY
        yy = np.add.reduce(np.concatenate([yy, sq]), axis=0, keepdims=True)
    yy = yy[0]
    P = np.diag(np.concatenate([np.zeros(1 + p), np.ones(m)]))
    G[np.diag_indices(q)] += GP_JITTER * G.diagonal().max()  # collinear features
    mu, V = linalg.eigh(P, G, check_finite=False)
    mu = np.maximum(mu, 0.0)[:, None]
    cb = V.T @ b  # (q, J)
    ct = cb @ T  # the GCV targets
    s = 1.0 / (1.0 + GCV_ETA_GRID[None, :] * mu)  # (q, grid)
    edf = s.sum(axis=0)
    rss = yy.sum() - ((ct**2).sum(axis=1)[:, None] * (2 * s - s * s)).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        gcv = np.where(edf < D, D * rss / (D - edf) ** 2, np.inf)
    best = int(np.argmin(gcv))
    coef = V @ (s[:, best : best + 1] * cb)

    def fitted(lo: int, hi: int) -> np.ndarray:  # row by row: any blocks
        out = np.empty((hi - lo, coef.shape[1]))
        for a in range(lo, hi, rows):
            out[a - lo : min(hi, a + rows) - lo] = features(a, min(hi, a + rows)) @ coef
        return out

    return fitted, q, float(edf[best]), float(GCV_ETA_GRID[best])


def _evppi_gp(
    cost,
    effect,
    X,
    wtp,
    fit_wtp: float | None = None,
    se_wtp=None,
    keep_fitted: bool = False,
    evpi_values: np.ndarray | None = None,
    workers: int | None = None,
) -> EvppiResult:
    """:func:`evppi_gp` without the limit on BLAS threads. Every pass over the draws goes in
    blocks (:func:`in_blocks`): the statistics of the targets, the normal equations of the fit,
    then the fitted values with what is made of them (the mean of the maximum, the means, R^2
    and the standard errors), so that no (draws x strategies) array is held."""
    c, e = _check_pair(cost, effect)
    D, K = c.shape
    w = _wtp_grid(wtp)
    cols = _check_group(X, D)
    fit_at = float(w[-1] if fit_wtp is None else fit_wtp)
    ev = evpi(c, e, w, workers) if evpi_values is None else np.asarray(evpi_values, float)
    nan_w, nan_k = np.full(len(w), np.nan), np.full(K - 1, np.nan)
    sd = np.array([x.std() for x in cols])
    cols = [x for x, v in zip(cols, sd > 0, strict=True) if v]
    p = len(cols)
    if p == 0 or K == 1:
        zero = np.zeros(len(w))
        return EvppiResult(zero, zero.copy(), ev, zero.copy(), nan_k, None,
                           "no uncertain parameters", D, r2_wtp=fit_at)  # fmt: skip
    if D <= MIN_DRAWS_PER_TERM * (p + 1):
        need = MIN_DRAWS_PER_TERM * (p + 1) + 1
        return EvppiResult(
            nan_w, nan_w.copy(), ev, nan_w.copy(), nan_k, None,
            f"refused: {p} parameters need at least {need:,} draws, have {D:,}", D, r2_wtp=fit_at,
        )  # fmt: skip
    mean, sd = np.array([x.mean() for x in cols]), sd[sd > 0]

    def z(rows, order: str) -> np.ndarray:
        """The standardised parameters of the draws ``rows`` (a slice or indices), (n, p)."""
        out = np.empty(
            (len(range(D)[rows]) if isinstance(rows, slice) else len(rows), p), order=order
        )
        for j, x in enumerate(cols):
            out[:, j] = (x[rows] - mean[j]) / sd[j]
        return out

    def inc(rows) -> tuple[np.ndarray, np.ndarray]:
        return c[rows] - c[rows, :1], e[rows] - e[rows, :1]

    def y(lo: int, hi: int) -> np.ndarray:  # (n, 2(K-1)): one smoother for all
        dc, de = inc(slice(lo, hi))
        return np.concatenate([dc[:, 1:], de[:, 1:]], axis=1)

    sub = subsample_index(D, max(GP_INDUCING_DRAWS, MIN_DRAWS_PER_TERM * (p + 1)))
    hyper = subsample_index(D, hyperparameter_draws(p))
    dc, de = inc(hyper)
    ell, _ = gp_hyperparameters(z(hyper, "C"), fit_at * de[:, 1:] - dc[:, 1:])

    def target_sums(lo: int, hi: int) -> tuple:
        dc, de = inc(slice(lo, hi))
        return *_incremental_sums(dc, de)[2:], (fit_at * de[:, 1:] - dc[:, 1:]).sum(axis=0)

    adc, ade, inb_sum = _block_sums(in_blocks(target_sums, D, workers))

    def target_dev2(lo: int, hi: int) -> tuple:
        dc, de = inc(slice(lo, hi))
        return (((fit_at * de[:, 1:] - dc[:, 1:] - inb_sum / D) ** 2).sum(axis=0),)

    (sst,) = _block_sums(in_blocks(target_dev2, D, workers))
    # GCV targets: the INB of each strategy at fit_at, scaled to unit variance (as in the ML)
    sd_inb = np.sqrt(sst / D)
    scale = np.where(sd_inb > 0, 1.0 / np.where(sd_inb > 0, sd_inb, 1.0), 0.0)
    T = np.concatenate([-np.diag(scale), fit_at * np.diag(scale)], axis=0)
    fitted, n_terms, edf, eta = _gp_fit(z, y, D, sub, ell, T, workers)
    order, at = np.argsort(w, kind="stable"), _wtp_subset(w, se_wtp)

    def predictions(lo: int, hi: int) -> tuple:
        dc, de = inc(slice(lo, hi))
        fit = fitted(lo, hi)
        fc, fe = fit[:, : K - 1], fit[:, K - 1 :]
        sums = (
            *_envelope_sums(np.ascontiguousarray(fc.T), np.ascontiguousarray(fe.T), w[order]),
            fc.sum(axis=0),
            fe.sum(axis=0),
            ((fit_at * de[:, 1:] - dc[:, 1:] - (fit_at * fe - fc)) ** 2).sum(axis=0),
        )
        se = [_se_sums(w[i] * de[:, 1:] - dc[:, 1:], w[i] * fe - fc) for i in at]
        return sums, se, fit if keep_fitted else None

    parts = list(in_blocks(predictions, D, workers))
    *envelope, fc_sum, fe_sum, sse = _block_sums([part[0] for part in parts])
    first = _from_envelope(envelope, w, order, D)
    # the fit keeps the means (unpenalised intercept), so the baseline is max(0, max_k mean INB_k)
    base = np.maximum((w[:, None] * (fe_sum / D)[None, :] - (fc_sum / D)[None, :]).max(axis=1), 0.0)
    est = _clean(first - base, w * (ade / D).max() + (adc / D).max())
    se = np.full(len(w), np.nan)
    for j, i in enumerate(at):
        se[i] = _se_from_sums([part[1][j] for part in parts])
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(sst > 0, 1.0 - sse / sst, np.nan)
    fit = np.concatenate([part[2] for part in parts]) if keep_fitted else None
    return EvppiResult(
        evppi=np.minimum(est, ev),
        se=se,
        evpi=ev,
        estimate=est,
        r2=r2,
        method="gp",
        status="ok",
        n_draws=D,
        n_fit=len(hyper),
        n_terms=n_terms,
        edf=edf,
        r2_wtp=fit_at,
        lengthscales=ell,
        noise_ratio=eta,
        fitted=(fit[:, : K - 1], fit[:, K - 1 :]) if fit is not None else None,
    )


def evppi_gp(
    cost,
    effect,
    X,
    wtp,
    fit_wtp: float | None = None,
    se_wtp=None,
    keep_fitted: bool = False,
    evpi_values: np.ndarray | None = None,
    workers: int | None = None,
) -> EvppiResult:
    """EVPPI of the parameters in the columns of X by Gaussian-process regression.

    The GP method of Strong, Oakley & Brennan (2014), as in SAVI and the voi package, made
    linear in the draws. EVPPI(phi) = E_phi[max_k E(NB_k | phi)] - max_k E[NB_k]: the
    conditional expectations E(dC_k | phi) and E(dE_k | phi) of each strategy's incremental
    cost and effect against strategy 0 are estimated by one GP smoother, whose hyperparameters
    are fitted to the incremental net benefit at ``fit_wtp``:

    1. the parameters are standardised (constant columns dropped);
    2. squared-exponential kernel with one lengthscale per parameter (so any interaction among
       the group's parameters can be fitted, and a parameter without effect gets a long
       lengthscale) and a linear mean; lengthscales by maximum marginal
       likelihood, with weak priors, on :func:`hyperparameter_draws` evenly spaced draws
       (:func:`gp_hyperparameters`);
    3. the posterior mean at every draw, fitted to every draw by a reduced-rank GP whose
       inducing points are chosen among :data:`GP_INDUCING_DRAWS` evenly spaced draws and whose
       smoothing (noise ratio) is chosen by generalised cross-validation on every draw
       (:func:`_gp_fit`): the cost is linear in the draws;
    4. INB is linear in wtp, so the fitted INB at any wtp is wtp x fitted dE - fitted dC and one
       fit gives the EVPPI at every wtp (by :func:`_mean_max`, exact over the grid).

    The estimate is capped at the EVPI of the same draws (EVPPI <= EVPI for any group; above it
    is estimation error, kept in ``estimate``). Its standard error comes from the influence
    function (:func:`evppi_se`) at the wtp values ``se_wtp`` (default: all).

    Parameters
    ----------
    cost, effect : (D, K) per-draw results per strategy.
    X : (D, p) the group's parameter draws (the same draws that produced cost and effect), or a
        list of p (D,) columns.
    wtp : scalar or (W,) grid.
    fit_wtp : wtp at which the hyperparameters are fitted and R^2 is reported (default: the last
        of the grid).
    se_wtp : values of the grid at which to compute the standard error (default: all).
    evpi_values : (W,) the EVPI of the same draws at ``wtp`` when already computed.
    workers : threads for the blocks of draws (:func:`in_blocks`; None: one per CPU); the result
        does not depend on it.

    Returns
    -------
    EvppiResult

    References
    ----------
    Strong M, Oakley JE, Brennan A. Estimating multiparameter partial expected value of perfect
    information from a probabilistic sensitivity analysis sample: a nonparametric regression
    approach. Med Decis Making 2014;34:311-326. doi:10.1177/0272989X13505910
    Rasmussen CE, Williams CKI. Gaussian Processes for Machine Learning. MIT Press, 2006.
    Luedtke AR, van der Laan MJ. Statistical inference for the mean outcome under a possibly
    non-unique optimal treatment strategy. Ann Stat 2016;44:713-742. doi:10.1214/15-AOS1384
    """
    with threadpool_limits(limits=1, user_api="blas"):  # see evppi_groups
        return _evppi_gp(cost, effect, X, wtp, fit_wtp, se_wtp, keep_fitted, evpi_values, workers)


def evppi_groups(
    cost,
    effect,
    groups: Mapping[str, np.ndarray],
    wtp,
    fit_wtp: float | None = None,
    se_wtp=None,
    workers: int | None = None,
    evpi_values: np.ndarray | None = None,
) -> dict[str, EvppiResult]:
    """:func:`evppi_gp` of several parameter groups (name -> (D, p) draws or a list of (D,)
    columns), in ``workers`` threads in all (None: one per CPU): as many groups at a time as
    there are threads, each with BLAS on one thread and its blocks of draws in the threads left
    over (``workers // groups``, at least one), so the threads never exceed ``workers``.

    The groups are independent and each result is the same whatever the number of threads.
    Multithreaded BLAS on the small matrices of the GP is slower, not faster: on a shared
    2-core machine a 250 x 250 Cholesky factorisation took 370 ms with two OpenBLAS threads
    and 0.4 ms with one (benchmarks/README.md), hence the one-thread limit.
    """
    w = _wtp_grid(wtp)
    ev = evpi(cost, effect, w, workers) if evpi_values is None else np.asarray(evpi_values, float)
    names = list(groups)
    outer = max(1, min(len(names), workers or cpus()))
    inner = max(1, (workers or cpus()) // outer)

    def one(name: str) -> EvppiResult:
        return _evppi_gp(
            cost, effect, groups[name], w, fit_wtp, se_wtp, evpi_values=ev, workers=inner
        )

    with threadpool_limits(limits=1, user_api="blas"):
        results = list(in_threads(one, names, outer))
    return dict(zip(names, results, strict=True))


def distinguishable_from_zero(evppi: float, se: float) -> bool:
    """An EVPPI is told apart from 0 when it is more than RESOLVE_Z standard errors above it."""
    return bool(np.isfinite(evppi) and np.isfinite(se) and evppi > 0 and evppi > RESOLVE_Z * se)


def draws_to_resolve(target: float, se: float, n_draws: int) -> int | None:
    """Draws at which an EVPPI of ``target`` would be RESOLVE_Z standard errors above 0.

    The standard error falls as 1 / sqrt(draws) (:func:`evppi_se`), so
    draws = n_draws x (RESOLVE_Z x se / target)^2, rounded up to a multiple of DRAWS_ROUNDING.
    None when the standard error is 0 or unknown, or the target is not positive.
    """
    if not (np.isfinite(se) and se > 0 and np.isfinite(target) and target > 0):
        return None
    need = n_draws * (RESOLVE_Z * se / target) ** 2
    return int(np.ceil(need / DRAWS_ROUNDING) * DRAWS_ROUNDING)


def resolution(
    evppi: float, se: float, evpi_value: float, n_draws: int
) -> tuple[bool, float, int | None]:
    """Whether an EVPPI is told apart from 0, and if not, the draws that would tell it.

    Returns (told apart, target, draws): the target is the larger of the estimate and
    MATERIAL_SHARE_OF_EVPI x the EVPI, and draws those at which an EVPPI that large would stand
    RESOLVE_Z standard errors above 0 (:func:`draws_to_resolve`). Target NaN and draws None when
    it is told apart, or when its standard error is 0 (the fitted group never changes the
    decision) or unknown.
    """
    if distinguishable_from_zero(evppi, se):
        return True, float("nan"), None
    target = max(evppi if np.isfinite(evppi) else 0.0, MATERIAL_SHARE_OF_EVPI * evpi_value)
    need = draws_to_resolve(target, se, n_draws)
    return False, (target if need is not None else float("nan")), need


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

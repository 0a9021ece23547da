"""Generic Markov cohort engine: trace, rewards, discounting and within-cycle correction.

This module knows nothing about any disease. It takes a start vector, transition
probabilities and rewards, and returns the cohort trace and the total rewards per draw.

Conventions
-----------
The notation and layout follow the DARTH cohort tutorials (Alarid-Escudero et al., "An
Introductory Tutorial on Cohort State-Transition Models in R Using a Cost-Effectiveness
Analysis Example", MDM 2023;43:3-20, and "A Tutorial on Time-Dependent Cohort
State-Transition Models in R", MDM 2023;43:21-41):

* **Row-based transition matrices.** ``P[k, i, j]`` is the probability of moving from state
  ``i`` to state ``j`` during cycle ``k``; every row sums to 1.
* **Axis order** is always draw, cycle, state (from, to): ``P`` is ``(D, T, S, S)``, the trace
  ``(D, T + 1, S)``.
* **Trace rows, not cycles.** Row ``t = 0..T`` of the trace is the cohort at time
  ``t * cycle_length_years``: ``trace[0] = start`` and ``trace[k + 1] = trace[k] @ P[k]``.
  Cycle ``k`` runs from row ``k`` to row ``k + 1``.
* **State rewards** (costs or utilities per person per cycle spent in a state) are counted on
  the rows with the within-cycle correction weights ``w[t]`` (``correction_weights``), the
  DARTH ``gen_wcc`` idea: half-cycle/trapezoid/life-table weights ``[1/2, 1, ..., 1, 1/2]``,
  Simpson's 1/3 rule, or counting each cycle at its start (``[1, ..., 1, 0]``) or its end
  (``[0, 1, ..., 1]``). The weights are reported in the result so a reviewer can re-add the
  totals by hand.
* **Transition rewards** (one-off costs or disutilities per person making ``i -> j``) use the
  DARTH transition-dynamics idea without building the ``(D, T, S, S)`` flow array: the flow in
  cycle ``k`` is ``trace[k, i] * P[k, i, j]``; it is counted once (no correction weight) and
  discounted at row ``k + 1`` (``transition_timing="end"``, default) or row ``k`` ("start").
  DARTH's own code multiplies those flows by the correction weight of their row as well;
  ``weight_transition_rewards=True`` does the same, to reproduce its results.
* **Start rewards** are counted once on the start vector, at time 0, undiscounted (TreeAge's
  "Init" reward).
* **Discounting.** Row ``t`` is discounted by
  ``(1 + rate) ** -((t + discount_offset_cycles) * cycle_length_years)``; with
  ``discount_step="annual"`` the exponent is rounded down to whole years, and with
  ``"per_cycle_rate"`` the factor is ``(1 + rate * cycle_length_years) ** -(t + offset)``
  (the DARTH tutorials' ``v_dwc``), and with ``"continuous"`` it is ``exp(-rate * years)``.
  Costs and effects have separate rates; a reward is an effect when its name is in
  ``effects``.

With these, the DMHEE HIV model (Briggs, Claxton & Sculpher 2006, Exercise 2.5) is
``correction="end"`` with ``discount_offset_cycles=0``: transitions happen at the end of each
year, the state after the transition is counted for that year, and year ``t`` is discounted
``t`` years (``tests/test_published.py`` reproduces its published costs, life-years and
ICER to the cent). heemod's ``method="end"`` with ``discount(first = TRUE)`` is the same
thing in current heemod; older heemod called it "beginning" (the names were swapped after
heemod#345), which is why the names here say which trace row is counted.

Pitfalls this design avoids (heemod#173, #338, #345):

* The half-cycle correction halves the first and the last row; it never adds half a cycle.
* One-off costs (a vaccine at time 0, a cost on progression) are not state rewards: a
  state reward on row 0 is multiplied by ``w[0]`` (1/2 under half-cycle, 0 under "end"), so
  put them in ``start_rewards`` or ``transition_rewards``, which are never weighted.
* A per-cycle reward array of length T is ambiguous about rows; ``reward_alignment`` makes
  the choice explicit, and a (T + 1, S) array removes it.

Everything is vectorized over draws; the only Python loop is over cycles. P may be stored
with draws outermost (plain C order) or innermost (:func:`make_transition_array`); the
second lets the trace loop use contiguous vector operations over draws and is several
times faster for small state spaces.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from cea.errors import ModelInputError

__all__ = [
    "CORRECTIONS",
    "DISCOUNT_STEPS",
    "PROB_TOL",
    "REWARD_ALIGNMENTS",
    "TRANSITION_TIMINGS",
    "MarkovResult",
    "cohort_trace",
    "correction_weights",
    "discount_factors",
    "make_transition_array",
    "run_markov",
]

PROB_TOL = 1e-9
"""Default tolerance for transition-matrix row sums and the [0, 1] range of probabilities."""

CORRECTIONS = ("none", "start", "end", "half_cycle", "trapezoid", "life_table", "simpson")
"""Named within-cycle corrections accepted by :func:`correction_weights`."""

DISCOUNT_STEPS = ("cycle", "annual", "per_cycle_rate", "continuous")
TRANSITION_TIMINGS = ("end", "start")
REWARD_ALIGNMENTS = ("start", "end")

# Whole-year discounting floors (t + offset) * cycle_length_years; a product such as
# 3 * 0.1 * 10 = 2.9999999999999996 must still count as 3 years.
_ANNUAL_STEP_GUARD_YEARS = 1e-9

# Draws per block in the trace loop over cycles (a cache-size choice, not a model setting).
_TRACE_BLOCK_DRAWS = 2048


# --------------------------------------------------------------------------------------
# Weights and discount factors
# --------------------------------------------------------------------------------------


def correction_weights(correction: str | Sequence[float] | np.ndarray, n_cycles: int) -> np.ndarray:
    """Within-cycle correction weight of each trace row.

    A state reward's total is ``sum_t w[t] * trace[t] . reward[t]`` over rows
    ``t = 0..n_cycles``, i.e. a quadrature rule for the area under the trace curve.

    ============================== ===========================================================
    ``"none"``, ``"start"``        ``[1, 1, ..., 1, 0]``: each cycle counted at its start
                                   (left Riemann sum; heemod "beginning", hesim riemann_left)
    ``"end"``                      ``[0, 1, ..., 1, 1]``: each cycle counted at its end
                                   (right Riemann sum; heemod "end", DMHEE Ex. 2.5)
    ``"half_cycle"``,              ``[1/2, 1, ..., 1, 1/2]``: the trapezoid rule; the
    ``"trapezoid"``,               life-table method (average of the counts at the start and
    ``"life_table"``               the end of each cycle) gives the same numbers
                                   (Srivastava, medRxiv 2020; Naimark et al., MDM 2013)
    ``"simpson"``                  composite Simpson 1/3 rule, ``[1, 4, 2, 4, ..., 2, 4, 1] / 3``
                                   for even ``n_cycles`` (DARTH ``gen_wcc`` default); for odd
                                   ``n_cycles`` the weights ``scipy.integrate.simpson`` uses
    array-like, length n+1         used as given after checking it is 1-D, finite and >= 0
    ============================== ===========================================================

    ``darthtools::gen_wcc(method = "Simpson1/3")`` is not the textbook rule: its 1-based
    parity gives ``[1/3, 2/3, 4/3, 2/3, ..., 1/3]`` (weights summing to ``T - 2/3`` for even
    T). To reproduce a DARTH model exactly, pass those weights as an explicit array.

    Parameters
    ----------
    correction : str or array-like
        A name from :data:`CORRECTIONS`, or explicit weights of shape ``(n_cycles + 1,)``.
    n_cycles : int
        Number of cycles ``T`` (at least 1).

    Returns
    -------
    np.ndarray, shape (n_cycles + 1,)
        Weights, unitless (multiples of one cycle).

    Raises
    ------
    ModelInputError
        Unknown name (the message lists the valid ones), or bad explicit weights.
    """
    return _correction_weights(correction, _as_n_cycles(n_cycles, ""), "")


def _correction_weights(correction, n_cycles: int, prefix: str) -> np.ndarray:
    n_rows = n_cycles + 1
    if isinstance(correction, str):
        w = np.ones(n_rows)
        if correction in ("none", "start"):
            w[-1] = 0.0
        elif correction == "end":
            w[0] = 0.0
        elif correction in ("half_cycle", "trapezoid", "life_table"):
            w[0] = w[-1] = 0.5
        elif correction == "simpson":
            # Integrating each unit vector gives the weight of that row; this is exactly
            # scipy's rule, including its treatment of an odd number of intervals.
            from scipy.integrate import simpson  # imported here: scipy.integrate is slow to load

            w = np.asarray(simpson(np.eye(n_rows), dx=1.0, axis=-1), dtype=float)
        else:
            valid = ", ".join(f"'{c}'" for c in CORRECTIONS)
            raise ModelInputError(
                f"{prefix}unknown within-cycle correction {correction!r}; valid names are "
                f"{valid}, or an array of n_cycles + 1 = {n_rows} weights"
            )
        return w
    try:
        w = np.array(correction, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ModelInputError(
            f"{prefix}correction must be one of {CORRECTIONS} or an array of "
            f"{n_rows} numbers, got {correction!r}"
        ) from exc
    if w.shape != (n_rows,):
        raise ModelInputError(
            f"{prefix}explicit correction weights have shape {w.shape}; expected "
            f"(n_cycles + 1,) = ({n_rows},)"
        )
    if not (np.isfinite(w) & (w >= 0)).all():  # a weight below 0 would take a reward away
        t = int(np.argwhere(~(np.isfinite(w) & (w >= 0)))[0, 0])
        raise ModelInputError(
            f"{prefix}explicit correction weight at row {t} is {w[t]} (a weight must be a "
            "finite number >= 0)"
        )
    return w


def discount_factors(
    rate: float,
    n_rows: int,
    cycle_length_years: float,
    offset_cycles: float = 0.0,
    step: str = "cycle",
) -> np.ndarray:
    """Discount factor of each trace row.

    ``factor[t] = (1 + rate) ** -((t + offset_cycles) * cycle_length_years)``, for
    ``t = 0..n_rows-1``. With ``step="annual"`` the exponent is
    ``floor((t + offset_cycles) * cycle_length_years)``: everything within a model year is
    discounted as at that year's start (the usual spreadsheet convention for monthly cycles
    with an annual rate). With ``step="per_cycle_rate"`` the annual rate is scaled to a
    per-cycle rate and compounded per cycle,
    ``factor[t] = (1 + rate * cycle_length_years) ** -(t + offset_cycles)``, as the DARTH
    tutorials do (``v_dwc <- 1 / ((1 + (d_c * cycle_length)) ^ (0:n_cycles))``). The first
    three agree for 1-year cycles (``"annual"`` only for whole-cycle offsets). With
    ``step="continuous"`` the rate is a continuously compounded one,
    ``factor[t] = exp(-rate * (t + offset_cycles) * cycle_length_years)`` (as in hesim).

    Parameters
    ----------
    rate : float
        Annual discount rate, e.g. 0.035; must be > -1.
    n_rows : int
        Number of trace rows, ``n_cycles + 1``.
    cycle_length_years : float
        Cycle length in years, > 0 (1/12 for monthly cycles).
    offset_cycles : float, default 0
        Shift of the discounting clock in cycles. 0: row ``t`` is ``t`` cycles from the start
        (DMHEE Ex. 2.5 with ``correction="end"``); 0.5: mid-cycle; 1: the first row is already
        discounted one cycle.
    step : {"cycle", "annual", "per_cycle_rate", "continuous"}
        Exponent in years, in whole years, in cycles at the scaled per-cycle rate, or
        continuous compounding.

    Returns
    -------
    np.ndarray, shape (n_rows,)
    """
    return _discount_factors(rate, n_rows, cycle_length_years, offset_cycles, step, "")


def _discount_factors(rate, n_rows, cycle_length_years, offset_cycles, step, prefix):
    rate = float(rate)
    if not np.isfinite(rate) or rate <= -1.0:
        raise ModelInputError(f"{prefix}discount rate must be finite and > -1, got {rate}")
    cycle_length_years = _as_cycle_length(cycle_length_years, prefix)
    offset_cycles = float(offset_cycles)
    if not np.isfinite(offset_cycles):
        raise ModelInputError(f"{prefix}discount offset must be finite, got {offset_cycles}")
    if step not in DISCOUNT_STEPS:
        raise ModelInputError(
            f"{prefix}unknown discount step {step!r}; valid are {', '.join(DISCOUNT_STEPS)}"
        )
    n_rows = operator.index(n_rows)
    if n_rows < 0:
        raise ModelInputError(f"{prefix}number of rows must be >= 0, got {n_rows}")
    cycles = np.arange(n_rows) + offset_cycles
    if step == "per_cycle_rate":
        per_cycle = 1.0 + rate * cycle_length_years
        if per_cycle <= 0:
            raise ModelInputError(
                f"{prefix}rate * cycle_length_years must be > -1 for per-cycle discounting, "
                f"got {rate} * {cycle_length_years}"
            )
        return np.power(per_cycle, -cycles)
    years = cycles * cycle_length_years
    if step == "continuous":
        return np.exp(-rate * years)
    if step == "annual":
        years = np.floor(years + _ANNUAL_STEP_GUARD_YEARS)
    return np.power(1.0 + rate, -years)


def make_transition_array(n_draws: int, n_cycles: int, n_states: int) -> np.ndarray:
    """Zero transition array of shape (D, T, S, S) stored with draws innermost in memory.

    Same logical axis order as everywhere else (draw, cycle, from, to), but the memory is a
    C-ordered (T, S, S, D) block, so both filling it entry by entry
    (``P[:, :, i, j] = p_ij``, a (D, T) array) and the engine's trace loop work on
    contiguous runs of draws. :func:`run_markov` detects this layout and uses vector
    operations over draws instead of stacked small matrix products (5-10x faster for
    S = 4..6; see ``benchmarks/bench_markov.py``). Any other layout gives the same results.

    Returns
    -------
    np.ndarray, shape (n_draws, n_cycles, n_states, n_states)
        A view of a (n_cycles, n_states, n_states, n_draws) array, all zeros.
    """
    return np.zeros((n_cycles, n_states, n_states, n_draws)).transpose(3, 0, 1, 2)


# --------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MarkovResult:
    """Output of :func:`run_markov`.

    Attributes
    ----------
    trace : np.ndarray, shape (D, T + 1, S), or (T + 1, S) when unbatched; None with
        ``keep_trace=False``
        Persons (or proportion) in each state at each row; row 0 is the start vector. When
        P is stored with draws innermost this is a view of a (T + 1, S, D) array.
    discounted, undiscounted : dict[str, np.ndarray]
        Reward name -> total per draw, shape (D,); a float when unbatched.
    weights : np.ndarray, shape (T + 1,)
        Within-cycle correction weights used for state rewards.
    discount_costs, discount_effects : np.ndarray, shape (T + 1,)
        Row discount factors for costs and for effects.
    per_cycle : dict[str, np.ndarray] or None
        With ``keep_per_cycle=True``: reward name -> undiscounted, correction-weighted
        contribution of each row, shape (D, T + 1) or (T + 1,). Transition rewards of cycle
        ``k`` sit on the row they are discounted at, start rewards on row 0. Then
        ``per_cycle[n].sum(-1) == undiscounted[n]`` and
        ``(per_cycle[n] * disc).sum(-1) == discounted[n]`` up to rounding, the second as
        long as row 0's factor is 1 (``discount_offset_cycles == 0``) or there are no start
        rewards, since start rewards are never discounted.
    """

    trace: np.ndarray | None
    discounted: dict[str, np.ndarray | float]
    undiscounted: dict[str, np.ndarray | float]
    weights: np.ndarray
    discount_costs: np.ndarray
    discount_effects: np.ndarray
    per_cycle: dict[str, np.ndarray] | None = None


# --------------------------------------------------------------------------------------
# Engine
# --------------------------------------------------------------------------------------


def cohort_trace(
    start,
    P,
    n_cycles: int | None = None,
    *,
    tol: float = PROB_TOL,
    label: str | None = None,
    state_names: Sequence[str] | None = None,
) -> np.ndarray:
    """Validated cohort trace, ``trace[k + 1] = trace[k] @ P[k]``.

    Same ``start``, ``P`` and ``n_cycles`` rules as :func:`run_markov`.

    Returns
    -------
    np.ndarray, shape (D, T + 1, S), or (T + 1, S) when unbatched
    """
    m = _Model.build(start, P, n_cycles, tol, label, state_names)
    trace = m.trace()
    return trace if m.batched else trace[0]


def run_markov(
    start,
    P,
    *,
    n_cycles: int | None = None,
    state_rewards: Mapping[str, object] | None = None,
    transition_rewards: Mapping[str, object] | None = None,
    start_rewards: Mapping[str, object] | None = None,
    effects: Iterable[str] = (),
    discount_rate_costs: float = 0.0,
    discount_rate_effects: float = 0.0,
    cycle_length_years: float = 1.0,
    correction: str | Sequence[float] | np.ndarray = "half_cycle",
    discount_offset_cycles: float = 0.0,
    discount_step: str = "cycle",
    transition_timing: str = "end",
    reward_alignment: str = "start",
    weight_transition_rewards: bool = False,
    tol: float = PROB_TOL,
    keep_per_cycle: bool = False,
    keep_trace: bool = True,
    label: str | None = None,
    state_names: Sequence[str] | None = None,
) -> MarkovResult:
    """Run a Markov cohort model and total its rewards.

    Parameters
    ----------
    start : array-like, shape (S,) or (D, S)
        Persons in each state at time 0; any non-negative total (1, or a cohort of 1000).
    P : array-like, shape (S, S), (T, S, S) or (D, T, S, S)
        Row-based transition probabilities, ``P[..., k, i, j]`` = probability of moving
        ``i -> j`` in cycle ``k``. (S, S) is constant and needs ``n_cycles``. (T, S, S) is
        time-dependent; ``n_cycles`` defaults to T and must equal T if given. (D, T, S, S)
        is batched over draws; T == 1 there means constant over time (needs ``n_cycles``).
        Or a function of the cycle (needs ``n_cycles``): ``P(k)`` for k = 0, ..., T - 1
        returns cycle ``k``'s matrices, (S, S) or per draw (D, S, S), the same shape every
        cycle; it is called in cycle order, and with ``keep_trace=False`` once per cycle
        inside the loop, each cycle's matrices used before the next are asked for, so no
        (D, T, S, S) array is stored and ``P`` may return the same buffer refilled (fastest
        with draws innermost: ``make_transition_array(D, 1, S)[:, 0]``). When the trace or
        the per-row contributions are kept, the cycles are stacked into an array first.
        A callable ``P`` is always taken as such a function, never as an array.
        The run is batched when ``P`` is 4-D (or returns (D, S, S)) or ``start`` is 2-D;
        unbatched inputs give unbatched outputs.
    n_cycles : int, optional
        Number of cycles T.
    state_rewards : dict[str, array-like], optional
        Reward per person per cycle in each state. Shapes: (S,) constant; (T + 1, S) per
        trace row; (T, S) per cycle, mapped to rows by ``reward_alignment``. Per draw (only
        when batched): (D, 1, S), (D, T, S) or (D, T + 1, S); a 2-D (D, S) array is refused
        as ambiguous. Row contribution: ``w[t] * trace[t] . R[t]``.
    transition_rewards : dict[str, array-like], optional
        Reward per person making the transition ``i -> j`` (diagonal = staying): (S, S),
        (T, S, S), or per draw (D, 1, S, S), (D, T, S, S). Counted once per cycle, on row
        ``k + 1`` or ``k`` per ``transition_timing``; no correction weight unless
        ``weight_transition_rewards``.
    start_rewards : dict[str, array-like], optional
        One-off reward per person in each state at time 0, (S,) or per draw (D, S);
        discount factor 1.
    effects : iterable of str
        Reward names discounted at ``discount_rate_effects``; all others are costs.
    discount_rate_costs, discount_rate_effects : float
        Annual rates (> -1).
    cycle_length_years : float
        Years per cycle (> 0).
    correction : str or array-like
        Within-cycle correction, see :func:`correction_weights`.
    discount_offset_cycles : float
        See :func:`discount_factors`.
    discount_step : {"cycle", "annual", "per_cycle_rate", "continuous"}
        See :func:`discount_factors`.
    transition_timing : {"end", "start"}
        Row at which the transition rewards of cycle ``k`` are discounted: ``k + 1`` or ``k``.
    reward_alignment : {"start", "end"}
        For (T, S) state rewards: "start" gives row ``t`` cycle ``t`` (the last row takes
        cycle T - 1); "end" gives row ``t`` cycle ``t - 1`` (row 0 takes cycle 0).
    weight_transition_rewards : bool, default False
        Multiply transition rewards by the correction weight of the row they land on. Off,
        a transition is counted exactly once. On reproduces the DARTH time-dependent
        tutorial (Alarid-Escudero et al., MDM 2023;43:21-41), whose transition-dynamics
        array ``a_A`` puts cycle ``k``'s flows on row ``k + 1`` and multiplies every row,
        transition rewards included, by ``v_wcc``.
    tol : float
        Tolerance for row sums and the [0, 1] range.
    keep_per_cycle : bool
        Also return each row's contribution (see :class:`MarkovResult`).
    keep_trace : bool, default True
        Return the trace. False, for a caller that needs only the totals: with P stored
        with draws innermost (:func:`make_transition_array`) or given as a function of the
        cycle (and ``keep_per_cycle`` False), the run is then one loop over
        cycles that adds each row's rewards as it goes, storing no trace or per-row array
        (the same totals up to rounding), and P is checked cycle by cycle in that loop,
        after the other arguments.
    label : str, optional
        Prefix of every error message, e.g. ``"strategy 'primary_ivig'"``.
    state_names : sequence of str, optional
        Names used in error messages instead of state indices.

    Returns
    -------
    MarkovResult

    Raises
    ------
    ModelInputError
        One line naming the label, argument, draw, cycle and state of the first problem.

    Notes
    -----
    For reward ``R`` with row discount factors ``v`` (DARTH ``v_dwc``) and weights ``w``
    (``v_wcc``), the discounted total per draw is

    ``sum_t v[t] * (w[t] * trace[t] . R[t] + flows landing on row t) + start . R0``.

    The trace loop is the only loop; flows are never stored as a (D, T, S, S) array: the
    expected transition reward per person leaving state ``i`` in cycle ``k``,
    ``sum_j P[k, i, j] * R[k, i, j]``, is formed first and then dotted with the trace.
    """
    cycle_shape = None  # a function P's (S, S) or (D, S, S), to name in messages
    # the trace and the per-row rewards after it read every cycle's matrices: stacked first
    if callable(P) and (keep_trace or keep_per_cycle):
        P = _stacked_cycles(P, n_cycles, f"{label}: " if label else "")
        cycle_shape = P.shape[-2:] if P.ndim == 3 else (P.shape[0], *P.shape[-2:])
    m = _Model.build(start, P, n_cycles, tol, label, state_names, cycle_shape)
    prefix, T, D = m.prefix, m.T, m.D
    totals_only = not keep_trace and not keep_per_cycle and m._fast_trace()
    # first, as it checks P (with draws innermost, cycle by cycle as it goes): a bad P is
    # reported before any other argument, whatever the layout
    trace = None if totals_only else m.trace()

    weights = _correction_weights(correction, T, prefix)
    disc_c = _discount_factors(
        discount_rate_costs,
        T + 1,
        cycle_length_years,
        discount_offset_cycles,
        discount_step,
        prefix,
    )
    disc_e = _discount_factors(
        discount_rate_effects,
        T + 1,
        cycle_length_years,
        discount_offset_cycles,
        discount_step,
        prefix,
    )
    _check_choice(transition_timing, TRANSITION_TIMINGS, "transition_timing", prefix)
    _check_choice(reward_alignment, REWARD_ALIGNMENTS, "reward_alignment", prefix)

    state_rewards = dict(state_rewards or {})
    transition_rewards = dict(transition_rewards or {})
    start_rewards = dict(start_rewards or {})
    names = list(dict.fromkeys([*state_rewards, *transition_rewards, *start_rewards]))
    effects = {effects} if isinstance(effects, str) else set(effects)
    unknown = sorted(effects - set(names))
    if unknown:
        raise ModelInputError(
            f"{prefix}effects {unknown} are not reward names; rewards are {names}"
        )

    sr = {n: m.state_reward(n, r) for n, r in state_rewards.items()}
    tr = {n: m.transition_reward(n, r) for n, r in transition_rewards.items()}
    st = {n: m.start_reward(n, r) for n, r in start_rewards.items()}
    once = {n: _row_dot(m.start[:, None, :], r[:, None, :])[:, 0] for n, r in st.items()}
    if totals_only:
        disc = {n: disc_e if n in effects else disc_c for n in names}
        totals = m.totals(sr, tr, weights, disc, transition_timing == "end",
                          reward_alignment, weight_transition_rewards)  # fmt: skip
        discounted, undiscounted = {}, {}
        for n in names:
            d, u = totals.get(n, (np.zeros(D), np.zeros(D)))
            if n in once:
                d, u = d + once[n], u + once[n]
            discounted[n] = d if m.batched else float(d[0])
            undiscounted[n] = u if m.batched else float(u[0])
        return MarkovResult(None, discounted, undiscounted, weights, disc_c, disc_e)
    rows: dict[str, np.ndarray] = {}  # name -> (D, T + 1) weighted, undiscounted

    def add(name: str, contribution: np.ndarray) -> None:
        if name in rows:
            rows[name] += contribution
        else:
            rows[name] = contribution

    # State rewards constant over time and shared by all draws: one matmul for all of them.
    shared = [n for n, r in sr.items() if r.shape[:2] == (1, 1)]
    if shared:
        stacked = np.stack([sr[n][0, 0] for n in shared], axis=-1)  # (S, K)
        if trace.flags.c_contiguous:
            values = (trace.reshape(-1, m.S) @ stacked).reshape(D, T + 1, -1)  # one gemm
        else:  # draws-innermost trace view: (T + 1, K, D) products, then a view back
            values = np.matmul(stacked.T, trace.transpose(1, 2, 0)).transpose(2, 0, 1)
        for k, n in enumerate(shared):
            add(n, values[..., k] * weights)
    for n, r in sr.items():
        if n in shared:
            continue
        if r.shape[1] == T and T > 1:  # per cycle: map cycles to rows
            value = np.empty((D, T + 1))
            if reward_alignment == "start":
                value[:, :T] = _row_dot(trace[:, :T], r)
                value[:, T] = _row_dot(trace[:, T:], r[:, T - 1 :])[:, 0]
            else:
                value[:, 1:] = _row_dot(trace[:, 1:], r)
                value[:, 0] = _row_dot(trace[:, :1], r[:, :1])[:, 0]
        else:  # (Dr, 1, S) constant, or (Dr, T + 1, S) per row
            value = _row_dot(trace, r)
        add(n, value * weights)

    for n, r in tr.items():
        if r.shape[:2] == (1, 1):
            # One (S, S) matrix for all draws and cycles: only its non-zero entries' flows,
            # trace[k, i] * P[k, i, j] * r[i, j], not a pass over the whole of P
            flows = np.zeros((D, T))
            for i, j in zip(*np.nonzero(r[0, 0]), strict=True):
                flows += trace[:, :T, i] * (m.P4[:, :, i, j] * r[0, 0, i, j])
        else:
            # Expected reward per person leaving state i in cycle k: (Dm, Tm, S).
            per_person = np.einsum("...ij,...ij->...i", m.P4, r)
            flows = _row_dot(trace[:, :T], per_person)  # (D, T)
        value = np.zeros((D, T + 1))
        if transition_timing == "end":
            value[:, 1:] = flows
        else:
            value[:, :T] = flows
        add(n, value * weights if weight_transition_rewards else value)

    discounted, undiscounted = {}, {}
    per_cycle = {} if keep_per_cycle else None
    for n in names:
        disc = disc_e if n in effects else disc_c
        row = rows.get(n)
        if row is None:
            row = np.zeros((D, T + 1))
        o = once.get(n)
        disc_total = (row * disc).sum(-1)
        undisc_total = row.sum(-1)
        if o is not None:
            disc_total = disc_total + o
            undisc_total = undisc_total + o
        if per_cycle is not None:
            pc = row.copy() if n in rows else row
            if o is not None:
                pc[:, 0] += o
            per_cycle[n] = pc if m.batched else pc[0]
        discounted[n] = disc_total if m.batched else float(disc_total[0])
        undiscounted[n] = undisc_total if m.batched else float(undisc_total[0])

    return MarkovResult(
        trace=(trace if m.batched else trace[0]) if keep_trace else None,
        discounted=discounted,
        undiscounted=undiscounted,
        weights=weights,
        discount_costs=disc_c,
        discount_effects=disc_e,
        per_cycle=per_cycle,
    )


# --------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------


def _row_dot(X: np.ndarray, R: np.ndarray) -> np.ndarray:
    """``out[d, t] = sum_s X[d, t, s] * R[d, t, s]`` with R broadcast over draws and rows.

    X : (D, n, S); R : (Dr, nr, S) with Dr in {1, D} and nr in {1, n}. Returns (D, n).
    """
    if R.shape[0] == 1 and R.shape[1] == 1:
        if X.flags.c_contiguous:  # one BLAS gemv over all (draw, row) pairs
            return (X.reshape(-1, X.shape[-1]) @ R[0, 0]).reshape(X.shape[:2])
        return np.einsum("dts,s->dt", X, R[0, 0])
    if R.shape[0] == 1:
        return np.einsum("dts,ts->dt", X, R[0])
    if R.shape[1] == 1:
        return np.einsum("dts,ds->dt", X, R[:, 0])
    return np.einsum("dts,dts->dt", X, R)


def _draws_innermost(a: np.ndarray) -> bool:
    """True when the draw axis (axis 0) is the contiguous one in memory."""
    return a.strides[0] == a.itemsize


def _check_choice(value, choices, what, prefix):
    if value not in choices:
        raise ModelInputError(
            f"{prefix}unknown {what} {value!r}; valid are {', '.join(map(repr, choices))}"
        )


def _as_n_cycles(n_cycles, prefix) -> int:
    if isinstance(n_cycles, bool):
        raise ModelInputError(f"{prefix}n_cycles must be a positive integer, got {n_cycles!r}")
    try:
        n = operator.index(n_cycles)
    except TypeError:
        raise ModelInputError(
            f"{prefix}n_cycles must be a positive integer, got {n_cycles!r}"
        ) from None
    if n < 1:
        raise ModelInputError(f"{prefix}n_cycles must be a positive integer, got {n}")
    return n


def _as_cycle_length(cycle_length_years, prefix) -> float:
    x = float(cycle_length_years)
    if not np.isfinite(x) or x <= 0:
        raise ModelInputError(f"{prefix}cycle_length_years must be finite and > 0, got {x}")
    return x


def _as_array(x, what: str, prefix: str) -> np.ndarray:
    try:
        return np.asarray(x, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ModelInputError(f"{prefix}{what} is not a numeric array: {exc}") from None


def _compact(a: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    """Undo zero-stride broadcasting on ``axes`` (np.broadcast_to views) so work is not repeated."""
    idx = [slice(None)] * a.ndim
    for ax in axes:
        if a.shape[ax] > 1 and a.strides[ax] == 0:
            idx[ax] = slice(0, 1)
    return a[tuple(idx)]


def _cycle_matrices(P, k: int, first: tuple | None, prefix: str) -> np.ndarray:
    """``P(k)`` of a function ``P`` as a float array: (S, S) or (D, S, S), square and
    non-empty, and for k > 0 of the shape ``first`` (cycle 0's)."""
    p = _as_array(P(k), f"P({k}) (transition probabilities of cycle {k})", prefix)
    if first is None:
        if p.ndim not in (2, 3) or p.shape[-1] != p.shape[-2] or p.shape[-1] == 0:
            raise ModelInputError(
                f"{prefix}P(0) has shape {p.shape}; a function P must return (S, S) or "
                "(D, S, S) with square, non-empty (from, to) axes"
            )
    elif p.shape != first:
        raise ModelInputError(
            f"{prefix}P({k}) has shape {p.shape} but P(0) has {first}: every cycle's "
            "matrices must have the same shape"
        )
    return p


def _stacked_cycles(P, n_cycles, prefix: str) -> np.ndarray:
    """The cycles of a function ``P`` as one (T, S, S) or (D, T, S, S) array (draws
    innermost, :func:`make_transition_array`)."""
    if n_cycles is None:
        raise ModelInputError(f"{prefix}n_cycles is required when P is a function of the cycle")
    T = _as_n_cycles(n_cycles, prefix)
    first = _cycle_matrices(P, 0, None, prefix)
    if first.ndim == 2:
        out = np.empty((T,) + first.shape)
    else:
        out = make_transition_array(first.shape[0], T, first.shape[-1])
    out[..., 0, :, :] = first
    for k in range(1, T):
        out[..., k, :, :] = _cycle_matrices(P, k, first.shape, prefix)
    return out


class _Model:
    """Validated start vector and transition array, normalized to the batched layout.

    ``P4`` has shape (Dp, Tp, S, S) with Dp in {1, D} and Tp in {1, T};
    ``start`` has shape (Ds, S) with Ds in {1, D}. ``fn``: P when it is a function of the
    cycle (:func:`run_markov`), asked for each cycle's matrices by :meth:`cycle` in the
    totals-only loop (:meth:`totals`, the only path that runs with ``fn``); ``P4`` then holds
    cycle 0's, possibly in a buffer the caller refills for the next cycle.
    """

    def __init__(
        self, start, P4, D, T, S, batched, prefix, names, start_has_draw, p_has_draw, p_has_cycle
    ):
        self.start, self.P4 = start, P4
        self.start_has_draw = start_has_draw
        self.D, self.T, self.S = D, T, S
        self.batched, self.prefix, self.names = batched, prefix, names
        self.p_has_draw, self.p_has_cycle = p_has_draw, p_has_cycle
        self.fn = self.fn_shape = None

    # ---- construction and checks -----------------------------------------------------

    @classmethod
    def build(cls, start, P, n_cycles, tol, label, state_names, cycle_shape=None) -> _Model:
        prefix = f"{label}: " if label else ""
        tol = float(tol)
        if not np.isfinite(tol) or tol < 0:
            raise ModelInputError(f"{prefix}tol must be finite and >= 0, got {tol}")
        fn = None
        if callable(P):  # its cycle 0 stands for P in the checks below, as a constant P
            if n_cycles is None:
                raise ModelInputError(
                    f"{prefix}n_cycles is required when P is a function of the cycle"
                )
            fn, first = P, _cycle_matrices(P, 0, None, prefix)
            P, cycle_shape = (first[:, None] if first.ndim == 3 else first), first.shape
        P = _as_array(P, "P (transition probabilities)", prefix)
        if P.ndim not in (2, 3, 4) or P.shape[-1] != P.shape[-2] or P.shape[-1] == 0:
            raise ModelInputError(
                f"{prefix}P has shape {P.shape}; expected (S, S), (T, S, S) or (D, T, S, S) "
                "with square, non-empty (from, to) axes"
            )
        S = P.shape[-1]
        constant = P.ndim == 2 or (P.ndim == 4 and P.shape[1] == 1)
        if constant:
            if n_cycles is None:
                raise ModelInputError(
                    f"{prefix}n_cycles is required when P has shape {P.shape} (constant over time)"
                )
            T = _as_n_cycles(n_cycles, prefix)
        else:
            T = P.shape[-3]
            if T == 0:
                raise ModelInputError(f"{prefix}P has shape {P.shape}: no cycles")
            if n_cycles is not None and _as_n_cycles(n_cycles, prefix) != T:
                raise ModelInputError(
                    f"{prefix}n_cycles = {n_cycles} but P has shape {P.shape} with T = {T} cycles"
                )
        shown = f"P {P.shape}" if cycle_shape is None else f"P(0) {tuple(cycle_shape)}"
        P4 = P.reshape((1,) * (4 - P.ndim) + P.shape)
        P4 = _compact(P4, (0, 1))

        start = _as_array(start, "start", prefix)
        if start.ndim not in (1, 2) or start.shape[-1] != S:
            raise ModelInputError(
                f"{prefix}start has shape {start.shape}; expected (S,) = ({S},) or (D, {S})"
            )
        batched = P.ndim == 4 or start.ndim == 2
        start2 = start.reshape(-1, S) if start.ndim == 1 else start
        Ds = start2.shape[0] if start.ndim == 2 else None
        Dp = P.shape[0] if P.ndim == 4 else None
        if Ds == 0 or Dp == 0:
            raise ModelInputError(f"{prefix}no draws (start {start.shape}, {shown})")
        if Ds is not None and Dp is not None and Ds != Dp and 1 not in (Ds, Dp):
            raise ModelInputError(
                f"{prefix}start has {Ds} draws but P has {Dp} (start {start.shape}, {shown})"
            )
        D = max(Ds or 1, Dp or 1)

        names = None
        if state_names is not None:
            names = [str(s) for s in state_names]
            if len(names) != S:
                raise ModelInputError(f"{prefix}state_names has {len(names)} names for {S} states")
        m = cls(
            start2,
            P4,
            D,
            T,
            S,
            batched,
            prefix,
            names,
            start_has_draw=start.ndim == 2,
            p_has_draw=P.ndim == 4,
            p_has_cycle=not constant or fn is not None,
        )
        m.fn, m.fn_shape = fn, cycle_shape  # P(0)'s shape, before a draw axis is compacted
        m._check_start(tol)
        m.tol = tol
        if not m._fast_trace():  # the fast trace checks each cycle's matrices as it goes
            m._check_probabilities(tol)
        return m

    def state(self, i) -> str:
        return f"'{self.names[i]}'" if self.names is not None else str(int(i))

    def _where(self, draw=None, cycle=None) -> str:
        parts = []
        if draw is not None:
            parts.append(f"draw {int(draw)}")
        if cycle is not None:
            parts.append(f"cycle {int(cycle)}")
        return "at " + ", ".join(parts) + ", " if parts else ""

    def _check_start(self, tol):
        s = self.start
        bad = ~(np.isfinite(s) & (s >= -tol))
        if bad.any():
            d, i = np.argwhere(bad)[0]
            where = self._where(d if self.start_has_draw else None)
            raise ModelInputError(
                f"{self.prefix}start {where}state {self.state(i)} is {s[d, i]:.12g}; "
                "must be finite and non-negative"
            )

    def _fast_trace(self) -> bool:
        """Per-draw matrices stored with draws innermost, or P a function of the cycle: the
        vector path over draws, each cycle's matrices checked as they come (:meth:`cycle`)."""
        return self.fn is not None or (self.P4.shape[0] == self.D and _draws_innermost(self.P4))

    @staticmethod
    def _probabilities_ok(P, row_sums, tol) -> bool:
        """Every entry >= 0 and every row sum within 1 +- tol (then every entry is also
        <= 1 + tol), or, within the tolerance, every entry in [-tol, 1 + tol]. NaN makes the
        reductions NaN, which fails the comparisons."""
        if 1.0 - tol <= row_sums.min() and row_sums.max() <= 1.0 + tol:
            lowest = P.min()
            return lowest >= 0 or (lowest >= -tol and P.max() <= 1.0 + tol)
        return False

    def _check_probabilities(self, tol, P4=None, cycle=None):
        """Raise on the first entry or row sum out of range in ``P4`` (default: the model's),
        naming it; ``cycle``: the cycle a one-cycle ``P4`` holds."""
        P4 = self.P4 if P4 is None else P4
        # Fast path, 2 passes over P and 2 over the row sums, no temporaries: if every entry
        # is >= 0 and rows sum to 1 +- tol, every entry is also <= 1 + tol. NaN makes the
        # reductions NaN, which fails the comparisons and falls to the slow path.
        if _draws_innermost(P4):
            row_sums = np.add.reduce(P4, axis=-1)  # adds contiguous runs of draws
        else:
            row_sums = np.einsum("...ij->...i", P4)
        if self._probabilities_ok(P4, row_sums, tol):
            return
        # Slow path (only on failure): locate the first offending (draw, cycle, from) row.
        in_range = (P4 >= -tol) & (P4 <= 1.0 + tol)
        bad_entry = ~in_range.all(-1)
        sums_ok = np.abs(row_sums - 1.0) <= tol
        d, t, i = np.argwhere(bad_entry | ~sums_ok)[0]
        k = t if cycle is None else cycle
        where = self._where(d if self.p_has_draw else None, k if self.p_has_cycle else None)
        if bad_entry[d, t, i]:
            j = np.flatnonzero(~in_range[d, t, i])[0]
            raise ModelInputError(
                f"{self.prefix}transition probability {where}from state {self.state(i)} to "
                f"state {self.state(j)} is {P4[d, t, i, j]:.12g}; must be finite and within "
                f"[0, 1] (tolerance {tol:g})"
            )
        raise ModelInputError(
            f"{self.prefix}transition probabilities {where}from state {self.state(i)} sum to "
            f"{row_sums[d, t, i]:.12g} (tolerance {tol:g})"
        )

    def _check_finite(self, arr: np.ndarray, what: str, axes: tuple[str, ...]):
        """Raise on the first non-finite entry; ``axes`` names each axis of ``arr``."""
        if np.isfinite(arr).all():
            return
        idx = np.argwhere(~np.isfinite(arr))[0]
        parts = []
        for name, k in zip(axes, idx, strict=True):
            if name == "draw" and arr.shape[0] > 1:
                parts.append(f"draw {k}")
            elif name in ("cycle", "row") and arr.shape[axes.index(name)] > 1:
                parts.append(f"{name} {k}")
            elif name == "from":
                parts.append(f"from state {self.state(k)}")
            elif name == "to":
                parts.append(f"to state {self.state(k)}")
            elif name == "state":
                parts.append(f"state {self.state(k)}")
        raise ModelInputError(
            f"{self.prefix}{what} is {arr[tuple(idx)]} at {', '.join(parts)}; must be finite"
        )

    # ---- rewards ---------------------------------------------------------------------

    def _reward_draws(self, R, what, expected):
        if not self.batched:
            raise ModelInputError(
                f"{self.prefix}{what} has shape {R.shape}; per-draw rewards need a batched "
                f"run (P of shape (D, T, S, S) or start of shape (D, S)); expected {expected}"
            )
        if R.shape[0] not in (1, self.D):
            raise ModelInputError(
                f"{self.prefix}{what} has {R.shape[0]} draws, the model has {self.D}; "
                f"expected {expected}"
            )

    def state_reward(self, name, value) -> np.ndarray:
        """Normalize to (Dr, Tr, S) with Dr in {1, D}, Tr in {1, T, T + 1}."""
        D, T, S = self.D, self.T, self.S
        what = f"state_rewards[{name!r}]"
        R = _as_array(value, what, self.prefix)
        expected = f"(S,) = ({S},), (T, S) = ({T}, {S}) or (T + 1, S) = ({T + 1}, {S})"
        if self.batched:
            expected += (
                f", or per draw (D, 1, S), (D, T, S), (D, T + 1, S) with D = {D}; "
                "a 2-D (D, S) array is ambiguous, use (D, 1, S)"
            )
        if R.ndim == 1 and R.shape == (S,):
            R3 = R[None, None]
        elif R.ndim == 2 and R.shape in ((T, S), (T + 1, S)):
            R3 = R[None]
        elif R.ndim == 3 and (
            not self.batched or (R.shape[1] in (1, T, T + 1) and R.shape[2] == S)
        ):
            self._reward_draws(R, what, expected)
            R3 = R
        else:
            raise ModelInputError(f"{self.prefix}{what} has shape {R.shape}; expected {expected}")
        axes = ("draw", "row" if R3.shape[1] == T + 1 else "cycle", "state")
        self._check_finite(R3, what, axes)
        return _compact(R3, (0, 1))

    def transition_reward(self, name, value) -> np.ndarray:
        """Normalize to (Dr, Tr, S, S) with Dr in {1, D}, Tr in {1, T}."""
        D, T, S = self.D, self.T, self.S
        what = f"transition_rewards[{name!r}]"
        R = _as_array(value, what, self.prefix)
        expected = f"(S, S) = ({S}, {S}) or (T, S, S) = ({T}, {S}, {S})"
        if self.batched:
            expected += f", or per draw (D, 1, S, S), (D, T, S, S) with D = {D}"
        if R.shape == (S, S):
            R4 = R[None, None]
        elif R.shape == (T, S, S):
            R4 = R[None]
        elif R.ndim == 4 and (not self.batched or (R.shape[1] in (1, T) and R.shape[2:] == (S, S))):
            self._reward_draws(R, what, expected)
            R4 = R
        else:
            raise ModelInputError(f"{self.prefix}{what} has shape {R.shape}; expected {expected}")
        self._check_finite(R4, what, ("draw", "cycle", "from", "to"))
        return _compact(R4, (0, 1))

    def start_reward(self, name, value) -> np.ndarray:
        """Normalize to (Dr, S) with Dr in {1, D}."""
        S, D = self.S, self.D
        what = f"start_rewards[{name!r}]"
        R = _as_array(value, what, self.prefix)
        expected = f"(S,) = ({S},)" + (f" or per draw (D, S) = ({D}, {S})" if self.batched else "")
        if R.shape == (S,):
            R2 = R[None]
        elif R.ndim == 2 and R.shape[1] == S and self.batched and R.shape[0] in (1, D):
            R2 = R
        else:
            raise ModelInputError(f"{self.prefix}{what} has shape {R.shape}; expected {expected}")
        self._check_finite(R2, what, ("draw", "state"))
        return R2

    # ---- the trace -------------------------------------------------------------------

    def cycle(self, k: int) -> np.ndarray:
        """The (S, S, D) matrices of cycle ``k``, draws innermost, checked while they are in
        the cache, before use: one pass over P in all instead of three. Stored P: a view (each
        matrix checked once); a function P: asked for here, in cycle order (cycle 0's when the
        model was built), a copy only when its draws are not innermost."""
        if self.fn is None:
            time_dependent = self.P4.shape[1] > 1
            p = self.P4[:, k if time_dependent else 0].transpose(1, 2, 0)
            if (k == 0 or time_dependent) and not self._probabilities_ok(
                p, np.add.reduce(p, axis=1), self.tol
            ):
                self._check_probabilities(self.tol)  # names the first bad entry
            return p
        one = self.P4  # (Dp, 1, S, S)
        if k > 0:
            got = _cycle_matrices(self.fn, k, self.fn_shape, self.prefix)
            one = got[:, None] if self.p_has_draw else got[None, None]
        p = one[:, 0].transpose(1, 2, 0)
        if p.shape[2] == 1 and self.D > 1:  # one matrix for every draw
            p = np.broadcast_to(p, (self.S, self.S, self.D))
        elif not p.flags.c_contiguous:
            p = np.ascontiguousarray(p)
        if not self._probabilities_ok(p, np.add.reduce(p, axis=1), self.tol):
            self._check_probabilities(self.tol, one, k)
        return p

    def totals(self, sr, tr, weights, disc, at_end, alignment, weight_transitions) -> dict:
        """name -> (discounted, undiscounted) totals (D,) of the state rewards ``sr`` and
        transition rewards ``tr`` (normalized), in one loop over cycles on (S, D) trace rows,
        P stored with draws innermost or a function of the cycle (:meth:`cycle`): each row's
        rewards are added as it comes and no trace
        or per-row array is stored (:func:`run_markov` with ``keep_trace=False``)."""
        D, T, S = self.D, self.T, self.S
        out = {n: (np.zeros(D), np.zeros(D)) for n in [*sr, *tr]}
        state = {n: r.transpose(1, 2, 0) for n, r in sr.items()}  # (Tr, S, Dr)
        sparse = {  # one matrix for all draws and cycles: its non-zero entries
            n: [(i, j, r[0, 0, i, j]) for i, j in zip(*np.nonzero(r[0, 0]), strict=True)]
            for n, r in tr.items()
            if r.shape[:2] == (1, 1)
        }
        x = np.array(np.broadcast_to(self.start, (D, S)).T, order="C")  # (S, D), a copy
        nxt = np.empty((S, D))

        def add(n, value, row, w):
            d, u = out[n]
            d += (w * disc[n][row]) * value
            u += w * value

        for t in range(T + 1):
            for n, r in state.items():
                if r.shape[0] == T and T > 1:  # per cycle: map the row to its cycle
                    k = min(t, T - 1) if alignment == "start" else max(t - 1, 0)
                else:
                    k = t if r.shape[0] > 1 else 0
                value = r[k, :, 0] @ x if r.shape[2] == 1 else np.einsum("sd,sd->d", x, r[k])
                add(n, value, t, weights[t])
            if t == T:
                break
            p = self.cycle(t)
            row = t + 1 if at_end else t
            for n, r in tr.items():
                if n in sparse:
                    flows = np.zeros(D)
                    for i, j, c in sparse[n]:
                        flows += x[i] * (p[i, j] * c)
                else:
                    rk = r[:, t if r.shape[1] > 1 else 0]  # (Dr, S, S)
                    flows = np.einsum("id,ijd,dij->d", x, p, np.broadcast_to(rk, (D, S, S)))
                add(n, flows, row, weights[row] if weight_transitions else 1.0)
            np.einsum("id,ijd->jd", x, p, out=nxt)
            x, nxt = nxt, x
        return out

    def trace(self) -> np.ndarray:
        """(D, T + 1, S) trace; loops over cycles only.

        Three paths, chosen by how P is stored, all giving the same numbers up to rounding:
        one matrix shared by all draws (a (D, S) @ (S, S) product per cycle); per-draw
        matrices with draws outermost in memory (stacked (1, S) @ (S, S) products over
        blocks of draws); per-draw matrices with draws innermost in memory, as made by
        :func:`make_transition_array` (contiguous vector operations over draws, the
        fastest, about 5-10x the stacked products for S = 4..6). In the last case the trace
        is returned as a (D, T + 1, S) view of a (T + 1, S, D) array.
        """
        D, T, S, P4 = self.D, self.T, self.S, self.P4
        time_dependent = P4.shape[1] > 1
        if self._fast_trace():  # one draw too: the same arithmetic
            trace_t = np.empty((T + 1, S, D))
            trace_t[0] = self.start.T
            for k in range(T):
                np.einsum("id,ijd->jd", trace_t[k], self.cycle(k), out=trace_t[k + 1])
            return trace_t.transpose(2, 0, 1)
        trace = np.empty((D, T + 1, S))
        trace[:, 0] = self.start
        if P4.shape[0] == 1:
            for k in range(T):
                np.matmul(trace[:, k], P4[0, k if time_dependent else 0], out=trace[:, k + 1])
        else:
            # Blocks of draws keep each block's rows in cache (about 2x faster at 100,000
            # draws than one pass over all draws).
            rows_in = trace[:, :, None, :]  # (D, T + 1, 1, S) view
            for a in range(0, D, _TRACE_BLOCK_DRAWS):
                block = rows_in[a : a + _TRACE_BLOCK_DRAWS]
                p_block = P4[a : a + _TRACE_BLOCK_DRAWS]
                for k in range(T):
                    np.matmul(
                        block[:, k], p_block[:, k if time_dependent else 0], out=block[:, k + 1]
                    )
        return trace

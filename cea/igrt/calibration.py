"""Calibration of the two rates the model fixes by observation, per draw, on top of the engine.

* ``r_severe_on_bsab`` (per year): the severe-infection rate with low IgG on the bsAb, so that
  a cohort without IgRT has the observed cumulative incidence ``p_severe_12m_no_igrt`` at 12
  months (deaths censored, as a Kaplan-Meier estimate reports it);
* ``r_myeloma_death_off_bsab`` (per year): myeloma death after the bsAb stops, so that the
  trial-like cohort (a share ``p_trial_igrt_use`` on primary IVIG, the rest without IgRT) has
  the trial's median overall survival ``t_target_median_os_months``.

Every evaluation runs the declared model (:func:`cea.igrt.declaration.declare`) through the
engine with the caller's backend (the compiled one reruns the cohorts declared once,
:func:`_conditions`); the root finding is vectorized over draws and each draw is solved on its
own, so its result does not depend on the other draws of the call.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from cea.engine.cohort import rerun, run_cohorts
from cea.engine.declaration import CohortModel
from cea.errors import CeaError, ModelInputError
from cea.igrt.declaration import SEVERE, Params, declare, time_profiles
from cea.igrt.spec import ALIVE, DEAD, OI, I, L, ModelSpec, N, O, Strategy

#: Calibration: bounds of the rates searched (per year), bisection tolerance on log scale,
#: fixed-point tolerance and rounds, and the horizon of the incidence target (months).
CALIBRATION_RATE_BOUNDS = (1e-4, 1e3)
CALIBRATION_LOG_TOL = 1e-12
CALIBRATION_FTOL = 1e-11
CALIBRATION_MAX_ITER = 100
CALIBRATION_FIXED_POINT_TOL = 1e-9
CALIBRATION_ROUNDS = 10
#: Alternating fallback: after its first round, each rate is searched within this factor of
#: its previous value (a solver setting, not a model input).
CALIBRATION_WARM_FACTOR = 1.25
#: Joint calibration: each rate is first found alone to this tolerance on its target (bracketed),
#: then both together by Broyden's method to CALIBRATION_FTOL, with steps in log(rate) of at
#: most CALIBRATION_MAX_STEP; draws Broyden does not settle go to the alternating method.
CALIBRATION_START_FTOL = 1e-4
#: First brackets of the calibration: these multiples of a rough guess per draw (the rate that
#: alone would give the incidence; the exponential rate with the target median). The roots lie
#: at 1.0-2.2 x the first and 1.4-4.4 x the second over 10,000 PSA draws of the bundled inputs;
#: a draw outside its bracket takes CALIBRATION_RATE_BOUNDS instead (two more evaluations).
CALIBRATION_GUESS_BRACKET_R = (0.5, 4.0)
CALIBRATION_GUESS_BRACKET_MU = (0.5, 4.0)
#: The survival curves of the OS calibration run for this multiple of the target median.
CALIBRATION_OS_HORIZON = 1.5
CALIBRATION_MAX_STEP = 1.0
CALIBRATION_BROYDEN_ITER = 40
CALIBRATION_MONTHS = 12.0
#: The rates (per year) at which the compiled calibration checks that its cohorts' hazards are
#: linear in the two calibrated rates (a solver check, not a model input).
CALIBRATION_LINEARITY_CHECK = (2.0, 3.0)

#: The calibrated values, per year.
CALIBRATED = ("r_severe_on_bsab", "r_myeloma_death_off_bsab")


def median_survival_years(alive: np.ndarray, dt: float) -> np.ndarray:
    """Median of a survival curve given at cycle boundaries (linear interpolation).

    alive : (D, T+1) proportion alive at t = 0, dt, 2 dt, ... Returns (D,) years; inf when
    the curve never reaches 0.5.
    """
    below = alive <= 0.5
    has = below.any(axis=1)
    k = np.argmax(below, axis=1)  # first boundary at or below 0.5
    k = np.maximum(k, 1)
    rows = np.arange(alive.shape[0])
    a0, a1 = alive[rows, k - 1], alive[rows, k]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(a0 > a1, (a0 - 0.5) / (a0 - a1), 0.0)
    out = (k - 1 + frac) * dt
    return np.where(has, out, np.inf)


def calibration_cohorts(spec: ModelSpec) -> tuple[Strategy, Strategy]:
    """The two arms of the trial-like calibration cohort: no IgRT, and primary IVIG (IgRT from
    the start; only its hazards matter, so its dose is a placeholder)."""
    none = Strategy("calibration_none", "never")
    igrt = Strategy("calibration_igrt", "at_start", "ivig", 1.0, spec.cycle_days)
    return none, igrt


def trial_cohort(v: Params, spec: ModelSpec) -> CohortModel:
    """The trial-like cohort as one declared cohort: a share ``p_trial_igrt_use`` starts on
    primary IVIG (state I), the rest without IgRT (state N).

    The arms occupy disjoint states until both reach ``off_bsab`` (O), whose hazards are the
    same in both, so one chain started from the mix of the two start states is exactly the mix
    of the two arms' chains (a Markov trace is linear in its start vector): rows N and L come
    from the no-IgRT arm, rows I and OI from the IVIG arm."""
    none, igrt = calibration_cohorts(spec)
    a = declare(none, "non_igg", v, spec, with_rewards=False)
    b = declare(igrt, "non_igg", v, spec, with_rewards=False)
    arm = {N: a, L: a, I: b, OI: b, O: a}
    share = v["p_trial_igrt_use"][:, None]
    return CohortModel(
        start=(1.0 - share) * a.start + share * b.start,
        exits={s: m.exits[s] for s, m in arm.items() if s in m.exits},
        internal={s: m.internal[s] for s, m in arm.items() if s in m.internal},
        label="calibration cohort",
    )


def run_declared(
    strategy: Strategy, subgroup: str, v: Params, spec: ModelSpec, backend: str, **keep
):
    """One cohort without rewards through the engine (its trace, and with ``keep_events`` its
    infections per cycle); the engine's error names the draw by its own label."""
    model = declare(strategy, subgroup, v, spec, with_rewards=False)
    try:
        (res,) = run_cohorts([model], time_profiles(v, spec), spec.timing(), backend=backend,
                             keep_trace=True, **keep)  # fmt: skip
    except ModelInputError as exc:
        raise ModelInputError(label_draw(str(exc), v)) from None
    return res


def label_draw(message: str, v: Params) -> str:
    """The engine names a draw by its position in the call: name it by its own label."""
    found = re.search(r"\bdraw (\d+)", message)
    if found is None or int(found.group(1)) >= v.n:
        return message
    return message.replace(found.group(0), f"draw {v.index[int(found.group(1))]}", 1)


def trial_median_os_years(
    v: Params, spec: ModelSpec, cap: np.ndarray | None = None, backend: str = "numpy"
) -> np.ndarray:
    """Median OS (years) of the calibration cohort (:func:`trial_cohort`), (D,).

    Neither arm's trigger depends on the subgroup, so one subgroup suffices. A median beyond
    the horizon, or beyond ``cap`` (years, per draw), reads as that limit (keeps the function
    finite and monotone).
    """
    try:
        (res,) = run_cohorts([trial_cohort(v, spec)], time_profiles(v, spec), spec.timing(),
                             backend=backend, keep_trace=True)  # fmt: skip
    except ModelInputError as exc:
        raise ModelInputError(label_draw(str(exc), v)) from None
    return _capped_median(res.trace[:, :, DEAD], spec, cap)


def _capped_median(dead: np.ndarray, spec: ModelSpec, cap: np.ndarray | None) -> np.ndarray:
    """Median OS (years) from the dead state's rows (D, T + 1), read as the horizon, or as
    ``cap`` (years, per draw), when beyond it."""
    limit = spec.n_cycles * spec.dt if cap is None else np.minimum(cap, spec.n_cycles * spec.dt)
    return np.minimum(median_survival_years(1.0 - dead, spec.dt), limit)


def no_igrt_incidence(
    v: Params, spec: ModelSpec, months: float, backend: str = "numpy"
) -> np.ndarray:
    """12-month (``months``) cumulative incidence of severe infection without IgRT, deaths
    censored."""
    short = _incidence_spec(spec, months)
    none, _ = calibration_cohorts(spec)
    res = run_declared(none, "non_igg", v, short, backend, keep_events=True)
    return cumulative_incidence(
        res.trace[:, :-1, :DEAD].sum(axis=2), res.event_totals[SEVERE], short, months
    )


def _incidence_spec(spec: ModelSpec, months: float) -> ModelSpec:
    """The horizon the incidence at ``months`` needs."""
    return spec.first_cycles(min(spec.n_cycles, int(np.ceil(months / 12.0 / spec.dt)) + 1))


def cumulative_incidence(
    alive: np.ndarray, events: np.ndarray, spec: ModelSpec, months: float
) -> np.ndarray:
    """Cumulative incidence by ``months``, deaths censored (as a Kaplan-Meier estimate):
    1 - exp(-sum of per-cycle mean hazards among the alive); the last partial cycle pro rata.

    alive : (D, T) alive at the start of each cycle; events : (D, T) expected events in it.
    """
    hazard = events / alive
    n = months / 12.0 / spec.dt
    k = int(np.floor(n))
    cum = hazard[:, :k].sum(axis=1) + ((n - k) * hazard[:, k] if k < hazard.shape[1] else 0.0)
    return -np.expm1(-cum)


def _solve(f, target: np.ndarray, lo, hi, what: str, ftol=CALIBRATION_FTOL, wide=None, ids=None):
    """Solve f(x) = target for x > 0, one root per draw, vectorized over draws.

    ``f(x, idx)`` gives the function at rates ``x`` for the draws at positions ``idx``.
    Illinois (modified regula falsi) on log(x) within the bracket [lo, hi], which must enclose
    every root; f must be monotone in x. Each draw stops on its own once
    ``|f - target| <= ftol * max(1, |target|)`` (ftol scalar or per draw), so its root does not
    depend on which other draws share the call. Converges superlinearly (about 10 calls).

    ``wide``: a second bracket (lo, hi) for the draws whose [lo, hi] does not enclose the root
    (a narrow first guess per draw, the global bounds as the fallback). ``ids``: the draw
    numbers the error message names (default: positions).

    Returns (root, slope): slope is d f / d log(x) through the last two points evaluated.
    """
    n = len(target)
    everyone = np.arange(n)
    a = np.log(np.broadcast_to(lo, (n,))).astype(float)
    b = np.log(np.broadcast_to(hi, (n,))).astype(float)
    ga, gb = f(np.exp(a), everyone) - target, f(np.exp(b), everyone) - target
    ok = np.sign(ga) * np.sign(gb) <= 0
    if wide is not None and not ok.all():
        i = np.flatnonzero(~ok)
        a[i] = np.log(np.broadcast_to(wide[0], (n,))[i])
        b[i] = np.log(np.broadcast_to(wide[1], (n,))[i])
        ga[i] = f(np.exp(a[i]), i) - target[i]
        gb[i] = f(np.exp(b[i]), i) - target[i]
        ok = np.sign(ga) * np.sign(gb) <= 0
    if not ok.all():
        d = int(np.argmax(~ok))
        fa, fb = ga[d] + target[d], gb[d] + target[d]
        raise CeaError(
            f"cannot calibrate {what}: target {target[d]:.4g} is outside the reachable range "
            f"{min(fa, fb):.4g} to {max(fa, fb):.4g} (draw {d if ids is None else ids[d]})"
        )
    tol = np.broadcast_to(ftol, (n,)) * np.maximum(1.0, np.abs(target))
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (gb - ga) / (b - a)
    active = np.ones(n, dtype=bool)
    for _ in range(CALIBRATION_MAX_ITER):
        i = np.flatnonzero(active)
        if i.size == 0:
            break
        ai, bi, gai, gbi = a[i], b[i], ga[i], gb[i]
        with np.errstate(invalid="ignore", divide="ignore"):
            c = np.where(gbi != gai, bi - gbi * (bi - ai) / (gbi - gai), 0.5 * (ai + bi))
        c = np.clip(c, np.minimum(ai, bi), np.maximum(ai, bi))
        gc = f(np.exp(c), i) - target[i]
        with np.errstate(invalid="ignore", divide="ignore"):
            slope[i] = np.where(c != bi, (gc - gbi) / (c - bi), slope[i])
        same = np.sign(gc) == np.sign(gbi)
        # Illinois step: keep the bracket; halve the stale end's value when the same end moves twice
        a[i], ga[i] = np.where(same, ai, bi), np.where(same, gai / 2.0, gbi)
        b[i], gb[i] = c, gc
        done = (np.abs(gc) <= tol[i]) | (np.abs(c - a[i]) < CALIBRATION_LOG_TOL)
        active[i[done]] = False
    return np.exp(b), slope


def calibrate(v: Params, spec: ModelSpec, backend: str = "numpy") -> Params:
    """Calibrate the two quantities docs/model.md fixes by observation, per draw, jointly:

    * ``r_severe_on_bsab`` (per year): severe-infection rate with low IgG on bsAb, so that the
      no-IgRT cohort's cumulative incidence at 12 months equals ``p_severe_12m_no_igrt``;
    * ``r_myeloma_death_off_bsab`` (per year): myeloma death after the bsAb stops, so that the
      calibration cohort's median OS equals ``t_target_median_os_months``.

    Each rate is first found alone by bracketed root finding (:func:`_solve`) to
    ``CALIBRATION_START_FTOL``; then both together, per draw, by Broyden's method on the two
    conditions (the rates interact only through infection deaths, so the start is close and
    convergence fast) until both are met to ``CALIBRATION_FTOL``. Draws it does not settle are
    solved by alternating bracketed solves to a fixed point (:func:`_calibrate_alternating`).
    Every draw is solved on its own: its result does not depend on the other draws in the call.
    Returns ``v`` with both as derived values.
    """
    target_inc = v["p_severe_12m_no_igrt"]
    target_os = v["t_target_median_os_months"]  # years, through unit_scale
    n = v.n
    zero = target_inc <= 0  # no severe infections at all: the rate is 0, nothing to solve
    os_spec = _os_spec(spec, target_os)
    cap = _os_cap(spec, target_os)  # each draw's own horizon: as if it were calibrated alone
    ids = v.index
    # the strategy-independent hazards over the model's horizon, computed once (cached on v)
    # and shared by both conditions, every subset of draws the root finding takes and the
    # strategy cohorts the model runs next (a shorter horizon takes the first cycles)
    inc_spec = _incidence_spec(spec, CALIBRATION_MONTHS)
    time_profiles(v, spec)

    inc_at, os_at = _conditions(v, spec, inc_spec, os_spec, cap, backend)
    what_r = "the severe-infection rate (p_severe_12m_no_igrt)"
    what_mu = "myeloma death after bsAb (t_target_median_os_months, in years)"
    # 1. one at a time, loosely (exactly where r = 0: mu alone is then the whole problem)
    r = np.zeros(n)
    s_r = np.zeros(n)
    nz = np.flatnonzero(~zero)
    mu_start = np.ones(n)
    # first brackets per draw around rough guesses (the rate that alone would give the
    # incidence; the exponential rate with the target median), the global bounds if they miss
    lo_f, hi_f = CALIBRATION_GUESS_BRACKET_R
    if nz.size:
        guess = -np.log1p(-np.minimum(target_inc[nz], 1 - 1e-9)) / (CALIBRATION_MONTHS / 12.0)
        r[nz], s_r[nz] = _solve(
            lambda x, i: inc_at(x, mu_start[nz[i]], nz[i]),
            target_inc[nz],
            guess * lo_f,
            guess * hi_f,
            what=what_r,
            ftol=CALIBRATION_START_FTOL,
            wide=CALIBRATION_RATE_BOUNDS,
            ids=ids[nz],
        )
    guess = np.log(2.0) / target_os
    lo_f, hi_f = CALIBRATION_GUESS_BRACKET_MU
    mu, s_mu = _solve(
        lambda x, i: os_at(r[i], x, i),
        target_os,
        guess * lo_f,
        guess * hi_f,
        what=what_mu,
        ftol=np.where(zero, CALIBRATION_FTOL, CALIBRATION_START_FTOL),
        wide=CALIBRATION_RATE_BOUNDS,
        ids=ids,
    )
    if nz.size == 0:
        return v.with_derived(r_severe_on_bsab=r, r_myeloma_death_off_bsab=mu)
    # 2. both together (Broyden, per draw, on x = log rates)
    m = nz.size
    t = np.stack([target_inc[nz], target_os[nz]], axis=1)
    tol = CALIBRATION_FTOL * np.maximum(1.0, np.abs(t))
    x = np.log(np.stack([r[nz], mu[nz]], axis=1))

    def residual(x, i):
        rr, mm = np.exp(x[:, 0]), np.exp(x[:, 1])
        g = nz[i]
        return np.stack([inc_at(rr, mm, g), os_at(rr, mm, g)], axis=1) - t[i]

    F = residual(x, np.arange(m))
    J = np.zeros((m, 2, 2))
    J[:, 0, 0], J[:, 1, 1] = s_r[nz], s_mu[nz]
    active = ~(np.abs(F) <= tol).all(axis=1)
    failed = np.zeros(m, dtype=bool)
    for _ in range(CALIBRATION_BROYDEN_ITER):
        i = np.flatnonzero(active)
        if i.size == 0:
            break
        Ji, Fi = J[i], F[i]
        det = Ji[:, 0, 0] * Ji[:, 1, 1] - Ji[:, 0, 1] * Ji[:, 1, 0]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            dx = (
                -np.stack(
                    [
                        Ji[:, 1, 1] * Fi[:, 0] - Ji[:, 0, 1] * Fi[:, 1],
                        -Ji[:, 1, 0] * Fi[:, 0] + Ji[:, 0, 0] * Fi[:, 1],
                    ],
                    axis=1,
                )
                / det[:, None]
            )
            big = np.abs(dx).max(axis=1)
            dx *= np.where(big > CALIBRATION_MAX_STEP, CALIBRATION_MAX_STEP / big, 1.0)[:, None]
        bad = ~np.isfinite(dx).all(axis=1)
        if bad.any():
            failed[i[bad]] = True
            active[i[bad]] = False
            i, dx, Ji, Fi = i[~bad], dx[~bad], Ji[~bad], Fi[~bad]
            if i.size == 0:
                continue
        xn = x[i] + dx
        Fn = residual(xn, i)
        # Broyden's update: J += (dF - J dx) dx' / (dx' dx)
        u = (Fn - Fi) - np.einsum("kab,kb->ka", Ji, dx)
        J[i] = Ji + u[:, :, None] * dx[:, None, :] / (dx * dx).sum(axis=1)[:, None, None]
        x[i], F[i] = xn, Fn
        done = (np.abs(Fn) <= tol[i]).all(axis=1)
        stuck = ~np.isfinite(Fn).all(axis=1) | (np.abs(dx).max(axis=1) < CALIBRATION_LOG_TOL)
        failed[i[stuck & ~done]] = True
        active[i[done | stuck]] = False
    failed |= active
    r[nz], mu[nz] = np.exp(x[:, 0]), np.exp(x[:, 1])
    if failed.any():
        g = nz[failed]
        rr, mm = _calibrate_alternating(v.take(g), spec, os_spec, cap[g], backend)
        r[g], mu[g] = rr, mm
    return v.with_derived(r_severe_on_bsab=r, r_myeloma_death_off_bsab=mu)


def _conditions(v: Params, spec: ModelSpec, inc_spec: ModelSpec, os_spec: ModelSpec, cap, backend):
    """The two conditions as functions of the rates: ``inc_at(r, mu, idx)``, the no-IgRT
    cohort's 12-month incidence (:func:`no_igrt_incidence`), and ``os_at(r, mu, idx)``, the
    calibration cohort's median OS capped at each draw's horizon (:func:`trial_median_os_years`),
    for the draws at positions ``idx`` (r and mu per year, one per draw of ``idx``).

    With the compiled backend both cohorts are declared once, at the rates (0, 0), (1, 0) and
    (0, 1) (every hazard is linear in the two rates), and rerun at each point of the root
    finding (:func:`cea.engine.cohort.rerun`, which checks the linearity against the cohorts
    declared at (2, 3)): the same numbers to rounding, without declaring the cohorts and
    building their arrays again at every evaluation. The NumPy backend (the reference) declares
    them at every evaluation."""

    def inc_declared(r, mu, idx):
        sub = v.take(idx).with_derived(r_severe_on_bsab=r, r_myeloma_death_off_bsab=mu)
        return no_igrt_incidence(sub, spec, CALIBRATION_MONTHS, backend)

    def os_declared(r, mu, idx):
        sub = v.take(idx).with_derived(r_severe_on_bsab=r, r_myeloma_death_off_bsab=mu)
        return trial_median_os_years(sub, os_spec, cap[idx], backend)

    if backend != "numba":
        return inc_declared, os_declared
    basis = [
        v.with_derived(r_severe_on_bsab=np.full(v.n, r), r_myeloma_death_off_bsab=np.full(v.n, m))
        for r, m in ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0), CALIBRATION_LINEARITY_CHECK)
    ]
    none, _ = calibration_cohorts(spec)
    # rerun only what the conditions read: the trace of each, and the severe infections of
    # the incidence cohort (other events and the counts do not change the trace)
    inc_cohorts = [
        _reading(declare(none, "non_igg", b, inc_spec, with_rewards=False), SEVERE) for b in basis
    ]
    os_cohorts = [_reading(trial_cohort(b, os_spec)) for b in basis]
    inc_run = rerun(inc_cohorts[0], inc_cohorts[1:3], time_profiles(v, inc_spec),
                    inc_spec.timing(), keep_states=ALIVE, keep_events=True,
                    check=(CALIBRATION_LINEARITY_CHECK, inc_cohorts[3]))  # fmt: skip
    # the median needs the dead state's rows up to the first with half the cohort dead (alive
    # <= 0.5 comes no later: 1 - d <= 0.5 when d >= 0.5); a block of draws stops there
    os_run = rerun(os_cohorts[0], os_cohorts[1:3], time_profiles(v, os_spec), os_spec.timing(),
                   keep_states=(DEAD,), stop=(DEAD, 0.5),
                   check=(CALIBRATION_LINEARITY_CHECK, os_cohorts[3]))  # fmt: skip

    def inc_at(r, mu, idx):
        res = inc_run.run(_rates(r, mu, idx), idx)
        if res is None:  # a negative or non-finite hazard: the declaration's error names it
            return inc_declared(r, mu, idx)
        # the alive states' rows added in order, as a sum over them would (without its
        # slow reduction over a short axis)
        alive = res.trace[:, :-1, 0].copy()
        for k in range(1, len(ALIVE)):
            alive += res.trace[:, :-1, k]
        return cumulative_incidence(alive, res.event_totals[SEVERE], inc_spec, CALIBRATION_MONTHS)

    def os_at(r, mu, idx):
        res = os_run.run(_rates(r, mu, idx), idx)
        if res is None:
            return os_declared(r, mu, idx)
        return _capped_median(res.trace[:, :, 0], os_spec, cap[idx])

    return inc_at, os_at


def _reading(model: CohortModel, *events: str) -> CohortModel:
    """The cohort with only ``events`` among its events and no counts."""
    return replace(model, events={e: model.events[e] for e in events}, counts={})


def _rates(r, mu, idx) -> np.ndarray:
    """(2, n): the two rates for the n draws of ``idx``."""
    return np.stack([np.broadcast_to(r, idx.shape), np.broadcast_to(mu, idx.shape)]).astype(float)


def _os_cap_cycles(spec: ModelSpec, target_os: np.ndarray) -> np.ndarray:
    """Each draw's own OS horizon in cycles: the one :func:`_os_spec` would give it alone."""
    return np.minimum(spec.n_cycles, np.ceil(CALIBRATION_OS_HORIZON * target_os / spec.dt) + 1)


def _os_cap(spec: ModelSpec, target_os: np.ndarray) -> np.ndarray:
    """Each draw's own OS horizon (years): the one :func:`_os_spec` would give it alone."""
    return _os_cap_cycles(spec, target_os) * spec.dt


def _os_spec(spec: ModelSpec, target_os: np.ndarray) -> ModelSpec:
    """A horizon of 1.5 x the target median OS: the root (median = target) lies well inside it,
    and where a trial rate leaves the median beyond it, the median reads as the horizon
    (> target), which still brackets the root. The trace up to the median does not depend on
    the horizon, so neither does the calibrated rate."""
    return spec.first_cycles(
        min(spec.n_cycles, int(np.ceil(CALIBRATION_OS_HORIZON * target_os.max() / spec.dt)) + 1),
    )


def _calibrate_alternating(
    v: Params, spec: ModelSpec, os_spec: ModelSpec, cap: np.ndarray, backend: str
):
    """The robust fallback of :func:`calibrate`: each rate solved to CALIBRATION_FTOL given the
    other, alternately, until both move by less than CALIBRATION_FIXED_POINT_TOL (relative).
    Every draw has a positive incidence target and iterates on its own (a draw's result does
    not depend on the others). Returns (r, mu) per year; raises CeaError for a draw that has
    not converged after CALIBRATION_ROUNDS rounds."""
    n = v.n
    target_inc = v["p_severe_12m_no_igrt"]
    target_os = v["t_target_median_os_months"]
    ids = v.index
    mu = np.full(n, 1.0)
    r = np.zeros(n)
    active = np.ones(n, dtype=bool)
    for k in range(CALIBRATION_ROUNDS):
        a = np.flatnonzero(active)
        if a.size == 0:
            break
        sub, r_old, mu_old = v.take(a), r[a], mu[a]

        # first round: the global bracket; later rounds: a narrow one around the last solution
        # (the weak coupling between the two rates keeps the new root near), the global one
        # for a draw whose root has left it
        def bracket(x, first=k == 0):
            if first:
                return CALIBRATION_RATE_BOUNDS
            return x / CALIBRATION_WARM_FACTOR, x * CALIBRATION_WARM_FACTOR

        r_new, _ = _solve(
            lambda x, i, sub=sub, mu_old=mu_old: no_igrt_incidence(
                sub.take(i).with_derived(r_severe_on_bsab=x, r_myeloma_death_off_bsab=mu_old[i]),
                spec,
                CALIBRATION_MONTHS,
                backend,
            ),
            target_inc[a],
            *bracket(r_old),
            what="the severe-infection rate (p_severe_12m_no_igrt)",
            wide=CALIBRATION_RATE_BOUNDS,
            ids=ids[a],
        )
        mu_new, _ = _solve(
            lambda x, i, sub=sub, r_new=r_new, cap_a=cap[a]: trial_median_os_years(
                sub.take(i).with_derived(r_severe_on_bsab=r_new[i], r_myeloma_death_off_bsab=x),
                os_spec,
                cap_a[i],
                backend,
            ),
            target_os[a],
            *bracket(mu_old),
            what="myeloma death after bsAb (t_target_median_os_months, in years)",
            wide=CALIBRATION_RATE_BOUNDS,
            ids=ids[a],
        )
        settled = (np.abs(r_new - r_old) <= CALIBRATION_FIXED_POINT_TOL * r_new) & (
            np.abs(mu_new - mu_old) <= CALIBRATION_FIXED_POINT_TOL * mu_new
        )
        r[a], mu[a] = r_new, mu_new
        active[a[settled]] = False
    if active.any():
        d = int(np.argmax(active))
        raise CeaError(
            "cannot calibrate the severe-infection rate and myeloma death after bsAb together: "
            f"no fixed point after {CALIBRATION_ROUNDS} rounds (draw {ids[d]})"
        )
    return r, mu

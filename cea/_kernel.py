"""Compiled kernels: the IgRT model's cohorts run draw by draw in one fused pass, and the
per-draw calibration (cea.model.calibrate's algorithm) runs in compiled code.

The NumPy path (:func:`cea.model.expand` then :func:`cea.markov.run_markov`) builds a
(draws x cycles x 6 x 6) transition array and a dozen (draws x cycles x 6) reward arrays, then
runs the trace; at PSA sizes that is memory traffic, not arithmetic (docs/psa.md). This kernel
takes the same compact description (:class:`cea.model.Cohort`) and, per draw and cycle, forms
the competing-hazard probabilities of each row, accumulates every reward on the trace row,
counts transition rewards and infection deaths on the flows, and advances the trace, without
storing any of those arrays. It follows the engine's conventions exactly: per-cycle rewards on
row ``t`` = cycle ``t`` and the last row takes cycle ``T - 1`` (``reward_alignment="start"``);
row ``t`` weighted by the correction weight and discounted by the row's factor; transition
rewards and infection deaths counted once on row ``t + 1``, unweighted. ``tests/test_kernel.py``
checks it against the NumPy path for every strategy type and switch. The calibration kernel
(:func:`calibrate_draws`, see the section comment below) does the same for the two calibration
conditions, each survival curve run only until its median.

Numba compiles them on first use and caches the machine code beside this file. The PSA switches it
on (:func:`cea.model.compiled_kernel`); without Numba (or with Numba failing to import), or with
``CEA_ENGINE=numpy``, the model uses the NumPy path. A draw with a transition probability
outside [0, 1] makes the call rerun through the engine, whose error names it.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np

#: Numba is installed (it is imported, and the kernel compiled or loaded from its cache, on
#: first use only: commands that never run the kernel do not pay for it).
HAVE_NUMBA = importlib.util.find_spec("numba") is not None


class KernelUnavailable(Exception):
    """The kernel cannot run here (Numba missing or failing to import)."""


class InvalidProbabilities(Exception):
    """Some draw gave a transition probability outside [0, 1] (or not finite): the caller
    reruns the call through the engine, whose error names the strategy, draw, cycle and state."""


# state indices (as cea.model; repeated here so that the kernel has no Python-object lookups)
_N, _L, _I, _OI, _O, _DEAD = 0, 1, 2, 3, 4, 5
_S = 6

# The transition matrix has 19 possible non-zero entries (edges); the kernel computes those
# only. Order: from N, L, I, OI, O, dead.
EDGES = (
    (_N, _N), (_N, _L), (_N, _I), (_N, _O), (_N, _DEAD),
    (_L, _L), (_L, _I), (_L, _O), (_L, _DEAD),
    (_I, _I), (_I, _OI), (_I, _O), (_I, _DEAD),
    (_OI, _OI), (_OI, _O), (_OI, _DEAD),
    (_O, _O), (_O, _DEAD),
    (_DEAD, _DEAD),
)  # fmt: skip
_E = len(EDGES)
EDGE_FROM = np.array([i for i, _ in EDGES], dtype=np.int64)
EDGE_TO = np.array([j for _, j in EDGES], dtype=np.int64)


# Competing cumulative hazards over a cycle -> probabilities, as cea.model._competing:
# p_j = H_j / H x (1 - exp(-H)), stay = exp(-H), with one expm1 call (exp(-H) = 1 + expm1(-H));
# also returned: the factor (1 - exp(-H)) / H, so that p_j = H_j x factor.


def _competing2(h1, h2):
    total = h1 + h2
    em1 = math.expm1(-total)
    frac = -em1 / total if total > 0.0 else 1.0
    return h1 * frac, h2 * frac, 1.0 + em1, frac


def _competing3(h1, h2, h3):
    total = h1 + h2 + h3
    em1 = math.expm1(-total)
    frac = -em1 / total if total > 0.0 else 1.0
    return h1 * frac, h2 * frac, h3 * frac, 1.0 + em1, frac


def _competing1(h1):
    em1 = math.expm1(-h1)
    frac = -em1 / h1 if h1 > 0.0 else 1.0
    return h1 * frac, 1.0 + em1, frac


def _edges(
    e,  # (E,) out: the probability of each edge in this cycle
    hd,  # (S,) out: the death hazard of each state in this cycle
    fd,  # (S,) out: P(death in the cycle) / hd of each state
    live,  # (S,) bool: rows that can be occupied (the others' edges are set to 0)
    sevc,  # (S,) expected severe infections per person in this cycle
    mm,  # (S,) myeloma death per year
    dt,
    hbg,
    hdisc,
    hdecl,
    cf,
    has_detect,
    h_det,
    p_det,
    stay_det,
    starts_low,
    starts_normal,
    phi,
    p_stop,
    stay_stop,
    prob_tol,
):
    """The transition probabilities of one cycle (as cea.model.expand builds them), for the
    rows that can be occupied (a row no one can reach adds nothing to the trace or the
    rewards: its edges are set to 0 and not computed). Returns False when a computed
    probability is outside [-prob_tol, 1 + prob_tol] or not finite, or when a hazard of a row
    not computed is negative or not finite (the engine checks every row: such a draw goes to
    the engine, which decides)."""
    ok = True
    for s in range(_S):
        hd[s] = hbg + mm[s] * dt + sevc[s] * cf
        if not live[s] and not (hd[s] >= 0.0 and hd[s] < math.inf):
            ok = False
    if not (hdisc >= 0.0 and hdisc < math.inf and hdecl >= 0.0 and hdecl < math.inf):
        ok = False
    if not (phi >= 0.0 and phi <= 1.0):
        ok = False
    for p in (p_det, stay_det, p_stop, stay_stop):  # constant over cycles, used in some rows
        if not (p >= -prob_tol and p <= 1.0 + prob_tol):
            ok = False
    # N: exits (discontinuation, death); internal (IgG decline, infection-started IgRT)
    if live[_N]:
        p_o, p_dead, stay_exit, fd[_N] = _competing2(hdisc, hd[_N])
        e[3] = p_o
        e[4] = p_dead
        if starts_normal:
            p_l, p_i, stay_int, _ = _competing2(hdecl, sevc[_N])
            e[1] = stay_exit * p_l
            e[2] = stay_exit * p_i
        else:
            p_l, stay_int, _ = _competing1(hdecl)
            e[1] = stay_exit * p_l
            e[2] = 0.0
        e[0] = stay_exit * stay_int
    else:
        fd[_N] = 0.0
        for k in range(5):
            e[k] = 0.0
    # L: exits; internal (detection and/or infection-started IgRT)
    if live[_L]:
        p_o, p_dead, stay_exit, fd[_L] = _competing2(hdisc, hd[_L])
        e[7] = p_o
        e[8] = p_dead
        if has_detect and not starts_low:
            e[6] = stay_exit * p_det
            e[5] = stay_exit * stay_det
        elif has_detect or starts_low:
            h_start = h_det + sevc[_L] if has_detect else sevc[_L]
            p_i, stay_int, _ = _competing1(h_start)
            e[6] = stay_exit * p_i
            e[5] = stay_exit * stay_int
        else:
            e[6] = 0.0
            e[5] = stay_exit
    else:
        fd[_L] = 0.0
        for k in range(5, 9):
            e[k] = 0.0
    # I: exits only (continue IgRT off bsAb, stop both, death)
    if live[_I]:
        p_oi, p_o, p_dead, stay_exit, fd[_I] = _competing3(hdisc * phi, hdisc * (1.0 - phi), hd[_I])
        e[10] = p_oi
        e[11] = p_o
        e[12] = p_dead
        e[9] = stay_exit
    else:
        fd[_I] = 0.0
        for k in range(9, 13):
            e[k] = 0.0
    # OI: death; internal IgRT stop
    if live[_OI]:
        p_dead, stay_exit, fd[_OI] = _competing1(hd[_OI])
        e[15] = p_dead
        e[14] = stay_exit * p_stop
        e[13] = stay_exit * stay_stop
    else:
        fd[_OI] = 0.0
        for k in range(13, 16):
            e[k] = 0.0
    # O: death
    p_dead, stay_exit, fd[_O] = _competing1(hd[_O])
    e[17] = p_dead
    e[16] = stay_exit
    e[18] = 1.0
    for k in range(_E):
        if not (e[k] >= -prob_tol and e[k] <= 1.0 + prob_tol):
            ok = False
    return ok


def _live(c) -> np.ndarray:
    """(S,) bool: the states cohort ``c`` can ever occupy (its start, and where its edges lead)."""
    has_detect, starts_low, starts_normal = (
        c.h_detect is not None,
        bool(c.infection_starts_low),
        bool(c.infection_starts_normal),
    )
    live = np.asarray(c.start) > 0
    live[_L] |= live[_N]
    live[_I] |= (live[_N] and starts_normal) or (live[_L] and (has_detect or starts_low))
    live[_OI] |= live[_I]
    live[_O] = True
    live[_DEAD] = True
    return live


def _advance(x, e):
    """x <- x P for the 19 edges (in place; returns nothing)."""
    n, l_, i, oi, o, dead = x[0], x[1], x[2], x[3], x[4], x[5]
    x[0] = n * e[0]
    x[1] = n * e[1] + l_ * e[5]
    x[2] = n * e[2] + l_ * e[6] + i * e[9]
    x[3] = i * e[10] + oi * e[13]
    x[4] = n * e[3] + l_ * e[7] + i * e[11] + oi * e[14] + o * e[16]
    x[5] = n * e[4] + l_ * e[8] + i * e[12] + oi * e[15] + o * e[17] + dead * e[18]


def _infections(sevc, nsc, sev, ns, dt, f, mix_i):
    for s in range(_S):
        m = mix_i if s == _I else 1.0
        sevc[s] = sev[s] * dt * f * m
        nsc[s] = ns[s] * dt * f * m


def _cohort_kernel(
    start,  # (S,)
    dt,
    h_decline,  # (D, T)
    h_disc,
    f_inf,
    h_bg,
    low_share,
    sev,  # (D, S) per year
    ns,
    mix_igrt,
    rr_normal,  # (D,)
    cf,
    mm,  # (D, S) per year
    h_detect,  # (D,) per cycle (zeros when has_detect is False)
    has_detect,
    infection_starts_low,
    infection_starts_normal,
    live,  # (S,) bool: the states the cohort can occupy (live_rows)
    phi,  # (D,)
    h_stop,  # (D,)
    const,  # (D, R, S)
    on_sev,  # (D, R)
    on_ns,  # (D, R)
    tr_edge,  # (Q,) int: the edge of each non-zero (transition reward, edge) pair
    tr_reward,  # (Q,) int: its transition reward
    tr_value,  # (D, Q) its value per transition
    weights,  # (T + 1,)
    disc_kinds,  # (K, T + 1) the distinct discount rows (costs, effects)
    kind,  # (R,) int: the discount row of each reward
    disc_trans,  # (R2, T + 1)
    disc_effects,  # (T + 1,) for infection deaths
    out_disc,  # (D, R + R2 + 1): rewards, transition rewards, infection deaths
    out_und,
    trace_out,  # (D, T + 1, S) or empty
    sev_events_out,  # (D, T) or empty: expected severe infections in each cycle
    prob_tol,  # a probability outside [-prob_tol, 1 + prob_tol] (or not finite) flags the draw
    bad,  # (D,) uint8, set to 1 for a flagged draw
):
    D, T = h_decline.shape
    R = const.shape[1]
    R2 = disc_trans.shape[0]
    Q = tr_edge.shape[0]
    keep_trace = trace_out.shape[0] > 0
    keep_events = sev_events_out.shape[0] > 0
    K = disc_kinds.shape[0]
    # per draw, the weighted (and discounted) sums over rows of the trace, and of the expected
    # severe / non-severe infections; every state reward is then a dot product with them
    acc = np.empty((K + 1, _S))  # row K: undiscounted
    acc_sev = np.empty(K + 1)
    acc_ns = np.empty(K + 1)
    x = np.empty(_S)
    sevc = np.empty(_S)
    nsc = np.empty(_S)
    hd = np.empty(_S)
    fd = np.zeros(_S)
    e = np.empty(_E)
    flow = np.empty(_E)
    f_k = np.empty(K + 1)
    for d in range(D):
        p_stop, stay_stop, _ = _competing1(h_stop[d])  # constant over cycles
        p_det, stay_det, _ = _competing1(h_detect[d])  # detection alone: constant too
        acc[:, :] = 0.0
        acc_sev[:] = 0.0
        acc_ns[:] = 0.0
        for s in range(_S):
            x[s] = start[s]
            if keep_trace:
                trace_out[d, 0, s] = start[s]
        for t in range(T + 1):
            k = t if t < T else T - 1  # the last row takes the last cycle's rewards
            if t < T:
                mix_i = (
                    rr_normal[d] * (1.0 - low_share[d, k]) + low_share[d, k] if mix_igrt else 1.0
                )
                _infections(sevc, nsc, sev[d], ns[d], dt, f_inf[d, k], mix_i)
            # state rewards on row t, sum_s x_s (const_rs + a_r sev_s + b_r ns_s): accumulate
            # the row's weighted trace and infections once for all rewards
            if R > 0:
                w = weights[t]
                x_sev = 0.0
                x_ns = 0.0
                for s in range(_S):
                    x_sev += x[s] * sevc[s]
                    x_ns += x[s] * nsc[s]
                for j in range(K):
                    f_k[j] = w * disc_kinds[j, t]
                f_k[K] = w
                for j in range(K + 1):
                    for s in range(_S):
                        acc[j, s] += f_k[j] * x[s]
                    acc_sev[j] += f_k[j] * x_sev
                    acc_ns[j] += f_k[j] * x_ns
            if t == T:
                for r in range(R):
                    for j in (kind[r], K):
                        val = on_sev[d, r] * acc_sev[j] + on_ns[d, r] * acc_ns[j]
                        for s in range(_S):
                            val += const[d, r, s] * acc[j, s]
                        if j == K:
                            out_und[d, r] += val
                        else:
                            out_disc[d, r] += val
                break
            if keep_events:
                ev = 0.0
                for s in range(_S):
                    ev += x[s] * sevc[s]
                sev_events_out[d, t] = ev
            ok = _edges(
                e, hd, fd, live, sevc, mm[d], dt, h_bg[d, t], h_disc[d, t], h_decline[d, t], cf[d],
                has_detect, h_detect[d], p_det, stay_det, infection_starts_low,
                infection_starts_normal, phi[d], p_stop, stay_stop, prob_tol,
            )  # fmt: skip
            if not ok:
                bad[d] = 1
            # infection deaths: flow into dead x the infection share of the death hazard
            # (P(death) = hd x fd, and its infection share sevc x cf / hd)
            inf = 0.0
            for s in range(_DEAD):
                inf += x[s] * fd[s] * (sevc[s] * cf[d])
            out_und[d, R + R2] += inf
            out_disc[d, R + R2] += inf * disc_effects[t + 1]
            # transition rewards, counted on row t + 1
            if Q > 0:
                for q in range(_E):
                    flow[q] = x[EDGE_FROM_K[q]] * e[q]
                for q in range(Q):
                    r = tr_reward[q]
                    val = flow[tr_edge[q]] * tr_value[d, q]
                    out_und[d, R + r] += val
                    out_disc[d, R + r] += val * disc_trans[r, t + 1]
            _advance(x, e)
            if keep_trace:
                for j in range(_S):
                    trace_out[d, t + 1, j] = x[j]


EDGE_FROM_K = EDGE_FROM  # a global array the compiled kernel reads as a constant


# --------------------------------------------------------------------------- calibration
#
# The calibration (cea.model.calibrate) solves, per draw, two rates: r (severe infections on
# the bsAb with low IgG) so that the no-IgRT cohort's 12-month incidence equals its target,
# and mu (myeloma death after the bsAb) so that the trial cohort's median OS equals its target.
# Cohort c's infection rates and myeloma death rates are affine in them:
# sev = sev_b + r sev_a, mm = mm_b + mu mm_a (cea.model builds sev_a, ... from cea.model.cohort
# at r = mu = 0 and 1). Cohorts: 0 = no IgRT over the incidence horizon, 1 = no IgRT and 2 =
# IgRT from the start over the OS horizon. The algorithm is cea.model.calibrate's, per draw:
# bracketed Illinois for each rate alone, then Broyden on both. A draw it cannot settle gets a
# status the caller resolves through cea.model's own path (which also names any error).

OK, UNREACHABLE, NOT_SETTLED, BAD_PROBABILITY = 0, 1, 2, 3


def _run_eval(which, d, r, mu, cal, work):
    """Incidence (which = 0) or median OS in years (which = 1) of draw d at rates r, mu.
    Returns (value, ok): ok False when a transition probability is invalid."""
    (
        hz_inc, hz_os, start, mix, has_det, starts_low, starts_normal, live, h_det, sev_a, sev_b,
        mm_a, mm_b, rr_normal, cf, phi, h_stop, share, cap, cap_cycles, dt, months, prob_tol,
    ) = cal  # fmt: skip
    x, y, e, hd, fd, sevc, nsc, sev, mmv, zero = work
    p_stop, stay_stop, _ = _competing1(h_stop[d])
    ok = True
    if which == 0:
        c = 0
        hdecl, hdisc, finf, hbg, low = hz_inc
        T = hdecl.shape[1]
        p_det, stay_det, _ = _competing1(h_det[c, d])
        for s in range(_S):
            x[s] = start[c, s]
            sev[s] = sev_b[c, d, s] + r * sev_a[c, d, s]
            mmv[s] = mm_b[c, d, s] + mu * mm_a[c, d, s]
        n = months / 12.0 / dt
        kk = int(math.floor(n))
        cum = 0.0
        for t in range(T):
            mix_i = rr_normal[d] * (1.0 - low[d, t]) + low[d, t] if mix[c] else 1.0
            _infections(sevc, nsc, sev, zero, dt, finf[d, t], mix_i)
            alive = 0.0
            ev = 0.0
            for s in range(_DEAD):
                alive += x[s]
            for s in range(_S):
                ev += x[s] * sevc[s]
            h = ev / alive
            if t < kk:
                cum += h
            else:
                cum += (n - kk) * h
                break
            ok &= _edges(
                e, hd, fd, live[c], sevc, mmv, dt, hbg[d, t], hdisc[d, t], hdecl[d, t], cf[d], has_det[c],
                h_det[c, d], p_det, stay_det, starts_low[c], starts_normal[c], phi[d], p_stop,
                stay_stop, prob_tol,
            )  # fmt: skip
            _advance(x, e)
        return -math.expm1(-cum), ok
    # median OS of the mix of cohorts 1 (share 1 - share) and 2 (share), the two run in step
    # until the mixture's survival reaches 0.5 or the draw's own horizon
    hdecl, hdisc, finf, hbg, low = hz_os
    for s in range(_S):
        x[s] = start[1, s]
        y[s] = start[2, s]
    w = share[d]
    prev = (1.0 - w) * (1.0 - x[_DEAD]) + w * (1.0 - y[_DEAD])
    for t in range(cap_cycles[d]):
        for c in (1, 2):
            z = x if c == 1 else y
            p_det, stay_det, _ = _competing1(h_det[c, d])
            for s in range(_S):
                sev[s] = sev_b[c, d, s] + r * sev_a[c, d, s]
                mmv[s] = mm_b[c, d, s] + mu * mm_a[c, d, s]
            mix_i = rr_normal[d] * (1.0 - low[d, t]) + low[d, t] if mix[c] else 1.0
            _infections(sevc, nsc, sev, zero, dt, finf[d, t], mix_i)
            ok &= _edges(
                e, hd, fd, live[c], sevc, mmv, dt, hbg[d, t], hdisc[d, t], hdecl[d, t], cf[d], has_det[c],
                h_det[c, d], p_det, stay_det, starts_low[c], starts_normal[c], phi[d], p_stop,
                stay_stop, prob_tol,
            )  # fmt: skip
            _advance(z, e)
        cur = (1.0 - w) * (1.0 - x[_DEAD]) + w * (1.0 - y[_DEAD])
        if cur <= 0.5:
            frac = (prev - 0.5) / (prev - cur) if prev > cur else 0.0
            return min((t + frac) * dt, cap[d]), ok
        prev = cur
    return cap[d], ok


def _eval_at(which, d, logx, other, cal, work):
    """_run_eval with the unknown rate at exp(logx) and the other one fixed at ``other``."""
    if which == 0:
        return _run_eval(0, d, math.exp(logx), other, cal, work)
    return _run_eval(1, d, other, math.exp(logx), cal, work)


def _sign(v):
    if v > 0.0:
        return 1.0
    if v < 0.0:
        return -1.0
    if v == 0.0:
        return 0.0
    return math.nan


def _bracketed(ga, gb):
    return _sign(ga) * _sign(gb) <= 0.0


def _illinois(
    which, d, other, target, lo, hi, wide_lo, wide_hi, ftol, max_iter, log_tol, cal, work
):
    """cea.model._solve for one draw: the root x of f(x) = target (x = r with mu = other when
    which = 0, x = mu with r = other when which = 1). Returns (root, slope, status)."""
    a = math.log(lo)
    b = math.log(hi)
    va, ok1 = _eval_at(which, d, a, other, cal, work)
    vb, ok2 = _eval_at(which, d, b, other, cal, work)
    ok = ok1 and ok2
    ga = va - target
    gb = vb - target
    if not _bracketed(ga, gb):
        a = math.log(wide_lo)
        b = math.log(wide_hi)
        va, ok1 = _eval_at(which, d, a, other, cal, work)
        vb, ok2 = _eval_at(which, d, b, other, cal, work)
        ok = ok and ok1 and ok2
        ga = va - target
        gb = vb - target
        if not _bracketed(ga, gb):
            return math.nan, math.nan, UNREACHABLE if ok else BAD_PROBABILITY
    tol = ftol * max(1.0, abs(target))
    slope = (gb - ga) / (b - a) if b != a else math.nan
    for _ in range(max_iter):
        if gb != ga:
            c = b - gb * (b - a) / (gb - ga)
        else:
            c = 0.5 * (a + b)
        c = min(max(c, min(a, b)), max(a, b))
        vc, ok1 = _eval_at(which, d, c, other, cal, work)
        ok = ok and ok1
        gc = vc - target
        if c != b:
            slope = (gc - gb) / (c - b)
        if _sign(gc) == _sign(gb):
            ga = ga / 2.0
        else:
            a = b
            ga = gb
        b = c
        gb = gc
        if abs(gc) <= tol or abs(c - a) < log_tol:
            break
    if not ok:
        return math.nan, math.nan, BAD_PROBABILITY
    if not (math.isfinite(b) and math.isfinite(slope)):
        return math.nan, math.nan, NOT_SETTLED
    return math.exp(b), slope, OK


def _calibrate_kernel(
    cal,  # the cohorts' description (see _run_eval)
    target_inc,  # (D,)
    target_os,  # (D,) years
    settings,  # (11,) start_ftol, ftol, guess_r_lo, guess_r_hi, guess_mu_lo, guess_mu_hi,
    # wide_lo, wide_hi, log_tol, max_step, months (the incidence's horizon)
    max_iter,
    broyden_iter,
    r_out,  # (D,) out
    mu_out,  # (D,) out
    status,  # (D,) int64 out
):
    """cea.model.calibrate per draw (see the section comment)."""
    start_ftol, ftol, gr_lo, gr_hi, gm_lo, gm_hi, w_lo, w_hi, log_tol, max_step, months = settings
    D = target_inc.shape[0]
    work = (
        np.empty(_S), np.empty(_S), np.empty(_E), np.empty(_S), np.zeros(_S), np.empty(_S),
        np.empty(_S), np.empty(_S), np.empty(_S), np.zeros(_S),
    )  # fmt: skip
    for d in range(D):
        status[d] = OK
        t_inc = target_inc[d]
        t_os = target_os[d]
        zero = t_inc <= 0.0
        # 1. one at a time, loosely (exactly where r = 0: mu alone is then the whole problem)
        r = 0.0
        s_r = 0.0
        if not zero:
            guess = -math.log1p(-min(t_inc, 1.0 - 1e-9)) / (months / 12.0)
            r, s_r, st = _illinois(
                0, d, 1.0, t_inc, guess * gr_lo, guess * gr_hi, w_lo, w_hi, start_ftol, max_iter,
                log_tol, cal, work,
            )  # fmt: skip
            if st != OK:
                status[d] = st
                continue
        guess = math.log(2.0) / t_os
        mu, s_mu, st = _illinois(
            1, d, r, t_os, guess * gm_lo, guess * gm_hi, w_lo, w_hi,
            ftol if zero else start_ftol, max_iter, log_tol, cal, work,
        )  # fmt: skip
        if st != OK:
            status[d] = st
            continue
        if zero:
            r_out[d] = r
            mu_out[d] = mu
            continue
        # 2. both together: Broyden on x = log rates
        tol0 = ftol * max(1.0, abs(t_inc))
        tol1 = ftol * max(1.0, abs(t_os))
        x0 = math.log(r)
        x1 = math.log(mu)
        v0, ok0 = _run_eval(0, d, r, mu, cal, work)
        v1, ok1 = _run_eval(1, d, r, mu, cal, work)
        F0 = v0 - t_inc
        F1 = v1 - t_os
        j00, j01, j10, j11 = s_r, 0.0, 0.0, s_mu
        ok = ok0 and ok1
        active = not (abs(F0) <= tol0 and abs(F1) <= tol1)
        failed = False
        for _ in range(broyden_iter):
            if not active:
                break
            det = j00 * j11 - j01 * j10
            dx0 = -(j11 * F0 - j01 * F1) / det if det != 0.0 else math.nan
            dx1 = -(-j10 * F0 + j00 * F1) / det if det != 0.0 else math.nan
            big = max(abs(dx0), abs(dx1))
            if big > max_step:
                dx0 *= max_step / big
                dx1 *= max_step / big
            if not (math.isfinite(dx0) and math.isfinite(dx1)):
                failed = True
                break
            n0 = x0 + dx0
            n1 = x1 + dx1
            v0, ok0 = _run_eval(0, d, math.exp(n0), math.exp(n1), cal, work)
            v1, ok1 = _run_eval(1, d, math.exp(n0), math.exp(n1), cal, work)
            ok = ok and ok0 and ok1
            G0 = v0 - t_inc
            G1 = v1 - t_os
            # Broyden's update: J += (dF - J dx) dx' / (dx' dx)
            u0 = (G0 - F0) - (j00 * dx0 + j01 * dx1)
            u1 = (G1 - F1) - (j10 * dx0 + j11 * dx1)
            den = dx0 * dx0 + dx1 * dx1
            j00 += u0 * dx0 / den
            j01 += u0 * dx1 / den
            j10 += u1 * dx0 / den
            j11 += u1 * dx1 / den
            x0, x1, F0, F1 = n0, n1, G0, G1
            done = abs(G0) <= tol0 and abs(G1) <= tol1
            stuck = (
                not (math.isfinite(G0) and math.isfinite(G1)) or max(abs(dx0), abs(dx1)) < log_tol
            )
            if stuck and not done:
                failed = True
            if done or stuck:
                active = False
        if not ok:
            status[d] = BAD_PROBABILITY
        elif failed or active:
            status[d] = NOT_SETTLED
        else:
            r_out[d] = math.exp(x0)
            mu_out[d] = math.exp(x1)


_compiled = None
_failed: str | None = None


#: The module's functions the kernels call, compiled in this order (a compiled function must
#: be in this module's globals before the functions that call it are compiled).
_HELPERS = (
    "_competing1", "_competing2", "_competing3", "_edges", "_advance", "_infections",
    "_run_eval", "_eval_at", "_sign", "_bracketed", "_illinois",
)  # fmt: skip


def _kernels():
    """The compiled kernels (compiled, or loaded from Numba's cache, on first call):
    (cohort kernel, calibration kernel).

    Raises KernelUnavailable when Numba is missing or fails to import (e.g. a NumPy version it
    does not support); the model then runs through the engine."""
    global _compiled, _failed
    if _compiled is None:
        if _failed is not None:
            raise KernelUnavailable(_failed)
        try:
            import numba
        except Exception as exc:  # noqa: BLE001 - any import failure means: use the engine
            _failed = f"numba cannot be imported: {exc}"
            raise KernelUnavailable(_failed) from None
        opts = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")
        g = globals()
        for name in _HELPERS:
            if not hasattr(g[name], "py_func"):
                g[name] = numba.njit(**opts)(g[name])
        _compiled = (
            numba.njit(**opts)(_cohort_kernel),
            numba.njit(**opts)(_calibrate_kernel),
        )
    return _compiled


def available() -> bool:
    """True when the kernel can run (Numba installed and importable)."""
    if not HAVE_NUMBA:
        return False
    try:
        _kernels()
    except KernelUnavailable:
        return False
    return True


def run_cohort(
    c,
    weights: np.ndarray | None = None,
    disc_rows: np.ndarray | None = None,
    disc_trans: np.ndarray | None = None,
    disc_effects: np.ndarray | None = None,
    *,
    keep_trace: bool = False,
    keep_events: bool = False,
    prob_tol: float | None = None,
):
    """Run one :class:`cea.model.Cohort` through the kernel.

    weights : (T + 1,) correction weight of each trace row; disc_rows : (R, T + 1) discount
    factor of each reward's rows; disc_trans : (R2, T + 1) the same for transition rewards;
    disc_effects : (T + 1,) for infection deaths. Left out (only the trace or the events
    wanted): zeros.

    Raises InvalidProbabilities when a transition probability of some draw is outside
    [-prob_tol, 1 + prob_tol] or not finite (the engine's check and, by default, its tolerance
    cea.markov.PROB_TOL, made inside the kernel).

    Returns (discounted (D, R + R2 + 1), undiscounted (same), trace (D, T + 1, S) or None,
    severe infections per cycle (D, T) or None). Columns: ``c.reward_names``, then
    ``c.transition_names``, then infection deaths.
    """
    D, T = c.h_decline.shape
    f64 = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
    R = 0 if c.const is None else c.const.shape[1]
    const = f64(c.const) if R else np.zeros((D, 0, _S))
    on_sev = f64(c.on_severe) if R else np.zeros((D, 0))
    on_ns = f64(c.on_nonsevere) if R else np.zeros((D, 0))
    trans = f64(c.transition) if c.transition is not None else np.zeros((D, 0, _S, _S))
    R2 = trans.shape[1]
    zeros = np.zeros(T + 1)
    weights = zeros if weights is None else weights
    disc_effects = zeros if disc_effects is None else disc_effects
    disc_rows = np.zeros((R, T + 1)) if disc_rows is None else disc_rows
    disc_trans = np.zeros((R2, T + 1)) if disc_trans is None else disc_trans
    shapes = (np.shape(weights), np.shape(disc_rows), np.shape(disc_trans), np.shape(disc_effects))
    if shapes != ((T + 1,), (R, T + 1), (R2, T + 1), (T + 1,)):  # the kernel does not check
        raise ValueError(f"run_cohort: weight/discount shapes {shapes} for T={T}, R={R}, R2={R2}")
    # the kernel does not check bounds: every per-draw array must have the cohort's shape
    for name in ("h_decline", "h_disc", "f_inf", "h_bg", "low_share"):
        if np.shape(getattr(c, name)) != (D, T):
            raise ValueError(
                f"run_cohort: {name} has shape {np.shape(getattr(c, name))}, not {(D, T)}"
            )
    for name in ("sev", "ns", "mm"):
        if np.shape(getattr(c, name)) != (D, _S):
            raise ValueError(
                f"run_cohort: {name} has shape {np.shape(getattr(c, name))}, not {(D, _S)}"
            )
    if (const.shape[:1] + const.shape[2:], on_sev.shape, on_ns.shape) != ((D, _S), (D, R), (D, R)):
        raise ValueError("run_cohort: reward arrays do not match the cohort's draws and states")
    if np.shape(c.start) != (_S,) or (c.h_detect is not None and np.shape(c.h_detect) != (D,)):
        raise ValueError("run_cohort: start must be (S,) and h_detect (D,)")
    if trans.shape[0] != D or trans.shape[2:] != (_S, _S):
        raise ValueError(f"run_cohort: transition rewards have shape {trans.shape}")
    kinds, kind_of = np.unique(np.asarray(disc_rows, dtype=np.float64), axis=0, return_inverse=True)
    kinds = kinds.reshape(-1, T + 1) if R else np.zeros((0, T + 1))
    kind_of = np.ascontiguousarray(kind_of.reshape(-1), dtype=np.int64)
    out_disc = np.zeros((D, R + R2 + 1))
    out_und = np.zeros((D, R + R2 + 1))
    trace = np.empty((D, T + 1, _S)) if keep_trace else np.empty((0, 0, 0))
    events = np.empty((D, T)) if keep_events else np.empty((0, 0))
    has_detect = c.h_detect is not None
    if prob_tol is None:
        from cea.markov import PROB_TOL as prob_tol  # the engine's tolerance
    bad = np.zeros(D, dtype=np.uint8)
    # transition rewards on the edges only (elsewhere the probability is 0), and only the
    # (reward, edge) pairs that are not 0 for every draw
    pairs = [
        (r, q) for r in range(R2) for q in range(_E) if trans[:, r, EDGE_FROM[q], EDGE_TO[q]].any()
    ]
    tr_reward = np.array([r for r, _ in pairs], dtype=np.int64)
    tr_edge = np.array([q for _, q in pairs], dtype=np.int64)
    tr_value = np.ascontiguousarray(
        trans[:, tr_reward, EDGE_FROM[tr_edge], EDGE_TO[tr_edge]].reshape(D, len(pairs))
    )
    _kernels()[0](
        f64(c.start),
        float(c.dt),
        f64(c.h_decline),
        f64(c.h_disc),
        f64(c.f_inf),
        f64(c.h_bg),
        f64(c.low_share),
        f64(c.sev),
        f64(c.ns),
        bool(c.mix_igrt),
        f64(np.broadcast_to(c.rr_normal, (D,))),
        f64(np.broadcast_to(c.cf, (D,))),
        f64(c.mm),
        f64(c.h_detect) if has_detect else np.zeros(D),
        has_detect,
        bool(c.infection_starts_low),
        bool(c.infection_starts_normal),
        _live(c),
        f64(np.broadcast_to(c.phi, (D,))),
        f64(np.broadcast_to(c.h_stop, (D,))),
        const,
        on_sev,
        on_ns,
        tr_edge,
        tr_reward,
        tr_value,
        f64(weights),
        f64(kinds),
        kind_of,
        f64(disc_trans),
        f64(disc_effects),
        out_disc,
        out_und,
        trace,
        events,
        float(prob_tol),
        bad,
    )
    if bad.any():
        raise InvalidProbabilities(f"draw {int(np.argmax(bad))}")
    return (
        out_disc,
        out_und,
        trace if keep_trace else None,
        events if keep_events else None,
    )


def calibrate_draws(
    at_zero,
    at_one,
    share: np.ndarray,
    cap: np.ndarray,
    cap_cycles: np.ndarray,
    target_inc: np.ndarray,
    target_os: np.ndarray,
    settings: dict,
    prob_tol: float | None = None,
):
    """The per-draw calibration (cea.model.calibrate's algorithm) in compiled code.

    at_zero, at_one : the three calibration cohorts (:class:`cea.model.Cohort`: no IgRT over
    the incidence horizon, no IgRT and IgRT from the start over the OS horizon) at rates
    r = mu = 0 and r = mu = 1 (their infection and myeloma death rates are affine in r and mu).
    share : (D,) share of the trial cohort on IgRT; cap, cap_cycles : (D,) each draw's OS
    horizon in years and cycles; targets : (D,) 12-month incidence and median OS (years).
    settings : start_ftol, ftol, guess_r_lo, guess_r_hi, guess_mu_lo, guess_mu_hi, wide_lo,
    wide_hi, log_tol, max_step,
    months, max_iter, broyden_iter.

    Returns (r, mu, status), status per draw: OK, UNREACHABLE (a target outside the range the
    bracket reaches), NOT_SETTLED (no convergence) or BAD_PROBABILITY (a transition probability
    outside [0, 1]); r and mu are NaN where the status is not OK.
    """
    D = len(target_inc)
    f64 = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
    c0 = at_zero[0]
    hz = lambda c: tuple(  # noqa: E731
        f64(getattr(c, n)) for n in ("h_decline", "h_disc", "f_inf", "h_bg", "low_share")
    )
    for c in (*at_zero, *at_one):
        if np.shape(c.sev) != (D, _S) or np.shape(c.mm) != (D, _S):
            raise ValueError("calibrate_draws: sev and mm must be (D, S)")
    for c in at_zero[1:]:
        if np.shape(c.h_decline) != np.shape(at_zero[1].h_decline):
            raise ValueError("calibrate_draws: the OS cohorts must share their hazards")
    if np.shape(c0.h_decline)[0] != D or np.shape(at_zero[1].h_decline)[0] != D:
        raise ValueError("calibrate_draws: hazards must have one row per draw")
    if int(np.max(cap_cycles, initial=0)) > np.shape(at_zero[1].h_decline)[1]:
        raise ValueError("calibrate_draws: a draw's OS horizon is longer than the hazards")
    stack = lambda get: f64(np.stack([get(c) for c in at_zero]))  # noqa: E731
    det = lambda c: np.zeros(D) if c.h_detect is None else np.broadcast_to(c.h_detect, (D,))  # noqa: E731
    if prob_tol is None:
        from cea.markov import PROB_TOL as prob_tol  # the engine's tolerance
    cal = (
        hz(c0),
        hz(at_zero[1]),
        stack(lambda c: c.start),
        np.array([c.mix_igrt for c in at_zero]),
        np.array([c.h_detect is not None for c in at_zero]),
        np.array([bool(c.infection_starts_low) for c in at_zero]),
        np.array([bool(c.infection_starts_normal) for c in at_zero]),
        np.stack([_live(c) for c in at_zero]),
        stack(det),
        f64(np.stack([c1.sev - c.sev for c, c1 in zip(at_zero, at_one, strict=True)])),
        stack(lambda c: c.sev),
        f64(np.stack([c1.mm - c.mm for c, c1 in zip(at_zero, at_one, strict=True)])),
        stack(lambda c: c.mm),
        f64(np.broadcast_to(c0.rr_normal, (D,))),
        f64(np.broadcast_to(c0.cf, (D,))),
        f64(np.broadcast_to(c0.phi, (D,))),
        f64(np.broadcast_to(c0.h_stop, (D,))),
        f64(share),
        f64(cap),
        np.ascontiguousarray(cap_cycles, dtype=np.int64),
        float(c0.dt),
        float(settings["months"]),
        float(prob_tol),
    )
    knobs = np.array(
        [
            settings[k]
            for k in (
                "start_ftol",
                "ftol",
                "guess_r_lo",
                "guess_r_hi",
                "guess_mu_lo",
                "guess_mu_hi",
                "wide_lo",
                "wide_hi",
                "log_tol",
                "max_step",
                "months",
            )
        ],  # fmt: skip
        dtype=np.float64,
    )
    r = np.full(D, np.nan)
    mu = np.full(D, np.nan)
    status = np.zeros(D, dtype=np.int64)
    _kernels()[1](
        cal,
        f64(target_inc),
        f64(target_os),
        knobs,
        int(settings["max_iter"]),
        int(settings["broyden_iter"]),
        r,
        mu,
        status,
    )
    return r, mu, status

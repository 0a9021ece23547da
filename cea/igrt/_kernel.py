"""Compiled kernels: the IgRT model's cohorts run draw by draw in one fused pass, and the
per-draw calibration (cea.igrt.model.calibrate's algorithm) runs in compiled code.

The NumPy path (:func:`cea.igrt.model.expand` then :func:`cea.engine.markov.run_markov`) builds a
(draws x cycles x 6 x 6) transition array and a dozen (draws x cycles x 6) reward arrays, then
runs the trace; at PSA sizes that is memory traffic, not arithmetic (docs/psa.md). This kernel
takes the same compact description (:class:`cea.igrt.model.Cohort`) and, per draw and cycle (draws
in blocks, innermost, so that it compiles to vector instructions: see its section comment), forms
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
on (:func:`cea.igrt.model.compiled_kernel`); without Numba (or with Numba failing to import), or with
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


# state indices (as cea.igrt.model; repeated here so that the kernel has no Python-object lookups)
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


# Competing cumulative hazards over a cycle -> probabilities, as cea.igrt.model._competing:
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
    """The transition probabilities of one cycle (as cea.igrt.model.expand builds them), for the
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


# ----------------------------------------------------------------------------- cohort kernel
#
# The cohort kernel runs draws in blocks of _BLOCK, draws innermost: every per-draw array it
# reads is laid out draws-last ((T, D), (S, D), ...), every step of a cycle is a loop over the
# block's draws with no call and no draw-dependent branch, so that the compiler runs it as
# vector instructions (4 draws per instruction with AVX2). expm1 is computed by _em1 below
# (a libm call would stop the vectorisation).

_BLOCK = 256  # draws per block: the block's working arrays (about 40 KB) stay in the L1/L2 cache

# expm1 by Cody-Waite reduction, x = k ln2 + r with |r| <= ln2 / 2, and the degree-14 Taylor
# polynomial of expm1(r) (truncation error below 1e-17 relative); expm1(x) = 2^k expm1(r) +
# (2^k - 1). Within 1 ulp of libm's expm1 over the hazards' range (tests/test_kernel.py).
_LN2_HI = 6.93147180369123816490e-01  # ln 2 rounded to 33 bits (k x _LN2_HI exact)
_LN2_LO = 1.90821492927058770002e-10  # ln 2 - _LN2_HI
_INV_LN2 = 1.44269504088896338700e00  # 1 / ln 2
#: below -_EM1_FLOOR, expm1 is -1 in double precision (exp(-40) = 4e-18 < half an ulp of 1);
#: above _EM1_CEIL, exp overflows. Clamping there keeps 2^k a normal number.
_EM1_FLOOR = 40.0
_EM1_CEIL = 709.0


def _em1(x):
    """expm1(x), arithmetic only (vectorisable); NaN gives NaN."""
    if x < -_EM1_FLOOR:
        x = -_EM1_FLOOR
    if x > _EM1_CEIL:
        x = _EM1_CEIL
    k = np.floor(x * _INV_LN2 + 0.5)  # a float: math.floor gives an int64 (scalar conversions)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = 1.0 / 87178291200.0
    p = p * r + 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    em = r + r * r * p
    scale = _pow2(k)
    return scale * em + (scale - 1.0)


#: 1.5 x 2^52: an integral float k in [-2^31, 2^31) added to it has k as its low bits
_ROUND_MAGIC = 6755399441055744.0


def _pow2(k):
    """2^k for an integral float k in [-1022, 1023]: the exponent bits, built with integer adds
    and shifts only (no float-to-integer conversion, which AVX2 cannot vectorise)."""
    bits = np.float64(k + _ROUND_MAGIC).view(np.int64)  # low bits: k (two's complement)
    return np.int64((bits + 1023) << 52).view(np.float64)


# _c1, _c2, _c3: _competing1-3 with _em1 for the vectorised loops (the calibration's scalar
# evaluations keep libm's expm1 in _competing1-3: measured faster there, 0.22 s against 0.31 s
# per 2,500 draws)


def _c1(h1):
    em1 = _em1(-h1)
    frac = -em1 / h1 if h1 > 0.0 else 1.0
    return h1 * frac, 1.0 + em1, frac


def _c2(h1, h2):
    total = h1 + h2
    em1 = _em1(-total)
    frac = -em1 / total if total > 0.0 else 1.0
    return h1 * frac, h2 * frac, 1.0 + em1, frac


def _c3(h1, h2, h3):
    total = h1 + h2 + h3
    em1 = _em1(-total)
    frac = -em1 / total if total > 0.0 else 1.0
    return h1 * frac, h2 * frac, h3 * frac, 1.0 + em1, frac


def _edges_block(
    e,  # (E, B) out: the probability of each edge in this cycle
    hd,  # (S, B) out: the death hazard of each state
    fd,  # (S, B) out: P(death in the cycle) / hd
    ok,  # (B,) bool: cleared for a draw with an invalid value
    live,
    sevc,  # (S, B)
    mm,  # (S, D) per year
    d0,
    nb,
    t,
    dt,
    h_bg,  # (T, D)
    h_disc,
    h_decline,
    cf,  # (D,)
    has_detect,
    h_detect,  # (D,)
    p_det,  # (B,)
    stay_det,
    starts_low,
    starts_normal,
    phi,  # (D,)
    p_stop,  # (B,)
    stay_stop,
    prob_tol,
):
    """_edges for the block's draws (see there): the same probabilities and checks. The edges
    and fd of a row the cohort cannot occupy are never written: they stay at the zeros the
    kernel allocates them with."""
    for s in range(_S):
        for b in range(nb):
            d = d0 + b
            hd[s, b] = h_bg[t, d] + mm[s, d] * dt + sevc[s, b] * cf[d]
        if not live[s]:
            for b in range(nb):
                ok[b] &= (hd[s, b] >= 0.0) & (hd[s, b] < math.inf)
    for b in range(nb):
        d = d0 + b
        ok[b] &= (h_disc[t, d] >= 0.0) & (h_disc[t, d] < math.inf)
        ok[b] &= (h_decline[t, d] >= 0.0) & (h_decline[t, d] < math.inf)
    if live[_N]:
        for b in range(nb):
            d = d0 + b
            p_o, p_dead, stay_exit, fd[_N, b] = _c2(h_disc[t, d], hd[_N, b])
            e[3, b] = p_o
            e[4, b] = p_dead
            if starts_normal:
                p_l, p_i, stay_int, _ = _c2(h_decline[t, d], sevc[_N, b])
            else:
                p_l, stay_int, _ = _c1(h_decline[t, d])
                p_i = 0.0
            e[1, b] = stay_exit * p_l
            e[2, b] = stay_exit * p_i
            e[0, b] = stay_exit * stay_int
    if live[_L]:
        for b in range(nb):
            d = d0 + b
            p_o, p_dead, stay_exit, fd[_L, b] = _c2(h_disc[t, d], hd[_L, b])
            e[7, b] = p_o
            e[8, b] = p_dead
            if has_detect and not starts_low:
                e[6, b] = stay_exit * p_det[b]
                e[5, b] = stay_exit * stay_det[b]
            elif has_detect or starts_low:
                h_start = h_detect[d] + sevc[_L, b] if has_detect else sevc[_L, b]
                p_i, stay_int, _ = _c1(h_start)
                e[6, b] = stay_exit * p_i
                e[5, b] = stay_exit * stay_int
            else:
                e[6, b] = 0.0
                e[5, b] = stay_exit
    if live[_I]:
        for b in range(nb):
            d = d0 + b
            h = h_disc[t, d]
            p_oi, p_o, p_dead, stay_exit, fd[_I, b] = _c3(h * phi[d], h * (1.0 - phi[d]), hd[_I, b])
            e[10, b] = p_oi
            e[11, b] = p_o
            e[12, b] = p_dead
            e[9, b] = stay_exit
    if live[_OI]:
        for b in range(nb):
            p_dead, stay_exit, fd[_OI, b] = _c1(hd[_OI, b])
            e[15, b] = p_dead
            e[14, b] = stay_exit * p_stop[b]
            e[13, b] = stay_exit * stay_stop[b]
    for b in range(nb):
        p_dead, stay_exit, fd[_O, b] = _c1(hd[_O, b])
        e[17, b] = p_dead
        e[16, b] = stay_exit
        e[18, b] = 1.0
    lo = -prob_tol
    hi = 1.0 + prob_tol
    for k in range(_E):
        for b in range(nb):
            ok[b] &= (e[k, b] >= lo) & (e[k, b] <= hi)


def _cohort_kernel(
    start,  # (S,)
    dt,
    h_decline,  # (T, D): per-draw arrays are draws-last
    h_disc,
    f_inf,
    h_bg,
    low_share,
    sev,  # (S, D) per year
    ns,
    mix_igrt,
    rr_normal,  # (D,)
    cf,
    mm,  # (S, D) per year
    h_detect,  # (D,) per cycle (zeros when has_detect is False)
    has_detect,
    infection_starts_low,
    infection_starts_normal,
    live,  # (S,) bool: the states the cohort can occupy (_live)
    phi,  # (D,)
    h_stop,  # (D,)
    const,  # (R, S, D)
    on_sev,  # (R, D)
    on_ns,  # (R, D)
    tr_edge,  # (Q,) int: the edge of each non-zero (transition reward, edge) pair
    tr_reward,  # (Q,) int: its transition reward
    tr_value,  # (Q, D) its value per transition
    weights,  # (T + 1,)
    disc_kinds,  # (K, T + 1) the distinct discount rows (costs, effects)
    kind,  # (R,) int: the discount row of each reward
    disc_trans,  # (R2, T + 1)
    disc_effects,  # (T + 1,) for infection deaths
    out_disc,  # (R + R2 + 1, D): rewards, transition rewards, infection deaths
    out_und,
    trace_out,  # (D, T + 1, S) or empty
    sev_events_out,  # (D, T) or empty: expected severe infections in each cycle
    prob_tol,  # a probability outside [-prob_tol, 1 + prob_tol] (or not finite) flags the draw
    bad,  # (D,) uint8, set to 1 for a flagged draw
):
    T, D = h_decline.shape
    R = const.shape[0]
    R2 = disc_trans.shape[0]
    Q = tr_edge.shape[0]
    keep_trace = trace_out.shape[0] > 0
    keep_events = sev_events_out.shape[0] > 0
    K = disc_kinds.shape[0]
    B = _BLOCK
    # per draw, the weighted (and discounted) sums over rows of the trace, and of the expected
    # severe / non-severe infections; every state reward is then a dot product with them
    acc = np.empty((K + 1, _S, B))  # row K: undiscounted
    acc_sev = np.empty((K + 1, B))
    acc_ns = np.empty((K + 1, B))
    x = np.empty((_S, B))
    sevc = np.empty((_S, B))
    nsc = np.empty((_S, B))
    hd = np.empty((_S, B))
    fd = np.zeros((_S, B))
    e = np.zeros((_E, B))
    ok = np.empty(B, dtype=np.bool_)
    p_stop = np.empty(B)
    stay_stop = np.empty(B)
    p_det = np.empty(B)
    stay_det = np.empty(B)
    mix = np.ones(B)
    x_sev = np.empty(B)
    x_ns = np.empty(B)
    inf_und = np.empty(B)
    inf_disc = np.empty(B)
    tr_und = np.empty((R2, B))
    tr_disc = np.empty((R2, B))
    f_k = np.empty(K + 1)
    lo = -prob_tol
    hi = 1.0 + prob_tol
    for d0 in range(0, D, B):
        nb = min(B, D - d0)
        for b in range(nb):
            d = d0 + b
            p_stop[b], stay_stop[b], _ = _c1(h_stop[d])  # constant over cycles
            p_det[b], stay_det[b], _ = _c1(h_detect[d])  # detection alone: constant too
            ok[b] = (phi[d] >= 0.0) & (phi[d] <= 1.0)
            for p in (p_det[b], stay_det[b], p_stop[b], stay_stop[b]):
                ok[b] &= (p >= lo) & (p <= hi)
            inf_und[b] = 0.0
            inf_disc[b] = 0.0
        acc[:, :, :] = 0.0
        acc_sev[:, :] = 0.0
        acc_ns[:, :] = 0.0
        tr_und[:, :] = 0.0
        tr_disc[:, :] = 0.0
        for s in range(_S):
            for b in range(nb):
                x[s, b] = start[s]
                if keep_trace:
                    trace_out[d0 + b, 0, s] = start[s]
        for t in range(T + 1):
            k = t if t < T else T - 1  # the last row takes the last cycle's rewards
            if t < T:
                if mix_igrt:
                    for b in range(nb):
                        d = d0 + b
                        mix[b] = rr_normal[d] * (1.0 - low_share[k, d]) + low_share[k, d]
                for s in range(_S):
                    if mix_igrt and s == _I:
                        for b in range(nb):
                            d = d0 + b
                            f = f_inf[k, d]
                            sevc[s, b] = sev[s, d] * dt * f * mix[b]
                            nsc[s, b] = ns[s, d] * dt * f * mix[b]
                    else:
                        for b in range(nb):
                            d = d0 + b
                            f = f_inf[k, d]
                            sevc[s, b] = sev[s, d] * dt * f
                            nsc[s, b] = ns[s, d] * dt * f
            # state rewards on row t, sum_s x_s (const_rs + a_r sev_s + b_r ns_s): accumulate
            # the row's weighted trace and infections once for all rewards
            if R > 0:
                w = weights[t]
                for b in range(nb):
                    x_sev[b] = 0.0
                    x_ns[b] = 0.0
                for s in range(_S):
                    for b in range(nb):
                        x_sev[b] += x[s, b] * sevc[s, b]
                        x_ns[b] += x[s, b] * nsc[s, b]
                for j in range(K):
                    f_k[j] = w * disc_kinds[j, t]
                f_k[K] = w
                for j in range(K + 1):
                    fj = f_k[j]
                    for s in range(_S):
                        for b in range(nb):
                            acc[j, s, b] += fj * x[s, b]
                    for b in range(nb):
                        acc_sev[j, b] += fj * x_sev[b]
                        acc_ns[j, b] += fj * x_ns[b]
            if t == T:
                break
            if keep_events:
                for b in range(nb):
                    ev = 0.0
                    for s in range(_S):
                        ev += x[s, b] * sevc[s, b]
                    sev_events_out[d0 + b, t] = ev
            _edges_block(
                e, hd, fd, ok, live, sevc, mm, d0, nb, t, dt, h_bg, h_disc, h_decline, cf,
                has_detect, h_detect, p_det, stay_det, infection_starts_low,
                infection_starts_normal, phi, p_stop, stay_stop, prob_tol,
            )  # fmt: skip
            # infection deaths: flow into dead x the infection share of the death hazard
            # (P(death) = hd x fd, and its infection share sevc x cf / hd)
            de = disc_effects[t + 1]
            for b in range(nb):
                c = cf[d0 + b]
                inf = 0.0
                for s in range(_DEAD):
                    inf += x[s, b] * fd[s, b] * (sevc[s, b] * c)
                inf_und[b] += inf
                inf_disc[b] += inf * de
            # transition rewards, counted on row t + 1
            for q in range(Q):
                qe = tr_edge[q]
                r = tr_reward[q]
                src = EDGE_FROM_K[qe]
                dtr = disc_trans[r, t + 1]
                for b in range(nb):
                    val = x[src, b] * e[qe, b] * tr_value[q, d0 + b]
                    tr_und[r, b] += val
                    tr_disc[r, b] += val * dtr
            for b in range(nb):
                n, l_, i, oi, o, dead = x[0, b], x[1, b], x[2, b], x[3, b], x[4, b], x[5, b]
                x[0, b] = n * e[0, b]
                x[1, b] = n * e[1, b] + l_ * e[5, b]
                x[2, b] = n * e[2, b] + l_ * e[6, b] + i * e[9, b]
                x[3, b] = i * e[10, b] + oi * e[13, b]
                x[4, b] = n * e[3, b] + l_ * e[7, b] + i * e[11, b] + oi * e[14, b] + o * e[16, b]
                x[5, b] = (
                    n * e[4, b] + l_ * e[8, b] + i * e[12, b] + oi * e[15, b] + o * e[17, b]
                    + dead * e[18, b]
                )  # fmt: skip
            if keep_trace:
                for j in range(_S):
                    for b in range(nb):
                        trace_out[d0 + b, t + 1, j] = x[j, b]
        # the block's totals
        for r in range(R):
            for j in (kind[r], K):
                for b in range(nb):
                    d = d0 + b
                    val = on_sev[r, d] * acc_sev[j, b] + on_ns[r, d] * acc_ns[j, b]
                    for s in range(_S):
                        val += const[r, s, d] * acc[j, s, b]
                    if j == K:
                        out_und[r, d] = val
                    else:
                        out_disc[r, d] = val
        for r in range(R2):
            for b in range(nb):
                out_und[R + r, d0 + b] = tr_und[r, b]
                out_disc[R + r, d0 + b] = tr_disc[r, b]
        for b in range(nb):
            out_und[R + R2, d0 + b] = inf_und[b]
            out_disc[R + R2, d0 + b] = inf_disc[b]
            if not ok[b]:
                bad[d0 + b] = 1


EDGE_FROM_K = EDGE_FROM  # a global array the compiled kernel reads as a constant


# --------------------------------------------------------------------------- calibration
#
# The calibration (cea.igrt.model.calibrate) solves, per draw, two rates: r (severe infections on
# the bsAb with low IgG) so that the no-IgRT cohort's 12-month incidence equals its target,
# and mu (myeloma death after the bsAb) so that the trial cohort's median OS equals its target.
# Cohort c's infection rates and myeloma death rates are affine in them:
# sev = sev_b + r sev_a, mm = mm_b + mu mm_a (cea.igrt.model builds sev_a, ... from cea.igrt.model.cohort
# at r = mu = 0 and 1). Cohorts: 0 = no IgRT over the incidence horizon, 1 = no IgRT and 2 =
# IgRT from the start over the OS horizon. The algorithm is cea.igrt.model.calibrate's, per draw:
# bracketed Illinois for each rate alone, then Broyden on both. A draw it cannot settle gets a
# status the caller resolves through cea.igrt.model's own path (which also names any error).

OK, UNREACHABLE, NOT_SETTLED, BAD_PROBABILITY = 0, 1, 2, 3


def _run_eval(which, d, r, mu, cal, work):
    """Incidence (which = 0) or median OS in years (which = 1) of draw d at rates r, mu.
    Returns (value, ok): ok False when a transition probability is invalid."""
    (
        hz_inc, hz_os, start, mix, has_det, starts_low, starts_normal, live, h_det, sev_a, sev_b,
        mm_a, mm_b, rr_normal, cf, phi, h_stop, share, cap, cap_cycles, dt, months, prob_tol,
    ) = cal  # fmt: skip
    x, y, e, hd, fd, sevc, nsc, sev, mmv, zero, sev2, mmv2 = work[:12]
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
    p_det1, stay_det1, p_det2, stay_det2, w, prev = _os_start(d, r, mu, cal, work)
    for t in range(cap_cycles[d]):
        for c in (1, 2):
            one = c == 1
            z = x if one else y
            mix_i = rr_normal[d] * (1.0 - low[d, t]) + low[d, t] if mix[c] else 1.0
            _infections(sevc, nsc, sev if one else sev2, zero, dt, finf[d, t], mix_i)
            ok &= _edges(
                e, hd, fd, live[c], sevc, mmv if one else mmv2, dt, hbg[d, t], hdisc[d, t],
                hdecl[d, t], cf[d], has_det[c], h_det[c, d], p_det1 if one else p_det2,
                stay_det1 if one else stay_det2, starts_low[c], starts_normal[c], phi[d], p_stop,
                stay_stop, prob_tol,
            )  # fmt: skip
            _advance(z, e)
        cur = (1.0 - w) * (1.0 - x[_DEAD]) + w * (1.0 - y[_DEAD])
        if cur <= 0.5:
            frac = (prev - 0.5) / (prev - cur) if prev > cur else 0.0
            return min((t + frac) * dt, cap[d]), ok
        prev = cur
    return cap[d], ok


def _os_start(d, r, mu, cal, work):
    """The start of a median-OS evaluation of draw d at (r, mu): cohorts 1 and 2 at their
    start states (x, y of work) with their rates (sev, mmv and sev2, mmv2: constant over
    cycles); returns the two cohorts' detection probabilities (p, stay), the IgRT share and
    the mixture's survival at the start."""
    (
        hz_inc, hz_os, start, mix, has_det, starts_low, starts_normal, live, h_det, sev_a, sev_b,
        mm_a, mm_b, rr_normal, cf, phi, h_stop, share, cap, cap_cycles, dt, months, prob_tol,
    ) = cal  # fmt: skip
    x, y, e, hd, fd, sevc, nsc, sev, mmv, zero, sev2, mmv2 = work[:12]
    for s in range(_S):
        x[s] = start[1, s]
        y[s] = start[2, s]
        sev[s] = sev_b[1, d, s] + r * sev_a[1, d, s]
        mmv[s] = mm_b[1, d, s] + mu * mm_a[1, d, s]
        sev2[s] = sev_b[2, d, s] + r * sev_a[2, d, s]
        mmv2[s] = mm_b[2, d, s] + mu * mm_a[2, d, s]
    p_det1, stay_det1, _ = _competing1(h_det[1, d])
    p_det2, stay_det2, _ = _competing1(h_det[2, d])
    w = share[d]
    prev = (1.0 - w) * (1.0 - x[_DEAD]) + w * (1.0 - y[_DEAD])
    return p_det1, stay_det1, p_det2, stay_det2, w, prev


def _os_eval_reusing(d, r, mu, cal, work):
    """_run_eval(1, d, r, mu), the same value and ok to the bit, for the mu step of the
    calibration, where r stays fixed and only mu changes.

    mu (myeloma death after the bsAb) enters the rates of the states after the bsAb only
    (checked per draw: the caller enables this only when mm_a is 0 in the on-bsAb states N, L,
    I of both cohorts), so the on-bsAb states evolve the same in every evaluation of the step.
    The first evaluation records, per cohort and cycle, their flows into OI, O and death (each
    the leading terms of _advance's sums, in its order) and their occupancy; later ones
    compute only the OI and O rows (two expm1 instead of about seven per cycle) and add
    the recorded flows, recording further cycles when they run longer. A cycle whose
    probabilities fail a check ends the recording (the evaluations then run in full)."""
    (
        hz_inc, hz_os, start, mix, has_det, starts_low, starts_normal, live, h_det, sev_a, sev_b,
        mm_a, mm_b, rr_normal, cf, phi, h_stop, share, cap, cap_cycles, dt, months, prob_tol,
    ) = cal  # fmt: skip
    x, y, e, hd, fd, sevc, nsc, sev, mmv, zero, sev2, mmv2, flows, xon, rstate = work
    if not (rstate[0] >= 0.0 and rstate[1] == d and rstate[2] == r and math.isfinite(mu)):
        return _run_eval(1, d, r, mu, cal, work)
    n_rec = int(rstate[0])
    recording_ok = True
    p_stop, stay_stop, _ = _competing1(h_stop[d])
    hdecl, hdisc, finf, hbg, low = hz_os
    p_det1, stay_det1, p_det2, stay_det2, w, prev = _os_start(d, r, mu, cal, work)
    ok = True
    lo = -prob_tol
    hi = 1.0 + prob_tol
    for t in range(cap_cycles[d]):
        for c in (1, 2):
            one = c == 1
            k = c - 1
            z = x if one else y
            mmc = mmv if one else mmv2
            mix_i = rr_normal[d] * (1.0 - low[d, t]) + low[d, t] if mix[c] else 1.0
            _infections(sevc, nsc, sev if one else sev2, zero, dt, finf[d, t], mix_i)
            if t < n_rec:
                # the rows after the bsAb, exactly as _edges computes and checks them
                for s in (_OI, _O):
                    hd[s] = hbg[d, t] + mmc[s] * dt + sevc[s] * cf[d]
                if live[c, _OI]:
                    p_dead, stay_exit, _ = _competing1(hd[_OI])
                    e13 = stay_exit * stay_stop
                    e14 = stay_exit * p_stop
                    e15 = p_dead
                else:
                    e13 = 0.0
                    e14 = 0.0
                    e15 = 0.0
                    ok &= hd[_OI] >= 0.0 and hd[_OI] < math.inf
                p_dead, stay_exit, _ = _competing1(hd[_O])
                e16 = stay_exit
                e17 = p_dead
                for v in (e13, e14, e15, e16, e17):
                    ok &= v >= lo and v <= hi
                oi = z[_OI]
                o = z[_O]
                dead = z[_DEAD]
                z[_OI] = flows[k, t, 0] + oi * e13
                z[_O] = flows[k, t, 1] + oi * e14 + o * e16
                z[_DEAD] = flows[k, t, 2] + oi * e15 + o * e17 + dead * 1.0
                for s in range(3):
                    z[s] = xon[k, t + 1, s]
            else:
                n0 = z[_N]
                l0 = z[_L]
                i0 = z[_I]
                ok_t = _edges(
                    e, hd, fd, live[c], sevc, mmc, dt, hbg[d, t], hdisc[d, t], hdecl[d, t], cf[d],
                    has_det[c], h_det[c, d], p_det1 if one else p_det2,
                    stay_det1 if one else stay_det2, starts_low[c], starts_normal[c], phi[d],
                    p_stop, stay_stop, prob_tol,
                )  # fmt: skip
                ok &= ok_t
                recording_ok &= ok_t
                flows[k, t, 0] = i0 * e[10]
                flows[k, t, 1] = n0 * e[3] + l0 * e[7] + i0 * e[11]
                flows[k, t, 2] = n0 * e[4] + l0 * e[8] + i0 * e[12]
                _advance(z, e)
                for s in range(3):
                    xon[k, t + 1, s] = z[s]
        if t >= n_rec:
            rstate[0] = t + 1.0 if recording_ok else -1.0
            if not recording_ok:
                n_rec = -1  # keep computing this evaluation in full; later ones too
            else:
                n_rec = t + 1
        cur = (1.0 - w) * (1.0 - x[_DEAD]) + w * (1.0 - y[_DEAD])
        if cur <= 0.5:
            frac = (prev - 0.5) / (prev - cur) if prev > cur else 0.0
            return min((t + frac) * dt, cap[d]), ok
        prev = cur
    return cap[d], ok


def _calibration_work(T_os):
    """The calibration's working arrays (_run_eval, _os_eval_reusing) for OS horizons of up to
    T_os cycles; the last, the mu step's recording state: cycles recorded (-1: off), draw, r."""
    return (
        np.empty(_S), np.empty(_S), np.empty(_E), np.empty(_S), np.zeros(_S), np.empty(_S),
        np.empty(_S), np.empty(_S), np.empty(_S), np.zeros(_S), np.empty(_S), np.empty(_S),
        np.empty((2, T_os, 3)), np.empty((2, T_os + 1, 3)), np.full(3, -1.0),
    )  # fmt: skip


def _reuse_allowed(d, mm_a):
    """True when mu leaves the on-bsAb states' rates of both OS cohorts of draw d unchanged."""
    for c in (1, 2):
        for s in (_N, _L, _I):
            if mm_a[c, d, s] != 0.0:
                return False
    return True


def _eval_at(which, d, logx, other, cal, work):
    """_run_eval with the unknown rate at exp(logx) and the other one fixed at ``other``
    (the median OS through _os_eval_reusing, which runs in full unless the caller enabled it)."""
    if which == 0:
        return _run_eval(0, d, math.exp(logx), other, cal, work)
    return _os_eval_reusing(d, other, math.exp(logx), cal, work)


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
    """cea.igrt.model._solve for one draw: the root x of f(x) = target (x = r with mu = other when
    which = 0, x = mu with r = other when which = 1). Returns (root, slope, status, f(root) -
    target): the last is the value of the last evaluation, which was at the root itself."""
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
            return math.nan, math.nan, UNREACHABLE if ok else BAD_PROBABILITY, math.nan
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
        return math.nan, math.nan, BAD_PROBABILITY, math.nan
    if not (math.isfinite(b) and math.isfinite(slope)):
        return math.nan, math.nan, NOT_SETTLED, math.nan
    return math.exp(b), slope, OK, gb


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
    """cea.igrt.model.calibrate per draw (see the section comment)."""
    start_ftol, ftol, gr_lo, gr_hi, gm_lo, gm_hi, w_lo, w_hi, log_tol, max_step, months = settings
    D = target_inc.shape[0]
    mm_a = cal[11]
    work = _calibration_work(cal[1][0].shape[1])
    rstate = work[14]
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
            r, s_r, st, _ = _illinois(
                0, d, 1.0, t_inc, guess * gr_lo, guess * gr_hi, w_lo, w_hi, start_ftol, max_iter,
                log_tol, cal, work,
            )  # fmt: skip
            if st != OK:
                status[d] = st
                continue
        guess = math.log(2.0) / t_os
        # the mu step's evaluations share their on-bsAb part (_os_eval_reusing)
        rstate[0] = 0.0 if _reuse_allowed(d, mm_a) else -1.0
        rstate[1] = d
        rstate[2] = r
        mu, s_mu, st, g_mu = _illinois(
            1, d, r, t_os, guess * gm_lo, guess * gm_hi, w_lo, w_hi,
            ftol if zero else start_ftol, max_iter, log_tol, cal, work,
        )  # fmt: skip
        rstate[0] = -1.0
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
        v0, ok = _run_eval(0, d, r, mu, cal, work)
        F0 = v0 - t_inc
        # the median OS at (r, mu) is the mu step's last evaluation, at exactly these rates
        # (cea.igrt.model.calibrate evaluates it again; the value is the same to the bit)
        F1 = g_mu
        j00, j01, j10, j11 = s_r, 0.0, 0.0, s_mu
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


_compiled = None  # the kernels this process runs (_kernels)
_jit = None  # the JIT's kernels, once made (_jit_kernels)
_failed: str | None = None


#: The module's functions the kernels call, compiled in this order (a compiled function must
#: be in this module's globals before the functions that call it are compiled).
_HELPERS = (
    "_competing1", "_competing2", "_competing3", "_edges", "_advance", "_infections",
    "_pow2", "_em1", "_c1", "_c2", "_c3", "_edges_block",
    "_os_start", "_run_eval", "_os_eval_reusing", "_calibration_work", "_reuse_allowed", "_eval_at", "_sign",
    "_bracketed", "_illinois",
)  # fmt: skip


#: Helpers compiled into their callers rather than called (Numba's inline="always").
_INLINED = (
    "_competing1", "_competing2", "_competing3", "_edges", "_advance", "_infections", "_os_start",
)  # fmt: skip


def _kernels():
    """The compiled kernels (cohort kernel, calibration kernel) through Numba's JIT.

    Raises KernelUnavailable when Numba is missing or fails to import (e.g. a NumPy version it
    does not support); the model then runs through the engine."""
    global _compiled
    if _compiled is None:
        _compiled = _jit_kernels()
    return _compiled


def _jit_kernels():
    """The kernels through Numba's JIT (compiled, or loaded from Numba's cache, on first call)."""
    global _jit, _failed
    if _jit is None:
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
                # the per-cycle helpers are inlined into their callers (measured: the
                # calibration runs 14% faster than with calls)
                inline = "always" if name in _INLINED else "never"
                g[name] = numba.njit(inline=inline, **opts)(g[name])
        _compiled_probe[0] = numba.njit(**opts)(_probe)
        _jit = (
            numba.njit(**opts)(_cohort_kernel),
            numba.njit(**opts)(_calibrate_kernel),
        )
    return _jit


def _probe(x):
    """A trivial function: loading it from Numba's cache sets Numba's compiler up (:func:`warm`)."""
    return x + 1.0


def warm() -> bool:
    """Load the kernels in this process before the first model call, and return
    :func:`available`.

    With the ahead-of-time module built (:mod:`cea._aot`), that is all. Otherwise the kernels
    run through Numba's JIT, and importing Numba and building its compiler context costs about
    0.8 s of CPU once per process, whatever is compiled; loading a trivial cached function
    (``_probe``) pays it. The PSA's worker processes run this as they start, while the parent
    process reads the inputs and draws."""
    if not available():
        return False
    if _compiled is _jit:
        _compiled_probe[0](1.0)
    return True


_compiled_probe: list = [None]


def is_cached() -> bool:
    """True when Numba's on-disk cache holds compiled code of both kernels for their current
    source (so that a process loads them in milliseconds instead of compiling them, 20-40 s).
    Reads Numba's cache index (numba.core.caching); if that cannot be read, answers True."""
    if not HAVE_NUMBA:
        return False
    try:
        from numba.core.caching import FunctionCache

        return all(
            FunctionCache(f)._cache_file._load_index() for f in (_cohort_kernel, _calibrate_kernel)
        )
    except Exception:  # noqa: BLE001 - an unreadable index: assume compiled (only speed is at stake)
        return True


def ready() -> bool:
    """True when a process can run the kernels without compiling anything (Numba's cache holds
    them)."""
    return is_cached()


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
    """Run one :class:`cea.igrt.model.Cohort` through the kernel.

    weights : (T + 1,) correction weight of each trace row; disc_rows : (R, T + 1) discount
    factor of each reward's rows; disc_trans : (R2, T + 1) the same for transition rewards;
    disc_effects : (T + 1,) for infection deaths. Left out (only the trace or the events
    wanted): zeros.

    Raises InvalidProbabilities when a transition probability of some draw is outside
    [-prob_tol, 1 + prob_tol] or not finite (the engine's check and, by default, its tolerance
    cea.engine.markov.PROB_TOL, made inside the kernel).

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
    kinds, kind_of = _distinct_rows(np.asarray(disc_rows, dtype=np.float64).reshape(R, T + 1))
    out_disc = np.zeros((R + R2 + 1, D))  # draws-last in the kernel
    out_und = np.zeros((R + R2 + 1, D))
    trace = np.empty((D, T + 1, _S)) if keep_trace else np.empty((0, 0, 0))
    events = np.empty((D, T)) if keep_events else np.empty((0, 0))
    has_detect = c.h_detect is not None
    if prob_tol is None:
        from cea.engine.markov import PROB_TOL as prob_tol  # the engine's tolerance
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
    tt = lambda a: np.ascontiguousarray(np.asarray(a, dtype=np.float64).T)  # noqa: E731
    _kernels()[0](
        f64(c.start),
        float(c.dt),
        tt(c.h_decline),
        tt(c.h_disc),
        tt(c.f_inf),
        tt(c.h_bg),
        tt(c.low_share),
        tt(c.sev),
        tt(c.ns),
        bool(c.mix_igrt),
        f64(np.broadcast_to(c.rr_normal, (D,))),
        f64(np.broadcast_to(c.cf, (D,))),
        tt(c.mm),
        f64(c.h_detect) if has_detect else np.zeros(D),
        has_detect,
        bool(c.infection_starts_low),
        bool(c.infection_starts_normal),
        _live(c),
        f64(np.broadcast_to(c.phi, (D,))),
        f64(np.broadcast_to(c.h_stop, (D,))),
        np.ascontiguousarray(const.transpose(1, 2, 0)),
        tt(on_sev),
        tt(on_ns),
        tr_edge,
        tr_reward,
        tt(tr_value),
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
        out_disc.T,
        out_und.T,
        trace if keep_trace else None,
        events if keep_events else None,
    )


def _distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``rows`` (R, n), in the order first seen, and the index of each row
    among them, (R,) int64: the kernel accumulates the trace once per distinct discount row.
    (np.unique(axis=0) gives the same up to the order, which the kernel's sums do not depend
    on, at about 1.5 ms a call against microseconds.)"""
    kind: dict[bytes, int] = {}
    firsts: list[int] = []  # the row where each distinct row is first seen
    kind_of = np.empty(len(rows), dtype=np.int64)
    for r, row in enumerate(rows):
        key = row.tobytes()
        if key not in kind:
            kind[key] = len(firsts)
            firsts.append(r)
        kind_of[r] = kind[key]
    return np.ascontiguousarray(rows[firsts]), kind_of


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
    """The per-draw calibration (cea.igrt.model.calibrate's algorithm) in compiled code.

    at_zero, at_one : the three calibration cohorts (:class:`cea.igrt.model.Cohort`: no IgRT over
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
    cal = _calibration_description(at_zero, at_one, share, cap, cap_cycles, settings, prob_tol)
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
    D = len(target_inc)
    r = np.full(D, np.nan)
    mu = np.full(D, np.nan)
    status = np.zeros(D, dtype=np.int64)
    _kernels()[1](
        cal,
        np.ascontiguousarray(target_inc, dtype=np.float64),
        np.ascontiguousarray(target_os, dtype=np.float64),
        knobs,
        int(settings["max_iter"]),
        int(settings["broyden_iter"]),
        r,
        mu,
        status,
    )
    return r, mu, status


def _calibration_description(at_zero, at_one, share, cap, cap_cycles, settings, prob_tol=None):
    """The calibration cohorts as the kernel reads them (``cal`` of _run_eval); arguments as
    :func:`calibrate_draws`."""
    D = len(share)
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
        from cea.engine.markov import PROB_TOL as prob_tol  # the engine's tolerance
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
    return cal

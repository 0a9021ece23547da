"""Compiled cohort kernel: the IgRT model's cohorts run draw by draw in one fused pass.

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
checks it against the NumPy path for every strategy type and switch.

Numba compiles it on first use and caches the machine code beside this file. The PSA switches it
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


# Competing cumulative hazards over a cycle -> probabilities, as cea.model._competing:
# p_j = H_j / H x (1 - exp(-H)), stay = exp(-H), with one expm1 call (exp(-H) = 1 + expm1(-H)).


def _competing2(h1, h2):
    total = h1 + h2
    em1 = math.expm1(-total)
    frac = -em1 / total if total > 0.0 else 1.0
    return h1 * frac, h2 * frac, 1.0 + em1


def _competing3(h1, h2, h3):
    total = h1 + h2 + h3
    em1 = math.expm1(-total)
    frac = -em1 / total if total > 0.0 else 1.0
    return h1 * frac, h2 * frac, h3 * frac, 1.0 + em1


def _competing1(h1):
    em1 = math.expm1(-h1)
    frac = -em1 / h1 if h1 > 0.0 else 1.0
    return h1 * frac, 1.0 + em1


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
    phi,  # (D,)
    h_stop,  # (D,)
    const,  # (D, R, S)
    on_sev,  # (D, R)
    on_ns,  # (D, R)
    trans,  # (D, R2, S, S)
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
    R2 = trans.shape[1]
    keep_trace = trace_out.shape[0] > 0
    keep_events = sev_events_out.shape[0] > 0
    K = disc_kinds.shape[0]
    # per draw, the weighted (and discounted) sums over rows of the trace, and of the expected
    # severe / non-severe infections; every state reward is then a dot product with them
    acc = np.empty((K + 1, _S))  # row K: undiscounted
    acc_sev = np.empty(K + 1)
    acc_ns = np.empty(K + 1)
    x = np.empty(_S)
    xn = np.empty(_S)
    sevc = np.empty(_S)
    nsc = np.empty(_S)
    hd = np.empty(_S)
    P = np.zeros((_S, _S))
    for d in range(D):
        p_stop, stay_stop = _competing1(h_stop[d])  # constant over cycles
        p_det, stay_det = _competing1(h_detect[d])  # detection alone: constant too
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
                f = f_inf[d, k]
                mix_i = (
                    rr_normal[d] * (1.0 - low_share[d, k]) + low_share[d, k] if mix_igrt else 1.0
                )
                for s in range(_S):
                    m = mix_i if s == _I else 1.0
                    sevc[s] = sev[d, s] * dt * f * m
                    nsc[s] = ns[d, s] * dt * f * m
            # state rewards on row t, sum_s x_s (const_rs + a_r sev_s + b_r ns_s): accumulate
            # the row's weighted trace and infections once for all rewards
            if R > 0:
                w = weights[t]
                x_sev = 0.0
                x_ns = 0.0
                for s in range(_S):
                    x_sev += x[s] * sevc[s]
                    x_ns += x[s] * nsc[s]
                for k in range(K + 1):
                    f_k = w * disc_kinds[k, t] if k < K else w
                    for s in range(_S):
                        acc[k, s] += f_k * x[s]
                    acc_sev[k] += f_k * x_sev
                    acc_ns[k] += f_k * x_ns
            if t == T:
                for r in range(R):
                    for k in (kind[r], K):
                        val = on_sev[d, r] * acc_sev[k] + on_ns[d, r] * acc_ns[k]
                        for s in range(_S):
                            val += const[d, r, s] * acc[k, s]
                        if k == K:
                            out_und[d, r] += val
                        else:
                            out_disc[d, r] += val
                break
            if keep_events:
                ev = 0.0
                for s in range(_S):
                    ev += x[s] * sevc[s]
                sev_events_out[d, t] = ev
            # transition probabilities of cycle t
            for i in range(_S):
                for j in range(_S):
                    P[i, j] = 0.0
            for s in range(_S):
                hd[s] = h_bg[d, t] + mm[d, s] * dt + sevc[s] * cf[d]
            hdisc = h_disc[d, t]
            # N: exits (discontinuation, death); internal (IgG decline, infection-started IgRT)
            p_o, p_dead, stay_exit = _competing2(hdisc, hd[_N])
            P[_N, _O] += p_o
            P[_N, _DEAD] += p_dead
            if infection_starts_normal:
                p_l, p_i, stay_int = _competing2(h_decline[d, t], sevc[_N])
                P[_N, _L] += stay_exit * p_l
                P[_N, _I] += stay_exit * p_i
            else:
                p_l, stay_int = _competing1(h_decline[d, t])
                P[_N, _L] += stay_exit * p_l
            P[_N, _N] += stay_exit * stay_int
            # L: exits; internal (detection and/or infection-started IgRT)
            p_o, p_dead, stay_exit = _competing2(hdisc, hd[_L])
            P[_L, _O] += p_o
            P[_L, _DEAD] += p_dead
            if has_detect and not infection_starts_low:
                P[_L, _I] += stay_exit * p_det
                P[_L, _L] += stay_exit * stay_det
            elif has_detect or infection_starts_low:
                h_start = h_detect[d] + sevc[_L] if has_detect else sevc[_L]
                p_i, stay_int = _competing1(h_start)
                P[_L, _I] += stay_exit * p_i
                P[_L, _L] += stay_exit * stay_int
            else:
                P[_L, _L] += stay_exit
            # I: exits only (continue IgRT off bsAb, stop both, death)
            p_oi, p_o, p_dead, stay_exit = _competing3(
                hdisc * phi[d], hdisc * (1.0 - phi[d]), hd[_I]
            )
            P[_I, _OI] += p_oi
            P[_I, _O] += p_o
            P[_I, _DEAD] += p_dead
            P[_I, _I] += stay_exit
            # OI: death; internal IgRT stop
            p_dead, stay_exit = _competing1(hd[_OI])
            P[_OI, _DEAD] += p_dead
            P[_OI, _O] += stay_exit * p_stop
            P[_OI, _OI] += stay_exit * stay_stop
            # O: death
            p_dead, stay_exit = _competing1(hd[_O])
            P[_O, _DEAD] += p_dead
            P[_O, _O] += stay_exit
            P[_DEAD, _DEAD] = 1.0
            for i in range(_S):
                for j in range(_S):
                    if not (P[i, j] >= -prob_tol and P[i, j] <= 1.0 + prob_tol):
                        bad[d] = 1
            # infection deaths: flow into dead x the infection share of the death hazard
            inf = 0.0
            for s in range(_DEAD):
                if hd[s] > 0.0:
                    inf += x[s] * (P[s, _DEAD] * (sevc[s] * cf[d] / hd[s]))
            out_und[d, R + R2] += inf
            out_disc[d, R + R2] += inf * disc_effects[t + 1]
            # transition rewards, counted on row t + 1
            for r in range(R2):
                val = 0.0
                for i in range(_S):
                    per = 0.0
                    for j in range(_S):
                        per += P[i, j] * trans[d, r, i, j]
                    val += x[i] * per
                out_und[d, R + r] += val
                out_disc[d, R + r] += val * disc_trans[r, t + 1]
            # the trace
            for j in range(_S):
                nxt = 0.0
                for i in range(_S):
                    nxt += x[i] * P[i, j]
                xn[j] = nxt
            for j in range(_S):
                x[j] = xn[j]
                if keep_trace:
                    trace_out[d, t + 1, j] = xn[j]


_compiled = None
_failed: str | None = None


def _kernel():
    """The compiled kernel (compiled, or loaded from Numba's cache, on first call).

    Raises KernelUnavailable when Numba is missing or fails to import (e.g. a NumPy version it
    does not support); the model then runs through the engine."""
    global _compiled, _failed, _competing1, _competing2, _competing3
    if _compiled is None:
        if _failed is not None:
            raise KernelUnavailable(_failed)
        try:
            import numba
        except Exception as exc:  # noqa: BLE001 - any import failure means: use the engine
            _failed = f"numba cannot be imported: {exc}"
            raise KernelUnavailable(_failed) from None
        opts = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")
        # the helpers must be compiled functions in this module's globals when the kernel is
        _competing1 = numba.njit(**opts)(_competing1)
        _competing2 = numba.njit(**opts)(_competing2)
        _competing3 = numba.njit(**opts)(_competing3)
        _compiled = numba.njit(**opts)(_cohort_kernel)
    return _compiled


def available() -> bool:
    """True when the kernel can run (Numba installed and importable)."""
    if not HAVE_NUMBA:
        return False
    try:
        _kernel()
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
    _kernel()(
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
        f64(np.broadcast_to(c.phi, (D,))),
        f64(np.broadcast_to(c.h_stop, (D,))),
        const,
        on_sev,
        on_ns,
        trans,
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

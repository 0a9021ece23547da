"""The engine's compiled backend for declared cohorts (Numba).

One kernel runs any model declared in :mod:`cea.engine.declaration`. Draws go in blocks of
:data:`BLOCK_DRAWS`, each step a loop over the block's draws (vector instructions). The kernel
releases the GIL, so the pipeline's threads (:mod:`cea.pipeline.parallel`) run their chunks of
draws through it at the same time. Per cycle the kernel evaluates the linear combinations of
time profiles, forms the two-level competing-risk probabilities of each state's declared edges
only (the sparse transition structure), totals the trace rows, events and rewarded flows, and
advances the trace, without storing any (D, T, ...) array; the rewards are applied to the
totals at the end. It follows the conventions of :func:`cea.engine.markov.run_markov` exactly;
``tests/test_engine_cohort.py`` checks it against the NumPy backend at 1e-12.

The cohorts of a call go through the kernel together, their states side by side (no edge joins
two cohorts), and what they have in common is computed once per cycle for all of them
(:func:`_arrays`): a linear combination with the same terms as another (the same profiles in the
same order, coefficients equal bit for bit), and a state's total hazard at a level (with its
exp(-H) and (1 - exp(-H)) / H) that adds the same combinations in the same order as another's
(the cohorts of one model's strategies share most of them). Shared or not, each value is the same arithmetic on the same numbers, so
no result changes by a bit, and a draw's results never depend on the other draws.

Numba compiles the kernel on its first use on a machine (about ten seconds; a message on stderr
says so when it takes longer than a second) and keeps the machine code in the user's cache
folder (``$XDG_CACHE_HOME/cea/numba`` or ``~/.cache/cea/numba``; Numba's own
``NUMBA_CACHE_DIR`` when set), never inside the package. When a draw has a negative or non-finite
hazard, each cohort of the call is run alone, and one that fails again goes through the NumPy
backend, whose error names it and the draw.

Before the kernel, a cohort loses the hazards, events and counts of the states no draw can enter
(:func:`_without_unreachable`): they hold no one, so no result changes. :class:`Rerun` makes a
cohort ready once to be run again and again at other values of unknowns its hazards are linear
in (the calibration's root finding); a rerun may keep the trace of a few states only, and stop
each block of draws once a state holds a given share in all of them.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import threading
from collections import namedtuple
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from cea.engine import numpy_backend
from cea.engine.declaration import (
    ONE,
    CohortModel,
    CohortResult,
    Lin,
    Timing,
    n_draws_of,
    validate,
)
from cea.errors import CeaError

#: Seconds the first compilation may take before the user is told what is happening.
COMPILE_NOTICE_SECONDS = 1.0


def cache_dir() -> Path:
    """Where Numba keeps the compiled kernel: ``NUMBA_CACHE_DIR`` when set, else the user's
    cache folder (``$XDG_CACHE_HOME/cea/numba`` or ``~/.cache/cea/numba``), else a folder of
    this user's in the temporary directory."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    for folder in (
        Path(base) / "cea" / "numba",
        Path(tempfile.gettempdir()) / f"cea-{os.getuid()}",
    ):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            return folder
    return Path(tempfile.mkdtemp(prefix="cea-numba-"))


_KERNEL: list = []  # the compiled kernel, once made
_COMPILING = threading.Lock()


def _kernel():
    """The compiled kernel (Numba imported, and the kernel compiled or loaded from the cache,
    on first use only)."""
    if not _KERNEL:
        try:
            import numba
        except Exception as exc:  # noqa: BLE001 - any import failure: say so in one line
            raise CeaError(
                f"the numba backend needs Numba, which cannot be imported: {exc}"
            ) from None
        if not os.environ.get("NUMBA_CACHE_DIR"):  # Numba may have been imported before
            numba.config.CACHE_DIR = str(cache_dir())
        g = globals()
        opts = dict(cache=True, error_model="numpy")
        for name in _COMPILED:
            if not hasattr(g[name], "py_func"):
                inline = "always" if name == "_expm1_neg" else "never"
                g[name] = numba.njit(inline=inline, **opts)(g[name])
        # nogil: the pipeline's threads run their chunks of draws through it at the same time
        _KERNEL.append(numba.njit(nogil=True, **opts)(_cohort_kernel))
    return _KERNEL[0]


# --------------------------------------------------------------------------- the kernel

#: The arrays of the declared cohorts of a call, as the kernel reads them (built by
#: :func:`_arrays`). The cohorts' states are laid side by side (block-diagonal: no edge joins two
#: cohorts); their linear combinations, and the total hazards of their states at each level,
#: are shared where they are the same (:class:`_Lins`, :class:`_Groups`).
Arrays = namedtuple(
    "Arrays",
    [
        "profiles",  # (J, T, D) the time profiles
        "lin_ptr",  # (L + 1,) terms of linear combination l: lin_ptr[l] .. lin_ptr[l + 1]
        "term_profile",  # (NT,) profile of each term, -1 for "one"
        "term_coef",  # (NT, D) coefficient of each term
        "grp_ptr",  # (G + 1,) hazards of total g: grp_lin[grp_ptr[g] .. grp_ptr[g + 1]]
        "grp_lin",  # (NG,) their linear combinations, added in this order
        "state_grp",  # (2, S) total of each state's exits (0) and internal changes (1); G: none
        "exit_from",  # (E,) state each exit leaves
        "exit_to",  # (E,) its destination
        "exit_lin",  # (E,) its hazard (a linear combination)
        "exit_flow",  # (E,) its rewarded flow, -1: none
        "int_from",  # (EI,) the internal changes, as the exits
        "int_to",
        "int_lin",
        "int_flow",
        "stay_flow",  # (S,) the rewarded flow of those who stay in each state, -1: none
        "ev_ptr",  # (V + 1,) states of event v: ev_state[ev_ptr[v] .. ev_ptr[v + 1]], ascending
        "ev_state",  # (NV,) a state
        "ev_lin",  # (NV,) the expected events per person-cycle in it
        "reward_const",  # (R, S_max, D) state rewards: constant per person-cycle in the states
        "reward_event",  # (R, V_max, D) ... and per event, of the reward's cohort
        "reward_where",  # (R, 4) its cohort's first state, states, first event, events
        "trans_reward",  # (R2, F_max, D) transition rewards on their cohort's rewarded flows
        "trans_where",  # (R2, 2) those flows: first, end
        "flow_from",  # (F,) each rewarded flow's states, within its cohort (to read the
        "flow_to",  # arrays by; the kernel uses their number only)
        "cnt_ptr",  # (C + 1,) exits that count c attributes: cnt_ptr[c] .. cnt_ptr[c + 1]
        "cnt_edge",  # (NC,) the exit, by ascending state
        "cnt_lin",  # (NC,) the cause's part of that exit's hazard
        "start",  # (D, S)
        "weights",  # (T + 1,) within-cycle correction of each trace row
        "disc",  # (K, T + 1) the distinct discount factors of the trace rows
        "reward_disc",  # (R,) row of disc of each state reward
        "trans_disc",  # (R2,) ... of each transition reward
        "count_disc",  # (C,) ... of each count
    ],
)
#: What the kernel writes: totals (D, 2, n) discounted and undiscounted of the state rewards,
#: the transition rewards and the counts; the trace of the kept states (D, T + 1, len(kept))
#: and the events per cycle (D, V, T) when kept; ok (D,): False for a draw with a negative or
#: non-finite hazard.
Results = namedtuple("Results", ["reward", "trans", "count", "trace", "events", "ok"])


def _cohort_kernel(a, out, kept, keep_events, stop_state, stop_level, d_first, d_end):
    """Run the cohorts of a call for the draws ``d_first .. d_end - 1``, in blocks of
    :data:`BLOCK_DRAWS` draws (module docstring)."""
    for d0 in range(d_first, d_end, BLOCK_DRAWS):
        nb = min(d_end, d0 + BLOCK_DRAWS) - d0
        _run_block(a, out, kept, keep_events, stop_state, stop_level, d0, nb)


def _run_block(a, out, kept, keep_events, stop_state, stop_level, d0, nb):
    """The draws ``d0 .. d0 + nb - 1``, cycle by cycle. Every step is a loop over the block's
    draws, innermost, on one-dimensional views (indices known to be non-negative), with no
    draw-dependent branch: the compiler emits vector instructions.

    The trace rows of the states ``kept`` are written to ``out.trace``. With ``stop_state`` >= 0
    the block stops after the first row in which that state holds at least ``stop_level`` in
    every draw of the block: the later rows, events and totals are not computed, and the later
    cycles' hazards not checked.

    State and transition rewards are constant over time, so the trace and the flows are totalled
    over rows first (weighted and discounted by each distinct discount row k < K, undiscounted
    in row K) and multiplied by the rewards once at the end:
    sum_t w_t f_t x_t . (c + a e_t) = c . (sum_t w_t f_t x_t) + a (sum_t w_t f_t x_t . e_t).
    """
    NB = BLOCK_DRAWS
    T, S, L = a.profiles.shape[1], a.start.shape[1], a.lin_ptr.shape[0] - 1
    V, R, G = a.ev_ptr.shape[0] - 1, a.reward_const.shape[0], a.grp_ptr.shape[0] - 1
    C, F, K = a.cnt_ptr.shape[0] - 1, a.flow_from.shape[0], a.disc.shape[0]
    lv = np.empty((L, NB))  # every linear combination in this cycle
    H = np.empty((G + 1, NB))  # every distinct total hazard; G: none
    frac = np.ones((G + 1, NB))  # (1 - exp(-H)) / H, 1 where there is no hazard
    stay = np.ones((G + 1, NB))  # exp(-H)
    pe = np.empty((a.exit_to.shape[0], NB))  # probability of each exit
    x, xn = np.empty((S, NB)), np.empty((S, NB))
    y = np.empty((V, NB))  # expected events in the cycle, whole cohort
    x_sum = np.zeros((K + 1, S, NB))  # sum over rows of w_t f_t x_t
    e_sum = np.zeros((K + 1, V, NB))  # sum over rows of w_t f_t (x_t . e_t)
    flow_sum = np.zeros((K + 1, F, NB))  # rewarded flows, discounted at the cycle's end
    counted = np.zeros((2, C, NB))
    bad = np.zeros(NB)
    for s in range(S):
        xs = x[s]
        for i in range(nb):
            xs[i] = a.start[d0 + i, s]
    for t in range(T + 1):
        c = t if t < T else T - 1  # the last row takes the last cycle's values
        _combinations(a.lin_ptr, a.term_profile, a.term_coef, a.profiles, lv, c, d0, nb)
        _rows(a.ev_ptr, a.ev_state, a.ev_lin, a.weights, a.disc, R > 0, lv, x, y, x_sum, e_sum,
              t, nb)  # fmt: skip
        for i in range(nb):
            for k in range(kept.shape[0]):
                out.trace[d0 + i, t, k] = x[kept[k], i]
        if t == T or (stop_state >= 0 and _all_at_least(x[stop_state], stop_level, nb)):
            break
        if keep_events:
            for i in range(nb):
                for v in range(V):
                    out.events[d0 + i, v, t] = y[v, i]
        _competing(a.grp_ptr, a.grp_lin, lv, H, frac, stay, bad, nb)
        _advance(a, lv, frac, stay, x, xn, pe, nb)
        if C > 0 or F > 0:
            _tally(a, lv, frac, stay, x, pe, counted, flow_sum, t, nb)
        for s in range(S):
            xs, xns = x[s], xn[s]
            for i in range(nb):
                xs[i] = xns[i]
    _totals(a, out, x_sum, e_sum, flow_sum, counted, bad, d0, nb)


def _all_at_least(xs, level, nb):
    """Whether ``xs[i] >= level`` for every draw i of the block."""
    short = 0
    for i in range(nb):
        short += 0 if xs[i] >= level else 1
    return short == 0


def _combinations(lin_ptr, term_profile, term_coef, profiles, lv, c, d0, nb):
    """lv[l] = sum of the terms of linear combination l at cycle c: coefficient x profile."""
    for li in range(lv.shape[0]):
        out = lv[li]
        for i in range(nb):
            out[i] = 0.0
        for k in range(lin_ptr[li], lin_ptr[li + 1]):
            j = term_profile[k]
            coef = term_coef[k, d0 : d0 + nb]
            if j < 0:
                for i in range(nb):
                    out[i] += coef[i]
            else:
                prof = profiles[j, c, d0 : d0 + nb]
                for i in range(nb):
                    out[i] += coef[i] * prof[i]


def _rows(ev_ptr, ev_state, ev_lin, weights, disc, with_rewards, lv, x, y, x_sum, e_sum, t, nb):
    """Trace row t: y[v], the expected events v in the cycle over the whole cohort (the sum over
    states, ascending, of occupancy times events per person-cycle); then, when there are state
    rewards, the row and its events added to the sums, weighted and discounted by each discount
    row (and undiscounted)."""
    for v in range(y.shape[0]):
        yv = y[v]
        for i in range(nb):
            yv[i] = 0.0
        for q in range(ev_ptr[v], ev_ptr[v + 1]):
            rate, xs = lv[ev_lin[q]], x[ev_state[q]]
            for i in range(nb):
                yv[i] += xs[i] * rate[i]
    if not with_rewards:
        return
    K = disc.shape[0]
    for k in range(K + 1):
        f = weights[t] * disc[k, t] if k < K else weights[t]
        for s in range(x.shape[0]):
            acc, xs = x_sum[k, s], x[s]
            for i in range(nb):
                acc[i] += f * xs[i]
        for v in range(y.shape[0]):
            acc, yv = e_sum[k, v], y[v]
            for i in range(nb):
                acc[i] += f * yv[i]


def _competing(grp_ptr, grp_lin, lv, H, frac, stay, bad, nb):
    """Each distinct total hazard H (the sum of a state's exits, or of its internal changes,
    in their declared order), exp(-H) and (1 - exp(-H)) / H, once for every state and cohort
    that has it; a negative or non-finite hazard marks its draw bad."""
    for g in range(grp_ptr.shape[0] - 1):
        total = H[g]
        for i in range(nb):
            total[i] = 0.0
        for k in range(grp_ptr[g], grp_ptr[g + 1]):
            h = lv[grp_lin[k]]
            for i in range(nb):
                bad[i] += 0.0 if h[i] >= 0.0 else 1.0
                total[i] += h[i]
        fr, st = frac[g], stay[g]
        for i in range(nb):
            bad[i] += 0.0 if (total[i] >= 0.0 and total[i] < math.inf) else 1.0
            em1, ex = _expm1_neg(total[i])
            fr[i] = -em1 / total[i] if total[i] > 0.0 else 1.0
            st[i] = ex


def _advance(a, lv, frac, stay, x, xn, pe, nb):
    """The next trace row: those who stay, plus the flow along every declared edge (exit j:
    H_j (1 - exp(-H_x)) / H_x; internal k: exp(-H_x) H_k (1 - exp(-H_i)) / H_i)."""
    for s in range(x.shape[0]):
        xs, xns = x[s], xn[s]
        sx, si = stay[a.state_grp[0, s]], stay[a.state_grp[1, s]]
        for i in range(nb):
            xns[i] = xs[i] * (sx[i] * si[i])
    for e in range(a.exit_to.shape[0]):
        s = a.exit_from[e]
        h, fr, p = lv[a.exit_lin[e]], frac[a.state_grp[0, s]], pe[e]
        xa, xb = x[s], xn[a.exit_to[e]]
        for i in range(nb):
            p[i] = h[i] * fr[i]
            xb[i] += xa[i] * p[i]
    for e in range(a.int_to.shape[0]):
        s = a.int_from[e]
        h, fr, sx = lv[a.int_lin[e]], frac[a.state_grp[1, s]], stay[a.state_grp[0, s]]
        xa, xb = x[s], xn[a.int_to[e]]
        for i in range(nb):
            xb[i] += xa[i] * (sx[i] * (h[i] * fr[i]))


def _tally(a, lv, frac, stay, x, pe, counted, flow_sum, t, nb):
    """The flows of cycle t that are counted, discounted at the end of the cycle: each count's
    (occupancy x P(exit) x the cause's share of the exit's hazard, 0 where that hazard is 0),
    and those that carry a transition reward."""
    for k in range(a.cnt_ptr.shape[0] - 1):
        f = a.disc[a.count_disc[k], t + 1]
        c0, c1 = counted[0, k], counted[1, k]
        for q in range(a.cnt_ptr[k], a.cnt_ptr[k + 1]):
            e = a.cnt_edge[q]
            h, part, p, xs = lv[a.exit_lin[e]], lv[a.cnt_lin[q]], pe[e], x[a.exit_from[e]]
            for i in range(nb):
                n = xs[i] * p[i] * part[i] / h[i] if h[i] > 0.0 else 0.0
                c0[i] += n * f
                c1[i] += n
    if a.flow_from.shape[0] == 0:
        return
    K = a.disc.shape[0]
    for k in range(K + 1):
        f = a.disc[k, t + 1] if k < K else 1.0
        for s in range(x.shape[0]):
            if a.stay_flow[s] >= 0:
                acc, xs = flow_sum[k, a.stay_flow[s]], x[s]
                sx, si = stay[a.state_grp[0, s]], stay[a.state_grp[1, s]]
                for i in range(nb):
                    acc[i] += f * (xs[i] * (sx[i] * si[i]))
        for e in range(a.exit_to.shape[0]):
            if a.exit_flow[e] >= 0:
                acc, xa, p = flow_sum[k, a.exit_flow[e]], x[a.exit_from[e]], pe[e]
                for i in range(nb):
                    acc[i] += f * (xa[i] * p[i])
        for e in range(a.int_to.shape[0]):
            if a.int_flow[e] >= 0:
                s = a.int_from[e]
                acc, xa = flow_sum[k, a.int_flow[e]], x[s]
                h, fr, sx = lv[a.int_lin[e]], frac[a.state_grp[1, s]], stay[a.state_grp[0, s]]
                for i in range(nb):
                    acc[i] += f * (xa[i] * (sx[i] * (h[i] * fr[i])))


def _totals(a, out, x_sum, e_sum, flow_sum, counted, bad, d0, nb):
    """Each draw's totals: the row sums of each reward's cohort times its state rewards, the
    flow sums times the transition rewards (in the order of a row-major (from, to) loop), and
    the counts."""
    K = a.disc.shape[0]
    acc = np.empty(nb)
    for i in range(nb):
        out.ok[d0 + i] = bad[i] == 0.0
    for r in range(a.reward_const.shape[0]):
        where = a.reward_where[r]
        s0, ns, v0, nv = where[0], where[1], where[2], where[3]
        for m in range(2):
            k = a.reward_disc[r] if m == 0 else K
            for i in range(nb):
                acc[i] = 0.0
            for s in range(ns):
                c, xs = a.reward_const[r, s, d0 : d0 + nb], x_sum[k, s0 + s]
                for i in range(nb):
                    acc[i] += c[i] * xs[i]
            for v in range(nv):
                c, es = a.reward_event[r, v, d0 : d0 + nb], e_sum[k, v0 + v]
                for i in range(nb):
                    acc[i] += c[i] * es[i]
            for i in range(nb):
                out.reward[d0 + i, m, r] = acc[i]
    for r in range(a.trans_reward.shape[0]):
        f0, f1 = a.trans_where[r, 0], a.trans_where[r, 1]
        for m in range(2):
            k = a.trans_disc[r] if m == 0 else K
            for i in range(nb):
                acc[i] = 0.0
            for f in range(f0, f1):
                c, fs = a.trans_reward[r, f - f0, d0 : d0 + nb], flow_sum[k, f]
                for i in range(nb):
                    acc[i] += c[i] * fs[i]
            for i in range(nb):
                out.trans[d0 + i, m, r] = acc[i]
    for k in range(counted.shape[1]):
        for i in range(nb):
            out.count[d0 + i, 0, k] = counted[0, k, i]
            out.count[d0 + i, 1, k] = counted[1, k, i]


#: Draws per block: the block's working arrays stay in the cache, and its loops over draws
#: are vector instructions.
BLOCK_DRAWS = 256
#: The kernel's functions, compiled in this order (a function before those that call it).
_COMPILED = (
    "_expm1_neg", "_all_at_least", "_combinations", "_rows", "_competing", "_advance", "_tally", "_totals",
    "_run_block",
)  # fmt: skip
# expm1 by Cody-Waite reduction, x = k ln2 + r with |r| <= ln2 / 2, and the degree-14 Taylor
# polynomial of expm1(r) (truncation error below 1e-17 relative): expm1(x) = 2^k expm1(r) +
# (2^k - 1). Arithmetic only, so that the loops over cycles compile to vector instructions
# (a call to libm's expm1 would stop that); within an ulp or two of libm's (tested).
_LN2_HI = 6.93147180369123816490e-01  # ln 2 rounded to 33 bits (k x _LN2_HI exact)
_LN2_LO = 1.90821492927058770002e-10  # ln 2 - _LN2_HI
_INV_LN2 = 1.44269504088896338700e00  # 1 / ln 2
#: Hazards beyond this are clamped: exp(-700) = 1e-304 is 0 for every purpose, and 2^k stays a
#: normal number.
_EXPM1_FLOOR = 700.0
#: 1.5 x 2^52: an integral float k in [-2^31, 2^31) added to it has k as its low bits.
_ROUND_MAGIC = 6755399441055744.0


def _expm1_neg(h):
    """(expm1(-h), exp(-h)) for h >= 0, both to about an ulp (arithmetic only; see the comment
    above): exp(-h) = 2^k (1 + expm1(r)) keeps its relative precision however large h is."""
    x = -h if h < _EXPM1_FLOOR else -_EXPM1_FLOOR
    k = np.floor(x * _INV_LN2 + 0.5)
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
    # 2^k from the exponent bits (integer adds and shifts: no float-to-integer conversion)
    bits = np.float64(k + _ROUND_MAGIC).view(np.int64)
    scale = np.int64((bits + 1023) << 52).view(np.float64)
    return scale * em + (scale - 1.0), scale * (1.0 + em)


# --------------------------------------------------------------------------- arrays


class _Lins:
    """Collects the linear combinations of a call's cohorts as CSR arrays. With ``share``, a
    combination with the same terms as one already collected (the same profiles in the same
    order, with coefficients equal bit for bit in every draw) is that one: the kernel evaluates
    it once per cycle for every cohort, and its values are the same bits either way."""

    def __init__(self, profile_index: Mapping[str, int], D: int, share: bool):
        self.index, self.D, self.share = profile_index, D, share
        self.ptr, self.profile, self.coef = [0], [], []
        self.known: dict[tuple, list[int]] = {}  # a cheap fingerprint -> combinations with it

    def add(self, lin: Lin) -> int:
        terms = [
            (
                -1 if name == ONE else self.index[name],
                np.broadcast_to(np.asarray(c, float), (self.D,)),
            )
            for name, c in lin.terms.items()
        ]
        if self.share:
            key = tuple((j, c[:1].tobytes(), c[-1:].tobytes()) for j, c in terms)
            for li in self.known.get(key, ()):
                if all(
                    _same_bits(c, self.coef[k])
                    for k, (_, c) in zip(range(self.ptr[li], self.ptr[li + 1]), terms, strict=True)
                ):
                    return li
            self.known.setdefault(key, []).append(len(self.ptr) - 1)
        for j, c in terms:
            self.profile.append(j)
            self.coef.append(c)
        self.ptr.append(len(self.profile))
        return len(self.ptr) - 2

    def arrays(self):
        coef = np.stack(self.coef) if self.coef else np.zeros((0, self.D))
        return (
            np.asarray(self.ptr, np.int64),
            np.asarray(self.profile, np.int64),
            np.ascontiguousarray(coef),
        )


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a is b or np.array_equal(a.view(np.int64), b.view(np.int64))


def _rewarded(model: CohortModel) -> np.ndarray:
    """(S, S): True where some transition reward of the cohort is not 0 in some draw."""
    S = model.n_states
    mask = np.zeros((S, S), bool)
    for value in model.transition_rewards.values():
        mask |= (np.asarray(value) != 0).any(axis=0)
    return mask


def _as_int(values) -> np.ndarray:
    return np.asarray(values, np.int64)


#: Where one cohort's results lie in a call's arrays: its states, state rewards, transition
#: rewards, counts and events as ranges, and their names in the arrays' order.
_Part = namedtuple("_Part", ["states", "rewards", "trans", "counts", "events", "names"])


def _arrays(models: Sequence[CohortModel], B, index, timing: Timing, share: bool = True):
    """The kernel's :class:`Arrays` of a call's declared cohorts, side by side, and a
    :class:`_Part` per cohort. With ``share``, the cohorts' identical linear combinations and
    identical total hazards (the same combinations, in the same order, at the same level) are
    computed once; without it, every cohort keeps its own (a :class:`Rerun`'s cohorts must have
    the same structure whatever their coefficients)."""
    D = B.shape[2]
    lins = _Lins(index, D, share)
    S_all = sum(m.n_states for m in models)
    S_max = max(m.n_states for m in models)
    V_max = max(len(m.events) for m in models)
    reward_const = np.zeros((sum(len(m.rewards) for m in models), S_max, D))
    reward_event = np.zeros((len(reward_const), V_max, D))
    masks = [_rewarded(m) for m in models]
    trans_reward = np.zeros(
        (sum(len(m.transition_rewards) for m in models), max(int(k.sum()) for k in masks), D)
    )
    groups: dict[tuple, int] = {}
    grp_ptr, grp_lin = [0], []
    state_grp = np.full((2, S_all), -1, np.int64)
    edge_rows = [[], []]  # per level: (from, to, lin, flow) of each edge
    flows, flow_of = [], {}  # (from, to) within the cohort, and global (from, to) -> flow
    ev_ptr, ev_state, ev_lin = [0], [], []
    cnt_ptr, cnt_edge, cnt_lin = [0], [], []
    reward_where, trans_where = [], []
    starts, parts = [], []
    s0 = r0 = t0 = c0 = v0 = 0
    for m in models:
        S = m.n_states
        trans = list(m.transition_rewards)
        first_flow = len(flows)
        # row-major: the order the totals add them in
        for i, j in zip(*np.nonzero(masks[len(parts)]), strict=True):
            flow_of[(s0 + int(i), s0 + int(j))] = len(flows)
            flows.append((int(i), int(j)))
        where = {}
        for level, per_state in ((0, m.exits), (1, m.internal)):
            for s in range(S):
                dests = per_state.get(s, {})
                if not dests:
                    continue
                ids = []
                for dest, h in dests.items():
                    li = lins.add(h)
                    ids.append(li)
                    if level == 0:
                        where[(s, dest)] = len(edge_rows[0])
                    pair = (s0 + s, s0 + dest)
                    edge_rows[level].append((*pair, li, flow_of.get(pair, -1)))
                key = (level, tuple(ids))
                if not share or key not in groups:
                    groups[key] = len(grp_ptr) - 1
                    grp_lin.extend(ids)
                    grp_ptr.append(len(grp_lin))
                state_grp[level, s0 + s] = groups[key]
        events = list(m.events)
        for name in events:
            for s in sorted(m.events[name]):
                ev_state.append(s0 + s)
                ev_lin.append(lins.add(m.events[name][s]))
            ev_ptr.append(len(ev_state))
        counts = list(m.counts)
        for name in counts:
            dest, parts_of = m.counts[name]
            for s in sorted(parts_of):
                cnt_edge.append(where[(s, dest)])
                cnt_lin.append(lins.add(parts_of[s]))
            cnt_ptr.append(len(cnt_edge))
        rewards = list(m.rewards)
        for r, name in enumerate(rewards):
            const, coefs = m.rewards[name]
            reward_const[r0 + r, :S] = np.asarray(const).T
            for event, coef in coefs.items():
                reward_event[r0 + r, events.index(event)] = coef
            reward_where.append((s0, S, v0, len(events)))
        for r, name in enumerate(trans):
            value = np.asarray(m.transition_rewards[name])
            for f, (i, j) in enumerate(flows[first_flow:]):
                trans_reward[t0 + r, f] = value[:, i, j]
            trans_where.append((first_flow, len(flows)))
        starts.append(start_of(m, D))
        parts.append(
            _Part(
                (s0, s0 + S),
                (r0, r0 + len(rewards)),
                (t0, t0 + len(trans)),
                (c0, c0 + len(counts)),
                (v0, v0 + len(events)),
                (rewards, trans, counts, events),
            )
        )
        s0, r0, t0, c0, v0 = (end for _, end in parts[-1][:5])
    G = len(grp_ptr) - 1
    state_grp[state_grp < 0] = G  # no hazard at this level: nothing happens
    lin_ptr, term_profile, term_coef = lins.arrays()
    # the distinct discount rows: one when costs and effects are discounted alike (the kernel
    # then totals each row once for both, not twice)
    costs, effects = timing.discount(False), timing.discount(True)
    same = np.array_equal(costs, effects)
    disc = costs[None] if same else np.stack([costs, effects])

    def rows(names):
        return _as_int([int(n in timing.effects and not same) for p in parts for n in names(p)])

    def columns(level):
        cols = np.asarray(edge_rows[level], np.int64).reshape(-1, 4)
        return [np.ascontiguousarray(cols[:, k]) for k in range(4)]

    exit_from, exit_to, exit_lin, exit_flow = columns(0)
    int_from, int_to, int_lin, int_flow = columns(1)
    stay_flow = _as_int([flow_of.get((s, s), -1) for s in range(S_all)])
    flows_ = np.asarray(flows, np.int64).reshape(-1, 2)
    arrays = Arrays(
        B, lin_ptr, term_profile, term_coef, _as_int(grp_ptr), _as_int(grp_lin), state_grp,
        exit_from, exit_to, exit_lin, exit_flow, int_from, int_to, int_lin, int_flow, stay_flow,
        _as_int(ev_ptr), _as_int(ev_state), _as_int(ev_lin),
        reward_const, reward_event, _as_int(reward_where).reshape(-1, 4),
        trans_reward, _as_int(trans_where).reshape(-1, 2),
        np.ascontiguousarray(flows_[:, 0]), np.ascontiguousarray(flows_[:, 1]),
        _as_int(cnt_ptr), _as_int(cnt_edge), _as_int(cnt_lin),
        np.ascontiguousarray(np.concatenate(starts, axis=1)),
        np.ascontiguousarray(timing.weights(), float), disc,
        rows(lambda p: p.names[0]), rows(lambda p: p.names[1]), rows(lambda p: p.names[2]),
    )  # fmt: skip
    return arrays, parts


def _execute(arrays: Arrays, parts, start_rewards, keep_trace, keep_events, kept=None, stop=None):
    """The kernel on a call's :class:`Arrays` (``parts``: where each cohort's results lie),
    each cohort's totals and start rewards as a :class:`CohortResult`; None when a hazard was
    negative or not finite in some draw.

    ``kept`` (one cohort only): keep the trace of these states only, (D, T + 1, len(kept)).
    ``stop`` = (state, level): each block of draws stops after the first row in which the state
    holds at least ``level`` in every draw of the block (:func:`_run_block`); the later trace
    rows are NaN, the later events and the totals are not computed, and the later cycles' hazards
    are not checked (None only for a negative or non-finite hazard in the cycles run)."""
    (D, S), T = arrays.start.shape, arrays.profiles.shape[1]
    V = arrays.ev_ptr.shape[0] - 1
    if kept is None:
        kept = np.arange(S if keep_trace else 0)
    else:
        keep_trace = True
    kept = _as_int(kept)
    stop_state, stop_level = (-1, 0.0) if stop is None else (int(stop[0]), float(stop[1]))
    trace = (D, T + 1, len(kept)) if keep_trace else (1, 1, 1)
    out = Results(
        np.zeros((D, 2, arrays.reward_const.shape[0])),
        np.zeros((D, 2, arrays.trans_reward.shape[0])),
        np.zeros((D, 2, arrays.cnt_ptr.shape[0] - 1)),
        np.full(trace, np.nan) if stop is not None else np.zeros(trace),
        np.zeros((D, V, T) if keep_events else (1, 1, 1)),
        np.ones(D, dtype=np.bool_),
    )
    _kernel()(arrays, out, kept, keep_events, stop_state, stop_level, 0, D)
    if not out.ok.all():
        return None
    results = []
    for part, once_rewards in zip(parts, start_rewards, strict=True):
        rewards, trans, counts, events = part.names
        disc_tot, und_tot = {}, {}
        for names, (lo, _), totals in (
            (rewards, part.rewards, out.reward),
            (trans, part.trans, out.trans),
            (counts, part.counts, out.count),
        ):
            for k, name in enumerate(names):  # a name may be a state and a transition reward
                disc_tot[name] = disc_tot.get(name, 0.0) + totals[:, 0, lo + k]
                und_tot[name] = und_tot.get(name, 0.0) + totals[:, 1, lo + k]
        start = np.ascontiguousarray(arrays.start[:, slice(*part.states)])
        for name, r in once_rewards.items():  # once at time 0, undiscounted
            once = np.einsum("ds,ds->d", np.asarray(r, float), start)
            disc_tot[name] = disc_tot.get(name, 0.0) + once
            und_tot[name] = und_tot.get(name, 0.0) + once
        v0 = part.events[0]
        own = None
        if keep_trace:  # one cohort: its trace as written; several: each its own columns
            whole = len(parts) == 1
            own = out.trace if whole else np.ascontiguousarray(out.trace[..., slice(*part.states)])
        results.append(
            CohortResult(
                discounted=disc_tot,
                undiscounted=und_tot,
                trace=own,
                event_totals={n: out.events[:, v0 + v] for v, n in enumerate(events)}
                if keep_events
                else None,
            )
        )
    return results


class Rerun:
    """One declared cohort made ready for the kernel once, then run again and again on subsets
    of its draws with hazards that move with a few unknowns per draw (a calibration's root
    finding): no declaration or array building per run (a run on a subset of the draws gathers
    their columns of the arrays).

    ``base`` is the cohort with every unknown at 0 and ``units[k]`` the same cohort with unknown
    k at 1 and the others at 0. Every coefficient must be linear in the unknowns (hazards
    proportional to a rate are); a run at ``theta`` then takes ``coef(base) + sum_k theta_k
    (coef(units[k]) - coef(base))``, which is the cohort declared at ``theta`` to rounding.
    The cohorts must declare the same structure (edges, terms, start); only coefficients and
    rewards may differ (the rewards are ``base``'s). Their combinations are not shared (two
    that are equal at ``base`` may differ at ``theta``).

    The states no draw can enter lose their hazards, events and counts
    (:func:`_without_unreachable`) when those hazards are >= 0 at every ``theta`` >= 0: at
    ``base``, and rising with each unknown; a run with a negative unknown then gives None.
    ``keep_states`` keeps the trace of these states only (its columns in this order);
    ``stop`` = (state, level) stops each block of draws after the first row in which the
    state holds at least ``level`` in every draw of the block (:func:`_execute`). ``check`` =
    (theta, the cohort declared at theta): its coefficients must be those the rerun would take
    there, to :data:`RERUN_LINEAR_RTOL` (CeaError otherwise: a hazard not linear in the
    unknowns). ``keep_trace``, ``keep_events``: as :func:`run_cohorts`. A declaration the engine
    cannot run is refused as by :func:`cea.engine.declaration.validate` (ModelInputError)."""

    def __init__(
        self,
        base: CohortModel,
        units: Sequence[CohortModel],
        profiles: Mapping[str, np.ndarray],
        timing: Timing,
        keep_trace: bool = False,
        keep_events: bool = False,
        keep_states: Sequence[int] | None = None,
        stop: tuple[int, float] | None = None,
        check: tuple[Sequence[float], CohortModel] | None = None,
    ):
        validate([base, *units, *(() if check is None else (check[1],))], profiles, timing)
        asked = [*(keep_states or ()), *(() if stop is None else (stop[0],))]
        if any(not 0 <= s < base.n_states for s in asked):
            raise CeaError(f"{base.label or 'cohort'}: a rerun keeps or stops on a state it lacks")
        B, index = _profile_array(profiles, [base, *units], timing.n_cycles)
        _compile_with_notice()
        D = B.shape[2]
        bounds = _profile_bounds(B, index)
        pruned = [_without_unreachable(m, D, bounds) for m in (base, *units)]
        self._pruned = all(p is not m for p, m in zip(pruned, (base, *units), strict=True)) and (
            _rising(base, units, pruned[0])
        )
        if self._pruned:
            base, units = pruned[0], pruned[1:]
        self._arrays, self._parts = _arrays([base], B, index, timing, share=False)
        self._start_rewards = base.start_rewards
        self._keep = (keep_trace, keep_events, keep_states, stop)
        slopes = []
        for m in units:
            a = _arrays([m], B, index, timing, share=False)[0]
            _same_structure(m, a, self._arrays)
            slopes.append(a.term_coef - self._arrays.term_coef)
        self._slopes = slopes
        if check is not None:  # the coefficients at ``theta`` are those of the declaration
            theta, m = check
            m = _without_unreachable(m, D, bounds) if self._pruned else m
            a = _arrays([m], B, index, timing, share=False)[0]
            _same_structure(m, a, self._arrays)
            want = self._arrays.term_coef + sum(t * s for t, s in zip(theta, slopes, strict=True))
            scale = np.maximum(np.abs(a.term_coef), np.abs(want))
            if not (np.abs(a.term_coef - want) <= RERUN_LINEAR_RTOL * scale).all():
                raise CeaError(
                    f"{m.label or 'cohort'}: a rerun's hazards are not linear in its unknowns"
                )

    def run(self, theta: np.ndarray, idx: np.ndarray) -> CohortResult | None:
        """The cohort at ``theta`` (K, n) for the draws at positions ``idx`` (n,), as
        :func:`run_cohorts` gives it; None when a hazard was negative or not finite (the
        caller reruns it by the declaration, whose error names the draw)."""
        if self._pruned and not (theta >= 0).all():
            return None
        a = self._arrays
        every = len(idx) == len(a.start) and np.array_equal(idx, np.arange(len(idx)))
        take = (lambda x, axis: x) if every else (lambda x, axis: np.take(x, idx, axis=axis))
        coef = take(a.term_coef, 1)
        for k, slope in enumerate(self._slopes):
            coef = coef + theta[k] * take(slope, 1)
        sub = a._replace(
            profiles=take(a.profiles, 2),
            term_coef=coef,
            reward_const=take(a.reward_const, 2),
            reward_event=take(a.reward_event, 2),
            trans_reward=take(a.trans_reward, 2),
            start=take(a.start, 0),
        )
        start_rewards = {n: np.asarray(r, float)[idx] for n, r in self._start_rewards.items()}
        res = _execute(sub, self._parts, [start_rewards], *self._keep)
        return None if res is None else res[0]


def _same_structure(model: CohortModel, a: Arrays, base: Arrays) -> None:
    """Refuse a rerun's cohort whose arrays differ from ``base``'s in more than coefficients
    and rewards (the profiles, weights and discounting are the call's, the same for all)."""
    for field in Arrays._fields:
        if field in _RERUN_FREE:
            continue
        if not np.array_equal(getattr(a, field), getattr(base, field)):
            raise CeaError(f"{model.label or 'cohort'}: a rerun's cohorts differ in {field}")


#: The fields of :class:`Arrays` a rerun's cohorts may have differently (or that are the call's).
_RERUN_FREE = frozenset(
    ("term_coef", "reward_const", "reward_event", "trans_reward", "profiles", "weights", "disc")
)
#: A rerun's linearity check: the coefficients at the check's unknowns, against those of its
#: declaration, relative (rounding of a few operations).
RERUN_LINEAR_RTOL = 1e-12


def _rising(base: CohortModel, units: Sequence[CohortModel], pruned: CohortModel) -> bool:
    """Whether every coefficient of the hazards ``pruned`` drops from ``base`` is at least as
    large in each of ``units`` (so, linear in the unknowns, it never falls as they rise)."""
    for level in ("exits", "internal"):
        for s, dests in getattr(base, level).items():
            if s in getattr(pruned, level):
                continue
            for dest, lin in dests.items():
                for unit in units:
                    rise = getattr(unit, level).get(s, {}).get(dest)
                    for name, c in lin.terms.items():
                        if rise is None or name not in rise.terms:
                            return False  # not the same structure: the caller says so
                        if not (np.asarray(rise.terms[name], float) >= np.asarray(c, float)).all():
                            return False
    return True


def start_of(model: CohortModel, D: int) -> np.ndarray:
    """The start vector of every draw, (D, S)."""
    return np.ascontiguousarray(
        np.broadcast_to(np.asarray(model.start, float), (D, model.n_states))
    )


def run_cohorts(
    models: Sequence[CohortModel],
    profiles: Mapping[str, np.ndarray],
    timing: Timing,
    keep_trace: bool = False,
    keep_events: bool = False,
) -> list[CohortResult]:
    """Run declared cohorts through the compiled kernel (see
    :func:`cea.engine.cohort.run_cohorts`): all of them in one call, side by side, their
    identical linear combinations and total hazards computed once per cycle for all
    (:func:`_arrays`). When some draw has a negative or non-finite hazard, each cohort is run
    alone, and one that fails again goes through the NumPy backend, whose error names the
    cohort and the draw (or which decides)."""
    if not models:
        return []
    B, index = _profile_array(profiles, models, timing.n_cycles)
    _compile_with_notice()
    D = B.shape[2]
    bounds = _profile_bounds(B, index)
    pruned = [_without_unreachable(m, D, bounds) for m in models]
    keep = (keep_trace, keep_events)
    out = _execute(*_arrays(pruned, B, index, timing), [m.start_rewards for m in pruned], *keep)
    if out is not None:
        return out
    out = []
    for m, p in zip(models, pruned, strict=True):
        alone = _execute(*_arrays([p], B, index, timing), [p.start_rewards], *keep)
        out.append(alone[0] if alone else numpy_backend.run(m, profiles, timing, *keep))
    return out


def _profile_bounds(B: np.ndarray, index: Mapping[str, int]) -> dict[str, tuple[bool, float]]:
    """Per profile (and "one"): whether it is >= 0 everywhere, and its largest absolute value
    (inf when some value is not finite)."""
    out = {ONE: (True, 1.0)}
    for n, j in index.items():
        lo, hi = (float(B[j].min()), float(B[j].max())) if B[j].size else (0.0, 0.0)
        finite = math.isfinite(lo) and math.isfinite(hi)  # a NaN makes both NaN
        out[n] = (finite and lo >= 0.0, max(-lo, hi) if finite else math.inf)
    return out


def _surely_finite(lin: Lin, bounds: Mapping[str, tuple[bool, float]], hazard: bool) -> bool:
    """Whether ``lin`` is finite in every draw and cycle (the sum of its largest coefficients
    times its profiles' largest values is), and, for a ``hazard``, >= 0 (its coefficients and
    profiles are)."""
    total = 0.0
    for name, c in lin.terms.items():
        c = np.asarray(c, float)
        nonneg, largest = bounds[name]
        if hazard and not (nonneg and (c >= 0).all()):
            return False
        total += float(np.abs(c).max(initial=0.0)) * largest
    return math.isfinite(total)


def _without_unreachable(
    model: CohortModel, D: int, bounds: Mapping[str, tuple[bool, float]]
) -> CohortModel:
    """The cohort without the hazards, events and counts of the states no draw can enter (from
    its start states along its declared edges, whatever their hazards): those states hold no one
    in any cycle, so dropping them changes no result and saves the kernel their work (a cohort
    without IgRT never enters the IgRT states; one on IgRT from the start never leaves them for
    the states before). The kernel refuses a draw with a negative or non-finite hazard anywhere,
    and a non-finite event or count makes its totals non-finite, which the caller refuses; so a
    cohort is left whole unless every dropped hazard is surely >= 0 and finite, and every dropped
    event and count surely finite (:func:`_surely_finite`; ``bounds``: of the profiles,
    :func:`_profile_bounds`)."""
    S = model.n_states
    reached = set(np.flatnonzero((start_of(model, D) > 0).any(axis=0)).tolist())
    todo = list(reached)
    while todo:
        s = todo.pop()
        for dest in [*model.exits.get(s, {}), *model.internal.get(s, {})]:
            if dest not in reached:
                reached.add(dest)
                todo.append(dest)
    if len(reached) == S:
        return model
    dropped = [
        *((lin, True) for level in (model.exits, model.internal)
          for s, dests in level.items() if s not in reached for lin in dests.values()),
        *((lin, False) for per_state in model.events.values()
          for s, lin in per_state.items() if s not in reached),
        *((lin, False) for _, parts in model.counts.values()
          for s, lin in parts.items() if s not in reached),
    ]  # fmt: skip
    if not all(_surely_finite(lin, bounds, hazard) for lin, hazard in dropped):
        return model

    def keep(per_state):
        return {s: x for s, x in per_state.items() if s in reached}

    return replace(
        model,
        exits=keep(model.exits),
        internal=keep(model.internal),
        events={name: keep(per_state) for name, per_state in model.events.items()},
        counts={name: (dest, keep(parts)) for name, (dest, parts) in model.counts.items()},
    )


def _profile_array(profiles: Mapping[str, np.ndarray], models, T: int):
    """The profiles as the kernel reads them, (J, T, D) (draws innermost), and name -> j."""
    D = n_draws_of(profiles, models)
    names = [n for n in profiles if n != ONE]
    B = np.empty((max(1, len(names)), T, D))
    for j, n in enumerate(names):
        B[j] = profiles[n][:, :T].T
    return B, {n: j for j, n in enumerate(names)}


def _compile_with_notice() -> None:
    """Get the kernel ready; when that takes longer than :data:`COMPILE_NOTICE_SECONDS` (the
    first run on a machine compiles it), say so on stderr while it happens. Threads that
    arrive together wait for the first one's compilation."""
    if _KERNEL and getattr(_KERNEL[0], "signatures", None):
        return
    with _COMPILING:
        if _KERNEL and getattr(_KERNEL[0], "signatures", None):
            return
        notice = threading.Timer(
            COMPILE_NOTICE_SECONDS,
            lambda: print(
                "cea: compiling the engine's kernel for this machine (once, a few seconds)...",
                file=sys.stderr,
                flush=True,
            ),
        )
        notice.daemon = True
        notice.start()
        try:
            _warm(_kernel())
        finally:
            notice.cancel()


def _warm(kernel) -> None:
    """One call on a one-draw, one-cycle, one-state model: compiles the kernel, or loads it
    from Numba's cache."""
    m = CohortModel(start=np.ones(1), exits={})
    arrays, parts = _arrays(
        [m], np.zeros((1, 1, 1)), {}, Timing(n_cycles=1, cycle_length_years=1.0)
    )
    _execute(arrays, parts, [{}], False, False)

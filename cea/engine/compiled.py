"""The engine's compiled backend for declared cohorts (Numba).

One kernel runs any model declared in :mod:`cea.engine.declaration`. Draws go in blocks of
:data:`BLOCK_DRAWS`, each step a loop over the block's draws (vector instructions). The kernel releases the GIL, so
the pipeline's threads (:mod:`cea.pipeline.parallel`) run their chunks of draws through it at the
same time. Per cycle the kernel
evaluates the linear combinations of time profiles, forms the two-level competing-risk
probabilities of each state's declared edges only (the sparse transition structure), totals
the trace rows, events and rewarded flows, and advances the trace, without storing any
(D, T, ...) array; the rewards are applied to the totals at the end. It follows the conventions
of :func:`cea.engine.markov.run_markov` exactly; ``tests/test_engine_cohort.py`` checks it
against the NumPy backend at 1e-12.

Numba compiles the kernel on its first use on a machine (about ten seconds; a message on stderr
says so when it takes longer than a second) and keeps the machine code in the user's cache
folder (``$XDG_CACHE_HOME/cea/numba`` or ``~/.cache/cea/numba``; Numba's own
``NUMBA_CACHE_DIR`` when set), never inside the package. A draw with a negative or non-finite
hazard is rerun through the NumPy backend, whose error names it.

Before the kernel, a cohort loses the hazards, events and counts of the states no draw can enter
(:func:`_without_unreachable`): they hold no one, so no result changes. :class:`Rerun` makes a
cohort ready once to be run again and again at other values of unknowns its hazards are linear
in (the calibration's root finding).
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
from cea.engine.declaration import ONE, CohortModel, CohortResult, Lin, Timing, n_draws_of
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

#: The arrays of one declared cohort, as the kernel reads them (built by :func:`_run_one`).
Arrays = namedtuple(
    "Arrays",
    [
        "profiles",  # (J, T, D) the time profiles
        "lin_ptr",  # (L + 1,) terms of linear combination l: lin_ptr[l] .. lin_ptr[l + 1]
        "term_profile",  # (NT,) profile of each term, -1 for "one"
        "term_coef",  # (NT, D) coefficient of each term
        "exit_from",  # (E,) state each exit leaves
        "exit_to",  # (E,) its destination
        "exit_lin",  # (E,) its hazard (a linear combination)
        "int_from",  # (EI,) the internal changes, as the exits
        "int_to",
        "int_lin",
        "event_lin",  # (V, S) expected events per person-cycle in each state, -1: none
        "reward_const",  # (D, R, S) state rewards: constant per person-cycle
        "reward_event",  # (D, R, V) ... and per event
        "trans_reward",  # (D, R2, S, S) transition rewards
        "trans_mask",  # (S, S) True where some transition reward is not 0
        "count_edge",  # (C, S) the exit whose flow a count attributes, -1: none
        "count_lin",  # (C, S) the cause's part of that exit's hazard
        "start",  # (D, S)
        "weights",  # (T + 1,) within-cycle correction of each trace row
        "disc",  # (K, T + 1) the distinct discount factors of the trace rows
        "reward_disc",  # (R,) row of disc of each state reward
        "trans_disc",  # (R2,) ... of each transition reward
        "count_disc",  # (C,) ... of each count
    ],
)
#: What the kernel writes: totals (D, 2, n) discounted and undiscounted of the state rewards,
#: the transition rewards and the counts; the trace (D, T + 1, S) and the events per cycle
#: (D, V, T) when kept; ok (D,): False for a draw with a negative or non-finite hazard.
Results = namedtuple("Results", ["reward", "trans", "count", "trace", "events", "ok"])


def _cohort_kernel(a, out, keep_trace, keep_events, d_first, d_end):
    """Run one declared cohort for the draws ``d_first .. d_end - 1``, in blocks of
    :data:`BLOCK_DRAWS` draws (module docstring)."""
    for d0 in range(d_first, d_end, BLOCK_DRAWS):
        _run_block(a, out, keep_trace, keep_events, d0, min(d_end, d0 + BLOCK_DRAWS) - d0)


def _run_block(a, out, keep_trace, keep_events, d0, nb):
    """The draws ``d0 .. d0 + nb - 1``, cycle by cycle. Every step is a loop over the block's
    draws, innermost, on one-dimensional views (indices known to be non-negative), with no
    draw-dependent branch: the compiler emits vector instructions.

    State and transition rewards are constant over time, so the trace and the flows are totalled
    over rows first (weighted and discounted by each distinct discount row k < K, undiscounted
    in row K) and multiplied by the rewards once at the end:
    sum_t w_t f_t x_t . (c + a e_t) = c . (sum_t w_t f_t x_t) + a (sum_t w_t f_t x_t . e_t).
    """
    NB = BLOCK_DRAWS
    T, S, L = a.profiles.shape[1], a.start.shape[1], a.lin_ptr.shape[0] - 1
    V, R, R2 = a.event_lin.shape[0], a.reward_const.shape[1], a.trans_reward.shape[1]
    C, E, K = a.count_edge.shape[0], a.exit_to.shape[0], a.disc.shape[0]
    lv = np.empty((L, NB))  # every linear combination in this cycle
    H = np.empty((2, S, NB))  # total hazard of the exits (0) and internal changes (1)
    frac = np.empty((2, S, NB))  # (1 - exp(-H)) / H
    stay = np.empty((2, S, NB))  # exp(-H)
    pe = np.empty((E, NB))  # probability of each exit
    x, xn = np.empty((S, NB)), np.empty((S, NB))
    y = np.empty((V, NB))  # expected events in the cycle, whole cohort
    x_sum = np.zeros((K + 1, S, NB))  # sum over rows of w_t f_t x_t
    e_sum = np.zeros((K + 1, V, NB))  # sum over rows of w_t f_t (x_t . e_t)
    flow_sum = np.zeros((K + 1, S, S, NB))  # flows i -> j, discounted at the cycle's end
    counted = np.zeros((2, C, NB))
    bad = np.zeros(NB)
    for s in range(S):
        xs = x[s]
        for i in range(nb):
            xs[i] = a.start[d0 + i, s]
    for t in range(T + 1):
        c = t if t < T else T - 1  # the last row takes the last cycle's values
        _combinations(a.lin_ptr, a.term_profile, a.term_coef, a.profiles, lv, c, d0, nb)
        _rows(a.event_lin, a.weights, a.disc, R > 0, lv, x, y, x_sum, e_sum, t, nb)
        if keep_trace:
            for i in range(nb):
                for s in range(S):
                    out.trace[d0 + i, t, s] = x[s, i]
        if t == T:
            break
        if keep_events:
            for i in range(nb):
                for v in range(V):
                    out.events[d0 + i, v, t] = y[v, i]
        _competing(a.exit_from, a.exit_lin, a.int_from, a.int_lin, lv, H, frac, stay, bad, nb)
        _advance(a.exit_from, a.exit_to, a.exit_lin, a.int_from, a.int_to, a.int_lin, lv, frac,
                 stay, x, xn, pe, nb)  # fmt: skip
        if C > 0 or R2 > 0:
            _tally(a, lv, frac, stay, x, pe, counted, flow_sum, t, nb)
        for s in range(S):
            xs, xns = x[s], xn[s]
            for i in range(nb):
                xs[i] = xns[i]
    _totals(a, out, x_sum, e_sum, flow_sum, counted, bad, d0, nb)


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


def _rows(event_lin, weights, disc, with_rewards, lv, x, y, x_sum, e_sum, t, nb):
    """Trace row t: y[v], the expected events v in the cycle over the whole cohort (the sum over
    states of occupancy times events per person-cycle); then, when there are state rewards,
    the row and its events added to the sums, weighted and discounted by each discount row
    (and undiscounted)."""
    for v in range(y.shape[0]):
        yv = y[v]
        for i in range(nb):
            yv[i] = 0.0
        for s in range(x.shape[0]):
            if event_lin[v, s] >= 0:
                rate, xs = lv[event_lin[v, s]], x[s]
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


def _competing(exit_from, exit_lin, int_from, int_lin, lv, H, frac, stay, bad, nb):
    """Per state and level (exits 0, internal changes 1): the total hazard H, exp(-H) and
    (1 - exp(-H)) / H; a negative or non-finite hazard marks its draw bad."""
    S = H.shape[1]
    for level in range(2):
        for s in range(S):
            h = H[level, s]
            for i in range(nb):
                h[i] = 0.0
    for level, frm, lin in ((0, exit_from, exit_lin), (1, int_from, int_lin)):
        for e in range(frm.shape[0]):
            h, total = lv[lin[e]], H[level, frm[e]]
            for i in range(nb):
                bad[i] += 0.0 if h[i] >= 0.0 else 1.0
                total[i] += h[i]
    for level, frm in ((0, exit_from), (1, int_from)):
        for s in range(S):
            h, fr, st = H[level, s], frac[level, s], stay[level, s]
            present = False
            for k in range(frm.shape[0]):
                present = present or frm[k] == s
            if not present:  # no hazard at this level: nothing happens
                for i in range(nb):
                    fr[i] = 1.0
                    st[i] = 1.0
                continue
            for i in range(nb):
                bad[i] += 0.0 if (h[i] >= 0.0 and h[i] < math.inf) else 1.0
                em1, ex = _expm1_neg(h[i])
                fr[i] = -em1 / h[i] if h[i] > 0.0 else 1.0
                st[i] = ex


def _advance(
    exit_from, exit_to, exit_lin, int_from, int_to, int_lin, lv, frac, stay, x, xn, pe, nb
):
    """The next trace row: those who stay, plus the flow along every declared edge (exit j:
    H_j (1 - exp(-H_x)) / H_x; internal k: exp(-H_x) H_k (1 - exp(-H_i)) / H_i)."""
    for s in range(x.shape[0]):
        xs, xns, sx, si = x[s], xn[s], stay[0, s], stay[1, s]
        for i in range(nb):
            xns[i] = xs[i] * (sx[i] * si[i])
    for e in range(exit_to.shape[0]):
        h, fr, p = lv[exit_lin[e]], frac[0, exit_from[e]], pe[e]
        xa, xb = x[exit_from[e]], xn[exit_to[e]]
        for i in range(nb):
            p[i] = h[i] * fr[i]
            xb[i] += xa[i] * p[i]
    for e in range(int_to.shape[0]):
        s = int_from[e]
        h, fr, sx = lv[int_lin[e]], frac[1, s], stay[0, s]
        xa, xb = x[s], xn[int_to[e]]
        for i in range(nb):
            xb[i] += xa[i] * (sx[i] * (h[i] * fr[i]))


def _tally(a, lv, frac, stay, x, pe, counted, flow_sum, t, nb):
    """The flows of cycle t that are counted, discounted at the end of the cycle: each count's
    (occupancy x P(exit) x the cause's share of the exit's hazard, 0 where that hazard is 0),
    and those that carry a transition reward."""
    for k in range(a.count_edge.shape[0]):
        f = a.disc[a.count_disc[k], t + 1]
        c0, c1 = counted[0, k], counted[1, k]
        for s in range(x.shape[0]):
            e = a.count_edge[k, s]
            if e >= 0:
                h, part, p, xs = lv[a.exit_lin[e]], lv[a.count_lin[k, s]], pe[e], x[s]
                for i in range(nb):
                    n = xs[i] * p[i] * part[i] / h[i] if h[i] > 0.0 else 0.0
                    c0[i] += n * f
                    c1[i] += n
    if a.trans_reward.shape[1] == 0:
        return
    K = a.disc.shape[0]
    for k in range(K + 1):
        f = a.disc[k, t + 1] if k < K else 1.0
        for s in range(x.shape[0]):
            if a.trans_mask[s, s]:
                acc, xs, sx, si = flow_sum[k, s, s], x[s], stay[0, s], stay[1, s]
                for i in range(nb):
                    acc[i] += f * (xs[i] * (sx[i] * si[i]))
        for e in range(a.exit_to.shape[0]):
            i0, j0 = a.exit_from[e], a.exit_to[e]
            if a.trans_mask[i0, j0]:
                acc, xa, p = flow_sum[k, i0, j0], x[i0], pe[e]
                for i in range(nb):
                    acc[i] += f * (xa[i] * p[i])
        for e in range(a.int_to.shape[0]):
            i0, j0 = a.int_from[e], a.int_to[e]
            if a.trans_mask[i0, j0]:
                acc, xa = flow_sum[k, i0, j0], x[i0]
                h, fr, sx = lv[a.int_lin[e]], frac[1, i0], stay[0, i0]
                for i in range(nb):
                    acc[i] += f * (xa[i] * (sx[i] * (h[i] * fr[i])))


def _totals(a, out, x_sum, e_sum, flow_sum, counted, bad, d0, nb):
    """Each draw's totals: the row sums times the state rewards, the flow sums times the
    transition rewards, and the counts."""
    S, K = x_sum.shape[1], a.disc.shape[0]
    for i in range(nb):
        d = d0 + i
        out.ok[d] = bad[i] == 0.0
        for r in range(a.reward_const.shape[1]):
            for m in range(2):
                k = a.reward_disc[r] if m == 0 else K
                acc = 0.0
                for s in range(S):
                    acc += a.reward_const[d, r, s] * x_sum[k, s, i]
                for v in range(e_sum.shape[1]):
                    acc += a.reward_event[d, r, v] * e_sum[k, v, i]
                out.reward[d, m, r] = acc
        for r in range(a.trans_reward.shape[1]):
            for m in range(2):
                k = a.trans_disc[r] if m == 0 else K
                acc = 0.0
                for s in range(S):
                    for j in range(S):
                        acc += a.trans_reward[d, r, s, j] * flow_sum[k, s, j, i]
                out.trans[d, m, r] = acc
        for k in range(counted.shape[1]):
            out.count[d, 0, k] = counted[0, k, i]
            out.count[d, 1, k] = counted[1, k, i]


#: Draws per block: the block's working arrays stay in the cache, and its loops over draws
#: are vector instructions.
BLOCK_DRAWS = 256
#: The kernel's functions, compiled in this order (a function before those that call it).
_COMPILED = (
    "_expm1_neg", "_combinations", "_rows", "_competing", "_advance", "_tally", "_totals",
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
    """Collects the linear combinations of one cohort as CSR arrays."""

    def __init__(self, profile_index: Mapping[str, int], D: int):
        self.index, self.D = profile_index, D
        self.ptr, self.profile, self.coef = [0], [], []

    def add(self, lin: Lin) -> int:
        for name, c in lin.terms.items():
            self.profile.append(-1 if name == ONE else self.index[name])
            self.coef.append(np.broadcast_to(np.asarray(c, float), (self.D,)))
        self.ptr.append(len(self.profile))
        return len(self.ptr) - 2

    def arrays(self):
        coef = np.stack(self.coef) if self.coef else np.zeros((0, self.D))
        return (
            np.asarray(self.ptr, np.int64),
            np.asarray(self.profile, np.int64),
            np.ascontiguousarray(coef),
        )


def _edges(per_state: Mapping[int, Mapping[int, Lin]], S: int, lins: _Lins):
    """Edges in state order: (from, to, hazard's combination) arrays and (from, to) -> edge."""
    frm, to, lin, where = [], [], [], {}
    for s in range(S):
        for dest, h in per_state.get(s, {}).items():
            where[(s, dest)] = len(to)
            frm.append(s)
            to.append(dest)
            lin.append(lins.add(h))
    as_int = lambda a: np.asarray(a, np.int64)  # noqa: E731
    return as_int(frm), as_int(to), as_int(lin), where


def _arrays(model: CohortModel, B, index, timing: Timing):
    """The kernel's :class:`Arrays` of a declared cohort, and the names of its state rewards,
    transition rewards, counts and events in the arrays' order."""
    D, S = B.shape[2], model.n_states
    lins = _Lins(index, D)
    exit_from, exit_to, exit_lin, where = _edges(model.exits, S, lins)
    int_from, int_to, int_lin, _ = _edges(model.internal, S, lins)
    events = list(model.events)
    event_lin = np.full((len(events), S), -1, np.int64)
    for v, name in enumerate(events):
        for s, h in model.events[name].items():
            event_lin[v, s] = lins.add(h)
    counts = list(model.counts)
    count_edge = np.full((len(counts), S), -1, np.int64)
    count_lin = np.full((len(counts), S), -1, np.int64)
    for k, name in enumerate(counts):
        dest, parts = model.counts[name]
        for s, h in parts.items():
            count_edge[k, s] = where[(s, dest)]
            count_lin[k, s] = lins.add(h)
    rewards = list(model.rewards)
    const = np.zeros((D, len(rewards), S))
    per_event = np.zeros((D, len(rewards), len(events)))
    for r, name in enumerate(rewards):
        c, coefs = model.rewards[name]
        const[:, r] = c
        for event, coef in coefs.items():
            per_event[:, r, events.index(event)] = coef
    trans = list(model.transition_rewards)
    trans_reward = np.zeros((D, len(trans), S, S))
    for r, name in enumerate(trans):
        trans_reward[:, r] = model.transition_rewards[name]
    lin_ptr, term_profile, term_coef = lins.arrays()
    # the distinct discount rows: one when costs and effects are discounted alike (the kernel
    # then totals each row once for both, not twice)
    costs, effects = timing.discount(False), timing.discount(True)
    same = np.array_equal(costs, effects)
    disc = costs[None] if same else np.stack([costs, effects])

    def rows(names):
        return np.array([int(n in timing.effects and not same) for n in names], dtype=np.int64)

    arrays = Arrays(
        B, lin_ptr, term_profile, term_coef, exit_from, exit_to, exit_lin, int_from, int_to,
        int_lin, event_lin, const, per_event, trans_reward, (trans_reward != 0).any(axis=(0, 1)),
        count_edge, count_lin, start_of(model, D), np.ascontiguousarray(timing.weights(), float),
        disc, rows(rewards), rows(trans), rows(counts),
    )  # fmt: skip
    return arrays, rewards, trans, counts, events


def _run_one(model: CohortModel, B, index, timing: Timing, keep_trace, keep_events):
    """One declared cohort through the kernel (None when a hazard was negative or not finite)."""
    arrays, *names = _arrays(model, B, index, timing)
    return _execute(arrays, names, model.start_rewards, keep_trace, keep_events)


def _execute(arrays: Arrays, names, start_rewards, keep_trace, keep_events):
    """The kernel on a cohort's :class:`Arrays` (``names``: of its state rewards, transition
    rewards, counts and events), its totals and start rewards as a :class:`CohortResult`;
    None when a hazard was negative or not finite."""
    rewards, trans, counts, events = names
    (D, S), T = arrays.start.shape, arrays.profiles.shape[1]
    out = Results(
        np.zeros((D, 2, len(rewards))),
        np.zeros((D, 2, len(trans))),
        np.zeros((D, 2, len(counts))),
        np.zeros((D, T + 1, S) if keep_trace else (1, 1, 1)),
        np.zeros((D, len(events), T) if keep_events else (1, 1, 1)),
        np.ones(D, dtype=np.bool_),
    )
    _kernel()(arrays, out, keep_trace, keep_events, 0, D)
    if not out.ok.all():
        return None
    disc_tot, und_tot = {}, {}
    for names, totals in ((rewards, out.reward), (trans, out.trans), (counts, out.count)):
        for k, name in enumerate(names):  # a name may be a state and a transition reward
            disc_tot[name] = disc_tot.get(name, 0.0) + totals[:, 0, k]
            und_tot[name] = und_tot.get(name, 0.0) + totals[:, 1, k]
    for name, r in start_rewards.items():  # once at time 0, undiscounted
        once = np.einsum("ds,ds->d", np.asarray(r, float), arrays.start)
        disc_tot[name] = disc_tot.get(name, 0.0) + once
        und_tot[name] = und_tot.get(name, 0.0) + once
    return CohortResult(
        discounted=disc_tot,
        undiscounted=und_tot,
        trace=out.trace if keep_trace else None,
        event_totals={n: out.events[:, v] for v, n in enumerate(events)} if keep_events else None,
    )


class Rerun:
    """One declared cohort made ready for the kernel once, then run again and again on subsets
    of its draws with hazards that move with a few unknowns per draw (a calibration's root
    finding): no declaration, array building or profile copy per run.

    ``base`` is the cohort with every unknown at 0 and ``units[k]`` the same cohort with unknown
    k at 1 and the others at 0. Every coefficient must be linear in the unknowns (hazards
    proportional to a rate are); a run at ``theta`` then takes ``coef(base) + sum_k theta_k
    (coef(units[k]) - coef(base))``, which is the cohort declared at ``theta`` to rounding.
    The cohorts must declare the same structure (edges, terms, start); only coefficients and
    rewards may differ (the rewards are ``base``'s)."""

    def __init__(
        self,
        base: CohortModel,
        units: Sequence[CohortModel],
        profiles: Mapping[str, np.ndarray],
        timing: Timing,
        keep_trace: bool = False,
        keep_events: bool = False,
    ):
        B, index = _profile_array(profiles, [base, *units], timing.n_cycles)
        _compile_with_notice()
        self._arrays, *self._names = _arrays(base, B, index, timing)
        self._start_rewards = base.start_rewards
        self._keep = (keep_trace, keep_events)
        slopes = []
        for m in units:
            a = _arrays(m, B, index, timing)[0]
            for field in Arrays._fields:
                if field in ("term_coef", "reward_const", "reward_event", "trans_reward"):
                    continue
                if not np.array_equal(getattr(a, field), getattr(self._arrays, field)):
                    raise CeaError(f"{m.label or 'cohort'}: a rerun's cohorts differ in {field}")
            slopes.append(a.term_coef - self._arrays.term_coef)
        self._slopes = slopes

    def run(self, theta: np.ndarray, idx: np.ndarray) -> CohortResult | None:
        """The cohort at ``theta`` (K, n) for the draws at positions ``idx`` (n,), as
        :func:`run_cohorts` gives it; None when a hazard was negative or not finite (the
        caller reruns it by the declaration, whose error names the draw)."""
        a = self._arrays
        every = len(idx) == len(a.start) and np.array_equal(idx, np.arange(len(idx)))
        take = (lambda x, axis: x) if every else (lambda x, axis: np.take(x, idx, axis=axis))
        coef = take(a.term_coef, 1)
        for k, slope in enumerate(self._slopes):
            coef = coef + theta[k] * take(slope, 1)
        sub = a._replace(
            profiles=take(a.profiles, 2),
            term_coef=coef,
            reward_const=take(a.reward_const, 0),
            reward_event=take(a.reward_event, 0),
            trans_reward=take(a.trans_reward, 0),
            start=take(a.start, 0),
        )
        start_rewards = {n: np.asarray(r, float)[idx] for n, r in self._start_rewards.items()}
        return _execute(sub, self._names, start_rewards, *self._keep)


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
    :func:`cea.engine.cohort.run_cohorts`)."""
    B, index = _profile_array(profiles, models, timing.n_cycles)
    _compile_with_notice()
    nonneg = {ONE} | {n for n, j in index.items() if (B[j] >= 0).all() and np.isfinite(B[j]).all()}
    out = []
    for m in models:
        res = _run_one(_without_unreachable(m, B.shape[2], nonneg), B, index, timing, keep_trace,
                       keep_events)  # fmt: skip
        # a negative or non-finite hazard: the NumPy backend names the draw (or decides)
        out.append(res or numpy_backend.run(m, profiles, timing, keep_trace, keep_events))
    return out


def _without_unreachable(model: CohortModel, D: int, nonneg: set[str]) -> CohortModel:
    """The cohort without the hazards, events and counts of the states no draw can enter (from
    its start states along its declared edges, whatever their hazards): those states hold no one
    in any cycle, so dropping them changes no result and saves the kernel their work (a cohort
    without IgRT never enters the IgRT states; one on IgRT from the start never leaves them for
    the states before). The kernel refuses a draw with a negative or non-finite hazard anywhere,
    so a cohort is left whole unless every dropped hazard is surely >= 0 and finite: its
    coefficients, and the profiles it uses (``nonneg``: those that are everywhere)."""
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
    for level in (model.exits, model.internal):
        for s, dests in level.items():
            if s in reached:
                continue
            for lin in dests.values():
                for name, c in lin.terms.items():
                    c = np.asarray(c, float)
                    if name not in nonneg or not (np.isfinite(c).all() and (c >= 0).all()):
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
    B = np.zeros((1, 1, 1))
    _run_one(m, B, {}, Timing(n_cycles=1, cycle_length_years=1.0), False, False)

"""Tests of the generic cohort engine: hand calculations, a plain-loop reference, invariants,
property-based checks, validation messages and a tunnel-state model with a closed form."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cea.engine.markov as markov_module
from cea.engine.markov import (
    CORRECTIONS,
    PROB_TOL,
    MarkovResult,
    cohort_trace,
    correction_weights,
    discount_factors,
    make_transition_array,
    run_markov,
)
from cea.errors import ModelInputError

ALIVE_DEAD_P_DIE = 0.1


def alive_dead(p_die: float = ALIVE_DEAD_P_DIE) -> np.ndarray:
    return np.array([[1.0 - p_die, p_die], [0.0, 1.0]])


def run_alive_dead(n_cycles: int, **kwargs) -> MarkovResult:
    kwargs.setdefault("state_rewards", {"ly": [1.0, 0.0]})
    return run_markov([1.0, 0.0], alive_dead(), n_cycles=n_cycles, **kwargs)


# --------------------------------------------------------------------------------------
# Hand-computed cases
# --------------------------------------------------------------------------------------


def test_life_years_counted_at_cycle_start():
    # alive 1, 0.9, 0.81 at rows 0..2, row 3 unused: 1 + 0.9 + 0.81
    res = run_alive_dead(3, correction="start")
    assert res.undiscounted["ly"] == pytest.approx(2.71, rel=1e-12)
    np.testing.assert_allclose(res.trace[:, 0], [1.0, 0.9, 0.81, 0.729], rtol=1e-12)


def test_none_is_the_same_as_start():
    assert run_alive_dead(3, correction="none").undiscounted["ly"] == pytest.approx(2.71, rel=1e-12)


def test_life_years_counted_at_cycle_end():
    # rows 1..3: 0.9 + 0.81 + 0.729
    res = run_alive_dead(3, correction="end")
    assert res.undiscounted["ly"] == pytest.approx(0.9 + 0.81 + 0.729, rel=1e-12)


@pytest.mark.parametrize("name", ["half_cycle", "trapezoid", "life_table"])
def test_life_years_half_cycle(name):
    # 0.5 * 1 + 0.9 + 0.81 + 0.5 * 0.729 = 2.5745
    res = run_alive_dead(3, correction=name)
    assert res.undiscounted["ly"] == pytest.approx(2.5745, rel=1e-12)
    np.testing.assert_array_equal(res.weights, [0.5, 1.0, 1.0, 0.5])


def test_discounting_by_hand_two_cycles():
    # cost 1000 per cycle alive, 5% per year, 1-year cycles, counted at cycle start:
    # 1000 * 1 + 1000 * 0.9 / 1.05 = 1857.142857...
    res = run_alive_dead(
        2,
        state_rewards={"cost": [1000.0, 0.0], "ly": [1.0, 0.0]},
        effects=["ly"],
        discount_rate_costs=0.05,
        discount_rate_effects=0.0,
        correction="start",
    )
    assert res.discounted["cost"] == pytest.approx(1000 + 900 / 1.05, rel=1e-12)
    assert res.undiscounted["cost"] == pytest.approx(1900.0, rel=1e-12)
    assert res.discounted["ly"] == pytest.approx(1.9, rel=1e-12)  # effects undiscounted
    np.testing.assert_allclose(res.discount_costs, [1, 1 / 1.05, 1 / 1.05**2], rtol=1e-15)


def test_discounting_end_counting_from_cycle_one():
    # DMHEE style: rows 1 and 2 counted, row t discounted t years: 900/1.05 + 810/1.05^2
    res = run_alive_dead(
        2, state_rewards={"cost": [1000.0, 0.0]}, discount_rate_costs=0.05, correction="end"
    )
    assert res.discounted["cost"] == pytest.approx(900 / 1.05 + 810 / 1.05**2, rel=1e-12)


def test_transition_reward_by_hand():
    # 100 per death; deaths 0.1 in cycle 0 and 0.09 in cycle 1, each discounted at the end
    # of its cycle: 10 / 1.05 + 9 / 1.05^2 = 17.687075...
    death_cost = np.array([[0.0, 100.0], [0.0, 0.0]])
    res = run_alive_dead(
        2,
        state_rewards={},
        transition_rewards={"death_cost": death_cost},
        discount_rate_costs=0.05,
    )
    assert res.discounted["death_cost"] == pytest.approx(10 / 1.05 + 9 / 1.05**2, rel=1e-12)
    assert res.undiscounted["death_cost"] == pytest.approx(19.0, rel=1e-12)
    # same flows discounted at the start of their cycle: 10 + 9 / 1.05
    res = run_alive_dead(
        2,
        state_rewards={},
        transition_rewards={"death_cost": death_cost},
        discount_rate_costs=0.05,
        transition_timing="start",
    )
    assert res.discounted["death_cost"] == pytest.approx(10 + 9 / 1.05, rel=1e-12)


def test_transition_reward_weighted_by_row_correction():
    # DARTH convention: flows carry the weight of their landing row. Half-cycle, 2 cycles:
    # 100 per death, 10 deaths' worth on row 1 (w = 1), 9 on row 2 (w = 1/2): 10 + 4.5
    res = run_alive_dead(
        2,
        state_rewards={},
        transition_rewards={"d": [[0.0, 100.0], [0.0, 0.0]]},
        weight_transition_rewards=True,
    )
    assert res.undiscounted["d"] == pytest.approx(14.5, rel=1e-12)


def test_transition_reward_on_the_diagonal():
    # 1 per person staying alive: 0.9 + 0.81 over 2 cycles, undiscounted
    stay = np.array([[1.0, 0.0], [0.0, 0.0]])
    res = run_alive_dead(2, state_rewards={}, transition_rewards={"stay": stay})
    assert res.undiscounted["stay"] == pytest.approx(1.71, rel=1e-12)


def test_start_reward_counted_once_undiscounted():
    # one-off 500 for the starting cohort in 'alive', never discounted even with a
    # mid-cycle discount offset; plus state cost 10 per cycle, start counting, 2 cycles:
    # 500 + 10 / 1.05^0.5 + 9 / 1.05^1.5
    res = run_alive_dead(
        2,
        state_rewards={"cost": [10.0, 0.0]},
        start_rewards={"cost": [500.0, 0.0]},
        discount_rate_costs=0.05,
        discount_offset_cycles=0.5,
        correction="start",
    )
    expected = 500 + 10 / 1.05**0.5 + 9 / 1.05**1.5
    assert res.discounted["cost"] == pytest.approx(expected, rel=1e-12)
    assert res.undiscounted["cost"] == pytest.approx(519.0, rel=1e-12)


def test_reward_name_in_three_dicts_is_summed():
    # state 1 per cycle alive (start counting: 1 + 0.9), transition 100 per death (10 + 9),
    # start 7: total 1.9 + 19 + 7 = 27.9 undiscounted
    res = run_alive_dead(
        2,
        state_rewards={"x": [1.0, 0.0]},
        transition_rewards={"x": [[0.0, 100.0], [0.0, 0.0]]},
        start_rewards={"x": [7.0, 0.0]},
        correction="start",
    )
    assert res.undiscounted["x"] == pytest.approx(27.9, rel=1e-12)


@pytest.mark.parametrize(
    ("alignment", "expected"),
    [
        # rows take cycles [0, 1, 2, 2]: 0.5*1*10 + 0.9*20 + 0.81*30 + 0.5*0.729*30 = 58.235
        ("start", 58.235),
        # rows take cycles [0, 0, 1, 2]: 0.5*1*10 + 0.9*10 + 0.81*20 + 0.5*0.729*30 = 41.135
        ("end", 41.135),
    ],
)
def test_per_cycle_reward_alignment(alignment, expected):
    per_cycle = np.array([[10.0, 0.0], [20.0, 0.0], [30.0, 0.0]])  # (T, S)
    res = run_alive_dead(
        3, state_rewards={"c": per_cycle}, correction="half_cycle", reward_alignment=alignment
    )
    assert res.undiscounted["c"] == pytest.approx(expected, rel=1e-12)


def test_per_row_reward():
    # (T+1, S) indexed by row; start counting over 2 cycles: 1*5 + 0.9*6 (row 2 weight 0)
    per_row = np.array([[5.0, 0.0], [6.0, 0.0], [1e6, 0.0]])
    res = run_alive_dead(2, state_rewards={"c": per_row}, correction="start")
    assert res.undiscounted["c"] == pytest.approx(5 + 5.4, rel=1e-12)


def test_explicit_weights():
    # 0.2*1 + 0.3*0.9 + 0.4*0.81 + 0.1*0.729 = 0.8669
    res = run_alive_dead(3, correction=[0.2, 0.3, 0.4, 0.1])
    assert res.undiscounted["ly"] == pytest.approx(0.8669, rel=1e-12)


@pytest.mark.parametrize("n_cycles", [2, 4, 20, 130])
def test_simpson_weights_even(n_cycles):
    expected = np.r_[1.0, np.tile([4.0, 2.0], n_cycles // 2)[:-1], 1.0] / 3.0
    np.testing.assert_array_equal(correction_weights("simpson", n_cycles), expected)


@pytest.mark.parametrize("n_cycles", [1, 3, 5, 7])
def test_simpson_weights_odd_match_scipy(n_cycles):
    from scipy.integrate import simpson

    y = np.arange(n_cycles + 1.0) ** 3 - 2.0
    w = correction_weights("simpson", n_cycles)
    assert w @ y == pytest.approx(simpson(y, dx=1.0), rel=1e-12)


@pytest.mark.parametrize("n_cycles", [2, 4, 5, 6])
def test_simpson_integrates_quadratic_reward_exactly(n_cycles):
    # one absorbing state (occupancy 1), reward t^2 at row t: integral_0^T t^2 dt = T^3 / 3
    # (exact for Simpson, also for scipy's odd-interval rule); the trapezoid rule is not
    rows = (np.arange(n_cycles + 1.0) ** 2)[:, None]
    res = run_markov(
        [1.0], [[1.0]], n_cycles=n_cycles, state_rewards={"q": rows}, correction="simpson"
    )
    assert res.undiscounted["q"] == pytest.approx(n_cycles**3 / 3, rel=1e-12)
    trap = run_markov([1.0], [[1.0]], n_cycles=n_cycles, state_rewards={"q": rows})
    assert trap.undiscounted["q"] != pytest.approx(n_cycles**3 / 3, rel=1e-6)


def test_simpson_integrates_quadratic_occupancy_exactly():
    # deterministic dynamics with quadratic occupancy: a 'clock' state moves mass so that
    # the alive share is 1 - t^2/16 at row t: P_k(alive -> dead) = 1 - a(k+1)/a(k)
    n_cycles = 4
    alive = 1 - np.arange(n_cycles + 1.0) ** 2 / 16  # 1, 15/16, 12/16, 7/16, 0
    P = np.zeros((n_cycles, 2, 2))
    P[:, 0, 0] = alive[1:] / alive[:-1]
    P[:, 0, 1] = 1 - P[:, 0, 0]
    P[:, 1, 1] = 1.0
    res = run_markov([1.0, 0.0], P, state_rewards={"ly": [1.0, 0.0]}, correction="simpson")
    # integral_0^4 (1 - t^2/16) dt = 4 - 64/48 = 8/3
    assert res.undiscounted["ly"] == pytest.approx(8 / 3, rel=1e-12)


def test_discount_factors_by_hand():
    np.testing.assert_allclose(
        discount_factors(0.035, 3, 1.0), [1, 1 / 1.035, 1 / 1.035**2], rtol=1e-15
    )
    # offset 1: first row already one cycle away; half-year cycles
    np.testing.assert_allclose(
        discount_factors(0.035, 2, 0.5, offset_cycles=1.0), [1.035**-0.5, 1.035**-1], rtol=1e-15
    )
    # monthly cycles discounted in whole-year steps: rows 0..11 -> 1, rows 12..23 -> 1/1.035
    f = discount_factors(0.035, 25, 1 / 12, step="annual")
    np.testing.assert_allclose(f[:12], 1.0, rtol=0)
    np.testing.assert_allclose(f[12:24], 1 / 1.035, rtol=1e-15)
    assert f[24] == pytest.approx(1 / 1.035**2, rel=1e-15)
    # 0.1-year cycles: row 30 is 3 years even though 30 * 0.1 = 3.0000000000000004
    g = discount_factors(0.05, 31, 0.1, step="annual")
    assert g[29] == pytest.approx(1 / 1.05**2, rel=1e-15)
    assert g[30] == pytest.approx(1 / 1.05**3, rel=1e-15)


def test_discount_per_cycle_rate():
    # DARTH v_dwc: 4% a year on half-year cycles is 2% per cycle, compounded per cycle
    np.testing.assert_allclose(
        discount_factors(0.04, 3, 0.5, step="per_cycle_rate"),
        [1, 1 / 1.02, 1 / 1.02**2],
        rtol=1e-15,
    )
    # with annual cycles it is the ordinary factor
    np.testing.assert_allclose(
        discount_factors(0.04, 4, 1.0, step="per_cycle_rate"),
        discount_factors(0.04, 4, 1.0),
        rtol=1e-15,
    )


def test_discount_continuous():
    # exp(-0.03 * t * 0.25) for quarter-year cycles
    np.testing.assert_allclose(
        discount_factors(0.03, 3, 0.25, step="continuous"),
        [1, np.exp(-0.0075), np.exp(-0.015)],
        rtol=1e-15,
    )


def test_discount_rate_must_exceed_minus_one():
    with pytest.raises(ModelInputError, match="> -1"):
        discount_factors(-1.0, 3, 1.0)


def test_cycle_length_scales_discounting():
    # half-year cycles at 4% a year: row t discounted by 1.04^(-t/2)
    res = run_alive_dead(
        2,
        state_rewards={"c": [1.0, 0.0]},
        discount_rate_costs=0.04,
        cycle_length_years=0.5,
        correction="end",
    )
    assert res.discounted["c"] == pytest.approx(0.9 / 1.04**0.5 + 0.81 / 1.04, rel=1e-12)


def test_per_cycle_identities():
    res = run_alive_dead(
        4,
        state_rewards={"c": [3.0, 1.0]},
        transition_rewards={"c": [[0.0, 50.0], [0.0, 0.0]]},
        start_rewards={"c": [9.0, 0.0]},
        discount_rate_costs=0.05,
        keep_per_cycle=True,
    )
    pc = res.per_cycle["c"]
    assert pc.shape == (5,)
    assert pc.sum() == pytest.approx(res.undiscounted["c"], rel=1e-13)
    assert (pc * res.discount_costs).sum() == pytest.approx(res.discounted["c"], rel=1e-13)
    assert run_alive_dead(4).per_cycle is None


def test_make_transition_array_layout():
    P = make_transition_array(3, 5, 2)
    assert P.shape == (3, 5, 2, 2)
    assert (P == 0).all()
    assert P.strides[0] == P.itemsize  # draws innermost
    assert P[:, :, 0, 1].strides == (P.itemsize, 2 * 2 * 3 * P.itemsize)


def test_cohort_trace_and_any_cohort_size():
    trace = cohort_trace([1000.0, 0.0], alive_dead(), 3)
    np.testing.assert_allclose(trace[:, 0], [1000, 900, 810, 729], rtol=1e-12)


# --------------------------------------------------------------------------------------
# Independent plain-loop reference
# --------------------------------------------------------------------------------------


def reference_weights(correction, n_cycles):
    if not isinstance(correction, str):
        return [float(v) for v in correction]
    if correction in ("none", "start"):
        return [1.0] * n_cycles + [0.0]
    if correction == "end":
        return [0.0] + [1.0] * n_cycles
    if correction in ("half_cycle", "trapezoid", "life_table"):
        return [0.5] + [1.0] * (n_cycles - 1) + [0.5]
    assert correction == "simpson" and n_cycles % 2 == 0
    return [1 / 3] + [(4 / 3 if t % 2 else 2 / 3) for t in range(1, n_cycles)] + [1 / 3]


def reference_run(
    start,
    P,
    state,
    trans,
    once,
    *,
    correction,
    rates,
    effects,
    cl,
    offset,
    timing,
    align,
    weighted=False,
):
    """Plain Python loops over draws, cycles and states on nested lists; no numpy.

    start (D, S); P (D, T, S, S); state: name -> ("row", (D, T+1, S)) or
    ("cycle", (D, T, S)); trans: name -> (D, T, S, S); once: name -> (D, S).
    weighted: transition rewards times the correction weight of their row (DARTH).
    """
    D, T, S = len(P), len(P[0]), len(P[0][0])
    w = reference_weights(correction, T)
    out = {}
    for name in {*state, *trans, *once}:
        rate = rates[1] if name in effects else rates[0]
        totals_d, totals_u = [], []
        for d in range(D):
            x = [list(map(float, start[d]))]
            for k in range(T):
                x.append([sum(x[k][i] * P[d][k][i][j] for i in range(S)) for j in range(S)])
            disc = [(1 + rate) ** -((t + offset) * cl) for t in range(T + 1)]
            tot_d = tot_u = 0.0
            if name in state:
                kind, R = state[name]
                for t in range(T + 1):
                    if kind == "row":
                        r = R[d][t]
                    elif align == "start":
                        r = R[d][min(t, T - 1)]
                    else:
                        r = R[d][max(t - 1, 0)]
                    v = w[t] * sum(x[t][s] * r[s] for s in range(S))
                    tot_d += v * disc[t]
                    tot_u += v
            if name in trans:
                R = trans[name]
                for k in range(T):
                    flow = sum(
                        x[k][i] * P[d][k][i][j] * R[d][k][i][j] for i in range(S) for j in range(S)
                    )
                    row = k + 1 if timing == "end" else k
                    if weighted:
                        flow *= w[row]
                    tot_d += flow * disc[row]
                    tot_u += flow
            if name in once:
                v = sum(start[d][s] * once[name][d][s] for s in range(S))
                tot_d += v
                tot_u += v
            totals_d.append(tot_d)
            totals_u.append(tot_u)
        out[name] = (totals_d, totals_u)
    return out


def random_stochastic(rng, shape):
    """Random row-stochastic array with some exact zeros (absorbing-like sparsity)."""
    a = rng.random(shape) * (rng.random(shape) > 0.3)
    a[..., 0] += 1e-3  # no all-zero rows
    return a / a.sum(-1, keepdims=True)


@pytest.fixture(scope="module")
def batched_case():
    rng = np.random.default_rng(20240601)
    D, T, S = 50, 20, 5
    start = rng.random((D, S)) * 100
    P = random_stochastic(rng, (D, T, S, S))
    inputs = {
        "start": start,
        "P": P,
        "state_const": rng.random(S) * 1000,  # (S,)
        "state_draw_cycle": rng.random((D, T, S)),  # per draw, per cycle
        "state_draw_row": rng.random((D, T + 1, S)),  # per draw, per row
        "state_cycle": rng.random((T, S)) * 10,  # shared, per cycle
        "state_draw_const": rng.random((D, 1, S)),
        "trans_const": rng.random((S, S)) * 500,
        "trans_draw": rng.random((D, T, S, S)) * 50,
        "once": rng.random((D, S)) * 20,
    }
    return inputs


CASES = [
    ("half_cycle", "end", "start", False),
    ("simpson", "start", "end", False),
    ("end", "end", "end", False),
    ("start", "start", "start", False),
    ([0.3] * 21, "end", "start", False),
    ("simpson", "end", "start", True),
    ("half_cycle", "start", "end", True),
]


def with_layout(P: np.ndarray, layout: str, monkeypatch):
    """The same (D, T, S, S) numbers stored three ways, to exercise the three trace paths, or
    given as a function of the cycle: returning a C-ordered (D, S, S) view of each cycle
    (``function``), or refilling one buffer with draws innermost (``function_buffer``)."""
    if layout == "function":
        return lambda k: P[:, k]
    if layout == "function_buffer":
        buffer = make_transition_array(P.shape[0], 1, P.shape[2])[:, 0]

        def refill(k):
            buffer[...] = P[:, k]
            return buffer

        return refill
    if layout == "draws_innermost":
        out = make_transition_array(*P.shape[:3])
        out[...] = P
        assert out.strides[0] == out.itemsize
        return out
    if layout == "draws_outermost_blocks":
        monkeypatch.setattr(markov_module, "_TRACE_BLOCK_DRAWS", 7)  # 50 draws -> 8 blocks
    return P


LAYOUTS = [
    "draws_outermost",
    "draws_outermost_blocks",
    "draws_innermost",
    "function",
    "function_buffer",
]


@pytest.mark.parametrize("keep_trace", [True, False])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("correction", "timing", "align", "weighted"), CASES)
def test_vectorized_matches_reference_loop(
    batched_case, correction, timing, align, weighted, layout, keep_trace, monkeypatch
):
    """Every trace path, and the totals-only loop (keep_trace=False; with draws innermost it
    stores no trace), against the reference loop."""
    c = batched_case
    D, T, S = c["P"].shape[0], c["P"].shape[1], c["P"].shape[2]
    res = run_markov(
        c["start"],
        with_layout(c["P"], layout, monkeypatch),
        n_cycles=T if layout.startswith("function") else None,
        state_rewards={
            "cost": c["state_const"],
            "qaly": c["state_draw_cycle"],
            "other": c["state_draw_row"],
            "drug": c["state_cycle"],
            "u2": c["state_draw_const"],
        },
        transition_rewards={"cost": c["trans_const"], "event": c["trans_draw"]},
        start_rewards={"cost": c["once"]},
        effects=["qaly", "u2"],
        discount_rate_costs=0.035,
        discount_rate_effects=0.015,
        cycle_length_years=0.5,
        discount_offset_cycles=0.25,
        correction=correction,
        transition_timing=timing,
        reward_alignment=align,
        weight_transition_rewards=weighted,
        keep_trace=keep_trace,
    )
    assert (res.trace is None) == (not keep_trace)
    tile = lambda a: np.broadcast_to(a, (D,) + a.shape).tolist()  # noqa: E731
    ref = reference_run(
        c["start"].tolist(),
        c["P"].tolist(),
        {
            "cost": ("row", np.broadcast_to(c["state_const"], (D, T + 1, S)).tolist()),
            "qaly": ("cycle", c["state_draw_cycle"].tolist()),
            "other": ("row", c["state_draw_row"].tolist()),
            "drug": ("cycle", tile(c["state_cycle"])),
            "u2": ("row", np.broadcast_to(c["state_draw_const"], (D, T + 1, S)).tolist()),
        },
        {
            "cost": np.broadcast_to(c["trans_const"], (D, T, S, S)).tolist(),
            "event": c["trans_draw"].tolist(),
        },
        {"cost": c["once"].tolist()},
        correction=correction,
        rates=(0.035, 0.015),
        effects={"qaly", "u2"},
        cl=0.5,
        offset=0.25,
        timing=timing,
        align=align,
        weighted=weighted,
    )
    assert set(res.discounted) == set(ref)
    for name, (disc, undisc) in ref.items():
        assert res.discounted[name].shape == (D,)
        np.testing.assert_allclose(res.discounted[name], disc, rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(res.undiscounted[name], undisc, rtol=1e-12, err_msg=name)


def test_batched_equals_unbatched_per_draw(batched_case):
    c = batched_case
    kw = dict(
        transition_rewards={"c": c["trans_const"]},
        discount_rate_costs=0.03,
        keep_per_cycle=True,
    )
    res = run_markov(c["start"], c["P"], state_rewards={"c": c["state_const"]}, **kw)
    for d in (0, 17, 49):
        one = run_markov(c["start"][d], c["P"][d], state_rewards={"c": c["state_const"]}, **kw)
        assert isinstance(one.discounted["c"], float)
        assert one.trace.shape == (21, 5)
        np.testing.assert_allclose(res.trace[d], one.trace, rtol=1e-13)
        assert res.discounted["c"][d] == pytest.approx(one.discounted["c"], rel=1e-12)
        np.testing.assert_allclose(res.per_cycle["c"][d], one.per_cycle["c"], rtol=1e-12)


def test_shared_P_with_batched_start_and_broadcast_views(batched_case):
    # P shared across draws (3-D) with a (D, S) start, and the same P as a zero-stride
    # (D, T, S, S) broadcast view, and a (D, 1, S, S) constant P: all agree with the loop.
    c = batched_case
    D = c["start"].shape[0]
    P3 = c["P"][0]
    a = run_markov(c["start"], P3, state_rewards={"c": c["state_const"]})
    b = run_markov(
        c["start"], np.broadcast_to(P3, (D,) + P3.shape), state_rewards={"c": c["state_const"]}
    )
    np.testing.assert_allclose(a.trace, b.trace, rtol=1e-13)
    np.testing.assert_allclose(a.discounted["c"], b.discounted["c"], rtol=1e-13)
    const = run_markov(c["start"], c["P"][:, :1], n_cycles=7, state_rewards={"c": c["state_const"]})
    for d in (0, 9):
        x = c["start"][d]
        for k in range(7):
            x = x @ c["P"][d, 0]
            np.testing.assert_allclose(const.trace[d, k + 1], x, rtol=1e-12)


# --------------------------------------------------------------------------------------
# Invariants (TECH-VER black-box tests)
# --------------------------------------------------------------------------------------


def test_mass_conserved_every_cycle(batched_case):
    c = batched_case
    trace = cohort_trace(c["start"], c["P"])
    np.testing.assert_allclose(trace.sum(-1), c["start"].sum(-1)[:, None] * np.ones(21), rtol=1e-12)


def test_discounted_not_above_undiscounted(batched_case):
    c = batched_case
    res = run_markov(
        c["start"],
        c["P"],
        state_rewards={"c": c["state_const"], "q": c["state_draw_row"]},
        transition_rewards={"c": c["trans_draw"]},
        start_rewards={"c": c["once"]},
        effects=["q"],
        discount_rate_costs=0.035,
        discount_rate_effects=0.015,
    )
    for n in ("c", "q"):
        assert (res.discounted[n] <= res.undiscounted[n]).all()
        assert (res.discounted[n] < res.undiscounted[n]).all()  # strictly: mass moves on


def test_rate_zero_gives_discounted_equal_undiscounted(batched_case):
    c = batched_case
    res = run_markov(
        c["start"],
        c["P"],
        state_rewards={"c": c["state_draw_cycle"]},
        transition_rewards={"c": c["trans_const"]},
        correction="simpson",
    )
    np.testing.assert_array_equal(res.discounted["c"], res.undiscounted["c"])
    np.testing.assert_array_equal(res.discount_costs, 1.0)


def test_utility_one_gives_qaly_equal_ly(batched_case):
    c = batched_case
    alive = np.array([1.0, 1.0, 1.0, 1.0, 0.0])
    res = run_markov(
        c["start"],
        c["P"],
        state_rewards={"ly": alive, "qaly": np.broadcast_to(alive, (50, 21, 5))},
        effects=["ly", "qaly"],
        discount_rate_effects=0.035,
    )
    np.testing.assert_allclose(res.discounted["qaly"], res.discounted["ly"], rtol=1e-13)


def test_identical_inputs_identical_outputs(batched_case):
    c = batched_case
    kw = dict(
        state_rewards={"c": c["state_draw_cycle"]},
        transition_rewards={"c": c["trans_draw"]},
        discount_rate_costs=0.035,
        keep_per_cycle=True,
    )
    a = run_markov(c["start"], c["P"], **kw)
    b = run_markov(c["start"].copy(), c["P"].copy(), **kw)
    np.testing.assert_array_equal(a.trace, b.trace)
    np.testing.assert_array_equal(a.discounted["c"], b.discounted["c"])
    np.testing.assert_array_equal(a.per_cycle["c"], b.per_cycle["c"])


def test_inputs_not_modified(batched_case):
    c = batched_case
    P = c["P"].copy()
    start = c["start"].copy()
    run_markov(start, P, state_rewards={"c": c["state_const"]})
    np.testing.assert_array_equal(P, c["P"])
    np.testing.assert_array_equal(start, c["start"])


# --------------------------------------------------------------------------------------
# Property-based
# --------------------------------------------------------------------------------------


@st.composite
def markov_inputs(draw):
    S = draw(st.integers(1, 4))
    T = draw(st.integers(1, 6))
    D = draw(st.integers(1, 3))
    unit = st.floats(0.0, 1.0, allow_nan=False, allow_infinity=False)
    raw = np.array(draw(st.lists(unit, min_size=D * T * S * S, max_size=D * T * S * S)))
    raw = raw.reshape(D, T, S, S)
    raw[..., 0] += 0.01  # rows are never all zero
    P = raw / raw.sum(-1, keepdims=True)
    start = np.array(draw(st.lists(st.floats(0.0, 1000.0), min_size=D * S, max_size=D * S)))
    cost = np.array(draw(st.lists(st.floats(-100.0, 100.0), min_size=S, max_size=S)))
    tcost = np.array(draw(st.lists(st.floats(0.0, 100.0), min_size=S * S, max_size=S * S)))
    correction = draw(st.sampled_from(["half_cycle", "start", "end", "life_table"]))
    timing = draw(st.sampled_from(["end", "start"]))
    if draw(st.booleans()):  # same numbers stored with draws innermost (other trace path)
        inner = make_transition_array(D, T, S)
        inner[...] = P
        P = inner
    return start.reshape(D, S), P, cost, tcost.reshape(S, S), correction, timing


@settings(max_examples=60, deadline=None)
@given(markov_inputs())
def test_property_mass_and_reference(inputs):
    start, P, cost, tcost, correction, timing = inputs
    D, T, S = P.shape[:3]
    res = run_markov(
        start,
        P,
        n_cycles=T,
        state_rewards={"c": cost},
        transition_rewards={"t": tcost},
        discount_rate_costs=0.04,
        correction=correction,
        transition_timing=timing,
    )
    np.testing.assert_allclose(
        res.trace.sum(-1), np.repeat(start.sum(-1)[:, None], T + 1, 1), rtol=1e-10, atol=1e-9
    )
    assert (res.trace >= -1e-9).all()
    ref = reference_run(
        start.tolist(),
        P.tolist(),
        {"c": ("row", np.broadcast_to(cost, (D, T + 1, S)).tolist())},
        {"t": np.broadcast_to(tcost, (D, T, S, S)).tolist()},
        {},
        correction=correction,
        rates=(0.04, 0.0),
        effects=set(),
        cl=1.0,
        offset=0.0,
        timing=timing,
        align="start",
    )
    for name, (disc, undisc) in ref.items():
        np.testing.assert_allclose(res.discounted[name], disc, rtol=1e-9, atol=1e-7)
        np.testing.assert_allclose(res.undiscounted[name], undisc, rtol=1e-9, atol=1e-7)


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


def valid_batched(D=5, T=15, S=3):
    rng = np.random.default_rng(3)
    return rng.random((D, S)), random_stochastic(rng, (D, T, S, S))


def test_row_sum_error_names_label_draw_cycle_state():
    start, P = valid_batched()
    P[3, 12, 1, 1] += 0.02
    P[4, 2, 0, 0] += 0.5  # a later draw: not the first offending entry
    with pytest.raises(ModelInputError) as err:
        run_markov(start, P, label="strategy 'primary_ivig'", state_names=["a", "b", "c"])
    msg = str(err.value)
    assert "strategy 'primary_ivig'" in msg
    assert "draw 3" in msg and "cycle 12" in msg and "'b'" in msg
    assert "sum to 1.02" in msg and "1e-09" in msg
    assert "\n" not in msg


def test_negative_probability_error():
    start, P = valid_batched()
    P[2, 5, 0, 2] -= P[2, 5, 0, 2] + 0.1  # -0.1
    P[2, 5, 0, 0] += P[2, 5, 0, 2] * -1  # keep the row sum at 1
    with pytest.raises(ModelInputError, match=r"draw 2, cycle 5, from state 0 to state 2 is -0\.1"):
        run_markov(start, P)


def test_nan_probability_error():
    start, P = valid_batched()
    P[0, 1, 2, 0] = np.nan
    with pytest.raises(ModelInputError, match=r"draw 0, cycle 1, from state 2 to state 0 is nan"):
        run_markov(start, P)


@pytest.mark.parametrize(("draws", "cycles"), [(1, 5), (3, 1)])
def test_totals_only_with_one_draw_or_one_matrix_for_every_cycle(draws, cycles):
    """keep_trace=False with P stored with draws innermost, for one draw, and for one matrix
    per draw used in every cycle (n_cycles given): the totals of the run that keeps its trace."""
    P = make_transition_array(draws, cycles, 2)
    P[...] = np.array([[0.9, 0.1], [0.0, 1.0]])
    kw = dict(
        n_cycles=4,
        state_rewards={"ly": np.array([1.0, 0.0])},
        transition_rewards={"x": np.array([[0.0, 2.0], [0.0, 0.0]])},
        start_rewards={"x": np.array([1.0, 0.0])},
        discount_rate_costs=0.05,
    )
    if cycles > 1:
        kw["n_cycles"] = cycles
    start = np.tile([0.6, 0.4], (draws, 1))
    with_trace = run_markov(start, P, **kw)
    totals = run_markov(start, P, keep_trace=False, **kw)
    assert totals.trace is None
    for name in ("ly", "x"):
        np.testing.assert_allclose(totals.discounted[name], with_trace.discounted[name], rtol=1e-13)
        np.testing.assert_allclose(
            totals.undiscounted[name], with_trace.undiscounted[name], rtol=1e-13
        )


@pytest.mark.parametrize("keep_trace", [True, False])
def test_draws_innermost_errors_name_the_same_entry(keep_trace):
    """P stored with draws innermost is checked cycle by cycle as the trace (or the
    totals-only loop) goes: the message names the same first bad entry as the full check."""
    start, P = valid_batched()
    sums = P.copy()
    sums[3, 12, 1, 1] += 0.02
    sums[4, 2, 0, 0] += 0.5  # an earlier cycle, a later draw: not the first offending entry
    nan = P.copy()
    nan[1, 9, 2, 0] = np.nan
    for bad in (sums, nan):
        inner = make_transition_array(*bad.shape[:3])
        inner[...] = bad
        kw = dict(state_rewards={"c": np.ones(3)}, keep_trace=keep_trace)
        with pytest.raises(ModelInputError) as expected:
            run_markov(start, bad, **kw)
        with pytest.raises(ModelInputError) as err:
            run_markov(start, inner, **kw)
        assert str(err.value) == str(expected.value)


@pytest.mark.parametrize("keep_trace", [True, False])
def test_function_errors_name_the_same_entry_as_the_array(keep_trace):
    """P as a function of the cycle, with a bad row sum or a NaN in some cycle: the message
    names the draw, cycle and states the array's does, whether the cycles are stacked (a kept
    trace) or asked for one by one."""
    start, P = valid_batched()
    for draw, cycle, i, j in ((3, 12, 1, 1), (1, 9, 2, 0), (0, 0, 0, 2)):
        bad = P.copy()
        bad[draw, cycle, i, j] = np.nan if j == 0 else bad[draw, cycle, i, j] + 0.02
        kw = dict(state_rewards={"c": np.ones(3)}, keep_trace=keep_trace, label="x")
        with pytest.raises(ModelInputError) as expected:
            run_markov(start, bad, **kw)
        with pytest.raises(ModelInputError) as err:
            run_markov(start, lambda k, bad=bad: bad[:, k], n_cycles=bad.shape[1], **kw)
        assert str(err.value) == str(expected.value)
        assert f"draw {draw}, cycle {cycle}, from state {i}" in str(err.value)


def test_function_asked_once_per_cycle_in_order():
    """With the totals only, P(k) is asked for once per cycle, 0 to T - 1, in order (so a
    buffer refilled per call is safe); with the trace kept, likewise once each, to stack."""
    start, P = valid_batched()
    for keep_trace in (False, True):
        asked = []
        run_markov(start, lambda k, asked=asked: asked.append(k) or P[:, k], n_cycles=P.shape[1],
                   state_rewards={"c": np.ones(3)}, keep_trace=keep_trace)  # fmt: skip
        assert asked == list(range(P.shape[1]))


def test_function_of_one_matrix_for_every_draw():
    """P(k) of shape (S, S) with a batched start: the same totals as the stored (T, S, S)
    array, without and with the trace."""
    rng = np.random.default_rng(5)
    start, P = valid_batched()
    shared = random_stochastic(rng, (P.shape[1], 3, 3))
    kw = dict(state_rewards={"c": np.array([1.0, 2.0, 0.0])},
              transition_rewards={"e": np.array([[0, 3.0, 0], [0, 0, 1.0], [0, 0, 0]])},
              discount_rate_costs=0.04)  # fmt: skip
    stored = run_markov(start, shared, **kw)
    for keep_trace in (False, True):
        res = run_markov(start, lambda k: shared[k], n_cycles=len(shared), keep_trace=keep_trace,
                         **kw)  # fmt: skip
        for name in ("c", "e"):
            np.testing.assert_allclose(res.discounted[name], stored.discounted[name], rtol=1e-13)
    np.testing.assert_array_equal(res.trace, stored.trace)


def test_function_stores_no_array_of_every_cycle():
    """The point of a function P: with the totals only, memory does not grow with the cycles
    (the (D, T, S, S) array of these sizes would take 51.2 MB; the run's peak is under a
    tenth of it), and the totals are those of the stored array."""
    D, T, S = 2000, 200, 4
    rng = np.random.default_rng(11)
    P = random_stochastic(rng, (D, 1, S, S))[:, 0]  # one (D, S, S) block, reused every cycle
    start = np.eye(S)[0]
    kw = dict(state_rewards={"c": np.arange(S, dtype=float)}, discount_rate_costs=0.035)
    tracemalloc.start()
    try:
        res = run_markov(start, lambda k: P, n_cycles=T, keep_trace=False, **kw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < D * T * S * S * 8 / 10
    stored = run_markov(start, np.broadcast_to(P[:, None], (D, T, S, S)), **kw)
    np.testing.assert_allclose(res.discounted["c"], stored.discounted["c"], rtol=1e-12)


@pytest.mark.parametrize(
    ("fn", "n_cycles", "pattern"),
    [
        (lambda k: np.eye(2), None, r"n_cycles is required when P is a function of the cycle"),
        (lambda k: np.ones(3), 4, r"P\(0\) has shape \(3,\); a function P must return"),
        (lambda k: np.eye(2) if k < 2 else np.eye(3), 4,
         r"P\(2\) has shape \(3, 3\) but P\(0\) has \(2, 2\)"),
        (lambda k: "x", 4, r"P\(0\) \(transition probabilities of cycle 0\) is not a numeric"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("keep_trace", [True, False])
def test_function_shape_errors(fn, n_cycles, pattern, keep_trace):
    with pytest.raises(ModelInputError, match=pattern):
        run_markov([1.0, 0.0], fn, n_cycles=n_cycles, keep_trace=keep_trace)


def test_probability_above_one_is_reported_even_when_row_sums_to_one():
    P = np.array([[1.5, -0.5], [0.0, 1.0]])
    with pytest.raises(ModelInputError, match="to state 0 is 1.5"):
        run_markov([1.0, 0.0], P, n_cycles=2)


def test_tiny_rounding_is_tolerated():
    P = np.array([[0.7, 0.3 + 1e-12], [-1e-12, 1.0 + 1e-12]])
    run_markov([1.0, 0.0], P, n_cycles=2)  # within PROB_TOL
    with pytest.raises(ModelInputError):
        run_markov([1.0, 0.0], P, n_cycles=2, tol=1e-14)
    assert PROB_TOL == 1e-9


def test_unbatched_message_has_no_draw():
    P = np.tile(alive_dead(), (4, 1, 1))
    P[2, 0, 0] = 0.95
    with pytest.raises(ModelInputError) as err:
        run_markov([1.0, 0.0], P, label="mono")
    assert str(err.value).startswith("mono: transition probabilities at cycle 2, from state 0")
    assert "draw" not in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (dict(P=np.ones((2, 3))), r"P has shape \(2, 3\)"),
        (dict(P=np.ones((2, 2, 2, 2, 2))), "P has shape"),
        (dict(start=[1.0, 0.0, 0.0]), r"start has shape \(3,\)"),
        (dict(start=[-1.0, 0.0]), "start state 0 is -1"),
        (dict(start=[np.inf, 0.0]), "start state 0 is inf"),
        (dict(n_cycles=None), "n_cycles is required"),
        (dict(n_cycles=0), "positive integer"),
        (dict(n_cycles=2.5), "positive integer"),
        (dict(state_rewards={"c": np.ones(3)}), r"state_rewards\['c'\] has shape \(3,\)"),
        (dict(state_rewards={"c": np.ones((3, 2, 2))}), "per-draw rewards need a batched run"),
        (dict(state_rewards={"c": [np.nan, 0.0]}), r"state_rewards\['c'\] is nan at state 0"),
        (dict(transition_rewards={"c": np.ones((3, 3))}), r"transition_rewards\['c'\] has shape"),
        (dict(start_rewards={"c": np.ones((2, 2))}), r"start_rewards\['c'\] has shape"),
        (dict(correction="halfcycle"), "unknown within-cycle correction 'halfcycle'"),
        (dict(correction=[1.0, 1.0]), r"expected \(n_cycles \+ 1,\) = \(4,\)"),
        (dict(correction=[1.0, np.nan, 1.0, 1.0]), "weight at row 1 is nan"),
        (dict(correction=[1.0, 1.0, -0.5, 1.0]), r"weight at row 2 is -0.5 \(a weight must be"),
        (dict(cycle_length_years=0.0), "cycle_length_years must be finite and > 0"),
        (dict(discount_step="monthly"), "unknown discount step"),
        (dict(transition_timing="middle"), "unknown transition_timing"),
        (dict(reward_alignment="middle"), "unknown reward_alignment"),
        (dict(effects=["qaly"]), r"effects \['qaly'\] are not reward names"),
        (dict(state_names=["a"]), "state_names has 1 names for 2 states"),
    ],
)
def test_bad_inputs_raise(kwargs, pattern):
    args = dict(start=[1.0, 0.0], P=alive_dead(), n_cycles=3, state_rewards={"ly": [1.0, 0.0]})
    args.update(kwargs)
    start, P = args.pop("start"), args.pop("P")
    with pytest.raises(ModelInputError, match=pattern) as err:
        run_markov(start, P, label="lbl", **args)
    assert str(err.value).startswith("lbl: ")
    assert isinstance(err.value, ValueError)


def test_unknown_correction_lists_valid_names():
    with pytest.raises(ModelInputError) as err:
        correction_weights("foo", 3)
    for name in CORRECTIONS:
        assert f"'{name}'" in str(err.value)


def test_batched_2d_state_reward_rejected_as_ambiguous():
    start, P = valid_batched(D=5, T=15, S=3)
    with pytest.raises(ModelInputError, match=r"ambiguous, use \(D, 1, S\)"):
        run_markov(start, P, state_rewards={"c": np.ones((5, 3))})
    # the unambiguous 3-D form works
    run_markov(start, P, state_rewards={"c": np.ones((5, 1, 3))})


def test_batched_shape_mismatches():
    start, P = valid_batched(D=5, T=15, S=3)
    with pytest.raises(ModelInputError, match="start has 4 draws but P has 5"):
        run_markov(start[:4], P)
    with pytest.raises(ModelInputError, match="has 4 draws, the model has 5"):
        run_markov(start, P, state_rewards={"c": np.ones((4, 15, 3))})
    with pytest.raises(ModelInputError, match=r"n_cycles = 10 but P has shape \(5, 15, 3, 3\)"):
        run_markov(start, P, n_cycles=10)
    with pytest.raises(ModelInputError, match=r"per draw \(D, 1, S, S\)"):
        run_markov(start, P, transition_rewards={"c": np.ones((5, 3, 3, 3))})


def test_nonfinite_per_draw_reward_located():
    start, P = valid_batched(D=5, T=15, S=3)
    R = np.ones((5, 15, 3))
    R[4, 7, 2] = np.inf
    with pytest.raises(ModelInputError, match=r"is inf at draw 4, cycle 7, state 2"):
        run_markov(start, P, state_rewards={"c": R})


# --------------------------------------------------------------------------------------
# Tunnel states
# --------------------------------------------------------------------------------------


def tunnel_model(n_tunnel: int, q_die: float) -> np.ndarray:
    """States: tunnel_0 .. tunnel_{n-1}, post, dead. Each cycle a survivor in tunnel k moves
    to tunnel k+1 (the last tunnel to 'post'); 'post' and 'dead' are absorbing."""
    S = n_tunnel + 2
    post, dead = n_tunnel, n_tunnel + 1
    P = np.zeros((S, S))
    for k in range(n_tunnel):
        P[k, k + 1] = 1 - q_die  # k + 1 == post for the last tunnel
        P[k, dead] = q_die
    P[post, post] = P[dead, dead] = 1.0
    return P


def test_tunnel_states_closed_form():
    n_tunnel, q, T = 30, 0.02, 40
    a = 1 - q
    P = tunnel_model(n_tunnel, q)
    S = P.shape[0]
    start = np.zeros(S)
    start[0] = 1.0
    # loading dose 100 in the first 3 tunnel cycles, maintenance 10 after, 5 in 'post'
    cost = np.r_[[100.0] * 3, [10.0] * (n_tunnel - 3), 5.0, 0.0]
    res = run_markov(start, P, n_cycles=T, state_rewards={"cost": cost}, correction="start")
    # occupancy: tunnel t holds a^t at row t < 30; 'post' holds a^30 from row 30 on
    for t in range(n_tunnel):
        assert res.trace[t, t] == pytest.approx(a**t, rel=1e-12)
        assert res.trace[t].sum() == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(res.trace[n_tunnel:, n_tunnel], a**n_tunnel, rtol=1e-12)
    # rows 0..39 counted: 100 (1 + a + a^2) + 10 (a^3 + ... + a^29) + 5 * 10 * a^30
    expected = 100 * (1 - a**3) / (1 - a) + 10 * (a**3 - a**30) / (1 - a) + 5 * 10 * a**30
    assert res.undiscounted["cost"] == pytest.approx(expected, rel=1e-12)


def test_tunnel_entry_transition_reward_time_dependent():
    # time-dependent P: death probability q_k = 0.01 (k + 1) in cycle k; one-off 1000 on
    # entering 'post' from the last tunnel at the end of cycle 29, discounted 30 years at 3%
    n_tunnel, T = 30, 35
    S = n_tunnel + 2
    P = np.stack([tunnel_model(n_tunnel, 0.01 * (k + 1)) for k in range(T)])
    entry = np.zeros((S, S))
    entry[n_tunnel - 1, n_tunnel] = 1000.0
    start = np.zeros(S)
    start[0] = 1.0
    res = run_markov(start, P, transition_rewards={"entry": entry}, discount_rate_costs=0.03)
    survive = np.prod([1 - 0.01 * (k + 1) for k in range(n_tunnel)])
    assert res.undiscounted["entry"] == pytest.approx(1000 * survive, rel=1e-12)
    assert res.discounted["entry"] == pytest.approx(1000 * survive / 1.03**30, rel=1e-12)


# --------------------------------------------------------------------------------------
# DARTH transition-dynamics formulation
# --------------------------------------------------------------------------------------


def darth_gen_wcc_simpson(n_cycles: int) -> np.ndarray:
    """darthtools::gen_wcc(method = "Simpson1/3"), with its 1-based parity kept as is."""
    position = np.arange(1, n_cycles + 2)
    w = np.where(position % 2 == 0, 2 / 3, 4 / 3)
    w[0] = w[-1] = 1 / 3
    return w


def test_darth_weights_are_not_textbook_simpson():
    # [1/3, 2/3, 4/3, 2/3, 1/3] sums to 10/3, not 4
    np.testing.assert_allclose(darth_gen_wcc_simpson(4), [1 / 3, 2 / 3, 4 / 3, 2 / 3, 1 / 3])
    assert darth_gen_wcc_simpson(4).sum() == pytest.approx(4 - 2 / 3)


def test_reproduces_darth_transition_dynamics_array():
    """DARTH time-dependent tutorial (Alarid-Escudero et al., MDM 2023;43:21-41): rewards via
    a_A[i, j, t+1] = m_M[t, i] * P[i, j, t], a_A[, , 1] = diag(m_M[1, ]); state rewards on
    the destination column, transition rewards added off-diagonal; totals
    sum_t sum_ij a_A * a_R weighted by v_dwc * v_wcc, v_dwc = (1 + d * cl)^-(0:T)."""
    T, S, cl, d_c, d_e = 12, 4, 0.5, 0.03, 0.015
    H, S1, S2, DEAD = range(S)
    P = np.zeros((T, S, S))
    p_die = 0.01 * (1 + np.arange(T) / 4)  # rises with age
    P[:, H, S1] = (1 - p_die) * 0.15
    P[:, H, DEAD] = p_die
    P[:, H, H] = (1 - p_die) * 0.85
    P[:, S1, H] = (1 - 3 * p_die) * 0.4
    P[:, S1, S2] = (1 - 3 * p_die) * 0.1
    P[:, S1, DEAD] = 3 * p_die
    P[:, S1, S1] = (1 - 3 * p_die) * 0.5
    P[:, S2, DEAD] = 10 * p_die
    P[:, S2, S2] = 1 - 10 * p_die
    P[:, DEAD, DEAD] = 1.0
    c_state = np.array([2000.0, 4000.0, 15000.0, 0.0]) * cl
    u_state = np.array([1.0, 0.75, 0.5, 0.0]) * cl
    ic = np.zeros((S, S))
    ic[H, S1] = 1000.0
    ic[:DEAD, DEAD] = 2000.0
    du = np.zeros((S, S))
    du[H, S1] = 0.01
    start = np.array([1.0, 0.0, 0.0, 0.0])
    v_wcc = darth_gen_wcc_simpson(T)

    # DARTH, transcribed: arrays indexed [from, to, row]
    m_M = np.zeros((T + 1, S))
    m_M[0] = start
    a_A = np.zeros((S, S, T + 1))
    a_A[:, :, 0] = np.diag(start)
    for t in range(T):
        m_M[t + 1] = m_M[t] @ P[t]
        a_A[:, :, t + 1] = np.diag(m_M[t]) @ P[t]
    a_R_c = np.repeat((np.tile(c_state, (S, 1)) + ic)[:, :, None], T + 1, axis=2)
    a_R_u = np.repeat((np.tile(u_state, (S, 1)) - du)[:, :, None], T + 1, axis=2)
    v_cost = (a_A * a_R_c).sum(axis=(0, 1))
    v_qaly = (a_A * a_R_u).sum(axis=(0, 1))
    v_dwc = 1 / (1 + d_c * cl) ** np.arange(T + 1)
    v_dwe = 1 / (1 + d_e * cl) ** np.arange(T + 1)
    darth_cost = v_cost @ (v_dwc * v_wcc)
    darth_qaly = v_qaly @ (v_dwe * v_wcc)

    res = run_markov(
        start,
        P,
        state_rewards={"cost": c_state, "qaly": u_state},
        transition_rewards={"cost": ic, "qaly": -du},
        effects=["qaly"],
        discount_rate_costs=d_c,
        discount_rate_effects=d_e,
        cycle_length_years=cl,
        discount_step="per_cycle_rate",
        correction=v_wcc,
        weight_transition_rewards=True,
    )
    np.testing.assert_allclose(res.trace, m_M, rtol=1e-13)
    assert res.discounted["cost"] == pytest.approx(darth_cost, rel=1e-12)
    assert res.discounted["qaly"] == pytest.approx(darth_qaly, rel=1e-12)
    # counting each transition once instead gives a different number
    once = run_markov(
        start,
        P,
        state_rewards={"cost": c_state},
        transition_rewards={"cost": ic},
        discount_rate_costs=d_c,
        cycle_length_years=cl,
        discount_step="per_cycle_rate",
        correction=v_wcc,
    )
    assert once.discounted["cost"] != pytest.approx(darth_cost, rel=1e-6)


@pytest.mark.parametrize("keep_trace", [True, False])
def test_function_draws_must_match_the_start(keep_trace):
    """A function's (D, S, S) matrices with another number of draws than the start: named as
    P(0)'s shape, whether the cycles are stacked or not."""
    with pytest.raises(
        ModelInputError,
        match=r"start has 3 draws but P has 2 \(start \(3, 2\), P\(0\) \(2, 2, 2\)\)",
    ):
        run_markov(
            np.ones((3, 2)) / 2,
            lambda k: np.tile(np.eye(2), (2, 1, 1)),
            n_cycles=2,
            keep_trace=keep_trace,
        )


def test_function_of_one_matrix_broadcast_over_draws():
    """A function returning one matrix broadcast over the draws (a (D, S, S) view with no
    memory per draw) is taken as any (D, S, S), with the totals only as with the trace."""
    M = np.array([[0.8, 0.2], [0.0, 1.0]])
    start = np.ones((3, 2)) / 2
    kw = dict(n_cycles=4, state_rewards={"c": np.array([1.0, 0.0])})
    stored = run_markov(start, np.broadcast_to(M, (3, 4, 2, 2)), **kw)
    for keep_trace in (True, False):
        res = run_markov(
            start, lambda k: np.broadcast_to(M, (3, 2, 2)), keep_trace=keep_trace, **kw
        )
        np.testing.assert_allclose(res.discounted["c"], stored.discounted["c"], rtol=1e-14)

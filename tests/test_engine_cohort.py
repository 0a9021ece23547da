"""Declared cohort models (cea.engine.declaration) through both backends of the engine.

Hand-computed small cases for the two-level competing risks and the counts; the compiled
backend against the NumPy backend at 1e-12 on random models with every feature (time profiles,
events, rewards per event, transition and start rewards, counts, per-draw start vectors,
absorbing states, zero hazards); a cohort rerun at other values of unknowns its hazards are
linear in, against the cohort declared at them; the IgRT model through both backends; invalid
hazards named by cohort and draw; the vectorised expm1 against libm.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from cea.engine import compiled
from cea.engine.cohort import rerun, run_cohorts
from cea.engine.declaration import ONE, CohortModel, Lin, Timing
from cea.engine.numpy_backend import probabilities
from cea.errors import CeaError, ModelInputError
from cea.igrt.calibration import calibrate
from cea.igrt.declaration import Params, declare, time_profiles
from cea.igrt.model import run_model
from cea.igrt.spec import SUBGROUPS, build_spec
from cea.io.load import load_inputs
from cea.parameters.sampling import sample_draws
from cea.parameters.table import build_parameter_table

BACKENDS = ("numpy", "numba")
RTOL = 1e-12


def assert_same(a, b, rtol=RTOL, atol=1e-15):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- by hand


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_level_competing_risks_by_hand(backend):
    # 3 states: well, ill, dead; from well: death (exit, H=0.1) competes with stopping
    # treatment (exit to ill, H=0.2); among those who neither die nor stop, nothing else.
    # From ill: death H=0.3 (exit) and recovery H=0.5 (internal, among those who do not die).
    # One cycle, start in well:
    #   P(well->dead) = 0.1/0.3 (1 - e^-0.3), P(well->ill) = 0.2/0.3 (1 - e^-0.3), stay e^-0.3
    # Second cycle from ill: P(ill->dead) = 1 - e^-0.3, P(ill->well) = e^-0.3 (1 - e^-0.5)
    m = CohortModel(
        start=np.array([1.0, 0.0, 0.0]),
        exits={0: {1: Lin.of(ONE, 0.2), 2: Lin.of(ONE, 0.1)}, 1: {2: Lin.of(ONE, 0.3)}},
        internal={1: {0: Lin.of(ONE, 0.5)}},
    )
    timing = Timing(n_cycles=2, cycle_length_years=1.0, correction="none")
    (res,) = run_cohorts([m], {"x": np.zeros((1, 2))}, timing, backend=backend, keep_trace=True)
    q = 1 - math.exp(-0.3)
    well1, ill1, dead1 = math.exp(-0.3), 0.2 / 0.3 * q, 0.1 / 0.3 * q
    assert res.trace[0, 1] == pytest.approx([well1, ill1, dead1], rel=1e-14)
    ill_to_well = math.exp(-0.3) * (1 - math.exp(-0.5))
    ill_stay = math.exp(-0.3) * math.exp(-0.5)
    well2 = well1 * well1 + ill1 * ill_to_well
    ill2 = well1 * 0.2 / 0.3 * q + ill1 * ill_stay
    assert res.trace[0, 2, 0] == pytest.approx(well2, rel=1e-14)
    assert res.trace[0, 2, 1] == pytest.approx(ill2, rel=1e-14)
    assert res.trace[0, 2].sum() == pytest.approx(1.0, rel=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_count_of_a_cause_and_rewards_per_event_by_hand(backend):
    # alive -> dead with H = background 0.05 + cause 0.15 per cycle; one cycle, undiscounted,
    # rewards counted at the start of the cycle ("none"): deaths from the cause =
    # (1 - e^-0.2) x 0.15 / 0.2; a reward of 10 per event with 0.4 events per person-cycle in
    # "alive" gives 4 on row 0
    m = CohortModel(
        start=np.array([1.0, 0.0]),
        exits={0: {1: Lin.of("background") + Lin.of(ONE, 0.15)}},
        events={"ev": {0: Lin.of(ONE, 0.4)}},
        rewards={"cost": (np.array([[1.0, 0.0]]), {"ev": np.array([10.0])})},
        counts={"cause_deaths": (1, {0: Lin.of(ONE, 0.15)})},
    )
    timing = Timing(n_cycles=1, cycle_length_years=1.0, correction="none")
    profiles = {"background": np.full((1, 1), 0.05)}
    (res,) = run_cohorts([m], profiles, timing, backend=backend)
    assert res.undiscounted["cause_deaths"][0] == pytest.approx(
        (1 - math.exp(-0.2)) * 0.75, rel=1e-14
    )
    assert res.undiscounted["cost"][0] == pytest.approx(1.0 + 4.0, rel=1e-14)


# --------------------------------------------------------------------------- random models


def random_model(rng, D, T, S=5, per_draw_start=False):
    """A random declared model using every feature; state S - 1 is absorbing."""

    def coef():
        return rng.uniform(0.05, 1.0, D)

    def lin():
        out = Lin.of(ONE, coef() * rng.uniform(0, 0.05))
        for name in rng.choice(["a", "b", "c"], size=rng.integers(1, 3), replace=False):
            out = out + Lin.of(str(name), coef())
        return out

    exits, internal = {}, {}
    for s in range(S - 1):
        dests = [d for d in range(S) if d != s]
        exits[s] = {int(d): lin() for d in rng.choice(dests, size=2, replace=False)}
        if rng.random() < 0.6:
            d = int(rng.choice([d for d in dests if d not in exits[s] and d != S - 1] or dests))
            internal[s] = {d: lin() * 3.0}
    exits[1][S - 1] = Lin.of(ONE, 0.0)  # a zero hazard
    events = {"e1": {s: lin() for s in range(S - 1)}, "e2": {0: lin()}}
    rewards = {
        "cost": (rng.uniform(0, 100, (D, S)), {"e1": coef() * 50, "e2": coef()}),
        "qaly": (rng.uniform(0, 1, (D, S)), {"e1": -coef() * 0.01}),
        "count": (np.zeros((D, S)), {"e1": np.ones(D)}),
    }
    trans = np.zeros((D, S, S))
    trans[:, 0, 1] = rng.uniform(0, 10, D)
    trans[:, 1, 1] = 2.0
    start = np.zeros(S)
    start[0] = 1.0
    if per_draw_start:
        w = rng.uniform(0, 1, D)[:, None]
        start = (1 - w) * start + w * np.eye(S)[2]
    return CohortModel(
        start=start,
        exits=exits,
        internal=internal,
        events=events,
        rewards=rewards,
        transition_rewards={"cost_transition": trans, "cost": trans * 0.5},
        start_rewards={"cost": np.full((D, S), 3.0), "once": np.full((D, S), 1.0)},
        counts={
            "deaths_a": (S - 1, {s: Lin.of("a", coef()) for s in range(S - 1) if S - 1 in exits[s]})
        },
        label="random",
    )


TIMINGS = {
    "half_cycle": Timing(24, 0.5, "half_cycle", 0.035, 0.015, effects=frozenset({"qaly", "count"})),
    "simpson_odd_annual": Timing(
        25, 1 / 12, "simpson", 0.05, 0.03, 0.5, "annual", frozenset({"qaly", "deaths_a"})
    ),
    "end_offset": Timing(13, 1.0, "end", 0.06, 0.0, 1.0, "cycle", frozenset({"qaly"})),
    "one_cycle": Timing(1, 1.0, "none", 0.0, 0.0),
    # costs and effects discounted alike: the compiled kernel keeps one discount row for both
    "same_rates": Timing(24, 0.5, "half_cycle", 0.035, 0.035, effects=frozenset({"qaly"})),
}


@pytest.mark.parametrize("timing", list(TIMINGS))
@pytest.mark.parametrize("per_draw_start", [False, True])
def test_compiled_backend_equals_numpy_backend(timing, per_draw_start):
    rng = np.random.default_rng(11)
    tm = TIMINGS[timing]
    D, T = 70, tm.n_cycles  # a partial block of draws
    profiles = {n: rng.uniform(0, 0.2, (D, T)) for n in ("a", "b", "c")}
    models = [random_model(rng, D, T, per_draw_start=per_draw_start) for _ in range(3)]
    a = run_cohorts(models, profiles, tm, backend="numpy", keep_trace=True, keep_events=True)
    b = run_cohorts(models, profiles, tm, backend="numba", keep_trace=True, keep_events=True)
    for x, y in zip(a, b, strict=True):
        assert set(x.discounted) == set(y.discounted)
        for name in x.discounted:
            assert_same(y.discounted[name], x.discounted[name])
            assert_same(y.undiscounted[name], x.undiscounted[name])
        assert_same(y.trace, x.trace)
        for name in x.event_totals:
            assert_same(y.event_totals[name], x.event_totals[name])
        np.testing.assert_allclose(x.trace.sum(axis=2), 1.0, rtol=1e-12)


def test_rows_of_the_transition_array_are_probabilities():
    rng = np.random.default_rng(3)
    D, T = 40, 12
    profiles = {n: rng.uniform(0, 2.0, (D, T)) for n in ("a", "b", "c")}
    P = probabilities(random_model(rng, D, T), profiles, T)
    assert (P >= 0).all() and (P <= 1).all()
    np.testing.assert_allclose(P.sum(axis=-1), 1.0, rtol=1e-14)


def test_a_draws_results_do_not_depend_on_the_other_draws():
    rng = np.random.default_rng(5)
    tm = TIMINGS["half_cycle"]
    D, T = 70, tm.n_cycles
    profiles = {n: rng.uniform(0, 0.2, (D, T)) for n in ("a", "b", "c")}
    m = random_model(rng, D, T)
    (every,) = run_cohorts([m], profiles, tm, backend="numba")
    d = 45
    alone_model = CohortModel(
        start=m.start,
        exits={s: {k: Lin({p: np.atleast_1d(c)[[d]] if np.ndim(c) else c for p, c in h.terms.items()}) for k, h in e.items()} for s, e in m.exits.items()},
        internal={s: {k: Lin({p: np.atleast_1d(c)[[d]] if np.ndim(c) else c for p, c in h.terms.items()}) for k, h in e.items()} for s, e in m.internal.items()},
        events={n: {s: Lin({p: np.atleast_1d(c)[[d]] if np.ndim(c) else c for p, c in h.terms.items()}) for s, h in e.items()} for n, e in m.events.items()},
        rewards={n: (c[[d]], {k: v[[d]] for k, v in ev.items()}) for n, (c, ev) in m.rewards.items()},
        transition_rewards={n: r[[d]] for n, r in m.transition_rewards.items()},
        start_rewards={n: r[[d]] for n, r in m.start_rewards.items()},
        counts={n: (dest, {s: Lin({p: c[[d]] for p, c in h.terms.items()}) for s, h in parts.items()}) for n, (dest, parts) in m.counts.items()},
    )  # fmt: skip
    (alone,) = run_cohorts(
        [alone_model], {n: p[[d]] for n, p in profiles.items()}, tm, backend="numba"
    )
    for name in every.discounted:
        assert every.discounted[name][d] == alone.discounted[name][0], name


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_negative_hazard_is_named(backend):
    m = CohortModel(
        start=np.array([1.0, 0.0]),
        exits={0: {1: Lin.of("a")}},
        label="my cohort",
    )
    a = np.full((3, 4), 0.1)
    a[2, 1] = -0.5
    with pytest.raises(ModelInputError, match=r"my cohort.*draw 2"):
        run_cohorts([m], {"a": a}, Timing(4, 1.0), backend=backend)


def test_unknown_backend_is_refused():
    m = CohortModel(start=np.array([1.0]), exits={})
    with pytest.raises(ModelInputError, match="unknown backend"):
        run_cohorts([m], {"a": np.zeros((1, 1))}, Timing(1, 1.0), backend="fortran")


def test_vectorised_expm1_and_exp_are_within_two_ulps_of_libm():
    x = np.concatenate([np.geomspace(1e-300, 700.0, 20_000), [0.0, 1e-20, 0.5 * math.log(2)]])
    compiled._kernel()  # compiles the helpers
    got = np.array([compiled._expm1_neg(h) for h in x])
    for values, want in ((got[:, 0], np.expm1(-x)), (got[:, 1], np.exp(-x))):
        assert (np.abs(values - want) <= 2 * np.spacing(np.abs(want))).all()


def test_staying_keeps_its_relative_precision_at_large_hazards():
    # exp(-30) = 9.4e-14: computed as 1 + expm1(-30) it would be off by 1e-4 relative
    m = CohortModel(start=np.array([1.0, 0.0]), exits={0: {1: Lin.of(ONE, 30.0)}})
    timing = Timing(n_cycles=1, cycle_length_years=1.0)
    for backend in BACKENDS:
        (res,) = run_cohorts([m], {"a": np.zeros((1, 1))}, timing, backend=backend, keep_trace=True)
        assert res.trace[0, 1, 0] == pytest.approx(math.exp(-30.0), rel=1e-14)


def test_many_blocks_of_draws_equal_the_numpy_backend():
    rng = np.random.default_rng(21)
    tm = TIMINGS["half_cycle"]
    D, T = 1100, tm.n_cycles  # several blocks of draws, the last one partial
    profiles = {n: rng.uniform(0, 0.2, (D, T)) for n in ("a", "b", "c")}
    m = random_model(rng, D, T, per_draw_start=True)
    (a,) = run_cohorts([m], profiles, tm, backend="numpy", keep_trace=True)
    (b,) = run_cohorts([m], profiles, tm, backend="numba", keep_trace=True)
    for name in a.discounted:
        assert_same(b.discounted[name], a.discounted[name])
    assert_same(b.trace, a.trace)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(exits={0: {0: Lin.of(ONE, 0.1)}}), "not between two other states"),
        (
            dict(exits={0: {1: Lin.of(ONE, 0.1)}}, internal={0: {1: Lin.of(ONE, 0.2)}}),
            "both by an exit and by an internal change",
        ),  # fmt: skip
        (dict(exits={0: {1: Lin.of("nowhere")}}), "unknown profile 'nowhere'"),
        (dict(start=np.array([1.0, np.nan])), "start vector"),
        (dict(rewards={"cost": (np.ones(2), {})}), "reward 'cost' must be"),
        (dict(rewards={"cost": (np.ones((3, 2)), {"ev": np.ones(3)})}), "undeclared event 'ev'"),
        (dict(counts={"deaths": (1, {0: Lin.of(ONE, 0.1)})}), "which is not an exit"),
        (
            dict(
                exits={0: {1: Lin.of(ONE, 0.1)}},
                rewards={"d": (np.ones((3, 2)), {})},
                counts={"d": (1, {0: Lin.of(ONE, 0.1)})},
            ),
            "has the name of a reward",
        ),  # fmt: skip
    ],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_declaration_the_engine_cannot_run_is_refused_in_one_line(change, message, backend):
    decl = dict(start=np.array([1.0, 0.0]), exits={}, label="my cohort") | change
    with pytest.raises(ModelInputError, match=rf"my cohort: .*{message}"):
        run_cohorts([CohortModel(**decl)], {"a": np.zeros((3, 2))}, Timing(2, 1.0), backend=backend)


def test_the_kernel_is_cached_outside_the_package(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compiled.cache_dir() == tmp_path / "cea" / "numba"
    import cea

    package = __import__("pathlib").Path(cea.__file__).parent
    assert not any(package.rglob("*.nbi")) and not any(package.rglob("*.nbc"))


# --------------------------------------------------------------------------- the IgRT model


@pytest.fixture(scope="module")
def gb_draws():
    inputs = load_inputs("inputs")
    ptable = build_parameter_table(inputs, "GB")
    spec = build_spec(ptable, inputs)
    draws = sample_draws(inputs, {"GB": ptable}, 40, 3)["GB"]
    return spec, draws


def test_igrt_model_same_results_from_both_backends(gb_draws):
    spec, draws = gb_draws
    a = run_model(draws, spec, backend="numpy")
    b = run_model(draws, spec, backend="numba")
    pd.testing.assert_frame_equal(a.calibrated, b.calibrated, check_exact=False, rtol=1e-12)
    num = a.outcomes.select_dtypes("number").columns
    assert_same(b.outcomes[num].to_numpy(), a.outcomes[num].to_numpy(), atol=1e-12)


# --------------------------------------------------------------------------- reruns


def _linear_cohort(r: np.ndarray, mu: np.ndarray, base: np.ndarray) -> CohortModel:
    """A 3-state cohort whose hazards are linear in two unknowns per draw, r and mu, with an
    event, a reward per event, a count and a transition reward (all the rerun carries);
    ``base``: a hazard per draw that does not move with them."""
    D = len(base)
    return CohortModel(
        start=np.array([1.0, 0.0, 0.0]),
        exits={0: {1: Lin.of("a", 0.3) + Lin.of(ONE, r * 0.1), 2: Lin.of("b") + Lin.of(ONE, base)},
               1: {2: Lin.of("b", 2.0) + Lin.of(ONE, mu * 0.05) + Lin.of("a", r * 0.02)}},
        events={"inf": {0: Lin.of("a", r), 1: Lin.of("a", 0.5 * r + 0.1)}},
        rewards={"cost": (np.tile([10.0, 20.0, 0.0], (D, 1)), {"inf": np.full(D, 100.0)})},
        transition_rewards={"eol": np.tile(np.array([[0, 0, 5.0], [0, 0, 5.0], [0, 0, 0]]), (D, 1, 1))},
        counts={"inf_deaths": (2, {1: Lin.of("a", r * 0.02)})},
        label="linear cohort",
    )  # fmt: skip


def test_a_rerun_is_the_cohort_declared_at_the_unknowns():
    D, T = 7, 12
    rng = np.random.default_rng(5)
    profiles = {"a": rng.uniform(0.5, 1.5, (D, T)), "b": rng.uniform(0.0, 0.02, (D, T))}
    timing = Timing(T, 0.25, discount_rate_costs=0.035)
    zero, one, base = np.zeros(D), np.ones(D), rng.uniform(0.01, 0.05, D)
    again = rerun(_linear_cohort(zero, zero, base), [_linear_cohort(one, zero, base),
                  _linear_cohort(zero, one, base)], profiles, timing, keep_trace=True,
                  keep_events=True)  # fmt: skip
    r, mu = rng.uniform(0.1, 3.0, D), rng.uniform(0.1, 3.0, D)
    for idx in (np.arange(D), np.array([5, 1, 3])):
        got = again.run(np.stack([r[idx], mu[idx]]), idx)
        sub = {n: p[idx] for n, p in profiles.items()}
        (want,) = run_cohorts([_linear_cohort(r[idx], mu[idx], base[idx])], sub, timing,
                              backend="numpy", keep_trace=True, keep_events=True)  # fmt: skip
        for name in want.discounted:
            assert_same(got.discounted[name], want.discounted[name])
            assert_same(got.undiscounted[name], want.undiscounted[name])
        assert_same(got.trace, want.trace)
        assert_same(got.event_totals["inf"], want.event_totals["inf"])


def test_a_rerun_declines_a_negative_hazard_and_refuses_cohorts_that_differ():
    D, T = 3, 4
    profiles = {"a": np.ones((D, T)), "b": np.zeros((D, T))}
    timing = Timing(T, 1.0)
    zero, one = np.zeros(D), np.ones(D)
    again = rerun(
        _linear_cohort(zero, zero, one), [_linear_cohort(one, zero, one)], profiles, timing
    )
    # r = -50 makes the first exit's hazard negative in draw 1: the caller reruns it declared
    assert again.run(np.array([[1.0, -50.0]]), np.array([0, 1])) is None
    other = _linear_cohort(one, zero, one)
    other.events["inf"][2] = Lin.of("a", 0.1)  # an event in another state
    with pytest.raises(CeaError, match="a rerun's cohorts differ"):
        rerun(_linear_cohort(zero, zero, one), [other], profiles, timing)


def test_a_rerun_keeps_the_states_asked_and_stops_where_asked():
    # keep_states: those columns of the whole trace; stop=(2, q): each block of draws stops
    # after the first row where state 2 holds at least q in all its draws (the same rows up to
    # there, NaN after)
    D, T = 7, 30
    rng = np.random.default_rng(8)
    profiles = {"a": rng.uniform(0.5, 1.5, (D, T)), "b": rng.uniform(0.0, 0.02, (D, T))}
    timing = Timing(T, 0.25)
    zero, one, base = np.zeros(D), np.ones(D), rng.uniform(0.01, 0.05, D)
    cohorts = (_linear_cohort(zero, zero, base),
               [_linear_cohort(one, zero, base), _linear_cohort(zero, one, base)])  # fmt: skip
    theta, idx = rng.uniform(0.1, 3.0, (2, D)), np.arange(D)
    whole = rerun(*cohorts, profiles, timing, keep_trace=True).run(theta, idx).trace
    kept = rerun(*cohorts, profiles, timing, keep_states=(2, 0)).run(theta, idx).trace
    assert kept.shape == (D, T + 1, 2)
    np.testing.assert_array_equal(kept, whole[:, :, [2, 0]])
    q = 0.3
    stop = int(np.argmax((whole[:, :, 2] >= q).all(axis=0)))
    assert 0 < stop < T
    got = rerun(*cohorts, profiles, timing, keep_states=(2,), stop=(2, q)).run(theta, idx)
    np.testing.assert_array_equal(got.trace[:, : stop + 1, 0], whole[:, : stop + 1, 2])
    assert np.isnan(got.trace[:, stop + 1 :]).all()
    with pytest.raises(CeaError, match="a state it lacks"):
        rerun(*cohorts, profiles, timing, keep_states=(3,))


def _with_unreachable(r: np.ndarray, slope: float) -> CohortModel:
    """``_linear_cohort`` and a state 3 no one enters, whose exit hazard is 0.2 + slope r."""
    m = _linear_cohort(r, np.zeros_like(r), np.full(len(r), 0.01))
    return replace(
        m,
        start=np.array([1.0, 0.0, 0.0, 0.0]),
        exits={**m.exits, 3: {2: Lin.of(ONE, 0.2 + slope * r)}},
        rewards={},
        transition_rewards={},
    )


def test_a_rerun_drops_the_unreachable_states_only_where_their_hazards_stay_non_negative():
    D, T = 4, 6
    profiles = {"a": np.ones((D, T)), "b": np.full((D, T), 0.01)}
    timing = Timing(T, 1.0)
    zero, one, r = np.zeros(D), np.ones(D), np.array([0.5, 1.0, 2.0, 3.0])
    idx = np.arange(D)
    # the hazard of state 3 rises with r: dropped, and the same results as the cohort declared
    again = rerun(_with_unreachable(zero, 0.1), [_with_unreachable(one, 0.1)], profiles, timing,
                  keep_trace=True, keep_events=True)  # fmt: skip
    assert again._arrays.exit_from.max() < 3
    got = again.run(r[None], idx)
    (want,) = run_cohorts([_with_unreachable(r, 0.1)], profiles, timing, backend="numpy",
                          keep_trace=True, keep_events=True)  # fmt: skip
    assert_same(got.trace, want.trace)
    assert_same(got.event_totals["inf"], want.event_totals["inf"])
    assert_same(got.discounted["inf_deaths"], want.discounted["inf_deaths"])
    # a negative unknown could make the dropped hazard negative: declined
    assert again.run(np.array([[1.0, -1.0, 1.0, 1.0]]), idx) is None
    # it falls with r (negative at r = 3): kept, and the kernel declines the draw
    falling = rerun(_with_unreachable(zero, -0.1), [_with_unreachable(one, -0.1)], profiles,
                    timing)  # fmt: skip
    assert falling._arrays.exit_from.max() == 3
    assert falling.run(r[None], idx) is None
    assert falling.run(r[None, :3], idx[:3]) is not None


# --------------------------------------------------------------------------- unreachable states


def _with_an_unreachable_state(h2: np.ndarray, D: int) -> CohortModel:
    """States 0 -> 1 -> 3 (dead); state 2 (its own exit to 3, an event and a count) is entered
    from nowhere, so no draw is ever in it."""
    return CohortModel(
        start=np.array([1.0, 0.0, 0.0, 0.0]),
        exits={0: {1: Lin.of("a", 0.4), 3: Lin.of(ONE, 0.05)}, 1: {3: Lin.of("a", 0.2)},
               2: {3: Lin.of("a", h2) + Lin.of(ONE, 0.1)}},
        internal={2: {1: Lin.of(ONE, 0.3)}},
        events={"ev": {0: Lin.of("a", 0.5), 2: Lin.of("a", 2.0)}},
        rewards={"cost": (np.tile([1.0, 2.0, 50.0, 0.0], (D, 1)), {"ev": np.full(D, 10.0)})},
        counts={"from_2": (3, {2: Lin.of(ONE, 0.1)}), "from_1": (3, {1: Lin.of("a", 0.2)})},
        label="unreachable",
    )  # fmt: skip


def test_states_no_one_can_enter_are_left_out_without_changing_a_bit(monkeypatch):
    D, T = 5, 9
    a = np.random.default_rng(2).uniform(0.5, 1.5, (D, T))
    m = _with_an_unreachable_state(np.full(D, 0.7), D)
    bounds = {ONE: (True, 1.0), "a": (True, 1.5)}
    pruned = compiled._without_unreachable(m, D, bounds)
    assert 2 not in pruned.exits and 2 not in pruned.internal and 2 not in pruned.events["ev"]
    assert pruned.counts["from_2"] == (3, {}) and 1 in pruned.counts["from_1"][1]
    timing = Timing(T, 0.5, discount_rate_costs=0.03)
    kw = dict(keep_trace=True, keep_events=True)
    (fast,) = run_cohorts([m], {"a": a}, timing, backend="numba", **kw)
    (ref,) = run_cohorts([m], {"a": a}, timing, backend="numpy", **kw)
    monkeypatch.setattr(compiled, "_without_unreachable", lambda m, D, nonneg: m)
    (whole,) = run_cohorts([m], {"a": a}, timing, backend="numba", **kw)
    for name in ref.discounted:
        assert_same(fast.discounted[name], ref.discounted[name])
        np.testing.assert_array_equal(fast.discounted[name], whole.discounted[name])
        np.testing.assert_array_equal(fast.undiscounted[name], whole.undiscounted[name])
    np.testing.assert_array_equal(fast.trace, whole.trace)
    np.testing.assert_array_equal(fast.event_totals["ev"], whole.event_totals["ev"])
    assert (fast.trace[:, :, 2] == 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_negative_hazard_in_a_state_no_one_enters_is_still_named(backend):
    D = 3
    h2 = np.array([0.7, -0.9, 0.7])  # draw 1: the unreachable state's exit is negative
    m = _with_an_unreachable_state(h2, D)
    bounds = {ONE: (True, 1.0), "a": (True, 1.0)}
    assert compiled._without_unreachable(m, D, bounds) is m  # left whole: the kernel checks
    with pytest.raises(ModelInputError, match=r"unreachable.*draw 1"):
        run_cohorts([m], {"a": np.ones((D, 4))}, Timing(4, 1.0), backend=backend)


# --------------------------------------------------------------------------- shared hazards


def _variants(rng, D, T):
    """Cohorts of one call, some sharing hazards and some not: a random model; the same with
    another start and without its transition rewards; the same with one exit changed (its
    state's total hazard is then its own); a smaller model with other events and rewards."""
    a = random_model(rng, D, T)
    b = replace(a, start=np.eye(5)[2], transition_rewards={}, label="other start")
    exits = {s: dict(dests) for s, dests in a.exits.items()}
    s, dest = 0, next(iter(exits[0]))
    exits[s][dest] = exits[s][dest] + Lin.of("c", rng.uniform(0.05, 1.0, D))
    c = replace(a, exits=exits, label="one exit changed")
    d = random_model(rng, D, T, S=4, per_draw_start=True)
    d.events = {"e3": d.events["e1"]}
    d.rewards = {"qaly": (d.rewards["qaly"][0], {"e3": np.full(D, 0.5)})}
    d.counts = {}
    return [a, b, c, d]


@pytest.mark.parametrize("timing", ["half_cycle", "simpson_odd_annual"])
def test_cohorts_sharing_hazards_in_one_call_equal_each_cohort_alone(timing):
    rng = np.random.default_rng(17)
    tm = TIMINGS[timing]
    D, T = 300, tm.n_cycles  # two blocks of draws, the last one partial
    profiles = {n: rng.uniform(0, 0.2, (D, T)) for n in ("a", "b", "c")}
    models = _variants(rng, D, T)
    kw = dict(keep_trace=True, keep_events=True)
    together = run_cohorts(models, profiles, tm, backend="numba", **kw)
    for m, got in zip(models, together, strict=True):
        (want,) = run_cohorts([m], profiles, tm, backend="numpy", **kw)
        (alone,) = run_cohorts([m], profiles, tm, backend="numba", **kw)
        assert set(got.discounted) == set(want.discounted)
        for name in want.discounted:
            assert_same(got.discounted[name], want.discounted[name])
            assert_same(got.undiscounted[name], want.undiscounted[name])
            # sharing a combination or a total hazard computes the same bits
            np.testing.assert_array_equal(got.discounted[name], alone.discounted[name])
            np.testing.assert_array_equal(got.undiscounted[name], alone.undiscounted[name])
        assert_same(got.trace, want.trace)
        np.testing.assert_array_equal(got.trace, alone.trace)
        assert set(got.event_totals) == set(m.events)
        for name in want.event_totals:
            assert_same(got.event_totals[name], want.event_totals[name])


def test_identical_combinations_and_total_hazards_are_computed_once():
    rng = np.random.default_rng(4)
    D, T = 20, 6
    profiles = {n: rng.uniform(0, 0.2, (D, T)) for n in ("a", "b", "c")}
    a, b, c, _ = _variants(rng, D, T)
    B, index = compiled._profile_array(profiles, [a], T)
    timing = TIMINGS["half_cycle"]
    alone, _ = compiled._arrays([a], B, index, timing)
    shared, _ = compiled._arrays([a, b, c], B, index, timing)
    unshared, _ = compiled._arrays([a, b, c], B, index, timing, share=False)
    n_lins = lambda arrays: len(arrays.lin_ptr) - 1  # noqa: E731
    n_totals = lambda arrays: len(arrays.grp_ptr) - 1  # noqa: E731
    # b repeats a's every hazard; c all but one exit, and so its state 0's total of exits
    assert n_lins(shared) == n_lins(alone) + 1
    assert n_totals(shared) == n_totals(alone) + 1
    # without sharing (a rerun's cohorts), each cohort keeps its own
    own, _ = compiled._arrays([a], B, index, timing, share=False)
    assert n_lins(unshared) == 3 * n_lins(own) and n_totals(unshared) == 3 * n_totals(own)


def test_a_negative_hazard_among_several_cohorts_is_named():
    good = CohortModel(start=np.array([1.0, 0.0]), exits={0: {1: Lin.of("a")}}, label="good")
    bad = CohortModel(start=np.array([1.0, 0.0]), exits={0: {1: Lin.of("b")}}, label="bad one")
    a, b = np.full((3, 4), 0.1), np.full((3, 4), 0.1)
    b[1, 2] = -0.5
    with pytest.raises(ModelInputError, match=r"bad one.*draw 1"):
        run_cohorts([good, bad, good], {"a": a, "b": b}, Timing(4, 1.0), backend="numba")


def test_the_igrt_cohorts_of_a_call_share_most_of_their_hazards(gb_draws):
    spec, draws = gb_draws
    v = calibrate(Params(draws, spec.unit_scale), spec, "numba")
    cohorts = [(st, sg) for st in spec.strategies for g, sg in enumerate(SUBGROUPS)
               if st.trigger == "igg_below_threshold" or g == 0]  # fmt: skip
    assert len(cohorts) == 7
    models = [declare(st, sg, v, spec) for st, sg in cohorts]
    profiles, timing = time_profiles(v, spec), spec.timing()
    B, index = compiled._profile_array(profiles, models, timing.n_cycles)
    bounds = compiled._profile_bounds(B, index)
    pruned = [compiled._without_unreachable(m, len(draws), bounds) for m in models]
    shared, _ = compiled._arrays(pruned, B, index, timing)
    unshared, _ = compiled._arrays(pruned, B, index, timing, share=False)
    # 153 combinations and 44 total hazards, of which 43 and 13 differ
    assert len(shared.lin_ptr) - 1 < 0.35 * (len(unshared.lin_ptr) - 1)
    assert len(shared.grp_ptr) - 1 < 0.35 * (len(unshared.grp_ptr) - 1)


def test_a_state_no_one_enters_is_kept_when_its_event_or_hazard_could_overflow():
    # a dropped event must be surely finite too (a non-finite one makes the totals non-finite,
    # which the model refuses), and coefficient times profile must stay finite (1e200 x 1e200)
    D = 2
    m = _with_an_unreachable_state(np.full(D, 0.7), D)
    m.events["ev"][2] = Lin.of("a", np.array([1.0, np.inf]))
    assert compiled._without_unreachable(m, D, {ONE: (True, 1.0), "a": (True, 1.0)}) is m
    m = _with_an_unreachable_state(np.full(D, 1e200), D)
    assert compiled._without_unreachable(m, D, {ONE: (True, 1.0), "a": (True, 1e200)}) is m
    assert compiled._without_unreachable(m, D, {ONE: (True, 1.0), "a": (True, 1.0)}) is not m


def test_a_rerun_refuses_hazards_that_are_not_linear_in_its_unknowns():
    D, T = 3, 4
    profiles = {"a": np.ones((D, T)), "b": np.zeros((D, T))}
    timing = Timing(T, 1.0)
    zero, one, base = np.zeros(D), np.ones(D), np.full(D, 0.02)
    at = lambda r, mu: _linear_cohort(r, mu, base)  # noqa: E731
    units = [at(one, zero), at(zero, one)]
    rerun(at(zero, zero), units, profiles, timing, check=((2.0, 3.0), at(2 * one, 3 * one)))
    square = _linear_cohort(4 * one, 3 * one, base)  # r entered as r^2 at r = 2
    with pytest.raises(CeaError, match="not linear"):
        rerun(at(zero, zero), units, profiles, timing, check=((2.0, 3.0), square))


def test_a_rerun_with_a_non_finite_profile_declines_instead_of_refusing_its_cohorts():
    # the profiles are the call's, the same for every cohort of the rerun: a NaN in them is a
    # bad draw (the caller's declared rerun names it), not cohorts that differ
    D, T = 3, 4
    a = np.ones((D, T))
    a[1, 2] = np.nan
    profiles = {"a": a, "b": np.zeros((D, T))}
    zero, one, base = np.zeros(D), np.ones(D), np.full(D, 0.02)
    again = rerun(_linear_cohort(zero, zero, base), [_linear_cohort(one, zero, base)],
                  profiles, Timing(T, 1.0))  # fmt: skip
    assert again.run(np.array([[0.5, 0.5, 0.5]]), np.arange(D)) is None

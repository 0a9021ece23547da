"""Benchmark of the cohort engine: draws per second and peak memory.

A plain 4-state time-dependent model (healthy, sick, sicker, dead; 130 cycles; background
mortality rising with age; every draw with its own probabilities and costs), three rewards
(cost with a one-off transition cost, qaly, ly), discounted, half-cycle corrected.

Run: ``python benchmarks/bench_markov.py`` (options: ``--draws 1000 10000 100000``,
``--chunk 10000``, ``--cycles 130``, ``--layouts draws_innermost draws_outermost``). P is
built either with ``make_transition_array`` (draws innermost in memory, the fast path) or
as a plain C-ordered (D, T, S, S) array. Draws beyond ``--chunk`` are run in chunks, each a
separate ``run_markov`` call, which bounds memory: P alone is D x T x 16 x 8 bytes
(1.7 GB for 100,000 draws). Peak memory is measured with tracemalloc, which numpy reports
its array allocations to; it covers building P and running the engine.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from cea.engine.markov import make_transition_array, run_markov

N_STATES = 4
HEALTHY, SICK, SICKER, DEAD = range(N_STATES)
START_AGE_YEARS = 40.0
CYCLE_LENGTH_YEARS = 1 / 12
DISCOUNT_RATE = 0.035
SEED = 20240601
LAYOUTS = ("draws_innermost", "draws_outermost")


def build_inputs(rng: np.random.Generator, n_draws: int, n_cycles: int, layout: str):
    """(D, T, S, S) probabilities, (D, 1, S) costs, shared utilities; all vectorized.

    layout "draws_innermost" stores P with make_transition_array (draws contiguous);
    "draws_outermost" is a plain C-ordered (D, T, S, S) array.
    """
    p_hs = rng.beta(15, 985, n_draws)  # healthy -> sick per cycle
    p_sh = rng.beta(50, 950, n_draws)  # sick -> healthy
    p_ss = rng.beta(10, 990, n_draws)  # sick -> sicker
    hr_sick = rng.lognormal(np.log(3.0), 0.1, n_draws)
    hr_sicker = rng.lognormal(np.log(10.0), 0.1, n_draws)
    age = START_AGE_YEARS + np.arange(n_cycles) * CYCLE_LENGTH_YEARS
    r_bg = 1e-4 * np.exp(0.08 * (age - START_AGE_YEARS)) / 12  # Gompertz, per month
    p_die_h = 1 - np.exp(-r_bg)[None, :]  # (1, T)
    p_die_s = 1 - np.exp(-r_bg[None, :] * hr_sick[:, None])  # (D, T)
    p_die_ss = 1 - np.exp(-r_bg[None, :] * hr_sicker[:, None])

    if layout == "draws_innermost":
        P = make_transition_array(n_draws, n_cycles, N_STATES)
    else:
        P = np.zeros((n_draws, n_cycles, N_STATES, N_STATES))
    P[:, :, HEALTHY, SICK] = (1 - p_die_h) * p_hs[:, None]
    P[:, :, HEALTHY, DEAD] = p_die_h
    P[:, :, HEALTHY, HEALTHY] = (1 - p_die_h) * (1 - p_hs[:, None])
    P[:, :, SICK, HEALTHY] = (1 - p_die_s) * p_sh[:, None]
    P[:, :, SICK, SICKER] = (1 - p_die_s) * p_ss[:, None]
    P[:, :, SICK, DEAD] = p_die_s
    P[:, :, SICK, SICK] = (1 - p_die_s) * (1 - p_sh - p_ss)[:, None]
    P[:, :, SICKER, DEAD] = p_die_ss
    P[:, :, SICKER, SICKER] = 1 - p_die_ss
    P[:, :, DEAD, DEAD] = 1.0

    monthly_cost = np.stack(
        [
            rng.gamma(100, 2.0, n_draws),
            rng.gamma(100, 10.0, n_draws),
            rng.gamma(100, 30.0, n_draws),
            np.zeros(n_draws),
        ],
        axis=-1,
    )[:, None, :]  # (D, 1, S)
    utility_per_cycle = np.array([1.0, 0.75, 0.5, 0.0]) * CYCLE_LENGTH_YEARS
    ly_per_cycle = np.array([1.0, 1.0, 1.0, 0.0]) * CYCLE_LENGTH_YEARS
    event_cost = np.zeros((N_STATES, N_STATES))
    event_cost[SICK, SICKER] = 5000.0  # one-off on progression
    return P, monthly_cost, utility_per_cycle, ly_per_cycle, event_cost


def run_chunk(rng, n_draws: int, n_cycles: int, layout: str) -> tuple[float, float]:
    """Returns (seconds building inputs, seconds in run_markov)."""
    t0 = time.perf_counter()
    P, cost, qaly, ly, event = build_inputs(rng, n_draws, n_cycles, layout)
    start = np.array([1.0, 0.0, 0.0, 0.0])
    t1 = time.perf_counter()
    res = run_markov(
        start,
        P,
        state_rewards={"cost": cost, "qaly": qaly, "ly": ly},
        transition_rewards={"cost": event},
        effects=["qaly", "ly"],
        discount_rate_costs=DISCOUNT_RATE,
        discount_rate_effects=DISCOUNT_RATE,
        cycle_length_years=CYCLE_LENGTH_YEARS,
        correction="half_cycle",
        label="benchmark",
    )
    t2 = time.perf_counter()
    assert res.discounted["cost"].shape == (n_draws,)
    assert np.isfinite(res.discounted["qaly"]).all()
    return t1 - t0, t2 - t1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--chunk", type=int, default=10_000)
    parser.add_argument("--cycles", type=int, default=130)
    parser.add_argument(
        "--layouts", nargs="+", default=["draws_innermost", "draws_outermost"], choices=LAYOUTS
    )
    args = parser.parse_args()

    print(
        f"4-state time-dependent model, T = {args.cycles} cycles, 3 rewards, "
        f"chunks of {args.chunk:,} draws"
    )
    header = f"{'layout of P':<16} {'draws':>9} {'build s':>8} {'engine s':>9}"
    print(f"{header} {'engine draws/s':>15} {'peak MB':>8}")
    for layout in args.layouts:
        for n in args.draws:
            build, engine = run_all(n, args.chunk, args.cycles, layout)
            # a second run under tracemalloc for the peak only (it slows allocations)
            tracemalloc.start()
            run_all(n, args.chunk, args.cycles, layout)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(
                f"{layout:<16} {n:>9,} {build:>8.3f} {engine:>9.3f} {n / engine:>15,.0f} "
                f"{peak / 2**20:>8.0f}"
            )


def run_all(n_draws: int, chunk: int, n_cycles: int, layout: str) -> tuple[float, float]:
    rng = np.random.default_rng(SEED)
    build = engine = 0.0
    done = 0
    while done < n_draws:
        size = min(chunk, n_draws - done)
        b, e = run_chunk(rng, size, n_cycles, layout)
        build, engine, done = build + b, engine + e, done + size
    return build, engine


if __name__ == "__main__":
    main()

"""The cohort engine, called three ways, against a fused NumPy kernel of the same model: each
way's first call in a fresh process and its warm calls in this one, as ratios to the fused
kernel measured in the same run, and each way's speed against serial loops over draws.

Run: ``python benchmarks/bench_engine.py [--draws 10000] [--repeat 5] [--r-draws 1000]``.

The model is the one of ``bench_model.py``'s engine case: 4 states (healthy, sick, sicker,
dead), 130 monthly cycles, background mortality rising with age, per-draw probabilities and
state costs, a one-off cost on sick -> sicker, QALYs, discounting at 3.5% and half-cycle
correction. The fused kernel runs the same arithmetic with no stored trace: one loop over cycles
on (state, draw) arrays that adds each row's discounted rewards as it goes. The engine is asked
for the totals only (``keep_trace=False``), as the fused kernel computes them, three ways
(:data:`ENGINES`): ``run_markov`` on the (D, T, 4, 4) transition array the caller builds with
``make_transition_array`` (:func:`engine`); ``run_markov`` with P a function of the cycle that
refills one (D, 4, 4) buffer (:func:`engine_by_cycle`); and the model declared by its hazards,
run by the compiled backend (:func:`declared`). All give the fused kernel's totals to 1e-12
(checked on every run). "first call" is each way's first call in a fresh Python process, the
imports made and the draws drawn beforehand (:func:`first_call`; the compiled kernel is compiled
into Numba's cache first, so the child loads it as any later process does); "warm" the median of
``--repeat`` later calls in this process, alternated with the fused kernel's; both divided by the
fused kernel's warm median. The serial references: the textbook loop over draws in the DARTH
style (:func:`serial`; in Python, where the DARTH group writes R: an interpreted loop with a small
matrix product a cycle either way), run on ``--serial-draws`` draws and scaled to ``--draws`` (its
time is linear in the draws); and that loop in R (``darth_loop.R``, in two variants: the trace
alone, as :func:`serial`, and the transition-dynamics array of the DARTH tutorials carrying the
rewards), run by ``Rscript`` where R is installed on every one of ``--draws`` (``--r-draws``
fewer, then scaled alike: R's loop has a fixed start-up, about 0.06 s, that scaling would
multiply), timed by R around the loop alone.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cea.engine.cohort import run_cohorts  # noqa: E402
from cea.engine.declaration import CohortModel, Lin, Timing  # noqa: E402
from cea.engine.markov import (  # noqa: E402
    correction_weights,
    discount_factors,
    make_transition_array,
    run_markov,
)

T = 130
RATE = 0.035
DT = 1 / 12
EVENT_COST = 5000.0
UTILITY = np.array([1.0, 0.75, 0.5, 0.0]) / 12


def inputs(n: int, seed: int = 1) -> dict:
    """Per-draw parameters of the 4-state model (as bench_model.py draws them)."""
    rng = np.random.default_rng(seed)
    return {
        "p_hs": rng.beta(15, 985, n),
        "p_sh": rng.beta(50, 950, n),
        "p_ss": rng.beta(10, 990, n),
        "hr_s": rng.lognormal(np.log(3.0), 0.1, n),
        "hr_ss": rng.lognormal(np.log(10.0), 0.1, n),
        "cost": np.stack(
            [rng.gamma(100, 2.0, n), rng.gamma(100, 10.0, n), rng.gamma(100, 30.0, n), np.zeros(n)],
            -1,
        ),
    }


def _background() -> np.ndarray:
    """The background death hazard of each cycle, (T,), rising with age."""
    return 1e-4 * np.exp(0.08 * np.arange(T) / 12) / 12


def _mortality(v: dict):
    r_bg = _background()
    p_h = 1 - np.exp(-r_bg)[None, :]
    p_s = 1 - np.exp(-r_bg[None, :] * v["hr_s"][:, None])
    p_x = 1 - np.exp(-r_bg[None, :] * v["hr_ss"][:, None])
    return p_h, p_s, p_x


def _fill(P, ph, ps, px, hs, sh, ss) -> None:
    """The model's matrices into ``P`` (..., 4, 4) from the death probabilities of the cycle(s)
    (``ph`` healthy, ``ps`` sick, ``px`` sicker) and the per-draw ones of healthy -> sick,
    sick -> healthy and sick -> sicker, all broadcast to ``P[..., i, j]``."""
    P[..., 0, 1] = (1 - ph) * hs
    P[..., 0, 3] = ph
    P[..., 0, 0] = (1 - ph) * (1 - hs)
    P[..., 1, 0] = (1 - ps) * sh
    P[..., 1, 2] = (1 - ps) * ss
    P[..., 1, 3] = ps
    P[..., 1, 1] = (1 - ps) * (1 - sh - ss)
    P[..., 2, 3] = px
    P[..., 2, 2] = 1 - px
    P[..., 3, 3] = 1.0


def _totals(v: dict, P) -> dict:
    """``run_markov`` of the model with transitions ``P`` (an array, or a function of the
    cycle), the totals only (``keep_trace=False``, as the fused kernel computes them)."""
    event = np.zeros((4, 4))
    event[1, 2] = EVENT_COST
    res = run_markov(
        np.array([1.0, 0.0, 0.0, 0.0]), P, n_cycles=T,
        state_rewards={"cost": v["cost"][:, None, :], "qaly": UTILITY},
        transition_rewards={"cost": event}, effects=("qaly",),
        discount_rate_costs=RATE, discount_rate_effects=RATE,
        cycle_length_years=DT, correction="half_cycle", keep_trace=False,
    )  # fmt: skip
    return {"cost": res.discounted["cost"], "qaly": res.discounted["qaly"]}


def engine(v: dict) -> dict:
    """``run_markov`` on the (D, T, 4, 4) transition array, as a user calls it who needs the
    totals only (``keep_trace=False``, as the fused kernel keeps no trace either)."""
    n = len(v["p_hs"])
    p_h, p_s, p_x = _mortality(v)
    P = make_transition_array(n, T, 4)
    per_draw = [v[k][:, None] for k in ("p_hs", "p_sh", "p_ss")]  # (D, 1): over cycles
    _fill(P, p_h, p_s, p_x, *per_draw)
    return _totals(v, P)


def engine_by_cycle(v: dict) -> dict:
    """``run_markov`` with P a function of the cycle: each cycle's (D, 4, 4) matrices refilled
    in one buffer with draws innermost, as the engine asks for them (``keep_trace=False``), so
    no (D, T, 4, 4) array is built."""
    n = len(v["p_hs"])
    p_h, p_s, p_x = _mortality(v)
    buf = make_transition_array(n, 1, 4)[:, 0]  # (D, 4, 4), draws innermost

    def P(k: int) -> np.ndarray:
        _fill(buf, p_h[0, k], p_s[:, k], p_x[:, k], v["p_hs"], v["p_sh"], v["p_ss"])
        return buf

    return _totals(v, P)


def declared(v: dict) -> dict:
    """The same model declared by its hazards (:class:`CohortModel`: death an exit with the
    background hazard times 1, hr_s or hr_ss; the other changes internal, among those who do
    not die, with hazards giving the same probabilities: -log(1 - p) shared in proportion to
    each probability) and run by the compiled backend (``run_cohorts(..., backend="numba")``),
    which builds no transition array and keeps no trace."""
    n = len(v["p_hs"])
    r_bg = np.broadcast_to(_background(), (n, T))  # per cycle
    h_sick = -np.log1p(-(v["p_sh"] + v["p_ss"]))
    share_sh = v["p_sh"] / (v["p_sh"] + v["p_ss"])
    event = np.zeros((n, 4, 4))
    event[:, 1, 2] = EVENT_COST
    model = CohortModel(
        start=np.array([1.0, 0.0, 0.0, 0.0]),
        exits={0: {3: Lin.of("background")}, 1: {3: Lin.of("background", v["hr_s"])},
               2: {3: Lin.of("background", v["hr_ss"])}},
        internal={0: {1: Lin.of("one", -np.log1p(-v["p_hs"]))},
                  1: {0: Lin.of("one", h_sick * share_sh), 2: Lin.of("one", h_sick * (1 - share_sh))}},
        rewards={"cost": (v["cost"], {}), "qaly": (np.broadcast_to(UTILITY, (n, 4)), {})},
        transition_rewards={"cost": event},
    )  # fmt: skip
    timing = Timing(T, DT, "half_cycle", RATE, RATE, effects=frozenset({"qaly"}))
    (res,) = run_cohorts([model], {"background": r_bg}, timing, backend="numba")
    return {"cost": res.discounted["cost"], "qaly": res.discounted["qaly"]}


#: The ways of calling the engine, by name.
ENGINES = {"array": engine, "by_cycle": engine_by_cycle, "declared": declared}
LABELS = {"array": "P stored", "by_cycle": "P by cycle", "declared": "declared, compiled"}


def first_call(variant: str, n: int) -> float:
    """Seconds of the engine's first call (``variant`` of :data:`ENGINES`) in a fresh Python
    process, imports made and inputs drawn beforehand: nothing warm, no memory reused."""
    done = subprocess.run(
        [sys.executable, __file__, "--first-call", variant, "--draws", str(n)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return float(done.stdout.split()[-1])


def fused(v: dict) -> dict:
    """The same model in one loop over cycles, no stored trace or transition array: each row's
    weighted, discounted state rewards and each cycle's transition cost are added as they come."""
    n = len(v["p_hs"])
    p_h, p_s, p_x = _mortality(v)
    w = correction_weights("half_cycle", T)
    disc = discount_factors(RATE, T + 1, DT)
    x = np.zeros((4, n))
    x[0] = 1.0
    cost_rows = np.zeros((T + 1, n))
    qaly_rows = np.zeros((T + 1, n))
    c = np.ascontiguousarray(v["cost"].T)
    stay_s = 1 - v["p_sh"] - v["p_ss"]
    for t in range(T + 1):
        cost_rows[t] += w[t] * (c[0] * x[0] + c[1] * x[1] + c[2] * x[2] + c[3] * x[3])
        qaly_rows[t] = w[t] * (
            x[0] * UTILITY[0] + x[1] * UTILITY[1] + x[2] * UTILITY[2] + x[3] * UTILITY[3]
        )
        if t == T:
            break
        ph, ps, px = p_h[0, t], p_s[:, t], p_x[:, t]
        to_ss = x[1] * (1 - ps) * v["p_ss"]
        cost_rows[t + 1] += EVENT_COST * to_ss  # transitions land on the next row
        h = x[0] * (1 - ph) * (1 - v["p_hs"]) + x[1] * (1 - ps) * v["p_sh"]
        s = x[0] * (1 - ph) * v["p_hs"] + x[1] * (1 - ps) * stay_s
        ss = to_ss + x[2] * (1 - px)
        dead = x[0] * ph + x[1] * ps + x[2] * px + x[3]
        x = np.stack([h, s, ss, dead])
    return {"cost": disc @ cost_rows, "qaly": disc @ qaly_rows}


def serial(v: dict) -> dict:
    """The same model as a serial loop over draws in the style of the DARTH group's R code
    (Alarid-Escudero et al. 2023, "An introductory tutorial on cohort state-transition models
    in R"), written in Python: for each draw its (4, 4, T) transition array, the trace row by
    row (``m_M[t + 1] = m_M[t] %*% a_P[, , t]``), the sick -> sicker flow for the one-off cost,
    and the discounted, half-cycle corrected totals. The textbook way a PSA is run."""
    n = len(v["p_hs"])
    p_h, p_s, p_x = _mortality(v)
    w = correction_weights("half_cycle", T)
    disc = discount_factors(RATE, T + 1, DT)
    cost, qaly = np.empty(n), np.empty(n)
    for d in range(n):
        a_P = np.zeros((4, 4, T))
        ph, ps, px = p_h[0], p_s[d], p_x[d]
        a_P[0, 1] = (1 - ph) * v["p_hs"][d]
        a_P[0, 3] = ph
        a_P[0, 0] = (1 - ph) * (1 - v["p_hs"][d])
        a_P[1, 0] = (1 - ps) * v["p_sh"][d]
        a_P[1, 2] = (1 - ps) * v["p_ss"][d]
        a_P[1, 3] = ps
        a_P[1, 1] = (1 - ps) * (1 - v["p_sh"][d] - v["p_ss"][d])
        a_P[2, 3] = px
        a_P[2, 2] = 1 - px
        a_P[3, 3] = 1.0
        m_M = np.zeros((T + 1, 4))
        m_M[0, 0] = 1.0
        to_ss = np.zeros(T + 1)
        for t in range(T):
            m_M[t + 1] = m_M[t] @ a_P[:, :, t]
            to_ss[t + 1] = m_M[t, 1] * a_P[1, 2, t]
        c_rows = m_M @ v["cost"][d] * w + EVENT_COST * to_ss
        cost[d] = disc @ c_rows
        qaly[d] = disc @ (m_M @ UTILITY * w)
    return {"cost": cost, "qaly": qaly}


def r_loop(v: dict, variant: str) -> tuple[float, dict]:
    """The serial loop in R (``darth_loop.R``; ``variant`` "trace", the trace and each cycle's
    sick -> sicker flow as in :func:`serial`, or "array", the flows of the transition-dynamics
    array carrying the rewards): the loop's own elapsed seconds as R measures them (starting R
    and reading and writing the files left out) and its totals."""
    with tempfile.TemporaryDirectory() as tmp:
        draws, totals = Path(tmp) / "draws.csv", Path(tmp) / "totals.csv"
        n = len(v["p_hs"])
        cols = {k: v[k] for k in ("p_hs", "p_sh", "p_ss", "hr_s", "hr_ss")}
        cols |= {f"c_{s}": v["cost"][:, i] for i, s in enumerate(("h", "s", "ss", "d"))}
        constants = {"n_cycles": T, "rate": RATE, "dt": DT, "event_cost": EVENT_COST}
        constants |= {f"u_{s}": UTILITY[i] for i, s in enumerate(("h", "s", "ss", "d"))}
        cols |= {k: np.full(n, x) for k, x in constants.items()}
        header = ",".join(cols)
        rows = np.column_stack(list(cols.values()))
        np.savetxt(draws, rows, delimiter=",", header=header, comments="", fmt="%.17g")
        script = Path(__file__).with_name("darth_loop.R")
        done = subprocess.run(
            ["Rscript", str(script), str(draws), str(totals), variant],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        out = np.genfromtxt(totals, delimiter=",", names=True)
        return float(done.stdout.split()[-1]), {"cost": out["cost"], "qaly": out["qaly"]}


def timed(fn, v) -> tuple[float, dict]:
    t = time.perf_counter()
    out = fn(v)
    return time.perf_counter() - t, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--serial-draws", type=int, default=1000, help="draws the serial loop runs (then scaled)"
    )
    ap.add_argument(
        "--r-draws", type=int, default=None,
        help="draws the serial loop in R runs (then scaled; default: all of --draws, as R's "
             "loop has a fixed start-up that scaling would multiply); 0: not run. Needs Rscript",
    )  # fmt: skip
    ap.add_argument("--first-call", choices=ENGINES, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    v = inputs(args.draws)
    if args.first_call:  # the child of first_call
        print(timed(ENGINES[args.first_call], v)[0])
        return 0
    declared(inputs(8))  # the kernel compiled into Numba's cache, as after any first run
    firsts = {name: first_call(name, args.draws) for name in ENGINES}
    _, b = timed(fused, v)
    for fn in ENGINES.values():
        a = fn(v)
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-12)
    warm = {name: [] for name in [*ENGINES, "fused"]}
    for _ in range(args.repeat):  # alternated: all see the same load
        for name, fn in [*ENGINES.items(), ("fused", fused)]:
            warm[name].append(timed(fn, v)[0])
    warm = {name: statistics.median(t) for name, t in warm.items()}
    f = warm["fused"]
    m = min(args.serial_draws, args.draws)
    sub = {k: x[:m] for k, x in v.items()}
    s_time, c = timed(serial, sub)
    for k in a:
        np.testing.assert_allclose(c[k], a[k][:m], rtol=1e-12)
    s_time *= args.draws / m  # the loop's time is linear in the draws
    print(f"draws {args.draws:,}, {T} cycles, medians of {args.repeat}")
    print(f"fused kernel, warm    {f:8.3f} s")
    for name, label in LABELS.items():
        e, first = warm[name], firsts[name]
        print(f"engine, {label:18s} warm       {e:8.3f} s   {e / f:6.2f} x the fused kernel")
        print(
            f"engine, {label:18s} first call {first:8.3f} s   {first / f:6.2f} x the fused "
            "kernel (a fresh process)"
        )

    def faster(ref: float) -> str:
        return "; ".join(
            f"{LABELS[name]} {ref / warm[name]:.0f} x warm, {ref / firsts[name]:.0f} x first call"
            for name in ENGINES
        )

    print(
        f"serial loop, DARTH style, {m:,} draws scaled to {args.draws:,}: {s_time:8.3f} s; "
        f"the engine faster: {faster(s_time)}"
    )
    m = args.draws if args.r_draws is None else min(args.r_draws, args.draws)
    if m and shutil.which("Rscript") is None:
        print("serial loop in R: not run (no Rscript on this machine)")
    elif m:
        for variant in ("trace", "array"):
            r_time, c = r_loop({k: x[:m] for k, x in v.items()}, variant)
            for k in a:
                np.testing.assert_allclose(c[k], a[k][:m], rtol=1e-12)
            r_time *= args.draws / m
            scaled = f"{m:,} draws scaled to {args.draws:,}" if m < args.draws else f"{m:,} draws"
            print(
                f"serial loop in R (darth_loop.R, {variant}), {scaled}: {r_time:8.3f} s; "
                f"the engine faster: {faster(r_time)}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

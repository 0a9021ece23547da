"""Benchmark of the PSA: draws per second and peak memory of the full IgRT model and of a plain
4-state cohort model, at 1,000, 10,000 and 100,000 draws.

Run: ``python benchmarks/bench_model.py`` (options: ``--models full markov``,
``--draws 1000 10000 100000``, ``--country GB``, ``--profile`` for a cProfile of one case).

- **full**: the IgRT model as ``cea psa`` runs it: all default strategies, both subgroups,
  the default horizon (130 cycles of 28 days), per-draw calibration, GB inputs, through
  ``psa.run_psa``. "end to end" is that call's wall time: reading the inputs, drawing, the
  deterministic base case, the model over all draws (chunked; "model s") and the analysis
  (summary, CEAC/CEAF, EVPI and EVPPI for every parameter group over the WTP grid,
  convergence). Not included: starting Python and importing ``cea`` (printed as import_s in
  the JSON) and writing files (the CLI prints its own timing).
- **markov**: a plain 4-state time-dependent cohort model (healthy, sick, sicker, dead; 130
  monthly cycles, draw-specific probabilities and costs, one transition cost) through
  ``cea.engine.markov.run_markov`` in chunks of 10,000 draws.

Each case runs in a fresh Python process so that its peak resident memory (``ru_maxrss``)
is its own (with worker processes: the parent's; each worker holds one chunk); the baseline
of an idle process that has imported the same modules is printed beside it. Nothing is
cached between cases except the compiled kernels on disk (the ahead-of-time module of
cea/_aot.py and Numba's cache), as for any user after the first run. "CPU s" is the CPU time of the whole call, the worker processes' included: on a
shared machine the wall time also measures the other processes, the CPU time does not.
Workers: 1 (one process) and 0 (as ``cea psa``: one per CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
DEFAULT_DRAWS = (1000, 10_000, 100_000)
MARKOV_CHUNK = 10_000
MARKOV_CYCLES = 130
SEED = 1
#: Worker processes for the full model: 1 (the model alone, per core) and 0 = as ``cea psa``
#: runs it (one worker process per CPU).
DEFAULT_WORKERS = (1, 0)


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (user + system)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def case_full(n_draws: int, country: str, workers: int = 1) -> dict:
    t0 = time.perf_counter()
    from cea import psa

    t_import = time.perf_counter() - t0
    base_rss = peak_rss_mb()
    cpu0 = cpu_seconds()
    t = time.perf_counter()
    res = psa.run_psa(ROOT / "inputs", country, n_draws, SEED, workers=workers or None)
    end_to_end = time.perf_counter() - t
    cpu = cpu_seconds() - cpu0  # the workers' too: run_psa has closed its pool
    sec, run = res.seconds, res.countries[country]
    return {
        "model": "full",
        "draws": n_draws,
        "workers": workers or psa.default_workers(-(-n_draws // psa.PSA_CHUNK_DRAWS)),
        "strategies": len(run.spec.strategies),
        "cycles": run.spec.n_cycles,
        "import_s": t_import,
        "load_draw_s": sec["load_and_draw"],
        "base_case_s": sec[f"base_case_{country}"],
        "model_s": sec[f"model_{country}"],
        "analyse_s": sec[f"analysis_{country}"],
        "end_to_end_s": end_to_end,
        "model_draws_per_s": n_draws / sec[f"model_{country}"],
        "cpu_s": cpu,
        "end_to_end_draws_per_s": n_draws / end_to_end,
        "peak_rss_mb": peak_rss_mb(),
        "baseline_rss_mb": base_rss,
    }


def markov_inputs(rng: np.random.Generator, n: int, T: int):
    """(D, T, 4, 4) probabilities (draws innermost), (D, 1, 4) costs, utilities, a transition cost."""
    from cea.engine.markov import make_transition_array

    p_hs, p_sh, p_ss = rng.beta(15, 985, n), rng.beta(50, 950, n), rng.beta(10, 990, n)
    hr_s, hr_ss = rng.lognormal(np.log(3.0), 0.1, n), rng.lognormal(np.log(10.0), 0.1, n)
    r_bg = 1e-4 * np.exp(0.08 * np.arange(T) / 12) / 12  # Gompertz background hazard per month
    p_h = 1 - np.exp(-r_bg)[None, :]
    p_s = 1 - np.exp(-r_bg[None, :] * hr_s[:, None])
    p_x = 1 - np.exp(-r_bg[None, :] * hr_ss[:, None])
    P = make_transition_array(n, T, 4)
    P[:, :, 0, 1] = (1 - p_h) * p_hs[:, None]
    P[:, :, 0, 3] = p_h
    P[:, :, 0, 0] = (1 - p_h) * (1 - p_hs[:, None])
    P[:, :, 1, 0] = (1 - p_s) * p_sh[:, None]
    P[:, :, 1, 2] = (1 - p_s) * p_ss[:, None]
    P[:, :, 1, 3] = p_s
    P[:, :, 1, 1] = (1 - p_s) * (1 - p_sh - p_ss)[:, None]
    P[:, :, 2, 3] = p_x
    P[:, :, 2, 2] = 1 - p_x
    P[:, :, 3, 3] = 1.0
    cost = np.stack(
        [rng.gamma(100, 2.0, n), rng.gamma(100, 10.0, n), rng.gamma(100, 30.0, n), np.zeros(n)], -1
    )[:, None, :]
    event = np.zeros((4, 4))
    event[1, 2] = 5000.0
    return P, cost, np.array([1.0, 0.75, 0.5, 0.0]) / 12, np.array([1.0, 1.0, 1.0, 0.0]) / 12, event


def case_markov(n_draws: int) -> dict:
    t0 = time.perf_counter()
    from cea.engine.markov import run_markov

    t_import = time.perf_counter() - t0
    base_rss = peak_rss_mb()
    rng = np.random.default_rng(SEED)
    t = time.perf_counter()
    cpu0 = cpu_seconds()
    total = 0.0
    for lo in range(0, n_draws, MARKOV_CHUNK):
        n = min(MARKOV_CHUNK, n_draws - lo)
        P, cost, util, ly, event = markov_inputs(rng, n, MARKOV_CYCLES)
        res = run_markov(
            np.array([1.0, 0.0, 0.0, 0.0]),
            P,
            state_rewards={"cost": cost, "qaly": util, "ly": ly},
            transition_rewards={"cost": event},
            effects=("qaly", "ly"),
            discount_rate_costs=0.035,
            discount_rate_effects=0.035,
            cycle_length_years=1 / 12,
            correction="half_cycle",
            keep_per_cycle=False,
        )
        total += float(np.sum(res.discounted["cost"]))
        del P, res
    secs = time.perf_counter() - t
    model_cpu = cpu_seconds() - cpu0
    return {
        "model": "markov",
        "draws": n_draws,
        "cycles": MARKOV_CYCLES,
        "import_s": t_import,
        "model_s": secs,
        "end_to_end_s": secs,
        "model_draws_per_s": n_draws / secs,
        "cpu_s": model_cpu,
        "end_to_end_draws_per_s": n_draws / secs,
        "peak_rss_mb": peak_rss_mb(),
        "baseline_rss_mb": base_rss,
        "checksum": total,
    }


def run_case(model: str, n_draws: int, country: str, workers: int = 1) -> dict:
    """One case in a fresh interpreter; returns its JSON line."""
    cmd = [sys.executable, __file__, "--one", model, str(n_draws), "--country", country]
    cmd += ["--workers", str(workers)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def profile(model: str, n_draws: int, country: str, top: int = 25) -> None:
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    case_full(n_draws, country, 1) if model == "full" else case_markov(n_draws)
    prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(top)
    pstats.Stats(prof).sort_stats("tottime").print_stats(top)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["full", "markov"], choices=["full", "markov"])
    ap.add_argument("--draws", nargs="+", type=int, default=list(DEFAULT_DRAWS))
    ap.add_argument("--country", default="GB")
    ap.add_argument(
        "--workers",
        nargs="+",
        type=int,
        default=list(DEFAULT_WORKERS),
        help="worker processes of the full model (0: as cea psa, one per CPU)",
    )
    ap.add_argument("--one", nargs=2, metavar=("MODEL", "DRAWS"), help=argparse.SUPPRESS)
    ap.add_argument(
        "--profile", action="store_true", help="cProfile the first model at the first draw count"
    )
    args = ap.parse_args(argv)
    if args.one:
        model, n = args.one[0], int(args.one[1])
        res = case_full(n, args.country, args.workers[0]) if model == "full" else case_markov(n)
        print(json.dumps(res))
        return 0
    if args.profile:
        profile(args.models[0], args.draws[0], args.country)
        return 0
    print(
        f"{'model':<8}{'draws':>9}{'procs':>6}{'model s':>10}{'draws/s':>11}{'CPU s':>8}{'draws/CPU s':>13}"
        f"{'end-to-end s':>14}{'draws/s':>10}{'peak MB':>9}{'idle MB':>9}  parts"
    )
    for model in args.models:
        for n in args.draws:
            for w in args.workers if model == "full" else [1]:
                row(model, n, run_case(model, n, args.country, w))
    return 0


def row(model: str, n: int, r: dict) -> None:
    """Print one case."""
    parts = ""
    if model == "full":
        parts = (
            f"read+draw {r['load_draw_s']:.2f} s, base case {r['base_case_s']:.2f} s, "
            f"analysis {r['analyse_s']:.2f} s"
        )
    print(
        f"{model:<8}{n:>9,}{r.get('workers', 1):>6}{r['model_s']:>10.2f}"
        f"{r['model_draws_per_s']:>11,.0f}{r['cpu_s']:>8.2f}{n / r['cpu_s']:>13,.0f}"
        f"{r['end_to_end_s']:>14.2f}{r['end_to_end_draws_per_s']:>10,.0f}"
        f"{r['peak_rss_mb']:>9,.0f}{r['baseline_rss_mb']:>9,.0f}  {parts}",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of the PSA of the full IgRT model and of the cohort engine on its own, side by side
with another checkout (for example the commit a change started from).

Run: ``python benchmarks/bench_model.py [--baseline PATH] [--draws 10000 100000] [--repeat 3]``.

Cases, each in a fresh Python process so that its peak resident memory is its own:

- **psa**: ``run_psa`` of the full model, GB inputs, all default strategies, 130 cycles,
  per-draw calibration, the analysis (summary, CEAC/CEAF, EVPI, EVPPI for every parameter
  group over the WTP grid, convergence). "end to end" is that call's wall time (reading the
  inputs, drawing, the base case, the model, the analysis); starting Python, importing and
  writing files are not included. Compiled code is prepared first (outside the timing), as
  for any user after the first run.
- **psa_no_evppi**: the same without the EVPPI (``run_psa(..., evppi=False)``; a checkout
  without that option cannot run this case).
- **engine**: ``run_markov`` on a plain 4-state time-dependent model (healthy, sick, sicker,
  dead; 130 monthly cycles; per-draw probabilities and costs; a transition cost), in chunks
  of 10,000 draws.
- **command**: the whole ``python -m cea psa --country GB --draws N --seed 1`` command as a user
  runs it, into a temporary folder: wall seconds from starting Python to its exit (imports,
  the PSA, writing every file and figure), and that process's peak resident memory.

With ``--baseline``, each case runs for both checkouts in turn (``--repeat`` times, the
median kept) and the ratio new / baseline is printed: the machine is shared, so both sides of
a ratio are measured in the same run. The baseline is imported from its own folder with
whatever module layout it has (``cea.psa`` or ``cea.pipeline.psa``; ``cea.markov`` or
``cea.engine.markov``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED = 1
CHUNK = 10_000
CYCLES = 130

#: The measurement run in the checkout's own process (its own imports and layout).
CASE = r"""
import importlib, json, os, resource, sys, time
import numpy as np

def module(*names):
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            pass
    raise ImportError(names)

def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

case, n = sys.argv[1], int(sys.argv[2])
if case.startswith("psa"):
    psa = module("cea.pipeline.psa", "cea.psa")
    psa.run_psa("inputs", "GB", 200, 7)  # compiled code ready, as after a first run
    kw = {"evppi": False} if case == "psa_no_evppi" else {}
    t = time.perf_counter()
    res = psa.run_psa("inputs", "GB", n, %(seed)d, **kw)
    seconds = time.perf_counter() - t
    extra = {k: round(v, 3) for k, v in res.seconds.items()}
else:
    markov = module("cea.engine.markov", "cea.markov")
    rng = np.random.default_rng(%(seed)d)
    T = %(cycles)d
    t = time.perf_counter()
    for lo in range(0, n, %(chunk)d):
        d = min(%(chunk)d, n - lo)
        p_hs, p_sh, p_ss = rng.beta(15, 985, d), rng.beta(50, 950, d), rng.beta(10, 990, d)
        hr_s, hr_ss = rng.lognormal(np.log(3.0), 0.1, d), rng.lognormal(np.log(10.0), 0.1, d)
        r_bg = 1e-4 * np.exp(0.08 * np.arange(T) / 12) / 12
        p_h = 1 - np.exp(-r_bg)[None, :]
        p_s = 1 - np.exp(-r_bg[None, :] * hr_s[:, None])
        p_x = 1 - np.exp(-r_bg[None, :] * hr_ss[:, None])
        P = markov.make_transition_array(d, T, 4)
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
        cost = np.stack([rng.gamma(100, 2.0, d), rng.gamma(100, 10.0, d),
                         rng.gamma(100, 30.0, d), np.zeros(d)], -1)[:, None, :]
        event = np.zeros((4, 4))
        event[1, 2] = 5000.0
        markov.run_markov(
            np.array([1.0, 0.0, 0.0, 0.0]), P,
            state_rewards={"cost": cost, "qaly": np.array([1.0, 0.75, 0.5, 0.0]) / 12},
            transition_rewards={"cost": event}, effects=("qaly",),
            discount_rate_costs=0.035, discount_rate_effects=0.035,
            cycle_length_years=1 / 12, correction="half_cycle",
        )
    seconds = time.perf_counter() - t
    extra = {}
print(json.dumps({"seconds": seconds, "peak_rss_mb": rss_mb(), "parts": extra}))
"""
CASE = (
    CASE.replace("%(seed)d", str(SEED))
    .replace("%(cycles)d", str(CYCLES))
    .replace("%(chunk)d", str(CHUNK))
)


def measure_command(checkout: Path, n: int) -> dict:
    """The whole ``cea psa`` command in a fresh interpreter: wall time and the peak resident
    memory of that one process (``wait4``)."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "stderr", "w+b") as err:
        argv = [sys.executable, "-m", "cea", "psa", "--country", "GB", "--draws", str(n),
                "--seed", str(SEED), "--out", str(Path(tmp) / "psa"), "--force"]  # fmt: skip
        t = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=checkout, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            raise RuntimeError(err.read().decode())
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024.0, "parts": {}}


def measure(checkout: Path, case: str, n: int) -> dict:
    """One case in a fresh interpreter, importing ``cea`` from ``checkout``."""
    if case == "command":
        return measure_command(checkout, n)
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = subprocess.run(
        [sys.executable, "-c", CASE, case, str(n)],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, default=None, help="another checkout to compare")
    ap.add_argument(
        "--cases",
        nargs="+",
        default=["psa", "engine"],
        choices=["psa", "psa_no_evppi", "engine", "command"],
    )
    ap.add_argument("--draws", nargs="+", type=int, default=[10_000, 100_000])
    ap.add_argument("--repeat", type=int, default=3, help="runs per side; the median is kept")
    args = ap.parse_args(argv)
    sides = {"new": ROOT}
    if args.baseline is not None:
        sides["baseline"] = args.baseline.resolve()
    print(f"{'case':<8}{'draws':>9}" + "".join(f"{s + ' s':>14}{s + ' MB':>12}" for s in sides)
          + ("   new/baseline" if len(sides) > 1 else ""))  # fmt: skip
    for case in args.cases:
        for n in args.draws:
            runs = {s: [] for s in sides}
            for _ in range(args.repeat):
                for s, path in sides.items():  # alternated, so that both see the same load
                    runs[s].append(measure(path, case, n))
            line = f"{case:<8}{n:>9,}"
            med = {}
            for s in sides:
                med[s] = statistics.median(r["seconds"] for r in runs[s])
                mb = max(r["peak_rss_mb"] for r in runs[s])
                line += f"{med[s]:>14.2f}{mb:>12,.0f}"
            if len(sides) > 1:
                line += f"{med['new'] / med['baseline']:>15.2f}"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

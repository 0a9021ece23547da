"""How the PSA's model and analysis steps scale with the threads, in one process: each step's
wall seconds with 1 thread and with every CPU, the speed-up, and the serial share of its work.

Run: ``python benchmarks/bench_scaling.py [--draws 100000] [--repeat 3] [--no-evppi]``.

The draws and the base case of a GB PSA are made once; then ``run_draws`` (the model) and
``analyse`` (summary, CEAC/CEAF, EVPI, EVPPI, convergence) run ``--repeat`` times with
``workers=1`` and with ``workers=W`` (W = the CPUs this process may use), alternated so that
both see the same load. Besides the wall seconds (medians), each run measures the process's
CPU seconds and the main thread's: with W threads, every piece of work runs in the pool's
threads and the main thread only hands it out, checks and assembles, so its CPU seconds over
the process's CPU seconds with one thread is the step's serial share s, measured whatever the
machine's load. Amdahl's law then bounds the speed-up on 16 CPUs by 1 / (s + (1 - s) / 16).
That bound does not see work the pool's threads do while holding Python's lock (pandas and
small NumPy calls between the compiled kernel's calls), which also runs one thread at a time:
the measured speed-up on W CPUs, on a quiet machine, is the check on it. ``--gil`` measures that
work where py-spy is installed (``pip install py-spy``; it needs to be allowed to read another
process, as root or with ptrace permitted): the model step runs ``--repeat`` times in one thread
in a child process sampled by py-spy twice, once counting the samples where the pool's thread
holds the lock (``--gil``) and once those where it runs at all; their ratio g is the share of the
thread's work that no other thread can do at the same time, and 1 / (g + (1 - g) / 16) bounds
the model step's speed-up on 16 CPUs however little the main thread does. The results are the
same with any number of threads (checked on every run).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cea.analysis.psa import analyse  # noqa: E402
from cea.parameters.sampling import sample_draws  # noqa: E402
from cea.pipeline.base import comparisons_from_settings  # noqa: E402
from cea.pipeline.parallel import cpus  # noqa: E402
from cea.pipeline.psa import PSA_CHUNK_DRAWS, run_draws, run_psa  # noqa: E402

TARGET_CPUS = 16


def amdahl(share: float, workers: int) -> float:
    """The speed-up on ``workers`` of a step whose serial share is ``share``."""
    return 1 / (share + (1 - share) / workers)


#: py-spy's samples a second, and the frame of the function each chunk of draws runs in.
SPY_RATE = 250
CHUNK_FRAME = "run_draws.<locals>.one ("


def chunk_samples(raw: Path) -> int:
    """Samples of py-spy's raw output (a stack and its count per line) inside a chunk."""
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if CHUNK_FRAME in stack:
            total += int(count)
    return total


def gil_share(n_draws: int, repeat: int, chunk_draws: int) -> float | None:
    """The share of a pool thread's running time in the model step during which it holds
    Python's lock (py-spy, module docstring); None without py-spy."""
    spy = shutil.which("py-spy")
    if spy is None:
        return None
    child = [
        sys.executable,
        __file__,
        "--gil-child",
        "--draws",
        str(n_draws),
        "--repeat",
        str(repeat),
        "--chunk-draws",
        str(chunk_draws),
    ]
    counts = []
    with tempfile.TemporaryDirectory() as tmp:
        for flags in (["--gil"], []):
            raw = Path(tmp) / "samples.txt"
            cmd = [spy, "record", *flags, "-r", str(SPY_RATE), "-f", "raw", "-o", str(raw), "--"]
            done = subprocess.run([*cmd, *child], capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"py-spy failed: {done.stderr.strip().splitlines()[-1:]}")
            counts.append(chunk_samples(raw))
    if counts[1] == 0:
        raise SystemExit("py-spy saw no sample in the model step: more --draws")
    return counts[0] / counts[1]


def timed(fn):
    """``fn()``, its wall seconds, the process's CPU seconds and this thread's."""
    w, p, t = time.perf_counter(), time.process_time(), time.thread_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - p, time.thread_time() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-evppi", action="store_true", help="the analysis without the EVPPI")
    ap.add_argument("--gil", action="store_true", help="the model step's share under the lock")
    ap.add_argument(
        "--chunk-draws", type=int, default=PSA_CHUNK_DRAWS, help="draws per chunk of the model step"
    )
    ap.add_argument("--gil-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.gil_child:  # sampled by py-spy (gil_share): the model step in one thread
        psa = run_psa("inputs", "GB", 200, 7)
        c = psa.countries["GB"]
        draws = sample_draws(psa.inputs, {"GB": c.ptable}, args.draws, 1)["GB"]
        for _ in range(args.repeat):
            run_draws(draws, c.spec, args.chunk_draws, workers=1)
        return 0
    W = cpus()
    if W < 2:
        print("one CPU: no threads to compare")
        return report_gil(args) if args.gil else 1
    psa = run_psa("inputs", "GB", 200, 7)  # compiled code ready, as after a first run
    inputs, c = psa.inputs, psa.countries["GB"]
    pt, spec = c.ptable, c.spec
    draws = sample_draws(inputs, {"GB": pt}, args.draws, 1)["GB"]
    comps = comparisons_from_settings(pt.settings, spec)
    steps = {
        "model": lambda w: run_draws(draws, spec, args.chunk_draws, workers=w),
        "analysis": lambda w: analyse(
            run.cost,
            run.qaly,
            run.ly,
            draws,
            pt,
            spec.strategy_names,
            c.base.outcomes,
            comps,
            evppi=not args.no_evppi,
            workers=w,
        ),  # fmt: skip
    }
    stats = {(s, w): [] for s in steps for w in (1, W)}
    kept = {}
    for _ in range(args.repeat):
        for w in (1, W):
            run, *m = timed(lambda w=w: steps["model"](w))
            tables, *a = timed(lambda w=w: steps["analysis"](w))
            stats["model", w].append(m)
            stats["analysis", w].append(a)
            kept.setdefault(w, (run.cost, run.qaly, tables.evpi["evpi_per_patient"].to_numpy()))
    for x, y in zip(kept[1], kept[W], strict=True):
        np.testing.assert_array_equal(x, y)  # the results do not depend on the threads
    print(
        f"draws {args.draws:,}{', no EVPPI' if args.no_evppi else ''}; medians of "
        f"{args.repeat}; {W} CPUs; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'step':<10}{'1 thread s':>11}{f'{W} threads s':>13}{'speed-up':>10}"
          f"{'CPU s':>8}{'serial CPU s':>14}{'serial share':>14}{f'bound on {TARGET_CPUS}':>12}")  # fmt: skip
    for s in steps:
        one = [statistics.median(v) for v in zip(*stats[s, 1], strict=True)]
        many = [statistics.median(v) for v in zip(*stats[s, W], strict=True)]
        share = min(1.0, many[2] / one[1])
        print(
            f"{s:<10}{one[0]:>11.2f}{many[0]:>13.2f}{one[0] / many[0]:>10.2f}{one[1]:>8.2f}"
            f"{many[2]:>14.3f}{share:>14.3f}{amdahl(share, TARGET_CPUS):>11.1f}x"
        )
    return report_gil(args) if args.gil else 0


def report_gil(args) -> int:
    """Print the model step's share under Python's lock (:func:`gil_share`) and its bound."""
    g = gil_share(args.draws, args.repeat, args.chunk_draws)
    if g is None:
        print("model step under Python's lock: not measured (no py-spy on this machine)")
    else:
        print(
            f"model step, chunks of {args.chunk_draws:,} draws: a pool thread holds Python's lock "
            f"{g:.1%} of its running time (py-spy); bound on {TARGET_CPUS} CPUs "
            f"{amdahl(g, TARGET_CPUS):.1f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

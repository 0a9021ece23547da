"""Where the PSA's peak memory is reached: the peak resident memory of one ``run_psa`` before and
after each of its steps.

Run: ``python benchmarks/bench_memory.py --draws 100000``.

The peak (``ru_maxrss``) only grows, so a step that raises it is where the run's memory goes:
drawing (``sample_draws``), the base case, the model (``run_draws``), and within the analysis the
EVPPI (``evppi_tables``) and the tables after it. The resident memory after each step (``now``)
tells what a step keeps from what it only needed while it ran. Steps are timed too. One process,
this checkout, GB inputs, all default strategies; compiled code as it comes (run a PSA once
first). ``--no-evppi`` runs the PSA without the EVPPI.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cea.analysis.psa as analysis  # noqa: E402
import cea.pipeline.psa as pipeline  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def now_mb() -> float:
    """Resident memory now (Linux: /proc/self/statm), NaN where it cannot be read."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return float("nan")
    return pages * resource.getpagesize() / 2**20


def watch(module, name: str, indent: str = "") -> None:
    """Replace ``module.name`` by a wrapper that prints its seconds and the peak around it."""
    fn = getattr(module, name)

    def wrapped(*args, **kwargs):
        t, before = time.perf_counter(), peak_mb()
        out = fn(*args, **kwargs)
        print(f"{indent}{name:<18}{time.perf_counter() - t:8.2f} s   peak {before:7,.0f} -> "
              f"{peak_mb():7,.0f} MB, now {now_mb():7,.0f} MB", flush=True)  # fmt: skip
        return out

    setattr(module, name, wrapped)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=100_000)
    ap.add_argument("--no-evppi", action="store_true", help="run the PSA without the EVPPI")
    args = ap.parse_args(argv)
    for name in ("sample_draws", "build_base_case", "run_draws", "analyse"):
        watch(pipeline, name)
    for name in ("evppi_tables", "summary_table", "convergence_table", "ce_plane_table"):
        watch(analysis, name, "  ")
    print(f"start{'':<17}{'':8}     peak {peak_mb():7,.0f} MB")
    kw = {"evppi": False} if args.no_evppi else {}  # the keyword only where it is wanted
    run = pipeline.run_psa(
        Path(__file__).resolve().parents[1] / "inputs", "GB", args.draws, 1, **kw
    )
    print(f"{args.draws:,} draws: run_psa {run.seconds['total']:.2f} s, peak {peak_mb():,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

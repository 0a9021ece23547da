"""Benchmark of the EVPPI of every parameter group, side by side with another checkout.

Run: ``python benchmarks/bench_evppi.py --baseline PATH [--draws 10000 100000] [--repeat 3]``.

The per-draw results come from this checkout's ``run_psa`` (GB inputs, seed 1) once per number
of draws and are saved to a temporary folder; the same arrays then go to each checkout's
``cea.analysis.psa.evppi_tables`` (every parameter group of the ``category`` column plus
``all_parameters``, over the PSA's WTP grid, as ``cea psa`` computes them), each in a fresh
Python process importing ``cea`` from that checkout. The sides alternate ``--repeat`` times and
the median is kept, so both sides of a ratio are measured in the same run, under the same load.

``--workers N`` gives this checkout's EVPPI N threads (groups, and blocks of draws within a group;
a checkout whose ``evppi_tables`` takes no ``workers`` runs as it comes).

Printed per number of draws: seconds per side, new / baseline, and each side's growth from the
smallest number of draws (linear in the draws is 10.0 from 10,000 to 100,000), plus the EVPPI
per patient at the WTP of each group on each side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED = 1

#: Runs in each checkout's own process: the EVPPI tables from saved per-draw results.
CASE = r"""
import inspect, json, sys, time
import numpy as np, pandas as pd
from cea.analysis import psa as A, voi

data = np.load(sys.argv[1])
meta = json.loads(open(sys.argv[2]).read())
cost, qaly, grid = data["cost"], data["qaly"], data["grid"]
draws = pd.DataFrame(data["draws"], columns=meta["columns"])
wtp = meta["wtp"]
# by field name: _Draws held the long outcomes table before the per-draw outcomes went to disk,
# and holds per-draw life-years since (neither is read by the EVPPI)
given = dict(outcomes=None, names=meta["names"], cost=cost, qaly=qaly, ly=np.zeros_like(cost),
             wtp=wtp, grid=grid, i_wtp=int(np.flatnonzero(grid == wtp)[0]))
d = A._Draws(**{f: given[f] for f in A._Draws.__dataclass_fields__})
evpi_pp = voi.evpi(cost, qaly, grid)
takes = "workers" in inspect.signature(A.evppi_tables).parameters
kw = {"workers": meta["workers"]} if meta["workers"] and takes else {}
t = time.perf_counter()
table, _ = A.evppi_tables(d, meta["groups"], draws, evpi_pp, 1.0, **kw)
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds,
                  "evppi": dict(zip(table["group"], table["evppi_per_patient"].astype(float)))}))
"""


def save_results(n: int, folder: Path, workers: int | None = None) -> tuple[Path, Path]:
    """Per-draw cost, QALYs and parameter draws of a GB PSA of ``n`` draws, from this checkout."""
    sys.path.insert(0, str(ROOT))
    from cea.analysis.psa import parameter_groups
    from cea.pipeline.psa import run_psa

    c = run_psa(ROOT / "inputs", "GB", n, SEED).countries["GB"]
    groups = parameter_groups(c.ptable, c.draws)
    columns = sorted({p for ps in groups.values() for p in ps})
    arrays, meta = folder / f"evppi_{n}.npz", folder / f"evppi_{n}.json"
    import numpy as np

    np.savez(arrays, cost=c.run.cost, qaly=c.run.qaly, grid=c.tables.evpi["wtp"].to_numpy(),
             draws=c.draws[columns].to_numpy())  # fmt: skip
    meta.write_text(json.dumps({"names": c.spec.strategy_names, "wtp": c.tables.headline["wtp"],
                                "groups": groups, "columns": columns, "workers": workers}))  # fmt: skip
    return arrays, meta


def measure(checkout: Path, arrays: Path, meta: Path) -> dict:
    """The EVPPI tables in a fresh interpreter, importing ``cea`` from ``checkout``."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = subprocess.run([sys.executable, "-c", CASE, str(arrays), str(meta)], cwd=checkout,
                         env=env, capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, default=None, help="another checkout to compare")
    ap.add_argument("--draws", nargs="+", type=int, default=[10_000, 100_000])
    ap.add_argument("--repeat", type=int, default=3, help="runs per side; the median is kept")
    ap.add_argument(
        "--workers", type=int, default=None, help="threads of the EVPPI (default: CPUs)"
    )
    args = ap.parse_args(argv)
    sides = {"new": ROOT}
    if args.baseline is not None:
        sides["baseline"] = args.baseline.resolve()
    results: dict[int, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.draws:
            arrays, meta = save_results(n, Path(tmp), args.workers)
            runs = {s: [] for s in sides}
            for _ in range(args.repeat):
                for s, path in sides.items():  # alternated, so that both see the same load
                    runs[s].append(measure(path, arrays, meta))
            results[n] = {
                s: {"seconds": statistics.median(r["seconds"] for r in rs), "evppi": rs[0]["evppi"]}
                for s, rs in runs.items()
            }
    first = min(results)
    head = f"{'draws':>9}" + "".join(f"{s + ' s':>12}{s + ' growth':>14}" for s in sides)
    print(head + ("   new/baseline" if len(sides) > 1 else ""))
    for n, res in results.items():
        line = f"{n:>9,}"
        for s in sides:
            line += f"{res[s]['seconds']:>12.3f}{res[s]['seconds'] / results[first][s]['seconds']:>14.1f}"
        if len(sides) > 1:
            line += f"{res['new']['seconds'] / res['baseline']['seconds']:>15.2f}"
        print(line)
    print("\nEVPPI per patient at the WTP")
    for n, res in results.items():
        for s in sides:
            vals = ", ".join(f"{g} {v:.1f}" for g, v in res[s]["evppi"].items())
            print(f"{n:>9,} {s:<9}{vals}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

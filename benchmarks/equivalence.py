"""Record every README command's outputs, and compare two such records.

Used to show that a restructuring changes no result: run ``record`` on the starting commit
and on the new one, then ``compare`` the two folders.

    python benchmarks/equivalence.py record OUT [--src CHECKOUT]
    python benchmarks/equivalence.py compare OLD NEW

``record`` runs each command of the README with ``python -m cea`` from ``--src`` (default:
this checkout) on its bundled inputs, each into ``OUT/<name>/``. ``compare`` compares every
CSV (numbers within ``RTOL`` relative, text exactly) and JSON file (fields that name a
version, commit, time or path aside) and prints one line per difference.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

RTOL = 1e-12  # equal within summation-order rounding
ATOL = 1e-13  # for values that are zero in one run and rounding noise in the other

# name -> arguments after `python -m cea`; OUT/<name> is appended as --out where it applies
COMMANDS = {
    "run_GB": ["run", "--country", "GB"],
    "run_US": ["run", "--country", "US"],
    "run_US_talq": ["run", "--country", "US", "--scenario", "inputs/scenarios/talquetamab.toml"],
    "run_subset": ["run", "--strategies", "none,primary_ivig"],
    "run_GB_xlsx": ["run", "--country", "GB", "--report", "xlsx"],
    "compare_all": ["compare", "--countries", "all"],
    "dsa_oneway": [
        "dsa",
        "--country",
        "GB",
        "--comparison",
        "primary_ivig:preemptive_ivig",
        "--outcome",
        "inmb",
    ],
    "dsa_twoway": [
        "dsa",
        "--country",
        "GB",
        "--two-way",
        "hr_igrt_severe,c_ivig_per_g",
        "--grid",
        "15",
    ],
    "dsa_xlsx": ["dsa", "--country", "GB", "--report", "xlsx"],
    "scenarios": ["scenarios", "--country", "GB"],
    "threshold": [
        "threshold",
        "--country",
        "GB",
        "--parameter",
        "hr_igrt_severe",
        "--comparison",
        "primary_ivig:none",
    ],
    "psa_10k": ["psa", "--country", "GB", "--draws", "10000", "--seed", "1"],
    "psa_xlsx": ["psa", "--country", "GB", "--draws", "2000", "--report", "xlsx"],
    "psa_all": ["psa", "--countries", "all", "--draws", "5000", "--seed", "1"],
    "check": ["check", "--country", "GB"],
}
# commands that write no folder: their printed table is compared instead
PRINT_ONLY = {"check"}
PRINTED = {f"{name}.stdout" for name in PRINT_ONLY}
# fields of run.json that differ between any two runs or checkouts
VOLATILE = {
    "version",
    "git_commit",
    "commit",
    "created",
    "timestamp",
    "elapsed_seconds",
    "seconds",
    "python",
    "platform",
    "packages",
    "package_versions",
    "out",
    "output",
    "inputs_path",
    "command",
    "argv",
    "time",
    "started",
    "finished",
    "wall_seconds",
    "timing",
}


def record(out: Path, src: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(src)}
    for name, args in COMMANDS.items():
        target = out / name
        writes = name not in PRINT_ONLY
        cmd = [
            sys.executable,
            "-m",
            "cea",
            *args,
            *(["--out", str(target), "--force"] if writes else []),
        ]
        proc = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True)
        (out / f"{name}.stdout").write_text(proc.stdout)
        (out / f"{name}.stderr").write_text(proc.stderr)
        print(f"{name}: exit {proc.returncode}", flush=True)
    # the template and a run from it
    tpl = out / "template.xlsx"
    for cmd in (
        ["template", "--out", str(tpl), "--force"],
        ["run", "--inputs", str(tpl), "--out", str(out / "run_from_template"), "--force"],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "cea", *cmd], cwd=src, env=env, capture_output=True, text=True
        )
        print(f"{cmd[0]}: exit {proc.returncode}", flush=True)


def _read(path: Path):
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".gz":
        with gzip.open(path, "rt") as fh:
            return pd.read_csv(fh)
    return pd.read_csv(path)


def _tables(root: Path) -> dict[Path, Path]:
    """Every file under ``root`` by its path relative to it, a Parquet file under the name of
    the gzip CSV that holds the same table."""
    out = {}
    for p in root.rglob("*"):
        if p.is_file():
            rel = p.relative_to(root)
            if rel.suffix == ".parquet":
                rel = rel.with_suffix(".csv.gz")
            out[rel] = p
    return out


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _json_diff(a, b, where: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{where}.{k}: only in {'new' if k in b else 'old'}")
            else:
                _json_diff(a[k], b[k], f"{where}.{k}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _json_diff(x, y, f"{where}[{i}]", out)
    elif isinstance(a, float) and isinstance(b, float | int) and not isinstance(b, bool):
        if not math.isclose(a, b, rel_tol=RTOL, abs_tol=ATOL):
            out.append(f"{where}: {a!r} != {b!r}")
    elif a != b:
        out.append(f"{where}: {str(a)[:80]!r} != {str(b)[:80]!r}")


def _csv_diff(a: pd.DataFrame, b: pd.DataFrame, where: str, out: list[str]) -> None:
    if list(a.columns) != list(b.columns):
        only_a = [c for c in a.columns if c not in b.columns]
        only_b = [c for c in b.columns if c not in a.columns]
        out.append(f"{where}: columns differ (only old {only_a}, only new {only_b})")
        common = [c for c in a.columns if c in b.columns]
        a, b = a[common], b[common]
    if a.shape != b.shape:
        out.append(f"{where}: shape {a.shape} != {b.shape}")
        return
    for col in a.columns:
        x, y = a[col], b[col]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            xa, ya = x.to_numpy(float), y.to_numpy(float)
            ok = np.isclose(xa, ya, rtol=RTOL, atol=ATOL, equal_nan=True)
            if not ok.all():
                i = int(np.argmin(ok))
                both = np.isfinite(xa) & np.isfinite(ya)
                diff = np.abs(xa - ya)[both]
                size = np.maximum(np.abs(xa[both]), np.abs(ya[both]))
                rel = float((diff / size.clip(1e-300)).max(initial=0.0))
                scale = float(size.max(initial=0.0))
                out.append(
                    f"{where}[{col}]: {(~ok).sum()} rows differ, e.g. row {i}: {x.iloc[i]!r} != "
                    f"{y.iloc[i]!r}; largest difference {rel:.1e} relative, "
                    f"{(diff.max(initial=0.0) / scale if scale else 0.0):.1e} of the column's "
                    "largest value"
                )
        elif not x.astype(str).equals(y.astype(str)):
            i = int(np.argmax(x.astype(str).to_numpy() != y.astype(str).to_numpy()))
            out.append(
                f"{where}[{col}]: text differs, e.g. row {i}: {x.iloc[i]!r} != {y.iloc[i]!r}"
            )


def compare(old: Path, new: Path) -> int:
    diffs: list[str] = []
    # a per-draw table compares with itself in either format (Parquet or gzip CSV)
    olds, news = _tables(old), _tables(new)
    n = 0
    for rel in sorted(olds.keys() | news.keys()):
        a, b = olds.get(rel, old / rel), news.get(rel, new / rel)
        if rel.suffix not in {".csv", ".json", ".gz"} and rel.name not in PRINTED:
            continue
        if not a.exists() or not b.exists():
            diffs.append(f"{rel}: only in {'new' if b.exists() else 'old'}")
            continue
        n += 1
        if rel.name in PRINTED:
            if a.read_text() != b.read_text():
                diffs.append(f"{rel}: printed text differs")
        elif rel.suffix == ".json":
            _json_diff(
                _strip(json.loads(a.read_text())),
                _strip(json.loads(b.read_text())),
                str(rel),
                diffs,
            )
        else:
            _csv_diff(_read(a), _read(b), str(rel), diffs)
    for d in diffs:
        print(d)
    print(f"{n} CSV/JSON files compared, {len(diffs)} differences")
    return 1 if diffs else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("out", type=Path)
    r.add_argument("--src", type=Path, default=Path(__file__).resolve().parents[1])
    c = sub.add_parser("compare")
    c.add_argument("old", type=Path)
    c.add_argument("new", type=Path)
    a = ap.parse_args()
    if a.cmd == "record":
        record(a.out.resolve(), a.src.resolve())
        return 0
    return compare(a.old, a.new)


if __name__ == "__main__":
    sys.exit(main())

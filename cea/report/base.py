"""The base case's files (results, incremental, comparisons, trace, parameters, run.json) and
its terminal summary."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cea import __version__
from cea.io.provenance import dumps, run_json
from cea.pipeline.base import BaseCase, describe
from cea.report.files import write_csv


def default_run_name(base: BaseCase) -> str:
    return f"{base.ptable.scenario.name}_{base.country.code}"


def write_base_outputs(base: BaseCase, folder: Path, command: str) -> None:
    """results.csv, incremental.csv, comparisons.csv, trace.csv, parameters.csv, run.json."""
    write_csv(base.results, folder / "results.csv")
    write_csv(base.incremental, folder / "incremental.csv")
    write_csv(base.comparisons, folder / "comparisons.csv")
    write_csv(base.trace, folder / "trace.csv")
    write_csv(base.ptable.df, folder / "parameters.csv")
    write_run_json(folder, base, command)


def write_run_json(folder: Path, base: BaseCase, command: str, seed=None, **extra) -> dict:
    """``run.json`` of a base case (and of any analysis on it: ``extra`` sections)."""
    meta = run_json(command, {**describe(base, seed), **extra}, base.inputs.hashes)
    (folder / "run.json").write_text(dumps(meta))
    return meta


def summary_text(base: BaseCase) -> str:
    """A readable summary of the base case for the terminal."""
    c = base.country
    lines = [
        f"cea {__version__} | {c.name} ({c.code}) | scenario: {base.ptable.scenario.name} | "
        f"{c.currency} {c.price_year} | WTP {c.wtp_per_qaly:,.0f} per QALY ({c.wtp_basis})",
        f"horizon {base.spec.n_cycles} cycles of {base.spec.cycle_days:g} days "
        f"({base.spec.n_cycles * base.spec.dt:.2f} years), discount {c.discount_rate_costs:.1%} costs / "
        f"{c.discount_rate_effects:.1%} effects, correction {base.spec.correction}",
        "",
    ]
    inc = base.incremental.set_index("strategy")
    res = base.results.set_index("strategy")
    header = f"{'strategy':<24}{'cost':>14}{'QALY':>9}{'LY':>8}{'severe inf':>11}{'Ig g':>8}{'ICER':>14}  status"
    lines.append(header)
    lines.append("-" * len(header))
    for s in inc.index:
        r = res.loc[s]
        icer = inc.loc[s, "icer"]
        icer_s = f"{icer:,.0f}" if pd.notna(icer) else ""
        lines.append(
            f"{s:<24}{r['cost']:>14,.0f}{r['qaly']:>9.4f}{r['ly']:>8.4f}"
            f"{r['severe_infections_undiscounted']:>11.3f}{r['ig_grams_undiscounted']:>8.0f}{icer_s:>14}  {inc.loc[s, 'status']}"
        )
    if not base.comparisons.empty:
        lines.append("")
        lines.append("comparisons:")
        for _, r in base.comparisons.iterrows():
            lines.append(
                f"  {r['comparison']:<36} dC {r['inc_cost']:>12,.0f}  dQALY {r['inc_effect']:>8.4f}  {r['interpretation']}"
                f"  INMB {r['inmb']:,.0f}"
            )
    return "\n".join(lines)

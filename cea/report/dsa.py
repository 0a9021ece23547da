"""The DSA's files (tables, figures, run.json) and terminal summaries: one-way, two-way,
scenarios and threshold."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from cea.analysis.dsa import with_labels
from cea.analysis.incremental import pairwise
from cea.io.output import MARKER
from cea.io.provenance import dumps, run_json
from cea.parameters.designs import BASE, PROB_EDGE
from cea.pipeline.base import BaseCase, describe, label_columns
from cea.pipeline.dsa import (
    THRESHOLD_SCAN_POINTS,
    THRESHOLD_XTOL_REL,
    OneWay,
    OneWayTables,
    Scenarios,
    Threshold,
    TwoWay,
    fmt_money,
)
from cea.report.files import write_csv
from cea.report.plots import dsa as plots
from cea.report.plots.style import parameter_labels

#: Bars drawn in a tornado figure (every parameter is in the CSV).
TORNADO_FIGURE_TOP = 20


#: Lines printed in the terminal summary.
SUMMARY_TOP = 10


def _fmt_value(x: float) -> str:
    if x is None or not math.isfinite(x):
        return str(x)
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def _header(base: BaseCase, comparison: tuple[str, str] | None = None) -> str:
    c = base.country
    s = (
        f"{c.name} ({c.code}) | {c.currency} {c.price_year} | WTP {c.wtp_per_qaly:,.0f} per QALY | "
        f"scenario: {base.ptable.scenario.name}"
    )
    if comparison is not None:
        s += f" | {comparison[0]} vs {comparison[1]}"
    return s


def _base_line(base: BaseCase, comparison: tuple[str, str]) -> str:
    pw = pairwise(base.outcomes, [comparison], wtp=base.country.wtp_per_qaly).iloc[0]
    cur = base.country.currency
    return (
        f"base case: dcost {fmt_money(pw['inc_cost'], cur)}, dQALY {pw['inc_effect']:.4f}, "
        f"{pw['interpretation']}, INMB {fmt_money(pw['inmb'], cur)}"
    )


def one_way_summary(ow: OneWay, table: pd.DataFrame, outcome: str, top: int = SUMMARY_TOP) -> str:
    comp = tuple(table["comparison"].iloc[0].split(" vs "))
    cur = ow.base.country.currency
    lines = [
        "One-way DSA | " + _header(ow.base, comp),
        _base_line(ow.base, comp),
        f"design: {len(ow.draws)} rows ({len(ow.ranges)} parameters x 2 + base) in "
        + (
            "one model call"
            if ow.calls == 1
            else f"{ow.calls} model calls (one, then halves to isolate rows it cannot evaluate)"
        )
        + f", {ow.seconds:.1f} s",
        "",
    ]
    if outcome == "inmb":
        head = (
            f"{'':>3} {'parameter':<34}{'range':>24}{'INMB low':>14}{'INMB high':>14}{'swing':>12}"
        )
        lines += [f"tornado on INMB ({cur}), by swing:", head, "-" * len(head)]
        for _, r in table.head(top).iterrows():
            flag = "  decision changes" if r["decision_changes"] else ""
            lines.append(
                f"{r['rank']:>3} {r['parameter']:<34}"
                f"{_fmt_value(r['low']) + ' to ' + _fmt_value(r['high']):>24}"
                f"{r['inmb_low']:>14,.0f}{r['inmb_high']:>14,.0f}{r['swing']:>12,.0f}{flag}"
            )
    else:
        head = f"{'':>3} {'parameter':<34}{'range':>24}  {'ICER at low':<34}{'ICER at high':<34}"
        lines += [
            f"tornado on the ICER ({cur} per QALY); quadrant flips first:",
            head,
            "-" * len(head),
        ]
        for _, r in table.head(top).iterrows():
            lines.append(
                f"{r['rank']:>3} {r['parameter']:<34}"
                f"{_fmt_value(r['low']) + ' to ' + _fmt_value(r['high']):>24}  "
                f"{r['interpretation_low']:<34}{r['interpretation_high']:<34}"
            )
    flips = table[table["decision_changes"]]["parameter"].tolist()
    lines.append("")
    lines.append(
        "INMB changes sign within the range of: " + (", ".join(flips) if flips else "no parameter")
    )
    for _, r in table[table["model_error"] != ""].iterrows():
        lines.append(f"model not evaluable for {r['parameter']} at {r['model_error']}")
    no_eff = table[~table["enters_comparison"]]["parameter"].tolist()
    if no_eff:
        lines.append(f"no effect on this comparison ({len(no_eff)}): " + ", ".join(no_eff))
    if not ow.skipped.empty:
        lines.append(
            f"skipped, zero-width range ({len(ow.skipped)}): " + ", ".join(ow.skipped["parameter"])
        )
    return "\n".join(lines)


def two_way_summary(tw: TwoWay) -> str:
    p1, p2 = tw.parameters
    g = tw.grid
    cur = tw.base.country.currency
    lines = [
        "Two-way DSA | " + _header(tw.base, tw.comparison),
        _base_line(tw.base, tw.comparison),
        f"grid: {len(tw.axes[0])} x {len(tw.axes[1])} points ({p1} {tw.axes[0][0]:.4g} to "
        f"{tw.axes[0][-1]:.4g}; {p2} {tw.axes[1][0]:.4g} to {tw.axes[1][-1]:.4g}; base values "
        f"included) in {'one model call' if tw.calls == 1 else f'{tw.calls} model calls'}, "
        f"{tw.seconds:.1f} s"
        + (
            f"; the model could not be evaluated at {len(tw.failures)} points"
            if tw.failures
            else ""
        ),
        f"INMB from {fmt_money(g['inmb'].min(), cur)} to {fmt_money(g['inmb'].max(), cur)}; "
        f"positive at {int((g['inmb'] > 0).sum())} of {len(g)} points",
        "optimal strategy at WTP: "
        + ", ".join(f"{s} {n}" for s, n in g["optimal_strategy"].value_counts().items())
        + " points",
    ]
    return "\n".join(lines)


def scenarios_summary(sc: Scenarios) -> str:
    cur = sc.base.country.currency
    lines = [
        "Scenarios | " + _header(sc.base),
        f"{len(sc.runs) - 1} scenarios beside the base case, {sc.seconds:.1f} s",
        "",
    ]
    hl = sc.headline
    if hl:
        lines.append(f"headline comparison: {hl[0]} vs {hl[1]} (INMB in {cur}; change vs base)")
    head = (
        f"{'scenario':<28}{'strategies':>10}  {'optimal at WTP':<18}{'INMB':>12}{'change':>10}"
        "  interpretation"
    )
    lines += [head, "-" * (len(head) + 24)]
    for _, r in sc.summary.iterrows():
        inmb_v = r.get("headline_inmb", np.nan)
        chg = r.get("headline_inmb_change", np.nan)
        lines.append(
            f"{r['scenario']:<28}{len(r['strategies'].split(',')):>10}  {r['optimal_strategy']:<18}"
            f"{(f'{inmb_v:,.0f}' if pd.notna(inmb_v) else 'n/a'):>12}"
            f"{(f'{chg:+,.0f}' if pd.notna(chg) else ''):>10}  "
            f"{r.get('headline_interpretation', '')}"
        )
    own = sc.comparisons[~sc.comparisons["in_base_case"]]
    if len(own):
        lines += ["", "scenario-specific comparisons:"]
        for _, r in own.iterrows():
            lines.append(
                f"  {r['scenario']:<26}{r['comparison']:<44}{r['interpretation']:<44}"
                f"INMB {fmt_money(r['inmb'], cur)}"
            )
    return "\n".join(lines)


def threshold_summary(th: Threshold) -> str:
    lines = [
        "Threshold | " + _header(th.base, th.comparison),
        _base_line(th.base, th.comparison),
        th.message,
    ]
    for r, y in zip(th.roots, th.inmb_at_roots, strict=True):
        lines.append(f"  check: model rerun at {th.parameter} = {r:.10g} gives INMB {y:.3g}")
    lines.append(f"{th.n_model_calls} model calls, {th.seconds:.1f} s")
    return "\n".join(lines)


def _run_json(base: BaseCase, command: str, analysis: dict) -> str:
    return dumps(run_json(command, {**describe(base), "analysis": analysis}, base.inputs.hashes))


def _records(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.to_json(orient="records"))


def _title(base: BaseCase, comparison: tuple[str, str] | None) -> str:
    c = base.country
    s = f"{c.code}, {c.currency} {c.price_year}, WTP {c.wtp_per_qaly:,.0f}/QALY"
    if base.ptable.scenario.name != BASE:
        s += f", scenario {base.ptable.scenario.name}"
    if comparison is not None:
        names = _strategy_labels(base)
        a, b = comparison
        s = f"{names.get(a, a)} vs {names.get(b, b)} | " + s
    return s


def _strategy_labels(*bases: BaseCase) -> dict[str, str]:
    return {s.strategy: s.label for b in bases for s in b.spec.strategies}


def write_one_way(
    ow: OneWay, comparison: tuple[str, str], tables: OneWayTables, folder: Path, command: str
) -> list[str]:
    """The one-way DSA's files: the tornado tables (INMB and ICER order), ranges, skipped
    parameters, per-row outcomes and comparisons, the two tornado figures and run.json."""
    folder = Path(folder)
    inmb_t, icer_t = tables.tornado_inmb, tables.tornado_icer
    write_csv(inmb_t, folder / "tornado_inmb.csv")
    write_csv(icer_t, folder / "tornado_icer.csv")
    write_csv(with_labels(ow.ranges, label_columns(ow.base, None)), folder / "ranges.csv")
    write_csv(ow.skipped, folder / "skipped.csv")
    write_csv(with_labels(ow.outcomes, label_columns(ow.base, None)), folder / "dsa_outcomes.csv")
    write_csv(
        with_labels(tables.comparisons, label_columns(ow.base, None)),
        folder / "dsa_comparisons.csv",
    )
    title = _title(ow.base, comparison)
    names = parameter_labels(ow.base.ptable.df, ow.base.country.price_year)
    plots.tornado_inmb(inmb_t, folder / "tornado_inmb.png", title, TORNADO_FIGURE_TOP, names)
    plots.tornado_icer(icer_t, folder / "tornado_icer.png", title, TORNADO_FIGURE_TOP, names)
    analysis = {
        "analysis": "one-way DSA",
        "comparison": list(comparison),
        "outcome_measures": ["inmb", "icer"],
        "wtp_per_qaly": ow.wtp,
        "design_rows": len(ow.draws),
        "design": "row 0 = base case; then each parameter at its low, then its high value; "
        "one run_model call with per-row calibration",
        "model_seconds": ow.seconds,
        "base_row_vs_base_case_max_rel_gap": ow.base_check,
        "model_calls": ow.calls,
        "rows_not_evaluable": {str(k): v for k, v in ow.failures.items()},
        "prob_edge": PROB_EDGE,
        "range_rule": "low/high of the parameter table, else the 2.5 and 97.5 percentiles of the "
        "distribution built from value and se (ParameterTable.dsa_range)",
        "ranges": _records(
            ow.ranges[
                [
                    "parameter",
                    "base_value",
                    "low",
                    "high",
                    "range_origin",
                    "evaluated_low",
                    "evaluated_high",
                ]
            ]
        ),
        "skipped": _records(ow.skipped),
    }
    (folder / "run.json").write_text(_run_json(ow.base, command, analysis))
    return sorted(p.name for p in folder.iterdir() if p.name != MARKER)


def write_two_way(tw: TwoWay, folder: Path, command: str) -> list[str]:
    folder = Path(folder)
    labels = label_columns(tw.base, tw.comparison)
    grid = with_labels(tw.grid, labels)
    write_csv(grid, folder / "twoway_grid.csv")
    write_csv(
        with_labels(tw.outcomes, label_columns(tw.base, None)), folder / "twoway_outcomes.csv"
    )
    units = {p: str(tw.base.ptable.df.loc[p, "unit"]) for p in tw.parameters}
    plots.two_way(
        grid, tw.parameters, units, folder / "twoway.png", _title(tw.base, tw.comparison),
        parameter_labels(tw.base.ptable.df, tw.base.country.price_year), _strategy_labels(tw.base),
    )  # fmt: skip
    analysis = {
        "analysis": "two-way DSA",
        "comparison": list(tw.comparison),
        "parameters": list(tw.parameters),
        "axes": {p: ax.tolist() for p, ax in zip(tw.parameters, tw.axes, strict=True)},
        "ranges": _records(tw.ranges[["parameter", "base_value", "low", "high", "range_origin"]]),
        "grid_points": len(tw.grid),
        "model_seconds": tw.seconds,
        "base_point_vs_base_case_max_rel_gap": tw.base_check,
        "model_calls": tw.calls,
        "points_not_evaluable": len(tw.failures),
        "prob_edge": PROB_EDGE,
    }
    (folder / "run.json").write_text(_run_json(tw.base, command, analysis))
    return sorted(p.name for p in folder.iterdir() if p.name != MARKER)


def write_scenarios(sc: Scenarios, folder: Path, command: str) -> list[str]:
    folder = Path(folder)
    write_csv(sc.summary, folder / "scenario_summary.csv")
    write_csv(sc.strategies, folder / "scenario_strategies.csv")
    write_csv(sc.comparisons, folder / "scenario_comparisons.csv")
    plots.scenarios(
        sc.comparisons,
        folder / "scenarios.png",
        _title(sc.base, None),
        _strategy_labels(*(r.case for r in sc.runs)),
    )
    analysis = {
        "analysis": "scenarios",
        "seconds": sc.seconds,
        "headline_comparison": list(sc.headline) if sc.headline else None,
        "scenarios": [
            {
                "name": r.case.ptable.scenario.name,
                "description": r.case.ptable.scenario.description,
                "file": r.path,
                "sha256": r.case.ptable.scenario.sha256,
                "strategies": r.case.spec.strategy_names,
                "discount_rate_costs": r.case.spec.discount_rate_costs,
                "discount_rate_effects": r.case.spec.discount_rate_effects,
                "n_cycles": r.case.spec.n_cycles,
                "calibrated_per_year": r.case.calibrated,
            }
            for r in sc.runs
        ],
    }
    (folder / "run.json").write_text(_run_json(sc.base, command, analysis))
    return sorted(p.name for p in folder.iterdir() if p.name != MARKER)


def write_threshold(th: Threshold, folder: Path, command: str) -> list[str]:
    folder = Path(folder)
    labels = label_columns(th.base, th.comparison)
    row = {
        "parameter": th.parameter,
        "unit": th.base.ptable.df.loc[th.parameter, "unit"],
        "base_value": th.base_value,
        "dsa_low": th.dsa_range[0] if th.dsa_range else np.nan,
        "dsa_high": th.dsa_range[1] if th.dsa_range else np.nan,
        "bracket_low": th.bracket[0],
        "bracket_high": th.bracket[1],
        "bracket_origin": th.bracket_origin,
        "inmb_at_bracket_low": th.inmb_at_ends[0],
        "inmb_at_bracket_high": th.inmb_at_ends[1],
        "status": "found" if th.found else "no crossing",
        "threshold": th.threshold,
        "inmb_at_threshold": (
            th.inmb_at_roots[th.roots.index(th.threshold)] if th.found else np.nan
        ),
        "all_thresholds": ";".join(f"{r:.10g}" for r in th.roots),
        "message": th.message,
    }
    write_csv(with_labels(pd.DataFrame([row]), labels), folder / "threshold.csv")
    scan = with_labels(th.scan, labels)
    write_csv(scan, folder / "threshold_scan.csv")
    plots.threshold(
        scan, row, folder / "threshold.png", _title(th.base, th.comparison),
        parameter_labels(th.base.ptable.df, th.base.country.price_year),
    )  # fmt: skip
    analysis = {
        "analysis": "threshold",
        "method": "vectorized scan of the bracket, then scipy.optimize.brentq on each sign change; "
        "the model is rerun at each root",
        "xtol_relative_to_bracket": THRESHOLD_XTOL_REL,
        "scan_points": THRESHOLD_SCAN_POINTS,
        "model_calls": th.n_model_calls,
        "seconds": th.seconds,
        "prob_edge": PROB_EDGE,
        **{k: v for k, v in row.items()},
    }
    (folder / "run.json").write_text(_run_json(th.base, command, analysis))
    return sorted(p.name for p in folder.iterdir() if p.name != MARKER)


def scenario_suffix(base: BaseCase) -> str:
    name = base.ptable.scenario.name
    return "" if name == BASE else f"_{name}"

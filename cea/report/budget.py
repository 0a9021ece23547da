"""Outputs of ``cea budget``: budget.csv, the figure, run.json and the console summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cea.analysis.regional import optimal_strategy
from cea.pipeline.base import describe
from cea.pipeline.budget import Budget, describe_budget
from cea.pipeline.decision import WITHOUT_BSAB_LABEL
from cea.report.base import write_run_json
from cea.report.files import write_csv
from cea.report.plots.budget import plot_budget, plot_budget_countries

#: The rows of the summary: (label, cost categories added up).
SUMMARY_GROUPS = (
    ("Ig", ("cost_ig",)),
    ("Ig administration", ("cost_ig_admin", "cost_scig_training")),
    ("monitoring", ("cost_monitoring",)),
    ("IgRT adverse events", ("cost_adverse_events",)),
    ("infections", ("cost_severe_infections", "cost_nonsevere_infections")),
    ("bispecific", ("cost_bsab",)),
    ("other care", ("cost_subsequent_therapy", "cost_end_of_life")),
)


def default_run_name(budgets: list[Budget], every: bool) -> str:
    if every:
        return "budget_all"
    return "budget_" + "-".join(b.country.code for b in budgets)


def write_outputs(budgets: list[Budget], folder: Path, command: str) -> list[str]:
    """budget.csv (every country), budget.png/svg (one country: by category; several: the
    cumulative net impact in US$ per country), run.json."""
    table = pd.concat([b.table for b in budgets], ignore_index=True)
    write_csv(table, folder / "budget.csv")
    if len(budgets) == 1:
        plot_budget(budgets[0], SUMMARY_GROUPS, folder / "budget.png")
    else:
        plot_budget_countries(table, folder / "budget.png")
    first = budgets[0]
    write_run_json(
        folder,
        first.base,
        command,
        budget={b.country.code: describe_budget(b) for b in budgets},
        countries={b.country.code: describe(b.base)["country"] for b in budgets},
    )
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def _row(label: str, values, total=None, fmt="{:,.0f}", width=14) -> str:
    cells = "".join(f"{fmt.format(v):>{width}}" for v in values)
    end = f"{fmt.format(total):>{width + 2}}" if total is not None else ""
    return f"  {label:<34}{cells}{end}"


def _share_text(b: Budget, mix: str) -> str:
    labels = b.base.results.set_index("strategy")["label"].to_dict()
    parts = []
    for name, s in zip(b.strategies, b.shares[mix], strict=True):
        if not s.any():
            continue
        pct = [f"{100 * x:.0f}%" for x in s]
        span = pct[0] if len(set(pct)) == 1 else f"{pct[0]} to {pct[-1]}"
        parts.append(f"{labels.get(name, name)} {span}")
    return "; ".join(parts)


def summary_text(b: Budget) -> str:
    """The budget impact in words and a table: per year and in total, undiscounted."""
    c, Y = b.country, b.years
    cur = f"{c.currency} {c.price_year}"
    t = b.totals
    head = "".join(f"{'year ' + str(y + 1):>14}" for y in range(Y)) + f"{'total':>16}"
    lines = [
        f"Budget impact | {c.name} ({c.code}) | scenario: {b.base.ptable.scenario.name} | "
        f"{Y} years | costs undiscounted, {cur} prices (ISPOR 2014 budget impact)",
        f"New patients starting a bispecific each year: {c.population_eligible_annual:,.0f} in "
        f"year 1, growing {100 * c.population_growth_annual:.1f}% a year "
        "(countries.csv: order-of-magnitude placeholders [E]); earlier years' patients still count.",
        f"Current mix: {_share_text(b, 'current')}.",
        f"New mix:     {_share_text(b, 'new')}.",
        "",
        f"  {'':<34}{head}",
        _row(f"current mix ({c.currency})", t["current"]["cost"], t["current"]["cost"].sum()),
        _row(f"new mix ({c.currency})", t["new"]["cost"], t["new"]["cost"].sum()),
        _row(f"net budget impact ({c.currency})", t["net"]["cost"], t["net"]["cost"].sum()),
    ]
    for label, cats in SUMMARY_GROUPS:
        v = sum(t["net"][k] for k in cats)
        if np.any(np.abs(v) > 0.5):
            lines.append(_row(f"  of which {label}", v, v.sum()))
    usd = t["net"]["cost"] / c.fx_lcu_per_usd
    lines.append(_row("net budget impact (US$)", usd, usd.sum()))
    lines += [
        "",
        "  Resources, new mix minus current (undiscounted):",
        _row("Ig (grams)", t["net"]["ig_grams"], t["net"]["ig_grams"].sum()),
        _row("IVIG infusion-chair hours", t["net"]["chair_hours"], t["net"]["chair_hours"].sum()),
        _row(
            "severe infections avoided",
            -t["net"]["severe_infections"],
            -t["net"]["severe_infections"].sum(),
            "{:,.1f}",
        ),
        _row(
            "infection deaths avoided",
            -t["net"]["infection_deaths"],
            -t["net"]["infection_deaths"].sum(),
            "{:,.1f}",
        ),
        _row(
            "person-years alive gained",
            t["net"]["life_years"],
            t["net"]["life_years"].sum(),
            "{:,.1f}",
        ),
    ]
    bsab = t["net"]["cost_bsab"].sum()
    total = t["net"]["cost"].sum()
    if total > 0 and bsab > 0:
        lines.append(
            f"\n  {100 * bsab / total:.0f}% of the net impact is the bispecific given to patients "
            "who live longer (and stay on it longer): the add-on problem (NICE DSU 2014); "
            "see `--set p_bsab_price_paid=...` for a confidential discount."
        )
    return "\n".join(lines)


def countries_summary(budgets: list[Budget]) -> str:
    """One line per country: cumulative net budget impact, local and US$, and Ig grams."""
    Y = budgets[0].years
    lines = [
        f"Budget impact over {Y} years, new mix minus current, undiscounted "
        "(costs in each country's currency and price year, and in US$ at market exchange rates); "
        "the cost-effective strategy of the mix at the country's WTP (costs and QALYs "
        "discounted), and with bispecific costs excluded*:",
        f"  {'country':<8}{'local currency':>24}{'US$':>16}{'Ig grams':>14}"
        f"{'severe infections avoided':>28}  {'cost-effective':<16}{'without bsAb costs*':<20}",
    ]
    for b in budgets:
        c, n = b.country, b.totals["net"]
        best = optimal_strategy(b.base.results, c.wtp_per_qaly)
        best_alt = optimal_strategy(b.base.results, c.wtp_per_qaly, without_bsab=True)
        lines.append(
            f"  {c.code:<8}{c.currency:>5} {n['cost'].sum():>18,.0f}"
            f"{n['cost'].sum() / c.fx_lcu_per_usd:>16,.0f}{n['ig_grams'].sum():>14,.0f}"
            f"{-n['severe_infections'].sum():>28,.1f}  {best:<16}{best_alt:<20}"
        )
    lines.append(f"* {WITHOUT_BSAB_LABEL}")
    scenario = budgets[0].base.ptable.scenario
    priced = sorted(n for n in {**scenario.parameters, **scenario.sets} if n.startswith("c_"))
    if priced:
        lines.append(
            f"note: {', '.join(priced)} set by the scenario or --set: the same number is used in "
            "every country's own currency"
        )
    return "\n".join(lines)

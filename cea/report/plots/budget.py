"""Figures of the budget impact (``cea budget``), drawn from its totals.

* one country: the net budget impact per year split by cost category (stacked bars, the net
  total marked), beside the total budget of the current and the new mix;
* several countries: the cumulative net budget impact per country in US$.

Axes, money labels and saving (PNG and SVG) as every figure (:mod:`cea.report.plots.style`).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cea.report.plots.style import money, save, thousands_formatter  # noqa: E402

#: Colour-blind-safe palette (Okabe & Ito 2008), one colour per cost category group.
PALETTE = ("#0072B2", "#56B4E9", "#009E73", "#F0E442", "#D55E00", "#CC79A7", "#999999")
CURRENT, NEW = "#999999", "#0072B2"
INCREASE, SAVING = "#D55E00", "#009E73"


def _labels(values: np.ndarray) -> list[str]:
    """Bar labels written as the axis writes its ticks (12,500 or 12.5M)."""
    return thousands_formatter().format_ticks(list(values))


def plot_budget(b, groups, path: Path) -> None:
    """Net budget impact per year by category group, and the two mixes' totals."""
    c, Y = b.country, b.years
    years = np.arange(1, Y + 1)
    net = b.totals["net"]
    parts = [(label, sum(net[k] for k in cats)) for label, cats in groups]
    parts = [(label, v) for label, v in parts if np.any(np.abs(v) > 0.5)]
    unit = f"{money(c.currency, c.price_year)}, undiscounted"
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    pos, neg = np.zeros(Y), np.zeros(Y)
    for i, (label, v) in enumerate(parts):
        bottom = np.where(v >= 0, pos, neg)
        ax.bar(years, v, bottom=bottom, color=PALETTE[i % len(PALETTE)], label=label, width=0.6)
        pos += np.where(v >= 0, v, 0)
        neg += np.where(v < 0, v, 0)
    total = net["cost"]
    ax.plot(years, total, "kD", label="net budget impact", zorder=3)
    for x, y, text in zip(years, total, _labels(total), strict=True):
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(0, 8), ha="center",
                    fontsize=8)  # fmt: skip
    ax.axhline(0, color="black", lw=0.8)
    ax.set_title("Net budget impact (new mix minus current) by category", fontsize=10)
    w = 0.38
    ax2.bar(years - w / 2, b.totals["current"]["cost"], w, color=CURRENT, label="current mix")
    ax2.bar(years + w / 2, b.totals["new"]["cost"], w, color=NEW, label="new mix")
    ax2.set_title("Total budget of patients starting a bispecific", fontsize=10)
    for a in (ax, ax2):
        a.set_xticks(years, [f"year {y}" for y in years])
        a.set_ylabel(unit)
        a.yaxis.set_major_formatter(thousands_formatter())
        a.legend(fontsize=8, loc="upper left", frameon=False)
    fig.suptitle(
        f"Budget impact, {c.name} ({c.code}), scenario {b.base.ptable.scenario.name}: "
        f"{c.population_eligible_annual:,.0f} new patients in year 1, growing "
        f"{100 * c.population_growth_annual:.1f}% a year",
        fontsize=11,
    )
    save(fig, path)


def plot_budget_countries(table: pd.DataFrame, path: Path) -> None:
    """Cumulative net budget impact over the horizon per country, US$ (horizontal bars)."""
    last = table[(table["mix"] == "net") & (table["measure"] == "cost")]
    last = last[last["year"] == last["year"].max()].sort_values("cumulative_usd")
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(last) + 1.6))
    values = last["cumulative_usd"].to_numpy(float)
    ax.barh(last["country"], values, color=np.where(values >= 0, INCREASE, SAVING))
    for y, (v, text) in enumerate(zip(values, _labels(values), strict=True)):
        ax.annotate(text, (v, y), textcoords="offset points",
                    xytext=(4 if v >= 0 else -4, 0), ha="left" if v >= 0 else "right",
                    va="center", fontsize=8)  # fmt: skip
    ax.axvline(0, color="black", lw=0.8)
    ax.xaxis.set_major_formatter(thousands_formatter())
    years = int(last["year"].max())
    ax.set_xlabel("US$, market exchange rates, undiscounted")
    ax.set_title(f"Net budget impact over {years} years (new mix minus current)", fontsize=10)
    ax.margins(x=0.15)
    save(fig, path)

"""Figures of the budget impact (``cea budget``), drawn from its totals.

* one country: the net budget impact per year split by cost category (stacked bars, the net
  total marked), beside the total budget of the current and the new mix;
* several countries: the cumulative net budget impact per country in US$.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

DPI = 150
#: Colour-blind-safe palette (Okabe & Ito 2008), one colour per category group.
PALETTE = ("#0072B2", "#56B4E9", "#009E73", "#F0E442", "#D55E00", "#CC79A7", "#999999")
THOUSANDS = FuncFormatter(lambda x, _: f"{x:,.0f}")


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    fig.savefig(path.with_suffix(".svg"), bbox_inches="tight")
    plt.close(fig)


def _scale(values: np.ndarray) -> tuple[float, str]:
    top = float(np.max(np.abs(values))) if values.size else 0.0
    if top >= 1e9:
        return 1e9, " (billions)"
    if top >= 1e6:
        return 1e6, " (millions)"
    if top >= 1e4:
        return 1e3, " (thousands)"
    return 1.0, ""


def plot_budget(b, groups, path: Path) -> None:
    """Net budget impact per year by category group, and the two mixes' totals."""
    c, Y = b.country, b.years
    years = np.arange(1, Y + 1)
    net = b.totals["net"]
    parts = [(label, sum(net[k] for k in cats)) for label, cats in groups]
    parts = [(label, v) for label, v in parts if np.any(np.abs(v) > 0.5)]
    scale, unit = _scale(np.array([b.totals["new"]["cost"], b.totals["current"]["cost"]]))
    nscale, nunit = _scale(np.abs(np.array([v for _, v in parts])).sum(axis=0))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    pos, neg = np.zeros(Y), np.zeros(Y)
    for i, (label, v) in enumerate(parts):
        v = v / nscale
        bottom = np.where(v >= 0, pos, neg)
        ax.bar(years, v, bottom=bottom, color=PALETTE[i % len(PALETTE)], label=label, width=0.6)
        pos += np.where(v >= 0, v, 0)
        neg += np.where(v < 0, v, 0)
    total = net["cost"] / nscale
    ax.plot(years, total, "kD", label="net budget impact", zorder=3)
    for x, y in zip(years, total, strict=True):
        ax.annotate(f"{y:,.1f}", (x, y), textcoords="offset points", xytext=(0, 8),
                    ha="center", fontsize=8)  # fmt: skip
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(years, [f"year {y}" for y in years])
    ax.set_ylabel(f"{c.currency} {c.price_year}{nunit}, undiscounted")
    ax.yaxis.set_major_formatter(
        THOUSANDS if nscale == 1 else FuncFormatter(lambda x, _: f"{x:,.1f}")
    )
    ax.set_title("Net budget impact (new mix minus current) by category", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", frameon=False)
    w = 0.38
    ax2.bar(years - w / 2, b.totals["current"]["cost"] / scale, w, color="#999999",
            label="current mix")  # fmt: skip
    ax2.bar(years + w / 2, b.totals["new"]["cost"] / scale, w, color="#0072B2", label="new mix")
    ax2.set_xticks(years, [f"year {y}" for y in years])
    ax2.set_ylabel(f"{c.currency} {c.price_year}{unit}, undiscounted")
    ax2.yaxis.set_major_formatter(
        THOUSANDS if scale == 1 else FuncFormatter(lambda x, _: f"{x:,.1f}")
    )
    ax2.set_title("Total budget of patients starting a bispecific", fontsize=10)
    ax2.legend(fontsize=8, loc="upper left", frameon=False)
    fig.suptitle(
        f"Budget impact, {c.name} ({c.code}), scenario {b.base.ptable.scenario.name}: "
        f"{c.population_eligible_annual:,.0f} new patients in year 1, growing "
        f"{100 * c.population_growth_annual:.1f}% a year",
        fontsize=11,
    )
    fig.tight_layout()
    _save(fig, path)


def plot_budget_countries(table: pd.DataFrame, path: Path) -> None:
    """Cumulative net budget impact over the horizon per country, US$ (horizontal bars)."""
    last = table[(table["mix"] == "net") & (table["measure"] == "cost")]
    last = last[last["year"] == last["year"].max()].sort_values("cumulative_usd")
    scale, unit = _scale(last["cumulative_usd"].to_numpy(float))
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(last) + 1.6))
    values = last["cumulative_usd"].to_numpy(float) / scale
    ax.barh(last["country"], values, color=np.where(values >= 0, "#D55E00", "#009E73"))
    for y, v in enumerate(values):
        ax.annotate(f"{v:,.1f}", (v, y), textcoords="offset points",
                    xytext=(4 if v >= 0 else -4, 0), ha="left" if v >= 0 else "right",
                    va="center", fontsize=8)  # fmt: skip
    ax.axvline(0, color="black", lw=0.8)
    ax.xaxis.set_major_formatter(
        THOUSANDS if scale == 1 else FuncFormatter(lambda x, _: f"{x:,.1f}")
    )
    years = int(last["year"].max())
    ax.set_xlabel(f"US${unit}, market exchange rates, undiscounted")
    ax.set_title(f"Net budget impact over {years} years (new mix minus current)", fontsize=10)
    ax.margins(x=0.15)
    fig.tight_layout()
    _save(fig, path)

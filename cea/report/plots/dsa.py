"""DSA figures: tornado (INMB and ICER), two-way heat map, threshold curve, scenario dot plot.

Each function draws one figure (PNG, and SVG beside it) from a table written by
:mod:`cea.report.dsa` (the same table as the CSV beside it), computes nothing but positions,
and returns the figure. Parameters are shown by their label with its unit
(:func:`cea.report.plots.style.parameter_labels`), strategies by their label; the CSVs keep
the codes.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import colors, transforms
from matplotlib.patches import Patch

from cea.report.plots.style import (
    comparison_label,
    comparison_style,
    fmt_value,
    money,
    parameter_label,
    save,
    strategy_label,
    strategy_style,
    thousands_formatter,
)

LOW_COLOUR = "#1f77b4"
HIGH_COLOUR = "#ff7f0e"
DECISION_COLOUR = "#d62728"
NUMERIC_QUADRANTS = ("NE", "SW")


def _money(x: float) -> str:
    return f"{x:,.0f}"


def _label(r: pd.Series, labels: dict | None) -> str:
    """Tornado row: ``Probability IgG ever falls low (proportion) [0.65 to 1]``."""
    name = parameter_label(labels, r["parameter"], str(r.get("unit", "") or ""))
    return f"{name} [{fmt_value(r['low'])} to {fmt_value(r['high'])}]"


#: Characters per line of a note under a figure.
NOTE_WIDTH = 130
#: Where a note under a figure starts, as a fraction of the figure's width from its left edge.
NOTE_LEFT = 0.01


def _note(ax, text: str) -> None:
    """A note under the axes, below its x label (a fixed distance in points, so it neither
    drifts away from a tall figure nor overlaps the label), from the figure's left edge (from
    the axes' left edge, after long row labels, it would run off the figure's right edge)."""
    ax.annotate(
        text,
        xy=(NOTE_LEFT, 0),
        xycoords=("figure fraction", "axes fraction"),
        xytext=(0, -42),
        textcoords="offset points",
        ha="left",
        va="top",
        fontsize=7,
    )


def _context(t: pd.DataFrame) -> tuple[str, float]:
    """(``"GBP 2024"``, WTP per QALY) of a DSA table."""
    r = t.iloc[0]
    year = r["price_year"] if "price_year" in t.columns else ""
    return money(str(r["currency"]), year).strip(), float(r["wtp_per_qaly"])


def tornado_inmb(
    table: pd.DataFrame, path: Path, title: str, top: int = 20, labels: dict | None = None
):
    """Bars from the base-case INMB to the INMB at each parameter's low (blue) and high
    (orange) value; the largest swings on top. Parameters with no effect are not drawn."""
    cur, wtp = _context(table)
    shown = table[table["enters_comparison"]].head(top)
    hidden = len(table) - len(shown)
    n = max(len(shown), 1)
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.38 * n))
    base = float(table["inmb_base"].iloc[0])
    y = np.arange(len(shown))[::-1]
    trans = transforms.blended_transform_factory(ax.transAxes, ax.transData)
    for yi, (_, r) in zip(y, shown.iterrows(), strict=True):
        missing = []
        for side, colour in (("low", LOW_COLOUR), ("high", HIGH_COLOUR)):
            if math.isfinite(r[f"inmb_{side}"]):
                ax.barh(
                    yi, r[f"inmb_{side}"] - base, left=base, color=colour, height=0.7, alpha=0.9
                )
            else:
                missing.append(f"{side}: model not evaluable")
        if missing:
            ax.text(
                1.01,
                yi,
                "; ".join(missing),
                transform=trans,
                fontsize=7,
                va="center",
                color=DECISION_COLOUR,
            )
    ax.set_yticks(y)
    ax.set_yticklabels(
        [_label(r, labels) + ("  *" if r["decision_changes"] else "") for _, r in shown.iterrows()],
        fontsize=8,
    )
    ax.axvline(base, color="black", lw=1)
    ax.axvline(0, color=DECISION_COLOUR, lw=1, ls="--")
    ax.xaxis.set_major_formatter(thousands_formatter())
    ax.set_xlabel(f"incremental net monetary benefit ({cur}) at WTP {wtp:,.0f} per QALY")
    ax.set_title(f"One-way DSA on INMB\n{title}", fontsize=10)
    handles = [
        Patch(color=LOW_COLOUR, label="parameter at low value"),
        Patch(color=HIGH_COLOUR, label="parameter at high value"),
        plt.Line2D([], [], color="black", label=f"base case ({_money(base)})"),
        plt.Line2D([], [], color=DECISION_COLOUR, ls="--", label="INMB = 0 (ICER = WTP)"),
    ]
    ax.legend(handles=handles, fontsize=7, loc="lower right")
    note = "* INMB changes sign within the range. " if shown["decision_changes"].any() else ""
    note += "Brackets: the parameter's low and high values, in its unit. "
    if hidden:
        note += (
            f"{hidden} parameters not drawn (smaller swings or no effect): see tornado_inmb.csv."
        )
    _note(ax, note)
    save(fig, path)
    return fig


def tornado_icer(
    table: pd.DataFrame, path: Path, title: str, top: int = 20, labels: dict | None = None
):
    """ICER tornado. An end whose quadrant differs from the base case's is written as text
    (e.g. "high: dominant (cheaper and more effective)"), never drawn as a number; when the
    base ICER is itself not a ratio (SE, NW, same) the figure says so instead of plotting."""
    cur, wtp = _context(table)
    q0 = str(table["quadrant_base"].iloc[0])
    if q0 not in NUMERIC_QUADRANTS:
        fig, ax = plt.subplots(figsize=(9, 2.5))
        ax.axis("off")
        ax.text(
            0.5,
            0.5,
            f"The base-case ICER is not a ratio: quadrant {q0} of the cost-effectiveness plane.\n"
            "An ICER tornado would show meaningless numbers; see tornado_inmb.png, and\n"
            "tornado_icer.csv for the quadrant and interpretation at each parameter's ends.",
            ha="center",
            va="center",
            fontsize=9,
        )
        ax.set_title(f"One-way DSA on the ICER\n{title}", fontsize=10)
        save(fig, path)
        return fig
    shown = table[table["enters_comparison"]].head(top)
    hidden = len(table) - len(shown)
    n = max(len(shown), 1)
    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.38 * n))
    base = float(table["icer_base"].iloc[0])
    y = np.arange(len(shown))[::-1]
    trans = transforms.blended_transform_factory(ax.transAxes, ax.transData)
    for yi, (_, r) in zip(y, shown.iterrows(), strict=True):
        flipped = []
        for side, colour in (("low", LOW_COLOUR), ("high", HIGH_COLOUR)):
            if r[f"quadrant_{side}"] == q0:
                ax.barh(
                    yi, r[f"icer_{side}"] - base, left=base, color=colour, height=0.7, alpha=0.9
                )
            else:
                flipped.append(f"{side}: {r[f'interpretation_{side}']}")
        if flipped:
            ax.text(
                1.01,
                yi,
                "; ".join(flipped),
                transform=trans,
                fontsize=7,
                va="center",
                color=DECISION_COLOUR,
            )
    ax.set_yticks(y)
    ax.set_yticklabels([_label(r, labels) for _, r in shown.iterrows()], fontsize=8)
    ax.axvline(base, color="black", lw=1)
    ax.axvline(wtp, color=DECISION_COLOUR, lw=1, ls="--")
    ax.xaxis.set_major_formatter(thousands_formatter())
    what = "per QALY gained" if q0 == "NE" else "saved per QALY lost (SW quadrant)"
    ax.set_xlabel(f"ICER ({cur} {what})")
    ax.set_title(f"One-way DSA on the ICER (base quadrant {q0})\n{title}", fontsize=10)
    handles = [
        Patch(color=LOW_COLOUR, label="parameter at low value"),
        Patch(color=HIGH_COLOUR, label="parameter at high value"),
        plt.Line2D([], [], color="black", label=f"base ICER ({_money(base)})"),
        plt.Line2D([], [], color=DECISION_COLOUR, ls="--", label=f"WTP ({wtp:,.0f})"),
    ]
    ax.legend(handles=handles, fontsize=7, loc="lower right")
    note = (
        "Ends outside the base quadrant are written in red at the right, not drawn: "
        "their ratio means something else."
    )
    if hidden:
        note += f" {hidden} parameters not drawn: see tornado_icer.csv."
    _note(ax, note)
    save(fig, path)
    return fig


def two_way(
    grid: pd.DataFrame,
    parameters: tuple[str, str],
    units: dict,
    path: Path,
    title: str,
    labels: dict | None = None,
    strategy_labels: dict | None = None,
):
    """Left: INMB over the grid (diverging colours, x = base case) with the INMB = 0 contour
    when INMB changes sign on the grid (else the title says on which side the whole grid lies).
    Right: the optimal strategy at the WTP at each point, in each strategy's colour."""
    p1, p2 = parameters
    cur, wtp = _context(grid)
    inmb = grid.pivot(index=p2, columns=p1, values="inmb")
    best = grid.pivot(index=p2, columns=p1, values="optimal_strategy")
    x, y = inmb.columns.to_numpy(float), inmb.index.to_numpy(float)
    z = inmb.to_numpy(float)
    base = grid[grid["is_base"]].iloc[0]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 5.4))
    lo, hi = np.nanmin(z), np.nanmax(z)
    # white is always INMB = 0 (blue positive, red negative), whatever the range
    if lo < 0 < hi:
        norm = colors.TwoSlopeNorm(vmin=lo, vcenter=0.0, vmax=hi)
    else:
        span = max(abs(lo), abs(hi)) or 1.0
        norm = colors.Normalize(vmin=-span, vmax=span)
    m = a1.pcolormesh(x, y, z, shading="nearest", cmap="RdBu", norm=norm)
    bar = fig.colorbar(m, ax=a1, label=f"INMB ({cur})")
    bar.formatter = thousands_formatter()
    bar.update_ticks()
    zero = None
    if lo < 0 < hi:
        zero = a1.contour(x, y, z, levels=[0.0], colors="black", linewidths=1.5)
    if zero is not None and len(zero.allsegs[0]):
        line = "black line: INMB = 0"
    elif hi <= 0:
        line = "INMB < 0 on the whole grid: no INMB = 0 line"
    else:
        line = "INMB > 0 on the whole grid: no INMB = 0 line"
    blank = "; blank: model not evaluable" if np.isnan(z).any() else ""
    comp = comparison_label(strategy_labels, grid["comparison"].iloc[0])
    a1.set_title(f"INMB of {comp}\n(blue > 0 > red; {line}{blank})", fontsize=9)
    names = sorted(best.stack().unique())
    codes = best.apply(lambda col: col.map({s: i for i, s in enumerate(names)})).to_numpy(float)
    shades = ["lightgrey" if s == "not evaluable" else strategy_style(s).colour for s in names]
    cmap = colors.ListedColormap(shades)
    a2.pcolormesh(x, y, codes, shading="nearest", cmap=cmap, vmin=-0.5, vmax=len(names) - 0.5)
    a2.legend(
        handles=[
            Patch(color=c, label=strategy_label(strategy_labels, s))
            for c, s in zip(shades, names, strict=True)
        ],
        fontsize=7,
        loc="upper right",
    )
    a2.set_title(f"Optimal strategy at WTP {wtp:,.0f} per QALY", fontsize=9)
    for ax in (a1, a2):
        ax.plot(base[p1], base[p2], marker="x", color="black", ms=9, mew=2)
        ax.set_xlabel(parameter_label(labels, p1, units.get(p1, "")))
        ax.set_ylabel(parameter_label(labels, p2, units.get(p2, "")))
    fig.suptitle(f"Two-way DSA | {title}\n(x = base case)", fontsize=10)
    save(fig, path)
    return fig


def threshold(
    scan: pd.DataFrame,
    result: dict,
    path: Path,
    title: str,
    labels: dict | None = None,
):
    """INMB against the parameter over each scanned bracket; the threshold(s) marked."""
    cur, _wtp = _context(scan)
    name = parameter_label(labels, result["parameter"], str(result.get("unit", "") or ""))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    brackets = ("#0072B2", "#E69F00", "#009E73", "#CC79A7")
    for i, (origin, g) in enumerate(scan.groupby("bracket", sort=False)):
        g = g.sort_values("value")
        ax.plot(
            g["value"],
            g["inmb"],
            marker="o",
            ms=3,
            lw=1.2,
            label=f"scan: {origin}",
            color=brackets[i % len(brackets)],
        )
    ax.axhline(0, color=DECISION_COLOUR, ls="--", lw=1, label="INMB = 0")
    ax.axvline(result["base_value"], color="black", lw=1, ls=":", label="base value")
    if math.isfinite(result["dsa_low"]) and result["dsa_low"] != result["dsa_high"]:
        ax.axvspan(
            result["dsa_low"], result["dsa_high"], color="grey", alpha=0.12, label="DSA range"
        )
    if result["status"] == "found":
        for r in str(result["all_thresholds"]).split(";"):
            ax.axvline(float(r), color=DECISION_COLOUR, lw=1.2)
        ax.annotate(
            f"threshold {result['threshold']:,.4g}",
            (result["threshold"], 0),
            textcoords="offset points",
            xytext=(6, 10),
            fontsize=8,
            color=DECISION_COLOUR,
        )
    ax.xaxis.set_major_formatter(thousands_formatter())
    ax.yaxis.set_major_formatter(thousands_formatter())
    ax.set_xlabel(name)
    ax.set_ylabel(f"INMB ({cur})")
    ax.set_title(f"Threshold analysis: {name}\n{title}", fontsize=10)
    ax.legend(fontsize=7)
    if result["status"] != "found":
        _note(ax, textwrap.fill(str(result["message"]), NOTE_WIDTH))
    save(fig, path)
    return fig


def scenarios(
    comparisons: pd.DataFrame, path: Path, title: str, strategy_labels: dict | None = None
):
    """INMB of each base-case comparison in each scenario: one marker per comparison, in the
    intervention's colour with the comparator's marker (:func:`comparison_style`)."""
    cur, wtp = _context(comparisons)
    t = comparisons[comparisons["in_base_case"]]
    order = list(dict.fromkeys(t["scenario"]))
    comps = list(dict.fromkeys(t["comparison"]))
    fig, ax = plt.subplots(figsize=(10, 1.5 + 0.35 * len(order)))
    ypos = {s: len(order) - 1 - i for i, s in enumerate(order)}
    for c in comps:
        g = t[t["comparison"] == c]
        st = comparison_style(c)
        ax.scatter(
            g["inmb"],
            g["scenario"].map(ypos),
            color=st.colour,
            marker=st.marker,
            edgecolors="black",
            linewidths=0.3,
            s=30,
            label=comparison_label(strategy_labels, c),
            zorder=3,
        )
    own = comparisons[~comparisons["in_base_case"]].drop_duplicates("scenario")
    if len(own):
        ax.scatter(
            own["inmb"],
            own["scenario"].map(ypos),
            color="black",
            marker="x",
            s=30,
            label="the scenario's own first comparison\n(e.g. "
            + comparison_label(strategy_labels, own["comparison"].iloc[0])
            + ";\nsee scenario_comparisons.csv)",
            zorder=4,
        )
    ax.axvline(0, color=DECISION_COLOUR, ls="--", lw=1)
    ax.set_yticks(list(ypos.values()))
    ax.set_yticklabels(list(ypos.keys()), fontsize=8)
    ax.grid(axis="y", lw=0.3)
    ax.xaxis.set_major_formatter(thousands_formatter())
    ax.set_xlabel(
        f"INMB ({cur}) at WTP {wtp:,.0f} per QALY (right of the dashed line: cost-effective)"
    )
    ax.set_title(f"Scenario analysis\n{title}", fontsize=10)
    ax.legend(
        fontsize=7,
        loc="center left",
        bbox_to_anchor=(1.01, 0.5),
        title="intervention colour, comparator marker",
        title_fontsize=7,
    )
    save(fig, path)
    return fig

"""Figures of the regional comparison (``cea compare``), drawn from its result tables.

* ``icer_vs_wtp.png``: each comparison's ICER as a multiple of the country's WTP;
* ``threshold_price.png``: threshold price per gram beside today's, in US$ per gram;
* ``optimal_strategy_heatmap.png``: the optimal strategy by country and WTP multiple.

Nothing is computed here beyond placing the numbers of ``regional.csv`` and
``regional_optimal.csv`` on the page (clipping to the axes, colours, labels).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

DPI = 150
#: Colour-blind-safe palette (Okabe & Ito 2008), one colour per comparison or strategy.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
GOOD, BAD, NEUTRAL = "#009E73", "#D55E00", "#555555"
#: Margin (in log10 units) beyond the data where dominant / dominated comparisons are drawn.
EDGE_DECADES = 0.35
#: The threshold-price axis ends at this multiple of the highest current price shown.
PRICE_AXIS_MULTIPLE = 2.5


def _money_context(regional: pd.DataFrame) -> str:
    years = sorted(set(regional["price_year"]))
    macro = sorted(set(regional["macro_year"]))
    return f"price year {', '.join(map(str, years))}; exchange rates and PPP of {', '.join(map(str, macro))}"


def _country_labels(regional: pd.DataFrame) -> list[str]:
    first = regional.drop_duplicates("country")
    return [f"{r.country}  ({r.currency} {r.wtp_lcu:,.0f}/QALY)" for r in first.itertuples()]


def plot_icer_vs_wtp(regional: pd.DataFrame, no_igrt: set[str], path: Path) -> None:
    """ICER / WTP per country (log axis), one panel for 'vs no IgRT', one for head-to-head."""
    countries = list(dict.fromkeys(regional["country"]))
    ylabels = _country_labels(regional)
    comps = list(dict.fromkeys(regional["comparison"]))
    comparator = regional.drop_duplicates("comparison").set_index("comparison")["comparator"]
    groups = [
        ("IgRT vs no IgRT", [c for c in comps if comparator[c] in no_igrt]),
        ("between IgRT strategies", [c for c in comps if comparator[c] not in no_igrt]),
    ]
    groups = [g for g in groups if g[1]]
    ratio = regional["icer_over_wtp"].to_numpy(float)
    finite = ratio[np.isfinite(ratio) & (ratio > 0)]
    lo = np.log10(finite.min()) if finite.size else -1.0
    hi = np.log10(finite.max()) if finite.size else 1.0
    lo, hi = min(lo, -0.5), max(hi, 0.5)
    left, right = 10 ** (lo - EDGE_DECADES), 10 ** (hi + EDGE_DECADES)
    y_of = regional["country"].map({c: i for i, c in enumerate(countries)})

    fig, axes = plt.subplots(
        1,
        len(groups),
        figsize=(6.5 * len(groups), 0.42 * len(countries) + 2.8),
        sharey=True,
        squeeze=False,
    )
    for ax, (title, names) in zip(axes[0], groups, strict=True):
        ax.axvspan(left, 1.0, color=GOOD, alpha=0.07, lw=0)
        ax.axvline(1.0, color=NEUTRAL, lw=1)
        offsets = np.linspace(-0.27, 0.27, len(names)) if len(names) > 1 else [0.0]
        handles = []
        present = set()
        for k, (name, dy) in enumerate(zip(names, offsets, strict=True)):
            colour = PALETTE[k % len(PALETTE)]
            sel = regional["comparison"] == name
            q = regional.loc[sel, "quadrant"]
            x = regional.loc[sel, "icer_over_wtp"]
            y = y_of[sel] + dy
            styles = {
                "NE": (x, dict(marker="o", color=colour, ms=6)),
                "SW": (x, dict(marker="o", mfc="white", mec=colour, mew=1.5, ms=6)),
                "SE": (np.full(len(x), left), dict(marker="<", color=colour, ms=7, clip_on=False)),
                "NW": (np.full(len(x), right), dict(marker=">", color=colour, ms=7, clip_on=False)),
            }
            for quad, (xs, style) in styles.items():
                m = (q == quad).to_numpy()
                if m.any():
                    ax.plot(np.asarray(xs)[m], y[m], ls="", **style)
                    present.add(quad)
            handles.append(Line2D([], [], color=colour, marker="o", ls="", label=name))
        notes = {
            "SW": Line2D(
                [],
                [],
                color=NEUTRAL,
                marker="o",
                mfc="white",
                ls="",
                label="hollow: SW (cheaper, fewer QALYs), cost-effective if > 1",
            ),
            "SE": Line2D([], [], color=NEUTRAL, marker="<", ls="", label="at left edge: dominant"),
            "NW": Line2D(
                [], [], color=NEUTRAL, marker=">", ls="", label="at right edge: dominated"
            ),
        }
        handles += [h for quad, h in notes.items() if quad in present]
        ax.set_xscale("log")
        ax.set_xlim(left, right)
        ax.set_title(title, fontsize=11)
        ax.set_xlabel("ICER / country WTP per QALY (log scale; shaded: below the WTP)")
        ax.grid(axis="x", which="major", alpha=0.3)
        ax.legend(
            handles=handles,
            fontsize=7.5,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.12),
            ncol=2,
            frameon=False,
        )
    axes[0][0].set_yticks(range(len(countries)), ylabels, fontsize=8.5)
    axes[0][0].set_ylim(len(countries) - 0.5, -0.5)
    fig.suptitle(
        "ICER relative to each country's willingness to pay per QALY (base case)\n"
        f"a currency-free ratio: ICER and WTP both in local currency ({_money_context(regional)})",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def plot_threshold_prices(regional: pd.DataFrame, path: Path) -> None:
    """Threshold vs today's price per gram, US$ at market exchange rates, one panel per comparison.

    A threshold below 0 (no price >= 0 makes the comparison cost-effective) is drawn in the
    shaded negative-price zone, so the distance to feasibility shows; values beyond the axis
    are drawn at its edge with an arrow and their value.
    """
    reg = regional[regional["price_item"] != ""]
    comps = list(dict.fromkeys(reg["comparison"]))
    countries = list(dict.fromkeys(reg["country"]))
    if not comps:
        return
    now_max = float(np.nanmax(reg["current_price_usd"]))
    thr = reg["threshold_price_usd"].to_numpy(float)
    thr = thr[np.isfinite(thr)]
    xmin = max(min(0.0, thr.min() if thr.size else 0.0), -PRICE_AXIS_MULTIPLE * now_max) * 1.08
    xmax = (
        min(max(now_max, thr.max() if thr.size else now_max), PRICE_AXIS_MULTIPLE * now_max) * 1.08
    )
    ncols = 2 if len(comps) > 1 else 1
    nrows = int(np.ceil(len(comps) / ncols))
    panel_h = 0.2 * len(countries) + 0.9
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(6.2 * ncols, panel_h * nrows + 2.0), squeeze=False, sharey=True
    )
    y_of = reg["country"].map({c: i for i, c in enumerate(countries)})
    for ax, name in zip(axes.flat, comps, strict=False):
        sel = (reg["comparison"] == name).to_numpy()
        sub = reg[sel]
        y = y_of[sel].to_numpy(float)
        product = sub["price_item"].iloc[0].removeprefix("c_").removesuffix("_per_g").upper()
        ax.axvspan(xmin, 0, color=NEUTRAL, alpha=0.08, lw=0)
        ax.axvline(0, color=NEUTRAL, lw=0.8)
        now = sub["current_price_usd"].to_numpy(float)
        p = sub["threshold_price_usd"].to_numpy(float)
        status = sub["threshold_status"].to_numpy()
        good = sub["cost_effective"].to_numpy(bool)
        shown = np.clip(p, xmin, xmax)
        has = np.isfinite(p)
        for i in np.flatnonzero(has):
            ax.plot(
                [now[i], shown[i]], [y[i], y[i]], color=GOOD if good[i] else BAD, lw=1.3, alpha=0.5
            )
        ax.plot(now, y, "|", color="black", ms=9, mew=2, ls="")
        for st, marker in (
            ("max_price", "D"),
            ("no_price", "X"),
            ("min_price", "^"),
            ("any_price", "^"),
        ):
            for ok in (True, False):
                m = has & (status == st) & (good == ok)
                if m.any():
                    ax.plot(
                        shown[m],
                        y[m],
                        marker,
                        color=GOOD if ok else BAD,
                        ms=6,
                        ls="",
                        clip_on=False,
                    )
        for i in np.flatnonzero(has & (p != shown)):  # beyond the axis: value written inside it
            below = p[i] < xmin
            ax.annotate(
                f"{p[i]:,.0f}",
                (shown[i], y[i]),
                xytext=(6 if below else -6, 0),
                textcoords="offset points",
                ha="left" if below else "right",
                va="center",
                fontsize=6.5,
            )
        for i in np.flatnonzero(~has):  # the price does not change the comparison
            ax.text(
                now[i],
                y[i],
                "  any price" if good[i] else "  never",
                color=GOOD if good[i] else BAD,
                va="center",
                fontsize=7,
            )
        ax.set_xlim(xmin, xmax)
        ax.set_title(f"{name}  (price of {product})", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(labelsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("US\\$ per gram (market exchange rate)", fontsize=8)
    for ax in list(axes.flat)[len(comps) :]:
        ax.axis("off")
    for row in axes:
        row[0].set_yticks(range(len(countries)), countries, fontsize=8)
        row[0].set_ylim(len(countries) - 0.5, -0.5)
    handles = [
        Line2D([], [], color="black", marker="|", ls="", ms=9, mew=2, label="today's price"),
        Line2D(
            [],
            [],
            color=GOOD,
            marker="D",
            ls="",
            label="threshold (maximum price); cost-effective today",
        ),
        Line2D(
            [],
            [],
            color=BAD,
            marker="D",
            ls="",
            label="threshold (maximum price); a price cut is needed",
        ),
        Line2D(
            [],
            [],
            color=BAD,
            marker="X",
            ls="",
            label="threshold below 0: not cost-effective at any price >= 0",
        ),
        Line2D(
            [],
            [],
            color=NEUTRAL,
            marker="^",
            ls="",
            label="minimum price (the intervention uses fewer grams)",
        ),
        Patch(color=NEUTRAL, alpha=0.15, label="negative prices"),
    ]
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=2,
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, 0.0),
    )
    fig.suptitle(
        "Ig price per gram at which each comparison becomes cost-effective at the country's WTP, vs today's price\n"
        f"US\\$ at market exchange rates ({_money_context(regional)}); local currency and I\\$ in regional.csv",
        fontsize=10.5,
    )
    height = panel_h * nrows + 2.0
    fig.tight_layout(rect=(0, 0.9 / height, 1, 1 - 0.55 / height))
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def plot_optimal_heatmap(optimal: pd.DataFrame, labels: dict[str, str], path: Path) -> None:
    """Optimal strategy (highest NMB) by country and multiple of the country's WTP."""
    grid = optimal[optimal["wtp_kind"] == "multiple"]
    countries = list(dict.fromkeys(grid["country"]))
    multiples = sorted(set(grid["wtp_multiple"].round(10)))
    order = [s for s in labels if s in set(grid["optimal_strategy"])]
    code = {s: i for i, s in enumerate(order)}
    mat = np.full((len(countries), len(multiples)), np.nan)
    for r in grid.itertuples():
        mat[countries.index(r.country), multiples.index(round(r.wtp_multiple, 10))] = code[
            r.optimal_strategy
        ]
    colours = [PALETTE[list(labels).index(s) % len(PALETTE)] for s in order]
    fig, ax = plt.subplots(figsize=(1.5 * len(multiples) + 4.2, 0.4 * len(countries) + 2.0))
    ax.imshow(mat, cmap=ListedColormap(colours), vmin=-0.5, vmax=len(order) - 0.5, aspect="auto")
    for i in range(len(countries)):
        for j in range(len(multiples)):
            s = order[int(mat[i, j])]
            dark = colours[int(mat[i, j])] in ("#0072B2", "#000000", "#D55E00", "#009E73")
            ax.text(
                j,
                i,
                labels[s],
                ha="center",
                va="center",
                fontsize=7,
                color="white" if dark else "black",
            )
    base = grid.drop_duplicates("country").set_index("country")
    ylab = []
    for c in countries:
        w = base.loc[c, "wtp_lcu"] / base.loc[c, "wtp_multiple"]
        ylab.append(f"{c}  ({base.loc[c, 'currency']} {w:,.0f})")
    ax.set_yticks(range(len(countries)), ylab, fontsize=8.5)
    ax.set_xticks(range(len(multiples)), [f"{m:g} x WTP" for m in multiples], fontsize=8.5)
    ax.set_xticks(np.arange(-0.5, len(multiples)), minor=True)
    ax.set_yticks(np.arange(-0.5, len(countries)), minor=True)
    ax.grid(which="minor", color="white", lw=1.5)
    ax.tick_params(which="minor", length=0)
    ax.legend(
        handles=[Patch(color=colours[i], label=labels[s]) for i, s in enumerate(order)],
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
        fontsize=8,
        frameon=False,
    )
    years = sorted(set(grid["price_year"]))
    ax.set_title(
        "Optimal strategy (highest net monetary benefit) by multiple of each country's WTP per QALY\n"
        f"(base WTP in local currency of {', '.join(map(str, years))} in brackets)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def plot_all(
    regional: pd.DataFrame,
    optimal: pd.DataFrame,
    labels: dict[str, str],
    no_igrt: set[str],
    folder: Path,
) -> list[str]:
    """Write the three figures into ``folder``; returns the file names."""
    folder = Path(folder)
    files = []
    if not regional.empty:
        plot_icer_vs_wtp(regional, no_igrt, folder / "icer_vs_wtp.png")
        files.append("icer_vs_wtp.png")
        if (regional["price_item"] != "").any():
            plot_threshold_prices(regional, folder / "threshold_price.png")
            files.append("threshold_price.png")
    if not optimal.empty:
        plot_optimal_heatmap(optimal, labels, folder / "optimal_strategy_heatmap.png")
        files.append("optimal_strategy_heatmap.png")
    return files

"""Figures of the regional comparison (``cea compare``), drawn from its result tables.

* ``icer_vs_wtp.png``: each comparison's ICER as a multiple of the country's WTP;
* ``threshold_price.png``: threshold price per gram beside today's, in US$ per gram;
* ``net_benefit_heatmap.png``: each strategy's net benefit against no IgRT at the country's
  WTP, in QALYs per patient (INMB / WTP, comparable across currencies), the optimal strategy
  framed.

Each is written as PNG and SVG. Nothing is computed here beyond placing the numbers of
``regional.csv`` and ``regional_strategies.csv`` on the page (clipping to the axes, colours,
labels, and the division of a net monetary benefit by the WTP it was computed at).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import colors, transforms  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullLocator  # noqa: E402

from cea.report.plots.style import (  # noqa: E402
    comparison_label,
    comparison_style,
    save,
    strategy_label,
    strategy_style,
    thousands_formatter,
)

GOOD, BAD, NEUTRAL = "#009E73", "#D55E00", "#555555"
#: Margin (in log10 units) beyond the data where dominant / dominated comparisons are drawn.
EDGE_DECADES = 0.35
#: Net-benefit heat map: colours are linear within +-this many QALYs, logarithmic beyond.
NHB_LINEAR_QALY = 0.5
NHB_TICKS = (-100, -30, -10, -3, -1, -0.3, 0, 0.3, 1, 3, 10, 30, 100)
#: The threshold-price axis ends at this multiple of the highest current price shown.
PRICE_AXIS_MULTIPLE = 2.5


def _money_context(regional: pd.DataFrame) -> str:
    years = sorted(set(regional["price_year"]))
    macro = sorted(set(regional["macro_year"]))
    return f"price year {', '.join(map(str, years))}; exchange rates and PPP of {', '.join(map(str, macro))}"


def _country_labels(regional: pd.DataFrame) -> list[str]:
    first = regional.drop_duplicates("country")
    return [f"{r.country}  ({r.currency} {r.wtp_lcu:,.0f}/QALY)" for r in first.itertuples()]


def plot_icer_vs_wtp(
    regional: pd.DataFrame, no_igrt: set[str], path: Path, labels: dict | None = None
):
    """ICER / WTP per country (log axis), one panel for 'vs no IgRT', one for head-to-head.
    Each comparison in the intervention's colour with the comparator's marker; filled: NE,
    hollow: SW; arrows at the edges: dominant / dominated."""
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
        for name, dy in zip(names, offsets, strict=True):
            st = comparison_style(name)
            colour = st.colour
            sel = regional["comparison"] == name
            q = regional.loc[sel, "quadrant"]
            x = regional.loc[sel, "icer_over_wtp"]
            y = y_of[sel] + dy
            styles = {
                "NE": (x, dict(marker=st.marker, color=colour, mec="black", mew=0.4, ms=6.5)),
                "SW": (x, dict(marker=st.marker, mfc="white", mec=colour, mew=1.5, ms=6.5)),
                "SE": (np.full(len(x), left), dict(marker="<", color=colour, ms=7, clip_on=False)),
                "NW": (np.full(len(x), right), dict(marker=">", color=colour, ms=7, clip_on=False)),
            }
            for quad, (xs, style) in styles.items():
                m = (q == quad).to_numpy()
                if m.any():
                    ax.plot(np.asarray(xs)[m], y[m], ls="", **style)
                    present.add(quad)
            handles.append(
                Line2D(
                    [], [], color=colour, marker=st.marker, mec="black", mew=0.4, ls="",
                    label=comparison_label(labels, name),
                )
            )  # fmt: skip
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
            title="intervention colour, comparator marker",
            title_fontsize=7.5,
        )
    axes[0][0].set_yticks(range(len(countries)), ylabels, fontsize=8.5)
    axes[0][0].set_ylim(len(countries) - 0.5, -0.5)
    fig.suptitle(
        "ICER relative to each country's willingness to pay per QALY (base case)\n"
        f"a currency-free ratio: ICER and WTP both in local currency ({_money_context(regional)})",
        fontsize=11,
    )
    save(fig, path)
    return fig


def plot_threshold_prices(regional: pd.DataFrame, path: Path, labels: dict | None = None):
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
        ax.xaxis.set_major_formatter(thousands_formatter())
        ax.set_title(f"{comparison_label(labels, name)}  (price of {product})", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(labelsize=8)
    for ax in axes[-1]:
        ax.set_xlabel(f"US\\$ per gram, {_years(reg)} prices (market exchange rate)", fontsize=8)
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
    save(fig, path, rect=(0, 0.9 / height, 1, 1 - 0.55 / height))
    return fig


def _years(regional: pd.DataFrame) -> str:
    return ", ".join(map(str, sorted(set(regional["price_year"]))))


def plot_net_benefit_heatmap(
    strategies: pd.DataFrame,
    regional: pd.DataFrame,
    labels: dict[str, str],
    no_igrt: set[str],
    path: Path,
):
    """Net health benefit of each strategy against no IgRT at each country's own WTP, in QALYs
    per patient: (NMB of the strategy - NMB of no IgRT) / WTP, i.e. the INMB expressed in QALYs,
    so countries in different currencies share one colour scale. Each cell also gives the INMB
    in local currency; the optimal strategy of each country is framed (when it is no IgRT, the
    row label says so). Without a no-IgRT strategy in the run, the reference is each country's
    optimal strategy."""
    t = strategies
    countries = list(dict.fromkeys(t["country"]))
    order = [s for s in labels if s in set(t["strategy"])] or list(dict.fromkeys(t["strategy"]))
    ref_of = {}
    for c in countries:
        sub = t[t["country"] == c]
        refs = [s for s in order if s in no_igrt and s in set(sub["strategy"])]
        ref_of[c] = (
            refs[0] if refs else str(sub.loc[sub["optimal"].astype(bool), "strategy"].iloc[0])
        )
    shown = [s for s in order if s not in no_igrt]
    wtp = regional.drop_duplicates("country").set_index("country")["wtp_lcu"]
    nhb = np.full((len(countries), len(shown)), np.nan)
    inmb = np.full_like(nhb, np.nan)
    best = {}
    for i, c in enumerate(countries):
        sub = t[t["country"] == c].set_index("strategy")
        best[c] = str(sub.index[sub["optimal"].astype(bool)][0])
        for j, s in enumerate(shown):
            if s in sub.index:
                inmb[i, j] = sub.loc[s, "nmb_lcu"] - sub.loc[ref_of[c], "nmb_lcu"]
                nhb[i, j] = inmb[i, j] / wtp[c]
    fig, ax = plt.subplots(figsize=(1.75 * len(shown) + 5.0, 0.42 * len(countries) + 2.4))
    span = max(np.nanmax(np.abs(nhb)), 2 * NHB_LINEAR_QALY) if np.isfinite(nhb).any() else 1.0
    # symmetric log scale: -0.4 and -2 QALYs differ in colour even beside -30
    norm = colors.SymLogNorm(linthresh=NHB_LINEAR_QALY, vmin=-span, vmax=span, base=10)
    m = ax.imshow(nhb, cmap="RdBu", norm=norm, aspect="auto")
    bar = fig.colorbar(m, ax=ax, pad=0.02)
    bar.set_ticks([t for t in NHB_TICKS if abs(t) <= span])
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:+g}" if v else "0"))
    bar.ax.yaxis.set_minor_locator(NullLocator())
    bar.set_label("net health benefit vs no IgRT (QALYs per patient)", fontsize=8)
    first = t.drop_duplicates("country").set_index("country")
    for i, c in enumerate(countries):
        for j, s in enumerate(shown):
            if not np.isfinite(nhb[i, j]):
                continue
            dark = abs(norm(nhb[i, j]) - 0.5) > 0.3
            ax.text(j, i, f"{nhb[i, j]:+.2f} QALY\n{first.loc[c, 'currency']} {inmb[i, j]:,.0f}",
                    ha="center", va="center", fontsize=6.5, color="white" if dark else "black")  # fmt: skip
            if s == best[c]:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="black", lw=2.2))
    ylab = []
    for c in countries:
        opt = "" if best[c] in shown else f"; optimal: {strategy_label(labels, best[c])}"
        ylab.append(f"{c}  ({first.loc[c, 'currency']} {wtp[c]:,.0f}/QALY{opt})")
    ax.set_yticks(range(len(countries)), ylab, fontsize=8)
    ax.set_xticks(range(len(shown)), [strategy_label(labels, s) for s in shown], fontsize=8,
                  rotation=20, ha="right")  # fmt: skip
    top = transforms.blended_transform_factory(ax.transData, ax.transAxes)
    for j, s in enumerate(shown):  # each strategy's own marker and colour, as in every figure
        st = strategy_style(s)
        ax.plot(j, 1.025, marker=st.marker, color=st.colour, mec="black", mew=0.5, ms=9,
                transform=top, clip_on=False, ls="")  # fmt: skip
    ax.set_xticks(np.arange(-0.5, len(shown)), minor=True)
    ax.set_yticks(np.arange(-0.5, len(countries)), minor=True)
    ax.grid(which="minor", color="white", lw=1.5)
    ax.tick_params(which="minor", length=0)
    refs = sorted({strategy_label(labels, r) for r in ref_of.values()})
    ax.set_title(
        f"Net benefit of each strategy against {', '.join(refs)} at each country's WTP per QALY "
        "(base case)\nQALYs per patient = INMB / WTP (blue: worth its cost; red: not); below, the "
        f"INMB in local currency of {_years(t)}; framed: the optimal strategy",
        fontsize=9.5,
        pad=26,
    )
    save(fig, path)
    return fig


def plot_all(
    regional: pd.DataFrame,
    strategies: pd.DataFrame,
    labels: dict[str, str],
    no_igrt: set[str],
    folder: Path,
) -> list[str]:
    """Write the three figures (PNG and SVG) into ``folder``; returns the file names."""
    folder = Path(folder)
    files = []

    def written(name: str) -> None:
        files.extend([name, str(Path(name).with_suffix(".svg"))])

    if not regional.empty:
        plot_icer_vs_wtp(regional, no_igrt, folder / "icer_vs_wtp.png", labels)
        written("icer_vs_wtp.png")
        if (regional["price_item"] != "").any():
            plot_threshold_prices(regional, folder / "threshold_price.png", labels)
            written("threshold_price.png")
    if not strategies.empty and not regional.empty:
        plot_net_benefit_heatmap(
            strategies, regional, labels, no_igrt, folder / "net_benefit_heatmap.png"
        )
        written("net_benefit_heatmap.png")
    return files

"""PSA figures (PNG) from the result tables of :mod:`cea.analysis.psa`; nothing is computed here.

Every figure names the currency, price year and the WTP per QALY it uses. Figures are drawn
with ``matplotlib.figure.Figure`` (no pyplot state), so they are safe to make in a loop.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import transforms
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from cea.report.plots.style import (
    STRATEGY_STYLES,
    comparison_label,
    comparison_style,
    legend_handles,
    money,
    save,
    strategy_label,
    strategy_style,
    thousands_formatter,
)

#: CE plane: at most this many draws per strategy are drawn (the first ones); means use all.
PLANE_MAX_POINTS = 5000
#: Convergence figure: points drawn per series (log-spaced; the CSV keeps every draw).
CONVERGENCE_MAX_POINTS = 1000
#: Markers along each line (so strategies differ by shape as well as colour), one every this
#: fraction of the axes diagonal, whatever the spacing of the points (matplotlib ``markevery``).
MARKER_SPACING = 0.08
#: Cross-country CEACs: the x axis is WTP / the country's WTP on a log scale from this multiple.
COUNTRY_CEAC_MIN_MULTIPLE = 0.1
#: Cross-country CEACs: the figure is at least this wide (inches), so that its title and legend
#: fit inside it with one or two countries.
COUNTRY_CEAC_MIN_WIDTH = 10.0
#: Colour of the EVPI and of bars that are not a strategy (EVPPI).
NEUTRAL = "#4D4D4D"
EVPPI_COLOUR = "#0072B2"


def _wtp_note(country) -> str:
    return (
        f"{money(country.currency, country.price_year)}; WTP {country.currency} "
        f"{country.wtp_per_qaly:,.0f} per QALY"
    )


def plot_ce_plane(
    plane: pd.DataFrame,
    country,
    path: Path,
    labels: dict | None = None,
    means: pd.DataFrame | None = None,
    n_draws: int | None = None,
) -> Figure:
    """Incremental cost against incremental QALYs of each strategy versus the reference, per
    draw, with the means and the WTP line (points below it are cost-effective). ``means``: the
    mean cost and QALYs of each strategy over all ``n_draws`` draws (columns ``strategy``,
    ``cost``, ``effect``; the PSA's incremental means), when the table holds only the first
    draws; None: the means of the table's draws."""
    fig = Figure(figsize=(7.5, 5.5))
    ax = fig.subplots()
    ref = plane["reference"].iloc[0] if len(plane) else ""
    cur = money(country.currency, country.price_year)
    m = None if means is None else means.set_index("strategy")
    for s, g in plane.groupby("strategy", sort=False):
        st = strategy_style(s)
        shown = g.iloc[:PLANE_MAX_POINTS]
        ax.scatter(
            shown["inc_qaly"],
            shown["inc_cost"],
            s=3,
            alpha=0.25,
            color=st.colour,
            linewidths=0,
            rasterized=True,
        )
        if m is None:
            mean_qaly, mean_cost = g["inc_qaly"].mean(), g["inc_cost"].mean()
        else:
            mean_qaly = m.loc[s, "effect"] - m.loc[ref, "effect"]
            mean_cost = m.loc[s, "cost"] - m.loc[ref, "cost"]
        ax.scatter(
            [mean_qaly],
            [mean_cost],
            s=70,
            color=st.colour,
            marker=st.marker,
            edgecolors="black",
            zorder=5,
            label=strategy_label(labels, s),
        )
    x = np.array(ax.get_xlim())
    ax.plot(
        x,
        country.wtp_per_qaly * x,
        color="black",
        lw=1,
        ls="--",
        label=f"WTP {country.currency} {country.wtp_per_qaly:,.0f} per QALY",
    )
    ax.set_xlim(*x)
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_xlabel(f"incremental QALYs vs {strategy_label(labels, ref)}")
    ax.set_ylabel(f"incremental cost vs {strategy_label(labels, ref)} ({cur})")
    ax.yaxis.set_major_formatter(thousands_formatter())
    in_table = plane.groupby("strategy").size().max() if len(plane) else 0
    n = in_table if n_draws is None else n_draws
    shown_n = min(in_table, PLANE_MAX_POINTS)
    ax.set_title(
        f"Cost-effectiveness plane, {country.name}: {shown_n:,} of {n:,} draws shown, means of all\n"
        "large markers: means; below the dashed line: cost-effective",
        fontsize=10,
    )
    ax.legend(fontsize=8, loc="best")
    save(fig, path)
    return fig


def _ceac_lines(ax, ceac: pd.DataFrame, labels: dict | None) -> None:
    """Each strategy's CEAC in its colour, with its marker every few points, and the CEAF."""
    for s, g in ceac.groupby("strategy", sort=False):
        st = strategy_style(s)
        ax.plot(
            g["wtp"],
            g["probability"],
            color=st.colour,
            marker=st.marker,
            ms=4,
            markevery=MARKER_SPACING,
            lw=1.5,
            label=strategy_label(labels, s),
        )


def _ceaf(ax, ceac: pd.DataFrame, x=None, label: bool = True) -> None:
    f = ceac[ceac["on_ceaf"]].sort_values("wtp")
    # one segment per run of the same optimal strategy, so switches are not joined by lines
    run_id = (f["strategy"] != f["strategy"].shift()).cumsum()
    for j, (_, seg) in enumerate(f.groupby(run_id)):
        xs = seg["wtp"] if x is None else x(seg["wtp"])
        name = "CEAF (optimal strategy)" if j == 0 and label else None
        ax.plot(xs, seg["probability"], color="black", lw=4, alpha=0.3, label=name)


def plot_ceac(ceac: pd.DataFrame, country, path: Path, labels: dict | None = None) -> Figure:
    """CEAC of every strategy with the CEAF (the strategy of highest expected net benefit).

    Two panels when the grid reaches far beyond the WTP: the decision-relevant range (up to
    5 x WTP) and the whole grid."""
    wtp = country.wtp_per_qaly
    alts = [a for a in country.wtp_alternatives]
    top = ceac["wtp"].max()
    near = max([5 * wtp, *alts])
    ranges = [(0, near)] + ([(0, top)] if top > near * 1.01 else [])
    fig = Figure(figsize=(7.5 * len(ranges) if len(ranges) > 1 else 7.5, 5.3))
    axes = np.atleast_1d(fig.subplots(1, len(ranges)))
    for ax, (lo, hi) in zip(axes, ranges, strict=True):
        sel = ceac[(ceac["wtp"] >= lo) & (ceac["wtp"] <= hi)]
        _ceac_lines(ax, sel, labels)
        _ceaf(ax, sel)
        ax.axvline(wtp, color="black", ls="--", lw=1)
        ax.text(wtp, 1.02, f" WTP {wtp:,.0f}", fontsize=7, ha="left")
        for a in alts:
            if lo <= a <= hi:
                ax.axvline(a, color="grey", ls=":", lw=1)
        ax.set_xlim(lo, hi)
        ax.set_ylim(-0.02, 1.06)
        ax.xaxis.set_major_formatter(thousands_formatter())
        ax.set_xlabel(
            f"willingness to pay per QALY ({money(country.currency, country.price_year)})"
        )
        ax.set_ylabel("probability cost-effective")
    axes[0].legend(fontsize=8, loc="center right")
    if len(axes) > 1:
        axes[0].set_title(f"up to {near:,.0f} per QALY", fontsize=9)
        axes[1].set_title("the whole grid", fontsize=9)
    fig.suptitle(
        f"CEAC and CEAF, {country.name} ({_wtp_note(country)}; dotted: alternative thresholds)",
        fontsize=10,
    )
    save(fig, path)
    return fig


def plot_evpi(evpi: pd.DataFrame, country, path: Path, horizon_years: float) -> Figure:
    """EVPI per patient (left axis) and for the country's population (right axis) across WTP."""
    cur = money(country.currency, country.price_year)
    fig = Figure(figsize=(7.5, 5))
    ax = fig.subplots()
    ax.plot(evpi["wtp"], evpi["evpi_per_patient"], color=NEUTRAL, lw=1.5)
    ax.axvline(country.wtp_per_qaly, color="black", ls="--", lw=1)
    ax.set_xlabel(f"willingness to pay per QALY ({cur})")
    ax.set_ylabel(f"EVPI per patient ({cur})")
    ax.xaxis.set_major_formatter(thousands_formatter())
    ax.yaxis.set_major_formatter(thousands_formatter())
    pop = evpi["evpi_population"]
    if np.isfinite(pop).any() and evpi["evpi_per_patient"].max() > 0:
        ratio = float(np.nanmax(pop) / evpi["evpi_per_patient"].max())
        ax2 = ax.twinx()
        lo, hi = ax.get_ylim()
        ax2.set_ylim(lo * ratio, hi * ratio)
        ax2.set_ylabel(f"population EVPI over {horizon_years:g} years ({cur})")
        ax2.yaxis.set_major_formatter(thousands_formatter())
    ax.set_title(
        f"Expected value of perfect information, {country.name}\n({_wtp_note(country)})",
        fontsize=10,
    )
    save(fig, path)
    return fig


#: Characters per line of the note under an EVPPI bar (wrapped, so it stays inside the panel).
EVPPI_NOTE_WIDTH = 70
#: Columns that may hold the standard error of an EVPPI estimate (drawn as an error bar).
EVPPI_SE_COLUMNS = ("evppi_se_per_patient", "se_per_patient", "evppi_se", "se")


def plot_evppi(
    evppi: pd.DataFrame, evppi_by_wtp: pd.DataFrame, evpi: pd.DataFrame, country, path: Path
) -> Figure:
    """EVPPI per patient of each parameter group at the WTP (bars, with the estimator's note
    written under each bar, wrapped inside the panel) and across WTP (curves, with the EVPI)."""
    cur = money(country.currency, country.price_year)
    fig = Figure(figsize=(13, 0.9 + 0.55 * max(len(evppi), 6)))
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.2]})
    t = evppi.iloc[::-1]
    y = np.arange(len(t))
    vals = t["evppi_per_patient"].fillna(0.0).to_numpy()
    status = t["status"].astype(str) if "status" in t.columns else pd.Series("ok", index=t.index)
    se_col = next((c for c in EVPPI_SE_COLUMNS if c in t.columns), None)
    ax.barh(
        y + 0.15,
        vals,
        height=0.45,
        xerr=t[se_col].fillna(0.0).to_numpy() if se_col else None,
        color=[EVPPI_COLOUR if st.startswith("ok") else "lightgrey" for st in status],
    )
    ax.set_yticks(y, t["group"])
    note_at = transforms.blended_transform_factory(ax.transAxes, ax.transData)
    for yi, (_, r), st in zip(y, t.iterrows(), status, strict=True):
        r2 = r.get("r2_min", np.nan)
        note = f"R^2 {r2:.2f}" if st.startswith("ok") and np.isfinite(r2) else ""
        if r.get("method") == "evpi":  # all parameters together: the EVPI, not a fit
            note = "= EVPI, by definition"
        if st != "ok":
            note = (note + "; " if note else "") + st
        if note:
            ax.text(
                0.01,
                yi - 0.22,
                textwrap.shorten(note, EVPPI_NOTE_WIDTH, placeholder=" ..."),
                transform=note_at,
                va="center",
                ha="left",
                fontsize=6.5,
                color=NEUTRAL,
            )
    ax.set_ylim(-0.6, len(t) - 0.4)
    at = evpi.loc[evpi["wtp"] == country.wtp_per_qaly, "evpi_per_patient"]
    if len(at):
        ax.axvline(float(at.iloc[0]), color="black", ls="--", lw=1, label="EVPI")
        ax.legend(fontsize=8, loc="lower right")
    ax.xaxis.set_major_formatter(thousands_formatter())
    ax.set_xlabel(f"EVPPI per patient at the WTP ({cur})")
    ax.set_title("by parameter group (note under each bar: fit and status)", fontsize=9)
    ax2.plot(evpi["wtp"], evpi["evpi_per_patient"], color="black", lw=2, label="EVPI")
    palette = [st.colour for st in STRATEGY_STYLES.values()][1:]
    for i, (g, d) in enumerate(evppi_by_wtp.groupby("group", sort=False)):
        if d["evppi_per_patient"].notna().any():
            ax2.plot(
                d["wtp"],
                d["evppi_per_patient"],
                lw=1.2,
                color=palette[i % len(palette)],
                label=g,
                ls="-" if i < len(palette) else "--",
            )
    ax2.axvline(country.wtp_per_qaly, color="black", ls="--", lw=1)
    ax2.xaxis.set_major_formatter(thousands_formatter())
    ax2.yaxis.set_major_formatter(thousands_formatter())
    ax2.set_xlabel(f"willingness to pay per QALY ({cur})")
    ax2.set_ylabel(f"per patient ({cur})")
    ax2.legend(fontsize=7, loc="upper left")
    ax2.set_title("across willingness to pay", fontsize=9)
    fig.suptitle(f"EVPPI by parameter group, {country.name} ({_wtp_note(country)})", fontsize=10)
    save(fig, path)
    return fig


def _log_thinned(g: pd.DataFrame, n_points: int = CONVERGENCE_MAX_POINTS) -> pd.DataFrame:
    """At most about ``n_points`` rows of a running series, evenly spaced on the log axis it
    is drawn on (first and last rows kept): the curve looks the same and draws in a fraction
    of the time for 10,000s of draws."""
    n = len(g)
    if n <= n_points:
        return g
    at = np.unique(np.geomspace(1, n, n_points).round().astype(int) - 1)
    return g.iloc[at]


def plot_convergence(conv: pd.DataFrame, country, path: Path, labels: dict | None = None) -> Figure:
    """Running mean +- 1.96 Monte Carlo SE of the INMB of each named comparison and of the
    probability that each strategy is cost-effective, against the number of draws (log axis;
    each series drawn at about CONVERGENCE_MAX_POINTS points evenly spaced on it)."""
    cur = money(country.currency, country.price_year)
    fig = Figure(figsize=(13, 5.5))
    ax, ax2 = fig.subplots(1, 2)
    conv = conv.groupby(["measure", "name"], sort=False, group_keys=False)[conv.columns].apply(
        _log_thinned
    )
    panels = (
        (ax, "inmb", comparison_style, comparison_label),
        (ax2, "p_cost_effective", strategy_style, strategy_label),
    )
    for a, measure, style, label in panels:
        for name, g in conv[conv["measure"] == measure].groupby("name", sort=False):
            st = style(name)
            a.plot(
                g["n_draws"],
                g["mean"],
                color=st.colour,
                marker=st.marker,
                ms=3.5,
                markevery=MARKER_SPACING,
                lw=1.2,
                label=label(labels, name),
            )
            a.fill_between(
                g["n_draws"],
                g["mean"] - 1.96 * g["mc_se"],
                g["mean"] + 1.96 * g["mc_se"],
                color=st.colour,
                alpha=0.15,
            )
        a.set_xscale("log")
        a.set_xlabel("number of draws (log scale)")
        a.xaxis.set_major_formatter(thousands_formatter())
    ax.axhline(0, color="grey", lw=0.5)
    ax.yaxis.set_major_formatter(thousands_formatter())
    ax.set_ylabel(f"INMB at the WTP ({cur})")
    ax.set_title("running mean of the INMB, band = 95% Monte Carlo interval", fontsize=9)
    ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    ax2.set_ylim(-0.02, 1.02)
    ax2.set_ylabel("probability cost-effective at the WTP")
    ax2.set_title("running probability of being cost-effective", fontsize=9)
    ax2.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, frameon=False)
    fig.suptitle(f"Convergence, {country.name} ({_wtp_note(country)})", fontsize=10)
    save(fig, path)
    return fig


def plot_countries_p_ce(
    table: pd.DataFrame, strategies: list[str], labels: dict | None, path: Path
) -> Figure:
    """Probability that each strategy is cost-effective at each country's own WTP: one stacked
    bar per country (the shares sum to 1), the optimal strategy (highest mean NMB) named at the
    right. ``table`` is the cross-country table of the PSA (``countries.csv``: ``country``,
    ``currency``, ``price_year``, ``wtp_per_qaly``, ``optimal_strategy``, ``p_ce_<strategy>``)."""
    n = len(table)
    fig = Figure(figsize=(11, 1.9 + 0.42 * n))
    ax = fig.subplots()
    y = np.arange(n)[::-1]
    left = np.zeros(n)
    for s in strategies:
        p = table[f"p_ce_{s}"].fillna(0.0).to_numpy(float)
        st = strategy_style(s)
        ax.barh(y, p, left=left, color=st.colour, height=0.7, label=strategy_label(labels, s))
        for yi, li, pi in zip(y, left, p, strict=True):
            if pi >= 0.08:
                ax.text(li + pi / 2, yi, f"{pi:.0%}", ha="center", va="center", fontsize=7,
                        color="white" if _dark(st.colour) else "black")  # fmt: skip
        left = left + p
    ax.set_yticks(
        y,
        [
            f"{r.country}  ({r.currency} {r.wtp_per_qaly:,.0f} per QALY, {r.price_year})"
            for r in table.itertuples()
        ],
        fontsize=8,
    )
    trans = transforms.blended_transform_factory(ax.transAxes, ax.transData)
    for yi, r in zip(y, table.itertuples(), strict=True):
        ax.text(1.01, yi, strategy_label(labels, r.optimal_strategy), transform=trans,
                va="center", fontsize=7.5)  # fmt: skip
    ax.text(1.01, n - 0.3, "optimal (highest\nmean NMB)", transform=trans, fontsize=7.5,
            va="bottom", weight="bold")  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, n - 0.4)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_xlabel("probability cost-effective at the country's own WTP (share of PSA draws)")
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False,
              ncol=min(len(strategies), 6))  # fmt: skip
    ax.set_title(
        "Probability each strategy is cost-effective, by country (PSA; WTP per QALY in the "
        "country's currency and price year)",
        fontsize=10,
        pad=26,
    )
    save(fig, path)
    return fig


def _dark(colour: str) -> bool:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.299 * r + 0.587 * g + 0.114 * b < 140


def plot_countries_ceac(
    ceacs: dict[str, pd.DataFrame], countries: dict, labels: dict | None, path: Path
) -> Figure:
    """The CEACs of every country side by side (small multiples, shared axes). The x axis is the
    WTP as a multiple of the country's own WTP (log scale), so panels in different currencies
    line up: 1 is the country's WTP (dashed)."""
    codes = list(ceacs)
    ncols = min(4, len(codes))
    nrows = int(np.ceil(len(codes) / ncols))
    fig = Figure(figsize=(max(3.4 * ncols, COUNTRY_CEAC_MIN_WIDTH), 2.6 * nrows + 1.4))
    axes = np.atleast_2d(fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False))
    shown: list[str] = []
    for ax, code in zip(axes.flat, codes, strict=False):
        c = countries[code]
        ceac = ceacs[code]
        ceac = ceac[ceac["wtp"] >= COUNTRY_CEAC_MIN_MULTIPLE * c.wtp_per_qaly]
        multiple = lambda w, c=c: w / c.wtp_per_qaly  # noqa: E731
        for s, g in ceac.groupby("strategy", sort=False):
            st = strategy_style(s)
            ax.plot(multiple(g["wtp"]), g["probability"], color=st.colour, lw=1.3,
                    marker=st.marker, ms=3, markevery=MARKER_SPACING,
                    label=strategy_label(labels, s))  # fmt: skip
            if s not in shown:
                shown.append(s)
        _ceaf(ax, ceac, x=multiple, label=False)
        ax.axvline(1.0, color="black", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_title(f"{c.name}: {c.currency} {c.wtp_per_qaly:,.0f} per QALY", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_ylim(-0.02, 1.04)
    for ax in list(axes.flat)[len(codes) :]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("probability cost-effective", fontsize=7.5)
    for j in range(ncols):  # the lowest panel of each column carries the x axis
        ax = axes[(len(codes) - 1 - j) // ncols, j] if j < len(codes) else axes[0, j]
        ax.xaxis.set_tick_params(labelbottom=True)
        ax.set_xlabel("WTP / country's WTP (log scale)", fontsize=7.5)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    handles = legend_handles(shown, labels, lw=1.3, ms=4)
    handles.append(Line2D([], [], color="black", lw=4, alpha=0.3, label="CEAF (optimal strategy)"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8,
               frameon=False)  # fmt: skip
    years = sorted({countries[k].price_year for k in codes})
    fig.suptitle(
        "CEACs by country (PSA): probability cost-effective against the WTP per QALY as a multiple "
        f"of each country's WTP (dashed: 1x)\nprices of {', '.join(map(str, years))} in each "
        "country's currency; the thick grey line is the CEAF",
        fontsize=10,
    )
    save(fig, path, rect=(0, 0.45 / (2.6 * nrows + 1.4), 1, 1))
    return fig


def figure_jobs(tables, country, folder: Path, labels: dict | None = None) -> list[tuple]:
    """Every PSA figure of one country as (function, arguments) pairs (:func:`plot_all` runs
    them)."""
    folder = Path(folder)
    horizon = tables.headline.get("decision_horizon_years", float("nan"))
    evppi = (tables.evppi, tables.evppi_by_wtp, tables.evpi, country, folder / "evppi.png")
    return [
        (plot_convergence, (tables.convergence, country, folder / "convergence.png", labels)),
        *([] if tables.evppi.empty else [(plot_evppi, evppi)]),  # empty: the run left it out
        (
            plot_ce_plane,
            (
                tables.ce_plane,
                country,
                folder / "ce_plane.png",
                labels,
                tables.incremental_means,
                tables.headline.get("n_draws"),
            ),
        ),  # fmt: skip
        (plot_ceac, (tables.ceac, country, folder / "ceac.png", labels)),
        (plot_evpi, (tables.evpi, country, folder / "evpi.png", horizon)),
    ]


def plot_all(tables, country, folder: Path, labels: dict | None = None) -> list[Figure]:
    """Every PSA figure of one country into ``folder`` (PNG, and SVG beside each)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    return [f(*args) for f, args in figure_jobs(tables, country, folder, labels)]


def plot_countries(
    table: pd.DataFrame,
    ceacs: dict[str, pd.DataFrame],
    countries: dict,
    strategies: list[str],
    labels: dict | None,
    folder: Path,
) -> list[Figure]:
    """The cross-country PSA figures into ``folder``: ``countries_p_ce.png`` (probability
    cost-effective at each country's WTP) and ``countries_ceac.png`` (the CEACs side by side)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [
        plot_countries_p_ce(table, strategies, labels, folder / "countries_p_ce.png"),
        plot_countries_ceac(ceacs, countries, labels, folder / "countries_ceac.png"),
    ]

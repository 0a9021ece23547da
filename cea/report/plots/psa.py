"""PSA figures (PNG) from the result tables of :mod:`cea.analysis.psa`; nothing is computed here.

Every figure names the currency, price year and the WTP per QALY it uses. Figures are drawn
with ``matplotlib.figure.Figure`` (no pyplot state), so they are safe to make in a loop.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

#: CE plane: at most this many draws per strategy are drawn (the first ones); means use all.
PLANE_MAX_POINTS = 5000
#: Convergence figure: points drawn per series (log-spaced; the CSV keeps every draw).
CONVERGENCE_MAX_POINTS = 1000
DPI = 150
COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666")


def _compact(x: float) -> str:
    """Axis label: 1,500 / 25k / 1.5M (keeps wide WTP axes readable)."""
    ax = abs(x)
    if ax >= 1e6:
        return f"{x / 1e6:.4g}M"
    if ax >= 1e4:
        return f"{x / 1e3:.4g}k"
    return f"{x:,.0f}" if ax >= 1 or x == 0 else f"{x:.3g}"


def _money(cur: str):
    return FuncFormatter(lambda x, _pos: _compact(x))


def _label(labels: dict | None, s: str) -> str:
    return (labels or {}).get(s, s)


def _wtp_note(country) -> str:
    return f"{country.currency} {country.price_year}; WTP {country.currency} {country.wtp_per_qaly:,.0f} per QALY"


def plot_ce_plane(plane: pd.DataFrame, country, path: Path, labels: dict | None = None) -> Path:
    """Incremental cost against incremental QALYs of each strategy versus the reference, per
    draw, with the means and the WTP line (points below it are cost-effective)."""
    fig = Figure(figsize=(7.5, 5.5))
    ax = fig.subplots()
    ref = plane["reference"].iloc[0] if len(plane) else ""
    for i, (s, g) in enumerate(plane.groupby("strategy", sort=False)):
        col = COLORS[i % len(COLORS)]
        shown = g.iloc[:PLANE_MAX_POINTS]
        ax.scatter(
            shown["inc_qaly"],
            shown["inc_cost"],
            s=3,
            alpha=0.25,
            color=col,
            linewidths=0,
            rasterized=True,
        )
        ax.scatter(
            [g["inc_qaly"].mean()],
            [g["inc_cost"].mean()],
            s=60,
            color=col,
            edgecolors="black",
            zorder=5,
            label=_label(labels, s),
        )
    x = np.array(ax.get_xlim())
    ax.plot(
        x,
        country.wtp_per_qaly * x,
        color="black",
        lw=1,
        ls="--",
        label=f"WTP {country.wtp_per_qaly:,.0f}/QALY",
    )
    ax.set_xlim(*x)
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_xlabel(f"incremental QALYs vs {_label(labels, ref)}")
    ax.set_ylabel(
        f"incremental cost vs {_label(labels, ref)} ({country.currency} {country.price_year})"
    )
    ax.yaxis.set_major_formatter(_money(country.currency))
    n = plane.groupby("strategy").size().max() if len(plane) else 0
    shown_n = min(n, PLANE_MAX_POINTS)
    ax.set_title(
        f"Cost-effectiveness plane, {country.name}: {shown_n:,} of {n:,} draws shown, means of all",
        fontsize=10,
    )
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path


def plot_ceac(ceac: pd.DataFrame, country, path: Path, labels: dict | None = None) -> Path:
    """CEAC of every strategy with the CEAF (the strategy of highest expected net benefit).

    Two panels when the grid reaches far beyond the WTP: the decision-relevant range (up to
    5 x WTP) and the whole grid."""
    wtp = country.wtp_per_qaly
    alts = [a for a in country.wtp_alternatives]
    top = ceac["wtp"].max()
    near = max([5 * wtp, *alts])
    ranges = [(0, near)] + ([(0, top)] if top > near * 1.01 else [])
    fig = Figure(figsize=(7.5 * len(ranges) if len(ranges) > 1 else 7.5, 5))
    axes = np.atleast_1d(fig.subplots(1, len(ranges)))
    for ax, (lo, hi) in zip(axes, ranges, strict=True):
        sel = ceac[(ceac["wtp"] >= lo) & (ceac["wtp"] <= hi)]
        for i, (s, g) in enumerate(sel.groupby("strategy", sort=False)):
            ax.plot(
                g["wtp"],
                g["probability"],
                color=COLORS[i % len(COLORS)],
                lw=1.5,
                label=_label(labels, s),
            )
        f = sel[sel["on_ceaf"]].sort_values("wtp")
        # one segment per run of the same optimal strategy, so switches are not joined by lines
        run_id = (f["strategy"] != f["strategy"].shift()).cumsum()
        for j, (_, seg) in enumerate(f.groupby(run_id)):
            label = "CEAF (optimal strategy)" if j == 0 else None
            ax.plot(seg["wtp"], seg["probability"], color="black", lw=4, alpha=0.3, label=label)
        ax.axvline(wtp, color="black", ls="--", lw=1)
        ax.text(wtp, 1.02, f"WTP {wtp:,.0f}", fontsize=7, ha="center")
        for a in alts:
            if lo <= a <= hi:
                ax.axvline(a, color="grey", ls=":", lw=1)
        ax.set_xlim(lo, hi)
        ax.set_ylim(-0.02, 1.06)
        ax.xaxis.set_major_formatter(_money(country.currency))
        ax.set_xlabel(f"willingness to pay per QALY ({country.currency} {country.price_year})")
        ax.set_ylabel("probability cost-effective")
    axes[0].legend(fontsize=8, loc="center right")
    fig.suptitle(
        f"CEAC and CEAF, {country.name} ({_wtp_note(country)}; dotted: alternative thresholds)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path


def plot_evpi(evpi: pd.DataFrame, country, path: Path, horizon_years: float) -> Path:
    """EVPI per patient (left axis) and for the country's population (right axis) across WTP."""
    fig = Figure(figsize=(7.5, 5))
    ax = fig.subplots()
    ax.plot(evpi["wtp"], evpi["evpi_per_patient"], color=COLORS[0], lw=1.5)
    ax.axvline(country.wtp_per_qaly, color="black", ls="--", lw=1)
    ax.set_xlabel(f"willingness to pay per QALY ({country.currency} {country.price_year})")
    ax.set_ylabel(f"EVPI per patient ({country.currency})")
    ax.xaxis.set_major_formatter(_money(country.currency))
    ax.yaxis.set_major_formatter(_money(country.currency))
    pop = evpi["evpi_population"]
    if np.isfinite(pop).any() and evpi["evpi_per_patient"].max() > 0:
        ratio = float(np.nanmax(pop) / evpi["evpi_per_patient"].max())
        ax2 = ax.twinx()
        lo, hi = ax.get_ylim()
        ax2.set_ylim(lo * ratio, hi * ratio)
        ax2.set_ylabel(f"population EVPI over {horizon_years:g} years ({country.currency})")
        ax2.yaxis.set_major_formatter(_money(country.currency))
    ax.set_title(
        f"Expected value of perfect information, {country.name} ({_wtp_note(country)})", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path


def plot_evppi(
    evppi: pd.DataFrame, evppi_by_wtp: pd.DataFrame, evpi: pd.DataFrame, country, path: Path
) -> Path:
    """EVPPI per patient of each parameter group at the WTP (bars, with R^2 and status) and
    across WTP (curves, with the EVPI)."""
    fig = Figure(figsize=(13, 5))
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.2]})
    t = evppi.iloc[::-1]
    y = np.arange(len(t))
    vals = t["evppi_per_patient"].fillna(0.0).to_numpy()
    ax.barh(
        y, vals, color=[COLORS[0] if str(s).startswith("ok") else "lightgrey" for s in t["status"]]
    )
    ax.set_yticks(y, t["group"])
    for yi, (_, r) in zip(y, t.iterrows(), strict=True):
        ok = str(r["status"]).startswith("ok")
        note = f" R^2 {r['r2_min']:.2f}" if ok and np.isfinite(r["r2_min"]) else ""
        if r["status"] != "ok":
            note += " " + str(r["status"])[:48]
        ax.text(
            r["evppi_per_patient"] if np.isfinite(r["evppi_per_patient"]) else 0,
            yi,
            note,
            va="center",
            fontsize=7,
        )
    at = evpi.loc[evpi["wtp"] == country.wtp_per_qaly, "evpi_per_patient"]
    if len(at):
        ax.axvline(float(at.iloc[0]), color="black", ls="--", lw=1, label="EVPI")
        ax.legend(fontsize=8, loc="lower right")
    ax.xaxis.set_major_formatter(_money(country.currency))
    ax.set_xlabel(f"EVPPI per patient at WTP ({country.currency})")
    ax.set_title("by parameter group (regression; R^2 = worst fit)", fontsize=9)
    ax2.plot(evpi["wtp"], evpi["evpi_per_patient"], color="black", lw=2, label="EVPI")
    for i, (g, d) in enumerate(evppi_by_wtp.groupby("group", sort=False)):
        if d["evppi_per_patient"].notna().any():
            ax2.plot(
                d["wtp"],
                d["evppi_per_patient"],
                lw=1.2,
                color=COLORS[i % len(COLORS)],
                label=g,
                ls="-" if i < len(COLORS) else "--",
            )
    ax2.axvline(country.wtp_per_qaly, color="black", ls="--", lw=1)
    ax2.xaxis.set_major_formatter(_money(country.currency))
    ax2.yaxis.set_major_formatter(_money(country.currency))
    ax2.set_xlabel(f"willingness to pay per QALY ({country.currency} {country.price_year})")
    ax2.set_ylabel(f"per patient ({country.currency})")
    ax2.legend(fontsize=7, loc="upper left")
    ax2.set_title("across willingness to pay", fontsize=9)
    fig.suptitle(f"EVPPI by parameter group, {country.name} ({_wtp_note(country)})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path


def _log_thinned(g: pd.DataFrame, n_points: int = CONVERGENCE_MAX_POINTS) -> pd.DataFrame:
    """At most about ``n_points`` rows of a running series, evenly spaced on the log axis it
    is drawn on (first and last rows kept): the curve looks the same and draws in a fraction
    of the time for 10,000s of draws."""
    n = len(g)
    if n <= n_points:
        return g
    at = np.unique(np.geomspace(1, n, n_points).round().astype(int) - 1)
    return g.iloc[at]


def plot_convergence(conv: pd.DataFrame, country, path: Path, labels: dict | None = None) -> Path:
    """Running mean +- 1.96 Monte Carlo SE of the INMB of each named comparison and of the
    probability that each strategy is cost-effective, against the number of draws (log axis;
    each series drawn at about CONVERGENCE_MAX_POINTS points evenly spaced on it)."""
    fig = Figure(figsize=(13, 5))
    ax, ax2 = fig.subplots(1, 2)
    conv = conv.groupby(["measure", "name"], sort=False, group_keys=False)[conv.columns].apply(
        _log_thinned
    )
    for i, (name, g) in enumerate(conv[conv["measure"] == "inmb"].groupby("name", sort=False)):
        col = COLORS[i % len(COLORS)]
        ax.plot(g["n_draws"], g["mean"], color=col, lw=1.2, label=name)
        ax.fill_between(
            g["n_draws"],
            g["mean"] - 1.96 * g["mc_se"],
            g["mean"] + 1.96 * g["mc_se"],
            color=col,
            alpha=0.15,
        )
    ax.set_xscale("log")
    ax.axhline(0, color="grey", lw=0.5)
    ax.yaxis.set_major_formatter(_money(country.currency))
    ax.set_xlabel("number of draws")
    ax.set_ylabel(f"INMB at WTP ({country.currency})")
    ax.set_title("running mean of INMB, band = 95% Monte Carlo interval", fontsize=9)
    ax.legend(fontsize=6, loc="best")
    for i, (name, g) in enumerate(
        conv[conv["measure"] == "p_cost_effective"].groupby("name", sort=False)
    ):
        col = COLORS[i % len(COLORS)]
        ax2.plot(g["n_draws"], g["mean"], color=col, lw=1.2, label=_label(labels, name))
        ax2.fill_between(
            g["n_draws"],
            g["mean"] - 1.96 * g["mc_se"],
            g["mean"] + 1.96 * g["mc_se"],
            color=col,
            alpha=0.15,
        )
    ax2.set_xscale("log")
    ax2.set_ylim(-0.02, 1.02)
    ax2.set_xlabel("number of draws")
    ax2.set_ylabel("probability cost-effective at WTP")
    ax2.set_title("running probability of being cost-effective", fontsize=9)
    ax2.legend(fontsize=7, loc="best")
    fig.suptitle(f"Convergence, {country.name} ({_wtp_note(country)})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path


def figure_jobs(tables, country, folder: Path, labels: dict | None = None) -> list[tuple]:
    """Every PSA figure of one country as (function, arguments) pairs (:func:`plot_all` runs
    them)."""
    folder = Path(folder)
    horizon = tables.headline.get("decision_horizon_years", float("nan"))
    return [
        (plot_convergence, (tables.convergence, country, folder / "convergence.png", labels)),
        (
            plot_evppi,
            (tables.evppi, tables.evppi_by_wtp, tables.evpi, country, folder / "evppi.png"),
        ),
        (plot_ce_plane, (tables.ce_plane, country, folder / "ce_plane.png", labels)),
        (plot_ceac, (tables.ceac, country, folder / "ceac.png", labels)),
        (plot_evpi, (tables.evpi, country, folder / "evpi.png", horizon)),
    ]


def plot_all(tables, country, folder: Path, labels: dict | None = None) -> list[Path]:
    """Every PSA figure of one country into ``folder``."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    return [f(*args) for f, args in figure_jobs(tables, country, folder, labels)]

"""The PSA's files (per-draw CSVs, tables, figures, run.json) and terminal summary."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from cea.analysis import voi
from cea.igrt.spec import COST_CATEGORIES, COUNTS
from cea.io.output import OutputDir
from cea.io.provenance import dumps, run_json
from cea.pipeline.base import describe
from cea.pipeline.decision import WITHOUT_BSAB_LABEL, psa_without_bsab
from cea.pipeline.psa import CountryPsa, PsaRun, psa_conventions, regional_table
from cea.report.files import write_csv
from cea.report.plots.psa import plot_all, plot_countries

#: gzip level of draws.csv.gz / outcomes.csv.gz: 1 is several times faster than 9 for
#: about 10-20% larger files. mtime 0 makes the bytes reproducible.
GZIP_LEVEL = 1


#: Per-draw columns written to outcomes.csv.gz (discounted, plus undiscounted event counts).
OUTCOME_COLUMNS = ("cost", *COST_CATEGORIES, "qaly", "ly", *(f"{c}_undiscounted" for c in COUNTS))


def _write_csv_gz(df: pd.DataFrame, path: Path) -> None:
    """Compressed CSV with reproducible bytes (no timestamp in the gzip header)."""
    write_csv(
        df,
        path,
        lineterminator="\n",
        compression={"method": "gzip", "compresslevel": GZIP_LEVEL, "mtime": 0},
    )


def write_country(c: CountryPsa, psa: PsaRun, folder: Path, command: str) -> None:
    """Every file of one country's PSA into ``folder``: per-draw outcomes and draws, the
    tables, the figures and run.json."""
    folder.mkdir(parents=True, exist_ok=True)
    draws = c.draws.copy()
    for name, col in c.run.calibrated.items():
        draws[f"calibrated_{name}_per_year"] = col.to_numpy()
    cols = ["draw", "strategy", *[k for k in OUTCOME_COLUMNS if k in c.run.outcomes.columns]]
    _write_csv_gz(c.run.outcomes[cols], folder / "outcomes.csv.gz")
    _write_csv_gz(draws.reset_index(), folder / "draws.csv.gz")
    t = c.tables
    write_csv(t.summary, folder / "summary.csv")
    write_csv(t.incremental_means, folder / "incremental_means.csv")
    write_csv(t.ceac, folder / "ceac.csv")
    write_csv(t.evpi, folder / "evpi.csv")
    write_csv(t.evppi, folder / "evppi.csv")
    write_csv(t.evppi_by_wtp, folder / "evppi_by_wtp.csv")
    write_csv(t.convergence, folder / "convergence.csv")
    write_csv(c.ptable.df, folder / "parameters.csv")
    plot_all(
        t, c.ptable.country, folder / "figures", {s.strategy: s.label for s in c.spec.strategies}
    )
    seconds = {k: v for k, v in psa.seconds.items() if k.endswith(c.code) or k == "total"}
    extra = {
        "analysis": "psa",
        "psa": {**psa_conventions(psa), "headline": t.headline, "seconds": seconds},
    }
    meta = run_json(command, {**describe(c.base, seed=psa.seed), **extra}, c.base.inputs.hashes)
    (folder / "run.json").write_text(dumps(meta))


def default_run_name(codes: Sequence[str], n_draws: int, all_countries: bool = False) -> str:
    who = "all" if all_countries else "-".join(codes)
    return f"psa_{who}_{n_draws}"


def write_outputs(psa: PsaRun, target: Path, command: str, force: bool = False) -> None:
    """outputs/<run>/: per-country files (in <code>/ subfolders when several countries)."""
    with OutputDir(target, force=force) as tmp:
        if len(psa.countries) == 1:
            (c,) = psa.countries.values()
            write_country(c, psa, tmp, command)
            return
        for code, c in psa.countries.items():
            write_country(c, psa, tmp / code, command)
        table = regional_table(psa)
        write_csv(table, tmp / "countries.csv")
        first = next(iter(psa.countries.values()))
        plot_countries(
            table,
            {code: c.tables.ceac for code, c in psa.countries.items()},
            {code: c.ptable.country for code, c in psa.countries.items()},
            first.spec.strategy_names,
            {s.strategy: s.label for s in first.spec.strategies},
            tmp / "figures",
        )
        sections = {
            "analysis": "psa",
            "countries": list(psa.countries),
            "scenario": psa.scenario.name,
            "psa": psa_conventions(psa),
            "seconds": psa.seconds,
        }
        (tmp / "run.json").write_text(dumps(run_json(command, sections, psa.inputs.hashes)))


def _share(x: float) -> str:
    return f"{x:.0%}" if math.isfinite(x) else "n/a"


def _money(x: float) -> str:
    return f"{x:,.0f}" if math.isfinite(x) else "n/a"


def evppi_words(r, cur: str, n_draws: int) -> str:
    """One EVPPI row (evppi.csv) in words: the value and its standard error, then what to read
    from it."""
    status = str(r["status"])
    if not status.startswith("ok"):
        return status
    v, se = r["evppi_per_patient"], r["se_per_patient"]
    value = f"{cur} {_money(v):>9}" + (f" +- {_money(se)}" if se > 0 else "")
    if r["method"] == "evpi":
        return (
            f"{value}  = the EVPI, by definition (the model is deterministic given its parameters)"
        )
    if status != "ok":  # capped: the standard error is that of the regression's estimate
        return (
            f"{cur} {_money(v):>9}  ({_share(r['share_of_evpi'])} of EVPI): the regression gave "
            f"{cur} {_money(r['estimate_per_patient'])} +- {_money(se)}, above the EVPI, which no "
            "group can exceed; capped there (the excess is estimation error)"
        )
    if r["distinguishable_from_zero"]:
        return f"{value}  ({_share(r['share_of_evpi'])} of EVPI)"
    if not se > 0:
        return (
            f"{value}  given these parameters alone, the expected net benefit never favours "
            "another strategy at these draws"
        )
    need = r["draws_needed"]
    more = (
        f"; about {int(need):,} draws would tell an EVPPI of "
        f"{cur} {_money(r['draws_needed_evppi_per_patient'])} from 0"
        if pd.notna(need)
        else ""
    )
    return f"{value}  cannot be told apart from 0 at {n_draws:,} draws{more}"


def draw_share(p: float) -> str:
    """A share of draws in words that never rounds a few draws away: "over 99.5%" rather than
    "100%" when some draws disagree (they are what the EVPI is made of)."""
    if 0.995 <= p < 1:
        return "over 99.5%"
    if 0 < p < 0.005:
        return "under 0.5%"
    return f"{p:.0%}"


def _without_bsab_line(c: CountryPsa, cur: str) -> str:
    """The PSA's decision with the bispecific's costs excluded, beside the base view."""
    if not c.spec.include_bsab_costs:
        return f"This run has {WITHOUT_BSAB_LABEL}."
    wtp = c.ptable.country.wtp_per_qaly
    optimal, p = psa_without_bsab(c.run.outcomes, list(c.spec.strategy_names), wtp)
    return (
        f"With {WITHOUT_BSAB_LABEL}: at {cur} {wtp:,.0f} per QALY the cost-effective strategy is "
        f"{optimal}, cost-effective in {draw_share(p[optimal])} of the draws."
    )


def summary_text(c: CountryPsa) -> str:
    """A readable summary of one country's PSA for the terminal."""
    t, h, country = c.tables, c.tables.headline, c.ptable.country
    cur = country.currency
    s = t.summary
    lines = [
        f"PSA {country.name} ({country.code}) | {h['n_draws']:,} draws | {cur} {country.price_year} | "
        f"WTP {cur} {h['wtp']:,.0f} per QALY",
        "",
        f"discounted cost ({cur}) and QALYs; P(CE): probability cost-effective at the WTP; "
        "PSA-det: PSA mean against the deterministic result",
        f"{'strategy':<18}{'mean cost':>12}{'95% interval':>24}{'QALY':>8}{'95% interval':>16}"
        f"{'P(CE)':>7}{'cost PSA-det':>14}{'QALY PSA-det':>14}",
    ]
    for name in c.spec.strategy_names:
        r = s[(s["kind"] == "strategy") & (s["name"] == name)].set_index("measure")
        cost_iv = f"{r.loc['cost', 'interval_low']:,.0f} to {r.loc['cost', 'interval_high']:,.0f}"
        qaly_iv = f"{r.loc['qaly', 'interval_low']:.3f} to {r.loc['qaly', 'interval_high']:.3f}"
        lines.append(
            f"{name:<18}{r.loc['cost', 'psa_mean']:>12,.0f}{cost_iv:>24}{r.loc['qaly', 'psa_mean']:>8.3f}{qaly_iv:>16}"
            f"{r.loc['p_cost_effective', 'psa_mean']:>7.2f}"
            f"{r.loc['cost', 'relative_difference']:>13.2%} {r.loc['qaly', 'relative_difference']:>13.2%}"
        )
    comps = s[(s["kind"] == "comparison") & (s["measure"] == "inmb")]
    if not comps.empty:
        lines += ["", f"INMB at WTP ({cur}), mean [95% interval], P(INMB > 0):"]
        for _, r in comps.iterrows():
            p = s[(s["name"] == r["name"]) & (s["measure"] == "p_inmb_positive")]["psa_mean"].iloc[
                0
            ]
            lines.append(
                f"  {r['name']:<36}{r['psa_mean']:>12,.0f} [{r['interval_low']:,.0f} to {r['interval_high']:,.0f}]  {p:.2f}"
            )
    pop = h["population_eligible_annual"]
    lines += [
        "",
        f"At {cur} {h['wtp']:,.0f} per QALY the cost-effective strategy is "
        f"{h['optimal_strategy']} (highest mean net monetary benefit over the draws; costs and "
        f"QALYs discounted), cost-effective in "
        f"{draw_share(h['p_cost_effective'][h['optimal_strategy']])} of the draws.",
        _without_bsab_line(c, cur),
        f"EVPI per patient: {cur} {_money(h['evpi_per_patient'])}; population ({_money(pop) if pop else 'n/a'} a year, "
        f"{h['decision_horizon_years']:g} years at {h['population_discount_rate']:.1%}): {cur} {_money(h['evpi_population'])}",
        "EVPPI per patient by parameter group, the value of resolving that group's uncertainty "
        f"alone (+- one standard error; told apart from 0 above {voi.RESOLVE_Z:g} standard errors):",
    ]
    n = h["n_draws"]
    for _, r in t.evppi.iterrows():
        lines.append(f"  {r['group']:<16}{evppi_words(r, cur, n)}")
    return "\n".join(lines)

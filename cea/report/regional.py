"""The regional comparison's files (tables, figures, run.json) and terminal summary."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cea import __version__
from cea.analysis.regional import (
    ANY_PRICE,
    CONVENTIONS,
    MIN_PRICE,
    NO_PRICE,
    PRICE_ITEMS,
    to_usd,
)
from cea.io.provenance import dumps, run_json
from cea.parameters.table import Scenario
from cea.pipeline.base import model_settings
from cea.pipeline.decision import WITHOUT_BSAB_LABEL
from cea.pipeline.regional import RegionalResult
from cea.report.base import NEGLIGIBLE_QALY
from cea.report.files import write_csv
from cea.report.plots import regional as plots


def provenance(res: RegionalResult, command: str, files: list[str]) -> dict:
    first = next(iter(res.countries.values()))
    spec = first.spec
    countries = {}
    for code, r in res.countries.items():
        c = r.country
        countries[code] = {
            "name": c.name,
            "currency": c.currency,
            "price_year": c.price_year,
            "macro_year": c.macro_year,
            "fx_lcu_per_usd": c.fx_lcu_per_usd,
            "ppp_lcu_per_intl_dollar": c.ppp_lcu_per_intl_dollar,
            "gdp_per_capita_usd": c.gdp_per_capita_usd,
            "gdp_per_capita_lcu": c.gdp_per_capita_lcu,
            "wtp_per_qaly": c.wtp_per_qaly,
            "wtp_basis": c.wtp_basis,
            "wtp_alternatives": list(c.wtp_alternatives),
            "discount_rate_costs": r.spec.discount_rate_costs,
            "discount_rate_effects": r.spec.discount_rate_effects,
            "scig_conversion": c.scig_conversion,
            "prices_per_g": {
                item: r.price(item) for item in PRICE_ITEMS.values() if item in r.ptable.df.index
            },
            "calibrated_per_year": {k: float(v) for k, v in r.calibrated.iloc[0].items()},
        }
    sections = {
        "scenario": {
            "name": res.scenario.name,
            "description": res.scenario.description,
            "file": res.scenario.path,
            "sha256": res.scenario.sha256,
            "parameters": res.scenario.parameters,
        },
        "countries": countries,
        "strategies": spec.strategy_names,
        "comparisons": [f"{a} vs {b}" for a, b in first.comparisons],
        "model": model_settings(spec),
        "conventions": CONVENTIONS,
        "warnings": res.warnings,
        "files": files,
        "runtime_seconds": round(res.seconds, 3),
    }
    return run_json(command, sections, res.inputs.hashes)


def write_outputs(res: RegionalResult, folder: Path, command: str) -> list[str]:
    """regional.csv, regional_strategies.csv, regional_optimal.csv, regional_thresholds.csv,
    the figures and run.json. Returns the files written."""
    folder = Path(folder)
    files = []
    for name, df in (
        ("regional.csv", res.regional),
        ("regional_strategies.csv", res.strategies),
        ("regional_optimal.csv", res.optimal),
        ("regional_thresholds.csv", res.thresholds),
    ):
        write_csv(df, folder / name)
        files.append(name)
    labels, no_igrt = {}, set()
    for r in res.countries.values():
        for st in r.spec.strategies:
            labels[st.strategy] = st.label
            if not st.uses_igrt:
                no_igrt.add(st.strategy)
    files += plots.plot_all(res.regional, res.strategies, labels, no_igrt, folder)
    files.append("run.json")
    (folder / "run.json").write_text(dumps(provenance(res, command, files)))
    return files


def _fmt_ratio(r: pd.Series) -> str:
    q = r["quadrant"]
    if q == "SE":
        return "dominant"
    if q == "NW":
        return "dominated"
    if q == "same":
        return "same"
    v = r["icer_over_wtp"]
    s = f"{v:.2f}" if v < 100 else f"{v:,.0f}"
    if abs(r["inc_qaly"]) < NEGLIGIBLE_QALY:  # a ratio of a negligible QALY difference
        s += "~"
    return f"SW {s}" if q == "SW" else s


def _fmt_threshold(r: pd.Series) -> str:
    st = r["threshold_status"]
    if st == NO_PRICE:
        return "none"
    if st == ANY_PRICE:
        return "any"
    ch = r["price_change_needed"]
    return (">" if st == MIN_PRICE else "") + f"{ch:+.0%}"


def summary_text(res: RegionalResult) -> str:
    """Readable summary for the terminal: one line per country, then two country x
    comparison matrices (ICER / WTP, and the threshold price as a change from today's)."""
    reg = res.regional
    years = sorted({r.country.price_year for r in res.countries.values()})
    macro = sorted({r.country.macro_year for r in res.countries.values()})
    lines = [
        f"cea {__version__} | regional comparison | scenario: {res.scenario.name} | {len(res.countries)} countries | "
        f"local currency of price year {', '.join(map(str, years))}; US$ at market exchange rates and I$ at PPP of "
        f"{', '.join(map(str, macro))}",
        "",
    ]
    at_wtp = res.optimal[res.optimal["wtp_kind"] == "base"].set_index("country")
    optimal = at_wtp["optimal_strategy"].to_dict()
    no_bsab = at_wtp["optimal_without_bsab_costs"].to_dict()
    w = max(len("optimal at WTP"), *(len(s) for s in optimal.values())) + 2
    w2 = max(len("without bsAb costs*"), *(len(s) for s in no_bsab.values())) + 2
    head = (
        f"{'':<4}{'cur':<5}{'WTP/QALY':>14}{'WTP US$':>10}{'xGDP':>6}  {'optimal at WTP':<{w}}"
        f"{'without bsAb costs*':<{w2}}{'IVIG/g':>10}{'SCIG/g':>10}{'IVIG US$/g':>11}"
    )
    lines += [head, "-" * len(head)]
    for code, r in res.countries.items():
        c = r.country
        ivig = r.price("c_ivig_per_g") if "c_ivig_per_g" in r.ptable.df.index else float("nan")
        scig = r.price("c_scig_per_g") if "c_scig_per_g" in r.ptable.df.index else float("nan")
        lines.append(
            f"{code:<4}{c.currency:<5}{c.wtp_per_qaly:>14,.0f}{to_usd(c.wtp_per_qaly, c.fx_lcu_per_usd):>10,.0f}"
            f"{c.wtp_per_qaly / c.gdp_per_capita_lcu:>6.2f}  {optimal[code]:<{w}}"
            f"{no_bsab[code]:<{w2}}{ivig:>10,.2f}{scig:>10,.2f}"
            f"{to_usd(ivig, c.fx_lcu_per_usd):>11,.1f}"
        )
    lines.append(f"* {WITHOUT_BSAB_LABEL}")
    if reg.empty:
        return "\n".join(lines)
    comps = list(dict.fromkeys(reg["comparison"]))
    keys = [f"C{k}" for k in range(1, len(comps) + 1)]
    lines += [
        "",
        "comparisons (intervention vs comparator; threshold on the price of the product named):",
    ]
    items = reg.drop_duplicates("comparison").set_index("comparison")["price_item"]
    for k, comp in zip(keys, comps, strict=True):
        lines.append(f"  {k}  {comp}  [{items[comp] or 'no Ig price'}]")
    width = 10
    for title, fmt in (
        (
            "ICER / WTP (NE: < 1 is cost-effective; SW: > 1 is; dominant / dominated shown as such; "
            f"~: the QALY difference is below {NEGLIGIBLE_QALY:g}, the ratio is not meaningful, "
            "read the INMB)",
            _fmt_ratio,
        ),
        (
            "threshold Ig price per g as a change from today's ('none': no price >= 0; 'any': any price; '>': floor)",
            _fmt_threshold,
        ),
    ):
        lines += ["", title, f"{'':<4}" + "".join(f"{k:>{width}}" for k in keys)]
        for code in res.countries:
            sub = reg[reg["country"] == code].set_index("comparison")
            cells = [fmt(sub.loc[comp]) if comp in sub.index else "" for comp in comps]
            lines.append(f"{code:<4}" + "".join(f"{x:>{width}}" for x in cells))
    for w in res.warnings:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def default_run_name(scenario: Scenario) -> str:
    return f"compare_{scenario.name}"

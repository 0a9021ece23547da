"""The about sheet: question, country, conventions, provenance, the CHEERS 2022 items answered
and where, the input files' hashes and a note on every sheet."""

from __future__ import annotations

from cea import __version__
from cea.io.provenance import run_json
from cea.pipeline.base import describe
from cea.report.sheets.cells import (
    HEADER_FILL,
    HEADER_FONT,
    NOTE_FONT,
    WRAP,
    finish_sheet,
    put,
    write_title,
)
from cea.report.sheets.state import ReportState

SHEET_NOTES = {
    "inputs": "every parameter with value, unit, range, distribution, source and evidence tag; model_value is the named cell the formulas use",
    "prices": "unit costs in the country's currency and price year; inflation factor from the item's price year",
    "strategies": "the strategies compared; dose, interval, flat dose and vial size are referenced",
    "settings": "cycle length, horizon, discount rates, WTP and the model's constants (named cells)",
    "results": "per strategy totals (formulas over the trace sheets)",
    "incremental": "live full incremental analysis; the engine's table on the right",
    "comparisons": "live named comparisons",
    "checks": "workbook totals beside the engine's values with their differences; PASS/FAIL in D7",
    "per_state": "per strategy and state: rates and rewards per person-cycle",
    "cycles": "per cycle: time, correction weights, discount factors, time-dependent hazards",
    "life_table": "background mortality by single year of age",
    "trace_<strategy>": "per strategy and subgroup: hazards, transition probabilities, trace, events, costs, QALYs; totals in rows 4-9",
}

OPTIONAL_SHEET_NOTES = {
    "verification": "TECH-VER black-box checks of the engine (cea check): PASS/FAIL, detail, tolerance",
    "dsa": "one-way DSA: tornado table (engine values) with a native bar chart",
    "dsa_tornado_icer": "one-way DSA: the tornado table ordered for the ICER",
    "psa": "PSA summary (engine values)",
    "psa_ceac": "cost-effectiveness acceptability curves, native line chart",
    "psa_ce_plane": "cost-effectiveness plane per draw, native scatter chart",
    "psa_incremental_means": "PSA: incremental analysis of the mean costs and QALYs over the draws",
    "psa_evpi": "PSA: expected value of perfect information by WTP",
    "psa_evppi": "PSA: expected value of partial perfect information by parameter group",
    "psa_evppi_by_wtp": "PSA: EVPPI by parameter group and WTP",
    "psa_convergence": "PSA: means and Monte Carlo standard errors by number of draws",
    "psa_headline": "PSA: headline numbers",
    "regional": "regional comparison (engine values)",
}

QUESTION = (
    "Question: which immunoglobulin replacement strategy (none, preemptive or primary; IVIG or SCIG) is cost-effective for adults "
    "with relapsed/refractory multiple myeloma on a bispecific antibody, from the health-care payer's perspective?"
)


def write_about(rs: ReportState, extra_sheets: list[str]):
    """The about sheet (created first, written last: it lists the optional sheets)."""
    ws = rs.about
    prov = run_json(rs.command, describe(rs.base), rs.base.inputs.hashes)
    write_title(
        ws,
        "cea report: cost-effectiveness of immunoglobulin replacement (IVIG/SCIG) with bispecific antibodies in myeloma",
    )
    put(ws, 2, 1, QUESTION, font=NOTE_FONT)
    _table_header(ws, 4, "item", "value")
    r = _write_items(ws, 5, _run_items(rs, prov["conventions"]) + _provenance_items(rs, prov))
    _table_header(ws, r + 1, "CHEERS 2022 item", "where this workbook answers it")
    r = _write_items(ws, r + 2, _cheers_items(rs, extra_sheets))
    _table_header(ws, r + 1, "input file", "sha256")
    r = _write_hashes(rs, ws, r + 2)
    put(ws, r + 1, 1, "sheets", font=HEADER_FONT, fill=HEADER_FILL)
    r = _write_sheet_notes(rs, ws, r + 2, extra_sheets)
    finish_sheet(ws, {1: 40, 2: 130})
    for row in ws.iter_rows(min_row=5, max_row=r, min_col=2, max_col=2):
        for cell in row:
            cell.alignment = WRAP


def _table_header(ws, r: int, first: str, second: str):
    put(ws, r, 1, first, font=HEADER_FONT, fill=HEADER_FILL)
    put(ws, r, 2, second, font=HEADER_FONT, fill=HEADER_FILL)


def _write_items(ws, r: int, items: list[tuple]) -> int:
    """Key/value rows from row ``r`` (numbers as numbers, anything else as text); the next row."""
    for key, value in items:
        put(ws, r, 1, key)
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        put(ws, r, 2, value if is_number else str(value))
        r += 1
    return r


def _run_items(rs: ReportState, conv: dict) -> list[tuple]:
    """Country, scenario, strategies, horizon, discounting and the model's conventions."""
    c, spec = rs.country, rs.spec
    return [
        ("country", f"{c.name} ({c.code})"),
        ("currency", c.currency),
        ("price_year", c.price_year),
        ("perspective", conv["perspective"]),
        ("scenario", f"{rs.ptable.scenario.name}: {rs.ptable.scenario.description}"),
        ("strategies", ", ".join(spec.strategy_names)),
        ("horizon", f"{spec.n_cycles} cycles = {spec.n_cycles * spec.dt:.4g} years"),
        ("cycle_length", f"{spec.cycle_days:g} days = {spec.dt:.6g} years"),
        ("discount_rate_costs", spec.discount_rate_costs),
        ("discount_rate_effects", spec.discount_rate_effects),
        ("discount_timing", conv["discount_timing"]),
        ("within_cycle_correction", str(conv["within_cycle_correction"])),
        ("transition_rewards", conv["transition_rewards"]),
        (
            "start_rewards",
            "counted once at time 0, not discounted (SCIG training when SCIG starts at bsAb start)",
        ),
        (
            "competing_risks",
            "exits (death, bsAb discontinuation) compete: p_i = H_i/H (1 - exp(-H)); internal IgG/IgRT changes compete among those remaining",
        ),
        ("subgroups", "igg_isotype and non_igg cohorts, weighted by p_igg_isotype"),
        ("wtp_per_qaly", f"{c.wtp_per_qaly:,.0f} {c.currency} ({c.wtp_basis})"),
        (
            "calibrated (per year)",
            ", ".join(f"{k} = {v:.10g}" for k, v in rs.base.calibrated.items())
            + " (calibrated by the engine, not recomputed in the workbook)",
        ),
    ]


def _provenance_items(rs: ReportState, prov: dict) -> list[tuple]:
    """Seed, version, commit, command, environment, and how to recalculate."""
    return [
        ("seed", prov.get("seed")),
        ("version", f"cea {__version__}"),
        ("git_commit", prov.get("git_commit") or "unknown"),
        ("command", rs.command),
        ("python", prov.get("python")),
        ("packages", ", ".join(f"{k} {v}" for k, v in prov.get("packages", {}).items())),
        (
            "recalculate",
            "Excel recalculates on opening (full calculation on load); LibreOffice: Data > Calculate > Recalculate Hard (Ctrl+Shift+F9). "
            "Then see checks!D4:D7.",
        ),
    ]


def _cheers_items(rs: ReportState, extra_sheets: list[str]) -> list[tuple]:
    """The CHEERS 2022 items and where this workbook answers them."""
    uncertainty = (
        ", ".join(s for s in extra_sheets if s.startswith(("dsa", "psa")))
        or "not in this run (cea dsa / cea psa)"
    )
    items = _cheers_model_items(rs) + _cheers_analysis_items(rs, uncertainty)
    if "regional" in set(extra_sheets):
        items.append(("6 setting and location (other countries)", "regional"))
    return items


def _cheers_model_items(rs: ReportState) -> list[tuple]:
    """CHEERS items 5-16: population, setting, comparators, perspective ... the model."""
    return [
        (
            "5 study population",
            "about (question); inputs: q_start_age_years, q_body_weight_kg, p_igg_isotype",
        ),
        ("6 setting and location", f"about: {rs.country.name}; prices; life_table"),
        ("7 comparators", "strategies"),
        ("8 perspective", "about: perspective"),
        ("9 time horizon", "about: horizon; settings: n_cycles, cycle_days"),
        (
            "10 discount rate",
            "about; settings: discount_rate_costs, discount_rate_effects; cycles!E:F",
        ),
        (
            "11-13 outcomes, measurement and valuation",
            "inputs: u_ and q_qaly_loss_ parameters with sources; per_state: utility_per_cycle",
        ),
        (
            "14 resources and costs",
            "prices; per_state (resource use per state and cycle); trace sheets (costs by category)",
        ),
        (
            "15 currency, price date and conversion",
            "about; prices: currency, price_year, inflation_factor",
        ),
        (
            "16 rationale and description of model",
            "about (conventions); per_state; cycles; trace sheets",
        ),
    ]


def _cheers_analysis_items(rs: ReportState, uncertainty: str) -> list[tuple]:
    """CHEERS items 17-24: assumptions and validation, heterogeneity, uncertainty, results."""
    verification = (
        "; verification (TECH-VER black-box checks of the engine)"
        if rs.verification is not None
        else ""
    )
    return [
        (
            "17 analytics and assumptions",
            "settings; inputs (calibrated rates); cycles; trace sheets (competing risks); "
            "validation: checks (workbook vs engine)" + verification,
        ),
        (
            "18 characterising heterogeneity",
            "trace sheets: igg_isotype and non_igg subgroups, weighted by p_igg_isotype",
        ),
        ("20 characterising uncertainty", uncertainty),
        ("22 study parameters", "inputs: value, range, distribution, unit, source, evidence"),
        ("23 summary of main results", "results; incremental; comparisons"),
        ("24 effect of uncertainty", uncertainty),
    ]


def _write_hashes(rs: ReportState, ws, r: int) -> int:
    """The sha256 of every input file (and of the scenario file); the next row."""
    for fname, sha in sorted(rs.base.inputs.hashes.items()):
        put(ws, r, 1, fname)
        put(ws, r, 2, sha)
        r += 1
    if rs.ptable.scenario.sha256:
        put(ws, r, 1, str(rs.ptable.scenario.path))
        put(ws, r, 2, rs.ptable.scenario.sha256)
        r += 1
    return r


def _write_sheet_notes(rs: ReportState, ws, r: int, extra_sheets: list[str]) -> int:
    """A note on every sheet; the optional ones (in workbook order) after checks."""
    for name, text in SHEET_NOTES.items():
        put(ws, r, 1, name)
        put(ws, r, 2, text)
        r += 1
        if name != "checks":
            continue
        optional = (["verification"] if rs.verification is not None else []) + list(extra_sheets)
        for extra in optional:
            put(ws, r, 1, extra)
            put(
                ws, r, 2, OPTIONAL_SHEET_NOTES.get(extra, "optional analysis table (engine values)")
            )
            r += 1
    return r

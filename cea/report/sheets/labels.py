"""Readable labels for the column codes of the result sheets: written on the row above the
header (the header keeps the codes of the CSV files, so the sheets still read back with
pandas)."""

from __future__ import annotations

from cea.report.sheets.cells import NOTE_FONT, WRAP, put

#: What each outcome measures; money columns get the currency, every column whether it is
#: discounted.
OUTCOME_LABELS = {
    "cost": "Total cost",
    "cost_ig": "Ig cost",
    "cost_ig_admin": "Ig administration cost",
    "cost_scig_training": "SCIG training cost",
    "cost_monitoring": "IgG monitoring cost",
    "cost_severe_infections": "Severe infection cost",
    "cost_nonsevere_infections": "Non-severe infection cost",
    "cost_adverse_events": "IgRT adverse event cost",
    "cost_bsab": "Bispecific cost",
    "cost_subsequent_therapy": "Subsequent therapy cost",
    "cost_end_of_life": "End-of-life cost",
    "qaly": "QALYs",
    "ly": "Life-years",
    "severe_infections": "Severe infections per patient",
    "nonsevere_infections": "Non-severe infections per patient",
    "infection_deaths": "Infection deaths per patient",
    "ig_grams": "Ig grams per patient",
    "infusions": "Infusions per patient",
    "igg_tests": "IgG tests per patient",
    "years_on_igrt": "Years on IgRT",
    "thromboembolic_events": "Thromboembolic events per patient",
    "infusion_reactions": "Infusion reactions per patient",
}
#: Other columns of the results, incremental and comparisons sheets.
OTHER_LABELS = {
    "strategy": "Strategy id",
    "label": "Strategy",
    "order": "Order",
    "nmb": "Net monetary benefit",
    "nhb": "Net health benefit (QALYs)",
    "cost_rank": "Rank by cost",
    "dominated_by_count": "Strategies dominating it",
    "candidate": "Not strongly dominated (1/0)",
    "icer_in_max": "Largest ICER into it",
    "icer_out_min": "Smallest ICER out of it",
    "status": "Status (ND, D, ED)",
    "reference": "Previous frontier strategy",
    "inc_cost": "Incremental cost",
    "inc_qaly": "Incremental QALYs",
    "inc_effect": "Incremental QALYs",
    "icer": "ICER",
    "optimal": "Cost-effective at the WTP",
    "comparison": "Comparison",
    "intervention": "Intervention",
    "comparator": "Comparator",
    "quadrant": "Quadrant of the CE plane",
    "inmb": "Incremental net monetary benefit",
    "cost_effective": "Cost-effective (INMB > 0)",
    "inc_severe_infections": "Change in severe infections",
    "cost_per_severe_infections_averted": "Cost per severe infection averted",
    "inc_infection_deaths": "Change in infection deaths",
    "cost_per_infection_deaths_averted": "Cost per infection death averted",
    "inc_cost_igrt": "Incremental cost: IgRT, administration, monitoring",
    "inc_cost_infections": "Incremental cost: infections",
    "inc_cost_added_survival": "Incremental cost: bispecific and other care in added survival",
}
MONEY = {
    "nmb",
    "inc_cost",
    "icer",
    "icer_in_max",
    "icer_out_min",
    "inmb",
    "cost_per_severe_infections_averted",
    "cost_per_infection_deaths_averted",
    "inc_cost_igrt",
    "inc_cost_infections",
    "inc_cost_added_survival",
}


def column_label(name: str, currency: str) -> str:
    """A readable label for a result column code, with its currency and whether it is
    discounted; the code itself when it has none."""
    undiscounted = name.endswith("_undiscounted")
    base = name.removesuffix("_undiscounted")
    if base in OUTCOME_LABELS:
        text = OUTCOME_LABELS[base]
        if base.startswith("cost"):
            text += f" ({currency})"
        return f"{text}, {'undiscounted' if undiscounted else 'discounted'}"
    if name in OTHER_LABELS:
        if name.startswith("icer"):
            return f"{OTHER_LABELS[name]} ({currency} per QALY)"
        return OTHER_LABELS[name] + (f" ({currency})" if name in MONEY else "")
    return name


def write_labels(ws, row: int, names, currency: str, start_col: int = 1) -> None:
    """The readable labels of ``names`` on ``row`` (wrapped; the row made tall enough)."""
    for j, name in enumerate(names):
        put(
            ws, row, start_col + j, column_label(str(name), currency), font=NOTE_FONT
        ).alignment = WRAP
    ws.row_dimensions[row].height = 45

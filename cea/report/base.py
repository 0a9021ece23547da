"""The base case's files (results, incremental, comparisons, trace, parameters, run.json) and
its terminal summary."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cea import __version__
from cea.io.provenance import dumps, run_json
from cea.pipeline.base import BaseCase, describe
from cea.pipeline.decision import WITHOUT_BSAB_LABEL, Decision
from cea.report.files import write_csv


def default_run_name(base: BaseCase) -> str:
    return f"{base.ptable.scenario.name}_{base.country.code}"


def write_base_outputs(base: BaseCase, folder: Path, command: str) -> None:
    """results.csv, incremental.csv, comparisons.csv, trace.csv, parameters.csv, run.json."""
    write_csv(base.results, folder / "results.csv")
    write_csv(base.incremental, folder / "incremental.csv")
    write_csv(base.comparisons, folder / "comparisons.csv")
    write_csv(base.trace, folder / "trace.csv")
    write_csv(base.ptable.df, folder / "parameters.csv")
    write_run_json(folder, base, command)


def write_run_json(folder: Path, base: BaseCase, command: str, seed=None, **extra) -> dict:
    """``run.json`` of a base case (and of any analysis on it: ``extra`` sections)."""
    meta = run_json(command, {**describe(base, seed), **extra}, base.inputs.hashes)
    (folder / "run.json").write_text(dumps(meta))
    return meta


#: An incremental QALY below this (about 9 hours in full health) makes an ICER meaningless to
#: read: the summary flags it and points to the INMB (a presentation rule, not a model input).
NEGLIGIBLE_QALY = 1e-3
#: What the status column of the incremental analysis means.
STATUS_LEGEND = (
    "status: ND not dominated (on the cost-effectiveness frontier; ICER against the previous "
    "ND strategy), D dominated (another strategy costs less and gives more QALYs), ED "
    "extendedly dominated (a mix of two other strategies does better)"
)


def decision_text(base: BaseCase, decision: Decision) -> str:
    """The decision at the country's WTP in words, and what it would take for each other IgRT
    strategy (:mod:`cea.pipeline.decision`), with thresholds outside the plausible range said
    so."""
    cur = decision.currency
    labels = base.results.set_index("strategy")["label"].to_dict()
    name = lambda s: f"{labels[s]} ({s})" if labels.get(s, s) != s else s  # noqa: E731
    lines = [
        f"At {cur} {decision.wtp:,.0f} per QALY the cost-effective strategy is "
        f"{name(decision.optimal)}: it has the highest net monetary benefit (costs and QALYs "
        "discounted)."
    ]
    lines += _takes_lines(decision, cur)
    if decision.survival is not None:
        lines += ["", _survival_text(base, decision)]
    if decision.without_bsab is not None:
        alt = decision.without_bsab
        same = "still " if alt.optimal == decision.optimal else ""
        lines += [
            "",
            f"With {WITHOUT_BSAB_LABEL}: at {cur} {alt.wtp:,.0f} per QALY the cost-effective "
            f"strategy is {same}{name(alt.optimal)}.",
            *_takes_lines(alt, cur, short=True),
        ]
    elif not base.spec.include_bsab_costs:
        lines += ["", f"This run has {WITHOUT_BSAB_LABEL}."]
    return "\n".join(lines)


def _survival_text(base: BaseCase, decision: Decision) -> str:
    """The marginal cost-effectiveness of a month alive, on and off the bispecific."""
    sv, cur, wtp = decision.survival, decision.currency, decision.wtp
    share = base.ptable.base().iloc[0]["p_bsab_price_paid"]
    on = sv.cost_per_qaly_on_bsab
    which = (
        f"{base.spec.bsab_drug} at {share:.0%} of its list price"
        if base.spec.include_bsab_costs
        else "bispecific costs excluded in this run"
    )
    text = (
        f"One more month alive costs {cur} {sv.cost_on_bsab:,.0f} on the bispecific "
        f"({which}) for {sv.qaly_on_bsab:.3f} QALY: {cur} {on:,.0f} per QALY"
    )
    if wtp > 0:
        text += f", {on / wtp:,.1f} times the WTP"
    text += (
        f"; off it {cur} {sv.cost_off_bsab:,.0f} for {sv.qaly_off_bsab:.3f} QALY ("
        f"{cur} {sv.cost_per_qaly_off_bsab:,.0f} per QALY"
        + (
            "; no treatment costs are modelled after the bispecific)"
            if sv.cost_off_bsab == 0
            else ")"
        )
    )
    if wtp > 0 and on > wtp:
        text += (
            ". A strategy that keeps patients alive, and on the bispecific, longer pays this for "
            "every added month: more than the months are worth at the WTP (the add-on problem, "
            "NICE DSU 2014)."
        )
    else:
        text += "."
    return text


def _outside(value: float, bounds: tuple[float, float] | None, fmt: str, what: str) -> str:
    """A flag in words when a break-even value lies outside the parameter's DSA range (the
    range the inputs hold plausible)."""
    if bounds is None:
        return ""
    lo, hi = bounds
    if value < lo:
        return (
            f": below the lowest {what} the inputs hold plausible ({fmt.format(lo)} to "
            f"{fmt.format(hi)}, the DSA range)"
        )
    if value > hi:
        return (
            f": above the highest {what} the inputs hold plausible ({fmt.format(lo)} to "
            f"{fmt.format(hi)}, the DSA range)"
        )
    return ""


def _takes_lines(decision: Decision, cur: str, short: bool = False) -> list[str]:
    """What it would take for each IgRT strategy; ``short``: the Ig price only."""
    lines = []
    for t in decision.takes:
        lines.append(
            f"  {t.strategy} against {t.against} (INMB {cur} {t.inmb:,.0f}) would break even at:"
        )
        route = "SCIG" if t.ig_price_parameter == "c_scig_per_g" else "IVIG"
        if t.max_ig_price is None:
            lines.append(
                f"    - no {route} price: its Ig cost is no higher than {t.against}'s, so the "
                "price cannot close the gap"
            )
        elif t.max_ig_price < 0:
            lines.append(
                f"    - no {route} price: even free Ig leaves it short (break-even price "
                f"{cur} {t.max_ig_price:,.2f} per g, now {t.ig_price:,.2f})"
            )
        else:
            lines.append(
                f"    - an {route} price of at most {cur} {t.max_ig_price:,.2f} per g (now "
                f"{t.ig_price:,.2f}; {cur} of {decision.price_year})"
                + _outside(t.max_ig_price, t.ig_price_range, "{:,.2f}", "price")
            )
        if short:
            continue
        if t.max_bsab_share is None:
            lines.append(f"    - no bispecific price: {t.bsab_reason}")
        elif t.max_bsab_share < 0:
            lines.append(
                "    - no bispecific discount: even a free bispecific leaves it short (its "
                "other costs exceed the value of the QALYs it adds)"
            )
        elif t.max_bsab_share >= 1:
            lines.append(
                f"    - any bispecific price up to {t.max_bsab_share:.0%} of list (now "
                f"{t.bsab_share:.0%}): the price is not what stands in the way"
            )
        else:
            lines.append(
                f"    - a bispecific price of at most {t.max_bsab_share:.1%} of list (a "
                f"confidential discount of {1 - t.max_bsab_share:.1%} or more; now "
                f"{t.bsab_share:.0%} of list is paid)"
            )
        if t.hr_threshold is not None:
            flag = (
                ": above 1, IgRT would have to raise infections (fewer months alive on the "
                "bispecific would save more than the QALYs are worth)"
                if t.hr_threshold > 1
                else _outside(t.hr_threshold, t.hr_range, "{:.3g}", "hazard ratio")
            )
            lines.append(
                f"    - a severe-infection hazard ratio ({t.hr_parameter}) of {t.hr_threshold:.3g} "
                f"(now {t.hr:.3g}){flag}"
            )
        for note in t.notes:
            lines.append(f"    - {note}")
    return lines


def summary_text(base: BaseCase, decision: Decision | None = None) -> str:
    """A readable summary of the base case for the terminal (with the decision in words when
    given)."""
    c = base.country
    lines = [
        f"cea {__version__} | {c.name} ({c.code}) | scenario: {base.ptable.scenario.name} | "
        f"{c.currency} {c.price_year} | WTP {c.wtp_per_qaly:,.0f} per QALY ({c.wtp_basis})",
        f"horizon {base.spec.n_cycles} cycles of {base.spec.cycle_days:g} days "
        f"({base.spec.n_cycles * base.spec.dt:.2f} years), discount {c.discount_rate_costs:.1%} costs / "
        f"{c.discount_rate_effects:.1%} effects, correction {base.spec.correction}",
        "",
    ]
    inc = base.incremental.set_index("strategy")
    res = base.results.set_index("strategy")
    cur = c.currency
    lines.append(
        f"cost ({cur}), QALY and LY discounted; severe infections and Ig grams undiscounted "
        "(as they happen), per patient"
    )
    header = (
        f"{'strategy':<24}{f'cost {cur}':>14}{'QALY':>9}{'LY':>8}{'severe inf':>11}{'Ig g':>8}"
        f"{f'ICER {cur}/QALY':>18}  status"
    )
    lines.append(header)
    lines.append("-" * len(header))
    for s in inc.index:
        r = res.loc[s]
        icer = inc.loc[s, "icer"]
        icer_s = f"{icer:,.0f}" if pd.notna(icer) else ""
        lines.append(
            f"{s:<24}{r['cost']:>14,.0f}{r['qaly']:>9.4f}{r['ly']:>8.4f}"
            f"{r['severe_infections_undiscounted']:>11.3f}{r['ig_grams_undiscounted']:>8.0f}"
            f"{icer_s:>18}  {inc.loc[s, 'status']}"
        )
    lines.append(STATUS_LEGEND)
    if not base.comparisons.empty:
        lines.append("")
        lines.append(f"comparisons (discounted; INMB at {cur} {c.wtp_per_qaly:,.0f} per QALY):")
        for _, r in base.comparisons.iterrows():
            text = str(r["interpretation"]).replace(" per QALY", f" {cur} per QALY")
            if abs(r["inc_effect"]) < NEGLIGIBLE_QALY and pd.notna(r["icer"]):
                text += (
                    f" (dQALY below {NEGLIGIBLE_QALY:g}: the ICER is not meaningful, read the INMB)"
                )
            lines.append(
                f"  {r['comparison']:<36} dC {cur} {r['inc_cost']:>10,.0f}  dQALY "
                f"{r['inc_effect']:>8.4f}  {text}  INMB {cur} {r['inmb']:,.0f}"
            )
    if not base.comparisons.empty and "inc_cost_igrt" in base.comparisons:
        lines += ["", cost_split_text(base)]
    if decision is not None:
        lines += ["", decision_text(base, decision)]
    return "\n".join(lines)


def cost_split_text(base: BaseCase) -> str:
    """Each comparison's incremental cost split three ways (:data:`cea.igrt.spec.COST_GROUPS`)."""
    cur = base.country.currency
    head = (
        f"  {'':<36}{'IgRT, admin, monitoring':>25}{'infections':>14}"
        f"{'bispecific & other care in added survival':>44}"
    )
    lines = [f"incremental cost split ({cur}, discounted; the three add up to dC):", head]
    for _, r in base.comparisons.iterrows():
        lines.append(
            f"  {r['comparison']:<36}{r['inc_cost_igrt']:>25,.0f}{r['inc_cost_infections']:>14,.0f}"
            f"{r['inc_cost_added_survival']:>44,.0f}"
        )
    return "\n".join(lines)

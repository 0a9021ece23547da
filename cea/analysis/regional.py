"""Regional comparison: countries side by side, with the threshold Ig price per gram.

``cea compare --countries all [--scenario FILE]`` runs the deterministic base case of every
country (one calibrated model run each) and puts the results in one table, in local
currency, in US dollars and in international dollars, against each country's willingness
to pay (WTP) and GDP per capita. For every named comparison it solves for the price per
gram of immunoglobulin at which the comparison is exactly cost-effective.

Conventions (written to ``run.json`` and explained in ``docs/regional.md``)
-----------
- **Currency.** The model computes in local currency units (LCU) of the country's
  ``price_year``. ``x_usd = x_lcu / fx_lcu_per_usd`` and ``x_intl = x_lcu /
  ppp_lcu_per_intl_dollar``, both rates of the country's ``macro_year`` (``macro.csv``, World
  Bank WDI). QALYs are not converted, so an ICER converts like a cost and ICER / WTP does
  not depend on the currency.
- **Threshold price.** Total discounted cost is linear in the price per gram ``p`` of a
  product (the model multiplies grams by ``p`` and nothing else depends on it, the
  calibration included), so for a comparison of ``a`` against ``b`` at willingness to pay
  ``lambda``::

      INMB(p) = lambda * dQALY - dCost(p) = INMB(p_now) - dG * (p - p_now)
      p*      = p_now + INMB(p_now) / dG

  where ``dG = dCost/dp`` is the difference between the arms in grams of that product,
  discounted at the cost discount rate. ``dG`` is measured by rerunning the model with the
  price at 0 and at 1 (calibration reused), so no assumption about which cost categories
  hold the price is needed. The price varied is that of the intervention's product (the
  comparator's when the intervention has none); an arm using the other product keeps
  today's price (SCIG vs IVIG: the SCIG price at which SCIG is cost-effective given
  today's IVIG price).
- **Reading p*.** ``dG > 0`` (the intervention uses more of the product): cost-effective
  for prices below p* (``max_price``); when p* <= 0 no price >= 0 makes it cost-effective
  (``no_price``). ``dG < 0``: cost-effective above p* (``min_price``), or at every price
  when p* <= 0 (``any_price``). ``dG = 0``: the price does not matter (``any_price`` or
  ``no_price`` by the sign of INMB).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cea.analysis.incremental import icer_table, pairwise
from cea.igrt.spec import ModelSpec, Strategy
from cea.parameters.table import ParameterTable

#: Multiples of each country's base WTP in the optimal-strategy heat map and tables.
WTP_MULTIPLES = (0.5, 1.0, 1.5, 2.0, 3.0)
#: Price-per-gram item of each IgRT product (the parameters the threshold analysis varies).
PRICE_ITEMS = {"ivig": "c_ivig_per_g", "scig": "c_scig_per_g"}
#: A difference in priced grams smaller than this fraction of the arms' grams counts as 0
#: (the comparison does not depend on the price); guards against float noise of the reruns.
SLOPE_RTOL = 1e-9

MAX_PRICE, MIN_PRICE, NO_PRICE, ANY_PRICE = "max_price", "min_price", "no_price", "any_price"
#: Status of a threshold price, in words (docs/regional.md).
THRESHOLD_STATUS = {
    MAX_PRICE: "cost-effective at prices below the threshold",
    MIN_PRICE: "cost-effective at prices above the threshold (the intervention uses fewer grams)",
    NO_PRICE: "not cost-effective at any price >= 0",
    ANY_PRICE: "cost-effective at any price >= 0",
}

REGIONAL_COLUMNS = [
    "country",
    "country_name",
    "currency",
    "price_year",
    "macro_year",
    "fx_lcu_per_usd",
    "ppp_lcu_per_intl_dollar",
    "gdp_per_capita_lcu",
    "gdp_per_capita_usd",
    "wtp_lcu",
    "wtp_usd",
    "wtp_intl",
    "wtp_basis",
    "wtp_over_gdp",
    "comparison",
    "intervention",
    "comparator",
    "cost_intervention_lcu",
    "cost_comparator_lcu",
    "qaly_intervention",
    "qaly_comparator",
    "inc_cost_lcu",
    "inc_cost_usd",
    "inc_cost_intl",
    "inc_qaly",
    "icer_lcu",
    "icer_usd",
    "icer_intl",
    "quadrant",
    "interpretation",
    "icer_over_wtp",
    "icer_over_gdp",
    "inmb_lcu",
    "inmb_usd",
    "inmb_intl",
    "cost_effective",
    "optimal_strategy",
    "optimal_at_alternatives",
    "price_item",
    "current_price_lcu",
    "current_price_usd",
    "current_price_intl",
    "price_slope_g",
    "inmb_at_zero_price_lcu",
    "threshold_price_lcu",
    "threshold_price_usd",
    "threshold_price_intl",
    "threshold_status",
    "price_change_needed",
    "threshold_note",
]


# --------------------------------------------------------------------------- conversions


def to_usd(x_lcu, fx_lcu_per_usd: float):
    """Local currency -> US dollars at the market exchange rate: ``x / fx_lcu_per_usd``."""
    return np.divide(x_lcu, fx_lcu_per_usd)


def to_intl(x_lcu, ppp_lcu_per_intl_dollar: float):
    """Local currency -> international dollars (PPP): ``x / ppp_lcu_per_intl_dollar``."""
    return np.divide(x_lcu, ppp_lcu_per_intl_dollar)


def from_intl(x_intl, ppp_lcu_per_intl_dollar: float):
    """International dollars -> local currency: ``x * ppp_lcu_per_intl_dollar``."""
    return np.multiply(x_intl, ppp_lcu_per_intl_dollar)


def from_usd(x_usd, fx_lcu_per_usd: float):
    """US dollars -> local currency: ``x * fx_lcu_per_usd``."""
    return np.multiply(x_usd, fx_lcu_per_usd)


# --------------------------------------------------------------------------- thresholds


def threshold_price(
    inmb_now: float, slope_g: float, price_now: float, grams_scale: float = 1.0
) -> tuple[float, str]:
    """Price per gram at which INMB = 0, and how to read it.

    INMB(p) = INMB(p_now) - dG (p - p_now)  =>  p* = p_now + INMB(p_now) / dG.

    Parameters
    ----------
    inmb_now : float
        INMB at today's prices (local currency per patient).
    slope_g : float
        dG = d(incremental cost)/d(price per gram): intervention minus comparator grams of
        the priced product, discounted at the cost rate.
    price_now : float
        Today's price per gram.
    grams_scale : float
        Size of the arms' grams; ``|dG| <= SLOPE_RTOL * grams_scale`` counts as no dependence.

    Returns
    -------
    (p*, status)
        p* is NaN when the comparison does not depend on the price. ``status`` is one of
        ``max_price``, ``min_price``, ``no_price``, ``any_price`` (:data:`THRESHOLD_STATUS`).
    """
    if abs(slope_g) <= SLOPE_RTOL * max(abs(grams_scale), 1.0):
        return float("nan"), (ANY_PRICE if inmb_now > 0 else NO_PRICE)
    p_star = price_now + inmb_now / slope_g
    if slope_g > 0:
        return p_star, (MAX_PRICE if p_star > 0 else NO_PRICE)
    return p_star, (MIN_PRICE if p_star > 0 else ANY_PRICE)


def price_item_for(intervention: Strategy, comparator: Strategy) -> str | None:
    """The price varied for a comparison: the intervention's product, else the comparator's."""
    for st in (intervention, comparator):
        if st.uses_igrt and st.product in PRICE_ITEMS:
            return PRICE_ITEMS[st.product]
    return None


# --------------------------------------------------------------------------- one country


@dataclass
class CountryResult:
    """The base case of one country and what the threshold analysis needs."""

    ptable: ParameterTable
    spec: ModelSpec
    outcomes: pd.DataFrame  # one row per strategy (base case)
    calibrated: pd.DataFrame
    comparisons: list[tuple[str, str]]
    #: per strategy: d cost / d price for each item of PRICE_ITEMS (grams, cost-discounted)
    slopes: pd.DataFrame
    #: per strategy: total cost with every PRICE_ITEMS price at 0
    cost_at_zero_price: pd.Series

    @property
    def country(self):
        return self.ptable.country

    def price(self, item: str) -> float:
        return float(self.ptable.df.loc[item, "value"])


# --------------------------------------------------------------------------- tables


def optimal_strategy(outcomes: pd.DataFrame, wtp: float, without_bsab: bool = False) -> str:
    """The strategy with the highest net monetary benefit at ``wtp`` (outcomes: ``strategy,
    cost, qaly`` and, for ``without_bsab``, ``cost_bsab``). ``without_bsab``: with bispecific
    costs during added survival excluded, i.e. the same QALYs and cost - cost_bsab."""
    cost = outcomes["cost"] - outcomes["cost_bsab"] if without_bsab else outcomes["cost"]
    table = outcomes[["strategy", "qaly"]].assign(cost=cost)
    t = icer_table(table, cost="cost", effect="qaly", wtp=wtp)
    return str(t.loc[t["optimal"], "strategy"].iloc[0])


def _wtp_points(c) -> list[tuple[str, float]]:
    """(kind, wtp) of the base WTP, each alternative, and each multiple of the base."""
    pts = [("base", c.wtp_per_qaly)]
    pts += [("alternative", float(w)) for w in c.wtp_alternatives]
    pts += [("multiple", m * c.wtp_per_qaly) for m in WTP_MULTIPLES]
    return pts


def comparison_rows(cr: CountryResult) -> pd.DataFrame:
    """regional.csv rows of one country: one per named comparison (see REGIONAL_COLUMNS)."""
    c = cr.country
    wtp, fx, ppp = c.wtp_per_qaly, c.fx_lcu_per_usd, c.ppp_lcu_per_intl_dollar
    o = cr.outcomes
    strategies = {s.strategy: s for s in cr.spec.strategies}
    optimal = optimal_strategy(o, wtp)
    alt = "; ".join(f"{w:,.0f}: {optimal_strategy(o, w)}" for w in c.wtp_alternatives)
    if not cr.comparisons:
        return pd.DataFrame(columns=REGIONAL_COLUMNS)
    pw = pairwise(o[["strategy", "cost", "qaly"]], cr.comparisons, wtp=wtp)
    rows = []
    for _, r in pw.iterrows():
        a, b = r["intervention"], r["comparator"]
        item = price_item_for(strategies[a], strategies[b])
        row = {
            "country": c.code,
            "country_name": c.name,
            "currency": c.currency,
            "price_year": c.price_year,
            "macro_year": c.macro_year,
            "fx_lcu_per_usd": fx,
            "ppp_lcu_per_intl_dollar": ppp,
            "gdp_per_capita_lcu": c.gdp_per_capita_lcu,
            "gdp_per_capita_usd": c.gdp_per_capita_usd,
            "wtp_lcu": wtp,
            "wtp_usd": to_usd(wtp, fx),
            "wtp_intl": to_intl(wtp, ppp),
            "wtp_basis": c.wtp_basis,
            "wtp_over_gdp": wtp / c.gdp_per_capita_lcu,
            "comparison": r["comparison"],
            "intervention": a,
            "comparator": b,
            "cost_intervention_lcu": o.loc[a, "cost"],
            "cost_comparator_lcu": o.loc[b, "cost"],
            "qaly_intervention": o.loc[a, "qaly"],
            "qaly_comparator": o.loc[b, "qaly"],
            "inc_cost_lcu": r["inc_cost"],
            "inc_cost_usd": to_usd(r["inc_cost"], fx),
            "inc_cost_intl": to_intl(r["inc_cost"], ppp),
            "inc_qaly": r["inc_effect"],
            "icer_lcu": r["icer"],
            "icer_usd": to_usd(r["icer"], fx),
            "icer_intl": to_intl(r["icer"], ppp),
            "quadrant": r["quadrant"],
            "interpretation": r["interpretation"],
            "icer_over_wtp": r["icer"] / wtp,
            "icer_over_gdp": r["icer"] / c.gdp_per_capita_lcu,
            "inmb_lcu": r["inmb"],
            "inmb_usd": to_usd(r["inmb"], fx),
            "inmb_intl": to_intl(r["inmb"], ppp),
            "cost_effective": bool(r["cost_effective"]),
            "optimal_strategy": optimal,
            "optimal_at_alternatives": alt,
            "price_item": item or "",
        }
        row.update(_threshold_columns(cr, a, b, item, r["inmb"]))
        rows.append(row)
    return pd.DataFrame(rows, columns=REGIONAL_COLUMNS)


def _threshold_columns(
    cr: CountryResult, a: str, b: str, item: str | None, inmb_now: float
) -> dict:
    c = cr.country
    fx, ppp = c.fx_lcu_per_usd, c.ppp_lcu_per_intl_dollar
    nan = float("nan")
    if item is None:
        return {
            "current_price_lcu": nan,
            "current_price_usd": nan,
            "current_price_intl": nan,
            "price_slope_g": nan,
            "inmb_at_zero_price_lcu": nan,
            "threshold_price_lcu": nan,
            "threshold_price_usd": nan,
            "threshold_price_intl": nan,
            "threshold_status": ANY_PRICE if inmb_now > 0 else NO_PRICE,
            "price_change_needed": nan,
            "threshold_note": "neither arm uses IgRT: no Ig price applies",
        }
    p_now = cr.price(item)
    g_a, g_b = cr.slopes.loc[a, item], cr.slopes.loc[b, item]
    slope = g_a - g_b
    p_star, status = threshold_price(inmb_now, slope, p_now, grams_scale=max(abs(g_a), abs(g_b)))
    inmb_zero = inmb_now + slope * p_now
    change = p_star / p_now - 1.0 if p_now > 0 and np.isfinite(p_star) else nan
    return {
        "current_price_lcu": p_now,
        "current_price_usd": to_usd(p_now, fx),
        "current_price_intl": to_intl(p_now, ppp),
        "price_slope_g": slope,
        "inmb_at_zero_price_lcu": inmb_zero,
        "threshold_price_lcu": p_star,
        "threshold_price_usd": to_usd(p_star, fx),
        "threshold_price_intl": to_intl(p_star, ppp),
        "threshold_status": status,
        "price_change_needed": change,
        "threshold_note": threshold_note(
            status, item, p_star, p_now, change, inmb_zero, c.currency
        ),
    }


def threshold_note(
    status: str,
    item: str,
    p_star: float,
    p_now: float,
    change: float,
    inmb_zero: float,
    currency: str,
) -> str:
    """One sentence on a threshold price, for the table and the terminal."""
    what = item.removeprefix("c_").removesuffix("_per_g").upper()
    now = f"today {currency} {p_now:,.2f}/g"
    if status == MAX_PRICE:
        verb = "a cut of" if change < 0 else "headroom of"
        return f"cost-effective if {what} <= {currency} {p_star:,.2f}/g ({now}: {verb} {abs(change):.0%})"
    if status == MIN_PRICE:
        return f"cost-effective only if {what} >= {currency} {p_star:,.2f}/g ({now}; the intervention uses fewer grams)"
    if status == NO_PRICE:
        if np.isfinite(p_star):
            return (
                f"not cost-effective at any {what} price >= 0: INMB at price 0 is {currency} {inmb_zero:,.0f} "
                f"(break-even would need {currency} {p_star:,.2f}/g)"
            )
        return f"not cost-effective whatever the {what} price (the price does not change the comparison)"
    if np.isfinite(p_star):
        return f"cost-effective at any {what} price >= 0 (INMB at price 0 is {currency} {inmb_zero:,.0f})"
    return f"cost-effective whatever the {what} price (the price does not change the comparison)"


def strategy_rows(cr: CountryResult) -> pd.DataFrame:
    """regional_strategies.csv rows of one country: one per strategy."""
    c = cr.country
    fx, ppp, wtp = c.fx_lcu_per_usd, c.ppp_lcu_per_intl_dollar, c.wtp_per_qaly
    o = cr.outcomes
    inc = icer_table(
        o[["strategy", "cost", "qaly"]], cost="cost", effect="qaly", wtp=wtp
    ).set_index("strategy")
    labels = {s.strategy: s.label for s in cr.spec.strategies}
    rows = []
    for s in cr.spec.strategy_names:
        row = {
            "country": c.code,
            "currency": c.currency,
            "price_year": c.price_year,
            "strategy": s,
            "label": labels[s],
            "cost_lcu": o.loc[s, "cost"],
            "cost_usd": to_usd(o.loc[s, "cost"], fx),
            "cost_intl": to_intl(o.loc[s, "cost"], ppp),
            "cost_ig_lcu": o.loc[s, "cost_ig"],
            "qaly": o.loc[s, "qaly"],
            "ly": o.loc[s, "ly"],
            "ig_grams_undiscounted": o.loc[s, "ig_grams_undiscounted"],
            "status": inc.loc[s, "status"],
            "icer_lcu": inc.loc[s, "icer"],
            "nmb_lcu": inc.loc[s, "nmb"],
            "nmb_usd": to_usd(inc.loc[s, "nmb"], fx),
            "nmb_intl": to_intl(inc.loc[s, "nmb"], ppp),
            "optimal": bool(inc.loc[s, "optimal"]),
            "cost_at_zero_price_lcu": cr.cost_at_zero_price.loc[s],
        }
        for item in cr.slopes.columns:
            row[f"price_slope_{item}"] = cr.slopes.loc[s, item]
        rows.append(row)
    return pd.DataFrame(rows)


def optimal_rows(cr: CountryResult) -> pd.DataFrame:
    """regional_optimal.csv rows of one country: the optimal strategy at each WTP."""
    c = cr.country
    o = cr.outcomes
    rows = []
    for kind, w in _wtp_points(c):
        t = icer_table(o[["strategy", "cost", "qaly"]], cost="cost", effect="qaly", wtp=w)
        best = t.loc[t["optimal"]].iloc[0]
        rows.append(
            {
                "country": c.code,
                "currency": c.currency,
                "price_year": c.price_year,
                "wtp_kind": kind,
                "wtp_multiple": w / c.wtp_per_qaly,
                "wtp_lcu": w,
                "wtp_usd": to_usd(w, c.fx_lcu_per_usd),
                "wtp_intl": to_intl(w, c.ppp_lcu_per_intl_dollar),
                "wtp_over_gdp": w / c.gdp_per_capita_lcu,
                "optimal_strategy": best["strategy"],
                "nmb_optimal_lcu": best["nmb"],
                "optimal_without_bsab_costs": optimal_strategy(o, w, without_bsab=True),
            }
        )
    return pd.DataFrame(rows)


def threshold_rows(cr: CountryResult) -> pd.DataFrame:
    """regional_thresholds.csv rows: the threshold price of each comparison at each WTP."""
    c = cr.country
    o = cr.outcomes
    strategies = {s.strategy: s for s in cr.spec.strategies}
    rows = []
    for a, b in cr.comparisons:
        item = price_item_for(strategies[a], strategies[b])
        if item is None:
            continue
        d_cost = o.loc[a, "cost"] - o.loc[b, "cost"]
        d_qaly = o.loc[a, "qaly"] - o.loc[b, "qaly"]
        g_a, g_b = cr.slopes.loc[a, item], cr.slopes.loc[b, item]
        p_now = cr.price(item)
        for kind, w in _wtp_points(c):
            p_star, status = threshold_price(
                w * d_qaly - d_cost, g_a - g_b, p_now, max(abs(g_a), abs(g_b))
            )
            rows.append(
                {
                    "country": c.code,
                    "currency": c.currency,
                    "price_year": c.price_year,
                    "comparison": f"{a} vs {b}",
                    "price_item": item,
                    "wtp_kind": kind,
                    "wtp_multiple": w / c.wtp_per_qaly,
                    "wtp_lcu": w,
                    "current_price_lcu": p_now,
                    "threshold_price_lcu": p_star,
                    "threshold_price_usd": to_usd(p_star, c.fx_lcu_per_usd),
                    "threshold_price_intl": to_intl(p_star, c.ppp_lcu_per_intl_dollar),
                    "threshold_status": status,
                    "price_change_needed": p_star / p_now - 1.0
                    if p_now > 0 and np.isfinite(p_star)
                    else np.nan,
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- provenance and output

CONVENTIONS = {
    "currency": "results in local currency units (LCU) of the country's price_year",
    "to_usd": "x_usd = x_lcu / fx_lcu_per_usd (World Bank PA.NUS.FCRF, period average, of macro_year)",
    "to_intl": "x_intl = x_lcu / ppp_lcu_per_intl_dollar (World Bank PA.NUS.PPP, GDP, of macro_year)",
    "gdp_per_capita_lcu": "gdp_per_capita_usd (NY.GDP.PCAP.CD of macro_year) x fx_lcu_per_usd",
    "icer_over_wtp": "icer_lcu / wtp_lcu; currency-free. NE quadrant: cost-effective when < 1; SW quadrant "
    "(cheaper, less effective; ICER = saving per QALY lost): cost-effective when > 1; NaN when dominant or dominated",
    "inmb": "wtp x inc_qaly - inc_cost at the country's base WTP; cost_effective = inmb > 0",
    "optimal_strategy": "highest NMB at the WTP (cea.analysis.incremental.icer_table; ties to the cheaper frontier strategy)",
    "threshold_price": "p* = p_now + INMB(p_now) / dG, dG = d(inc_cost)/dp = difference in grams of the priced "
    "product discounted at the cost rate, measured by rerunning the model with the price at 0 and 1 "
    "(calibration reused); exact because total cost is linear in the price per gram",
    "threshold_item": "the intervention's product price (the comparator's when the intervention has no IgRT); an arm "
    "using the other product keeps today's price",
    "threshold_status": THRESHOLD_STATUS,
    "price_change_needed": "threshold_price / current_price - 1 (negative: a price cut)",
    "wtp_multiples": list(WTP_MULTIPLES),
}

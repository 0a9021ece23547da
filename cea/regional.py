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

import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cea import __version__
from cea.analysis.incremental import icer_table, pairwise
from cea.errors import CeaError
from cea.io.inputs import Inputs, load_inputs
from cea.igrt.model import ModelSpec, Strategy, run_model
from cea.parameters.table import ParameterTable, Scenario, build_parameter_table, load_scenario
from cea.run import (
    DEFAULT_OUTPUTS,
    OutputDir,
    apply_discount_settings,
    build_spec,
    comparisons_from_settings,
    git_commit,
)

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


def run_country(inputs: Inputs, code: str, scenario: Scenario) -> CountryResult:
    """Base case of one country (one calibrated run) and the price slopes (one cheap rerun).

    Errors are re-raised naming the country; a price item that the model needs and the
    country's price file lacks is named with the file.
    """
    try:
        ptable = build_parameter_table(inputs, code, scenario)
        spec = apply_discount_settings(build_spec(ptable, inputs), ptable.settings)
        base = ptable.base()
        res = run_model(base, spec)
        slopes, cost_zero = _price_slopes(base, spec, res.calibrated)
    except CeaError as exc:
        raise _country_error(inputs, code, exc) from None
    outcomes = res.outcomes.set_index("strategy", drop=False)
    outcomes.index.name = None
    return CountryResult(
        ptable=ptable,
        spec=spec,
        outcomes=outcomes,
        calibrated=res.calibrated,
        comparisons=comparisons_from_settings(ptable.settings, spec),
        slopes=slopes,
        cost_at_zero_price=cost_zero,
    )


def _price_slopes(
    base: pd.DataFrame, spec: ModelSpec, calibrated: pd.DataFrame
) -> tuple[pd.DataFrame, pd.Series]:
    """d cost / d price of each PRICE_ITEMS item per strategy, from one stacked rerun.

    Rows: every price at 0, then each item at 1 with the others at 0. Cost is linear in each
    price, so cost(item = 1) - cost(all 0) is the slope exactly (to float rounding).
    """
    items = [i for i in PRICE_ITEMS.values() if i in base.columns]
    rows = [base.iloc[0].copy() for _ in range(len(items) + 1)]
    for r in rows:
        r[items] = 0.0
    for k, item in enumerate(items, start=1):
        rows[k][item] = 1.0
    draws = pd.DataFrame(rows, index=pd.Index(range(len(rows)), name="draw"))
    cal = pd.DataFrame(
        np.repeat(calibrated.to_numpy(), len(rows), axis=0),
        columns=calibrated.columns,
        index=draws.index,
    )
    out = run_model(draws, spec, calibrated=cal).outcomes.pivot(
        index="strategy", columns="draw", values="cost"
    )
    out = out.loc[spec.strategy_names]
    slopes = pd.DataFrame({item: out[k] - out[0] for k, item in enumerate(items, start=1)})
    return slopes, out[0]


def _country_error(inputs: Inputs, code: str, exc: CeaError) -> CeaError:
    msg = str(exc)
    prices = inputs.prices.get(code)
    if prices is not None:
        own = set(prices.df["item"])
        others = {c: set(t.df["item"]) for c, t in inputs.prices.items() if c != code}
        for item in sorted(set().union(*others.values()) - own) if others else []:
            if f"'{item}'" in msg:
                n = sum(item in s for s in others.values())
                return CeaError(
                    f"country {code}: price item '{item}' is missing from {prices.path} "
                    f"(the model needs it; {n} other countr{'y prices' if n == 1 else 'ies price'} it)"
                )
        if "'c_" in msg and f"country {code}" not in msg:
            return CeaError(f"country {code} ({prices.path}): {msg}")
    if f"country {code}" in msg:
        return CeaError(msg)
    return CeaError(f"country {code}: {msg}")


# --------------------------------------------------------------------------- tables


def _optimal(outcomes: pd.DataFrame, wtp: float) -> str:
    t = icer_table(outcomes[["strategy", "cost", "qaly"]], cost="cost", effect="qaly", wtp=wtp)
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
    optimal = _optimal(o, wtp)
    alt = "; ".join(f"{w:,.0f}: {_optimal(o, w)}" for w in c.wtp_alternatives)
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


# --------------------------------------------------------------------------- the comparison


@dataclass
class RegionalResult:
    """Everything ``cea compare`` produces, in memory."""

    inputs: Inputs
    scenario: Scenario
    countries: dict[str, CountryResult]
    regional: pd.DataFrame
    strategies: pd.DataFrame
    optimal: pd.DataFrame
    thresholds: pd.DataFrame
    seconds: float
    warnings: list[str] = field(default_factory=list)


def parse_countries(text: str | None, inputs: Inputs) -> list[str]:
    """'all' (or empty) -> every country of countries.csv; else a comma-separated ISO2 list."""
    known = inputs.country_codes()
    if text is None or text.strip().lower() in ("", "all"):
        return known
    codes: list[str] = []
    for part in text.split(","):
        code = part.strip().upper()
        if not code:
            continue
        if code not in known:
            raise CeaError(f"unknown country '{code}' in --countries (known: {', '.join(known)})")
        if code not in codes:
            codes.append(code)
    if not codes:
        raise CeaError("--countries lists no country")
    return codes


def compare_countries(
    inputs_dir: Path | str = "inputs",
    countries: str | list[str] | None = "all",
    scenario: Scenario | Path | str | None = None,
) -> RegionalResult:
    """Run the base case of each country and build the regional tables."""
    t0 = time.perf_counter()
    inputs = load_inputs(inputs_dir)
    if scenario is not None and not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    scenario = scenario or Scenario()
    codes = parse_countries(
        countries if isinstance(countries, str) or countries is None else ",".join(countries),
        inputs,
    )
    warnings = []
    priced = sorted(n for n in scenario.parameters if n.startswith("c_"))
    if priced:
        warnings.append(
            f"scenario '{scenario.name}' overrides {', '.join(priced)}: the same number is used in every "
            "country's own currency"
        )
    runs = {code: run_country(inputs, code, scenario) for code in codes}
    regional = pd.concat([comparison_rows(r) for r in runs.values()], ignore_index=True)
    strategies = pd.concat([strategy_rows(r) for r in runs.values()], ignore_index=True)
    optimal = pd.concat([optimal_rows(r) for r in runs.values()], ignore_index=True)
    thr = [threshold_rows(r) for r in runs.values()]
    thresholds = pd.concat(thr, ignore_index=True) if thr else pd.DataFrame()
    years = {(r.country.price_year, r.country.macro_year) for r in runs.values()}
    for py, my in sorted(years):
        if py != my:
            warnings.append(
                f"price year {py} differs from macro year {my}: US$ and I$ use {my} rates on {py} prices"
            )
    return RegionalResult(
        inputs=inputs,
        scenario=scenario,
        countries=runs,
        regional=regional,
        strategies=strategies,
        optimal=optimal,
        thresholds=thresholds,
        seconds=time.perf_counter() - t0,
        warnings=warnings,
    )


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


def provenance(res: RegionalResult, command: str, files: list[str]) -> dict:
    import matplotlib
    import scipy

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
    return {
        "package": "cea",
        "version": __version__,
        "command": command,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "packages": {
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "scipy": scipy.__version__,
            "matplotlib": matplotlib.__version__,
        },
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
        "model": {
            "cycle_days": spec.cycle_days,
            "n_cycles": spec.n_cycles,
            "horizon_years": spec.n_cycles * spec.dt,
            "within_cycle_correction": spec.correction
            if isinstance(spec.correction, str)
            else list(spec.correction),
            "bsab_drug": spec.bsab_drug,
            "include_bsab_costs": spec.include_bsab_costs,
            "include_subsequent_therapy": spec.include_subsequent_therapy,
            "include_end_of_life": spec.include_end_of_life,
        },
        "conventions": CONVENTIONS,
        "warnings": res.warnings,
        "files": files,
        "runtime_seconds": round(res.seconds, 3),
        "input_sha256": dict(sorted(res.inputs.hashes.items())),
    }


def write_outputs(res: RegionalResult, folder: Path, command: str) -> list[str]:
    """regional.csv, regional_strategies.csv, regional_optimal.csv, regional_thresholds.csv,
    the figures and run.json. Returns the files written."""
    from cea.report.plots import regional as plots

    folder = Path(folder)
    files = []
    for name, df in (
        ("regional.csv", res.regional),
        ("regional_strategies.csv", res.strategies),
        ("regional_optimal.csv", res.optimal),
        ("regional_thresholds.csv", res.thresholds),
    ):
        df.to_csv(folder / name, index=False)
        files.append(name)
    labels, no_igrt = {}, set()
    for r in res.countries.values():
        for st in r.spec.strategies:
            labels[st.strategy] = st.label
            if not st.uses_igrt:
                no_igrt.add(st.strategy)
    files += plots.plot_all(res.regional, res.optimal, labels, no_igrt, folder)
    files.append("run.json")
    (folder / "run.json").write_text(
        json.dumps(provenance(res, command, files), indent=2, default=str) + "\n"
    )
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
    optimal = {
        code: _optimal(r.outcomes, r.country.wtp_per_qaly) for code, r in res.countries.items()
    }
    w = max(len("optimal at WTP"), *(len(s) for s in optimal.values())) + 2
    head = (
        f"{'':<4}{'cur':<5}{'WTP/QALY':>14}{'WTP US$':>10}{'xGDP':>6}  {'optimal at WTP':<{w}}"
        f"{'IVIG/g':>10}{'SCIG/g':>10}{'IVIG US$/g':>11}"
    )
    lines += [head, "-" * len(head)]
    for code, r in res.countries.items():
        c = r.country
        ivig = r.price("c_ivig_per_g") if "c_ivig_per_g" in r.ptable.df.index else float("nan")
        scig = r.price("c_scig_per_g") if "c_scig_per_g" in r.ptable.df.index else float("nan")
        lines.append(
            f"{code:<4}{c.currency:<5}{c.wtp_per_qaly:>14,.0f}{to_usd(c.wtp_per_qaly, c.fx_lcu_per_usd):>10,.0f}"
            f"{c.wtp_per_qaly / c.gdp_per_capita_lcu:>6.2f}  {optimal[code]:<{w}}{ivig:>10,.2f}{scig:>10,.2f}"
            f"{to_usd(ivig, c.fx_lcu_per_usd):>11,.1f}"
        )
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
            "ICER / WTP (NE: < 1 is cost-effective; SW: > 1 is; dominant / dominated shown as such)",
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


def cli_compare(args) -> int:
    """``cea compare``: the regional comparison (see the module docstring)."""
    scenario = load_scenario(args.scenario) if args.scenario else Scenario()
    out = Path(args.out) if args.out else DEFAULT_OUTPUTS / default_run_name(scenario)
    if out.exists() and not args.force:  # before the runs, not after them
        raise CeaError(f"output folder {out} already exists: use --force to replace it, or --out")
    res = compare_countries(args.inputs, args.countries, scenario)
    command = " ".join(getattr(args, "argv", ["cea", "compare"]))
    with OutputDir(out, force=args.force) as tmp:
        write_outputs(res, tmp, command)
    print(summary_text(res))
    print(f"\n{len(res.countries)} countries in {res.seconds:.1f} s; written: {out}/")
    return 0

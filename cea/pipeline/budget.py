"""Budget impact: ``cea budget`` (ISPOR good practice, Sullivan SD et al., Value Health
2014;17:5-14).

The eligible patients of each calendar year (``countries.csv``: ``population_eligible_annual``
growing by ``population_growth_annual``) start a bispecific on the first day of the year and
are split between strategies by the current or the new mix (``budget_mix.csv``). Each cohort
is followed with the model's own per-cycle numbers, undiscounted
(:attr:`cea.pipeline.base.BaseCase.per_cycle`, spread over years by
:mod:`cea.analysis.budget`); patients who started in earlier years are still counted.
The net budget impact is the new mix minus the current one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cea.analysis.budget import by_model_year, calendar_totals, eligible_patients
from cea.errors import CeaError
from cea.igrt.spec import COST_CATEGORIES, FLOWS
from cea.io.inputs import BUDGET_MIXES, BUDGET_YEARS, Inputs
from cea.parameters.table import Scenario
from cea.pipeline.base import BaseCase, as_scenario, build_base_case

#: What the budget counts besides money: (measure, unit). ``chair_hours`` = IVIG infusion
#: visits x ``q_ivig_chair_hours``; ``life_years`` = person-years alive.
RESOURCES = (
    ("ig_grams", "g"),
    ("infusions", "infusions"),
    ("chair_hours", "hours"),
    ("severe_infections", "events"),
    ("infection_deaths", "deaths"),
    ("life_years", "person-years"),
)
MONEY = (*COST_CATEGORIES, "cost")
#: The mixes of the table: the two of budget_mix.csv and their difference.
MIXES = (*BUDGET_MIXES, "net")


@dataclass
class Budget:
    """One country's budget impact.

    ``per_patient[measure]``: (K, Y) per patient starting on each strategy, by year since
    start; ``totals[mix][measure]``: (Y,) by calendar year; ``table``: the long table of
    ``budget.csv`` (:func:`budget_table`).
    """

    base: BaseCase
    years: int
    new_patients: np.ndarray
    shares: dict[str, np.ndarray]
    per_patient: dict[str, np.ndarray]
    totals: dict[str, dict[str, np.ndarray]]
    table: pd.DataFrame

    @property
    def country(self):
        return self.base.country

    @property
    def strategies(self) -> list[str]:
        return self.base.spec.strategy_names


def budget_years(inputs: Inputs, scenario: Scenario, years: int | None) -> int:
    """The budget's horizon: the option, else the scenario's or settings.toml's [budget]
    horizon_years, else 5."""
    if years is None:
        years = scenario.settings.get("budget", {}).get(
            "horizon_years", inputs.settings.get("budget", {}).get("horizon_years", BUDGET_YEARS)
        )
    if not 1 <= years <= BUDGET_YEARS:
        raise CeaError(f"--years must be 1 to {BUDGET_YEARS} (ISPOR: a 1-5 year horizon)")
    return int(years)


def mix_shares(inputs: Inputs, years: int) -> tuple[list[str], dict[str, np.ndarray]]:
    """The strategies of budget_mix.csv (first-appearance order) and, per mix, their (K, Y)
    shares (0 where a mix does not list a strategy)."""
    table = inputs.budget_mix
    if table is None:
        raise CeaError(
            f"{inputs.root}: no budget_mix.csv (cea budget needs the current and the new mix of "
            "strategies; see inputs/README.md)"
        )
    df = table.df
    names = list(dict.fromkeys(df["strategy"]))
    cols = [f"year_{y}" for y in range(1, years + 1)]
    shares = {}
    for mix in BUDGET_MIXES:
        rows = df[df["mix"] == mix].set_index("strategy")
        shares[mix] = rows.reindex(names)[cols].fillna(0.0).to_numpy(float)
    return names, shares


def budget_impact(
    inputs: Inputs,
    country: str | None = None,
    scenario: Scenario | None = None,
    years: int | None = None,
) -> Budget:
    """The budget impact of the new mix over the current one for one country."""
    scenario = as_scenario(scenario)
    years = budget_years(inputs, scenario, years)
    names, shares = mix_shares(inputs, years)
    run = scenario.settings.get("model", {}).get("strategies")
    missing = [n for n in names if run is not None and n not in run]
    if missing:
        raise CeaError(
            f"budget_mix.csv names {', '.join(missing)}, which scenario '{scenario.name}' does "
            f"not run (it runs {', '.join(run)}): give a budget_mix.csv of its strategies "
            "(--inputs with a copy of the inputs)"
        )
    base = build_base_case(inputs, country, scenario, names, keep_trace=False, keep_per_cycle=True)
    spec, c = base.spec, base.country
    horizon = spec.n_cycles * spec.dt
    if horizon < years - spec.dt:
        raise CeaError(
            f"the model's horizon ({horizon:.2f} years) is shorter than the budget's {years} "
            "years: lengthen [model] horizon_years or shorten --years"
        )
    if c.population_eligible_annual is None:
        raise CeaError(
            f"countries.csv: {c.code} has no population_eligible_annual (cea budget needs it)"
        )
    new = eligible_patients(c.population_eligible_annual, c.population_growth_annual, years)
    pc = dict(base.per_cycle)
    hours = base.ptable.base()["q_ivig_chair_hours"].iloc[0]
    is_ivig = np.array([st.uses_igrt and not st.is_scig for st in spec.strategies], float)
    pc["chair_hours"] = pc["infusions"] * (is_ivig * hours)[:, None]
    pc["life_years"] = pc["ly"]
    per_patient = {
        m: by_model_year(pc[m], spec.dt, years, flow=m in FLOWS)
        for m in (*COST_CATEGORIES, *dict(RESOURCES))
    }
    per_patient["cost"] = sum(per_patient[k] for k in COST_CATEGORIES)
    totals: dict[str, dict[str, np.ndarray]] = {}
    for mix in BUDGET_MIXES:
        totals[mix] = {
            m: calendar_totals(pp, new, shares[mix]).sum(axis=0) for m, pp in per_patient.items()
        }
    totals["net"] = {m: totals["new"][m] - totals["current"][m] for m in per_patient}
    _check_finite_totals(inputs, c, totals)
    out = Budget(base, years, new, shares, per_patient, totals, pd.DataFrame())
    out.table = budget_table(out)
    return out


def _check_finite_totals(inputs: Inputs, c, totals: dict[str, dict[str, np.ndarray]]) -> None:
    """Refuse a total beyond the floats' range (the per-patient numbers are finite: the base
    case refuses others), naming the population in countries.csv."""
    for mix, measures in totals.items():
        for m, v in measures.items():
            if not np.isfinite(v).all():
                df = inputs.countries.df
                rows = df.loc[df["country"] == c.code, "_row"]
                raise inputs.countries.error(
                    f"{c.population_eligible_annual:g} patients a year give {c.code} a budget "
                    f"({m}, {mix} mix) beyond the range of floating-point numbers",
                    row=int(rows.iloc[0]) if len(rows) else None,
                    column="population_eligible_annual",
                )


def budget_table(b: Budget) -> pd.DataFrame:
    """The long table of budget.csv: one row per (mix, calendar year, measure), with the
    value in the country's currency (money) or its unit, in US$ (money only), and cumulative
    from year 1."""
    c = b.country
    rows = []
    for mix in MIXES:
        for measure, unit in (
            *((m, f"{c.currency} {c.price_year}") for m in MONEY),
            ("new_patients", "patients"),
            *RESOURCES,
        ):
            if measure == "new_patients":
                values = b.new_patients if mix != "net" else np.zeros(b.years)
            else:
                values = b.totals[mix][measure]
            money = measure in MONEY
            cum = np.cumsum(values)
            for y in range(b.years):
                rows.append(
                    {
                        "country": c.code,
                        "scenario": b.base.ptable.scenario.name,
                        "mix": mix,
                        "year": y + 1,
                        "measure": measure,
                        "unit": unit,
                        "value": values[y],
                        "cumulative": cum[y],
                        "value_usd": values[y] / c.fx_lcu_per_usd if money else np.nan,
                        "cumulative_usd": cum[y] / c.fx_lcu_per_usd if money else np.nan,
                    }
                )
    return pd.DataFrame(rows)


def describe_budget(b: Budget) -> dict:
    """The budget's section of run.json: the population, the mixes and the conventions."""
    c = b.country
    return {
        "years": b.years,
        "population_eligible_annual": c.population_eligible_annual,
        "population_growth_annual": c.population_growth_annual,
        "new_patients_by_year": [float(x) for x in b.new_patients],
        "strategies": b.strategies,
        "shares": {
            m: dict(zip(b.strategies, s.tolist(), strict=True)) for m, s in b.shares.items()
        },
        "fx_lcu_per_usd": c.fx_lcu_per_usd,
        "conventions": {
            "costs": "undiscounted, per calendar year, prices of the country's price year",
            "cohorts": "each calendar year's eligible patients start on its first day and are "
            "followed for the rest of the budget horizon with the model's per-cycle numbers",
            "year_split": "a state reward's trace row t stands for [(t - 1/2), (t + 1/2)] cycles "
            "clipped to the model's time, an event's or transition reward's row t for the cycle "
            "ending there, [(t - 1), t]; a contribution is split between years by overlap",
            "chair_hours": "IVIG infusion visits x q_ivig_chair_hours (SCIG at home: none)",
            "net": "new mix minus current mix",
        },
    }

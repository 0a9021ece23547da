"""The base case: inputs -> parameter table -> specification -> model -> base-case tables.

:func:`build_base_case` is the one place a base case is assembled; every command (run, DSA,
scenarios, PSA, regional comparison, checks) takes its base case from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cea.analysis.incremental import icer_table, pairwise
from cea.analysis.outcomes import results_table, trace_table, validate_outcomes
from cea.errors import CeaError
from cea.igrt.model import run_model
from cea.igrt.spec import COST_GROUPS, SUBGROUPS, ModelSpec, apply_discount_settings, build_spec
from cea.io.inputs import Inputs
from cea.io.load import load_inputs
from cea.parameters.table import (
    ParameterTable,
    Scenario,
    build_parameter_table,
    load_scenario,
    normalize_country,
)

DEFAULT_INPUTS = Path("inputs")
#: Event counts every comparisons.csv reports beside cost and QALYs (cost per event averted).
COMPARISON_EXTRA = ("severe_infections", "infection_deaths")


@dataclass
class BaseCase:
    """Everything a base-case run produces, in memory."""

    inputs: Inputs
    ptable: ParameterTable
    spec: ModelSpec
    outcomes: pd.DataFrame
    results: pd.DataFrame
    incremental: pd.DataFrame
    comparisons: pd.DataFrame
    trace: pd.DataFrame
    calibrated: dict[str, float]
    extra_files: dict[str, str] = field(default_factory=dict)
    #: the engine's backend the base case ran on (analyses of it use the same)
    backend: str = "numpy"
    #: reward name -> (K, T + 1) per-patient contribution of each trace row, undiscounted
    #: (:attr:`cea.igrt.model.ModelResult.per_cycle`), when asked for
    per_cycle: dict | None = None

    @property
    def country(self):
        return self.ptable.country


def comparisons_from_settings(
    settings: dict, spec: ModelSpec, known: set[str] | None = None
) -> list[tuple[str, str]]:
    """The settings' comparisons whose two strategies are in this run.

    A comparison naming a strategy that exists (``known``: every id in strategies.csv) but is
    not run is skipped (scenarios change the strategy set); an unknown id is an error.
    """
    names = set(spec.strategy_names)
    out = []
    for a, b in settings.get("model", {}).get("comparisons", []):
        for x in (a, b):
            if known is not None and x not in known:
                raise CeaError(
                    f"comparison {a}:{b} names unknown strategy '{x}' (settings or scenario)"
                )
        if a in names and b in names:
            out.append((a, b))
    return out


def resolve_country(inputs: Inputs, scenario: Scenario, country: str | None) -> str:
    """The country of a run: the option, else the scenario's, else settings.toml's, else GB."""
    return normalize_country(
        inputs,
        country
        or scenario.settings.get("run", {}).get("country")
        or inputs.settings.get("run", {}).get("country", "GB"),
    )


def as_scenario(scenario: Scenario | Path | str | None) -> Scenario:
    """A scenario from its file, or the empty scenario."""
    if scenario is not None and not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    return scenario or Scenario()


def build_base_case(
    inputs: Inputs,
    country: str | None = None,
    scenario: Scenario | Path | str | None = None,
    strategies: list[str] | None = None,
    *,
    ptable: ParameterTable | None = None,
    spec: ModelSpec | None = None,
    keep_trace: bool = True,
    backend: str = "numpy",
    keep_per_cycle: bool = False,
) -> BaseCase:
    """The deterministic base case for one country: the one place it is assembled.

    ``ptable`` and ``spec`` may be given when the caller has built them already (the PSA);
    ``keep_trace=False`` skips the trace table (scenarios and DSA designs do not write it);
    ``keep_per_cycle=True`` keeps each trace row's contribution (the budget impact needs it).
    """
    scenario = as_scenario(scenario)
    if ptable is None:
        ptable = build_parameter_table(inputs, resolve_country(inputs, scenario, country), scenario)
    if spec is None:
        spec = apply_discount_settings(build_spec(ptable, inputs, strategies), ptable.settings)
    res = run_model(
        ptable.base(), spec, keep_traces=keep_trace, backend=backend, keep_per_cycle=keep_per_cycle
    )
    outcomes = validate_outcomes(res.outcomes, "the base case")
    wtp = ptable.country.wtp_per_qaly
    comps = comparisons_from_settings(ptable.settings, spec, set(inputs.strategies.df["strategy"]))
    comparisons = (
        with_cost_split(pairwise(outcomes, comps, wtp=wtp, extra=COMPARISON_EXTRA), outcomes)
        if comps
        else pd.DataFrame()
    )
    return BaseCase(
        inputs=inputs,
        ptable=ptable,
        spec=spec,
        outcomes=outcomes,
        results=results_table(outcomes, spec),
        incremental=icer_table(outcomes, cost="cost", effect="qaly", wtp=wtp),
        comparisons=comparisons,
        trace=trace_table(res.traces, spec) if keep_trace else pd.DataFrame(),
        calibrated={k: float(v) for k, v in res.calibrated.iloc[0].items()},
        backend=backend,
        per_cycle={k: v[:, 0] for k, v in res.per_cycle.items()} if keep_per_cycle else None,
    )


def with_cost_split(comparisons: pd.DataFrame, outcomes: pd.DataFrame) -> pd.DataFrame:
    """The comparisons with their incremental cost split by :data:`COST_GROUPS` (discounted):
    ``inc_cost_igrt``, ``inc_cost_infections``, ``inc_cost_added_survival``; they add up to
    ``inc_cost``."""
    by = outcomes.set_index("strategy")
    out = comparisons.copy()
    at = out.columns.get_loc("inc_cost") + 1
    for k, (group, cats) in enumerate(COST_GROUPS.items()):
        total = by[list(cats)].sum(axis=1)
        value = total.loc[out["intervention"]].to_numpy() - total.loc[out["comparator"]].to_numpy()
        out.insert(at + k, f"inc_cost_{group}", value)
    return out


def run_base_case(
    inputs: Inputs | Path | str = DEFAULT_INPUTS,
    country: str | None = None,
    scenario: Scenario | Path | str | None = None,
    strategies: list[str] | None = None,
    backend: str = "numpy",
) -> BaseCase:
    """Load the inputs (a folder, a workbook, or :class:`Inputs` already read) and run the
    deterministic base case for one country (``backend``: the engine's, ``numpy`` or
    ``numba``)."""
    if not isinstance(inputs, Inputs):
        inputs = load_inputs(inputs)
    return build_base_case(inputs, country, scenario, strategies, backend=backend)


def model_settings(spec: ModelSpec) -> dict:
    """The model settings every run.json records: cycle, horizon, correction, bsAb drug and
    the optional cost categories."""
    return {
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
    }


def describe(base: BaseCase, seed: int | None = None) -> dict:
    """The base case's sections of ``run.json``: seed, country, scenario, every convention,
    the calibration result and the strategies (:func:`cea.io.provenance.run_json` adds the
    environment and the input hashes)."""
    spec, c = base.spec, base.country
    return {
        "seed": seed if seed is not None else base.ptable.settings.get("run", {}).get("seed"),
        "backend": base.backend,
        "country": {
            "code": c.code,
            "name": c.name,
            "currency": c.currency,
            "price_year": c.price_year,
            "macro_year": c.macro_year,
            "fx_lcu_per_usd": c.fx_lcu_per_usd,
            "ppp_lcu_per_intl_dollar": c.ppp_lcu_per_intl_dollar,
            "gdp_per_capita_usd": c.gdp_per_capita_usd,
            "wtp_per_qaly": c.wtp_per_qaly,
            "wtp_basis": c.wtp_basis,
            "wtp_alternatives": list(c.wtp_alternatives),
            "life_table_sex": c.life_table_sex,
        },
        "scenario": {
            "name": base.ptable.scenario.name,
            "description": base.ptable.scenario.description,
            "file": base.ptable.scenario.path,
            "sha256": base.ptable.scenario.sha256,
        },
        "conventions": {
            "perspective": "health-care payer",
            **model_settings(spec),
            "days_per_year": spec.days_per_year,
            "cycle_length_years": spec.dt,
            "discount_rate_costs": spec.discount_rate_costs,
            "discount_rate_effects": spec.discount_rate_effects,
            "discount_timing": f"trace row t discounted at (t + {spec.discount_offset_cycles:g}) cycles, step '{spec.discount_step}'",
            "transition_rewards": "counted once, discounted at the end of the cycle in which the transition happens",
            "competing_risks": "cumulative hazards over a cycle turned into probabilities together: p_i = H_i/H (1 - exp(-H))",
            "subgroups": list(SUBGROUPS),
            "subgroup_weight": "p_igg_isotype",
            "calibrated_per_year": base.calibrated,
            "calibration": "r_severe_on_bsab: no-IgRT 12-month severe-infection incidence = p_severe_12m_no_igrt; "
            "r_myeloma_death_off_bsab: median OS of a cohort with p_trial_igrt_use on IgRT = t_target_median_os_months",
            "prices_inflated_to": c.price_year,
            "cost_per_infection_averted": "discounted incremental cost / discounted severe infections averted",
        },
        "strategies": spec.strategy_names,
    }


def label_columns(base: BaseCase, comparison: tuple[str, str] | None) -> dict:
    c = base.country
    out = {
        "country": c.code,
        "currency": c.currency,
        "price_year": c.price_year,
        "wtp_per_qaly": c.wtp_per_qaly,
        "scenario": base.ptable.scenario.name,
    }
    if comparison is not None:
        out["comparison"] = f"{comparison[0]} vs {comparison[1]}"
    return out

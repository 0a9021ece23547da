"""Face validity: the model's value under the conditions of each published figure of
``inputs/validation_targets.csv`` (external and cross validation in the sense of Eddy DM et al.,
"Model transparency and validation", ISPOR-SMDM task force, Value Health 2012;15:843-850).

One function per measure of :data:`cea.io.inputs.VALIDATION_MEASURES`; each takes the base
case (its inputs, country, spec and calibrated rates) and the conditions of the figure, and runs
the model as the base case does (same backend). ``draws`` (a draws table, in input units) runs
other parameter values instead; they are then recalibrated, as the DSA does. Every function
returns one value per draw, (D,).

Strategies are taken from ``strategies.csv`` by id, whether or not the run includes them. No
published number is held here: the targets, their bands and sources come from the targets file.
``python -m cea.pipeline.validation --country GB`` prints the tables of ``docs/validation.md``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy.optimize import brentq

from cea.errors import CeaError
from cea.igrt.calibration import CALIBRATED, calibrate
from cea.igrt.declaration import Params
from cea.igrt.model import run_model, severe_infection_incidence
from cea.igrt.spec import COST_CATEGORIES, DEAD, SUBGROUPS, ModelSpec, strategies_from_table
from cea.io.inputs import VALIDATION_MEASURES
from cea.pipeline.base import BaseCase, build_base_case, run_base_case

#: Cost categories left out of the "related" cost of a strategy: costs of the myeloma and its
#: treatment, which published IgRT cost studies do not count.
UNRELATED_COSTS = ("cost_bsab", "cost_subsequent_therapy", "cost_end_of_life")
#: The product cost of IgRT per patient-year on IgRT: Ig, its administration, SCIG training.
IGRT_PRODUCT_COSTS = ("cost_ig", "cost_ig_admin", "cost_scig_training")
#: Hazard ratios searched for the one that reproduces a published incidence (brentq bracket).
HR_SEARCH_BRACKET = (0.01, 3.0)
HR_SEARCH_XTOL = 1e-6
#: Columns of :func:`face_validity`.
FACE_VALIDITY_COLUMNS = [
    "id",
    "measure",
    "model_value",
    "published_value",
    "low",
    "high",
    "inside_band",
    "model_conditions",
    "conditions",
    "tolerance_rule",
    "source",
    "evidence",
]


# --------------------------------------------------------------------------- helpers


def _spec(base: BaseCase, *names: str, n_cycles: int | None = None) -> ModelSpec:
    """The base case's spec running the strategies ``names`` of strategies.csv."""
    table = strategies_from_table(base.inputs.strategies.df)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise CeaError(f"validation: unknown strategy {', '.join(unknown)} (not in strategies.csv)")
    spec = base.spec.with_strategies([table[n] for n in dict.fromkeys(names)])
    return spec if n_cycles is None else spec.first_cycles(n_cycles)


def _draws_and_calibrated(
    base: BaseCase, draws: pd.DataFrame | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The draws and their calibrated rates: the base case's, or ``draws`` recalibrated on the
    base case's full horizon (the calibration does not depend on the strategies run)."""
    if draws is None:
        draws = base.ptable.base()
        cal = pd.DataFrame({n: [float(base.calibrated[n])] for n in CALIBRATED}, index=draws.index)
        return draws, cal
    v = calibrate(Params(draws, base.spec.unit_scale), base.spec, base.backend)
    return draws, pd.DataFrame({n: np.asarray(v[n], float) for n in CALIBRATED}, index=draws.index)


def _cycles(base: BaseCase, months: float) -> tuple[int, float]:
    """``months`` as whole cycles and the fraction of the next: (k, f), months = (k + f) cycles."""
    n = months / base.spec.cycle_months
    k = int(math.floor(n))
    return k, n - k


def _weighted(traces: dict, strategy: str, weights: np.ndarray) -> np.ndarray:
    """Subgroup-weighted trace (D, T + 1, S) of one strategy (weights: p_igg_isotype, (D,))."""
    a, b = (traces[(strategy, sg)] for sg in SUBGROUPS)
    return weights[:, None, None] * a + (1.0 - weights)[:, None, None] * b


def _outcomes(base: BaseCase, names, draws, cal, n_cycles=None) -> pd.DataFrame:
    spec = _spec(base, *names, n_cycles=n_cycles)
    out = run_model(draws, spec, calibrated=cal, backend=base.backend).outcomes
    return out.set_index(["strategy", "draw"])


# --------------------------------------------------------------------------- measures


def severe_incidence(
    base: BaseCase, strategy: str, months: float, draws: pd.DataFrame | None = None
) -> np.ndarray:
    """Cumulative incidence of severe (grade >= 3) infection by ``months`` from the bsAb start
    in the cohort of ``strategy``, deaths censored (as a Kaplan-Meier estimate reports it),
    subgroups weighted by ``p_igg_isotype`` (:func:`cea.igrt.model.severe_infection_incidence`)."""
    draws, cal = _draws_and_calibrated(base, draws)
    spec = _spec(base, strategy)
    return severe_infection_incidence(draws, spec, strategy, months, cal, base.backend)


def infection_death_share(
    base: BaseCase,
    strategy: str,
    months: float,
    draws: pd.DataFrame | None = None,
    comparator: str | None = None,
    share: np.ndarray | float | None = None,
) -> np.ndarray:
    """Share of the starting cohort dead of infection by ``months`` (competing risks: not
    censored at other deaths), undiscounted, subgroups weighted. With ``comparator``, the mix
    of ``share`` on ``strategy`` and the rest on ``comparator`` (a cohort's expected counts are
    linear in its start, so the mix of the two cohorts is the mixed cohort).

    Infection deaths are counted on each cycle's flow into death, so the count by k whole
    cycles is a run of k cycles; a fraction f of the next cycle adds f times its deaths."""
    draws, cal = _draws_and_calibrated(base, draws)
    names = [strategy] if comparator is None else [strategy, comparator]
    k, f = _cycles(base, months)
    at = {}
    for n in (k, k + 1):
        if n == 0:
            at[n] = {s: np.zeros(len(draws)) for s in names}
            continue
        out = _outcomes(base, names, draws, cal, n_cycles=n)["infection_deaths_undiscounted"]
        at[n] = {s: out.loc[s].to_numpy(float) for s in names}
    by = {s: at[k][s] + f * (at[k + 1][s] - at[k][s]) for s in names}
    if comparator is None:
        return by[strategy]
    w = np.broadcast_to(np.asarray(share, float), (len(draws),))
    return w * by[strategy] + (1.0 - w) * by[comparator]


def infection_death_share_trial_mix(
    base: BaseCase,
    strategy: str,
    comparator: str,
    months: float,
    draws: pd.DataFrame | None = None,
) -> np.ndarray:
    """:func:`infection_death_share` of the trial-like cohort of the calibration: the share
    ``p_trial_igrt_use`` on ``strategy``, the rest on ``comparator``."""
    d, _ = _draws_and_calibrated(base, draws)
    share = d["p_trial_igrt_use"].to_numpy(float)
    return infection_death_share(base, strategy, months, draws, comparator, share)


def deaths_by(
    base: BaseCase, strategy: str, months: float, draws: pd.DataFrame | None = None
) -> np.ndarray:
    """Share of the starting cohort dead of any cause by ``months`` (the trace's dead state,
    linear between cycle boundaries), subgroups weighted."""
    draws, cal = _draws_and_calibrated(base, draws)
    k, f = _cycles(base, months)
    spec = _spec(base, strategy, n_cycles=k + 1)
    res = run_model(draws, spec, calibrated=cal, keep_traces=True, backend=base.backend)
    dead = _weighted(res.traces, strategy, draws["p_igg_isotype"].to_numpy(float))[:, :, DEAD]
    return dead[:, k] + f * (dead[:, k + 1] - dead[:, k])


def death_risk_ratio(
    base: BaseCase,
    strategy: str,
    comparator: str,
    months: float,
    draws: pd.DataFrame | None = None,
) -> np.ndarray:
    """All-cause deaths by ``months`` on ``strategy`` over those on ``comparator`` (a risk
    ratio, as a trial's mortality RR)."""
    return deaths_by(base, strategy, months, draws) / deaths_by(base, comparator, months, draws)


def igrt_cost_per_year(
    base: BaseCase, strategy: str, draws: pd.DataFrame | None = None
) -> np.ndarray:
    """Ig product, administration and SCIG training per patient-year on IgRT, undiscounted,
    over the model horizon (the total over years on IgRT)."""
    draws, cal = _draws_and_calibrated(base, draws)
    out = _outcomes(base, [strategy], draws, cal).loc[strategy]
    cost = out[[f"{c}_undiscounted" for c in IGRT_PRODUCT_COSTS]].sum(axis=1)
    return (cost / out["years_on_igrt_undiscounted"]).to_numpy(float)


def igrt_cost_ratio_per_year(
    base: BaseCase, strategy: str, comparator: str, draws: pd.DataFrame | None = None
) -> np.ndarray:
    """:func:`igrt_cost_per_year` of ``strategy`` over that of ``comparator``."""
    return igrt_cost_per_year(base, strategy, draws) / igrt_cost_per_year(base, comparator, draws)


def related_cost(base: BaseCase, strategy: str, draws: pd.DataFrame | None = None) -> np.ndarray:
    """Discounted cost per patient over the horizon without the costs of the myeloma and its
    treatment (:data:`UNRELATED_COSTS`): Ig, administration, SCIG training, monitoring,
    adverse events and infections."""
    draws, cal = _draws_and_calibrated(base, draws)
    out = _outcomes(base, [strategy], draws, cal).loc[strategy]
    return out[[c for c in COST_CATEGORIES if c not in UNRELATED_COSTS]].sum(axis=1).to_numpy()


def related_cost_ratio(
    base: BaseCase, strategy: str, comparator: str, draws: pd.DataFrame | None = None
) -> np.ndarray:
    """:func:`related_cost` of ``strategy`` over that of ``comparator``."""
    return related_cost(base, strategy, draws) / related_cost(base, comparator, draws)


def model_conditions(measure: str, strategy: str, comparator: str, months) -> str:
    """How the model's value of a target is computed, in words (for the check line and docs)."""
    m = f"{months:g} months" if months is not None and months == months else ""
    return {
        "severe_infection_incidence": f"{strategy}: cumulative incidence of severe infection by "
        f"{m}, deaths censored, subgroups weighted",
        "infection_death_share": f"{strategy}: share of the cohort dead of infection by {m}, "
        "undiscounted, not censored",
        "infection_death_share_trial_mix": f"p_trial_igrt_use on {strategy}, the rest on "
        f"{comparator}: share of the cohort dead of infection by {m}, undiscounted",
        "death_risk_ratio": f"all-cause deaths by {m}, {strategy} / {comparator}",
        "igrt_cost_ratio_per_year": f"(Ig + administration + SCIG training) per patient-year on "
        f"IgRT, undiscounted, {strategy} / {comparator}",
        "related_cost_ratio": "discounted cost over the horizon without bsAb, subsequent "
        f"therapy and end of life, {strategy} / {comparator}",
    }[measure]


def target_value(base: BaseCase, row, draws: pd.DataFrame | None = None) -> np.ndarray:
    """The model's value of one target (a row of validation_targets.csv), (D,)."""
    measure, s, c, months = row["measure"], row["strategy"], row["comparator"], row["months"]
    if measure not in VALIDATION_MEASURES:
        raise CeaError(f"validation: no model computation for measure '{measure}'")
    if measure == "severe_infection_incidence":
        return severe_incidence(base, s, months, draws)
    if measure == "infection_death_share":
        return infection_death_share(base, s, months, draws)
    if measure == "infection_death_share_trial_mix":
        return infection_death_share_trial_mix(base, s, c, months, draws)
    if measure == "death_risk_ratio":
        return death_risk_ratio(base, s, c, months, draws)
    if measure == "igrt_cost_ratio_per_year":
        return igrt_cost_ratio_per_year(base, s, c, draws)
    return related_cost_ratio(base, s, c, draws)


#: How a target past the run's horizon is reported (not computed) in ``model_conditions``.
BEYOND_HORIZON = "not computed: beyond this run's horizon"


def face_validity(base: BaseCase) -> pd.DataFrame:
    """Every target of the inputs' ``validation_targets.csv`` beside the model's base-case
    value (columns :data:`FACE_VALIDITY_COLUMNS`); empty when the inputs have no targets."""
    table = base.inputs.validation_targets
    if table is None:
        return pd.DataFrame(columns=FACE_VALIDITY_COLUMNS)
    rows = []
    horizon = base.spec.n_cycles * base.spec.cycle_months
    for _, r in table.df.iterrows():
        # a target past this run's horizon (a scenario's shorter one, say) is not computed
        beyond = r["months"] is not None and r["months"] > horizon
        value = math.nan if beyond else float(target_value(base, r)[0])
        conditions = model_conditions(r["measure"], r["strategy"], r["comparator"], r["months"])
        if beyond:
            conditions = f"{BEYOND_HORIZON} ({horizon:.4g} months): {conditions}"
        rows.append(
            {
                "id": r["id"],
                "measure": r["measure"],
                "model_value": value,
                "published_value": float(r["published_value"]),
                "low": float(r["low"]),
                "high": float(r["high"]),
                "inside_band": bool(r["low"] <= value <= r["high"]),
                "model_conditions": conditions,
                "conditions": r["conditions"],
                "tolerance_rule": r["tolerance_rule"],
                "source": r["source"],
                "evidence": r["evidence"],
            }
        )
    return pd.DataFrame(rows, columns=FACE_VALIDITY_COLUMNS)


# --------------------------------------------------------------------------- the IgRT effect


def implied_hazard_ratio(incidence_treated: float, incidence_untreated: float) -> float:
    """The hazard ratio two cumulative incidences at the same time imply under proportional
    hazards: ln(1 - p1) / ln(1 - p0)."""
    return math.log1p(-incidence_treated) / math.log1p(-incidence_untreated)


def with_parameter(base: BaseCase, name: str, value: float) -> pd.DataFrame:
    """The base case's draws with one parameter set to ``value`` (input units)."""
    draws = base.ptable.base().copy()
    if name not in draws.columns:
        raise CeaError(f"validation: unknown parameter '{name}'")
    draws[name] = float(value)
    return draws


def hr_for_incidence(
    base: BaseCase, strategy: str, months: float, incidence: float, parameter: str | None = None
) -> float:
    """The hazard ratio (``parameter``, default the strategy's ``hr_severe_parameter``) at which
    the model's incidence by ``months`` on ``strategy`` equals ``incidence`` (recalibrated at
    each value; root in :data:`HR_SEARCH_BRACKET`)."""
    if parameter is None:
        parameter = _spec(base, strategy).strategies[0].hr_severe_parameter

    def gap(hr: float) -> float:
        d = with_parameter(base, parameter, hr)
        return float(severe_incidence(base, strategy, months, d)[0]) - incidence

    return float(brentq(gap, *HR_SEARCH_BRACKET, xtol=HR_SEARCH_XTOL))


@dataclass
class EffectScenario:
    """The base case rerun with the severe-infection hazard ratio at ``hr``."""

    hr: float
    incidence: dict[str, float]  # strategy -> 12-month (``months``) incidence
    comparisons: pd.DataFrame  # the settings' named comparisons (pairwise, with INMB)
    incremental: pd.DataFrame  # the full incremental analysis


def effect_scenario(
    base: BaseCase,
    hr: float,
    months: float = 12.0,
    parameter: str = "hr_igrt_severe",
    strategies: tuple[str, ...] = ("none", "preemptive_ivig", "primary_ivig"),
) -> EffectScenario:
    """The base case rebuilt (recalibrated) with ``parameter`` = ``hr``, as a scenario file
    ``[parameters] hr_igrt_severe = hr`` would: its comparisons, incremental analysis and the
    incidence by ``months`` of ``strategies``."""
    scenario = base.ptable.scenario
    params = {**scenario.parameters, parameter: {"value": float(hr), "dist": "fixed"}}
    variant = replace(scenario, name=f"{scenario.name}+{parameter}={hr:g}", parameters=params)
    b = build_base_case(
        base.inputs,
        base.country.code,
        variant,
        base.spec.strategy_names,
        keep_trace=False,
        backend=base.backend,
    )
    incidence = {s: float(severe_incidence(b, s, months)[0]) for s in strategies}
    return EffectScenario(float(hr), incidence, b.comparisons, b.incremental)


# --------------------------------------------------------------------------- the doc's tables


def _main(argv=None) -> int:  # pragma: no cover (prints the tables of docs/validation.md)
    p = argparse.ArgumentParser(prog="python -m cea.pipeline.validation")
    p.add_argument("--country", default="GB")
    p.add_argument("--inputs", default="inputs")
    args = p.parse_args(argv)
    base = run_base_case(args.inputs, args.country)
    pd.set_option("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60)
    print(f"== face validity, {base.country.code} base case")
    fv = face_validity(base)
    print(fv[["id", "model_value", "published_value", "low", "high", "inside_band"]].to_string())
    targets = base.inputs.validation_targets.df.set_index("id")
    p1 = float(targets.loc["mohan2025_primary_ivig_12m", "published_value"])
    p0 = float(targets.loc["mohan2025_no_ivig_12m", "published_value"])
    implied = implied_hazard_ratio(p1, p0)
    match = hr_for_incidence(base, "primary_ivig", 12.0, p1)
    print(f"\n== Mohan: implied HR {implied:.4f}; HR giving {p1:g} on primary IVIG {match:.4f}")
    cols = ["comparison", "inc_cost", "inc_effect", "icer", "inmb", "inc_severe_infections"]
    for hr in (float(base.ptable.df.loc["hr_igrt_severe", "value"]), implied, match):
        sc = effect_scenario(base, hr, strategies=("none", "preemptive_ivig", "primary_ivig"))
        print(f"\n-- hr_igrt_severe = {hr:.4f}; 12-month incidence {sc.incidence}")
        print(sc.comparisons[cols].to_string())
    print("\n== deaths (all causes and infection), primary_ivig vs none")
    for months in (12.0, 24.0):
        d1, d0 = deaths_by(base, "primary_ivig", months), deaths_by(base, "none", months)
        i1 = infection_death_share(base, "primary_ivig", months)
        i0 = infection_death_share(base, "none", months)
        print(
            f"{months:g} months: deaths {d1[0]:.5f} vs {d0[0]:.5f} (RR {d1[0] / d0[0]:.4f}, "
            f"relative reduction {1 - d1[0] / d0[0]:.4%}); infection deaths {i1[0]:.5f} vs {i0[0]:.5f}"
        )
    o = base.outcomes.set_index("strategy")
    for c in ("ly", "ly_undiscounted", "qaly", "infection_deaths_undiscounted"):
        print(f"{c}: primary_ivig - none = {o.loc['primary_ivig', c] - o.loc['none', c]:.5f}")
    print("\n== SCIG / IVIG costs")
    for s in ("primary_ivig", "primary_scig"):
        print(
            f"{s}: Ig+admin+training per patient-year on IgRT {igrt_cost_per_year(base, s)[0]:,.0f}; "
            f"related cost over the horizon {related_cost(base, s)[0]:,.0f} {base.country.currency}"
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())

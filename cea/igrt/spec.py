"""The IgRT model's specification: states, subgroups, strategies and the run settings.

Six states (docs/model.md, section 3), two myeloma-isotype subgroups run as parallel cohorts,
strategies as rows of ``strategies.csv`` (trigger x product x regimen), and
:class:`ModelSpec`: everything the model needs besides the per-draw parameter values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from cea.engine.declaration import Timing
from cea.engine.markov import correction_weights
from cea.errors import CeaError, InputFileError, did_you_mean
from cea.io.inputs import Inputs
from cea.parameters.table import ParameterTable

STATES = (
    "on_bsab_igg_normal",
    "on_bsab_igg_low",
    "on_bsab_igrt",
    "off_bsab_igrt",
    "off_bsab",
    "dead",
)


N, L, I, OI, O, DEAD = range(6)


S = len(STATES)


ALIVE = (N, L, I, OI, O)


ON_BSAB = (N, L, I)


ON_IGRT = (I, OI)


SUBGROUPS = ("igg_isotype", "non_igg")


COST_CATEGORIES = (
    "cost_ig",
    "cost_ig_admin",
    "cost_scig_training",
    "cost_monitoring",
    "cost_severe_infections",
    "cost_nonsevere_infections",
    "cost_adverse_events",
    "cost_bsab",
    "cost_subsequent_therapy",
    "cost_end_of_life",
)


#: The incremental cost of a comparison split three ways (the add-on problem, NICE DSU 2014):
#: what IgRT itself costs, the infections it avoids, and the care of the months it adds.
COST_GROUPS = {
    "igrt": (
        "cost_ig",
        "cost_ig_admin",
        "cost_scig_training",
        "cost_monitoring",
        "cost_adverse_events",
    ),
    "infections": ("cost_severe_infections", "cost_nonsevere_infections"),
    "added_survival": ("cost_bsab", "cost_subsequent_therapy", "cost_end_of_life"),
}


#: Rewards counted on transitions (the engine's transition rewards and counts), each on the
#: trace row ending its cycle (a start reward on row 0); the others are state rewards.
FLOWS = ("infection_deaths", "cost_scig_training", "cost_end_of_life")


EFFECTS = ("qaly", "ly")


COUNTS = (
    "severe_infections",
    "nonsevere_infections",
    "infection_deaths",
    "ig_grams",
    "infusions",
    "igg_tests",
    "years_on_igrt",
    "thromboembolic_events",
    "infusion_reactions",
)


REWARDS = COST_CATEGORIES + EFFECTS + COUNTS


@dataclass(frozen=True)
class Strategy:
    """One row of strategies.csv."""

    strategy: str
    trigger: str  # never, at_start, igg_below_threshold, after_severe_infection
    product: str = ""  # ivig, scig or "" for never
    dose_g_per_kg: float = 0.0
    interval_days: float = 0.0
    dosing_weight: str = "actual"  # actual, ideal, adjusted, flat
    flat_dose_g: float = 0.0
    vial_rounding_g: float = 0.0
    start_after_severe_infection: bool = False
    hr_severe_parameter: str = "hr_igrt_severe"
    label: str = ""

    @property
    def uses_igrt(self) -> bool:
        return self.trigger != "never"

    @property
    def is_scig(self) -> bool:
        return self.product == "scig"


def strategies_from_table(df: pd.DataFrame) -> dict[str, Strategy]:
    out = {}
    for _, r in df.iterrows():
        out[r["strategy"]] = Strategy(
            strategy=r["strategy"],
            trigger=r["trigger"],
            product=r["product"] or "",
            dose_g_per_kg=float(r["dose_g_per_kg"] or 0.0),
            interval_days=float(r["interval_days"] or 0.0),
            dosing_weight=r["dosing_weight"] or "actual",
            flat_dose_g=float(r["flat_dose_g"] or 0.0),
            vial_rounding_g=float(r["vial_rounding_g"] or 0.0),
            start_after_severe_infection=bool(r["start_after_severe_infection"]),
            hr_severe_parameter=(r.get("hr_severe_parameter") or "hr_igrt_severe"),
            label=r.get("label") or r["strategy"],
        )
    return out


@dataclass(frozen=True)
class ModelSpec:
    """Everything the model needs besides the per-draw parameter values."""

    strategies: tuple[Strategy, ...]
    n_cycles: int
    cycle_days: float
    days_per_year: float
    mx_by_age: np.ndarray = field(
        repr=False
    )  # background mortality hazard per year by age 0, 1, ...
    unit_scale: Mapping[str, float] = field(default_factory=dict, repr=False)
    correction: str | tuple = "half_cycle"
    discount_rate_costs: float = 0.0
    discount_rate_effects: float = 0.0
    discount_offset_cycles: float = 0.0
    discount_step: str = "cycle"
    bsab_drug: str = "teclistamab"
    include_bsab_costs: bool = True
    include_subsequent_therapy: bool = False
    include_end_of_life: bool = False

    @property
    def dt(self) -> float:
        """Cycle length in years."""
        return self.cycle_days / self.days_per_year

    @property
    def cycle_months(self) -> float:
        return self.dt * 12.0

    @property
    def strategy_names(self) -> list[str]:
        return [s.strategy for s in self.strategies]

    def timing(self) -> Timing:
        """The engine's cycles, correction and discounting; QALYs, life-years and every count
        are effects (discounted at the effects' rate), costs are the rest."""
        return Timing(
            n_cycles=self.n_cycles,
            cycle_length_years=self.dt,
            correction=self.correction,
            discount_rate_costs=self.discount_rate_costs,
            discount_rate_effects=self.discount_rate_effects,
            discount_offset_cycles=self.discount_offset_cycles,
            discount_step=self.discount_step,
            effects=frozenset(EFFECTS + COUNTS),
        )

    def first_cycles(self, n_cycles: int) -> ModelSpec:
        """The model over its first ``n_cycles`` cycles, for what reads its trace, per-cycle
        events and counts (the calibration's conditions, the validation targets), which no
        within-cycle correction weighs: the correction is "none", as the model's own (a list
        of weights for its whole horizon, say) need not fit the shorter horizon."""
        return replace(self, n_cycles=n_cycles, correction="none")

    def with_strategies(self, strategies: Sequence[Strategy]) -> ModelSpec:
        return replace(self, strategies=tuple(strategies))


def n_cycles_for(horizon_years: float, cycle_days: float, days_per_year: float) -> int:
    """Number of cycles: the horizon rounded to whole cycles (10 years of 28 days -> 130)."""
    return max(1, int(round(horizon_years * days_per_year / cycle_days)))


def build_spec(
    ptable: ParameterTable, inputs: Inputs, strategies: list[str] | None = None
) -> ModelSpec:
    """The model specification for one country and scenario (settings merged)."""
    model = ptable.settings.get("model", {})
    table = strategies_from_table(inputs.strategies.df)
    names = strategies or model.get("strategies") or list(table)
    unknown = [s for s in names if s not in table]
    if unknown:
        raise CeaError(
            f"unknown strategy {', '.join(repr(s) for s in unknown)}"
            f"{did_you_mean(unknown[0], table)} (known: {', '.join(table)})"
        )
    twice = [s for i, s in enumerate(names) if s in names[:i]]
    if twice:
        raise CeaError(f"strategy '{twice[0]}' is listed twice in the settings")
    for s in names:
        hr = table[s].hr_severe_parameter
        if hr not in ptable.df.index:
            raise CeaError(f"strategy '{s}' needs parameter '{hr}'")
    drug = model.get("bsab_drug", "teclistamab")
    if model.get("include_bsab_costs", True) and f"c_bsab_{drug}_month" not in ptable.df.index:
        raise CeaError(
            f"country {ptable.country.code}: no price item 'c_bsab_{drug}_month' for bsab_drug '{drug}' "
            f"in prices/{ptable.country.code}.csv"
        )
    cycle_days = float(model.get("cycle_days", 28))
    days_per_year = float(model.get("days_per_year", 365.25))
    n_cycles = n_cycles_for(float(model.get("horizon_years", 10)), cycle_days, days_per_year)
    correction = _check_correction(model.get("correction", "half_cycle"), n_cycles, ptable, inputs)
    return ModelSpec(
        strategies=tuple(table[s] for s in names),
        n_cycles=n_cycles,
        cycle_days=cycle_days,
        days_per_year=days_per_year,
        mx_by_age=ptable.country.mx_by_age,
        unit_scale=ptable.unit_scale,
        correction=correction,
        discount_rate_costs=ptable.country.discount_rate_costs,
        discount_rate_effects=ptable.country.discount_rate_effects,
        discount_offset_cycles=float(model.get("discount_offset_cycles", 0.0)),
        discount_step=model.get("discount_step", "cycle"),
        bsab_drug=drug,
        include_bsab_costs=bool(model.get("include_bsab_costs", True)),
        include_subsequent_therapy=bool(model.get("include_subsequent_therapy", False)),
        include_end_of_life=bool(model.get("include_end_of_life", False)),
    )


def _check_correction(correction, n_cycles: int, ptable: ParameterTable, inputs: Inputs):
    """The settings' within-cycle correction, checked as the engine would check it, so that the
    error names the file that sets it (the scenario's or the inputs' settings)."""
    if "correction" in ptable.scenario.settings.get("model", {}):
        where = str(ptable.scenario.path or f"scenario {ptable.scenario.name}")
    else:
        where = next(
            (k for k in inputs.hashes if k.endswith(("settings.toml", "[settings]"))),
            "settings.toml",
        )
    try:
        correction_weights(correction, n_cycles)
    except CeaError as exc:  # the engine's own check, named where the settings set it
        raise InputFileError(where, str(exc), column="correction") from None
    return tuple(float(x) for x in correction) if isinstance(correction, list) else correction


def apply_discount_settings(spec: ModelSpec, settings: dict) -> ModelSpec:
    """Scenario settings may override the country's discount rates."""
    model = settings.get("model", {})
    kw = {}
    for key in ("discount_rate_costs", "discount_rate_effects"):
        if key in model:
            kw[key] = float(model[key])
    return replace(spec, **kw) if kw else spec

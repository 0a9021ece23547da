"""The fast path of the IgRT model against a plain scalar reference (tests/reference_igrt.py).

The reference is written from docs/model.md with floats and loops over cycles, states and
events (hesim's testing style). It takes the fast path's calibrated rates
(``r_severe_on_bsab``, ``r_myeloma_death_off_bsab``) and recomputes everything else: every
reward of every strategy, both subgroups weighted by ``p_igg_isotype``, for three parameter
vectors (the GB base case and two perturbed ones: Weibull time on treatment and infection
hazard shapes != 1, p_igg_low_ever = 1, ages crossing life-table groups, non-zero optional
costs and process disutilities) and for every switch of the settings. A separate test checks
that the calibrated rates meet the two calibration conditions, recomputed by the reference.

The fast path runs through both backends of the engine (NumPy and the compiled Numba
backend); both must agree with the reference to 1e-12 relative (1e-12 absolute for values of
magnitude below 1e-9).

Conventions the reference takes from docs/model.md that are easy to miss (each marked with its
section in a comment of tests/reference_igrt.py; none is left unstated, so no ``[gap]`` remains):

* section 2: a month is 1/12 year (months per cycle = 12 dt); the age of a cycle is the
  completed age at its start, ages past the life table take its last value;
* section 4: grams rounded up to the vial step as ceil(g / step - 1e-9) x step;
* section 6: S(t) "averaged over the cycle" is the mean of its two ends; the SCIG rate ratio
  multiplies the non-severe hazard ratio too;
* section 8: infusions are n_adm in I and OI, SCIG included; trough tests in I and OI (off the
  bsAb too), tests before IgRT only in N and L; subsequent therapy per month in OI and O;
  end-of-life cost on every transition into D; Simpson weights for an odd number of cycles
  (scipy's rule); annual discounting floors the years after adding 1e-9; costs at the costs'
  rate, QALYs, life-years and every count at the effects' rate;
* section 9: the calibration cohort's IgRT arm is primary IVIG with ``hr_igrt_severe``;
  12 months is a fractional number of cycles, the last one counted pro rata.

Where the reference is narrower than docs/model.md and the package: its calibration conditions
neither stop the survival curves at ``n_os`` cycles nor stop the 12-month incidence at a horizon
shorter than 12 months (section 9). Every vector and variant here has a median reached within
``n_os`` cycles and a horizon over 12 months, where neither changes a number. The first
perturbed vector pays 70% of the bispecific's list price (``p_bsab_price_paid``, section 8) and
the second has a perfect assay (sensitivity 1, capped at 1 - 1e-12 per test, section 5).

All access to the package is in :func:`package_api`.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import reference_igrt as ref  # tests/ is on sys.path (pytest's rootdir-less test folder)

ROOT = Path(__file__).resolve().parents[1]
INPUTS = ROOT / "inputs"
COUNTRY = "GB"
RTOL = 1e-12
ATOL = 1e-12  # only for values of magnitude below TINY
TINY = 1e-9
CALIBRATION_RTOL = 1e-9


# --------------------------------------------------------------------------- package access


def package_api() -> SimpleNamespace:
    """Everything this file needs from the package, in one place.

    Returns base parameter values (input units), the unit conversion to model units, the
    life table, the base settings, the package's reward names, and ``run(draws, settings,
    strategy_rows, engine)`` -> (outcomes records, {draw: calibrated rates per year}).
    """
    import cea
    import cea.igrt.model as model  # run_model, REWARDS
    from cea.igrt.spec import ModelSpec, Strategy
    from cea.parameters.table import build_parameter_table

    inputs = cea.load_inputs(INPUTS)  # the package's public API
    table = build_parameter_table(inputs, COUNTRY)
    toml = inputs.settings["model"]
    settings = {
        "cycle_days": float(toml["cycle_days"]),
        "days_per_year": float(toml["days_per_year"]),
        "n_cycles": int(round(toml["horizon_years"] * toml["days_per_year"] / toml["cycle_days"])),
        "correction": toml["correction"],
        "discount_rate_costs": table.country.discount_rate_costs,
        "discount_rate_effects": table.country.discount_rate_effects,
        "discount_offset_cycles": float(toml["discount_offset_cycles"]),
        "discount_step": toml["discount_step"],
        "bsab_drug": toml["bsab_drug"],
        "include_bsab_costs": bool(toml["include_bsab_costs"]),
        "include_subsequent_therapy": bool(toml["include_subsequent_therapy"]),
        "include_end_of_life": bool(toml["include_end_of_life"]),
    }

    def strategy(row: dict):
        def number(key):
            text = (row.get(key) or "").strip()
            return float(text) if text else 0.0

        return Strategy(
            strategy=row["strategy"],
            trigger=row["trigger"],
            product=row.get("product") or "",
            dose_g_per_kg=number("dose_g_per_kg"),
            interval_days=number("interval_days"),
            dosing_weight=row.get("dosing_weight") or "actual",
            flat_dose_g=number("flat_dose_g"),
            vial_rounding_g=number("vial_rounding_g"),
            start_after_severe_infection=(row.get("start_after_severe_infection") or "").lower()
            == "true",
            hr_severe_parameter=row.get("hr_severe_parameter") or "hr_igrt_severe",
            label=row.get("label") or row["strategy"],
        )

    def run(draws: pd.DataFrame, settings: dict, strategy_rows: list[dict], engine: str):
        spec = ModelSpec(
            strategies=tuple(strategy(r) for r in strategy_rows),
            mx_by_age=table.country.mx_by_age,
            unit_scale=table.unit_scale,
            **settings,
        )
        result = model.run_model(draws, spec, backend=engine)
        calibrated = {d: dict(r) for d, r in result.calibrated.iterrows()}
        return result.outcomes.to_dict("records"), calibrated

    return SimpleNamespace(
        base_values={k: float(v) for k, v in table.base().iloc[0].items()},
        unit_scale=dict(table.unit_scale),
        mx_by_age=[float(x) for x in table.country.mx_by_age],
        settings=settings,
        rewards=tuple(model.REWARDS),
        run=run,
    )


# --------------------------------------------------------------------------- inputs


#: strategies.csv plus rows covering what it lacks: ideal body weight, SCIG with vial
#: rounding, secondary SCIG with the reduced-dose hazard ratio, flat-dose preemptive SCIG
#: that also starts after a severe infection.
EXTRA_STRATEGIES = [
    {"strategy": "primary_scig_ideal_vial2", "trigger": "at_start", "product": "scig",
     "dose_g_per_kg": "0.1", "interval_days": "7", "dosing_weight": "ideal",
     "vial_rounding_g": "2", "start_after_severe_infection": "false",
     "hr_severe_parameter": "hr_igrt_severe"},
    {"strategy": "secondary_scig_adjbw", "trigger": "after_severe_infection", "product": "scig",
     "dose_g_per_kg": "0.1", "interval_days": "7", "dosing_weight": "adjusted",
     "vial_rounding_g": "0", "start_after_severe_infection": "false",
     "hr_severe_parameter": "hr_igrt_severe_reduced_dose"},
    {"strategy": "preemptive_scig_flat_or_infection", "trigger": "igg_below_threshold",
     "product": "scig", "dose_g_per_kg": "", "interval_days": "14", "dosing_weight": "flat",
     "flat_dose_g": "12", "vial_rounding_g": "5", "start_after_severe_infection": "true",
     "hr_severe_parameter": "hr_igrt_severe"},
]  # fmt: skip


def strategy_rows() -> list[dict]:
    with open(INPUTS / "strategies.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return rows + EXTRA_STRATEGIES


#: Two perturbed parameter vectors (input units), besides the base case.
PERTURBED = [
    {
        "q_start_age_years": 67.6, "q_body_weight_kg": 82.0, "q_height_cm": 176.0,
        "p_male": 0.4, "p_igg_isotype": 0.67, "p_igg_low_ever": 0.8, "r_igg_decline": 0.35,
        "p_assay_sensitivity": 0.88, "p_masked_igg_isotype": 0.45,
        "q_igg_test_interval_days": 14.0, "q_trough_test_interval_days": 56.0,
        "p_severe_12m_no_igrt": 0.38, "rr_infection_igg_normal": 0.7,
        "r_severe_off_bsab": 0.03, "r_nonsevere_on_bsab": 0.1, "r_nonsevere_off_bsab": 0.04,
        "k_infection_hazard_shape": 0.8, "t_infection_hazard_anchor_months": 9.0,
        "hr_igrt_severe": 0.35, "hr_igrt_severe_reduced_dose": 0.6, "hr_igrt_nonsevere": 0.8,
        "rr_scig_vs_ivig": 1.1, "hr_igrt_os": 0.85, "p_case_fatality_severe": 0.15,
        "p_nrm_12m": 0.07, "p_nrm_infection_share": 0.65, "t_median_tot_months": 14.0,
        "k_tot_weibull_shape": 0.75, "p_continue_igrt_after_bsab": 0.7,
        "t_median_igrt_after_bsab_months": 4.0, "t_target_median_os_months": 20.0,
        "p_trial_igrt_use": 0.4, "r_thromboembolism_ivig": 0.02, "p_infusion_reaction": 0.08,
        "or_scig_systemic_ae": 0.6, "u_on_bsab": 0.75, "u_off_bsab": 0.6,
        "q_qaly_loss_severe": 0.01, "q_qaly_loss_nonsevere": 0.003,
        "q_qaly_loss_infusion_reaction": 0.0004, "q_qaly_loss_thromboembolism": 0.02,
        "q_qaly_loss_ivig_visit": 0.0003, "q_qaly_loss_scig_week": 0.0001,
        "q_ivig_reference_interval_days": 21.0, "q_scig_conversion": 1.37,
        "c_subsequent_therapy_month": 2500.0, "c_end_of_life": 8000.0,
        "c_ivig_per_g": 51.0, "c_scig_training": 650.0, "c_igg_test": 9.5,
        "p_bsab_price_paid": 0.7,
    },
    {
        "q_start_age_years": 69.5, "p_igg_isotype": 0.5, "p_igg_low_ever": 1.0,
        "r_igg_decline": 1.2, "p_assay_sensitivity": 1.0, "p_masked_igg_isotype": 0.1,
        "q_igg_test_interval_days": 42.0, "k_infection_hazard_shape": 1.15,
        "k_tot_weibull_shape": 1.3, "t_median_tot_months": 9.5,
        "p_continue_igrt_after_bsab": 1.0, "hr_igrt_severe": 0.6, "hr_igrt_os": 0.9,
        "rr_scig_vs_ivig": 0.9, "t_target_median_os_months": 19.0,
        "p_severe_12m_no_igrt": 0.55, "q_qaly_loss_scig_week": 0.0002,
        "c_subsequent_therapy_month": 1200.0, "c_end_of_life": 3000.0,
    },
]  # fmt: skip

#: Settings variants (over the defaults of settings.toml and the country's discount rates).
#: Short horizons keep the test fast; each still covers the target median OS (the
#: calibration needs it).
VARIANTS = {
    "base_33_cycles": {"n_cycles": 33},
    "no_correction_switches": {
        "n_cycles": 30, "correction": "none", "include_bsab_costs": False,
        "include_subsequent_therapy": True, "include_end_of_life": True,
        "discount_rate_costs": 0.05, "discount_rate_effects": 0.015,
        "bsab_drug": "talquetamab",
    },
    "simpson_odd_annual_offset": {
        "n_cycles": 33, "correction": "simpson", "discount_step": "annual",
        "discount_offset_cycles": 0.5, "discount_rate_costs": 0.04,
        "discount_rate_effects": 0.02, "include_end_of_life": True,
    },
    "simpson_even_offset_1": {
        "n_cycles": 32, "correction": "simpson", "discount_offset_cycles": 1.0,
        "include_subsequent_therapy": True, "bsab_drug": "elranatamab",
    },
    "end_correction": {
        "n_cycles": 27, "correction": "end", "discount_rate_costs": 0.0,
        "discount_rate_effects": 0.06, "discount_step": "annual",
    },
    "cycle_21_days": {
        "n_cycles": 41, "cycle_days": 21.0, "days_per_year": 365.0,
        "correction": "trapezoid", "include_end_of_life": True,
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def api():
    return package_api()


@pytest.fixture(scope="module")
def draws(api) -> pd.DataFrame:
    rows = [dict(api.base_values)]
    for change in PERTURBED:
        unknown = set(change) - set(api.base_values)
        assert not unknown, f"perturbed parameters not in the inputs: {sorted(unknown)}"
        rows.append({**api.base_values, **change})
    return pd.DataFrame(rows, index=pd.Index([0, 1, 2], name="draw"))


def model_params(api, draw_values: dict, calibrated: dict) -> dict:
    """Parameters in model units (the package's unit conversion) plus the calibrated rates."""
    params = {k: v * api.unit_scale.get(k, 1.0) for k, v in draw_values.items()}
    params.update({k: float(v) for k, v in calibrated.items()})
    return params


def _close(a: float, b: float) -> bool:
    scale = max(abs(a), abs(b))
    return abs(a - b) <= (ATOL if scale < TINY else RTOL * scale)


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("engine", ["numpy", "numba"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_reward_matches_the_reference(api, draws, engine, variant):
    settings = {**api.settings, **VARIANTS[variant]}
    rows = strategy_rows()
    by_name = {r["strategy"]: r for r in rows}
    outcomes, calibrated = api.run(draws, settings, rows, engine)
    assert len(outcomes) == len(rows) * len(draws)
    names = [*api.rewards, "cost"]
    assert set(api.rewards) == set(ref.ALL_REWARDS), "the package's rewards changed"
    bad = []
    for out in outcomes:
        draw = out["draw"]
        params = model_params(api, draws.loc[draw].to_dict(), calibrated[draw])
        expected = ref.reference_totals(params, by_name[out["strategy"]], settings, api.mx_by_age)
        for name in names:
            for key in (name, f"{name}_undiscounted"):
                if not _close(expected[key], float(out[key])):
                    bad.append(
                        f"{out['strategy']} draw {draw} {key}: reference {expected[key]!r}, "
                        f"fast path {out[key]!r}"
                    )
    assert not bad, f"{len(bad)} mismatches ({variant}, {engine}):\n" + "\n".join(bad[:25])


@pytest.mark.parametrize("engine", ["numpy", "numba"])
@pytest.mark.parametrize("variant", ["base_33_cycles", "cycle_21_days"])
def test_calibrated_rates_meet_both_conditions(api, draws, engine, variant):
    settings = {**api.settings, **VARIANTS[variant]}
    none = [r for r in strategy_rows() if r["trigger"] == "never"]
    _, calibrated = api.run(draws, settings, none, engine)
    for draw in draws.index:
        values = draws.loc[draw].to_dict()
        params = model_params(api, values, calibrated[draw])
        incidence = ref.severe_incidence_no_igrt(params, settings, api.mx_by_age)
        target = values["p_severe_12m_no_igrt"]
        assert math.isclose(incidence, target, rel_tol=CALIBRATION_RTOL), (draw, incidence)
        median = ref.trial_median_os_months(params, settings, api.mx_by_age)
        target = values["t_target_median_os_months"]
        assert math.isclose(median, target, rel_tol=CALIBRATION_RTOL), (draw, median)


def test_reference_conserves_the_cohort_and_has_no_igrt_effect_without_one(api, draws):
    """Sanity of the reference itself: every trace row sums to 1, and with IgRT changing no
    hazard (hazard ratios 1, no IgG-mix difference) every strategy has the same life-years."""
    settings = {**api.settings, "n_cycles": 20}
    values = draws.loc[1].to_dict()
    params = model_params(api, values, {"r_severe_on_bsab": 0.9, "r_myeloma_death_off_bsab": 0.8})
    for row in strategy_rows():
        _, _, trace = ref.run_cohort(params, row, "igg_isotype", settings, api.mx_by_age)
        assert all(abs(sum(r.values()) - 1.0) < 1e-14 for r in trace)
    same = dict(params, rr_infection_igg_normal=1.0, hr_igrt_severe=1.0, rr_scig_vs_ivig=1.0,
                hr_igrt_severe_reduced_dose=1.0, hr_igrt_os=1.0,
                r_severe_off_bsab=params["r_severe_on_bsab"])  # fmt: skip
    ly = {
        row["strategy"]: ref.reference_totals(same, row, settings, api.mx_by_age)["ly"]
        for row in strategy_rows()
    }
    first = next(iter(ly.values()))
    assert all(math.isclose(v, first, rel_tol=1e-13) for v in ly.values()), ly

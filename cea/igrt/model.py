"""The IgRT model: parameter draws -> hazards -> transition arrays -> engine -> outcomes.

Implements ``MODEL.md``: six states, two myeloma-isotype subgroups run as parallel cohorts
and weighted, competing hazards turned into probabilities together, time-dependent IgG
decline and bsAb discontinuation, infections as events, strategies as data.

No I/O and no random numbers here. Every function is vectorized over draws: a draws
table of D rows (the base case, the DSA design or the PSA sample) goes through one call.

Units inside: time in years, rates per year (input units are converted with
``ModelSpec.unit_scale``); one cycle lasts ``dt = cycle_days / days_per_year`` years.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from cea.engine.markov import (
    correction_weights,
    discount_factors,
    make_transition_array,
    run_markov,
)
from cea.errors import CeaError, ModelInputError
from cea.igrt import _kernel
from cea.igrt.spec import (
    ALIVE,
    COST_CATEGORIES,
    COUNTS,
    DEAD,
    EFFECTS,
    OI,
    ON_BSAB,
    ON_IGRT,
    REWARDS,
    STATES,
    SUBGROUPS,
    I,
    L,
    ModelSpec,
    N,
    O,
    S,
    Strategy,
)

#: Devine (1974) ideal body weight: base kg at 152.4 cm (5 ft) and kg per cm above it.
DEVINE_BASE_KG = {"male": 50.0, "female": 45.5}
DEVINE_KG_PER_CM = 2.3 / 2.54
DEVINE_BASE_HEIGHT_CM = 152.4
#: Adjusted body weight = IBW + factor x (ABW - IBW) (NBA BloodSTAR calculator).
ADJUSTED_WEIGHT_FACTOR = 0.4
#: Largest per-test detection probability, so that -log(1 - p) stays finite.
DETECTION_PROB_CAP = 1.0 - 1e-12
#: Days in a week (SCIG process disutility is per week of therapy).
DAYS_PER_WEEK = 7.0
#: Calibration: bounds of the rates searched (per year), bisection tolerance on log scale,
#: fixed-point tolerance and rounds, and the horizon of the incidence target (months).
CALIBRATION_RATE_BOUNDS = (1e-4, 1e3)
CALIBRATION_LOG_TOL = 1e-12
CALIBRATION_FTOL = 1e-11
CALIBRATION_MAX_ITER = 100
CALIBRATION_FIXED_POINT_TOL = 1e-9
CALIBRATION_ROUNDS = 10
#: Alternating fallback: after its first round, each rate is searched within this factor of
#: its previous value (a solver setting, not a model input).
CALIBRATION_WARM_FACTOR = 1.25
#: Joint calibration: each rate is first found alone to this tolerance on its target (bracketed),
#: then both together by Broyden's method to CALIBRATION_FTOL, with steps in log(rate) of at
#: most CALIBRATION_MAX_STEP; draws Broyden does not settle go to the alternating method.
CALIBRATION_START_FTOL = 1e-4
#: First brackets of the calibration: these multiples of a rough guess per draw (the rate that
#: alone would give the incidence; the exponential rate with the target median). The roots lie
#: at 1.0-2.2 x the first and 1.4-4.4 x the second over 10,000 PSA draws of the bundled inputs;
#: a draw outside its bracket takes CALIBRATION_RATE_BOUNDS instead (two more evaluations).
CALIBRATION_GUESS_BRACKET_R = (0.5, 4.0)
CALIBRATION_GUESS_BRACKET_MU = (0.5, 4.0)
#: The survival curves of the OS calibration run for this multiple of the target median.
CALIBRATION_OS_HORIZON = 1.5
CALIBRATION_MAX_STEP = 1.0
CALIBRATION_BROYDEN_ITER = 40
CALIBRATION_MONTHS = 12.0
#: Chunk size target: elements of one (draws x cohorts x cycles x states x states) array.
CHUNK_ELEMENTS = 24_000_000


# --------------------------------------------------------------------------- parameters


class _Params:
    """Per-draw parameter values in model units: ``v['r_severe_on_bsab']`` is (D,) per year."""

    def __init__(
        self, draws: pd.DataFrame, unit_scale: Mapping[str, float], derived: Mapping | None = None
    ):
        self._draws = draws
        self._scale = unit_scale
        self.n = len(draws)
        #: calibrated values in model units (per year), e.g. r_severe_on_bsab
        self.derived: dict[str, np.ndarray] = dict(derived or {})
        self._cache: dict[str, np.ndarray] = {}

    def take(self, idx: np.ndarray) -> _Params:
        """The draws at positions ``idx`` (converted columns and derived values taken alike)."""
        if len(idx) == self.n and np.array_equal(idx, np.arange(self.n)):
            return self
        derived = {
            k: np.broadcast_to(np.asarray(x, float), (self.n,))[idx]
            for k, x in self.derived.items()
        }
        out = _Params(self._draws.iloc[idx], self._scale, derived)
        out._cache = {
            k: tuple(e[idx] for e in x) if isinstance(x, tuple) else x[idx]
            for k, x in self._cache.items()
        }
        return out

    def with_derived(self, **values) -> _Params:
        out = _Params(self._draws, self._scale, {**self.derived, **values})
        out._cache = self._cache  # same draws: share the converted columns
        return out

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self.derived:
            return np.broadcast_to(np.asarray(self.derived[name], float), (self.n,))
        if name not in self._cache:
            if name not in self._draws.columns:
                raise CeaError(f"the model needs parameter '{name}', which is not in the inputs")
            self._cache[name] = self._draws[name].to_numpy(dtype=float) * self._scale.get(name, 1.0)
        return self._cache[name]


def _competing(hazards: dict[int, np.ndarray | None]) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Turn competing cumulative hazards over a cycle into probabilities.

    p_j = Lambda_j / Lambda x (1 - exp(-Lambda)); stay = exp(-Lambda). ``hazards`` maps a
    destination state to a (D, T) array of cumulative hazards over each cycle (None = absent).
    Returns ({destination: (D, T) probability}, (D, T) probability of no event).
    """
    present = {dest: h for dest, h in hazards.items() if h is not None}
    total = sum(present.values())
    stay = np.exp(-total)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(total > 0, -np.expm1(-total) / total, 1.0)
    return {dest: h * frac for dest, h in present.items()}, stay


def _dosing_weight(strategy: Strategy, v: _Params) -> np.ndarray:
    abw = v["q_body_weight_kg"]
    if strategy.dosing_weight == "actual":
        return abw
    male = v["p_male"]
    above = v["q_height_cm"] - DEVINE_BASE_HEIGHT_CM
    ibw = male * (DEVINE_BASE_KG["male"] + DEVINE_KG_PER_CM * above) + (1 - male) * (
        DEVINE_BASE_KG["female"] + DEVINE_KG_PER_CM * above
    )
    if strategy.dosing_weight == "ideal":
        return ibw
    if strategy.dosing_weight == "adjusted":
        return ibw + ADJUSTED_WEIGHT_FACTOR * (abw - ibw)
    raise CeaError(
        f"strategy '{strategy.strategy}': unknown dosing_weight '{strategy.dosing_weight}'"
    )


def grams_per_administration(strategy: Strategy, v: _Params) -> np.ndarray:
    """Grams per administration: dose x dosing weight (x SCIG factor), rounded up to the vial step."""
    if not strategy.uses_igrt:
        return np.zeros(v.n)
    if strategy.dosing_weight == "flat":
        grams = np.full(v.n, strategy.flat_dose_g)
    else:
        grams = strategy.dose_g_per_kg * _dosing_weight(strategy, v)
    if strategy.is_scig:
        grams = grams * v["q_scig_conversion"]
    if strategy.vial_rounding_g > 0:
        step = strategy.vial_rounding_g
        # tolerance so that an exact multiple (e.g. 30.000000001 from float arithmetic) is not bumped up
        grams = np.ceil(grams / step - 1e-9) * step
    return grams


# --------------------------------------------------------------------------- one cohort


@dataclass
class CohortArrays:
    """Inputs for the engine for one (strategy, subgroup) cohort and D draws."""

    P: np.ndarray  # (D, T, S, S)
    state_rewards: dict[str, np.ndarray]  # (D, 1 or T, S)
    transition_rewards: dict[str, np.ndarray]  # (D, 1 or T, S, S)
    start_rewards: dict[str, np.ndarray]  # (D, S)
    start: np.ndarray  # (S,)
    infection_death_prob: np.ndarray | None = (
        None  # (D, T, S): P(die of infection in the cycle | state)
    )


def _common_hazards(v: _Params, spec: ModelSpec) -> tuple[np.ndarray, ...]:
    """Strategy-independent cumulative hazards over each cycle, (D, T), cached on ``v``.

    Returns IgG decline, bsAb discontinuation, the infection time-shape multiplier, background
    death, the non-infectious myeloma death hazard on bsAb (per year, (D,)), and the share of
    patients whose IgG would be low by then (cure-fraction model, averaged over the cycle).
    """
    # cached once per cycle length, for the longest horizon asked so far: a shorter horizon
    # takes its first cycles (every value depends on its own cycle only)
    key = ("_common", spec.dt, id(spec.mx_by_age))
    T, dt = spec.n_cycles, spec.dt
    if key in v._cache and v._cache[key][0].shape[1] >= T:
        h_decline, h_disc, f_inf, h_bg, mu_on, low_share = v._cache[key]
        if h_decline.shape[1] == T:
            return v._cache[key]
        return (
            h_decline[:, :T],
            h_disc[:, :T],
            f_inf[:, :T],
            h_bg[:, :T],
            mu_on,
            low_share[:, :T],
        )
    # computed time-major, (T + 1, D) with draws innermost, and handed out as (D, T) views:
    # the compiled kernel reads them draws-last without a copy
    tau = (np.arange(T + 1) * dt)[:, None]  # years since bsAb start at each cycle boundary
    t0, t1 = tau[:-1], tau[1:]
    row = lambda name: v[name][None, :]  # noqa: E731
    # every function of time below is evaluated once at each boundary (T + 1, D); a cycle takes
    # its start ([:-1]) and end ([1:]) values
    # IgG decline, cure fraction: S(t) = 1 - pi + pi exp(-lam t)
    pi, lam = row("p_igg_low_ever"), row("r_igg_decline")
    with np.errstate(divide="ignore", invalid="ignore"):  # pi = 1: log1p(-1) = -inf
        log_s = np.log1p(pi * np.expm1(-lam * tau))
        log_s0, log_s1 = log_s[:-1], log_s[1:]
        # pi = 1 is a plain exponential: S(t) = exp(-lam t)
        h_decline = np.where(pi < 1.0, log_s0 - log_s1, lam * (t1 - t0))
    # share whose IgG would be low, averaged over the cycle: 1 - (S(t0) + S(t1)) / 2
    s_t = np.exp(log_s)
    low_share = 1.0 - 0.5 * (s_t[:-1] + s_t[1:])
    # time on bsAb: H(t) = ln2 (t / median)^shape
    median_tot, shape_tot = row("t_median_tot_months"), row("k_tot_weibull_shape")
    cum = (tau / median_tot) ** shape_tot
    h_disc = np.log(2.0) * (cum[1:] - cum[:-1])
    # infection hazard multiplier per cycle: cumulative hazard r*a*(t/a)^k, so the cycle share
    # is a*((t1/a)^k - (t0/a)^k)/dt; equal to 1 when k = 1
    anchor = row("t_infection_hazard_anchor_months")
    shape_inf = row("k_infection_hazard_shape")
    cum = (tau / anchor) ** shape_inf
    f_inf = anchor * (cum[1:] - cum[:-1]) / dt
    # background death at the integer age reached at the start of the cycle
    age = row("q_start_age_years") + t0
    idx = np.clip(np.floor(age).astype(int), 0, len(spec.mx_by_age) - 1)
    h_bg = spec.mx_by_age[idx] * dt
    h_decline, h_disc, f_inf, h_bg, low_share = (
        a.T for a in (h_decline, h_disc, f_inf, h_bg, low_share)
    )
    # non-infectious non-relapse mortality on bsAb (the NRM proportion is at 12 months)
    mu_on = -np.log1p(-v["p_nrm_12m"] * (1.0 - v["p_nrm_infection_share"]))
    v._cache[key] = (h_decline, h_disc, f_inf, h_bg, mu_on, low_share)
    return v._cache[key]


@dataclass
class Cohort:
    """One (strategy, subgroup) cohort for D draws, in compact form: every hazard and reward
    the transition array and the engine's rewards are built from, with no (D, T, S, S) or
    (D, T, S) array. :func:`expand` turns it into the engine's inputs (NumPy, the reference);
    :mod:`cea.igrt._kernel` runs it directly (compiled, for the PSA).

    Per cycle k and state s, with f = ``f_inf[:, k]`` and the IgG mix m (1, or on IgRT in
    state I when ``mix_igrt``: ``rr_normal (1 - low_share) + low_share``):

    * expected severe / non-severe infections: ``sev[:, s] dt f m`` / ``ns[:, s] dt f m``;
    * death hazard: ``h_bg + mm[:, s] dt + severe infections x cf``;
    * reward r per person-cycle: ``const[:, r, s] + on_severe[:, r] x severe infections
      + on_nonsevere[:, r] x non-severe infections``.
    """

    start: np.ndarray  # (S,)
    dt: float
    h_decline: np.ndarray  # (D, T) cumulative hazards over each cycle
    h_disc: np.ndarray
    f_inf: np.ndarray  # (D, T) infection time-shape multiplier
    h_bg: np.ndarray
    low_share: np.ndarray  # (D, T)
    sev: np.ndarray  # (D, S) per year, IgRT hazard ratios applied
    ns: np.ndarray
    mix_igrt: bool
    rr_normal: np.ndarray  # (D,)
    cf: np.ndarray  # (D,) case fatality of a severe infection
    mm: np.ndarray  # (D, S) myeloma death per year
    h_detect: np.ndarray | None  # (D,) per cycle, preemptive only
    infection_starts_low: bool  # a severe infection with low IgG starts IgRT
    infection_starts_normal: bool  # ... with IgG not yet low
    phi: np.ndarray  # (D,) share continuing IgRT after the bsAb
    h_stop: np.ndarray  # (D,) per cycle, IgRT stop after the bsAb
    reward_names: tuple[str, ...] = ()
    const: np.ndarray | None = None  # (D, R, S)
    on_severe: np.ndarray | None = None  # (D, R)
    on_nonsevere: np.ndarray | None = None  # (D, R)
    transition_names: tuple[str, ...] = ()
    transition: np.ndarray | None = None  # (D, R', S, S) constant over time
    start_rewards: dict[str, np.ndarray] | None = None  # (D, S)


def cohort(
    strategy: Strategy, subgroup: str, v: _Params, spec: ModelSpec, with_rewards: bool = True
) -> Cohort:
    """The compact description of one strategy and subgroup (see :class:`Cohort`).

    ``v`` must hold the calibrated ``r_severe_on_bsab`` and ``r_myeloma_death_off_bsab``
    (see :func:`calibrate`).
    """
    mu_off = v["r_myeloma_death_off_bsab"]
    D, dt = v.n, spec.dt
    h_decline, h_disc, f_inf, h_bg, mu_on, low_share = _common_hazards(v, spec)
    hr_os = v["hr_igrt_os"]

    # --- infection rates per year by state, (D, S)
    scig = v["rr_scig_vs_ivig"] if strategy.is_scig else np.ones(D)
    hr_sev = v[strategy.hr_severe_parameter] * scig if strategy.uses_igrt else np.ones(D)
    hr_ns = v["hr_igrt_nonsevere"] * scig if strategy.uses_igrt else np.ones(D)
    rr_normal = v["rr_infection_igg_normal"]
    sev = np.zeros((D, S))
    ns = np.zeros((D, S))
    sev[:, N] = v["r_severe_on_bsab"] * rr_normal
    sev[:, L] = v["r_severe_on_bsab"]
    sev[:, I] = v["r_severe_on_bsab"] * hr_sev
    sev[:, OI] = v["r_severe_off_bsab"] * hr_sev
    sev[:, O] = v["r_severe_off_bsab"]
    ns[:, N] = v["r_nonsevere_on_bsab"] * rr_normal
    ns[:, L] = v["r_nonsevere_on_bsab"]
    ns[:, I] = v["r_nonsevere_on_bsab"] * hr_ns
    ns[:, OI] = v["r_nonsevere_off_bsab"] * hr_ns
    ns[:, O] = v["r_nonsevere_off_bsab"]
    mm = np.zeros((D, S))
    mm[:, N] = mu_on
    mm[:, L] = mu_on
    mm[:, I] = mu_on * hr_os
    mm[:, OI] = mu_off * hr_os
    mm[:, O] = mu_off

    # --- IgRT starts
    h_detect = None
    if strategy.trigger == "igg_below_threshold":
        s = v["p_assay_sensitivity"]
        if subgroup == "igg_isotype":
            s = s * (1.0 - v["p_masked_igg_isotype"])
        tests_per_cycle = spec.cycle_days / v["q_igg_test_interval_days"]
        # per cycle P(detect) = 1 - (1 - s)^tests  ->  cumulative hazard -tests x log(1 - s)
        h_detect = -tests_per_cycle * np.log1p(-np.minimum(s, DETECTION_PROB_CAP))
    start = np.zeros(S)
    start[I if strategy.trigger == "at_start" else N] = 1.0
    c = Cohort(
        start=start,
        dt=dt,
        h_decline=h_decline,
        h_disc=h_disc,
        f_inf=f_inf,
        h_bg=h_bg,
        low_share=low_share,
        sev=sev,
        ns=ns,
        # IgRT multiplies the rate the patient would have without it. Preemptive patients
        # reach IgRT because their IgG is low; primary (and secondary) patients are on IgRT
        # whatever their IgG, so their untreated rate is the mix of normal and low IgG
        # expected at that time: rr_normal x S(t) + (1 - S(t)), S(t) the share not yet low.
        mix_igrt=strategy.trigger in ("at_start", "after_severe_infection"),
        rr_normal=rr_normal,
        cf=v["p_case_fatality_severe"],
        mm=mm,
        h_detect=h_detect,
        infection_starts_low=strategy.trigger == "after_severe_infection"
        or (strategy.trigger == "igg_below_threshold" and strategy.start_after_severe_infection),
        infection_starts_normal=strategy.trigger == "after_severe_infection",
        phi=v["p_continue_igrt_after_bsab"],
        h_stop=np.log(2.0) / v["t_median_igrt_after_bsab_months"] * dt,
    )
    if with_rewards:
        _add_rewards(c, strategy, v, spec)
    return c


def _add_rewards(c: Cohort, strategy: Strategy, v: _Params, spec: ModelSpec) -> None:
    """Resource use, costs, QALYs and counts per person-cycle, and the one-off rewards."""
    D, dt = v.n, spec.dt
    grams = grams_per_administration(strategy, v)  # (D,)
    admins_per_cycle = spec.cycle_days / strategy.interval_days if strategy.uses_igrt else 0.0
    ig_grams = np.zeros((D, S))
    infusions = np.zeros((D, S))
    for st in ON_IGRT:
        ig_grams[:, st] = grams * admins_per_cycle
        infusions[:, st] = admins_per_cycle
    price_g = v["c_scig_per_g"] if strategy.is_scig else v["c_ivig_per_g"]
    cost_ig = ig_grams * price_g[:, None]
    cost_admin = np.zeros((D, S))
    if strategy.uses_igrt:
        per_cycle = (
            v["c_scig_supplies_month"] * spec.cycle_months
            if strategy.is_scig
            else v["c_ivig_admin"] * admins_per_cycle
        )
        for st in ON_IGRT:
            cost_admin[:, st] = per_cycle
    igg_tests = np.zeros((D, S))
    if strategy.trigger == "igg_below_threshold":
        igg_tests[:, N] = spec.cycle_days / v["q_igg_test_interval_days"]
        igg_tests[:, L] = spec.cycle_days / v["q_igg_test_interval_days"]
    if strategy.uses_igrt:
        for st in ON_IGRT:
            igg_tests[:, st] = spec.cycle_days / v["q_trough_test_interval_days"]
    cost_monitoring = igg_tests * v["c_igg_test"][:, None]
    # adverse events of IgRT
    reactions = np.zeros((D, S))
    thrombo = np.zeros((D, S))
    if strategy.uses_igrt:
        if strategy.is_scig:
            ratio = v["or_scig_systemic_ae"]
            react = (
                v["p_infusion_reaction"]
                * ratio
                * spec.cycle_days
                / v["q_ivig_reference_interval_days"]
            )
            thr = v["r_thromboembolism_ivig"] * ratio * dt
        else:
            react = v["p_infusion_reaction"] * admins_per_cycle
            thr = v["r_thromboembolism_ivig"] * dt
        for st in ON_IGRT:
            reactions[:, st] = react
            thrombo[:, st] = thr
    cost_ae = (
        reactions * v["c_infusion_reaction"][:, None] + thrombo * v["c_thromboembolism"][:, None]
    )
    cost_bsab = np.zeros((D, S))
    if spec.include_bsab_costs:
        price = v[f"c_bsab_{spec.bsab_drug}_month"]
        for st in ON_BSAB:
            cost_bsab[:, st] = price * spec.cycle_months
    cost_subsequent = np.zeros((D, S))
    if spec.include_subsequent_therapy:
        for st in (OI, O):
            cost_subsequent[:, st] = v["c_subsequent_therapy_month"] * spec.cycle_months
    ly = np.zeros((D, S))
    ly[:, list(ALIVE)] = dt
    util = np.zeros((D, S))
    for st in ON_BSAB:
        util[:, st] = v["u_on_bsab"] * dt
    for st in (OI, O):
        util[:, st] = v["u_off_bsab"] * dt
    process_loss = np.zeros((D, S))
    if strategy.uses_igrt:
        per_cycle_loss = (
            v["q_qaly_loss_scig_week"] * spec.cycle_days / DAYS_PER_WEEK
            if strategy.is_scig
            else v["q_qaly_loss_ivig_visit"] * admins_per_cycle
        )
        for st in ON_IGRT:
            process_loss[:, st] = per_cycle_loss
    const_qaly = (
        util
        - reactions * v["q_qaly_loss_infusion_reaction"][:, None]
        - thrombo * v["q_qaly_loss_thromboembolism"][:, None]
        - process_loss
    )
    years_on_igrt = np.zeros((D, S))
    years_on_igrt[:, list(ON_IGRT)] = dt
    zero, one = np.zeros(D), np.ones(D)
    # name: (constant part (D, S), x severe infections (D,), x non-severe infections (D,))
    rewards = {
        "cost_ig": (cost_ig, zero, zero),
        "cost_ig_admin": (cost_admin, zero, zero),
        "cost_monitoring": (cost_monitoring, zero, zero),
        "cost_severe_infections": (np.zeros((D, S)), v["c_hosp_severe_infection"], zero),
        "cost_nonsevere_infections": (np.zeros((D, S)), zero, v["c_outpatient_infection"]),
        "cost_adverse_events": (cost_ae, zero, zero),
        "cost_bsab": (cost_bsab, zero, zero),
        "cost_subsequent_therapy": (cost_subsequent, zero, zero),
        "qaly": (const_qaly, -v["q_qaly_loss_severe"], -v["q_qaly_loss_nonsevere"]),
        "ly": (ly, zero, zero),
        "severe_infections": (np.zeros((D, S)), one, zero),
        "nonsevere_infections": (np.zeros((D, S)), zero, one),
        "ig_grams": (ig_grams, zero, zero),
        "infusions": (infusions, zero, zero),
        "igg_tests": (igg_tests, zero, zero),
        "years_on_igrt": (years_on_igrt, zero, zero),
        "thromboembolic_events": (thrombo, zero, zero),
        "infusion_reactions": (reactions, zero, zero),
    }
    c.reward_names = tuple(rewards)
    c.const = np.stack([r[0] for r in rewards.values()], axis=1)
    c.on_severe = np.stack([np.broadcast_to(r[1], (D,)) for r in rewards.values()], axis=1)
    c.on_nonsevere = np.stack([np.broadcast_to(r[2], (D,)) for r in rewards.values()], axis=1)
    # --- one-off rewards on transitions (infection deaths are counted from the flows into
    # 'dead', see _run_cohorts)
    transitions = {}
    start_rewards: dict[str, np.ndarray] = {}
    training = np.zeros((D, S, S))
    if strategy.is_scig:
        training[:, N, I] = v["c_scig_training"]
        training[:, L, I] = v["c_scig_training"]
        if strategy.trigger == "at_start":
            sr = np.zeros((D, S))
            sr[:, I] = v["c_scig_training"]
            start_rewards["cost_scig_training"] = sr
    transitions["cost_scig_training"] = training
    if spec.include_end_of_life:
        eol = np.zeros((D, S, S))
        for st in ALIVE:
            eol[:, st, DEAD] = v["c_end_of_life"]
        transitions["cost_end_of_life"] = eol
    c.transition_names = tuple(transitions)
    c.transition = np.stack(list(transitions.values()), axis=1)
    c.start_rewards = start_rewards


def infection_events(c: Cohort) -> tuple[np.ndarray, np.ndarray]:
    """Expected severe and non-severe infections per person-cycle by state, (D, T, S) each."""
    D, T = c.f_inf.shape
    mix = np.ones((D, T, S))
    if c.mix_igrt:
        mix[:, :, I] = c.rr_normal[:, None] * (1.0 - c.low_share) + c.low_share
    sev_cycle = c.sev[:, None, :] * c.dt * c.f_inf[:, :, None] * mix
    ns_cycle = c.ns[:, None, :] * c.dt * c.f_inf[:, :, None] * mix
    return sev_cycle, ns_cycle


def expand(c: Cohort, with_rewards: bool = True) -> CohortArrays:
    """The engine's inputs for a cohort (the NumPy reference path): the (D, T, S, S)
    transition array and the rewards, as :func:`cea.engine.markov.run_markov` takes them.

    With ``with_rewards=False`` only the transition array and start vector are built, and
    ``state_rewards['severe_infections']`` (the calibration needs nothing else)."""
    D, T = c.f_inf.shape
    sev_cycle, ns_cycle = infection_events(c)
    h_inf_death = sev_cycle * c.cf[:, None, None]  # (D, T, S)
    h_death = c.h_bg[:, :, None] + c.mm[:, None, :] * c.dt + h_inf_death  # (D, T, S)
    h_disc = c.h_disc
    h_detect = None if c.h_detect is None else np.broadcast_to(c.h_detect[:, None], (D, T))

    # --- transition array (D, T, S, S)
    # Two independent processes act in each cycle. Exits (death, bsAb discontinuation) compete
    # with each other; among those who neither die nor stop the bsAb, the internal changes of
    # IgG/IgRT status (decline, detection, infection-triggered start, IgRT stop) compete with
    # each other. Letting a fast internal change (detection hazard ~3 per cycle) compete with
    # the exits would shield patients from dying or stopping the bsAb in the cycle they change
    # IgG state, which biases the preemptive strategies (see docs/model.md).
    # built as (from, to, draw, cycle) blocks, which are contiguous, then laid out (D, T, S, S)
    Pft = np.zeros((S, S, D, T))

    def fill(frm: int, exits: dict, internal: dict | None = None):
        exit_p, stay_exit = _competing(exits)
        for dest, p in exit_p.items():
            Pft[frm, dest] += p
        if internal and any(h is not None for h in internal.values()):
            int_p, stay_int = _competing(internal)
            for dest, p in int_p.items():
                Pft[frm, dest] += stay_exit * p
            Pft[frm, frm] += stay_exit * stay_int
        else:
            Pft[frm, frm] += stay_exit

    fill(
        N,
        {O: h_disc, DEAD: h_death[:, :, N]},
        {L: c.h_decline, I: sev_cycle[:, :, N] if c.infection_starts_normal else None},
    )
    detect = h_detect
    if c.infection_starts_low:
        detect = sev_cycle[:, :, L] if detect is None else detect + sev_cycle[:, :, L]
    fill(L, {O: h_disc, DEAD: h_death[:, :, L]}, {I: detect})
    phi = c.phi[:, None]
    fill(I, {OI: h_disc * phi, O: h_disc * (1 - phi), DEAD: h_death[:, :, I]})
    fill(OI, {DEAD: h_death[:, :, OI]}, {O: np.broadcast_to(c.h_stop[:, None], (D, T))})
    fill(O, {DEAD: h_death[:, :, O]})
    Pft[DEAD, DEAD] = 1.0
    P = Pft.transpose(
        2, 3, 0, 1
    )  # (D, T, S, S) view; copied into the engine's layout by the caller

    if not with_rewards or c.const is None:
        return CohortArrays(
            P=P,
            state_rewards={"severe_infections": sev_cycle},
            transition_rewards={},
            start_rewards={},
            start=c.start,
        )
    state_rewards = {}
    for r, name in enumerate(c.reward_names):
        value = c.const[:, None, r, :]  # (D, 1, S): constant over time
        a, b = c.on_severe[:, r], c.on_nonsevere[:, r]
        if np.any(a != 0):
            value = value + a[:, None, None] * sev_cycle
        if np.any(b != 0):
            value = value + b[:, None, None] * ns_cycle
        state_rewards[name] = value
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(h_death > 0, h_inf_death / h_death, 0.0)  # (D, T, S)
    infection_death_prob = P[:, :, :, DEAD] * share
    infection_death_prob[:, :, DEAD] = 0.0
    return CohortArrays(
        P=P,
        state_rewards=state_rewards,
        transition_rewards={
            name: c.transition[:, None, r] for r, name in enumerate(c.transition_names)
        },
        start_rewards=dict(c.start_rewards or {}),
        start=c.start,
        infection_death_prob=infection_death_prob,
    )


def cohort_arrays(
    strategy: Strategy, subgroup: str, v: _Params, spec: ModelSpec, with_rewards: bool = True
) -> CohortArrays:
    """Transition probabilities and rewards for one strategy and subgroup (NumPy): the
    engine's inputs, ``expand(cohort(...))``.

    With ``with_rewards=False`` only the transition array and start vector are built (the
    calibration needs nothing else), except ``state_rewards['severe_infections']``.

    ``v`` must hold the calibrated ``r_severe_on_bsab`` and ``r_myeloma_death_off_bsab``
    (see :func:`calibrate`).
    """
    return expand(cohort(strategy, subgroup, v, spec, with_rewards), with_rewards)


# --------------------------------------------------------------------------- running


@dataclass
class ModelResult:
    """Outcomes per draw and strategy, subgroup-weighted.

    outcomes: long table, one row per (draw, strategy): ``draw, strategy, cost`` (total
    discounted), ``qaly``, ``ly`` and every reward in :data:`REWARDS` discounted (bare
    name) and undiscounted (``<name>_undiscounted``), plus ``cost_undiscounted``.
    traces: when asked for, (strategy, subgroup) -> (D, T+1, S) state occupancy.
    """

    outcomes: pd.DataFrame
    traces: dict[tuple[str, str], np.ndarray] | None = None
    calibrated: pd.DataFrame | None = None


def _engine_kwargs(spec: ModelSpec) -> dict:
    return dict(
        effects=tuple(
            n for n in EFFECTS + COUNTS if n != "infection_deaths"
        ),  # counted in _run_cohorts
        discount_rate_costs=spec.discount_rate_costs,
        discount_rate_effects=spec.discount_rate_effects,
        cycle_length_years=spec.dt,
        correction=spec.correction,
        discount_offset_cycles=spec.discount_offset_cycles,
        discount_step=spec.discount_step,
        reward_alignment="start",
        state_names=STATES,
    )


#: The caller's choice of path (see :func:`compiled_kernel`): None = not stated.
_KERNEL_ON: list[bool | None] = [None]


def engine_setting() -> str:
    """``CEA_ENGINE`` (``numpy``, ``numba`` or empty), read in this one place."""
    return os.environ.get("CEA_ENGINE", "").strip().lower()


def use_kernel() -> bool:
    """True when the compiled kernel runs the cohorts.

    ``CEA_ENGINE=numpy`` turns it off everywhere. Otherwise the caller's choice decides
    (:func:`compiled_kernel`: the PSA switches it on, tests switch it off), and without one,
    ``CEA_ENGINE=numba``. The kernel also needs Numba to import. Both paths give the same
    results to rounding (tests/test_kernel.py); the kernel pays off from hundreds of draws,
    while for a few model runs loading it costs more than it saves.
    """
    setting = engine_setting()
    if setting == "numpy" or not _kernel.HAVE_NUMBA:
        return False
    wanted = _KERNEL_ON[0] if _KERNEL_ON[0] is not None else setting == "numba"
    return wanted and _kernel.available()


@contextmanager
def compiled_kernel(on: bool = True):
    """Within the block, run cohorts through the compiled kernel (``on``) or the engine."""
    before = _KERNEL_ON[0]
    _KERNEL_ON[0] = on
    try:
        yield
    finally:
        _KERNEL_ON[0] = before


@dataclass
class _KernelResult:
    """What :func:`_run_cohorts` returns from the kernel, shaped like the engine's result."""

    discounted: dict[str, np.ndarray]
    undiscounted: dict[str, np.ndarray]
    trace: np.ndarray | None
    discount_effects: np.ndarray


def _discounting(spec: ModelSpec, n_cycles: int):
    """Correction weights and the costs' and effects' discount factors of each trace row."""
    kw = dict(
        n_rows=n_cycles + 1,
        cycle_length_years=spec.dt,
        offset_cycles=spec.discount_offset_cycles,
        step=spec.discount_step,
    )
    return (
        correction_weights(spec.correction, n_cycles),
        discount_factors(spec.discount_rate_costs, **kw),
        discount_factors(spec.discount_rate_effects, **kw),
    )


def _run_cohorts_kernel(
    cohorts: list[tuple[Strategy, str]], v: _Params, spec: ModelSpec, keep_traces: bool
):
    """:func:`_run_cohorts` through the compiled kernel (:mod:`cea.igrt._kernel`)."""
    D, K, T = v.n, len(cohorts), spec.n_cycles
    weights, disc_c, disc_e = _discounting(spec, T)
    effects = set(_engine_kwargs(spec)["effects"])
    disc: dict[str, np.ndarray] = {}
    und: dict[str, np.ndarray] = {}
    traces = []
    for k, (st, sg) in enumerate(cohorts):
        c = cohort(st, sg, v, spec)
        rows = np.array([disc_e if n in effects else disc_c for n in c.reward_names])
        trows = np.array([disc_e if n in effects else disc_c for n in c.transition_names])
        out_d, out_u, tr, _ = _kernel.run_cohort(
            c,
            weights,
            rows.reshape(len(c.reward_names), T + 1),
            trows.reshape(len(c.transition_names), T + 1),
            disc_e,
            keep_trace=keep_traces,
        )
        names = [*c.reward_names, *c.transition_names, "infection_deaths"]
        # a start reward with no state or transition reward of its name is a total of its own
        only_start = [n for n in c.start_rewards if n not in names]
        zeros = np.zeros(D)
        for j, name in enumerate(names + only_start):
            d_tot, u_tot = (out_d[:, j], out_u[:, j]) if j < len(names) else (zeros, zeros)
            if name in c.start_rewards:  # one-off at time 0, undiscounted
                once = c.start_rewards[name] @ c.start
                d_tot, u_tot = d_tot + once, u_tot + once
            disc.setdefault(name, np.zeros(K * D))[k * D : (k + 1) * D] = d_tot
            und.setdefault(name, np.zeros(K * D))[k * D : (k + 1) * D] = u_tot
        if keep_traces:
            traces.append(tr)
    trace = np.concatenate(traces, axis=0) if keep_traces else None
    return _KernelResult(disc, und, trace, disc_e), K, D


def _run_cohorts(
    cohorts: list[tuple[Strategy, str]], v: _Params, spec: ModelSpec, keep_traces: bool = True
):
    """Run several cohorts (stacked along the draw axis) in one batched engine call.

    The transition array is laid out with draws innermost (``make_transition_array``), which
    lets the engine run the trace as vector operations over draws.
    """
    if use_kernel():
        try:
            return _run_cohorts_kernel(cohorts, v, spec, keep_traces)
        except _kernel.InvalidProbabilities:
            pass  # the engine below refuses them, naming the strategy, draw, cycle and state
    D = v.n
    K = len(cohorts)
    P = make_transition_array(K * D, spec.n_cycles, S)
    arrays = []
    for c, (st, sg) in enumerate(cohorts):
        a = cohort_arrays(st, sg, v, spec)
        P[c * D : (c + 1) * D] = a.P
        a.P = None  # copied; free it
        arrays.append(a)
    start = np.concatenate([np.broadcast_to(a.start, (D, S)) for a in arrays], axis=0)

    def stack(getter, names, shape_fn):
        out = {}
        for name in names:
            parts = []
            per = [getter(a).get(name) for a in arrays]
            if all(p is None for p in per):
                continue
            tdim = max(p.shape[1] for p in per if p is not None)
            for p in per:
                if p is None:
                    parts.append(np.zeros(shape_fn(tdim)))
                else:
                    parts.append(np.broadcast_to(p, (D, tdim) + p.shape[2:]))
            out[name] = np.concatenate(parts, axis=0)
        return out

    sr_names = sorted({k for a in arrays for k in a.state_rewards})
    tr_names = sorted({k for a in arrays for k in a.transition_rewards})
    st_names = sorted({k for a in arrays for k in a.start_rewards})
    state_rewards = stack(lambda a: a.state_rewards, sr_names, lambda t: (D, t, S))
    transition_rewards = stack(lambda a: a.transition_rewards, tr_names, lambda t: (D, t, S, S))
    start_rewards = {}
    for name in st_names:
        start_rewards[name] = np.concatenate(
            [a.start_rewards.get(name, np.zeros((D, S))) for a in arrays], axis=0
        )
    inf_prob = np.concatenate([a.infection_death_prob for a in arrays], axis=0)
    arrays.clear()  # free the per-cohort copies before the engine runs
    labels = ",".join(f"{st.strategy}/{sg}" for st, sg in cohorts)
    try:
        res = run_markov(
            start,
            P,
            n_cycles=spec.n_cycles,
            state_rewards=state_rewards,
            transition_rewards=transition_rewards,
            start_rewards=start_rewards,
            label=labels if K == 1 else None,
            keep_per_cycle=False,
            **_engine_kwargs(spec),
        )
    except ModelInputError as exc:
        raise ModelInputError(_name_stacked_draw(str(exc), cohorts, v)) from None
    # flows in cycle k leave trace row k and are discounted at the end of the cycle (row k + 1),
    # as the engine does for transition rewards
    flows = np.einsum("bts,bts->bt", res.trace[:, :-1, :], inf_prob)
    res.undiscounted["infection_deaths"] = flows.sum(axis=1)
    res.discounted["infection_deaths"] = flows @ res.discount_effects[1:]
    return res, K, D


def _name_stacked_draw(message: str, cohorts: list[tuple[Strategy, str]], v: _Params) -> str:
    """The engine names a draw of the stacked (cohort x draw) call by its position: name the
    strategy, subgroup and the draw's own label instead."""
    found = re.search(r"\bdraw (\d+)", message)
    if found is None or len(cohorts) == 1:
        return message
    k, d = divmod(int(found.group(1)), v.n)
    if k >= len(cohorts):
        return message
    st, sg = cohorts[k]
    where = f"draw {v._draws.index[d]}"
    return f"strategy '{st.strategy}' ({sg}): " + message.replace(found.group(0), where, 1)


def median_survival_years(alive: np.ndarray, dt: float) -> np.ndarray:
    """Median of a survival curve given at cycle boundaries (linear interpolation).

    alive : (D, T+1) proportion alive at t = 0, dt, 2 dt, ... Returns (D,) years; inf when
    the curve never reaches 0.5.
    """
    below = alive <= 0.5
    has = below.any(axis=1)
    k = np.argmax(below, axis=1)  # first boundary at or below 0.5
    k = np.maximum(k, 1)
    rows = np.arange(alive.shape[0])
    a0, a1 = alive[rows, k - 1], alive[rows, k]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(a0 > a1, (a0 - 0.5) / (a0 - a1), 0.0)
    out = (k - 1 + frac) * dt
    return np.where(has, out, np.inf)


def calibration_cohorts(spec: ModelSpec) -> tuple[Strategy, Strategy]:
    """The trial-like calibration cohort: a mix of no IgRT and IgRT from the start (IVIG)."""
    none = Strategy("calibration_none", "never")
    igrt = Strategy("calibration_igrt", "at_start", "ivig", 1.0, spec.cycle_days)
    return none, igrt


def _alive_curve(st: Strategy, v: _Params, spec: ModelSpec) -> np.ndarray:
    if use_kernel():
        c = cohort(st, "non_igg", v, spec, with_rewards=False)
        try:
            trace = _kernel.run_cohort(c, keep_trace=True)[2]
            return 1.0 - trace[:, :, DEAD]
        except _kernel.InvalidProbabilities:
            pass  # the engine below refuses them with its one-line error
    a = cohort_arrays(st, "non_igg", v, spec, with_rewards=False)
    try:
        tr = run_markov(a.start, a.P, n_cycles=spec.n_cycles, correction="none").trace
    except ModelInputError as exc:
        raise ModelInputError(_label_draw(str(exc), v)) from None
    return 1.0 - tr[:, :, DEAD]


def _label_draw(message: str, v: _Params) -> str:
    """The engine names a draw by its position in the call: name it by its own label."""
    found = re.search(r"\bdraw (\d+)", message)
    if found is None or int(found.group(1)) >= v.n:
        return message
    return message.replace(found.group(0), f"draw {v._draws.index[int(found.group(1))]}", 1)


def trial_median_os_years(v: _Params, spec: ModelSpec, cap: np.ndarray | None = None) -> np.ndarray:
    """Median OS (years) of the calibration cohort, (D,).

    Only death hazards matter; the two cohorts' triggers do not depend on the subgroup, so one
    subgroup suffices. A median beyond the horizon, or beyond ``cap`` (years, per draw), reads
    as that limit (keeps the function finite and monotone).
    """
    none, igrt = calibration_cohorts(spec)
    share = v["p_trial_igrt_use"][:, None]
    alive = (1 - share) * _alive_curve(none, v, spec) + share * _alive_curve(igrt, v, spec)
    limit = spec.n_cycles * spec.dt if cap is None else np.minimum(cap, spec.n_cycles * spec.dt)
    return np.minimum(median_survival_years(alive, spec.dt), limit)


def no_igrt_incidence(v: _Params, spec: ModelSpec, months: float) -> np.ndarray:
    """12-month (``months``) cumulative incidence of severe infection without IgRT, deaths censored."""
    short = _incidence_spec(spec, months)
    none = Strategy("calibration_none", "never")
    if use_kernel():
        c = cohort(none, "non_igg", v, short, with_rewards=False)
        try:
            _, _, trace, events = _kernel.run_cohort(c, keep_trace=True, keep_events=True)
            return _incidence(trace[:, :-1, :DEAD].sum(axis=2), events, short, months)
        except _kernel.InvalidProbabilities:
            pass  # the engine below refuses them with its one-line error
    a = cohort_arrays(none, "non_igg", v, short, with_rewards=False)
    try:
        tr = run_markov(a.start, a.P, n_cycles=short.n_cycles, correction="none").trace
    except ModelInputError as exc:
        raise ModelInputError(_label_draw(str(exc), v)) from None
    return _incidence_from(tr, a.state_rewards["severe_infections"], short, months)


def _incidence_spec(spec: ModelSpec, months: float) -> ModelSpec:
    """The horizon the incidence at ``months`` needs."""
    return replace(spec, n_cycles=min(spec.n_cycles, int(np.ceil(months / 12.0 / spec.dt)) + 1))


def _incidence(alive: np.ndarray, events: np.ndarray, spec: ModelSpec, months: float) -> np.ndarray:
    """Cumulative incidence by ``months``, deaths censored (as a Kaplan-Meier estimate):
    1 - exp(-sum of per-cycle mean hazards among the alive); the last partial cycle pro rata.

    alive : (D, T) alive at the start of each cycle; events : (D, T) expected events in it.
    """
    hazard = events / alive
    n = months / 12.0 / spec.dt
    k = int(np.floor(n))
    cum = hazard[:, :k].sum(axis=1) + ((n - k) * hazard[:, k] if k < hazard.shape[1] else 0.0)
    return -np.expm1(-cum)


def _incidence_from(
    trace: np.ndarray, events: np.ndarray, spec: ModelSpec, months: float
) -> np.ndarray:
    """Incidence from a trace (D, T+1, S) and events per person-cycle by state (D, T, S)."""
    return _incidence(
        trace[:, :-1, :DEAD].sum(axis=2), (trace[:, :-1, :] * events).sum(axis=2), spec, months
    )


def _solve(f, target: np.ndarray, lo, hi, what: str, ftol=CALIBRATION_FTOL, wide=None, ids=None):
    """Solve f(x) = target for x > 0, one root per draw, vectorized over draws.

    ``f(x, idx)`` gives the function at rates ``x`` for the draws at positions ``idx``.
    Illinois (modified regula falsi) on log(x) within the bracket [lo, hi], which must enclose
    every root; f must be monotone in x. Each draw stops on its own once
    ``|f - target| <= ftol * max(1, |target|)`` (ftol scalar or per draw), so its root does not
    depend on which other draws share the call. Converges superlinearly (about 10 calls).

    ``wide``: a second bracket (lo, hi) for the draws whose [lo, hi] does not enclose the root
    (a narrow first guess per draw, the global bounds as the fallback). ``ids``: the draw
    numbers the error message names (default: positions).

    Returns (root, slope): slope is d f / d log(x) through the last two points evaluated.
    """
    n = len(target)
    everyone = np.arange(n)
    a = np.log(np.broadcast_to(lo, (n,))).astype(float)
    b = np.log(np.broadcast_to(hi, (n,))).astype(float)
    ga, gb = f(np.exp(a), everyone) - target, f(np.exp(b), everyone) - target
    ok = np.sign(ga) * np.sign(gb) <= 0
    if wide is not None and not ok.all():
        i = np.flatnonzero(~ok)
        a[i] = np.log(np.broadcast_to(wide[0], (n,))[i])
        b[i] = np.log(np.broadcast_to(wide[1], (n,))[i])
        ga[i] = f(np.exp(a[i]), i) - target[i]
        gb[i] = f(np.exp(b[i]), i) - target[i]
        ok = np.sign(ga) * np.sign(gb) <= 0
    if not ok.all():
        d = int(np.argmax(~ok))
        fa, fb = ga[d] + target[d], gb[d] + target[d]
        raise CeaError(
            f"cannot calibrate {what}: target {target[d]:.4g} is outside the reachable range "
            f"{min(fa, fb):.4g} to {max(fa, fb):.4g} (draw {d if ids is None else ids[d]})"
        )
    tol = np.broadcast_to(ftol, (n,)) * np.maximum(1.0, np.abs(target))
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (gb - ga) / (b - a)
    active = np.ones(n, dtype=bool)
    for _ in range(CALIBRATION_MAX_ITER):
        i = np.flatnonzero(active)
        if i.size == 0:
            break
        ai, bi, gai, gbi = a[i], b[i], ga[i], gb[i]
        with np.errstate(invalid="ignore", divide="ignore"):
            c = np.where(gbi != gai, bi - gbi * (bi - ai) / (gbi - gai), 0.5 * (ai + bi))
        c = np.clip(c, np.minimum(ai, bi), np.maximum(ai, bi))
        gc = f(np.exp(c), i) - target[i]
        with np.errstate(invalid="ignore", divide="ignore"):
            slope[i] = np.where(c != bi, (gc - gbi) / (c - bi), slope[i])
        same = np.sign(gc) == np.sign(gbi)
        # Illinois step: keep the bracket; halve the stale end's value when the same end moves twice
        a[i], ga[i] = np.where(same, ai, bi), np.where(same, gai / 2.0, gbi)
        b[i], gb[i] = c, gc
        done = (np.abs(gc) <= tol[i]) | (np.abs(c - a[i]) < CALIBRATION_LOG_TOL)
        active[i[done]] = False
    return np.exp(b), slope


def calibrate(v: _Params, spec: ModelSpec) -> _Params:
    """Calibrate the two quantities MODEL.md fixes by observation, per draw, jointly:

    * ``r_severe_on_bsab`` (per year): severe-infection rate with low IgG on bsAb, so that the
      no-IgRT cohort's cumulative incidence at 12 months equals ``p_severe_12m_no_igrt``;
    * ``r_myeloma_death_off_bsab`` (per year): myeloma death after the bsAb stops, so that the
      calibration cohort's median OS equals ``t_target_median_os_months``.

    Each rate is first found alone by bracketed root finding (:func:`_solve`) to
    ``CALIBRATION_START_FTOL``; then both together, per draw, by Broyden's method on the two
    conditions (the rates interact only through infection deaths, so the start is close and
    convergence fast) until both are met to ``CALIBRATION_FTOL``. Draws it does not settle are
    solved by alternating bracketed solves to a fixed point (:func:`_calibrate_alternating`).
    Every draw is solved on its own: its result does not depend on the other draws in the call.
    Returns ``v`` with both as derived values.
    """
    target_inc = v["p_severe_12m_no_igrt"]
    target_os = v["t_target_median_os_months"]  # years, through unit_scale
    n = v.n
    zero = target_inc <= 0  # no severe infections at all: the rate is 0, nothing to solve
    os_spec = _os_spec(spec, target_os)
    cap = _os_cap(spec, target_os)  # each draw's own horizon: as if it were calibrated alone
    ids = v._draws.index.to_numpy()
    # the strategy-independent hazards of both horizons, computed once and shared by every
    # subset of draws the root finding takes
    _common_hazards(v, spec)  # the longest horizon: the others take its first cycles
    if use_kernel():
        r, mu, ok = _calibrate_compiled(v, spec, os_spec)
        if ok.all():
            return v.with_derived(r_severe_on_bsab=r, r_myeloma_death_off_bsab=mu)
        # the draws it did not settle (or whose target is out of reach, or whose probabilities
        # are invalid) take the path below, which finishes them or names the error
        rest = np.flatnonzero(~ok)
        with compiled_kernel(False):
            sub = calibrate(v.take(rest), spec)
        r[rest], mu[rest] = sub["r_severe_on_bsab"], sub["r_myeloma_death_off_bsab"]
        return v.with_derived(r_severe_on_bsab=r, r_myeloma_death_off_bsab=mu)

    def inc_at(r, mu, idx):
        sub = v.take(idx).with_derived(r_severe_on_bsab=r, r_myeloma_death_off_bsab=mu)
        return no_igrt_incidence(sub, spec, CALIBRATION_MONTHS)

    def os_at(r, mu, idx):
        sub = v.take(idx).with_derived(r_severe_on_bsab=r, r_myeloma_death_off_bsab=mu)
        return trial_median_os_years(sub, os_spec, cap[idx])

    what_r = "the severe-infection rate (p_severe_12m_no_igrt)"
    what_mu = "myeloma death after bsAb (t_target_median_os_months, in years)"
    # 1. one at a time, loosely (exactly where r = 0: mu alone is then the whole problem)
    r = np.zeros(n)
    s_r = np.zeros(n)
    nz = np.flatnonzero(~zero)
    mu_start = np.ones(n)
    # first brackets per draw around rough guesses (the rate that alone would give the
    # incidence; the exponential rate with the target median), the global bounds if they miss
    lo_f, hi_f = CALIBRATION_GUESS_BRACKET_R
    if nz.size:
        guess = -np.log1p(-np.minimum(target_inc[nz], 1 - 1e-9)) / (CALIBRATION_MONTHS / 12.0)
        r[nz], s_r[nz] = _solve(
            lambda x, i: inc_at(x, mu_start[nz[i]], nz[i]),
            target_inc[nz],
            guess * lo_f,
            guess * hi_f,
            what=what_r,
            ftol=CALIBRATION_START_FTOL,
            wide=CALIBRATION_RATE_BOUNDS,
            ids=ids[nz],
        )
    guess = np.log(2.0) / target_os
    lo_f, hi_f = CALIBRATION_GUESS_BRACKET_MU
    mu, s_mu = _solve(
        lambda x, i: os_at(r[i], x, i),
        target_os,
        guess * lo_f,
        guess * hi_f,
        what=what_mu,
        ftol=np.where(zero, CALIBRATION_FTOL, CALIBRATION_START_FTOL),
        wide=CALIBRATION_RATE_BOUNDS,
        ids=ids,
    )
    if nz.size == 0:
        return v.with_derived(r_severe_on_bsab=r, r_myeloma_death_off_bsab=mu)
    # 2. both together (Broyden, per draw, on x = log rates)
    m = nz.size
    t = np.stack([target_inc[nz], target_os[nz]], axis=1)
    tol = CALIBRATION_FTOL * np.maximum(1.0, np.abs(t))
    x = np.log(np.stack([r[nz], mu[nz]], axis=1))

    def residual(x, i):
        rr, mm = np.exp(x[:, 0]), np.exp(x[:, 1])
        g = nz[i]
        return np.stack([inc_at(rr, mm, g), os_at(rr, mm, g)], axis=1) - t[i]

    F = residual(x, np.arange(m))
    J = np.zeros((m, 2, 2))
    J[:, 0, 0], J[:, 1, 1] = s_r[nz], s_mu[nz]
    active = ~(np.abs(F) <= tol).all(axis=1)
    failed = np.zeros(m, dtype=bool)
    for _ in range(CALIBRATION_BROYDEN_ITER):
        i = np.flatnonzero(active)
        if i.size == 0:
            break
        Ji, Fi = J[i], F[i]
        det = Ji[:, 0, 0] * Ji[:, 1, 1] - Ji[:, 0, 1] * Ji[:, 1, 0]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            dx = (
                -np.stack(
                    [
                        Ji[:, 1, 1] * Fi[:, 0] - Ji[:, 0, 1] * Fi[:, 1],
                        -Ji[:, 1, 0] * Fi[:, 0] + Ji[:, 0, 0] * Fi[:, 1],
                    ],
                    axis=1,
                )
                / det[:, None]
            )
            big = np.abs(dx).max(axis=1)
            dx *= np.where(big > CALIBRATION_MAX_STEP, CALIBRATION_MAX_STEP / big, 1.0)[:, None]
        bad = ~np.isfinite(dx).all(axis=1)
        if bad.any():
            failed[i[bad]] = True
            active[i[bad]] = False
            i, dx, Ji, Fi = i[~bad], dx[~bad], Ji[~bad], Fi[~bad]
            if i.size == 0:
                continue
        xn = x[i] + dx
        Fn = residual(xn, i)
        # Broyden's update: J += (dF - J dx) dx' / (dx' dx)
        u = (Fn - Fi) - np.einsum("kab,kb->ka", Ji, dx)
        J[i] = Ji + u[:, :, None] * dx[:, None, :] / (dx * dx).sum(axis=1)[:, None, None]
        x[i], F[i] = xn, Fn
        done = (np.abs(Fn) <= tol[i]).all(axis=1)
        stuck = ~np.isfinite(Fn).all(axis=1) | (np.abs(dx).max(axis=1) < CALIBRATION_LOG_TOL)
        failed[i[stuck & ~done]] = True
        active[i[done | stuck]] = False
    failed |= active
    r[nz], mu[nz] = np.exp(x[:, 0]), np.exp(x[:, 1])
    if failed.any():
        g = nz[failed]
        rr, mm = _calibrate_alternating(v.take(g), spec, os_spec, cap[g])
        r[g], mu[g] = rr, mm
    return v.with_derived(r_severe_on_bsab=r, r_myeloma_death_off_bsab=mu)


def _os_cap_cycles(spec: ModelSpec, target_os: np.ndarray) -> np.ndarray:
    """Each draw's own OS horizon in cycles: the one :func:`_os_spec` would give it alone."""
    return np.minimum(spec.n_cycles, np.ceil(CALIBRATION_OS_HORIZON * target_os / spec.dt) + 1)


def _os_cap(spec: ModelSpec, target_os: np.ndarray) -> np.ndarray:
    """Each draw's own OS horizon (years): the one :func:`_os_spec` would give it alone."""
    return _os_cap_cycles(spec, target_os) * spec.dt


def _calibrate_compiled(v: _Params, spec: ModelSpec, os_spec: ModelSpec):
    """:func:`calibrate` through the compiled kernel (:func:`cea.igrt._kernel.calibrate_draws`): the
    same algorithm per draw, with each survival curve run only until its median. Returns
    (r, mu, ok): ok False for a draw the kernel leaves to the NumPy path."""
    n = v.n
    none, igrt = calibration_cohorts(spec)
    inc_spec = _incidence_spec(spec, CALIBRATION_MONTHS)

    def three(rate: float):
        w = v.with_derived(
            r_severe_on_bsab=np.full(n, rate), r_myeloma_death_off_bsab=np.full(n, rate)
        )
        return (
            cohort(none, "non_igg", w, inc_spec, with_rewards=False),
            cohort(none, "non_igg", w, os_spec, with_rewards=False),
            cohort(igrt, "non_igg", w, os_spec, with_rewards=False),
        )

    at = [three(0.0), three(1.0), three(2.0)]
    # the kernel takes the infection and myeloma death rates as affine in the two calibrated
    # rates (as cohort() builds them): check it, or leave every draw to the NumPy path
    for c0, c1, c2 in zip(*at, strict=True):
        for name in ("sev", "mm", "ns"):
            a0, a1, a2 = (getattr(c, name) for c in (c0, c1, c2))
            if not np.allclose(a2 - a1, a1 - a0, rtol=1e-12, atol=1e-300):
                return np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, dtype=bool)
    target_os = v["t_target_median_os_months"]
    cycles = _os_cap_cycles(spec, target_os)
    r, mu, status = _kernel.calibrate_draws(
        at[0],
        at[1],
        v["p_trial_igrt_use"],
        cycles * spec.dt,
        cycles.astype(int),
        v["p_severe_12m_no_igrt"],
        target_os,
        dict(
            start_ftol=CALIBRATION_START_FTOL,
            ftol=CALIBRATION_FTOL,
            guess_r_lo=CALIBRATION_GUESS_BRACKET_R[0],
            guess_r_hi=CALIBRATION_GUESS_BRACKET_R[1],
            guess_mu_lo=CALIBRATION_GUESS_BRACKET_MU[0],
            guess_mu_hi=CALIBRATION_GUESS_BRACKET_MU[1],
            wide_lo=CALIBRATION_RATE_BOUNDS[0],
            wide_hi=CALIBRATION_RATE_BOUNDS[1],
            log_tol=CALIBRATION_LOG_TOL,
            max_step=CALIBRATION_MAX_STEP,
            months=CALIBRATION_MONTHS,
            max_iter=CALIBRATION_MAX_ITER,
            broyden_iter=CALIBRATION_BROYDEN_ITER,
        ),
    )
    return r, mu, status == _kernel.OK


def _os_spec(spec: ModelSpec, target_os: np.ndarray) -> ModelSpec:
    """A horizon of 1.5 x the target median OS: the root (median = target) lies well inside it,
    and where a trial rate leaves the median beyond it, the median reads as the horizon
    (> target), which still brackets the root. The trace up to the median does not depend on
    the horizon, so neither does the calibrated rate."""
    return replace(
        spec,
        n_cycles=min(
            spec.n_cycles, int(np.ceil(CALIBRATION_OS_HORIZON * target_os.max() / spec.dt)) + 1
        ),
    )


def _calibrate_alternating(v: _Params, spec: ModelSpec, os_spec: ModelSpec, cap: np.ndarray):
    """The robust fallback of :func:`calibrate`: each rate solved to CALIBRATION_FTOL given the
    other, alternately, until both move by less than CALIBRATION_FIXED_POINT_TOL (relative).
    Every draw has a positive incidence target and iterates on its own (a draw's result does
    not depend on the others). Returns (r, mu) per year; raises CeaError for a draw that has
    not converged after CALIBRATION_ROUNDS rounds."""
    n = v.n
    target_inc = v["p_severe_12m_no_igrt"]
    target_os = v["t_target_median_os_months"]
    ids = v._draws.index.to_numpy()
    mu = np.full(n, 1.0)
    r = np.zeros(n)
    active = np.ones(n, dtype=bool)
    for k in range(CALIBRATION_ROUNDS):
        a = np.flatnonzero(active)
        if a.size == 0:
            break
        sub, r_old, mu_old = v.take(a), r[a], mu[a]

        # first round: the global bracket; later rounds: a narrow one around the last solution
        # (the weak coupling between the two rates keeps the new root near), the global one
        # for a draw whose root has left it
        def bracket(x, first=k == 0):
            if first:
                return CALIBRATION_RATE_BOUNDS
            return x / CALIBRATION_WARM_FACTOR, x * CALIBRATION_WARM_FACTOR

        r_new, _ = _solve(
            lambda x, i, sub=sub, mu_old=mu_old: no_igrt_incidence(
                sub.take(i).with_derived(r_severe_on_bsab=x, r_myeloma_death_off_bsab=mu_old[i]),
                spec,
                CALIBRATION_MONTHS,
            ),
            target_inc[a],
            *bracket(r_old),
            what="the severe-infection rate (p_severe_12m_no_igrt)",
            wide=CALIBRATION_RATE_BOUNDS,
            ids=ids[a],
        )
        mu_new, _ = _solve(
            lambda x, i, sub=sub, r_new=r_new, cap_a=cap[a]: trial_median_os_years(
                sub.take(i).with_derived(r_severe_on_bsab=r_new[i], r_myeloma_death_off_bsab=x),
                os_spec,
                cap_a[i],
            ),
            target_os[a],
            *bracket(mu_old),
            what="myeloma death after bsAb (t_target_median_os_months, in years)",
            wide=CALIBRATION_RATE_BOUNDS,
            ids=ids[a],
        )
        settled = (np.abs(r_new - r_old) <= CALIBRATION_FIXED_POINT_TOL * r_new) & (
            np.abs(mu_new - mu_old) <= CALIBRATION_FIXED_POINT_TOL * mu_new
        )
        r[a], mu[a] = r_new, mu_new
        active[a[settled]] = False
    if active.any():
        d = int(np.argmax(active))
        raise CeaError(
            "cannot calibrate the severe-infection rate and myeloma death after bsAb together: "
            f"no fixed point after {CALIBRATION_ROUNDS} rounds (draw {ids[d]})"
        )
    return r, mu


CALIBRATED = ("r_severe_on_bsab", "r_myeloma_death_off_bsab")


def run_model(
    draws: pd.DataFrame,
    spec: ModelSpec,
    *,
    keep_traces: bool = False,
    calibrated: pd.DataFrame | None = None,
    chunk_draws: int | None = None,
) -> ModelResult:
    """Run every strategy and both subgroups for every draw.

    Parameters
    ----------
    draws : DataFrame, one row per draw, one column per parameter (input units).
    spec : ModelSpec.
    keep_traces : keep the (D, T+1, S) trace of each strategy and subgroup.
    calibrated : per-draw calibrated values (columns :data:`CALIBRATED`, per year, same index
        as ``draws``); calibrated per draw by :func:`calibrate` when None.
    chunk_draws : draws per engine call (bounds memory); chosen automatically when None.

    Results do not depend on ``chunk_draws``.
    """
    D = len(draws)
    K = len(spec.strategies)
    # the subgroups differ only in detection: strategies that never test IgG run one cohort,
    # used for both subgroups
    cohorts: list[tuple[Strategy, str]] = []
    which = np.zeros((K, 2), dtype=int)  # (strategy, subgroup) -> cohort index
    for k, st in enumerate(spec.strategies):
        for g, sg in enumerate(SUBGROUPS):
            if st.trigger == "igg_below_threshold" or g == 0:
                cohorts.append((st, sg))
            which[k, g] = len(cohorts) - 1
    # the engine's (draws x cohorts x cycles x states x states) transition array bounds the
    # chunk; the kernel holds only (draws x cycles) hazards
    per_draw = len(cohorts) * spec.n_cycles * (1 if use_kernel() else S * S)
    chunk = chunk_draws or max(1, CHUNK_ELEMENTS // per_draw)
    totals_disc = {name: np.zeros((K, 2, D)) for name in REWARDS}
    totals_und = {name: np.zeros((K, 2, D)) for name in REWARDS}
    traces = {} if keep_traces else None
    cal = {name: np.zeros(D) for name in CALIBRATED}
    weights = np.zeros(D)
    for lo in range(0, D, chunk):
        hi = min(D, lo + chunk)
        v = _Params(draws.iloc[lo:hi], spec.unit_scale)
        if calibrated is None:
            v = calibrate(v, spec)
        else:
            v = v.with_derived(**{n: calibrated[n].to_numpy(float)[lo:hi] for n in CALIBRATED})
        for name in CALIBRATED:
            cal[name][lo:hi] = v[name]
        weights[lo:hi] = v["p_igg_isotype"]
        res, _, d = _run_cohorts(cohorts, v, spec, keep_traces)
        for name in REWARDS:
            disc = res.discounted.get(name)
            und = res.undiscounted.get(name)
            if disc is None:
                continue
            totals_disc[name][:, :, lo:hi] = np.asarray(disc).reshape(len(cohorts), d)[which]
            totals_und[name][:, :, lo:hi] = np.asarray(und).reshape(len(cohorts), d)[which]
        if keep_traces:
            tr = res.trace.reshape(len(cohorts), d, spec.n_cycles + 1, S)
            for k, st in enumerate(spec.strategies):
                for g, sg in enumerate(SUBGROUPS):
                    traces.setdefault((st.strategy, sg), []).append(tr[which[k, g]])
    if keep_traces:
        traces = {key: np.concatenate(parts, axis=0) for key, parts in traces.items()}
    w = np.stack([weights, 1 - weights])  # (2, D): igg_isotype, non_igg
    cols: dict[str, np.ndarray] = {
        "draw": np.tile(draws.index.to_numpy(), K),
        "strategy": np.repeat(spec.strategy_names, D),
    }
    # strategies whose subgroups share one cohort take its value as it is (w x + (1 - w) x is
    # not exactly x in floating point, which would let the subgroup share move them)
    shared = which[:, 0] == which[:, 1]

    def weighted(totals: np.ndarray) -> np.ndarray:
        out = (totals * w[None]).sum(axis=1)  # (K, D)
        out[shared] = totals[shared, 0]
        return out.reshape(-1)

    for name in REWARDS:
        cols[name] = weighted(totals_disc[name])
        cols[f"{name}_undiscounted"] = weighted(totals_und[name])
    out = pd.DataFrame(cols)
    out.insert(2, "cost", out[list(COST_CATEGORIES)].sum(axis=1))
    out.insert(
        3, "cost_undiscounted", out[[f"{c}_undiscounted" for c in COST_CATEGORIES]].sum(axis=1)
    )
    if not np.isfinite(out.select_dtypes("number").to_numpy()).all():
        raise ModelInputError("the model produced non-finite results: check the parameter values")
    return ModelResult(outcomes=out, traces=traces, calibrated=pd.DataFrame(cal, index=draws.index))


# --------------------------------------------------------------------------- face validity


def _mixture_trace(strategy: Strategy, v: _Params, spec: ModelSpec):
    """Subgroup-weighted trace (D, T+1, S) and severe-infection events per person-cycle by state
    (D, T, S), both weighted by the subgroup shares."""
    w_iso = v["p_igg_isotype"]
    trace = np.zeros((v.n, spec.n_cycles + 1, S))
    events = np.zeros((v.n, spec.n_cycles, S))
    for sg, w in (("igg_isotype", w_iso), ("non_igg", 1 - w_iso)):
        a = cohort_arrays(strategy, sg, v, spec)
        tr = run_markov(a.start, a.P, n_cycles=spec.n_cycles, correction="none").trace
        trace += w[:, None, None] * tr
        events += w[:, None, None] * tr[:, :-1, :] * a.state_rewards["severe_infections"]
    return trace, events


def _strategy_params(draws: pd.DataFrame, spec: ModelSpec, strategy: str, calibrated):
    st = {s.strategy: s for s in spec.strategies}[strategy]
    v = _Params(draws, spec.unit_scale)
    if calibrated is None:
        v = calibrate(v, spec)
    else:
        v = v.with_derived(**{n: calibrated[n].to_numpy(float) for n in CALIBRATED})
    return st, v


def severe_infection_incidence(
    draws: pd.DataFrame,
    spec: ModelSpec,
    strategy: str,
    months: float,
    calibrated: pd.DataFrame | None = None,
) -> np.ndarray:
    """Cumulative incidence of severe infection by ``months`` for one strategy, deaths censored
    (as a Kaplan-Meier estimate reports it): 1 - exp(-integral of the mean hazard among the
    alive), subgroups weighted. Returns (D,)."""
    st, v = _strategy_params(draws, spec, strategy, calibrated)
    trace, events = _mixture_trace(st, v, spec)
    return _incidence(trace[:, :-1, :DEAD].sum(axis=2), events.sum(axis=2), spec, months)


def median_os_months(
    draws: pd.DataFrame, spec: ModelSpec, strategy: str, calibrated: pd.DataFrame | None = None
) -> np.ndarray:
    """Median overall survival (months) of one strategy, subgroups weighted. Returns (D,)."""
    st, v = _strategy_params(draws, spec, strategy, calibrated)
    trace, _ = _mixture_trace(st, v, spec)
    return median_survival_years(1.0 - trace[:, :, DEAD], spec.dt) * 12.0

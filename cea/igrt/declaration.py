"""The IgRT model declared once: per state, its competing exits and internal changes as
cumulative hazards, its events and its rewards (docs/model.md, sections 5, 6 and 8).

:func:`declare` is the whole model of one strategy and subgroup, written as the engine takes it
(:class:`cea.engine.declaration.CohortModel`); a reviewer can check it against docs/model.md
line by line. Every hazard is a linear combination of the five time profiles of
:func:`time_profiles` with per-draw coefficients, so the engine's compiled backend runs it
without a copy of the model.

No I/O and no random numbers here. Units: time in years, rates per year (input units are
converted with ``ModelSpec.unit_scale``); one cycle lasts ``dt = cycle_days / days_per_year``
years.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from cea.engine.declaration import ONE, CohortModel, Lin
from cea.errors import CeaError, ModelInputError
from cea.igrt.spec import ALIVE, DEAD, OI, ON_BSAB, ON_IGRT, I, L, ModelSpec, N, O, S, Strategy

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


class Params:
    """Per-draw parameter values in model units: ``v['r_severe_on_bsab']`` is (D,) per year.

    ``index``: the draws' labels. A subset made by :meth:`take` reads its columns from the same
    table through its row positions (no copy of the table)."""

    def __init__(
        self, draws: pd.DataFrame, unit_scale: Mapping[str, float], derived: Mapping | None = None
    ):
        self._draws = draws
        self._rows: np.ndarray | None = None  # positions in _draws of a subset
        self._scale = unit_scale
        self.index = draws.index.to_numpy()
        self.n = len(draws)
        #: calibrated values in model units (per year), e.g. r_severe_on_bsab
        self.derived: dict[str, np.ndarray] = dict(derived or {})
        self._cache: dict[str, np.ndarray] = {}

    def _like(self, derived: Mapping) -> Params:
        out = Params.__new__(Params)
        out.__dict__.update(self.__dict__)
        out.derived = dict(derived)
        return out

    def take(self, idx: np.ndarray) -> Params:
        """The draws at positions ``idx`` (converted columns and derived values taken alike)."""
        if len(idx) == self.n and np.array_equal(idx, np.arange(self.n)):
            return self
        out = self._like(
            {
                k: np.broadcast_to(np.asarray(x, float), (self.n,))[idx]
                for k, x in self.derived.items()
            }
        )
        out._rows = idx if self._rows is None else self._rows[idx]
        out.index, out.n = self.index[idx], len(idx)
        out._cache = {
            k: {n: e[idx] for n, e in x.items()} if isinstance(x, dict) else x[idx]
            for k, x in self._cache.items()
        }
        return out

    def with_derived(self, **values) -> Params:
        """The same draws (sharing the converted columns) with these derived values."""
        return self._like({**self.derived, **values})

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self.derived:
            return np.broadcast_to(np.asarray(self.derived[name], float), (self.n,))
        if name not in self._cache:
            if name not in self._draws.columns:
                raise CeaError(f"the model needs parameter '{name}', which is not in the inputs")
            col = self._draws[name].to_numpy(dtype=float) * self._scale.get(name, 1.0)
            self._cache[name] = col if self._rows is None else col[self._rows]
        return self._cache[name]


def _dosing_weight(strategy: Strategy, v: Params) -> np.ndarray:
    abw = v["q_body_weight_kg"]
    if strategy.dosing_weight == "actual":
        light = np.flatnonzero(~(abw > 0))
        if light.size:  # no weight, no dose: an IgRT strategy would cost nothing
            d = light[0]
            raise ModelInputError(
                f"strategy '{strategy.strategy}' doses by actual body weight, and q_body_weight_kg "
                f"is {abw[d]:g} (draw {v.index[d]}): a dose needs a weight above 0"
            )
        return abw
    male = v["p_male"]
    above = v["q_height_cm"] - DEVINE_BASE_HEIGHT_CM
    ibw = male * (DEVINE_BASE_KG["male"] + DEVINE_KG_PER_CM * above) + (1 - male) * (
        DEVINE_BASE_KG["female"] + DEVINE_KG_PER_CM * above
    )
    if strategy.dosing_weight not in ("ideal", "adjusted"):
        raise CeaError(
            f"strategy '{strategy.strategy}': unknown dosing_weight '{strategy.dosing_weight}'"
        )
    short = np.flatnonzero(~(ibw > 0))
    if short.size:  # Devine's gives no weight at 97.2 cm (men) or 102.2 cm (women) and below
        d = short[0]
        raise ModelInputError(
            f"strategy '{strategy.strategy}' doses by {strategy.dosing_weight} body weight, whose "
            f"ideal body weight (Devine) is {ibw[d]:.3g} kg at q_height_cm = "
            f"{v['q_height_cm'][d]:g} (draw {v.index[d]}): a height that gives no weight"
        )
    if strategy.dosing_weight == "ideal":
        return ibw
    return ibw + ADJUSTED_WEIGHT_FACTOR * (abw - ibw)


def grams_per_administration(strategy: Strategy, v: Params) -> np.ndarray:
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


#: Time profiles shared by every cohort of a call (:func:`time_profiles`), (D, T) each.
BACKGROUND = "background_death"  # cumulative background death hazard over the cycle
DISCONTINUATION = "bsab_discontinuation"  # cumulative bsAb discontinuation hazard
IGG_DECLINE = "igg_decline"  # cumulative hazard of IgG falling low (cure-fraction model)
INFECTION = "infection_shape"  # infection time-shape multiplier f(t) (1 when k = 1)
INFECTION_LOW_IGG = "infection_shape_low_igg"  # f(t) x share with low IgG, averaged over cycle
#: Events of every cohort: expected severe and non-severe infections per person-cycle.
SEVERE, NONSEVERE = "severe", "nonsevere"


def time_profiles(v: Params, spec: ModelSpec) -> dict[str, np.ndarray]:
    """The strategy-independent functions of time every hazard is built from, (D, T) each,
    cached on ``v`` (docs/model.md, section 5):

    * IgG decline, cure fraction: S(t) = 1 - pi + pi exp(-lam t), cumulative hazard
      log S(t0) - log S(t1) over the cycle [t0, t1] (lam dt when pi = 1);
    * bsAb discontinuation: H(t) = ln 2 (t / median)^shape, H(t1) - H(t0);
    * the infection time shape f = a ((t1/a)^k - (t0/a)^k) / dt (1 when k = 1), and f times the
      share whose IgG would be low, averaged over the cycle as the mean of its two ends:
      1 - (S(t0) + S(t1)) / 2;
    * background death: the life table's hazard at the completed age at the start of the
      cycle, floor(start age + t0), times dt.
    """
    # cached once per cycle length, for the longest horizon asked so far: a shorter horizon
    # takes its first cycles (every value depends on its own cycle only)
    key = ("_profiles", spec.dt, id(spec.mx_by_age))
    T, dt = spec.n_cycles, spec.dt
    cached = v._cache.get(key)
    if cached is not None and cached[BACKGROUND].shape[1] >= T:
        return {k: a[:, :T] for k, a in cached.items()}
    tau = (np.arange(T + 1) * dt)[None, :]  # years since bsAb start at each cycle boundary
    t0 = tau[:, :-1]
    col = lambda name: v[name][:, None]  # noqa: E731
    # every function of time is evaluated once at each boundary (D, T + 1); a cycle takes
    # its start ([:, :-1]) and end ([:, 1:]) values
    pi, lam = col("p_igg_low_ever"), col("r_igg_decline")
    with np.errstate(divide="ignore", invalid="ignore"):  # pi = 1: log1p(-1) = -inf
        log_s = np.log1p(pi * np.expm1(-lam * tau))
        h_decline = np.where(pi < 1.0, log_s[:, :-1] - log_s[:, 1:], lam * (tau[:, 1:] - t0))
    s_t = np.exp(log_s)
    low_share = 1.0 - 0.5 * (s_t[:, :-1] + s_t[:, 1:])
    cum = (tau / col("t_median_tot_months")) ** col("k_tot_weibull_shape")
    h_disc = np.log(2.0) * (cum[:, 1:] - cum[:, :-1])
    anchor = col("t_infection_hazard_anchor_months")
    cum = (tau / anchor) ** col("k_infection_hazard_shape")
    f_inf = anchor * (cum[:, 1:] - cum[:, :-1]) / dt
    age = col("q_start_age_years") + t0
    # clipped before the conversion to whole years: an age beyond any integer must not wrap
    idx = np.floor(np.clip(age, 0, len(spec.mx_by_age) - 1)).astype(int)
    profiles = {
        BACKGROUND: spec.mx_by_age[idx] * dt,
        DISCONTINUATION: h_disc,
        IGG_DECLINE: h_decline,
        INFECTION: f_inf,
        INFECTION_LOW_IGG: f_inf * low_share,
    }
    v._cache[key] = profiles
    return profiles


def myeloma_death_on_bsab(v: Params) -> np.ndarray:
    """Non-infectious non-relapse mortality on the bsAb, per year (D,): the NRM proportion at
    12 months without its infection share, as a constant hazard."""
    return -np.log1p(-v["p_nrm_12m"] * (1.0 - v["p_nrm_infection_share"]))


def infection_rates(strategy: Strategy, v: Params) -> tuple[np.ndarray, np.ndarray]:
    """Severe and non-severe infection rates per year by state, (D, S) each, IgRT hazard
    ratios applied (the SCIG rate ratio multiplies both)."""
    D = v.n
    scig = v["rr_scig_vs_ivig"] if strategy.is_scig else np.ones(D)
    hr_sev = v[strategy.hr_severe_parameter] * scig if strategy.uses_igrt else np.ones(D)
    hr_ns = v["hr_igrt_nonsevere"] * scig if strategy.uses_igrt else np.ones(D)
    rr_normal = v["rr_infection_igg_normal"]
    sev, ns = np.zeros((D, S)), np.zeros((D, S))
    for rates, on, off, hr in (
        (sev, v["r_severe_on_bsab"], v["r_severe_off_bsab"], hr_sev),
        (ns, v["r_nonsevere_on_bsab"], v["r_nonsevere_off_bsab"], hr_ns),
    ):
        rates[:, N] = on * rr_normal
        rates[:, L] = on
        rates[:, I] = on * hr
        rates[:, OI] = off * hr
        rates[:, O] = off
    return sev, ns


def declare(
    strategy: Strategy, subgroup: str, v: Params, spec: ModelSpec, with_rewards: bool = True
) -> CohortModel:
    """The IgRT model of one strategy and subgroup for the draws of ``v``.

    ``v`` must hold the calibrated ``r_severe_on_bsab`` and ``r_myeloma_death_off_bsab``
    (:func:`cea.igrt.calibration.calibrate`). Per cycle (docs/model.md, sections 5-7):

    * **events**: expected severe infections in state s = rate_s dt f(t) m_s, with f the
      infection time shape and m_s = 1, except on IgRT from the start (primary or secondary)
      in state I, where the untreated rate is the mix of normal and low IgG expected then:
      m = rr_normal (1 - low(t)) + low(t). Non-severe infections alike.
    * **exits** (compete): death = background + myeloma death dt + severe infections x case
      fatality, from every alive state; bsAb discontinuation from N and L to O, and from I
      to OI (share phi continuing IgRT) or O.
    * **internal** (compete among those who do not exit): N -> L (IgG decline); N -> I (a
      severe infection starts secondary IgRT); L -> I (detection by monitoring, preemptive;
      and a severe infection, where the strategy says so); OI -> O (IgRT stops after the bsAb).
    * **rewards**: :func:`_rewards`. **counts**: infection deaths, the infection part of the
      death hazard.
    """
    dt = spec.dt
    mu_on = myeloma_death_on_bsab(v)
    mu_off = v["r_myeloma_death_off_bsab"]
    hr_os = v["hr_igrt_os"]
    sev, ns = infection_rates(strategy, v)
    rr_normal = v["rr_infection_igg_normal"]
    # IgRT multiplies the rate the patient would have without it. Preemptive patients reach
    # IgRT because their IgG is low; primary (and secondary) patients are on IgRT whatever
    # their IgG, so in I their untreated rate mixes normal and low IgG
    mix_igrt = strategy.trigger in ("at_start", "after_severe_infection")

    def events(rates: np.ndarray) -> dict[int, Lin]:
        out = {s: Lin.of(INFECTION, rates[:, s] * dt) for s in ALIVE}
        if mix_igrt:
            out[I] = Lin({INFECTION: rates[:, I] * dt * rr_normal,
                          INFECTION_LOW_IGG: rates[:, I] * dt * (1.0 - rr_normal)})  # fmt: skip
        return out

    severe, nonsevere = events(sev), events(ns)
    myeloma = {N: mu_on, L: mu_on, I: mu_on * hr_os, OI: mu_off * hr_os, O: mu_off}
    cf = v["p_case_fatality_severe"]
    infection_death = {s: severe[s] * cf for s in ALIVE}
    death = {
        s: Lin.of(BACKGROUND) + Lin.of(ONE, myeloma[s] * dt) + infection_death[s] for s in ALIVE
    }
    disc = Lin.of(DISCONTINUATION)
    phi = v["p_continue_igrt_after_bsab"]
    exits = {
        N: {O: disc, DEAD: death[N]},
        L: {O: disc, DEAD: death[L]},
        I: {OI: disc * phi, O: disc * (1.0 - phi), DEAD: death[I]},
        OI: {DEAD: death[OI]},
        O: {DEAD: death[O]},
    }
    internal: dict[int, dict[int, Lin]] = {
        N: {L: Lin.of(IGG_DECLINE)},
        OI: {O: Lin.of(ONE, np.log(2.0) / v["t_median_igrt_after_bsab_months"] * dt)},
    }
    if strategy.trigger == "after_severe_infection":
        internal[N][I] = severe[N]
    to_igrt = []
    if strategy.trigger == "igg_below_threshold":
        s = v["p_assay_sensitivity"]
        if subgroup == "igg_isotype":
            s = s * (1.0 - v["p_masked_igg_isotype"])
        tests_per_cycle = spec.cycle_days / v["q_igg_test_interval_days"]
        # per cycle P(detect) = 1 - (1 - s)^tests  ->  cumulative hazard -tests log(1 - s)
        to_igrt.append(Lin.of(ONE, -tests_per_cycle * np.log1p(-np.minimum(s, DETECTION_PROB_CAP))))
    if strategy.trigger == "after_severe_infection" or (
        strategy.trigger == "igg_below_threshold" and strategy.start_after_severe_infection
    ):
        to_igrt.append(severe[L])
    if to_igrt:
        internal[L] = {I: sum(to_igrt[1:], to_igrt[0])}
    start = np.zeros(S)
    start[I if strategy.trigger == "at_start" else N] = 1.0
    model = CohortModel(
        start=start,
        exits=exits,
        internal=internal,
        events={SEVERE: severe, NONSEVERE: nonsevere},
        counts={"infection_deaths": (DEAD, infection_death)},
        label=f"{strategy.strategy} ({subgroup})",
    )
    if with_rewards:
        _rewards(model, strategy, v, spec)
    return model


def _rewards(model: CohortModel, strategy: Strategy, v: Params, spec: ModelSpec) -> None:
    """Resource use, costs, QALYs and counts per person-cycle in each state (a constant plus a
    value per severe and per non-severe infection), the one-off cost of SCIG training on the
    transitions N -> I and L -> I (and at the start for primary SCIG) and the optional
    end-of-life cost on every transition to death (docs/model.md, section 8)."""
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
        price = v[f"c_bsab_{spec.bsab_drug}_month"] * v["p_bsab_price_paid"]
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
    for name, (const, on_severe, on_nonsevere) in rewards.items():
        per_event = {SEVERE: on_severe, NONSEVERE: on_nonsevere}
        model.rewards[name] = (const, {e: c for e, c in per_event.items() if np.any(c != 0)})
    # --- one-off rewards on transitions and at the start
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
    model.transition_rewards = transitions
    model.start_rewards = start_rewards

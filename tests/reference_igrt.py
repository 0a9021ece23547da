"""A plain scalar reference implementation of the IgRT model, for one draw.

Written from ``docs/model.md`` (and ``inputs/README.md`` for what each parameter means), in the
style of hesim's tests: plain floats, the ``math`` module and explicit loops over cycles,
states and events, so that a reviewer can check every line against the document. Nothing
here imports the package: the test (tests/test_reference_igrt.py) compares it with the fast
path.

Every convention used here is stated in docs/model.md; where it is easy to miss, a comment
names the section (the test file's docstring lists them). A convention the document does not
state would be marked ``[gap]`` in a comment.

Inputs
------
params : parameter values in *model units* (rates per year, times in years; ``q_``, ``p_``,
    ``c_`` ... as in the input files), plus the two calibrated rates ``r_severe_on_bsab`` and
    ``r_myeloma_death_off_bsab`` (per year).
strategy : one row of inputs/strategies.csv as read by ``csv.DictReader`` (strings; blank = '').
settings : cycle_days, days_per_year, n_cycles, correction, discount_rate_costs,
    discount_rate_effects, discount_offset_cycles, discount_step, bsab_drug,
    include_bsab_costs, include_subsequent_therapy, include_end_of_life.
mx_by_age : background death rate per year at age 0, 1, 2, ... (the country life table).
"""

from __future__ import annotations

import math

# states (docs/model.md, "States, subgroups, start")
N, L, I, OI, O, D = "N", "L", "I", "OI", "O", "D"
STATES = (N, L, I, OI, O, D)
ALIVE = (N, L, I, OI, O)
ON_BSAB = (N, L, I)
ON_IGRT = (I, OI)

COST_REWARDS = (
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
EFFECT_REWARDS = ("qaly", "ly")
COUNT_REWARDS = (
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
ALL_REWARDS = COST_REWARDS + EFFECT_REWARDS + COUNT_REWARDS

#: Devine ideal body weight (inputs/README.md, strategies.csv: dosing_weight): 50 kg men /
#: 45.5 kg women at 5 ft, plus 2.3 kg per inch above.
INCH_CM = 2.54
FIVE_FEET_CM = 60 * INCH_CM
#: Adjusted body weight = IBW + 0.4 (ABW - IBW) (NBA BloodSTAR).
ADJUSTED_FACTOR = 0.4


# --------------------------------------------------------------------------- strategy rows


def _text(row: dict, key: str) -> str:
    value = row.get(key)
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    return str(value).strip()


def _number(row: dict, key: str) -> float:
    text = _text(row, key)
    return float(text) if text else 0.0


def _flag(row: dict, key: str) -> bool:
    return _text(row, key).lower() in ("true", "1", "yes")


def _uses_igrt(strategy: dict) -> bool:
    return _text(strategy, "trigger") != "never"


def _is_scig(strategy: dict) -> bool:
    return _text(strategy, "product") == "scig"


# --------------------------------------------------------------------------- time


def cycle_years(settings: dict) -> float:
    """dt = cycle_days / days_per_year (docs/model.md, Time and units)."""
    return settings["cycle_days"] / settings["days_per_year"]


def months_per_cycle(settings: dict) -> float:
    # docs/model.md, section 2: a month is 1/12 year, months per cycle = 12 dt
    return 12.0 * cycle_years(settings)


# --------------------------------------------------------------------------- hazards


def igg_not_low(params: dict, t: float) -> float:
    """S(t) = 1 - pi + pi exp(-lam t): share whose IgG is not yet low (cure fraction)."""
    pi = params["p_igg_low_ever"]
    lam = params["r_igg_decline"]
    return 1.0 - pi + pi * math.exp(-lam * t)


def log_igg_not_low(params: dict, t: float) -> float:
    """ln S(t), written log1p(pi (exp(-lam t) - 1)) so that it stays accurate when S is
    close to 1 - pi (the same number as math.log(igg_not_low(params, t)))."""
    pi = params["p_igg_low_ever"]
    lam = params["r_igg_decline"]
    return math.log1p(pi * math.expm1(-lam * t))


def cycle_quantities(params: dict, settings: dict, mx_by_age: list[float], k: int) -> dict:
    """The strategy-independent quantities of cycle k (from tau_k to tau_k+1)."""
    dt = cycle_years(settings)
    t0 = k * dt
    t1 = (k + 1) * dt
    # IgG decline N -> L: ln S(tau_k) - ln S(tau_k+1)
    h_decline = log_igg_not_low(params, t0) - log_igg_not_low(params, t1)
    # docs/model.md, section 6: "S(t) averaged over the cycle" = the mean of its two ends
    s_mean = 0.5 * (igg_not_low(params, t0) + igg_not_low(params, t1))
    # bsAb discontinuation: H(t) = ln2 (t / median)^shape
    median = params["t_median_tot_months"]  # in years (model units)
    shape = params["k_tot_weibull_shape"]
    h_disc = math.log(2.0) * ((t1 / median) ** shape - (t0 / median) ** shape)
    # infection time shape: f_k = a ((tau_k+1 / a)^s - (tau_k / a)^s) / dt
    a = params["t_infection_hazard_anchor_months"]  # in years
    s = params["k_infection_hazard_shape"]
    f = a * ((t1 / a) ** s - (t0 / a) ** s) / dt
    # background death: m(age) dt; docs/model.md, section 2: age completed (floor) at the start
    # of the cycle, ages past the table take its last value
    age = params["q_start_age_years"] + t0
    index = min(int(math.floor(age)), len(mx_by_age) - 1)
    h_background = mx_by_age[index] * dt
    # myeloma death on bsAb (per year): non-infectious non-relapse mortality
    mu_on = -math.log(1.0 - params["p_nrm_12m"] * (1.0 - params["p_nrm_infection_share"]))
    return {
        "h_decline": h_decline,
        "s_mean": s_mean,
        "h_disc": h_disc,
        "f": f,
        "h_background": h_background,
        "mu_on": mu_on,
    }


def hazard_ratios(params: dict, strategy: dict) -> tuple[float, float]:
    """Severe and non-severe hazard ratios on IgRT (x rr_scig_vs_ivig on SCIG)."""
    if not _uses_igrt(strategy):
        return 1.0, 1.0
    hr_name = _text(strategy, "hr_severe_parameter") or "hr_igrt_severe"
    hr_severe = params[hr_name]
    hr_nonsevere = params["hr_igrt_nonsevere"]
    if _is_scig(strategy):
        hr_severe = hr_severe * params["rr_scig_vs_ivig"]
        # docs/model.md, section 6: the SCIG rate ratio applies to non-severe infections too
        hr_nonsevere = hr_nonsevere * params["rr_scig_vs_ivig"]
    return hr_severe, hr_nonsevere


def infection_events(params: dict, strategy: dict, settings: dict, q: dict) -> tuple[dict, dict]:
    """Expected severe and non-severe infections per person-cycle in each alive state:
    rate x dt x f_k (docs/model.md, Infections are events)."""
    dt = cycle_years(settings)
    hr_severe, hr_nonsevere = hazard_ratios(params, strategy)
    rr_normal = params["rr_infection_igg_normal"]
    # u(t): the rate the patient on IgRT in I would have without it
    if _text(strategy, "trigger") in ("at_start", "after_severe_infection"):
        mix = rr_normal * q["s_mean"] + 1.0 - q["s_mean"]
    else:  # preemptive: in I because IgG is low
        mix = 1.0
    r = params["r_severe_on_bsab"]
    r_ns = params["r_nonsevere_on_bsab"]
    severe_rate = {
        N: r * rr_normal,
        L: r,
        I: r * mix * hr_severe,
        OI: params["r_severe_off_bsab"] * hr_severe,
        O: params["r_severe_off_bsab"],
    }
    nonsevere_rate = {
        N: r_ns * rr_normal,
        L: r_ns,
        I: r_ns * mix * hr_nonsevere,
        OI: params["r_nonsevere_off_bsab"] * hr_nonsevere,
        O: params["r_nonsevere_off_bsab"],
    }
    severe = {s: severe_rate[s] * dt * q["f"] for s in ALIVE}
    nonsevere = {s: nonsevere_rate[s] * dt * q["f"] for s in ALIVE}
    return severe, nonsevere


def death_hazards(params: dict, settings: dict, q: dict, severe: dict) -> tuple[dict, dict]:
    """Cumulative death hazard over the cycle per alive state, and its infection part."""
    dt = cycle_years(settings)
    hr_os = params["hr_igrt_os"]
    mu_off = params["r_myeloma_death_off_bsab"]
    myeloma = {N: q["mu_on"], L: q["mu_on"], I: q["mu_on"] * hr_os, OI: mu_off * hr_os, O: mu_off}
    infection = {s: severe[s] * params["p_case_fatality_severe"] for s in ALIVE}
    total = {s: q["h_background"] + myeloma[s] * dt + infection[s] for s in ALIVE}
    return total, infection


def detection_hazard(params: dict, subgroup: str, settings: dict) -> float:
    """-n ln(1 - s): n tests per cycle, s the per-test sensitivity (masked in IgG isotype)."""
    n = settings["cycle_days"] / params["q_igg_test_interval_days"]
    s = params["p_assay_sensitivity"]
    if subgroup == "igg_isotype":
        s = s * (1.0 - params["p_masked_igg_isotype"])
    return -n * math.log(1.0 - min(s, 1.0 - 1e-12))  # docs/model.md, section 5: s capped


def competing(hazards: dict) -> tuple[dict, float]:
    """p_j = h_j / H (1 - exp(-H)); stay = exp(-H)."""
    total = 0.0
    for h in hazards.values():
        total += h
    if total == 0.0:
        return {j: 0.0 for j in hazards}, 1.0
    leave = -math.expm1(-total)  # 1 - exp(-H)
    return {j: h / total * leave for j, h in hazards.items()}, math.exp(-total)


def transition_probabilities(
    params: dict, strategy: dict, subgroup: str, settings: dict, q: dict, severe: dict, death: dict
) -> dict:
    """P[from][to] for cycle k: exits first, then internal changes among those who stay."""
    trigger = _text(strategy, "trigger")
    phi = params["p_continue_igrt_after_bsab"]
    h_disc = q["h_disc"]
    exits = {
        N: {O: h_disc, D: death[N]},
        L: {O: h_disc, D: death[L]},
        I: {OI: h_disc * phi, O: h_disc * (1.0 - phi), D: death[I]},
        OI: {D: death[OI]},
        O: {D: death[O]},
    }
    dt = cycle_years(settings)
    internal = {N: {L: q["h_decline"]}, L: {}, I: {}, OI: {}, O: {}}
    if trigger == "after_severe_infection":
        internal[N][I] = severe[N]  # secondary start from IgG not yet low
    to_igrt = 0.0
    if trigger == "igg_below_threshold":
        to_igrt += detection_hazard(params, subgroup, settings)
        if _flag(strategy, "start_after_severe_infection"):
            to_igrt += severe[L]
    if trigger == "after_severe_infection":
        to_igrt += severe[L]
    if to_igrt > 0.0:
        internal[L][I] = to_igrt
    internal[OI][O] = math.log(2.0) / params["t_median_igrt_after_bsab_months"] * dt

    P = {s: {j: 0.0 for j in STATES} for s in STATES}
    for s in ALIVE:
        p_exit, stay_exit = competing(exits[s])
        for j, p in p_exit.items():
            P[s][j] += p
        p_int, stay_int = competing(internal[s])
        for j, p in p_int.items():
            P[s][j] += stay_exit * p
        P[s][s] += stay_exit * stay_int
    P[D][D] = 1.0
    return P


# --------------------------------------------------------------------------- rewards


def grams_per_administration(params: dict, strategy: dict) -> float:
    if not _uses_igrt(strategy):
        return 0.0
    rule = _text(strategy, "dosing_weight") or "actual"
    if rule == "flat":
        grams = _number(strategy, "flat_dose_g")
    else:
        actual = params["q_body_weight_kg"]
        inches_above = (params["q_height_cm"] - FIVE_FEET_CM) / INCH_CM
        male = params["p_male"]
        ideal = male * (50.0 + 2.3 * inches_above) + (1.0 - male) * (45.5 + 2.3 * inches_above)
        weight = {
            "actual": actual,
            "ideal": ideal,
            "adjusted": ideal + ADJUSTED_FACTOR * (actual - ideal),
        }[rule]
        grams = _number(strategy, "dose_g_per_kg") * weight
    if _is_scig(strategy):
        grams = grams * params["q_scig_conversion"]
    step = _number(strategy, "vial_rounding_g")
    if step > 0:
        # docs/model.md, section 4: rounded up to the step, ceil(g / step - 1e-9) x step
        grams = math.ceil(grams / step - 1e-9) * step
    return grams


def state_rewards(
    params: dict,
    strategy: dict,
    settings: dict,
    severe: dict,
    nonsevere: dict,
) -> dict:
    """Reward per person-cycle in each alive state, for one cycle: {reward: {state: value}}."""
    dt = cycle_years(settings)
    months = months_per_cycle(settings)
    cycle_days = settings["cycle_days"]
    uses_igrt = _uses_igrt(strategy)
    scig = _is_scig(strategy)
    out = {name: {s: 0.0 for s in ALIVE} for name in ALL_REWARDS}

    if uses_igrt:
        admins = cycle_days / _number(strategy, "interval_days")  # administrations per cycle
        grams = grams_per_administration(params, strategy)
        price = params["c_scig_per_g"] if scig else params["c_ivig_per_g"]
        if scig:
            admin_cost = params["c_scig_supplies_month"] * months
            reactions = (
                params["p_infusion_reaction"]
                * params["or_scig_systemic_ae"]
                * cycle_days
                / params["q_ivig_reference_interval_days"]
            )
            thrombo = params["r_thromboembolism_ivig"] * params["or_scig_systemic_ae"] * dt
            process_loss = params["q_qaly_loss_scig_week"] * cycle_days / 7.0
        else:
            admin_cost = params["c_ivig_admin"] * admins
            reactions = params["p_infusion_reaction"] * admins
            thrombo = params["r_thromboembolism_ivig"] * dt
            process_loss = params["q_qaly_loss_ivig_visit"] * admins
        # docs/model.md, section 8 (IgG tests): trough tests every q_trough_test_interval_days
        # in I and OI (also off the bsAb)
        trough_tests = cycle_days / params["q_trough_test_interval_days"]
        for s in ON_IGRT:
            out["ig_grams"][s] = grams * admins
            out["infusions"][s] = admins  # docs/model.md, section 8: n_adm, SCIG included
            out["cost_ig"][s] = grams * admins * price
            out["cost_ig_admin"][s] = admin_cost
            out["igg_tests"][s] = trough_tests
            out["infusion_reactions"][s] = reactions
            out["thromboembolic_events"][s] = thrombo
            out["cost_adverse_events"][s] = (
                reactions * params["c_infusion_reaction"] + thrombo * params["c_thromboembolism"]
            )
            out["years_on_igrt"][s] = dt
            out["qaly"][s] -= (
                reactions * params["q_qaly_loss_infusion_reaction"]
                + thrombo * params["q_qaly_loss_thromboembolism"]
                + process_loss
            )
    if _text(strategy, "trigger") == "igg_below_threshold":
        # docs/model.md, section 8 (IgG tests): tests before IgRT only in N and L, i.e. they
        # stop when the bsAb stops
        for s in (N, L):
            out["igg_tests"][s] = cycle_days / params["q_igg_test_interval_days"]
    for s in ALIVE:
        out["cost_monitoring"][s] = out["igg_tests"][s] * params["c_igg_test"]
        out["severe_infections"][s] = severe[s]
        out["nonsevere_infections"][s] = nonsevere[s]
        out["cost_severe_infections"][s] = severe[s] * params["c_hosp_severe_infection"]
        out["cost_nonsevere_infections"][s] = nonsevere[s] * params["c_outpatient_infection"]
        out["ly"][s] = dt
        utility = params["u_on_bsab"] if s in ON_BSAB else params["u_off_bsab"]
        out["qaly"][s] += (
            utility * dt
            - severe[s] * params["q_qaly_loss_severe"]
            - nonsevere[s] * params["q_qaly_loss_nonsevere"]
        )
    if settings["include_bsab_costs"]:
        # docs/model.md, section 8: the list price times the share actually paid
        price = params[f"c_bsab_{settings['bsab_drug']}_month"] * params["p_bsab_price_paid"]
        for s in ON_BSAB:
            out["cost_bsab"][s] = price * months
    if settings["include_subsequent_therapy"]:
        # docs/model.md, section 8: per month off the bsAb (OI and O)
        for s in (OI, O):
            out["cost_subsequent_therapy"][s] = params["c_subsequent_therapy_month"] * months
    return out


def transition_rewards(params: dict, strategy: dict, settings: dict) -> dict:
    """One-off rewards per person making a transition: {reward: {(from, to): value}}."""
    out = {}
    if _is_scig(strategy):
        out["cost_scig_training"] = {
            (N, I): params["c_scig_training"],
            (L, I): params["c_scig_training"],
        }
    if settings["include_end_of_life"]:
        # docs/model.md, section 8: per death, on every transition into D
        out["cost_end_of_life"] = {(s, D): params["c_end_of_life"] for s in ALIVE}
    return out


# --------------------------------------------------------------------------- totals


def correction_weights(correction: str, n_cycles: int) -> list[float]:
    """Within-cycle correction weight of each trace row 0..T."""
    T = n_cycles
    if correction in ("none", "start"):
        return [1.0] * T + [0.0]
    if correction == "end":
        return [0.0] + [1.0] * T
    if correction in ("half_cycle", "trapezoid", "life_table"):
        return [0.5] + [1.0] * (T - 1) + [0.5]
    if correction == "simpson":
        w = [0.0] * (T + 1)
        if T == 1:
            return [0.5, 0.5]
        # docs/model.md, section 8 (Totals): composite Simpson 1/3 over an even number of
        # cycles; with an odd number the last cycle uses the Cartwright correction
        # (scipy.integrate.simpson): rows T-2, T-1, T get -1/12, 2/3, 5/12
        even = T if T % 2 == 0 else T - 1
        for j in range(0, even, 2):
            w[j] += 1.0 / 3.0
            w[j + 1] += 4.0 / 3.0
            w[j + 2] += 1.0 / 3.0
        if T % 2 == 1:
            w[T - 2] -= 1.0 / 12.0
            w[T - 1] += 2.0 / 3.0
            w[T] += 5.0 / 12.0
        return w
    raise ValueError(f"unknown correction {correction!r}")


def discount_factor(rate: float, row: int, settings: dict) -> float:
    """(1 + rate)^-(years of trace row ``row``); annual steps use whole years."""
    years = (row + settings["discount_offset_cycles"]) * cycle_years(settings)
    if settings["discount_step"] == "annual":
        years = math.floor(years + 1e-9)  # docs/model.md, section 8: + 1e-9 years, then floor
    elif settings["discount_step"] != "cycle":
        raise ValueError(f"unknown discount step {settings['discount_step']!r}")
    return (1.0 + rate) ** (-years)


def is_cost(name: str) -> bool:
    # docs/model.md, section 8: costs at the costs' rate; QALYs, life-years and every count
    # (events, grams, tests, infection deaths ...) at the effects' rate
    return name.startswith("cost_")


def run_cohort(
    params: dict, strategy: dict, subgroup: str, settings: dict, mx_by_age: list[float]
) -> tuple[dict, dict, list[dict]]:
    """One strategy, one subgroup: (discounted totals, undiscounted totals, trace)."""
    T = settings["n_cycles"]
    trigger = _text(strategy, "trigger")
    # start: primary (at_start) in I, all others in N
    start = {s: 0.0 for s in STATES}
    start[I if trigger == "at_start" else N] = 1.0
    trace = [start]
    per_cycle_rewards = []  # state rewards of cycle k
    flows = []  # flows[k][(from, to)] = persons moving in cycle k
    infection_deaths = []  # infection deaths in cycle k
    for k in range(T):
        q = cycle_quantities(params, settings, mx_by_age, k)
        severe, nonsevere = infection_events(params, strategy, settings, q)
        death, infection_death = death_hazards(params, settings, q, severe)
        P = transition_probabilities(params, strategy, subgroup, settings, q, severe, death)
        per_cycle_rewards.append(state_rewards(params, strategy, settings, severe, nonsevere))
        now = trace[k]
        nxt = {s: 0.0 for s in STATES}
        moved = {}
        for s in STATES:
            for j in STATES:
                flow = now[s] * P[s][j]
                nxt[j] += flow
                moved[(s, j)] = flow
        trace.append(nxt)
        flows.append(moved)
        # infection deaths: the flow into D times the infection share of the death hazard
        deaths = 0.0
        for s in ALIVE:
            if death[s] > 0.0:
                deaths += moved[(s, D)] * infection_death[s] / death[s]
        infection_deaths.append(deaths)

    weights = correction_weights(settings["correction"], T)
    rate_costs = settings["discount_rate_costs"]
    rate_effects = settings["discount_rate_effects"]
    one_offs = transition_rewards(params, strategy, settings)
    discounted = {name: 0.0 for name in ALL_REWARDS}
    undiscounted = {name: 0.0 for name in ALL_REWARDS}
    for name in ALL_REWARDS:
        rate = rate_costs if is_cost(name) else rate_effects
        # state rewards on every trace row t = 0..T with the correction weight; row t takes
        # the rewards of the cycle starting there, the last row those of the last cycle
        for t in range(T + 1):
            rewards = per_cycle_rewards[min(t, T - 1)][name]
            value = 0.0
            for s in ALIVE:
                value += trace[t][s] * rewards[s]
            value *= weights[t]
            discounted[name] += value * discount_factor(rate, t, settings)
            undiscounted[name] += value
        # one-off rewards on the transitions of cycle k, discounted at row k + 1, no weight
        if name in one_offs:
            for k in range(T):
                value = 0.0
                for (s, j), amount in one_offs[name].items():
                    value += flows[k][(s, j)] * amount
                discounted[name] += value * discount_factor(rate, k + 1, settings)
                undiscounted[name] += value
    # infection deaths: counted once, at the end of the cycle in which they happen
    discounted["infection_deaths"] = 0.0
    undiscounted["infection_deaths"] = 0.0
    for k in range(T):
        discounted["infection_deaths"] += infection_deaths[k] * discount_factor(
            rate_effects, k + 1, settings
        )
        undiscounted["infection_deaths"] += infection_deaths[k]
    # primary SCIG: training at time 0, undiscounted
    if _is_scig(strategy) and trigger == "at_start":
        discounted["cost_scig_training"] += params["c_scig_training"]
        undiscounted["cost_scig_training"] += params["c_scig_training"]
    return discounted, undiscounted, trace


def reference_totals(
    params: dict[str, float], strategy: dict, settings: dict, mx_by_age: list[float]
) -> dict[str, float]:
    """Discounted (``name``) and undiscounted (``name_undiscounted``) totals of every reward
    for one strategy, weighted over the two subgroups by ``p_igg_isotype``; also ``cost`` and
    ``cost_undiscounted`` (sums of the cost categories)."""
    w = params["p_igg_isotype"]
    out = {}
    for subgroup, weight in (("igg_isotype", w), ("non_igg", 1.0 - w)):
        disc, und, _ = run_cohort(params, strategy, subgroup, settings, mx_by_age)
        for name in ALL_REWARDS:
            out[name] = out.get(name, 0.0) + weight * disc[name]
            key = f"{name}_undiscounted"
            out[key] = out.get(key, 0.0) + weight * und[name]
    out["cost"] = sum(out[name] for name in COST_REWARDS)
    out["cost_undiscounted"] = sum(out[f"{name}_undiscounted"] for name in COST_REWARDS)
    return out


# --------------------------------------------------------------------------- calibration


NO_IGRT = {"strategy": "calibration_none", "trigger": "never"}
#: docs/model.md, section 9: the calibration cohort's IgRT arm is primary IVIG (from the start)
#: with hr_igrt_severe
TRIAL_IGRT = {
    "strategy": "calibration_igrt",
    "trigger": "at_start",
    "product": "ivig",
    "hr_severe_parameter": "hr_igrt_severe",
}


def _trace_until(params, strategy, settings, mx_by_age, n_cycles):
    """Trace rows 0..n_cycles and the severe infections of each cycle (no rewards needed)."""
    start = {s: 0.0 for s in STATES}
    start[I if _text(strategy, "trigger") == "at_start" else N] = 1.0
    trace = [start]
    events = []
    for k in range(n_cycles):
        q = cycle_quantities(params, settings, mx_by_age, k)
        severe, _ = infection_events(params, strategy, settings, q)
        death, _ = death_hazards(params, settings, q, severe)
        P = transition_probabilities(params, strategy, "non_igg", settings, q, severe, death)
        now = trace[k]
        events.append(sum(now[s] * severe[s] for s in ALIVE))
        trace.append({j: sum(now[s] * P[s][j] for s in STATES) for j in STATES})
    return trace, events


def severe_incidence_no_igrt(
    params: dict, settings: dict, mx_by_age: list[float], months: float = 12.0
) -> float:
    """Calibration condition 1: the no-IgRT cohort's cumulative incidence of severe infection
    at ``months``, deaths censored: 1 - exp(-sum over cycles of events among the alive / alive).
    """
    dt = cycle_years(settings)
    # docs/model.md, section 9: 12 months = 12 / (12 dt) cycles, a fractional number: the
    # whole cycles plus the pro-rata share of the next one
    n = months / 12.0 / dt
    whole = int(math.floor(n))
    trace, events = _trace_until(params, NO_IGRT, settings, mx_by_age, whole + 1)
    cumulative = 0.0
    for k in range(whole + 1):
        alive = sum(trace[k][s] for s in ALIVE)
        hazard = events[k] / alive
        cumulative += hazard if k < whole else (n - whole) * hazard
    return -math.expm1(-cumulative)


def trial_median_os_months(params: dict, settings: dict, mx_by_age: list[float]) -> float:
    """Calibration condition 2: median OS (months) of a cohort with ``p_trial_igrt_use`` on
    primary IVIG and the rest without IgRT; linear interpolation between cycle boundaries."""
    dt = cycle_years(settings)
    share = params["p_trial_igrt_use"]
    n = 1
    while True:  # run long enough for the mixed survival to reach 1/2
        none, _ = _trace_until(params, NO_IGRT, settings, mx_by_age, n)
        igrt, _ = _trace_until(params, TRIAL_IGRT, settings, mx_by_age, n)
        alive = [
            (1.0 - share) * (1.0 - none[k][D]) + share * (1.0 - igrt[k][D]) for k in range(n + 1)
        ]
        if alive[-1] <= 0.5:
            break
        n *= 2
    k = next(k for k in range(n + 1) if alive[k] <= 0.5)
    k = max(k, 1)
    a0, a1 = alive[k - 1], alive[k]
    frac = (a0 - 0.5) / (a0 - a1) if a0 > a1 else 0.0
    return (k - 1 + frac) * dt * 12.0

"""The engine's NumPy backend for declared cohorts: each hazard evaluated to a (D, T) array, the
(D, T, S, S) transition array built by the two-level competing-risk construction
(:mod:`cea.engine.declaration`), then :func:`cea.engine.markov.run_markov`. The reference the
compiled backend is tested against."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from cea.engine.declaration import CohortModel, CohortResult, Lin, Timing, n_draws_of
from cea.engine.markov import make_transition_array, run_markov


def _competing(hazards: dict[int, np.ndarray]) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Competing cumulative hazards over a cycle -> ({destination: probability}, stay)."""
    total = sum(hazards.values())
    stay = np.exp(-total)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(total > 0, -np.expm1(-total) / total, 1.0)
    return {dest: h * frac for dest, h in hazards.items()}, stay


def probabilities(model: CohortModel, profiles: Mapping[str, np.ndarray], T: int) -> np.ndarray:
    """The (D, T, S, S) transition probabilities of a declared cohort (draws innermost in
    memory, :func:`cea.engine.markov.make_transition_array`)."""
    D = n_draws_of(profiles, [model])
    exits = {
        s: {d: h.evaluate(profiles, D, T) for d, h in e.items()} for s, e in model.exits.items()
    }
    inside = {
        s: {d: h.evaluate(profiles, D, T) for d, h in e.items()} for s, e in model.internal.items()
    }
    return transition_array(model.n_states, exits, inside, D, T)


def transition_array(
    S: int, values: Mapping[int, Mapping[int, np.ndarray]], internal, D: int, T: int
) -> np.ndarray:
    """The (D, T, S, S) transition probabilities from evaluated exit and internal hazards
    (state -> {destination: (D, T)}), by the two-level competing-risk construction."""
    P = make_transition_array(D, T, S)
    for s in range(S):
        exits, inside = values.get(s, {}), internal.get(s, {})
        if not exits and not inside:
            P[:, :, s, s] = 1.0
            continue
        exit_p, stay_exit = _competing(exits) if exits else ({}, np.ones((D, T)))
        for dest, p in exit_p.items():
            P[:, :, s, dest] += p
        if inside:
            int_p, stay_int = _competing(inside)
            for dest, p in int_p.items():
                P[:, :, s, dest] += stay_exit * p
            P[:, :, s, s] += stay_exit * stay_int
        else:
            P[:, :, s, s] += stay_exit
    return P


def run(
    model: CohortModel,
    profiles: Mapping[str, np.ndarray],
    timing: Timing,
    keep_trace: bool = False,
    keep_events: bool = False,
    keep_per_cycle: bool = False,
) -> CohortResult:
    """Run one declared cohort (see :func:`cea.engine.cohort.run_cohorts`)."""
    D, T, S = n_draws_of(profiles, [model]), timing.n_cycles, model.n_states

    def ev(lin: Lin) -> np.ndarray:
        return lin.evaluate(profiles, D, T)

    exits = {s: {d: ev(h) for d, h in dests.items()} for s, dests in model.exits.items()}
    inside = {s: {d: ev(h) for d, h in dests.items()} for s, dests in model.internal.items()}
    P = transition_array(S, exits, inside, D, T)
    events = {}
    for name, per_state in model.events.items():
        e = np.zeros((D, T, S))
        for s, lin in per_state.items():
            e[:, :, s] = ev(lin)
        events[name] = e
    state_rewards = {}
    for name, (const, per_event) in model.rewards.items():
        value = np.asarray(const, float)[:, None, :]
        for event, coef in per_event.items():
            value = value + np.asarray(coef, float)[:, None, None] * events[event]
        state_rewards[name] = value
    res = run_markov(
        model.start,
        P,
        n_cycles=T,
        state_rewards=state_rewards,
        transition_rewards={n: r[:, None] for n, r in model.transition_rewards.items()},
        start_rewards=model.start_rewards,
        effects=timing.effects & {*state_rewards, *model.transition_rewards, *model.start_rewards},
        discount_rate_costs=timing.discount_rate_costs,
        discount_rate_effects=timing.discount_rate_effects,
        cycle_length_years=timing.cycle_length_years,
        correction=timing.correction,
        discount_offset_cycles=timing.discount_offset_cycles,
        discount_step=timing.discount_step,
        reward_alignment="start",
        label=model.label or None,
        keep_per_cycle=keep_per_cycle,
    )
    trace = res.trace
    per_cycle = res.per_cycle
    for name, (dest, parts) in model.counts.items():
        flows = np.zeros((D, T))
        for s, lin in parts.items():
            h = exits[s][dest]  # the exit's hazard; its probability is h (1 - exp(-H_x)) / H_x
            total = sum(exits[s].values())
            with np.errstate(invalid="ignore", divide="ignore"):
                p_exit = h * np.where(total > 0, -np.expm1(-total) / total, 1.0)
                flows += np.where(h > 0, trace[:, :T, s] * p_exit * ev(lin) / h, 0.0)
        disc = res.discount_effects if name in timing.effects else res.discount_costs
        res.undiscounted[name] = flows.sum(axis=1)
        res.discounted[name] = flows @ disc[1:]
        if per_cycle is not None:  # a flow of cycle k sits on row k + 1, where it is discounted
            per_cycle[name] = np.concatenate([np.zeros((D, 1)), flows], axis=1)
    totals = None
    if keep_events:  # element by element, so that a draw's totals do not depend on the others
        totals = {}
        for n, e in events.items():
            totals[n] = trace[:, :T, 0] * e[:, :, 0]
            for s in range(1, S):
                totals[n] += trace[:, :T, s] * e[:, :, s]
    names = model.reward_names()
    return CohortResult(
        discounted={n: np.asarray(res.discounted[n]) for n in names},
        undiscounted={n: np.asarray(res.undiscounted[n]) for n in names},
        trace=np.ascontiguousarray(trace) if keep_trace else None,
        event_totals=totals,
        per_cycle={n: per_cycle[n] for n in names} if per_cycle is not None else None,
    )

"""Declared cohort models: a model is its hazards, events and rewards per state.

A model author declares, for each state, its competing **exits** (for example death and
stopping treatment) and its **internal** changes (for example a biomarker falling), each as a
cumulative hazard over every cycle; its **events** (expected counts per person-cycle, such as
infections); and its **rewards** (a constant per person-cycle in the state, plus a value per
event). The engine turns that into transition probabilities, runs the cohort and totals the
rewards. Nothing here knows any disease.

Hazards are linear combinations of shared time profiles
--------------------------------------------------------
Every hazard and event rate is a :class:`Lin`: ``value[d, t] = sum_j c_j[d] * profile_j[d, t]``,
with per-draw coefficients ``c_j`` (D,) and a few (D, T) time profiles shared by every cohort of
a call (the profile ``"one"`` is 1). A death hazard, for instance, is
``Lin.of("background") + mu * dt * Lin.of("one") + case_fatality * infections``. The NumPy
backend evaluates each combination to a (D, T) array; the compiled backend evaluates them cycle
by cycle without storing them, which is what makes it fast on any model of this form.

Two levels of competing risks
-----------------------------
Per state and cycle, the exits compete with each other, and among those who do not exit, the
internal changes compete with each other (Briggs, Claxton & Sculpher 2006, section 3.3):

    P(exit j)      = (H_j / H_x) (1 - exp(-H_x)),            H_x = sum of exit hazards
    P(internal k)  = exp(-H_x) (H_k / H_i) (1 - exp(-H_i)),  H_i = sum of internal hazards
    P(stay)        = exp(-H_x) exp(-H_i)

so a fast internal change (a test that detects low IgG within days) cannot shield a patient
from dying or stopping treatment in the same cycle. A state with no exits and no internal
changes is absorbing. Probabilities are never added: only hazards are.

Counts of causes
----------------
A **count** attributes part of the flow into a destination to a cause: for a state ``s``
whose exit ``s -> dest`` has hazard ``H`` of which ``C`` is the cause's part, the count in a
cycle is ``trace[s] P(s -> dest) C / H`` (0 where ``H = 0``). Infection deaths are such a count.

Timing
------
The engine's conventions (:mod:`cea.engine.markov`): trace row ``t`` weighted by the
within-cycle correction and discounted by its factor; a per-cycle state reward on row ``t`` is
cycle ``t``'s, the last row taking cycle ``T - 1``'s; transition rewards and counts are counted
once on the flow of cycle ``k`` and discounted at row ``k + 1``; start rewards once at time 0,
undiscounted. Rewards named in ``Timing.effects`` use the effects' discount rate, the others the
costs' rate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from cea.engine.markov import correction_weights, discount_factors
from cea.errors import ModelInputError

#: The profile that is 1 in every draw and cycle.
ONE = "one"


class Lin:
    """A (D, T) array as a linear combination of named time profiles.

    ``Lin({"background": 1.0, "one": mu * dt})`` is ``background[d, t] + mu[d] dt``.
    Coefficients are floats or (D,) arrays. ``+`` merges two combinations; ``*`` by a float or
    a (D,) array scales every coefficient.
    """

    __slots__ = ("terms",)

    def __init__(self, terms: Mapping[str, float | np.ndarray] | None = None):
        self.terms: dict[str, float | np.ndarray] = dict(terms or {})

    @classmethod
    def of(cls, profile: str, coef: float | np.ndarray = 1.0) -> Lin:
        return cls({profile: coef})

    def __add__(self, other: Lin) -> Lin:
        out = dict(self.terms)
        for name, c in other.terms.items():
            out[name] = out[name] + c if name in out else c
        return Lin(out)

    def __mul__(self, k: float | np.ndarray) -> Lin:
        return Lin({name: c * k for name, c in self.terms.items()})

    __rmul__ = __mul__

    def evaluate(self, profiles: Mapping[str, np.ndarray], n_draws: int, n_cycles: int):
        """The (D, T) values: sum over terms of coefficient x profile, in the terms' order."""
        out = np.zeros((n_draws, n_cycles))
        for name, c in self.terms.items():
            c = np.broadcast_to(np.asarray(c, float), (n_draws,))[:, None]
            out += c if name == ONE else c * profiles[name]
        return out


@dataclass
class CohortModel:
    """One cohort of D draws, declared by its hazards, events and rewards (module docstring).

    Attributes
    ----------
    start : (S,) or per draw (D, S), share of the cohort in each state at time 0.
    exits, internal : state -> {destination state: Lin}, the two levels of competing risks.
    events : event name -> {state: Lin}, expected events per person-cycle in the state.
    rewards : reward name -> (constant (D, S) per person-cycle, {event name: (D,) value per
        event}).
    transition_rewards : reward name -> (D, S, S) value per person making ``i -> j``.
    start_rewards : reward name -> (D, S) value per person at time 0.
    counts : count name -> (destination, {state: Lin}), the cause's part of the exit hazard of
        ``state -> destination``.
    label : names the cohort in error messages.
    """

    start: np.ndarray
    exits: dict[int, dict[int, Lin]]
    internal: dict[int, dict[int, Lin]] = field(default_factory=dict)
    events: dict[str, dict[int, Lin]] = field(default_factory=dict)
    rewards: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = field(default_factory=dict)
    transition_rewards: dict[str, np.ndarray] = field(default_factory=dict)
    start_rewards: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, tuple[int, dict[int, Lin]]] = field(default_factory=dict)
    label: str = ""

    @property
    def n_states(self) -> int:
        return np.shape(self.start)[-1]

    def reward_names(self) -> list[str]:
        """Every total the model reports, in a fixed order."""
        names = [*self.rewards, *self.transition_rewards, *self.counts]
        names += [n for n in self.start_rewards if n not in names]
        return names


@dataclass(frozen=True)
class Timing:
    """Cycles, within-cycle correction and discounting of a run (see :mod:`cea.engine.markov`)."""

    n_cycles: int
    cycle_length_years: float
    correction: str | tuple = "half_cycle"
    discount_rate_costs: float = 0.0
    discount_rate_effects: float = 0.0
    discount_offset_cycles: float = 0.0
    discount_step: str = "cycle"
    effects: frozenset[str] = frozenset()

    def weights(self) -> np.ndarray:
        return correction_weights(self.correction, self.n_cycles)

    def discount(self, effects: bool) -> np.ndarray:
        rate = self.discount_rate_effects if effects else self.discount_rate_costs
        return discount_factors(
            rate,
            n_rows=self.n_cycles + 1,
            cycle_length_years=self.cycle_length_years,
            offset_cycles=self.discount_offset_cycles,
            step=self.discount_step,
        )


@dataclass
class CohortResult:
    """Totals per draw of one cohort: ``discounted[name]``, ``undiscounted[name]`` (D,);
    ``trace`` (D, T + 1, S) and ``event_totals[event]`` (D, T), the expected events of each
    cycle in the whole cohort, when asked for; ``per_cycle[name]`` (D, T + 1), when asked for:
    each trace row's undiscounted, correction-weighted contribution (start rewards on row 0,
    a transition reward or count of cycle k on row k + 1, where it is discounted), so that
    ``per_cycle[name].sum(axis=1) == undiscounted[name]``."""

    discounted: dict[str, np.ndarray]
    undiscounted: dict[str, np.ndarray]
    trace: np.ndarray | None = None
    event_totals: dict[str, np.ndarray] | None = None
    per_cycle: dict[str, np.ndarray] | None = None


def n_draws_of(profiles: Mapping[str, np.ndarray], models: Sequence[CohortModel]) -> int:
    """The number of draws of a call: the profiles' first axis (or the rewards')."""
    for p in profiles.values():
        return p.shape[0]
    for m in models:
        for c in m.rewards.values():
            return c[0].shape[0]
    raise ModelInputError("the number of draws is unknown: give at least one profile")


def validate(models: Sequence[CohortModel], profiles: Mapping[str, np.ndarray], timing: Timing):
    """Refuse a declaration the engine cannot run, with one line naming the cohort and the
    problem: shapes of the profiles (D, T), start vectors (S,) or (D, S), finite and >= 0,
    rewards (D, S) / (D, S, S), states in range; no exit back to its own state and no
    destination both an exit and an internal change of a state; events, counts and the
    profiles they use declared; a count only on a declared exit, and not named like a reward."""
    D, T = n_draws_of(profiles, models), timing.n_cycles
    for name, p in profiles.items():
        if np.shape(p) != (D, T):
            raise ModelInputError(f"profile '{name}' has shape {np.shape(p)}, not ({D}, {T})")
    for m in models:
        _validate_model(m, set(profiles) | {ONE}, D)


def _validate_model(m: CohortModel, known: set[str], D: int) -> None:
    def fail(problem: str):
        raise ModelInputError(f"{m.label or 'cohort'}: {problem}")

    S = m.n_states
    start = np.asarray(m.start, float)
    if start.shape not in ((S,), (D, S)) or not np.isfinite(start).all() or (start < 0).any():
        fail(f"the start vector must be (S,) or ({D}, S), finite and >= 0")

    def check_lin(lin: Lin, where: str) -> None:
        for name, c in lin.terms.items():
            if name not in known:
                fail(f"{where} uses the unknown profile '{name}'")
            if np.ndim(c) not in (0, 1) or (np.ndim(c) == 1 and len(c) != D):
                fail(f"{where}: a coefficient must be a number or ({D},)")

    for level, per_state in (("exit", m.exits), ("internal change", m.internal)):
        for s, dests in per_state.items():
            for dest, lin in dests.items():
                if not (0 <= s < S and 0 <= dest < S) or dest == s:
                    fail(f"{level} {s} -> {dest} is not between two other states of {S}")
                check_lin(lin, f"{level} {s} -> {dest}")
    for s in set(m.exits) & set(m.internal):
        both = set(m.exits[s]) & set(m.internal[s])
        if both:
            fail(f"state {s} reaches {sorted(both)} both by an exit and by an internal change")
    for name, per_state in m.events.items():
        for s, lin in per_state.items():
            if not 0 <= s < S:
                fail(f"event '{name}' in state {s}, not one of {S}")
            check_lin(lin, f"event '{name}'")
    for name, (const, per_event) in m.rewards.items():
        if np.shape(const) != (D, S):
            fail(f"reward '{name}' must be ({D}, {S}), got {np.shape(const)}")
        for event, coef in per_event.items():
            if event not in m.events:
                fail(f"reward '{name}' is paid per undeclared event '{event}'")
            if np.shape(coef) != (D,):
                fail(f"reward '{name}' per '{event}' must be ({D},)")
    for name, r in m.transition_rewards.items():
        if np.shape(r) != (D, S, S):
            fail(f"transition reward '{name}' must be ({D}, {S}, {S}), got {np.shape(r)}")
    for name, r in m.start_rewards.items():
        if np.shape(r) != (D, S):
            fail(f"start reward '{name}' must be ({D}, {S}), got {np.shape(r)}")
    rewards = {*m.rewards, *m.transition_rewards, *m.start_rewards}
    for name, (dest, parts) in m.counts.items():
        if name in rewards:
            fail(f"count '{name}' has the name of a reward")
        for s, lin in parts.items():
            if dest not in m.exits.get(s, {}):
                fail(f"count '{name}' is on {s} -> {dest}, which is not an exit")
            check_lin(lin, f"count '{name}'")

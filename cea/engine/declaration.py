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
    cycle in the whole cohort, when asked for."""

    discounted: dict[str, np.ndarray]
    undiscounted: dict[str, np.ndarray]
    trace: np.ndarray | None = None
    event_totals: dict[str, np.ndarray] | None = None


def n_draws_of(profiles: Mapping[str, np.ndarray], models: Sequence[CohortModel]) -> int:
    """The number of draws of a call: the profiles' first axis (or the rewards')."""
    for p in profiles.values():
        return p.shape[0]
    for m in models:
        for c in m.rewards.values():
            return c[0].shape[0]
    raise ModelInputError("the number of draws is unknown: give at least one profile")

"""Published models reproduced exactly with the package's own code."""

from __future__ import annotations

import numpy as np
import pytest

from cea.engine.markov import run_markov

# ======================================================================================
# DMHEE HIV model (Briggs, Claxton & Sculpher 2006, Decision Modelling for Health
# Economic Evaluation, Exercise 2.5; after Chancellor et al., PharmacoEconomics
# 1997;12:54-66): zidovudine monotherapy vs zidovudine + lamivudine.
#
# Inputs, checked against two independent reproductions:
# - heemod vignette "Reproducing Exact Results from DMHEE" (vignettes/i_reproduction.Rmd in
#   pierucci/heemod and aphp/heemod): transition probabilities as the count fractions
#   1251/1734, 350/1734, 116/1734, 17/1734; 731/1258, 512/1258, 15/1258; 1312/1749,
#   437/1749; RR 0.509 and lamivudine 2086.5 only while model_time <= 2; zidovudine 2278;
#   health-care costs per state 2756, 3052, 9007; costs discounted at 6% from cycle 1
#   (method = "end", discount(first = TRUE)); 20 cycles; life-years undiscounted.
# - rdecision tests/testthat/test-model-AZT.R (ajsims1704/rdecision): the same counts
#   and RR, and the split of those state costs into direct medical + community care:
#   A 1701 + 1055 = 2756, B 1774 + 1278 = 3052, C 6948 + 2059 = 9007. (It rounds
#   lamivudine to 2087, which gives 50,602.56 for combination therapy instead of the
#   published 50,601.65, so 2086.5 is the spreadsheet's value.)
# The RR multiplies every off-diagonal probability of combination therapy; the diagonal
# takes the rest of the row (as in both reproductions and the book).
#
# Published results: costs 44,663.45 (mono) and 50,601.65 (combination), life-years
# 7.9912 and 8.9374, ICER 6,275.96 per life-year gained (book: 44,663; 50,602; 7.991;
# 8.937; 6,276).
#
# Timing: transitions happen at the end of each year and the state after the transition is
# counted for that year, so years 1..20 are trace rows 1..20 (correction "end"), and year t
# is discounted t years (discount offset 0). Lamivudine is paid in years 1 and 2, i.e. on
# rows 1 and 2: a per-cycle (T, S) cost with reward_alignment "end" (row t takes cycle t-1).
# ======================================================================================

DMHEE_N_CYCLES = 20
DMHEE_STATES = ("A", "B", "C", "D")
DMHEE_COUNTS = np.array(
    [
        [1251, 350, 116, 17],
        [0, 731, 512, 15],
        [0, 0, 1312, 437],
        [0, 0, 0, 1],
    ],
    dtype=float,
)
DMHEE_RR = 0.509
DMHEE_RR_YEARS = 2
DMHEE_DIRECT_MEDICAL = np.array([1701.0, 1774.0, 6948.0, 0.0])
DMHEE_COMMUNITY = np.array([1055.0, 1278.0, 2059.0, 0.0])
DMHEE_ZIDOVUDINE = 2278.0
DMHEE_LAMIVUDINE = 2086.5
DMHEE_DISCOUNT_COSTS = 0.06
DMHEE_ALIVE = np.array([1.0, 1.0, 1.0, 0.0])


def dmhee_transitions(combination: bool) -> np.ndarray:
    """(T, S, S) transition array; the RR applies in cycles 0 and 1 (years 1 and 2)."""
    mono = DMHEE_COUNTS / DMHEE_COUNTS.sum(axis=1, keepdims=True)
    comb = mono * DMHEE_RR
    np.fill_diagonal(comb, 0.0)
    np.fill_diagonal(comb, 1.0 - comb.sum(axis=1))
    P = np.repeat(mono[None], DMHEE_N_CYCLES, axis=0)
    if combination:
        P[:DMHEE_RR_YEARS] = comb
    return P


def dmhee_costs(combination: bool) -> np.ndarray:
    """(T, S) cost per person per year in each state, by cycle."""
    drug = np.full(DMHEE_N_CYCLES, DMHEE_ZIDOVUDINE)
    if combination:
        drug[:DMHEE_RR_YEARS] += DMHEE_LAMIVUDINE
    return (DMHEE_DIRECT_MEDICAL + DMHEE_COMMUNITY)[None, :] + drug[:, None] * DMHEE_ALIVE


def run_dmhee(combination: bool):
    return run_markov(
        np.array([1.0, 0.0, 0.0, 0.0]),
        dmhee_transitions(combination),
        state_rewards={"cost": dmhee_costs(combination), "ly": DMHEE_ALIVE},
        effects=["ly"],
        discount_rate_costs=DMHEE_DISCOUNT_COSTS,
        discount_rate_effects=0.0,
        correction="end",
        discount_offset_cycles=0.0,
        reward_alignment="end",
        label="DMHEE HIV " + ("combination" if combination else "monotherapy"),
        state_names=DMHEE_STATES,
    )


def test_dmhee_hiv_transition_matrices_match_book_table():
    # DMHEE Table 2.2 / rdecision's check (3 decimals)
    mono = dmhee_transitions(False)[0]
    comb = dmhee_transitions(True)[0]
    np.testing.assert_allclose(mono[0], [0.721, 0.202, 0.067, 0.010], atol=5e-4)
    np.testing.assert_allclose(mono[1, 1:], [0.581, 0.407, 0.012], atol=5e-4)
    np.testing.assert_allclose(mono[2, 2:], [0.750, 0.250], atol=5e-4)
    np.testing.assert_allclose(comb[0], [0.858, 0.103, 0.034, 0.005], atol=5e-4)
    np.testing.assert_allclose(comb[1, 1:], [0.787, 0.207, 0.006], atol=5e-4)
    np.testing.assert_allclose(comb[2, 2:], [0.873, 0.127], atol=5e-4)


def test_dmhee_hiv_costs_life_years_and_icer():
    mono = run_dmhee(combination=False)
    comb = run_dmhee(combination=True)
    assert mono.discounted["cost"] == pytest.approx(44663.45, abs=0.005)
    assert comb.discounted["cost"] == pytest.approx(50601.65, abs=0.005)
    assert mono.discounted["ly"] == pytest.approx(7.9912, abs=5e-5)
    assert comb.discounted["ly"] == pytest.approx(8.9374, abs=5e-5)
    # life-years are not discounted
    assert comb.discounted["ly"] == comb.undiscounted["ly"]
    icer = (comb.discounted["cost"] - mono.discounted["cost"]) / (
        comb.discounted["ly"] - mono.discounted["ly"]
    )
    assert icer == pytest.approx(6275.96, abs=0.005)


def test_dmhee_hiv_batched_psa_layout_gives_the_same_numbers():
    # both arms as 2 "draws" of one batched run: (D, T, S, S) and a (D, T, S) cost array
    P = np.stack([dmhee_transitions(False), dmhee_transitions(True)])
    cost = np.stack([dmhee_costs(False), dmhee_costs(True)])
    res = run_markov(
        np.array([1.0, 0.0, 0.0, 0.0]),
        P,
        state_rewards={"cost": cost, "ly": DMHEE_ALIVE},
        effects=["ly"],
        discount_rate_costs=DMHEE_DISCOUNT_COSTS,
        correction="end",
        reward_alignment="end",
    )
    np.testing.assert_allclose(res.discounted["cost"], [44663.45, 50601.65], atol=0.005)
    np.testing.assert_allclose(res.discounted["ly"], [7.9912, 8.9374], atol=5e-5)

"""The decision stated in words, and what it would take: each break-even value, put back into
the model, gives an INMB of zero against the cost-effective strategy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cea.igrt.spec import COST_CATEGORIES
from cea.io.load import load_inputs
from cea.parameters.table import Scenario, with_command_line
from cea.pipeline.base import run_base_case
from cea.pipeline.decision import decide, survival_value
from cea.report.base import summary_text

REPO = Path(__file__).resolve().parents[1]
#: A WTP at which the break-even prices are positive on the bundled GB inputs.
HIGH_WTP = 450_000.0


@pytest.fixture(scope="module")
def inputs():
    return load_inputs(REPO / "inputs")


@pytest.fixture(scope="module")
def high(inputs):
    base = run_base_case(inputs, "GB", with_command_line(Scenario(), [], HIGH_WTP))
    return base, decide(base)


def inmb_with(inputs, sets, strategy, against):
    base = run_base_case(inputs, "GB", with_command_line(Scenario(), sets, HIGH_WTP))
    r = base.results.set_index("strategy")
    dq = r.loc[strategy, "qaly"] - r.loc[against, "qaly"]
    dc = r.loc[strategy, "cost"] - r.loc[against, "cost"]
    return HIGH_WTP * dq - dc, dc


def test_the_decision_is_the_highest_net_benefit(high):
    base, d = high
    inc = base.incremental.set_index("strategy")
    assert d.optimal == inc["nmb"].idxmax() == "none"
    assert {t.strategy for t in d.takes} == set(inc.index) - {"none"}
    assert all(t.inmb < 0 for t in d.takes)


@pytest.mark.parametrize("strategy", ["primary_ivig", "preemptive_scig"])
def test_the_break_even_ig_price_gives_inmb_zero(inputs, high, strategy):
    _, d = high
    t = next(t for t in d.takes if t.strategy == strategy)
    assert 0 < t.max_ig_price < t.ig_price
    inmb, dc = inmb_with(
        inputs, [f"{t.ig_price_parameter}={float(t.max_ig_price)!r}"], strategy, "none"
    )
    assert abs(inmb) <= 1e-9 * abs(dc)


def test_the_break_even_bispecific_share_gives_inmb_zero(inputs, high):
    base, d = high
    t = next(t for t in d.takes if t.strategy == "primary_ivig")
    assert 0 < t.max_bsab_share < 1
    item = f"c_bsab_{base.ptable.settings['model'].get('bsab_drug', 'teclistamab')}_month"
    price = float(base.ptable.df.loc[item, "value"])
    inmb, dc = inmb_with(
        inputs, [f"{item}={float(price * t.max_bsab_share)!r}"], "primary_ivig", "none"
    )
    assert abs(inmb) <= 1e-9 * abs(dc)


def test_the_break_even_hazard_ratio_gives_inmb_zero(inputs, high):
    _, d = high
    t = next(t for t in d.takes if t.strategy == "preemptive_scig")
    assert t.hr_threshold is not None
    inmb, dc = inmb_with(
        inputs, [f"{t.hr_parameter}={float(t.hr_threshold)!r}"], "preemptive_scig", "none"
    )
    assert abs(inmb) <= 1e-6 * abs(dc)


def test_summary_states_the_decision_units_and_what_is_discounted(inputs):
    base = run_base_case(inputs, "GB")
    text = summary_text(base, decide(base, hazard_ratio=False))
    assert "At GBP 20,000 per QALY the cost-effective strategy is No IgRT (none)" in text
    assert "even free Ig leaves it short" in text  # break-even price below 0 on these inputs
    assert "even a free bispecific leaves it short" in text
    assert "cost (GBP), QALY and LY discounted; severe infections and Ig grams undiscounted" in text
    assert "ND not dominated" in text and "ED extendedly dominated" in text
    assert "INMB GBP" in text and "GBP per QALY gained" in text


def test_the_bispecific_share_parameter_gives_inmb_zero_at_the_break_even_share(inputs, high):
    """The same break-even share, reached through p_bsab_price_paid (the list price kept)."""
    _, d = high
    t = next(t for t in d.takes if t.strategy == "primary_ivig")
    inmb, dc = inmb_with(
        inputs, [f"p_bsab_price_paid={float(t.max_bsab_share)!r}"], "primary_ivig", "none"
    )
    assert abs(inmb) <= 1e-9 * abs(dc)


def test_the_bispecific_share_scales_the_bispecific_cost_only(inputs):
    full = run_base_case(inputs, "GB").results.set_index("strategy")
    part = run_base_case(
        inputs, "GB", with_command_line(Scenario(), ["p_bsab_price_paid=0.25"], None)
    ).results.set_index("strategy")
    np.testing.assert_allclose(part["cost_bsab"], 0.25 * full["cost_bsab"], rtol=1e-12)
    other = [c for c in COST_CATEGORIES if c != "cost_bsab"]
    np.testing.assert_allclose(part[other], full[other], rtol=1e-12)
    np.testing.assert_allclose(part["qaly"], full["qaly"], rtol=1e-12)


def test_cost_split_adds_up_to_the_incremental_cost(inputs):
    """inc_cost_igrt + inc_cost_infections + inc_cost_added_survival = inc_cost, and each group
    is the difference of its categories between intervention and comparator (by hand for
    primary IVIG against none)."""
    base = run_base_case(inputs, "GB")
    c = base.comparisons.set_index("comparison")
    total = c[["inc_cost_igrt", "inc_cost_infections", "inc_cost_added_survival"]].sum(axis=1)
    np.testing.assert_allclose(total, c["inc_cost"], rtol=1e-12)
    r = base.results.set_index("strategy").select_dtypes("number")
    row = c.loc["primary_ivig vs none"]
    d = r.loc["primary_ivig"] - r.loc["none"]
    igrt = d[["cost_ig", "cost_ig_admin", "cost_scig_training", "cost_monitoring"]].sum()
    assert row["inc_cost_igrt"] == pytest.approx(igrt + d["cost_adverse_events"], rel=1e-12)
    assert row["inc_cost_infections"] == pytest.approx(
        d["cost_severe_infections"] + d["cost_nonsevere_infections"], rel=1e-12
    )
    assert row["inc_cost_added_survival"] == pytest.approx(d["cost_bsab"], rel=1e-12)
    assert row["inc_cost_infections"] < 0 < row["inc_cost_added_survival"]


def test_marginal_cost_effectiveness_of_survival_by_hand(inputs):
    """A month on teclistamab at list price: GBP 30,905 for u_on_bsab / 12 = 0.72 / 12 QALY,
    GBP 515,083.33 per QALY; at 40% of list, 206,033.33; off the bispecific no cost is
    modelled in the base case."""
    base = run_base_case(inputs, "GB")
    sv = survival_value(base)
    assert sv.cost_on_bsab == 30905 and sv.qaly_on_bsab == pytest.approx(0.06)
    assert sv.cost_per_qaly_on_bsab == pytest.approx(30905 / 0.06)
    assert sv.cost_off_bsab == 0 and sv.cost_per_qaly_off_bsab == 0
    cheap = run_base_case(
        inputs, "GB", with_command_line(Scenario(), ["p_bsab_price_paid=0.4"], None)
    )
    assert survival_value(cheap).cost_per_qaly_on_bsab == pytest.approx(0.4 * 30905 / 0.06)


def test_decision_without_bispecific_costs_equals_costs_minus_bispecific(inputs):
    """The second perspective (a rerun with include_bsab_costs = false) equals the base case's
    own outcomes with each strategy's bispecific cost taken off: same QALYs, cost - cost_bsab.
    At a WTP of 200,000 it changes the decision (preemptive SCIG becomes cost-effective)."""
    wtp = 200_000.0
    base = run_base_case(inputs, "GB", with_command_line(Scenario(), [], wtp))
    d = decide(base, hazard_ratio=False)
    r = base.results.set_index("strategy")
    nmb = wtp * r["qaly"] - (r["cost"] - r["cost_bsab"])
    assert d.without_bsab.optimal == nmb.idxmax() == "preemptive_scig"
    assert d.optimal == "none"
    for t in d.without_bsab.takes:
        assert t.inmb == pytest.approx(nmb[t.strategy] - nmb[t.against], rel=1e-9)
    text = summary_text(base, d)
    assert (
        "With bispecific costs during added survival excluded (NICE DSU 2014 discusses when this "
        "is defensible): at GBP 200,000 per QALY the cost-effective strategy is Preemptive SCIG"
    ) in text
    # a run that already excludes them says so instead
    nob = run_base_case(inputs, "GB", REPO / "inputs" / "scenarios" / "no_bsab_costs.toml")
    d2 = decide(nob, hazard_ratio=False)
    assert d2.without_bsab is None
    assert "This run has bispecific costs during added survival excluded" in summary_text(nob, d2)


def test_psa_without_bsab_by_hand():
    """Two draws, two strategies, WTP 100, net benefit with the bispecific's cost taken off:
    draw 0: A 100 x 1 - (50 - 40) = 90, B 100 x 1.2 - (80 - 10) = 50; draw 1: A 90,
    B 100 x 2.1 - 70 = 140. B is best in one draw of two and has the higher mean (95 > 90)."""
    from cea.pipeline.decision import psa_without_bsab

    cost = np.array([[50.0, 80.0], [50.0, 80.0]])  # draws x strategies (A, B)
    cost_bsab = np.array([[40.0, 10.0], [40.0, 10.0]])
    qaly = np.array([[1.0, 1.2], [1.0, 2.1]])
    optimal, p = psa_without_bsab(cost, cost_bsab, qaly, ["A", "B"], 100.0)
    # draw 0: A 90, B 50; draw 1: A 90, B 140; means A 90, B 95
    assert optimal == "B" and p == {"A": 0.5, "B": 0.5}
    # in blocks of one draw: the same
    assert psa_without_bsab(cost, cost_bsab, qaly, ["A", "B"], 100.0, block=1) == (optimal, p)


def test_psa_without_bsab_in_blocks_is_the_whole_arrays_formula():
    """Blocks of 7 draws over 50 draws and 3 strategies give the winner shares and the
    optimal strategy of the formula on the whole arrays."""
    from cea.pipeline.decision import psa_without_bsab

    rng = np.random.default_rng(4)
    cost, bsab, qaly = (
        rng.gamma(5, 1e4, (50, 3)),
        rng.gamma(2, 1e4, (50, 3)),
        rng.gamma(2, 1, (50, 3)),
    )
    values = 3e4 * qaly - (cost - bsab)
    want = {n: float(np.mean(values.argmax(axis=1) == k)) for k, n in enumerate("abc")}
    optimal, p = psa_without_bsab(cost, bsab, qaly, list("abc"), 3e4, block=7)
    assert p == want and optimal == "abc"[int(values.mean(axis=0).argmax())]
    assert sum(p.values()) == pytest.approx(1.0)


def test_the_break_even_share_does_not_depend_on_the_share_paid_now(inputs, high):
    """At p_bsab_price_paid = 0.95 (no IgRT still the cost-effective strategy) the break-even
    share of list is the same as at 1, and paying it gives INMB = 0."""
    _, d = high
    at_list = next(t for t in d.takes if t.strategy == "primary_ivig").max_bsab_share
    base = run_base_case(
        inputs, "GB", with_command_line(Scenario(), ["p_bsab_price_paid=0.95"], HIGH_WTP)
    )
    t = next(t for t in decide(base, hazard_ratio=False).takes if t.strategy == "primary_ivig")
    assert t.bsab_share == 0.95 and t.against == "none"
    assert t.max_bsab_share == pytest.approx(at_list, rel=1e-9)
    inmb, dc = inmb_with(
        inputs, [f"p_bsab_price_paid={float(t.max_bsab_share)!r}"], "primary_ivig", "none"
    )
    assert abs(inmb) <= 1e-9 * abs(dc)


def test_thresholds_outside_the_dsa_range_and_zero_bsab_cost_are_said_in_words(inputs):
    base = run_base_case(inputs, "GB", with_command_line(Scenario(), [], 400_000.0))
    text = summary_text(base, decide(base))
    assert (
        "below the lowest hazard ratio the inputs hold plausible (0.2 to 1, the DSA range)" in text
    )
    assert "below the lowest price the inputs hold plausible" in text
    nob = run_base_case(inputs, "GB", REPO / "inputs" / "scenarios" / "no_bsab_costs.toml")
    text = summary_text(nob, decide(nob, hazard_ratio=False))
    assert "no bispecific price: bispecific costs are excluded in this run" in text
    assert "it adds no time" not in text
    assert "(bispecific costs excluded in this run)" in text

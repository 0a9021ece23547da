"""The decision stated in words, and what it would take: each break-even value, put back into
the model, gives an INMB of zero against the cost-effective strategy."""

from __future__ import annotations

from pathlib import Path

import pytest

from cea.io.load import load_inputs
from cea.parameters.table import Scenario, with_command_line
from cea.pipeline.base import run_base_case
from cea.pipeline.decision import decide
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

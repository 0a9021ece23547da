"""The decision at the country's willingness to pay, and what it would take for each IgRT
strategy to be cost-effective against the strategy that is.

For each IgRT strategy s that is not the cost-effective strategy o, with INMB = WTP x dQALY - dC
(s against o, discounted) < 0:

* **the largest Ig price per gram** at which s breaks even: the Ig cost is linear in the price
  (grams x price), so with dIg the difference in the Ig cost that depends on s's price (IVIG or
  SCIG) at the current price p, the INMB is zero at p (1 + INMB / dIg); a negative break-even
  price means that even free Ig is not enough;
* **the largest share of the bispecific's list price** at which s breaks even, by the same
  linearity in the bispecific's cost: p0 (1 + INMB / dB), with p0 the share paid now
  (``p_bsab_price_paid``) and dB the difference in bispecific cost (s keeps patients alive, and
  on the bispecific, longer); below 0 no discount is enough;
* **the hazard ratio** of severe infection on IgRT at which s breaks even, found by rerunning
  the model (:func:`cea.pipeline.dsa.find_threshold`; the calibration is kept). A ratio above 1
  means IgRT would have to raise infections: fewer months alive on a bispecific that costs more
  per QALY than the threshold.

Beside it, two views of the add-on problem (Davis S, "Assessing technologies that are not
cost-effective at a zero price", NICE Decision Support Unit report, 2014):

* **the marginal cost-effectiveness of survival** (:func:`survival_value`): what one more month
  alive costs and yields, on the bispecific and off it, from the model's own inputs;
* **the decision with the bispecific's costs excluded** (:data:`WITHOUT_BSAB_LABEL`): the same
  run with ``include_bsab_costs = false``, stated beside the base case wherever a decision is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from cea.errors import CeaError
from cea.pipeline.base import BaseCase, build_base_case
from cea.pipeline.dsa import find_threshold

#: A month alive is a twelfth of a year (the utilities are per year).
MONTHS_PER_YEAR = 12.0
#: How the second perspective is labelled wherever a decision is stated.
WITHOUT_BSAB_LABEL = (
    "bispecific costs during added survival excluded (NICE DSU 2014 discusses when this is "
    "defensible)"
)


@dataclass
class WhatItTakes:
    """What would make ``strategy`` break even against ``against`` (see the module)."""

    strategy: str
    against: str
    inmb: float
    ig_price_parameter: str
    ig_price: float
    max_ig_price: float | None  # None: the Ig cost does not depend on that price
    max_bsab_share: float | None  # None: no difference in bispecific cost
    hr_parameter: str
    hr: float
    hr_threshold: float | None  # None: not computed, or no value breaks even
    notes: list[str] = field(default_factory=list)
    #: the share of the bispecific's list price paid now (p_bsab_price_paid)
    bsab_share: float = 1.0
    #: why no bispecific price can close the gap, when max_bsab_share is None
    bsab_reason: str = ""
    #: the DSA ranges of the Ig price and the hazard ratio: a threshold outside is flagged
    ig_price_range: tuple[float, float] | None = None
    hr_range: tuple[float, float] | None = None


@dataclass
class SurvivalValue:
    """One more month alive, per patient, at the model's inputs (undiscounted): its cost and
    QALYs on the bispecific (``c_bsab_<drug>_month`` x ``p_bsab_price_paid``, ``u_on_bsab``)
    and off it (``c_subsequent_therapy_month`` when the run includes it, ``u_off_bsab``).
    Infections, IgRT and monitoring are left out: they differ between strategies, the month
    itself does not."""

    cost_on_bsab: float
    qaly_on_bsab: float
    cost_off_bsab: float
    qaly_off_bsab: float

    @property
    def cost_per_qaly_on_bsab(self) -> float:
        return self.cost_on_bsab / self.qaly_on_bsab if self.qaly_on_bsab > 0 else math.inf

    @property
    def cost_per_qaly_off_bsab(self) -> float:
        return self.cost_off_bsab / self.qaly_off_bsab if self.qaly_off_bsab > 0 else math.inf


@dataclass
class Decision:
    wtp: float
    currency: str
    price_year: int
    optimal: str
    takes: list[WhatItTakes]
    survival: SurvivalValue | None = None
    #: the decision of the same run with the bispecific's costs excluded; None when the run
    #: excludes them already or when it was not asked for
    without_bsab: Decision | None = None
    #: results of that run (strategy -> cost, qaly) for the text beside the base case
    without_bsab_base: BaseCase | None = None


def survival_value(base: BaseCase) -> SurvivalValue:
    """The marginal cost and QALYs of a month alive on and off the bispecific (see
    :class:`SurvivalValue`)."""
    v = base.ptable.base().iloc[0]
    spec = base.spec
    bsab = v[f"c_bsab_{spec.bsab_drug}_month"] * v["p_bsab_price_paid"]
    return SurvivalValue(
        cost_on_bsab=float(bsab) if spec.include_bsab_costs else 0.0,
        qaly_on_bsab=float(v["u_on_bsab"]) / MONTHS_PER_YEAR,
        cost_off_bsab=float(v["c_subsequent_therapy_month"])
        if spec.include_subsequent_therapy
        else 0.0,
        qaly_off_bsab=float(v["u_off_bsab"]) / MONTHS_PER_YEAR,
    )


def psa_without_bsab(
    cost: np.ndarray,
    cost_bsab: np.ndarray,
    qaly: np.ndarray,
    names: list[str],
    wtp: float,
    block: int = 65_536,
) -> tuple[str, dict[str, float]]:
    """Over PSA draws ((D, K) arrays, strategies in ``names`` order): the strategy with the
    highest mean net monetary benefit with the bispecific's costs excluded (each draw's cost
    minus its bispecific cost; the QALYs do not depend on costs), and the share of draws in
    which each strategy has the highest net benefit. Worked in blocks of ``block`` draws, so
    its temporaries do not grow with the draws."""
    cost, cost_bsab, qaly = (np.asarray(a, float) for a in (cost, cost_bsab, qaly))
    D, K = cost.shape
    total, wins = np.zeros(K), np.zeros(K, dtype=np.int64)
    for lo in range(0, D, block):
        hi = min(D, lo + block)
        values = wtp * qaly[lo:hi] - (cost[lo:hi] - cost_bsab[lo:hi])
        total += values.sum(axis=0)
        wins += np.bincount(values.argmax(axis=1), minlength=K)
    p = {name: float(wins[k] / D) for k, name in enumerate(names)}
    return names[int(total.argmax())], p


def without_bsab_costs(base: BaseCase) -> BaseCase | None:
    """The same run (country, scenario, ``--set``, ``--wtp``, strategies) with the bispecific's
    costs excluded; None when they are excluded already."""
    if not base.spec.include_bsab_costs:
        return None
    sc = base.ptable.scenario
    settings = {
        **sc.settings,
        "model": {**sc.settings.get("model", {}), "include_bsab_costs": False},
    }
    alt = replace(sc, name=f"{sc.name}+no_bsab_costs", settings=settings)
    return build_base_case(base.inputs, base.country.code, alt, base.spec.strategy_names,
                           keep_trace=False, backend=base.backend)  # fmt: skip


def decide(base: BaseCase, hazard_ratio: bool = True, perspectives: bool = True) -> Decision:
    """The cost-effective strategy at the country's WTP (highest net monetary benefit) and,
    for every other IgRT strategy, what would make it break even against it. ``hazard_ratio``:
    also search the hazard ratio (a few model runs per strategy). ``perspectives``: also the
    decision with the bispecific's costs excluded (one more base case) and the marginal
    cost-effectiveness of survival."""
    c = base.country
    inc = base.incremental.set_index("strategy")
    optimal = str(inc.index[inc["optimal"].astype(bool)][0])
    res = base.results.set_index("strategy")
    strategies = {s.strategy: s for s in base.spec.strategies}
    takes = []
    for name, st in strategies.items():
        if name == optimal or not st.uses_igrt:
            continue
        a, o = res.loc[name], res.loc[optimal]
        inmb = c.wtp_per_qaly * (a["qaly"] - o["qaly"]) - (a["cost"] - o["cost"])
        param = "c_scig_per_g" if st.is_scig else "c_ivig_per_g"
        price = float(base.ptable.df.loc[param, "value"])
        same_route = strategies[optimal].uses_igrt and strategies[optimal].is_scig == st.is_scig
        d_ig = a["cost_ig"] - (o["cost_ig"] if same_route else 0.0)
        max_price = float(price * (1.0 + inmb / d_ig)) if d_ig > 0 and price > 0 else None
        # the bispecific cost is linear in the share of list price paid (p0 now): the INMB is
        # zero at p0 (1 + INMB / dB)
        p0 = float(base.ptable.df.loc["p_bsab_price_paid", "value"])
        d_bsab = a["cost_bsab"] - o["cost_bsab"]
        max_share = float(p0 * (1.0 + inmb / d_bsab)) if d_bsab > 0 else None
        if not base.spec.include_bsab_costs:
            bsab_reason = "bispecific costs are excluded in this run"
        elif p0 == 0:
            bsab_reason = "the share of list price paid is 0 already"
        elif a["ly"] - o["ly"] <= 0:
            bsab_reason = f"it adds no time alive (and on the bispecific) over {optimal}"
        else:
            bsab_reason = f"its bispecific cost is no higher than {optimal}'s"
        hr_param = st.hr_severe_parameter
        hr = float(base.ptable.df.loc[hr_param, "value"])
        take = WhatItTakes(name, optimal, float(inmb), param, price, max_price, max_share,
                           hr_param, hr, None, bsab_share=p0, bsab_reason=bsab_reason,
                           ig_price_range=base.ptable.dsa_range(param),
                           hr_range=base.ptable.dsa_range(hr_param))  # fmt: skip
        if hazard_ratio:
            try:
                th = find_threshold(base, hr_param, (name, optimal))
            except CeaError as exc:
                take.notes.append(f"hazard ratio: {exc}")
            else:
                roots = [r for r in th.roots if math.isfinite(r)]
                take.hr_threshold = float(min(roots, key=lambda r: abs(r - hr))) if roots else None
        takes.append(take)
    out = Decision(c.wtp_per_qaly, c.currency, c.price_year, optimal, takes)
    if perspectives:
        out.survival = survival_value(base)
        alt = without_bsab_costs(base)
        if alt is not None:
            out.without_bsab = decide(alt, hazard_ratio=False, perspectives=False)
            out.without_bsab_base = alt
    return out

"""The decision at the country's willingness to pay, and what it would take for each IgRT
strategy to be cost-effective against the strategy that is.

For each IgRT strategy s that is not the cost-effective strategy o, with INMB = WTP x dQALY - dC
(s against o, discounted) < 0:

* **the largest Ig price per gram** at which s breaks even: the Ig cost is linear in the price
  (grams x price), so with dIg the difference in the Ig cost that depends on s's price (IVIG or
  SCIG) at the current price p, the INMB is zero at p (1 + INMB / dIg); a negative break-even
  price means that even free Ig is not enough;
* **the largest share of the bispecific's list price** at which s breaks even, by the same
  linearity in the bispecific's cost: 1 + INMB / dB, with dB the difference in bispecific cost
  (s keeps patients alive, and on the bispecific, longer); below 0 no discount is enough;
* **the hazard ratio** of severe infection on IgRT at which s breaks even, found by rerunning
  the model (:func:`cea.pipeline.dsa.find_threshold`; the calibration is kept). A ratio above 1
  means IgRT would have to raise infections: fewer months alive on a bispecific that costs more
  per QALY than the threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cea.errors import CeaError
from cea.pipeline.base import BaseCase
from cea.pipeline.dsa import find_threshold


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


@dataclass
class Decision:
    wtp: float
    currency: str
    price_year: int
    optimal: str
    takes: list[WhatItTakes]


def decide(base: BaseCase, hazard_ratio: bool = True) -> Decision:
    """The cost-effective strategy at the country's WTP (highest net monetary benefit) and,
    for every other IgRT strategy, what would make it break even against it. ``hazard_ratio``:
    also search the hazard ratio (a few model runs per strategy)."""
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
        d_bsab = a["cost_bsab"] - o["cost_bsab"]
        max_share = float(1.0 + inmb / d_bsab) if d_bsab > 0 else None
        hr_param = st.hr_severe_parameter
        hr = float(base.ptable.df.loc[hr_param, "value"])
        take = WhatItTakes(name, optimal, float(inmb), param, price, max_price, max_share,
                           hr_param, hr, None)  # fmt: skip
        if hazard_ratio:
            try:
                th = find_threshold(base, hr_param, (name, optimal))
            except CeaError as exc:
                take.notes.append(f"hazard ratio: {exc}")
            else:
                roots = [r for r in th.roots if math.isfinite(r)]
                take.hr_threshold = float(min(roots, key=lambda r: abs(r - hr))) if roots else None
        takes.append(take)
    return Decision(c.wtp_per_qaly, c.currency, c.price_year, optimal, takes)

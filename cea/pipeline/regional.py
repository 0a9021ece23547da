"""The regional comparison: the base case of every country (one calibrated run each, and one
cheap rerun for the price slopes), then the regional tables of :mod:`cea.analysis.regional`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cea.analysis.outcomes import validate_outcomes
from cea.analysis.regional import (
    PRICE_ITEMS,
    CountryResult,
    comparison_rows,
    optimal_rows,
    strategy_rows,
    threshold_rows,
)
from cea.errors import CeaError
from cea.igrt.model import run_model
from cea.igrt.spec import ModelSpec, apply_discount_settings, build_spec
from cea.io.inputs import Inputs
from cea.io.load import load_inputs
from cea.parameters.table import Scenario, build_parameter_table, normalize_country
from cea.pipeline.base import as_scenario, comparisons_from_settings


def run_country(
    inputs: Inputs, code: str, scenario: Scenario, backend: str = "numpy"
) -> CountryResult:
    """Base case of one country (one calibrated run) and the price slopes (one cheap rerun).

    Errors are re-raised naming the country; a price item that the model needs and the
    country's price file lacks is named with the file.
    """
    try:
        ptable = build_parameter_table(inputs, code, scenario)
        spec = apply_discount_settings(build_spec(ptable, inputs), ptable.settings)
        base = ptable.base()
        res = run_model(base, spec, backend=backend)
        slopes, cost_zero = _price_slopes(base, spec, res.calibrated, backend)
    except CeaError as exc:
        raise _country_error(inputs, code, exc) from None
    outcomes = validate_outcomes(res.outcomes, f"country {code}").set_index("strategy", drop=False)
    outcomes.index.name = None
    return CountryResult(
        ptable=ptable,
        spec=spec,
        outcomes=outcomes,
        calibrated=res.calibrated,
        comparisons=comparisons_from_settings(ptable.settings, spec),
        slopes=slopes,
        cost_at_zero_price=cost_zero,
    )


def _price_slopes(
    base: pd.DataFrame, spec: ModelSpec, calibrated: pd.DataFrame, backend: str
) -> tuple[pd.DataFrame, pd.Series]:
    """d cost / d price of each PRICE_ITEMS item per strategy, from one stacked rerun.

    Rows: every price at 0, then each item at 1 with the others at 0. Cost is linear in each
    price, so cost(item = 1) - cost(all 0) is the slope exactly (to float rounding).
    """
    items = [i for i in PRICE_ITEMS.values() if i in base.columns]
    rows = [base.iloc[0].copy() for _ in range(len(items) + 1)]
    for r in rows:
        r[items] = 0.0
    for k, item in enumerate(items, start=1):
        rows[k][item] = 1.0
    draws = pd.DataFrame(rows, index=pd.Index(range(len(rows)), name="draw"))
    cal = pd.DataFrame(
        np.repeat(calibrated.to_numpy(), len(rows), axis=0),
        columns=calibrated.columns,
        index=draws.index,
    )
    out = run_model(draws, spec, calibrated=cal, backend=backend).outcomes.pivot(
        index="strategy", columns="draw", values="cost"
    )
    out = out.loc[spec.strategy_names]
    slopes = pd.DataFrame({item: out[k] - out[0] for k, item in enumerate(items, start=1)})
    return slopes, out[0]


def _country_error(inputs: Inputs, code: str, exc: CeaError) -> CeaError:
    msg = str(exc)
    prices = inputs.prices.get(code)
    if prices is not None:
        own = set(prices.df["item"])
        others = {c: set(t.df["item"]) for c, t in inputs.prices.items() if c != code}
        for item in sorted(set().union(*others.values()) - own) if others else []:
            if f"'{item}'" in msg:
                n = sum(item in s for s in others.values())
                return CeaError(
                    f"country {code}: price item '{item}' is missing from {prices.path} "
                    f"(the model needs it; {n} other countr{'y prices' if n == 1 else 'ies price'} it)"
                )
        if "'c_" in msg and f"country {code}" not in msg:
            return CeaError(f"country {code} ({prices.path}): {msg}")
    if f"country {code}" in msg:
        return CeaError(msg)
    return CeaError(f"country {code}: {msg}")


@dataclass
class RegionalResult:
    """Everything ``cea compare`` produces, in memory."""

    inputs: Inputs
    scenario: Scenario
    countries: dict[str, CountryResult]
    regional: pd.DataFrame
    strategies: pd.DataFrame
    optimal: pd.DataFrame
    thresholds: pd.DataFrame
    seconds: float
    warnings: list[str] = field(default_factory=list)


def parse_countries(text: str | None, inputs: Inputs) -> list[str]:
    """'all' (or empty) -> every country of countries.csv; else a comma-separated ISO2 list."""
    known = inputs.country_codes()
    if text is None or text.strip().lower() in ("", "all"):
        return known
    codes: list[str] = []
    for part in text.split(","):
        if not part.strip():
            continue
        code = normalize_country(inputs, part, " in --countries")
        if code in codes:
            raise CeaError(f"country '{code}' is listed twice in --countries")
        codes.append(code)
    if not codes:
        raise CeaError("--countries lists no country")
    return codes


def compare_countries(
    inputs_dir: Path | str = "inputs",
    countries: str | list[str] | None = "all",
    scenario: Scenario | Path | str | None = None,
    backend: str = "numpy",
) -> RegionalResult:
    """Run the base case of each country and build the regional tables."""
    t0 = time.perf_counter()
    inputs = inputs_dir if isinstance(inputs_dir, Inputs) else load_inputs(inputs_dir)
    scenario = as_scenario(scenario)
    codes = parse_countries(
        countries if isinstance(countries, str) or countries is None else ",".join(countries),
        inputs,
    )
    warnings = []
    priced = sorted(n for n in scenario.parameters if n.startswith("c_"))
    if priced:
        warnings.append(
            f"scenario '{scenario.name}' overrides {', '.join(priced)}: the same number is used in every "
            "country's own currency"
        )
    runs = {code: run_country(inputs, code, scenario, backend) for code in codes}
    regional = pd.concat([comparison_rows(r) for r in runs.values()], ignore_index=True)
    strategies = pd.concat([strategy_rows(r) for r in runs.values()], ignore_index=True)
    optimal = pd.concat([optimal_rows(r) for r in runs.values()], ignore_index=True)
    thr = [threshold_rows(r) for r in runs.values()]
    thresholds = pd.concat(thr, ignore_index=True) if thr else pd.DataFrame()
    years = {(r.country.price_year, r.country.macro_year) for r in runs.values()}
    for py, my in sorted(years):
        if py != my:
            warnings.append(
                f"price year {py} differs from macro year {my}: US$ and I$ use {my} rates on {py} prices"
            )
    return RegionalResult(
        inputs=inputs,
        scenario=scenario,
        countries=runs,
        regional=regional,
        strategies=strategies,
        optimal=optimal,
        thresholds=thresholds,
        seconds=time.perf_counter() - t0,
        warnings=warnings,
    )

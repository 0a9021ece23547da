"""One parameter table per country and scenario, and its three readers.

``parameters.csv`` (clinical, utility, resource use) + ``prices/<ISO2>.csv`` (unit costs,
inflated to the country's price year with its own CPI) + ``country_overrides.csv`` + the
scenario's overrides  ->  :class:`ParameterTable`.

* the base case reads ``value``;
* the DSA reads ``low``/``high`` (or the 2.5/97.5 percentiles of the distribution);
* the PSA draws from the distribution built from ``value`` and ``se`` (centre = value).

Values stay in the units of the input files (rates per month, times in months...); the
model converts them with :attr:`ParameterTable.unit_scale`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cea.errors import CeaError, InputFileError
from cea.io.inputs import (
    RATE_UNITS,
    TIME_UNITS,
    Inputs,
    check_settings,
    parse_wtp_alternatives,
    read_toml,
)
from cea.parameters import distributions as dist

TABLE_COLUMNS = [
    "parameter",
    "value",
    "se",
    "low",
    "high",
    "dist",
    "unit",
    "category",
    "source",
    "evidence",
    "origin",
    "price_year",
    "inflation_factor",
    "note",
]


@dataclass(frozen=True)
class Country:
    """A country's decision context, with the macro-economic series looked up for ``macro_year``."""

    code: str
    name: str
    currency: str
    price_year: int
    macro_year: int
    fx_lcu_per_usd: float
    ppp_lcu_per_intl_dollar: float
    gdp_per_capita_usd: float
    wtp_per_qaly: float
    wtp_basis: str
    wtp_alternatives: tuple[float, ...]
    discount_rate_costs: float
    discount_rate_effects: float
    scig_conversion: float
    population_eligible_annual: float | None
    life_table_sex: str
    mx_by_age: np.ndarray = field(repr=False)

    @property
    def gdp_per_capita_lcu(self) -> float:
        return self.gdp_per_capita_usd * self.fx_lcu_per_usd


@dataclass
class Scenario:
    """A named set of overrides read from a TOML file (or the empty base case)."""

    name: str = "base"
    description: str = "Base case"
    settings: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    path: str | None = None
    sha256: str | None = None


SCENARIO_KEYS = ("name", "description", "settings", "parameters")
PARAMETER_OVERRIDE_KEYS = ("value", "se", "low", "high", "dist")


def load_scenario(path: Path | str) -> Scenario:
    """Read a scenario TOML: ``name``, ``description`` (one-line rationale), ``[settings.run]``,
    ``[settings.model]`` and ``[parameters]`` (``name = value`` or ``name = {value=..., low=...}``)."""
    content, sha = read_toml(path)
    for key in content:
        if key not in SCENARIO_KEYS:
            raise InputFileError(path, f"unknown key '{key}' (known: {', '.join(SCENARIO_KEYS)})")
    if not str(content.get("description", "")).strip():
        raise InputFileError(path, "needs a one-line 'description' giving the scenario's rationale")
    settings = content.get("settings", {})
    check_settings(settings, str(path))
    params = content.get("parameters", {})
    if not isinstance(params, dict):
        raise InputFileError(path, "[parameters] must be a table")
    for name, spec in params.items():
        if isinstance(spec, dict):
            for k, v in spec.items():
                if k not in PARAMETER_OVERRIDE_KEYS:
                    raise InputFileError(
                        path, f"unknown key '{k}' for parameter '{name}'", column=name
                    )
                if k != "dist" and not _is_number(v):
                    raise InputFileError(path, f"'{name}.{k}' must be a number", column=name)
        elif not _is_number(spec):
            raise InputFileError(
                path, f"parameter '{name}' must be a number or a table", column=name
            )
    return Scenario(
        name=str(content.get("name", Path(path).stem)),
        description=str(content["description"]).strip(),
        settings=settings,
        parameters=params,
        path=str(path),
        sha256=sha,
    )


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def merged_settings(inputs: Inputs, scenario: Scenario) -> dict:
    """Settings from settings.toml with the scenario's settings laid over them."""
    out = {sec: dict(vals) for sec, vals in inputs.settings.items()}
    for sec, vals in scenario.settings.items():
        out.setdefault(sec, {}).update(vals)
    return out


def load_country(inputs: Inputs, code: str) -> Country:
    """The country's row of countries.csv with PPP, exchange rate, GDP and life table."""
    countries = inputs.countries.df.set_index("country")
    if code not in countries.index:
        raise CeaError(f"unknown country '{code}' (known: {', '.join(countries.index)})")
    r = countries.loc[code]
    macro = inputs.macro.df
    m = macro[(macro["country_iso2"] == code) & (macro["year"] == r["macro_year"])]
    if m.empty:
        raise InputFileError(
            inputs.macro.path,
            f"no row for country {code} and macro_year {r['macro_year']} (countries.csv)",
        )
    m = m.iloc[0]
    for col in ("ppp_lcu_per_intl_dollar", "usd_exchange_rate_lcu_per_usd", "gdp_per_capita_usd"):
        if m[col] is None or not math.isfinite(m[col]):
            raise InputFileError(
                inputs.macro.path,
                f"{code} {r['macro_year']}: value missing",
                row=int(m["_row"]),
                column=col,
            )
    fx = float(m["usd_exchange_rate_lcu_per_usd"])
    gdp_lcu = float(m["gdp_per_capita_usd"]) * fx
    if r["wtp_basis"] == "gdp_multiple":
        wtp = float(r["wtp_gdp_multiple"]) * gdp_lcu
    else:
        wtp = float(r["wtp_per_qaly"])
    alts = tuple(
        v if kind == "value" else v * gdp_lcu
        for kind, v in parse_wtp_alternatives(r["wtp_alternatives"])
    )
    lt = inputs.life_tables.df
    sel = lt[(lt["country_iso2"] == code) & (lt["sex"] == r["life_table_sex"])].sort_values("age")
    if sel.empty:
        raise InputFileError(
            inputs.life_tables.path, f"no rows for country {code}, sex {r['life_table_sex']}"
        )
    ages = sel["age"].to_numpy()
    if not np.array_equal(ages, np.arange(ages[0], ages[-1] + 1)):
        raise InputFileError(
            inputs.life_tables.path, f"{code} {r['life_table_sex']}: ages are not consecutive"
        )
    # hazard by single year of age from 0; ages below the table's first age take its first value
    mx = np.concatenate([np.full(ages[0], sel["mx"].iloc[0]), sel["mx"].to_numpy(dtype=float)])
    pop = r["population_eligible_annual"]
    return Country(
        code=code,
        name=r["name"],
        currency=r["currency"],
        price_year=int(r["price_year"]),
        macro_year=int(r["macro_year"]),
        fx_lcu_per_usd=fx,
        ppp_lcu_per_intl_dollar=float(m["ppp_lcu_per_intl_dollar"]),
        gdp_per_capita_usd=float(m["gdp_per_capita_usd"]),
        wtp_per_qaly=wtp,
        wtp_basis=r["wtp_basis"],
        wtp_alternatives=alts,
        discount_rate_costs=float(r["discount_rate_costs"]),
        discount_rate_effects=float(r["discount_rate_effects"]),
        scig_conversion=float(r["scig_conversion"]),
        population_eligible_annual=None
        if pop is None or (isinstance(pop, float) and math.isnan(pop))
        else float(pop),
        life_table_sex=r["life_table_sex"],
        mx_by_age=mx,
    )


def inflation_factor(
    inputs: Inputs, code: str, from_year: int, to_year: int, *, row: int | None = None, file=None
) -> float:
    """cpi_index(to_year) / cpi_index(from_year) from the country's own CPI series."""
    if from_year == to_year:
        return 1.0
    cpi = inputs.cpi.df
    ser = cpi[cpi["country_iso2"] == code].set_index("year")["cpi_index"]
    for y in (from_year, to_year):
        if y not in ser.index or ser.loc[y] is None or not math.isfinite(ser.loc[y]):
            raise InputFileError(
                file or inputs.cpi.path,
                f"no CPI for {code} in {y} (cpi.csv) to inflate prices from {from_year} to {to_year}",
                row=row,
                column="price_year",
            )
    return float(ser.loc[to_year] / ser.loc[from_year])


@dataclass
class ParameterTable:
    """All parameters of one country and scenario, in input units.

    ``df`` columns: see :data:`TABLE_COLUMNS`; index is the parameter name.
    """

    df: pd.DataFrame
    country: Country
    settings: dict
    scenario: Scenario

    @property
    def names(self) -> list[str]:
        return list(self.df.index)

    def base(self) -> pd.DataFrame:
        """The base case as a one-row draws table (index ``draw`` = 0)."""
        return pd.DataFrame(
            [self.df["value"].astype(float).to_numpy()],
            columns=self.df.index,
            index=pd.Index([0], name="draw"),
        )

    def distribution(self, name: str) -> dist.Distribution:
        return _row_distribution(name, self.df.loc[name])

    def dsa_range(self, name: str) -> tuple[float, float]:
        """low/high from the table, else the 2.5 and 97.5 percentiles of the distribution."""
        r = self.df.loc[name]
        low, high = _nan_none(r["low"]), _nan_none(r["high"])
        if low is not None and high is not None:
            return float(low), float(high)
        d = self.distribution(name)
        if isinstance(d, dist.Fixed):
            return float(r["value"]), float(r["value"])
        return dist.percentile_range(d)

    @property
    def unit_scale(self) -> dict[str, float]:
        """Multiply a value by this to get rates per year and times in years."""
        out = {}
        for name, unit in self.df["unit"].items():
            u = str(unit).strip().lower()
            if name.startswith("r_") and u in RATE_UNITS:
                out[name] = RATE_UNITS[u]
            elif name.startswith("t_") and u in TIME_UNITS:
                out[name] = TIME_UNITS[u]
            else:
                out[name] = 1.0
        return out


def _row_distribution(name: str, r: pd.Series) -> dist.Distribution:
    """The PSA distribution of one table row (centre = value)."""
    return dist.build(
        r["dist"],
        r["value"],
        se=_nan_none(r["se"]),
        low=_nan_none(r["low"]),
        high=_nan_none(r["high"]),
        name=name,
    )


def _scaled(v, factor: float):
    """A price cell times the inflation factor; blank stays blank."""
    v = _nan_none(v)
    return None if v is None else v * factor


def _nan_none(v):
    if v is None:
        return None
    try:
        return None if math.isnan(float(v)) else float(v)
    except (TypeError, ValueError):
        return None


def check_distributions(table) -> None:
    """Every non-dirichlet row of ``parameters.csv`` gives a valid distribution from its
    ``value`` and ``se`` (or ``low``/``high``); else the error names the file, row and ``se``."""
    for _, r in table.df.iterrows():
        if r["dist"] == "dirichlet":
            continue
        try:
            dist.build(
                r["dist"], r["value"], se=r["se"], low=r["low"], high=r["high"], name=r["parameter"]
            )
        except ValueError as exc:
            raise table.error(str(exc), row=int(r["_row"]), column="se") from None


def build_parameter_table(
    inputs: Inputs, country_code: str, scenario: Scenario | None = None
) -> ParameterTable:
    """Merge clinical parameters, the country's prices and overrides, and the scenario."""
    check_distributions(inputs.parameters)
    scenario = scenario or Scenario()
    settings = merged_settings(inputs, scenario)
    country = load_country(inputs, country_code)
    rows = []
    p = inputs.parameters.df
    for _, r in p.iterrows():
        rows.append(
            {
                "parameter": r["parameter"],
                "value": r["value"],
                "se": r["se"],
                "low": r["low"],
                "high": r["high"],
                "dist": r["dist"],
                "unit": r["unit"],
                "category": r.get("category", "") or "",
                "source": r["source"],
                "evidence": r["evidence"],
                "origin": str(inputs.parameters.path),
                "price_year": None,
                "inflation_factor": None,
                "note": r.get("note", ""),
            }
        )
    prices = inputs.prices[country_code]
    for _, r in prices.df.iterrows():
        f = inflation_factor(
            inputs,
            country_code,
            int(r["price_year"]),
            country.price_year,
            row=int(r["_row"]),
            file=prices.path,
        )
        rows.append(
            {
                "parameter": r["item"],
                "value": r["value"] * f,
                "se": _scaled(r["se"], f),
                "low": _scaled(r["low"], f),
                "high": _scaled(r["high"], f),
                "dist": r["dist"],
                "unit": f"{country.currency} {r['unit']}",
                "category": "prices",
                "source": r["source"],
                "evidence": r["evidence"],
                "origin": str(prices.path),
                "price_year": int(r["price_year"]),
                "inflation_factor": f,
                "note": r.get("note", ""),
            }
        )
    rows.append(
        {
            "parameter": "q_scig_conversion",
            "value": country.scig_conversion,
            "se": None,
            "low": 1.0,
            "high": max(1.53, country.scig_conversion),
            "dist": "fixed",
            "unit": "ratio",
            "category": "ig_dose",
            "source": "countries.csv (US label 1.37:1, EU 1:1; AJMC Suppl 2016;22(15)); 1.53 before 2015",
            "evidence": "S",
            "origin": str(inputs.countries.path),
            "price_year": None,
            "inflation_factor": None,
            "note": "SCIG weekly grams = IVIG-equivalent dose x this factor",
        }
    )
    df = pd.DataFrame(rows, columns=TABLE_COLUMNS).set_index("parameter", drop=False)
    df.index.name = None
    if inputs.overrides is not None:
        ov = inputs.overrides.df
        for _, r in ov[ov["country"] == country_code].iterrows():
            _override(
                df,
                r["parameter"],
                {"value": r["value"]},
                f"{inputs.overrides.path} row {r['_row']}",
                r["source"],
                r["evidence"],
            )
    for name, spec in scenario.parameters.items():
        if name not in df.index:
            raise InputFileError(
                scenario.path or "scenario", f"unknown parameter '{name}'", column=name
            )
        values = spec if isinstance(spec, dict) else {"value": spec}
        _override(df, name, values, f"scenario {scenario.name}", "scenario override", "E")
    for name, r in df.iterrows():
        try:
            _row_distribution(name, r)
        except ValueError as exc:
            raise CeaError(f"parameter '{name}' ({r['origin']}): {exc}") from None
    return ParameterTable(df=df, country=country, settings=settings, scenario=scenario)


def _override(
    df: pd.DataFrame, name: str, values: dict, origin: str, source: str, evidence: str
) -> None:
    for k, v in values.items():
        df.loc[name, k] = v
    value = float(df.loc[name, "value"])
    low, high = _nan_none(df.loc[name, "low"]), _nan_none(df.loc[name, "high"])
    if "low" not in values and low is not None and value < low:
        df.loc[name, "low"] = value
    if "high" not in values and high is not None and value > high:
        df.loc[name, "high"] = value
    if name.startswith(("p_", "u_")) and not 0 <= value <= 1:
        raise CeaError(f"{origin}: {name} = {value:g} is outside [0, 1]")
    if not name.startswith(("q_", "k_")) and value < 0:
        raise CeaError(f"{origin}: {name} = {value:g} is negative")
    df.loc[name, "origin"] = origin
    df.loc[name, "source"] = f"{source} (was: {df.loc[name, 'source']})"
    df.loc[name, "evidence"] = evidence

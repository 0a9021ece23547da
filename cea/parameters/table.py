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
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from cea.errors import CeaError, InputFileError, did_you_mean
from cea.io.inputs import (
    RATE_UNITS,
    TIME_UNITS,
    Inputs,
    check_settings,
    parse_wtp_alternatives,
    read_toml,
)
from cea.parameters import distributions as dist
from cea.parameters.designs import range_problem

TABLE_COLUMNS = [
    "parameter",
    "label",
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
    #: yearly growth of the eligible population (budget impact); 0 when countries.csv has none
    population_growth_annual: float
    mx_by_age: np.ndarray = field(repr=False)

    @property
    def gdp_per_capita_lcu(self) -> float:
        return self.gdp_per_capita_usd * self.fx_lcu_per_usd


@dataclass
class Scenario:
    """A named set of overrides read from a TOML file (or the empty base case), plus the
    command line's ``--set name=value`` (``sets``, applied after the file's parameters) and
    ``--wtp`` (``wtp``, the country's willingness to pay per QALY)."""

    name: str = "base"
    description: str = "Base case"
    settings: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    path: str | None = None
    sha256: str | None = None
    sets: dict = field(default_factory=dict)
    wtp: float | None = None


def with_command_line(
    scenario: Scenario, sets: Sequence[str] = (), wtp: float | None = None
) -> Scenario:
    """The scenario with ``--set name=value`` (repeatable) and ``--wtp`` applied on top; its
    name gains ``+set`` so that its results are never taken for the scenario's own. Each value
    must be a finite number (the parameter itself is checked against the table when it is
    built, exactly as a scenario's)."""
    if not sets and wtp is None:
        return scenario
    values: dict[str, float] = {}
    for item in sets:
        name, sep, text = str(item).partition("=")
        name = name.strip()
        if not sep or not name:
            raise CeaError(f"--set {item!r}: write it as name=value, e.g. --set c_ivig_per_g=30")
        try:
            value = float(text)
        except ValueError:
            raise CeaError(f"--set {name}: '{text.strip()}' is not a number") from None
        if not math.isfinite(value):
            raise CeaError(f"--set {name}: '{text.strip()}' is not a finite number")
        if name in values:
            raise CeaError(f"--set {name} is given twice")
        values[name] = value
    if wtp is not None and not (math.isfinite(wtp) and wtp > 0):
        raise CeaError(f"--wtp must be a number > 0, got {wtp!r}")
    shown = [f"--set {n}={v:g}" for n, v in values.items()]
    if wtp is not None:
        shown.append(f"--wtp {wtp:g}")
    return replace(
        scenario,
        name=f"{scenario.name}+set",
        description=f"{scenario.description}; on the command line: {' '.join(shown)}",
        sets={**scenario.sets, **values},
        wtp=scenario.wtp if wtp is None else float(wtp),
    )


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


def scenario_path(text: str, folder: Path | str) -> Path:
    """The file of ``--scenario``: a path to a TOML file, or a bare name of a file in
    ``folder`` (``<inputs>/scenarios``). An unknown bare name is refused in one line that lists
    the names there."""
    path = Path(text)
    if path.is_file() or path.suffix or len(path.parts) > 1:
        return path  # a path: load_scenario reports a missing file
    candidate = Path(folder) / f"{text}.toml"
    if candidate.is_file():
        return candidate
    names = sorted(p.stem for p in Path(folder).glob("*.toml")) if Path(folder).is_dir() else []
    listed = f"in {folder}: {', '.join(names)}" if names else f"{folder} holds no scenario file"
    raise CeaError(f"unknown scenario '{text}'{did_you_mean(text, names)} ({listed})")


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def merged_settings(inputs: Inputs, scenario: Scenario) -> dict:
    """Settings from settings.toml with the scenario's settings laid over them."""
    out = {sec: dict(vals) for sec, vals in inputs.settings.items()}
    for sec, vals in scenario.settings.items():
        out.setdefault(sec, {}).update(vals)
    return out


#: Codes people use that are not the ISO 3166-1 alpha-2 code of the country (ISO reserves UK
#: for the United Kingdom, whose code is GB; EL is the EU's code for Greece, GR).
NOT_ISO_CODES = {"UK": "GB", "EL": "GR"}


def normalize_country(inputs: Inputs, code: str, where: str = "") -> str:
    """An ISO2 code of countries.csv, given in any case; anything else is refused in one line
    that suggests the country meant (a common non-ISO code, a country name, a near miss)."""
    countries = inputs.countries.df
    known = list(countries["country"])
    text = str(code).strip()
    if text.upper() in known:
        return text.upper()
    names = dict(zip(countries["country"], countries["name"], strict=True))
    by_name = {str(n).lower(): c for c, n in names.items()}
    meant = NOT_ISO_CODES.get(text.upper()) or by_name.get(text.lower())
    if meant in names:
        hint = f"; did you mean {meant} ({names[meant]})?"
    else:
        hint = did_you_mean(text, known)
    raise CeaError(f"unknown country '{text}'{where}{hint} (known: {', '.join(known)})")


def load_country(inputs: Inputs, code: str) -> Country:
    """The country's row of countries.csv with PPP, exchange rate, GDP and life table."""
    code = normalize_country(inputs, code)
    countries = inputs.countries.df.set_index("country")
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
    growth = r.get("population_growth_annual")
    growth = 0.0 if growth is None or not math.isfinite(float(growth)) else float(growth)
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
        population_growth_annual=growth,
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


def check_distributions(table, name_col: str = "parameter") -> None:
    """Every non-dirichlet row of ``parameters.csv`` (or of a price file, ``name_col="item"``)
    gives a valid distribution from its ``value`` and ``se`` (or ``low``/``high``); else the
    error names the file, row and ``se``."""
    for _, r in table.df.iterrows():
        if r["dist"] == "dirichlet":
            continue
        try:
            dist.build(
                r["dist"], r["value"], se=r["se"], low=r["low"], high=r["high"], name=r[name_col]
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
    # the prices as entered (the inflation factor below scales a valid distribution into a
    # valid one), so that an error names the price file's row
    check_distributions(inputs.prices[country.code], name_col="item")
    if scenario.wtp is not None:
        country = replace(country, wtp_per_qaly=scenario.wtp, wtp_basis="--wtp")
    country_code = country.code
    rows = []
    p = inputs.parameters.df
    for _, r in p.iterrows():
        rows.append(
            {
                "parameter": r["parameter"],
                "label": r.get("label", "") or "",
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
                "label": r.get("label", "") or "",
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
            "label": "SCIG to IVIG dose conversion factor",
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
                scenario.path or "scenario",
                f"unknown parameter '{name}'{did_you_mean(name, df.index)}",
                column=name,
            )
        values = spec if isinstance(spec, dict) else {"value": spec}
        _override(
            df, name, values, f"scenario {scenario.name}", "scenario override", "E",
            country.price_year,
        )  # fmt: skip
    for name, value in scenario.sets.items():
        if name not in df.index:
            raise CeaError(
                f"--set {name}: unknown parameter{did_you_mean(name, df.index)} (`cea params` "
                "lists them)"
            )
        _override(
            df,
            name,
            {"value": value},
            f"command line: --set {name}={value:g}",
            "--set on the command line",
            "E",
            country.price_year,
        )
    for name, r in df.iterrows():
        try:
            _row_distribution(name, r)
        except ValueError as exc:
            raise CeaError(f"{r['origin']}: {exc}") from None  # exc names the parameter
    return ParameterTable(df=df, country=country, settings=settings, scenario=scenario)


def _override(
    df: pd.DataFrame,
    name: str,
    values: dict,
    origin: str,
    source: str,
    evidence: str,
    price_year: int | None = None,
) -> None:
    """Apply an override to row ``name``. A value given without its range that lands on or
    beyond the row's low/high moves the range with it: a lognormal row's range is scaled by
    new value / old value (its log-scale spread kept: the lognormal needs low < value < high),
    any other row's bound is moved to the value. A price is entered in the country's price
    year (``price_year``): the row records that year and an inflation factor of 1."""
    old = float(df.loc[name, "value"])
    for k, v in values.items():
        df.loc[name, k] = v
    value = float(df.loc[name, "value"])
    low, high = _nan_none(df.loc[name, "low"]), _nan_none(df.loc[name, "high"])
    ranged = low is not None and high is not None and "low" not in values and "high" not in values
    lognormal = str(df.loc[name, "dist"]).strip().lower() == "lognormal"
    if ranged and lognormal and old > 0 and value > 0 and not low < value < high:
        df.loc[name, "low"], df.loc[name, "high"] = low * value / old, high * value / old
    else:
        if "low" not in values and low is not None and value < low:
            df.loc[name, "low"] = value
        if "high" not in values and high is not None and value > high:
            df.loc[name, "high"] = value
    if price_year is not None and df.loc[name, "price_year"] is not None:
        if not pd.isna(df.loc[name, "price_year"]) and "value" in values:
            df.loc[name, "price_year"] = price_year
            df.loc[name, "inflation_factor"] = 1.0
    problem = range_problem(name, value, value)
    if problem is not None:
        raise CeaError(f"{origin}: {name} = {value:g}: {problem}")
    df.loc[name, "origin"] = origin
    df.loc[name, "source"] = f"{source} (was: {df.loc[name, 'source']})"
    df.loc[name, "evidence"] = evidence

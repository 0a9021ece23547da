"""PSA draws: one seed, common random numbers across countries.

Every parameter row gives its distribution through ``ParameterTable.distribution`` (method of
moments from ``value`` and ``se`` or the 95% range, so the centre is the base-case value).
Parameters are split into

- **clinical** (every row not in ``category = prices``): drawn once and shared by every
  country of a run, from the distributions of ``parameters.csv`` with the scenario applied
  but without the country overrides, with the optional Gaussian copula of
  ``inputs/correlations.csv``. A country whose override changes a parameter keeps the same
  random numbers through its own quantile function: x_c = F_c^-1(F_ref(x_ref)) (common
  random numbers; a fixed override, such as body weight, is simply the country's value);
- **prices** (``prices/<ISO2>.csv``): drawn per country, independently.

Seeding: one integer seed -> :class:`numpy.random.SeedSequence` children identified by a
``spawn_key``: ``(0,)`` for the clinical stream and ``(1, k)`` for a country's prices, where
k is the ISO2 code read as a base-256 integer ("GB" -> 0x4742). A country's streams
therefore depend only on the seed and its own code, never on which other countries are in
the run or their order: ``--country GB`` and ``--countries all`` give GB the same draws.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from cea.errors import CeaError
from cea.io.inputs import Inputs
from cea.parameters import distributions as dist
from cea.parameters.table import ParameterTable, Scenario, build_parameter_table

#: The category of country price rows (drawn per country); every other row is clinical.
PRICE_CATEGORY = "prices"


#: spawn_key streams of the run's SeedSequence.
CLINICAL_STREAM, PRICE_STREAM = 0, 1


#: Fewest draws a PSA accepts (variances and percentiles need a few).
MIN_DRAWS = 2


def country_key(code: str) -> int:
    """A country's stable stream number: its ISO2 code read as a base-256 integer ("GB" -> 18242)."""
    try:
        raw = code.upper().encode("ascii")
    except UnicodeEncodeError:
        raise CeaError(f"country code {code!r} must be ASCII") from None
    return int.from_bytes(raw, "big")


def clinical_seed(seed: int) -> np.random.SeedSequence:
    """SeedSequence of the clinical draws shared by every country."""
    return np.random.SeedSequence(check_seed(seed), spawn_key=(CLINICAL_STREAM,))


def price_seed(seed: int, code: str) -> np.random.SeedSequence:
    """SeedSequence of one country's price draws (independent of the other countries)."""
    return np.random.SeedSequence(check_seed(seed), spawn_key=(PRICE_STREAM, country_key(code)))


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise CeaError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def price_parameters(ptable: ParameterTable) -> list[str]:
    return [n for n in ptable.names if ptable.df.loc[n, "category"] == PRICE_CATEGORY]


def clinical_parameters(ptable: ParameterTable) -> list[str]:
    return [n for n in ptable.names if ptable.df.loc[n, "category"] != PRICE_CATEGORY]


def reference_table(inputs: Inputs, scenario: Scenario, code: str) -> ParameterTable:
    """Clinical reference: parameters.csv with the scenario, without country overrides."""
    return build_parameter_table(replace(inputs, overrides=None), code, scenario)


def correlation_matrix(inputs: Inputs) -> pd.DataFrame | None:
    """The copula correlation matrix from ``inputs/correlations.csv`` (None when absent).

    Unlisted pairs are 0; a pair listed twice (in either order) or a parameter paired with
    itself is an error. Positive definiteness is checked when sampling.
    """
    table = inputs.correlations
    if table is None or table.df.empty:
        return None
    df = table.df
    names: list[str] = []
    for _, r in df.iterrows():
        for c in ("parameter_a", "parameter_b"):
            if r[c] not in names:
                names.append(r[c])
    m = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    seen: dict[frozenset, int] = {}
    for _, r in df.iterrows():
        a, b, rho = r["parameter_a"], r["parameter_b"], float(r["correlation"])
        if a == b:
            raise table.error(
                f"parameter '{a}' is correlated with itself",
                row=int(r["_row"]),
                column="parameter_b",
            )
        key = frozenset((a, b))
        if key in seen:
            raise table.error(
                f"pair {a}/{b} is listed twice (also row {seen[key]})", row=int(r["_row"])
            )
        seen[key] = int(r["_row"])
        m.loc[a, b] = m.loc[b, a] = rho
    return m


def _cdf(d: dist.Distribution, x: np.ndarray) -> np.ndarray:
    """Distribution function of a univariate specification (for common random numbers)."""
    from scipy import stats  # here, not at the top: scipy.stats is slow to load

    if isinstance(d, dist.Beta):
        return stats.beta.cdf(x, d.alpha, d.beta)
    if isinstance(d, dist.Gamma):
        return stats.gamma.cdf(x, d.shape, scale=d.scale)
    if isinstance(d, dist.LogNormal):
        return stats.norm.cdf((np.log(x) - d.mu) / d.sigma)
    if isinstance(d, dist.Normal):
        return stats.norm.cdf(x, d.mu, d.sd)
    if isinstance(d, dist.Uniform):
        return stats.uniform.cdf(x, d.low, d.high - d.low)
    raise CeaError(f"no distribution function for {type(d).__name__}")


def sample_draws(
    inputs: Inputs,
    ptables: dict[str, ParameterTable],
    n_draws: int,
    seed: int,
    scenario: Scenario | None = None,
) -> dict[str, pd.DataFrame]:
    """PSA draws of every country: ``code -> DataFrame`` (index ``draw``, columns = parameters).

    Clinical columns are shared across countries (same random numbers; see the module
    docstring); price columns come from each country's own stream. Each country's uncertain
    parameters fill one column-major (draws x parameters) array as they are drawn, and each
    fixed parameter is its value seen at every draw (a read-only column of stride 0, no
    memory); the DataFrame wraps both without a copy. With one country the draws are held
    once (8 bytes an uncertain parameter a draw), with several the shared clinical columns
    once more.
    """
    if (
        isinstance(n_draws, bool)
        or not isinstance(n_draws, int | np.integer)
        or n_draws < MIN_DRAWS
    ):
        raise CeaError(f"number of draws must be an integer >= {MIN_DRAWS}, got {n_draws!r}")
    n_draws = int(n_draws)
    scenario = scenario or Scenario()
    codes = list(ptables)
    ref = reference_table(inputs, scenario, codes[0])
    ref_dists = {n: ref.distribution(n) for n in clinical_parameters(ref)}
    corr = correlation_matrix(inputs)
    for code, pt in ptables.items():
        for n in clinical_parameters(pt):
            _check_override(n, code, pt.distribution(n), ref_dists.get(n))

    def clinical():
        """The clinical draws column by column: the same numbers at every call."""
        rng = np.random.Generator(np.random.PCG64(clinical_seed(seed)))
        return dist.sample_columns(ref_dists, n_draws, rng, corr)

    shared = dict(clinical()) if len(ptables) > 1 else None
    out = {}
    for code, pt in ptables.items():
        fixed = {n: d.value for n in pt.names if isinstance(d := pt.distribution(n), dist.Fixed)}
        at = {n: j for j, n in enumerate(n for n in pt.names if n not in fixed)}
        values = np.empty((n_draws, len(at)), order="F")
        mine = set(clinical_parameters(pt)) - fixed.keys()
        for n, x in shared.items() if shared is not None else clinical():
            if n in mine:
                d_c, d_ref = pt.distribution(n), ref_dists[n]
                if d_c == d_ref:
                    values[:, at[n]] = x
                else:
                    values[:, at[n]] = d_c.ppf(np.clip(_cdf(d_ref, x), 0.0, 1.0))
                _check_finite_draws(inputs, pt, n, values[:, at[n]])
        prices = price_parameters(pt)
        if prices:
            rng = np.random.Generator(np.random.PCG64(price_seed(seed, code)))
            for n, x in dist.sample_columns({n: pt.distribution(n) for n in prices}, n_draws, rng):
                if n in at:
                    values[:, at[n]] = x
                    _check_finite_draws(inputs, pt, n, values[:, at[n]])
        columns = {
            n: values[:, at[n]] if n in at else np.broadcast_to(float(fixed[n]), (n_draws,))
            for n in pt.names
        }
        out[code] = pd.DataFrame(columns, index=pd.RangeIndex(n_draws, name="draw"), copy=False)
    return out


def _check_finite_draws(inputs: Inputs, pt: ParameterTable, name: str, x: np.ndarray) -> None:
    """Refuse a draw out of the floats' range (a lognormal or gamma so wide that some draws are
    inf), naming the parameter's file, row and ``se`` where the row comes from an input file."""
    finite = np.isfinite(x)
    if finite.all():
        return
    bad = int(np.argmin(finite))
    problem = (
        f"parameter '{name}': draw {bad} is {float(x[bad])!r}: its distribution "
        f"({pt.df.loc[name, 'dist']}) is too wide for the PSA; give a smaller se or low/high"
    )
    origin = str(pt.df.loc[name, "origin"])
    for table, key in (
        (inputs.parameters, "parameter"),
        (inputs.prices.get(pt.country.code), "item"),
    ):
        if table is not None and origin == str(table.path):
            rows = table.df.loc[table.df[key] == name, "_row"]
            if len(rows):
                raise table.error(problem, row=int(rows.iloc[0]), column="se")
    raise CeaError(f"{origin}: {problem}")


def _check_override(name: str, code: str, d_c: dist.Distribution, d_ref) -> None:
    """A country's clinical parameter must be in the reference table, and a country override
    may fix an uncertain parameter but not make a fixed one uncertain."""
    if d_ref is None:
        raise CeaError(f"parameter '{name}' of {code} is not in the clinical reference table")
    if d_c != d_ref and not isinstance(d_c, dist.Fixed) and isinstance(d_ref, dist.Fixed):
        raise CeaError(
            f"parameter '{name}' is fixed in parameters.csv but uncertain for {code}: "
            "a country override cannot add uncertainty"
        )

"""Probability distributions for the PSA, built from the parameter table.

One row of ``inputs/parameters.csv`` (``value, se, low, high, dist, n``) becomes one frozen
specification here through :func:`build`; rows sharing a ``group`` become one
:class:`Dirichlet` through :func:`build_dirichlet`. The three readers of the table use a
specification as follows (docs/conventions.md, "The parameter table"):

- base case: ``centre()``, which equals the row's ``value`` by construction (the mean for
  beta, gamma, normal, uniform and Dirichlet; the median for lognormal ratios);
- DSA: ``low``/``high`` from the table, or :func:`percentile_range` (2.5% and 97.5%
  quantiles) when they are blank;
- PSA: ``sample(n, rng)`` or, for correlated parameters, ``ppf`` of Gaussian-copula
  uniforms (:func:`sample_many`).

Conventions
-----------
- Beta and gamma are fitted to ``value`` and ``se`` by the method of moments, so the mean is
  ``value`` exactly. Distribution parameters are never typed by hand.
- Lognormal ``(mu, sigma)`` is on the natural-log scale and ``exp(mu)`` is the value, so the
  median (not the mean) equals ``value``. From a 95% CI,
  ``sigma = (ln high - ln low) / (2 * 1.959963984540054)``; docs/evidence.md section 2 rounds the
  divisor to 3.92, which changes sigma by 18 parts per million.
- When a beta, gamma or normal row has no ``se`` but has a 95% CI ``low``/``high``, the se is
  taken from the normal approximation ``se = (high - low) / (2 * 1.959963984540054)``.
- Randomness always comes from a ``numpy.random.Generator`` passed in by the caller
  (``psa.py`` owns it); the global RNG is never used.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np
import pandas as pd

from cea.errors import CeaError

Z_975 = 1.959963984540054
"""97.5% quantile of the standard normal, ``scipy.stats.norm.ppf(0.975)``."""

DSA_LOWER = 0.025
DSA_UPPER = 0.975
"""Quantiles used for the DSA range when a row has no ``low``/``high``."""

MIDPOINT_RTOL = 1e-9
"""Relative tolerance for a uniform row's ``value`` equal to the midpoint of ``low``/``high``."""

SUM_TO_ONE_TOL = 1e-9
"""Absolute tolerance for the proportions of a Dirichlet group summing to 1."""

CORR_TOL = 1e-9
"""Tolerance for symmetry, unit diagonal and the [-1, 1] range of a correlation matrix."""

DIST_NAMES = ("beta", "gamma", "lognormal", "normal", "uniform", "fixed")
"""Values accepted in the ``dist`` column by :func:`build` (Dirichlet rows go through
:func:`build_dirichlet`)."""

DIRICHLET_NO_PPF = (
    "Dirichlet parameters cannot take part in correlations or percentiles; "
    "give each row a low/high, or use Dirichlet.marginal(i)"
)


def _fmt(x: float) -> str:
    """Short, stable number for reports: 6 significant digits, always with a decimal point."""
    s = f"{x:.6g}"
    if s.lstrip("-").isdigit():
        s += ".0"
    return s


def _check_positive(**kwargs: float) -> None:
    for key, x in kwargs.items():
        if not (math.isfinite(x) and x > 0):
            raise CeaError(f"{key} must be a finite number > 0, got {x!r}")


def _check_finite(**kwargs: float) -> None:
    for key, x in kwargs.items():
        if not math.isfinite(x):
            raise CeaError(f"{key} must be a finite number, got {x!r}")


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise CeaError(f"number of draws must be an integer >= 0, got {n!r}")
    return int(n)


def _as_u(u) -> np.ndarray:
    u = np.asarray(u, dtype=float)
    if np.any(~((u >= 0) & (u <= 1))):
        raise CeaError("ppf needs probabilities in [0, 1]")
    return u


class Distribution:
    """Common interface of the univariate specifications.

    Subclasses are frozen dataclasses and define ``family``, ``sample``, ``ppf``, ``mean``,
    ``median`` and ``params``. ``centre()`` is the value the base case uses.
    """

    family: ClassVar[str] = ""

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def ppf(self, u) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def mean(self) -> float:  # pragma: no cover
        raise NotImplementedError

    def median(self) -> float:  # pragma: no cover
        raise NotImplementedError

    def centre(self) -> float:
        """Value used by the base case (the mean unless a family says otherwise)."""
        return self.mean()

    def params(self) -> dict:
        """Distribution parameters by name, e.g. ``{"alpha": 117.0, "beta": 48.0}``."""
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}

    def describe(self) -> str:
        """One-line description for reports, e.g. ``Beta(alpha=117.0, beta=48.0)``."""
        inner = ", ".join(f"{k}={_fmt(v)}" for k, v in self.params().items())
        return f"{type(self).__name__}({inner})"


@dataclass(frozen=True)
class Beta(Distribution):
    """Beta(alpha, beta) on [0, 1], for probabilities (``p_``) and utilities (``u_``).

    mean = alpha / (alpha + beta); var = alpha * beta / ((alpha + beta)**2 (alpha + beta + 1)).
    """

    alpha: float
    beta: float
    family: ClassVar[str] = "beta"

    def __post_init__(self):
        _check_positive(alpha=self.alpha, beta=self.beta)

    @classmethod
    def from_mean_se(cls, mean: float, se: float) -> Beta:
        """Method of moments.

        common = mean (1 - mean) / se**2 - 1; alpha = mean * common; beta = (1 - mean) * common.
        Needs 0 < mean < 1 and 0 < se**2 < mean (1 - mean).
        """
        _check_finite(mean=mean, se=se)
        if not 0 < mean < 1:
            raise CeaError(f"beta mean must be strictly between 0 and 1, got {mean!r}")
        if not se > 0:
            raise CeaError(f"beta se must be > 0, got {se!r} (use dist=fixed for no spread)")
        var = se * se  # not se**2: a float power raises OverflowError where a product is inf
        if not var > 0:
            raise CeaError(
                f"beta se {se!r} is too small: se**2 is 0 in floating point (use dist=fixed "
                "for no spread)"
            )
        if var >= mean * (1 - mean):
            raise CeaError(
                f"beta se {se!r} is too large for mean {mean!r}: "
                f"se**2 must be < mean*(1-mean) = {mean * (1 - mean):.6g}"
            )
        common = mean * (1 - mean) / var - 1
        return cls(alpha=mean * common, beta=(1 - mean) * common)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.beta(self.alpha, self.beta, size=_check_n(n))

    def ppf(self, u) -> np.ndarray:
        from scipy import stats  # here, not at the top: scipy.stats is slow to load

        return stats.beta.ppf(_as_u(u), self.alpha, self.beta)

    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    def median(self) -> float:
        from scipy import stats  # here, not at the top: scipy.stats is slow to load

        return float(stats.beta.median(self.alpha, self.beta))


@dataclass(frozen=True)
class Gamma(Distribution):
    """Gamma(shape, scale) on (0, inf), for rates (``r_``), prices (``c_``), quantities (``q_``).

    mean = shape * scale; var = shape * scale**2.
    """

    shape: float
    scale: float
    family: ClassVar[str] = "gamma"

    def __post_init__(self):
        _check_positive(shape=self.shape, scale=self.scale)

    @classmethod
    def from_mean_se(cls, mean: float, se: float) -> Gamma:
        """Method of moments: shape = (mean / se)**2, scale = se**2 / mean; mean, se > 0."""
        _check_finite(mean=mean, se=se)
        if not mean > 0:
            raise CeaError(f"gamma mean must be > 0, got {mean!r} (use dist=fixed for a zero)")
        if not se > 0:
            raise CeaError(f"gamma se must be > 0, got {se!r} (use dist=fixed for no spread)")
        # products, not float powers (which raise OverflowError): a shape or scale out of the
        # floats' range is inf or 0, refused here in one line
        ratio = mean / se
        shape, scale = ratio * ratio, se * se / mean
        if not (math.isfinite(shape) and math.isfinite(scale) and shape > 0 and scale > 0):
            raise CeaError(
                f"gamma mean {mean!r} and se {se!r} are out of range: shape (mean/se)**2 = "
                f"{shape:g} and scale se**2/mean = {scale:g} must be finite numbers > 0"
            )
        return cls(shape=shape, scale=scale)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.gamma(self.shape, self.scale, size=_check_n(n))

    def ppf(self, u) -> np.ndarray:
        from scipy import stats  # here, not at the top: scipy.stats is slow to load

        return stats.gamma.ppf(_as_u(u), self.shape, scale=self.scale)

    def mean(self) -> float:
        return self.shape * self.scale

    def median(self) -> float:
        from scipy import stats  # here, not at the top: scipy.stats is slow to load

        return float(stats.gamma.median(self.shape, scale=self.scale))


@dataclass(frozen=True)
class LogNormal(Distribution):
    """LogNormal(mu, sigma), natural-log scale, for ratios (``rr_``, ``hr_``, ``or_``).

    ln X ~ Normal(mu, sigma). The base case uses the median exp(mu), which is the reported
    point estimate; the mean exp(mu + sigma**2 / 2) is larger.
    """

    mu: float
    sigma: float
    family: ClassVar[str] = "lognormal"

    def __post_init__(self):
        _check_finite(mu=self.mu)
        _check_positive(sigma=self.sigma)

    @classmethod
    def from_value_se_log(cls, value: float, sigma: float) -> LogNormal:
        """Median ``value`` (> 0) and standard error ``sigma`` of ln(value)."""
        _check_finite(value=value, sigma=sigma)
        if not value > 0:
            raise CeaError(f"lognormal value must be > 0, got {value!r}")
        if not sigma > 0:
            raise CeaError(
                f"lognormal se (log scale) must be > 0, got {sigma!r} (use dist=fixed for no spread)"
            )
        return cls(mu=math.log(value), sigma=sigma)

    @classmethod
    def from_ci(cls, value: float, low: float, high: float) -> LogNormal:
        """Point estimate and 95% CI: mu = ln(value), sigma = (ln high - ln low) / (2 * 1.95996).

        mu is ln(value), not the midpoint of the log limits, so the median equals the
        base-case value even when the published CI is not symmetric on the log scale.
        Needs 0 < low < value < high.
        """
        _check_finite(value=value, low=low, high=high)
        if not 0 < low < value < high:
            raise CeaError(
                f"lognormal needs 0 < low < value < high, got low={low!r}, value={value!r}, high={high!r}"
            )
        return cls(mu=math.log(value), sigma=(math.log(high) - math.log(low)) / (2 * Z_975))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.lognormal(self.mu, self.sigma, size=_check_n(n))

    def ppf(self, u) -> np.ndarray:
        from scipy import stats  # here, not at the top: scipy.stats is slow to load

        return stats.lognorm.ppf(_as_u(u), self.sigma, scale=math.exp(self.mu))

    def mean(self) -> float:
        return math.exp(self.mu + self.sigma**2 / 2)

    def median(self) -> float:
        return math.exp(self.mu)

    def centre(self) -> float:
        """The median exp(mu): the point estimate of the ratio."""
        return self.median()


@dataclass(frozen=True)
class Normal(Distribution):
    """Normal(mu, sd), e.g. body weight. Unbounded: do not use for probabilities or costs.

    The location field is ``mu`` because a dataclass field cannot share the name of the
    ``mean()`` method; ``params()`` and ``describe()`` call it ``mean``.
    """

    mu: float
    sd: float
    family: ClassVar[str] = "normal"

    def __post_init__(self):
        _check_finite(mean=self.mu)
        _check_positive(sd=self.sd)

    @classmethod
    def from_mean_se(cls, mean: float, se: float) -> Normal:
        return cls(mean, se)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.normal(self.mu, self.sd, size=_check_n(n))

    def ppf(self, u) -> np.ndarray:
        from scipy import stats  # here, not at the top: scipy.stats is slow to load

        return stats.norm.ppf(_as_u(u), loc=self.mu, scale=self.sd)

    def mean(self) -> float:
        return self.mu

    def median(self) -> float:
        return self.mu

    def params(self) -> dict:
        return {"mean": float(self.mu), "sd": float(self.sd)}


@dataclass(frozen=True)
class Uniform(Distribution):
    """Uniform(low, high); the base case uses the midpoint, so ``value`` must be the midpoint."""

    low: float
    high: float
    family: ClassVar[str] = "uniform"

    def __post_init__(self):
        _check_finite(low=self.low, high=self.high)
        if not self.low < self.high:
            raise CeaError(f"uniform needs low < high, got low={self.low!r}, high={self.high!r}")

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(self.low, self.high, size=_check_n(n))

    def ppf(self, u) -> np.ndarray:
        from scipy import stats  # here, not at the top: scipy.stats is slow to load

        return stats.uniform.ppf(_as_u(u), loc=self.low, scale=self.high - self.low)

    def mean(self) -> float:
        return (self.low + self.high) / 2

    def median(self) -> float:
        return self.mean()


@dataclass(frozen=True)
class Fixed(Distribution):
    """A constant: never varies in the PSA and consumes no random numbers."""

    value: float
    family: ClassVar[str] = "fixed"

    def __post_init__(self):
        _check_finite(value=self.value)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.full(_check_n(n), float(self.value))

    def ppf(self, u) -> np.ndarray:
        return np.full(np.shape(_as_u(u)), float(self.value))

    def mean(self) -> float:
        return float(self.value)

    def median(self) -> float:
        return float(self.value)


@dataclass(frozen=True)
class Dirichlet:
    """Dirichlet(alpha_1..alpha_k) for the proportions of a multinomial transition group.

    mean_i = alpha_i / alpha_0 with alpha_0 = sum(alpha). Component i alone is
    Beta(alpha_i, alpha_0 - alpha_i) (:meth:`marginal`). There is no joint ``ppf``, so a
    Dirichlet group cannot be correlated with other parameters or given percentiles as a whole.
    """

    alpha: tuple[float, ...]
    family: ClassVar[str] = "dirichlet"

    def __post_init__(self):
        alpha = tuple(float(a) for a in np.ravel(self.alpha))
        object.__setattr__(self, "alpha", alpha)
        if len(alpha) < 2:
            raise CeaError(f"Dirichlet needs at least 2 components, got {len(alpha)}")
        for i, a in enumerate(alpha):
            _check_positive(**{f"alpha[{i}]": a})

    @classmethod
    def from_counts(cls, counts: Sequence[float]) -> Dirichlet:
        """alpha = observed counts per outcome (each > 0)."""
        return cls(tuple(counts))

    @classmethod
    def from_proportions(cls, proportions: Sequence[float], n: float) -> Dirichlet:
        """alpha = proportions * n, so the mean equals the proportions exactly.

        ``proportions`` must each be > 0 and sum to 1 (within 1e-9); ``n`` is the number of
        patients the proportions were observed in.
        """
        p = np.asarray(proportions, dtype=float).ravel()
        if not (np.all(np.isfinite(p)) and np.all(p > 0)):
            raise CeaError(f"Dirichlet proportions must all be > 0, got {p.tolist()}")
        if abs(p.sum() - 1) > SUM_TO_ONE_TOL:
            raise CeaError(f"Dirichlet proportions must sum to 1, they sum to {p.sum():.12g}")
        _check_positive(n=float(n))
        return cls(tuple(p * float(n)))

    @property
    def k(self) -> int:
        return len(self.alpha)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draws of shape (n, k); each row sums to 1."""
        return rng.dirichlet(self.alpha, size=_check_n(n))

    def mean(self) -> np.ndarray:
        a = np.asarray(self.alpha)
        return a / a.sum()

    def centre(self) -> np.ndarray:
        return self.mean()

    def median(self):
        raise CeaError("a Dirichlet has no joint median; use Dirichlet.marginal(i).median()")

    def ppf(self, u):
        raise CeaError(DIRICHLET_NO_PPF)

    def marginal(self, i: int) -> Beta:
        """Marginal distribution of component i: Beta(alpha_i, alpha_0 - alpha_i)."""
        a0 = sum(self.alpha)
        return Beta(self.alpha[i], a0 - self.alpha[i])

    def params(self) -> dict:
        return {"alpha": list(self.alpha)}

    def describe(self) -> str:
        return f"Dirichlet(alpha=[{', '.join(_fmt(a) for a in self.alpha)}])"


# --------------------------------------------------------------------------- table rules


def _missing(x) -> bool:
    """Blank cell: None, or NaN as pandas reads an empty CSV field."""
    return np.ndim(x) == 0 and bool(pd.isna(x))


def _number(x, column: str, where: str) -> float | None:
    if _missing(x):
        return None
    try:
        out = float(x)
    except (TypeError, ValueError):
        raise CeaError(f"{where}{column} must be a number, got {x!r}") from None
    if not math.isfinite(out):
        raise CeaError(f"{where}{column} must be finite, got {x!r}")
    return out


def _se_from_ci(low: float, high: float) -> float:
    """Normal approximation: a 95% CI spans 2 * 1.959963984540054 standard errors."""
    return (high - low) / (2 * Z_975)


def build(
    dist: str,
    value,
    se=None,
    low=None,
    high=None,
    n=None,
    name: str = "",
) -> Distribution:
    """PSA distribution of one parameter-table row; its ``centre()`` equals ``value``.

    Rules (blank cells may be ``None`` or NaN):

    - ``dist`` is one of beta, gamma, lognormal, normal, uniform, fixed (case-insensitive).
    - beta, gamma, normal: ``se`` if given; otherwise the normal approximation
      ``se = (high - low) / (2 * 1.959963984540054)`` from a 95% CI ``low``/``high``
      (which must then satisfy low <= value <= high); otherwise an error. beta needs
      0 <= value <= 1 (0 or 1 only as ``fixed``); gamma needs value > 0. A beta row may
      instead give ``n`` (patients): Beta(value * n, (1 - value) * n).
    - lognormal: ``se`` is the standard error of ln(value); otherwise ``low``/``high`` is a
      95% CI with 0 < low < value < high (:meth:`LogNormal.from_ci`). value > 0.
    - uniform: ``low``/``high`` give the range and ``value`` must be their midpoint.
    - fixed: no spread; ``se`` and ``n`` are ignored and ``low``/``high`` (both or neither)
      are left to the DSA.

    Errors are one line starting with ``parameter '<name>':``.
    """
    where = f"parameter '{name}': " if name else ""
    key = str(dist).strip().lower() if not _missing(dist) else ""
    if key == "dirichlet":
        raise CeaError(
            f"{where}dirichlet rows are built per group (rows sharing a group) by build_dirichlet"
        )
    if key not in DIST_NAMES:
        raise CeaError(f"{where}unknown dist {dist!r}; valid: {', '.join(DIST_NAMES)}, dirichlet")
    v = _number(value, "value", where)
    if v is None:
        raise CeaError(f"{where}value is missing")
    se_, lo, hi, n_ = (
        _number(x, c, where) for x, c in ((se, "se"), (low, "low"), (high, "high"), (n, "n"))
    )
    if (lo is None) != (hi is None):
        raise CeaError(f"{where}give both low and high, or neither")
    if key == "fixed":
        # no spread; se, low/high and n belong to the DSA or are informative only
        return Fixed(v)
    has_ci = lo is not None
    if has_ci and not lo < hi:
        raise CeaError(f"{where}low must be < high, got low={lo!r}, high={hi!r}")
    if n_ is not None and key != "beta":
        raise CeaError(
            f"{where}n is used only by beta and dirichlet rows; leave it blank for {key}"
        )
    if se_ is not None and not se_ > 0:
        raise CeaError(f"{where}se must be > 0, got {se_!r} (use dist=fixed for no spread)")

    try:
        if key == "uniform":
            if se_ is not None:
                raise CeaError("uniform takes its range from low/high; leave se blank")
            if not has_ci:
                raise CeaError("uniform needs low and high")
            mid = (lo + hi) / 2
            if abs(v - mid) > MIDPOINT_RTOL * max(abs(lo), abs(hi)):
                raise CeaError(
                    f"uniform value {v!r} must be the midpoint of low/high ({mid!r}), because "
                    "the base case uses the centre of the distribution; use another dist "
                    "for an asymmetric range"
                )
            return Uniform(lo, hi)
        if key == "lognormal":
            if not v > 0:
                raise CeaError(f"lognormal value must be > 0, got {v!r}")
            if se_ is not None:
                return LogNormal.from_value_se_log(v, se_)
            if not has_ci:
                raise CeaError("lognormal needs se (log scale) or low/high")
            return LogNormal.from_ci(v, lo, hi)

        # beta, gamma, normal: mean and se
        if key == "beta":
            if not 0 <= v <= 1:
                raise CeaError(f"beta value must be in [0, 1], got {v!r}")
            if v in (0.0, 1.0):
                raise CeaError(f"beta value {v!r} has no spread; use dist=fixed")
            if n_ is not None:
                if se_ is not None:
                    raise CeaError("give se or n, not both")
                if not n_ > 0:
                    raise CeaError(f"n must be > 0, got {n_!r}")
                return Beta(v * n_, (1 - v) * n_)
        if key == "gamma" and not v > 0:
            raise CeaError(
                f"gamma value must be > 0, got {v!r}; use dist=fixed for a value that does not vary"
            )
        if se_ is None:
            if not has_ci:
                raise CeaError(f"{key} needs se or low/high")
            if not lo <= v <= hi:
                raise CeaError(f"value {v!r} lies outside low/high [{lo!r}, {hi!r}]")
            se_ = _se_from_ci(lo, hi)
        family = {"beta": Beta, "gamma": Gamma, "normal": Normal}[key]
        return family.from_mean_se(v, se_)
    except CeaError as err:
        raise CeaError(f"{where}{err}") from None


def build_dirichlet(names: Sequence[str], values: Sequence[float], counts) -> Dirichlet:
    """Dirichlet of one transition group (parameter rows sharing a ``group``).

    ``values`` are the proportions (> 0, summing to 1 within 1e-9). ``counts`` is the ``n``
    column: the number of patients the group's proportions come from. It is one number for
    the group, so it may be a scalar or repeated on every row (all equal); then
    alpha_i = value_i * n and the mean equals the values exactly.
    """
    names = [str(x) for x in names]
    where = f"dirichlet group ({', '.join(names)}): "
    vals = [_number(x, "value", where) for x in values]
    if len(vals) != len(names):
        raise CeaError(f"{where}{len(names)} names but {len(vals)} values")
    if len(names) < 2:
        raise CeaError(f"{where}needs at least 2 rows")
    for nm, x in zip(names, vals, strict=True):
        if x is None or not x > 0:
            raise CeaError(
                f"{where}value of '{nm}' must be a proportion > 0, got {x!r} "
                "(drop impossible transitions from the group)"
            )
    total = sum(vals)
    if abs(total - 1) > SUM_TO_ONE_TOL:
        raise CeaError(f"{where}values must sum to 1, they sum to {total:.12g}")
    cs = [counts] if np.ndim(counts) == 0 else list(counts)
    cs = [_number(x, "n", where) for x in cs]
    if len(cs) not in (1, len(names)):
        raise CeaError(f"{where}{len(names)} names but {len(cs)} counts")
    for x in cs:
        if x is None or not x > 0:
            raise CeaError(f"{where}n must be a patient count > 0 on every row, got {x!r}")
    if len(set(cs)) > 1:
        raise CeaError(
            f"{where}n must be the group's total patient count, the same on every row; got {cs}"
        )
    return Dirichlet.from_proportions(vals, cs[0])


def percentile_range(
    dist: Distribution, lower: float = DSA_LOWER, upper: float = DSA_UPPER
) -> tuple[float, float]:
    """(low, high) quantiles of ``dist`` for the DSA when a row has no ``low``/``high``."""
    if isinstance(dist, Dirichlet):
        raise CeaError(DIRICHLET_NO_PPF)
    lo, hi = dist.ppf([lower, upper])
    return float(lo), float(hi)


# --------------------------------------------------------------------------- copula


def _check_corr(corr: np.ndarray, labels: Sequence[str] | None = None) -> np.ndarray:
    c = np.asarray(corr, dtype=float)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise CeaError(f"correlation matrix must be square, got shape {c.shape}")
    if not np.all(np.isfinite(c)):
        raise CeaError("correlation matrix has missing or non-finite entries")
    if not np.allclose(c, c.T, rtol=0, atol=CORR_TOL):
        i, j = np.unravel_index(np.argmax(np.abs(c - c.T)), c.shape)
        pair = f"{labels[i]}/{labels[j]}" if labels is not None else f"[{i}, {j}]"
        raise CeaError(f"correlation matrix is not symmetric ({pair}: {c[i, j]} vs {c[j, i]})")
    if not np.allclose(np.diag(c), 1, rtol=0, atol=CORR_TOL):
        raise CeaError(f"correlation matrix must have 1 on the diagonal, got {np.diag(c).tolist()}")
    if np.any(np.abs(c) > 1 + CORR_TOL):
        raise CeaError("correlation matrix entries must lie in [-1, 1]")
    try:
        np.linalg.cholesky(c)
    except np.linalg.LinAlgError:
        smallest = float(np.linalg.eigvalsh((c + c.T) / 2).min())
        raise CeaError(
            f"correlation matrix is not positive definite (smallest eigenvalue {smallest:.3g})"
        ) from None
    return c


def correlated_uniforms(n: int, corr, rng: np.random.Generator) -> np.ndarray:
    """Gaussian copula: (n, k) uniforms whose underlying normals have correlation ``corr``.

    z = e @ L.T with e ~ iid N(0, 1) of shape (n, k) and L = cholesky(corr); u = Phi(z).
    ``corr`` is the Pearson correlation of the normals z; for any continuous marginals the
    resulting Spearman rank correlation is (6 / pi) * arcsin(corr / 2), slightly smaller in
    magnitude (0.5 -> 0.483).

    The matrix must be symmetric with unit diagonal, entries in [-1, 1], and positive
    definite (a perfect correlation of +-1 between two parameters is therefore rejected).
    """
    labels = list(corr.index) if isinstance(corr, pd.DataFrame) else None
    c = _check_corr(corr, labels)
    n = _check_n(n)
    z = rng.standard_normal((n, c.shape[0])) @ np.linalg.cholesky(c).T
    # Phi(z) rounds to exactly 0 or 1 beyond |z| ~ 8, where gamma/lognormal ppf would give inf
    tiny = np.finfo(float).tiny
    from scipy import stats  # here, not at the top: scipy.stats is slow to load

    return np.clip(stats.norm.cdf(z), tiny, np.nextafter(1.0, 0.0))


def sample_many(
    dists: Mapping,
    n: int,
    rng: np.random.Generator,
    corr: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """PSA draws: a DataFrame indexed by ``draw`` (0..n-1), one column per parameter.

    Parameters
    ----------
    dists : mapping
        ``name -> Distribution``, or ``(name_1, ..., name_k) -> Dirichlet`` for a transition
        group, which gives k columns. Columns follow the mapping's order.
    n : int
        Number of draws. All draws are made in one call; the same seed and the same ``n``
        give bit-identical output, but the first m of n draws differ from a run with
        n = m (the random stream is consumed parameter by parameter), so never chunk
        by calling this function repeatedly.
    rng : numpy.random.Generator
        The PSA's generator (``psa.py``).
    corr : DataFrame, optional
        Square correlation matrix of the copula normals, index and columns naming a subset
        of the univariate parameters (in any order). Those parameters are drawn first, in
        mapping order, jointly, as
        ``dist.ppf(correlated_uniforms(...))``; the others are then drawn independently with
        ``dist.sample`` in mapping order. Dirichlet components cannot be correlated.

    Returns
    -------
    DataFrame, shape (n, number of parameters), index name ``draw``.
    """
    out = dict(sample_columns(dists, n, rng, corr))
    return pd.DataFrame({c: out[c] for c in _columns(dists)}, index=pd.RangeIndex(n, name="draw"))


def sample_columns(
    dists: Mapping, n: int, rng: np.random.Generator, corr: pd.DataFrame | None = None
) -> Iterator[tuple[str, np.ndarray]]:
    """The draws of :func:`sample_many` one column at a time, ``(name, values)`` in the order
    they are drawn (the copula's parameters first), so that a caller can put each column where
    it belongs and let it go instead of holding the draws twice."""
    columns = _columns(dists)
    n = _check_n(n)
    drawn: set[str] = set()
    if corr is not None and corr.size > 0:
        listed = [str(x) for x in corr.index]
        if sorted(listed) != sorted(str(x) for x in corr.columns):
            raise CeaError("correlation matrix must have the same names in its index and columns")
        if len(set(listed)) != len(listed):
            raise CeaError("correlation matrix names a parameter more than once")
        univariate = {str(k): d for k, d in dists.items() if not isinstance(d, Dirichlet)}
        for nm in listed:
            if nm not in univariate:
                if nm in columns:
                    raise CeaError(f"parameter '{nm}': {DIRICHLET_NO_PPF}")
                raise CeaError(f"correlation matrix names unknown parameter '{nm}'")
        # copula dimensions follow the mapping order, so the order of the matrix's rows
        # does not change the draws
        names = [nm for nm in univariate if nm in set(listed)]
        corr = corr.copy()
        corr.index = listed
        corr.columns = [str(x) for x in corr.columns]
        corr = corr.loc[names, names]
        u = correlated_uniforms(n, corr, rng)
        for j, nm in enumerate(names):
            yield nm, univariate[nm].ppf(u[:, j])
        drawn.update(names)
        del u

    for key, dist in dists.items():
        if isinstance(dist, Dirichlet):
            draws = dist.sample(n, rng)
            for j, nm in enumerate(key):
                yield str(nm), draws[:, j]
        elif str(key) not in drawn:
            yield str(key), dist.sample(n, rng)


def _columns(dists: Mapping) -> list[str]:
    """The column names of the draws of ``dists`` in mapping order (checked)."""
    columns: list[str] = []
    for key, dist in dists.items():
        if isinstance(dist, Dirichlet):
            if not isinstance(key, tuple) or len(key) != dist.k:
                raise CeaError(
                    f"a Dirichlet with {dist.k} components must be keyed by a tuple of "
                    f"{dist.k} parameter names, got {key!r}"
                )
            columns.extend(str(x) for x in key)
        elif isinstance(dist, Distribution):
            if isinstance(key, tuple):
                raise CeaError(f"only a Dirichlet may be keyed by a tuple of names, got {key!r}")
            columns.append(str(key))
        else:
            raise CeaError(f"parameter '{key}': not a distribution ({type(dist).__name__})")
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise CeaError(f"parameter names appear more than once: {', '.join(dupes)}")
    return columns

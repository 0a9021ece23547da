"""Built-in verification: the TECH-VER black-box checks run on the real inputs.

Büyükkaramikli NC et al., "TECH-VER: a verification checklist to reduce errors in models
for health technology assessment", PharmacoEconomics 2019;37:1391-1408. Black-box tests
change an input to an extreme or a special value whose effect on the results is known a
priori, run the model, and compare. ``cea check`` prints them; the test suite runs the same
functions (``tests/test_verify.py``); :func:`run_checks` returns them as a table for the
Excel report.

Every check is a function returning a :class:`CheckResult`: its name, pass or fail, a detail
line with the numbers compared, and the tolerance. Checks on the base case take a
:class:`cea.pipeline.base.BaseCase` (see :data:`BASE_CHECKS`); checks on PSA and DSA result tables take
those tables (:func:`check_psa_means`, :func:`check_ceac_sums_to_one`,
:func:`check_evpi_nonnegative`, :func:`check_tornado_base_inside`), so they run whenever
the tables exist.

Parameter changes go through the same path as a scenario file (``[parameters]`` overrides of
the base case's scenario, ``dist = "fixed"`` so that values such as 0 or 1 are accepted);
settings changes (discount rates, cycle length, background mortality) replace fields of the
:class:`cea.igrt.model.ModelSpec`. Where a change cannot affect the two calibrated rates
(utilities, prices, discounting, copies of strategies) the base case's calibrated values are
reused; the zero-mortality and certain-death checks pass ``calibrated=`` explicitly, since a
median OS target cannot be met without deaths; every other check recalibrates.
"""

from __future__ import annotations

import csv
import math
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri  # scipy.stats takes a second to import

from cea.analysis.incremental import pairwise
from cea.engine.markov import correction_weights
from cea.errors import InputFileError
from cea.igrt.calibration import CALIBRATED
from cea.igrt.declaration import Params
from cea.igrt.model import run_model, transition_probabilities
from cea.igrt.spec import COST_CATEGORIES, DEAD, REWARDS, STATES, SUBGROUPS, Strategy
from cea.io.inputs import read_csv_text
from cea.parameters import distributions as dist
from cea.parameters.table import ParameterTable, build_parameter_table
from cea.pipeline import dsa, psa
from cea.pipeline.base import comparisons_from_settings, run_base_case
from cea.pipeline.validation import BEYOND_HORIZON, face_validity

#: Identities that hold in exact arithmetic: largest relative difference allowed, relative to
#: max(|a|, |b|, 1) (docs/conventions.md: exact arithmetic 1e-12).
EXACT_RTOL = 1e-12
#: Halving the cycle length (28 -> 14 days over the same horizon) may move total costs, QALYs
#: and life-years of each strategy by at most this fraction (see docs/verification.md).
CYCLE_HALVING_RTOL = 0.01
#: PSA sample means: family-wise false-alarm probability of one 3-SE test, two-sided.
PSA_MEAN_Z = 3.0
PSA_FAMILY_ALPHA = 2.0 * ndtr(-PSA_MEAN_Z)  # two-sided normal tail beyond PSA_MEAN_Z
#: CEAC rows (probabilities over strategies at one WTP) sum to 1 within this.
CEAC_SUM_TOL = 1e-9
#: EVPI >= -max(EVPI_ABS_TOL, EVPI_RTOL x max |EVPI|) (float rounding of E[max] - max E).
EVPI_ABS_TOL = 1e-6
EVPI_RTOL = 1e-9
#: Tornado bars: base inside [min(low, high), max(low, high)] widened by this relative margin.
TORNADO_RTOL = 1e-9
#: A tornado bar with the base outside is recomputed on this many points over its range; its
#: low, high and base values must match the recomputation to this relative tolerance.
TORNADO_GRID_POINTS = 9
TORNADO_RECOMPUTE_RTOL = 1e-6
#: Background mortality hazard (per year) of the certain-death check. Exits compete within a
#: cycle (p_i = H_i/H (1 - exp(-H))), so a share H_stop/H of the cohort leaves the on-bsAb
#: states before dying and is still alive after cycle 1 (about 7e-7 with 1e6 per year); 1e15
#: makes that share ~1e-16, below the tolerance, and exp(-H) underflows to exactly 0.
CERTAIN_DEATH_MX_PER_YEAR = 1e15
#: Draws of the short PSA ``cea check`` runs for the PSA table checks (any n must pass them).
CHECK_PSA_DRAWS = 200
#: Seed of the row shuffle in the order check (a fixed permutation, not a PSA draw).
ORDER_CHECK_SEED = 20190601
#: Suffix of the duplicated strategies in the identical-strategies check.
COPY_SUFFIX = "__copy"

CHECK_COLUMNS = ["check", "passed", "detail", "tolerance"]
#: Start of the detail of a face-validity row whose model value lies outside the published
#: band: printed WARN, counted as passed (docs/verification.md, face validity).
WARN = "WARN"
#: Prefix of the face-validity rows (one per row of inputs/validation_targets.csv).
VALIDATION_PREFIX = "validation_"


class CheckResult(NamedTuple):
    """One check: ``name``, ``passed``, ``detail`` (the numbers compared), ``tolerance``."""

    name: str
    passed: bool
    detail: str
    tolerance: str


# --------------------------------------------------------------------------- helpers


def _rel(a, b) -> np.ndarray:
    """|a - b| / max(|a|, |b|, 1), elementwise."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), 1.0)


def _g(x: float) -> str:
    return f"{x:.10g}"


def _base_calibrated(base) -> pd.DataFrame:
    draws = base.ptable.base()
    return pd.DataFrame({n: [float(base.calibrated[n])] for n in CALIBRATED}, index=draws.index)


def _variant_draws(base, overrides: Mapping[str, float]) -> pd.DataFrame:
    """The base case's draws with ``overrides`` applied as scenario parameter overrides."""
    scenario = base.ptable.scenario
    params = dict(scenario.parameters)
    for name, value in overrides.items():
        params[name] = {"value": float(value), "dist": "fixed"}
    variant = replace(scenario, name=f"{scenario.name}+check", parameters=params)
    return build_parameter_table(base.inputs, base.country.code, variant).base()


def _run(base, *, draws=None, spec=None, calibrated="base", keep_traces=False):
    """run_model on the base case's draws and spec unless given. ``calibrated``: "base" reuses
    the base case's calibrated rates, None recalibrates, a DataFrame is passed through."""
    draws = base.ptable.base() if draws is None else draws
    spec = base.spec if spec is None else spec
    if isinstance(calibrated, str):
        calibrated = _base_calibrated(base)
    return run_model(
        draws, spec, calibrated=calibrated, keep_traces=keep_traces, backend=base.backend
    )


def _by_strategy(outcomes: pd.DataFrame) -> pd.DataFrame:
    return outcomes[outcomes["draw"] == outcomes["draw"].iloc[0]].set_index("strategy")


def _names(base, prefix: str) -> list[str]:
    return [n for n in base.ptable.names if n.startswith(prefix)]


def _worst(
    a: pd.DataFrame, b: pd.DataFrame, columns: Sequence[str]
) -> tuple[float, str, str, float, float]:
    """Largest relative difference between two tables indexed by strategy, over ``columns``:
    (difference, strategy, column, a value, b value)."""
    best = (0.0, "", "", math.nan, math.nan)
    for col in columns:
        for s in a.index:
            x, y = float(a.loc[s, col]), float(b.loc[s, col])
            d = float(_rel(x, y))
            if not math.isfinite(d):
                d = math.inf
            if d > best[0] or not best[1]:
                best = (d, s, col, x, y)
    return best


# --------------------------------------------------------------------------- base-case checks


def check_qalys_equal_life_years(base) -> CheckResult:
    """Utilities 1 and every QALY loss 0 give QALYs = life-years, discounted and undiscounted."""
    utilities, losses = _names(base, "u_"), _names(base, "q_qaly_loss_")
    draws = _variant_draws(base, {**dict.fromkeys(utilities, 1.0), **dict.fromkeys(losses, 0.0)})
    out = _by_strategy(_run(base, draws=draws).outcomes)
    ly = pd.DataFrame({"discounted": out["ly"], "undiscounted": out["ly_undiscounted"]})
    qaly = pd.DataFrame({"discounted": out["qaly"], "undiscounted": out["qaly_undiscounted"]})
    d, s, _, ly, qaly = _worst(ly, qaly, list(ly.columns))
    return CheckResult(
        "qalys_equal_life_years",
        d <= EXACT_RTOL,
        f"{', '.join(utilities)} = 1 and {len(losses)} q_qaly_loss_* = 0: {len(out)} strategies, "
        f"discounted and undiscounted; largest relative difference {d:.2e} ({s}: QALY {_g(qaly)}, LY {_g(ly)})",
        f"relative {EXACT_RTOL:g}",
    )


def check_zero_discounting(base) -> CheckResult:
    """Discount rates 0 give discounted = undiscounted for every total."""
    spec = replace(base.spec, discount_rate_costs=0.0, discount_rate_effects=0.0)
    out = _by_strategy(_run(base, spec=spec).outcomes)
    cols = ["cost", *REWARDS]
    und = pd.DataFrame({c: out[f"{c}_undiscounted"] for c in cols})
    d, s, col, x, y = _worst(out[cols], und, cols)
    return CheckResult(
        "zero_discounting",
        d <= EXACT_RTOL,
        f"discount rates 0/0 (base {base.spec.discount_rate_costs:g}/{base.spec.discount_rate_effects:g}): "
        f"{len(cols)} totals x {len(out)} strategies; largest relative difference {d:.2e} "
        f"({s} {col}: discounted {_g(x)}, undiscounted {_g(y)})",
        f"relative {EXACT_RTOL:g}",
    )


def check_identical_strategies(base) -> CheckResult:
    """A copy of each strategy under another name: zero increments against the original, and
    the original strategies' results unchanged by the extra ones."""
    copies = [
        replace(s, strategy=s.strategy + COPY_SUFFIX, label=f"{s.label} (copy)")
        for s in base.spec.strategies
    ]
    spec = base.spec.with_strategies([*base.spec.strategies, *copies])
    outcomes = _run(base, spec=spec).outcomes
    pairs = [(c.strategy, s.strategy) for c, s in zip(copies, base.spec.strategies, strict=True)]
    comp = pairwise(outcomes, pairs, wtp=base.country.wtp_per_qaly)
    scale = max(1.0, float(outcomes["cost"].abs().max()))
    inc = comp[["inc_cost", "inmb"]].abs().to_numpy().max() / scale
    inc_q = float(comp["inc_effect"].abs().max())
    out = _by_strategy(outcomes)
    cols = ["cost", *REWARDS]
    copy = out.loc[[c for c, _ in pairs], cols].rename(index=lambda s: s[: -len(COPY_SUFFIX)])
    d_copy = _worst(out.loc[copy.index, cols], copy, cols)[0]
    ref = base.outcomes.set_index("strategy")
    d_orig = _worst(out.loc[ref.index, cols], ref[cols], cols)[0]
    d = max(inc, inc_q, d_copy, d_orig)
    return CheckResult(
        "identical_strategies",
        d <= EXACT_RTOL,
        f"{len(pairs)} strategies duplicated: largest |incremental cost or INMB| / max cost {inc:.2e}, "
        f"largest |incremental QALY| {inc_q:.2e}, largest relative difference copy vs original over "
        f"{len(cols)} totals {d_copy:.2e}, originals vs base case {d_orig:.2e}",
        f"relative {EXACT_RTOL:g}",
    )


def check_zero_mortality(base) -> CheckResult:
    """No death of any cause keeps the whole cohort alive: nobody in 'dead' in any cycle, and
    undiscounted life-years equal the horizon (the within-cycle weights times the cycle length)."""
    draws = _variant_draws(base, {"p_nrm_12m": 0.0, "p_case_fatality_severe": 0.0})
    spec = replace(base.spec, mx_by_age=np.zeros_like(base.spec.mx_by_age))
    zero = pd.DataFrame({n: [0.0] for n in CALIBRATED}, index=draws.index)
    res = _run(base, draws=draws, spec=spec, calibrated=zero, keep_traces=True)
    dead = max(float(tr[:, :, DEAD].max()) for tr in res.traces.values())
    horizon = float(correction_weights(spec.correction, spec.n_cycles).sum() * spec.dt)
    out = _by_strategy(res.outcomes)
    d_ly = float(_rel(out["ly_undiscounted"], horizon).max())
    inf_deaths = float(out["infection_deaths_undiscounted"].abs().max())
    ok = dead <= EXACT_RTOL and d_ly <= EXACT_RTOL and inf_deaths <= EXACT_RTOL
    return CheckResult(
        "zero_mortality",
        ok,
        f"background mortality 0, p_nrm_12m = 0, p_case_fatality_severe = 0, calibrated rates "
        f"{' and '.join(CALIBRATED)} passed as 0: largest share dead {dead:.2e}; undiscounted LY "
        f"{_g(float(out['ly_undiscounted'].min()))} to {_g(float(out['ly_undiscounted'].max()))} vs horizon "
        f"{_g(horizon)} (relative difference {d_ly:.2e}); infection deaths {inf_deaths:.2e}",
        f"absolute/relative {EXACT_RTOL:g}",
    )


def check_certain_death(base) -> CheckResult:
    """A huge background mortality empties the cohort after one cycle; life-years are then the
    first trace row's within-cycle weight times the cycle length."""
    spec = replace(
        base.spec, mx_by_age=np.full_like(base.spec.mx_by_age, CERTAIN_DEATH_MX_PER_YEAR)
    )
    res = _run(base, spec=spec, keep_traces=True)
    alive = max(float(tr[:, 1:, :DEAD].sum(axis=2).max()) for tr in res.traces.values())
    expected = float(correction_weights(spec.correction, spec.n_cycles)[0] * spec.dt)
    out = _by_strategy(res.outcomes)
    d_ly = float(_rel(out["ly_undiscounted"], expected).max())
    return CheckResult(
        "certain_death",
        alive <= EXACT_RTOL and d_ly <= EXACT_RTOL,
        f"background mortality {CERTAIN_DEATH_MX_PER_YEAR:g} per year: largest share alive after cycle 1 "
        f"{alive:.2e}; undiscounted LY {_g(float(out['ly_undiscounted'].max()))} vs first-row weight x "
        f"cycle {_g(expected)} (relative difference {d_ly:.2e})",
        f"absolute/relative {EXACT_RTOL:g}",
    )


def check_ig_price_zero(base) -> CheckResult:
    """Ig price 0: the Ig cost category is 0, every other category is unchanged, and each
    strategy's total cost falls by exactly its base-case Ig cost."""
    prices = [n for n in ("c_ivig_per_g", "c_scig_per_g") if n in base.ptable.names]
    out = _by_strategy(_run(base, draws=_variant_draws(base, dict.fromkeys(prices, 0.0))).outcomes)
    ref = base.outcomes.set_index("strategy")
    ig = float(out[["cost_ig", "cost_ig_undiscounted"]].abs().to_numpy().max())
    others = [c for c in COST_CATEGORIES if c != "cost_ig"]
    others += [f"{c}_undiscounted" for c in others]
    d_other = _worst(out[others], ref[others], others)
    drop = out.assign(x=ref["cost"] - ref["cost_ig"])
    d_total = _worst(out.assign(x=out["cost"]), drop, ["x"])
    igrt = [s.strategy for s in base.spec.strategies if s.uses_igrt]
    example = max(igrt, key=lambda s: ref.loc[s, "cost_ig"]) if igrt else ref.index[0]
    ok = ig <= EXACT_RTOL and d_other[0] <= EXACT_RTOL and d_total[0] <= EXACT_RTOL
    return CheckResult(
        "ig_price_zero",
        ok,
        f"{', '.join(prices)} = 0: largest Ig cost {ig:.2e}; largest relative change in the other "
        f"{len(others)} cost totals {d_other[0]:.2e}; total cost = base total - base Ig cost within "
        f"{d_total[0]:.2e} (e.g. {example}: {ref.loc[example, 'cost']:,.2f} - {ref.loc[example, 'cost_ig']:,.2f} "
        f"= {out.loc[example, 'cost']:,.2f}, of which administration {out.loc[example, 'cost_ig_admin']:,.2f})",
        f"relative {EXACT_RTOL:g}",
    )


#: Parameters set to 0 (or 1 for hr_igrt_os) in the no-infections check.
NO_INFECTION_ZERO = (
    "p_severe_12m_no_igrt",
    "r_severe_off_bsab",
    "r_nonsevere_on_bsab",
    "r_nonsevere_off_bsab",
)
IGRT_QALY_LOSSES = (
    "q_qaly_loss_infusion_reaction",
    "q_qaly_loss_thromboembolism",
    "q_qaly_loss_ivig_visit",
    "q_qaly_loss_scig_week",
)


def check_no_infections(base) -> CheckResult:
    """Without infections IgRT can only add cost: every IgRT strategy costs strictly more than
    no IgRT, with equal QALYs and life-years.

    The severe-infection incidence target is set to 0, so the calibration must return a zero
    rate; non-severe rates are 0. IgRT's own QALY losses (infusion reactions, thrombosis,
    process disutilities) are set to 0 and ``hr_igrt_os`` to 1, since they would otherwise
    (rightly) make QALYs differ.
    """
    overrides = {
        **dict.fromkeys(NO_INFECTION_ZERO, 0.0),
        **dict.fromkeys(IGRT_QALY_LOSSES, 0.0),
        "hr_igrt_os": 1.0,
    }
    draws = _variant_draws(base, overrides)
    strategies = list(base.spec.strategies)
    ref = next((s.strategy for s in strategies if not s.uses_igrt), None)
    if ref is None:
        ref = "no_igrt_reference"
        strategies.append(Strategy(ref, "never", label="No IgRT (check reference)"))
    spec = base.spec.with_strategies(strategies)
    res = _run(base, draws=draws, spec=spec, calibrated=None)
    rate = float(res.calibrated["r_severe_on_bsab"].abs().max())
    out = _by_strategy(res.outcomes)
    events = float(
        out[["severe_infections_undiscounted", "nonsevere_infections_undiscounted"]]
        .abs()
        .to_numpy()
        .max()
    )
    igrt = [s.strategy for s in strategies if s.uses_igrt]
    extra = {s: float(out.loc[s, "cost"] - out.loc[ref, "cost"]) for s in igrt}
    dq = max(
        [float(_rel(out.loc[s, c], out.loc[ref, c])) for s in igrt for c in ("qaly", "ly")],
        default=0.0,
    )
    cheapest = min(extra, key=extra.get) if extra else ""
    ok = rate == 0.0 and events == 0.0 and all(v > 0 for v in extra.values()) and dq <= EXACT_RTOL
    return CheckResult(
        "no_infections",
        ok,
        f"{', '.join(NO_INFECTION_ZERO)} = 0 (calibrated r_severe_on_bsab = {rate:g}), "
        f"{', '.join(IGRT_QALY_LOSSES)} = 0, hr_igrt_os = 1: infections {events:g}; {len(igrt)} IgRT "
        f"strategies vs {ref}: smallest extra cost {extra.get(cheapest, math.nan):,.2f} ({cheapest}), "
        f"largest relative QALY/LY difference {dq:.2e}",
        f"extra cost > 0; QALY/LY relative {EXACT_RTOL:g}",
    )


def check_mass_conserved(base) -> CheckResult:
    """The cohort trace (run_model, keep_traces) sums to the starting cohort in every cycle
    and no state is ever negative."""
    res = _run(base, keep_traces=True)
    worst, low, where = 0.0, 0.0, ""
    for (strategy, subgroup), tr in res.traces.items():
        total = tr.sum(axis=2)
        d = float(np.abs(total - total[:, :1]).max())
        if d >= worst:
            worst, where = d, f"{strategy}/{subgroup}"
        low = min(low, float(tr.min()))
    n_cycles = next(iter(res.traces.values())).shape[1] - 1
    return CheckResult(
        "mass_conserved",
        worst <= EXACT_RTOL and low >= 0.0,
        f"{len(res.traces)} cohorts x {n_cycles + 1} trace rows: largest |sum over states - start| {worst:.2e} "
        f"({where}); smallest state occupancy {low:.2e}",
        f"absolute {EXACT_RTOL:g}; occupancy >= 0",
    )


def check_probabilities_valid(base) -> CheckResult:
    """Every transition probability of every strategy, subgroup and cycle lies in [0, 1] and
    every row sums to 1 (arrays of cea.igrt.model.transition_probabilities)."""
    v = Params(base.ptable.base(), base.spec.unit_scale).with_derived(
        **{n: np.array([float(base.calibrated[n])]) for n in CALIBRATED}
    )
    lo, hi, row, n, where = math.inf, -math.inf, 0.0, 0, ""
    for st in base.spec.strategies:
        for sg in SUBGROUPS:
            P = transition_probabilities(st, sg, v, base.spec)
            n += P[..., 0].size
            lo, hi = min(lo, float(P.min())), max(hi, float(P.max()))
            d = float(np.abs(P.sum(axis=-1) - 1.0).max())
            if d >= row:
                row, where = d, f"{st.strategy}/{sg}"
    ok = lo >= 0.0 and hi <= 1.0 and row <= EXACT_RTOL
    return CheckResult(
        "probabilities_valid",
        ok,
        f"{n:,} transition rows ({len(STATES)} states): smallest probability {lo:.3g}, largest {hi:.3g}, "
        f"largest |row sum - 1| {row:.2e} ({where})",
        f"in [0, 1]; row sums absolute {EXACT_RTOL:g}",
    )


def _shuffle_csv(path: Path, rng: np.random.Generator) -> None:
    data = path.read_bytes()
    header, rows, delim = read_csv_text(path, data)
    order = rng.permutation(len(rows))
    with path.open(
        "w", newline="", encoding="utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8"
    ) as f:
        w = csv.writer(f, delimiter=delim, lineterminator="\n")
        w.writerow(header)
        for i in order:
            w.writerow(rows[i][1])


def check_order_invariance(base) -> CheckResult:
    """Results do not depend on the order of the strategies or of the rows of any input table.

    Every CSV of a copy of the inputs folder is shuffled (a fixed permutation), the strategy
    list is reversed, and the base case is run again from the files."""

    names = list(reversed(base.spec.strategy_names))
    root = Path(base.inputs.root)
    with tempfile.TemporaryDirectory(prefix="cea-check-") as tmp:
        if root.is_dir():
            copy = Path(tmp) / root.name
            shutil.copytree(root, copy)
            files = sorted(copy.rglob("*.csv"))
            rng = np.random.default_rng(ORDER_CHECK_SEED)
            for f in files:
                _shuffle_csv(f, rng)
            what = f"rows of {len(files)} CSV files shuffled"
        else:
            copy, what = root, "input workbook unchanged (not a folder)"
        again = run_base_case(copy, base.country.code, base.ptable.scenario, names)
    a = base.results.set_index("strategy")
    b = again.results.set_index("strategy").loc[a.index]
    cols = [c for c in a.columns if pd.api.types.is_numeric_dtype(a[c])]
    d, s, col, x, y = _worst(a[cols], b[cols], cols)
    d_cal = max(float(_rel(base.calibrated[n], again.calibrated[n])) for n in CALIBRATED)
    return CheckResult(
        "order_invariance",
        d <= EXACT_RTOL and d_cal <= EXACT_RTOL,
        f"{what}, strategies reversed: largest relative difference over {len(cols)} result columns "
        f"{d:.2e} ({s} {col}: {_g(x)} vs {_g(y)}); calibrated rates {d_cal:.2e}",
        f"relative {EXACT_RTOL:g}",
    )


def _increments(outcomes: pd.DataFrame, pairs) -> pd.DataFrame:
    o = _by_strategy(outcomes)
    rows = {
        f"{a} vs {b}": (o.loc[a, "cost"] - o.loc[b, "cost"], o.loc[a, "qaly"] - o.loc[b, "qaly"])
        for a, b in pairs
    }
    return pd.DataFrame.from_dict(rows, orient="index", columns=["inc_cost", "inc_qaly"])


def check_cycle_halving(base) -> CheckResult:
    """Halving the cycle length over the same horizon (twice as many cycles, recalibrated)
    moves total costs, QALYs and life-years of each strategy by less than 1%.

    The changes of the increments (named comparisons, else each strategy against the first)
    are reported beside, without a pass/fail rule: increments are small differences of totals,
    so the same discretization error is a larger share of them (docs/verification.md).
    """
    # explicit weights (one per trace row) have no counterpart at half the cycle length: the
    # time discretisation is then checked with the half-cycle correction at both lengths
    explicit = isinstance(base.spec.correction, tuple)
    model = replace(base.spec, correction="half_cycle") if explicit else base.spec
    spec = replace(model, cycle_days=model.cycle_days / 2, n_cycles=2 * model.n_cycles)
    res = _run(base, spec=spec, calibrated=None)
    out = _by_strategy(res.outcomes)
    reference = _run(base, spec=model, calibrated=None).outcomes if explicit else base.outcomes
    ref = _by_strategy(reference)
    parts = []
    worst = 0.0
    for col in ("cost", "qaly", "ly"):
        d, s, _, x, y = _worst(ref[[col]], out.loc[ref.index, [col]], [col])
        worst = max(worst, d)
        parts.append(f"{col} {d:.3%} ({s}: {_g(x)} -> {_g(y)})")
    names = base.spec.strategy_names
    comps = base.comparisons
    if (
        comps is not None
        and not comps.empty
        and {"intervention", "comparator"} <= set(comps.columns)
    ):
        pairs = list(zip(comps["intervention"], comps["comparator"], strict=True))
    else:
        pairs = [(s, names[0]) for s in names[1:]]
    info = ""
    if pairs:
        a, b = _increments(reference, pairs), _increments(res.outcomes, pairs)
        change = ((b - a).abs() / a.abs().where(a.abs() > 0)).max(axis=0)
        where = ((b - a).abs() / a.abs().where(a.abs() > 0)).idxmax(axis=0)
        info = (
            f"; increments (not tested) move up to {change['inc_cost']:.1%} in cost ({where['inc_cost']}) "
            f"and {change['inc_qaly']:.1%} in QALYs ({where['inc_qaly']})"
        )
    return CheckResult(
        "cycle_halving",
        worst < CYCLE_HALVING_RTOL,
        f"{base.spec.cycle_days:g} -> {spec.cycle_days:g} days ({base.spec.n_cycles} -> {spec.n_cycles} cycles, "
        f"same horizon{', half-cycle correction at both instead of the explicit weights' if explicit else ''}): "
        f"largest relative change " + ", ".join(parts) + info,
        f"relative {CYCLE_HALVING_RTOL:g} of each total",
    )


#: The checks on the base case, in the order they are reported.
BASE_CHECKS: tuple[Callable[..., CheckResult], ...] = (
    check_qalys_equal_life_years,
    check_zero_discounting,
    check_identical_strategies,
    check_zero_mortality,
    check_certain_death,
    check_ig_price_zero,
    check_no_infections,
    check_mass_conserved,
    check_probabilities_valid,
    check_order_invariance,
    check_cycle_halving,
)


# --------------------------------------------------------------------------- PSA and DSA tables


def _parameter_frame(parameters) -> pd.DataFrame:
    df = parameters.df if isinstance(parameters, ParameterTable) else parameters
    if (
        "parameter" in df.columns
        and df.index.name != "parameter"
        and not df.index.equals(pd.Index(df["parameter"]))
    ):
        df = df.set_index("parameter", drop=False)
    return df


def _none(v):
    try:
        return None if v is None or math.isnan(float(v)) else float(v)
    except (TypeError, ValueError):
        return None


def check_psa_means(draws: pd.DataFrame, parameters) -> CheckResult:
    """PSA sample means are near the means of the input distributions.

    For each parameter in both ``draws`` (one column per parameter, one row per draw) and
    ``parameters`` (a :class:`~cea.parameters.ParameterTable` or its ``df``: value, se,
    low, high, dist), the distribution built from the row (:func:`cea.parameters.distributions.build`)
    gives the expected mean (``value``, or for lognormal ratios, whose median is ``value``,
    exp(mu + sigma^2/2)). A parameter fails when its sample mean is further than z standard
    errors (sample SD / sqrt(n)) from it. z is 3 for one parameter, and Bonferroni-widened
    for K varying parameters so that the chance of any false alarm stays that of one 3-SE test
    (0.27%): with 45 parameters z = 4.0. Fixed parameters must be constant at ``value``.
    """
    table = _parameter_frame(parameters)
    names = [n for n in table.index if n in draws.columns]
    n = len(draws)
    varying, fixed_bad, worst = [], [], (0.0, "", math.nan, math.nan, math.nan)
    for name in names:
        r = table.loc[name]
        x = draws[name].to_numpy(float)
        if str(r["dist"]).strip().lower() == "fixed":
            if not np.all(x == float(r["value"])):
                fixed_bad.append(name)
            continue
        try:
            expected = dist.build(r["dist"], r["value"], se=_none(r.get("se")), low=_none(r.get("low")),
                                  high=_none(r.get("high")), name=name).mean()  # fmt: skip
        except (ValueError, KeyError):
            expected = float(r["value"])  # e.g. a Dirichlet share: its mean is the value
        varying.append((name, x, expected))
    k = max(1, len(varying))
    z = float(-ndtri(PSA_FAMILY_ALPHA / (2 * k)))  # the normal's upper quantile
    n_bad = 0
    for name, x, expected in varying:
        se = float(np.std(x, ddof=1)) / math.sqrt(n) if n > 1 else math.inf
        score = (
            abs(float(x.mean()) - expected) / se
            if se > 0
            else (0.0 if x.mean() == expected else math.inf)
        )
        if score > z:
            n_bad += 1
        if score >= worst[0] or not worst[1]:
            worst = (score, name, float(x.mean()), expected, se)
    ok = n_bad == 0 and not fixed_bad and n > 1
    detail = (
        f"{n} draws, {len(varying)} varying parameters: {n_bad} beyond {z:.2f} SE; largest |mean - expected| "
        f"{worst[0]:.2f} SE ({worst[1]}: sample mean {_g(worst[2])}, distribution mean {_g(worst[3])}, "
        f"SE {worst[4]:.3g}); {len(names) - len(varying)} fixed parameters, {len(fixed_bad)} not constant"
        + (f" ({', '.join(fixed_bad[:5])})" if fixed_bad else "")
    )
    return CheckResult(
        "psa_sample_means",
        ok,
        detail,
        f"{z:.2f} SE (3 SE, family-wise over {len(varying)} parameters)",
    )


def _ceac_wide(ceac: pd.DataFrame) -> pd.DataFrame:
    if "strategy" in ceac.columns:
        if "probability" in ceac.columns:
            value = ["probability"]
        else:
            value = [
                c
                for c in ceac.columns
                if c not in ("wtp", "strategy")
                and pd.api.types.is_numeric_dtype(ceac[c])
                and not pd.api.types.is_bool_dtype(ceac[c])
            ]
        if len(value) != 1:
            raise ValueError(
                f"long CEAC table needs one probability column besides wtp and strategy, got {value}"
            )
        return ceac.pivot_table(index="wtp", columns="strategy", values=value[0], aggfunc="sum")
    if "wtp" in ceac.columns:
        ceac = ceac.set_index("wtp")
    return ceac.select_dtypes("number")


def check_ceac_sums_to_one(ceac: pd.DataFrame) -> CheckResult:
    """At every WTP the probabilities of being cost-effective lie in [0, 1] and sum to 1 over
    the strategies. ``ceac``: wide (index or column ``wtp``, one column per strategy) or long
    (columns ``wtp``, ``strategy`` and one probability column)."""
    wide = _ceac_wide(ceac)
    p = wide.to_numpy(float)
    sums = p.sum(axis=1)
    i = int(np.argmax(np.abs(sums - 1.0))) if len(sums) else 0
    d = float(np.abs(sums - 1.0).max()) if len(sums) else math.inf
    lo, hi = (float(np.nanmin(p)), float(np.nanmax(p))) if p.size else (math.nan, math.nan)
    ok = bool(len(sums)) and d <= CEAC_SUM_TOL and lo >= -CEAC_SUM_TOL and hi <= 1 + CEAC_SUM_TOL
    ok = ok and bool(np.isfinite(p).all())
    return CheckResult(
        "ceac_sums_to_one",
        ok,
        f"{len(wide)} WTP values x {wide.shape[1]} strategies: largest |sum - 1| {d:.2e}"
        + (f" (WTP {_g(float(wide.index[i]))})" if len(sums) else "")
        + f"; probabilities from {lo:.3g} to {hi:.3g}",
        f"absolute {CEAC_SUM_TOL:g}",
    )


def _evpi_columns(evpi) -> dict[str, np.ndarray]:
    if isinstance(evpi, pd.DataFrame):
        cols = [c for c in evpi.columns if str(c).startswith("evpi")]
        if not cols:
            raise ValueError(
                f"EVPI table needs a column starting with 'evpi', got {list(evpi.columns)}"
            )
        # a population EVPI is blank (NaN) throughout when the country has no population size
        return {str(c): evpi[c].to_numpy(float) for c in cols if not evpi[c].isna().all()}
    return {"evpi": np.atleast_1d(np.asarray(evpi, float)).ravel()}


def check_evpi_nonnegative(evpi) -> CheckResult:
    """EVPI = E[max NMB] - max E[NMB] >= 0 at every WTP. ``evpi``: a number, an array, a Series
    or a table whose columns starting with ``evpi`` hold the values (each column is checked
    against its own rounding tolerance; a column blank throughout is skipped)."""
    columns = _evpi_columns(evpi)
    ok, parts, tols = bool(columns), [], []
    for name, x in columns.items():
        finite = x[np.isfinite(x)]
        tol = (
            max(EVPI_ABS_TOL, EVPI_RTOL * float(np.abs(finite).max()))
            if finite.size
            else EVPI_ABS_TOL
        )
        ok = ok and bool(x.size) and bool(np.isfinite(x).all()) and float(x.min()) >= -tol
        lo, hi = (float(x.min()), float(x.max())) if x.size else (math.nan, math.nan)
        parts.append(f"{name}: {x.size} values from {lo:.6g} to {hi:.6g}")
        tols.append(f"{name} >= -{tol:.3g}")
    return CheckResult(
        "evpi_nonnegative", ok, "; ".join(parts) or "no EVPI values", "; ".join(tols)
    )


def _comparison_of(row: pd.Series) -> tuple[str, str] | None:
    if {"intervention", "comparator"} <= set(row.index):
        return str(row["intervention"]), str(row["comparator"])
    if "comparison" in row.index and " vs " in str(row["comparison"]):
        a, b = str(row["comparison"]).split(" vs ", 1)
        return a, b
    return None


def _explain_non_monotone(base, row: pd.Series, outcome: str, base_c: str) -> str | None:
    """Recompute one bar of a tornado on a grid over its range (calibrated per point, as the
    DSA does). Returns a description when the bar's low, high and base values match the
    recomputation and the curve has an interior extremum, i.e. the base is outside the bar
    because the response is not monotone; None when it cannot be explained that way."""
    pair, name = _comparison_of(row), str(row.get("parameter", ""))
    if outcome != "inmb" or pair is None or name not in base.ptable.names:
        return None
    lo, hi = float(row["low"]), float(row["high"])
    x0 = (
        float(row["base_value"])
        if "base_value" in row.index
        else float(base.ptable.df.loc[name, "value"])
    )
    grid = np.unique(np.concatenate([np.linspace(lo, hi, TORNADO_GRID_POINTS), [x0]]))
    draws = pd.concat([base.ptable.base()] * len(grid), ignore_index=True).rename_axis("draw")
    draws[name] = grid
    if not set(pair) <= set(base.spec.strategy_names):
        return None
    o = run_model(draws, base.spec, backend=base.backend).outcomes.pivot(
        index="draw", columns="strategy", values=["cost", "qaly"]
    )
    wtp = float(row["wtp_per_qaly"]) if "wtp_per_qaly" in row.index else base.country.wtp_per_qaly
    a, b = pair
    inmb = (wtp * (o[("qaly", a)] - o[("qaly", b)]) - (o[("cost", a)] - o[("cost", b)])).to_numpy()
    at = {x: v for x, v in zip(grid, inmb, strict=True)}
    agree = max(
        float(_rel(at[lo], row[f"{outcome}_low"])),
        float(_rel(at[hi], row[f"{outcome}_high"])),
        float(_rel(at[x0], row[base_c])),
    )
    k_min, k_max = int(np.argmin(inmb)), int(np.argmax(inmb))
    interior = [k for k in (k_min, k_max) if 0 < k < len(grid) - 1]
    if agree > TORNADO_RECOMPUTE_RTOL or not interior:
        return None
    k = interior[0]
    kind = "lowest" if k == k_min else "highest"
    return f"{name}: INMB {kind} at {grid[k]:.4g} inside [{lo:.4g}, {hi:.4g}], ends and base recomputed within {agree:.1e}"


def check_tornado_base_inside(
    tornado: pd.DataFrame, outcome: str = "inmb", base=None
) -> CheckResult:
    """The base-case value lies inside every tornado bar: min(low, high) <= base <= max(low,
    high), for columns ``<outcome>_low``, ``<outcome>_high`` and ``base`` (or
    ``<outcome>_base``, as :func:`cea.pipeline.dsa.tornado_table` names it). Tables of several
    comparisons may be stacked: the check is row by row.

    A response that is not monotone in the parameter (a U-shape, e.g. through the calibration)
    puts the base outside its bar without any error. With ``base`` (the BaseCase) such a bar
    is recomputed on a grid over its range (:data:`TORNADO_GRID_POINTS` points and the base
    value): when the bar's three values match the recomputation and the curve has an interior
    extremum, the bar counts as explained and passes; the detail names it.
    """
    lo_c, hi_c = f"{outcome}_low", f"{outcome}_high"
    base_c = "base" if "base" in tornado.columns else f"{outcome}_base"
    low, high = tornado[lo_c].to_numpy(float), tornado[hi_c].to_numpy(float)
    b = tornado[base_c].to_numpy(float)
    scale = np.maximum(np.maximum(np.abs(low), np.abs(high)), np.maximum(np.abs(b), 1.0))
    margin = TORNADO_RTOL * scale
    outside = (
        (b < np.minimum(low, high) - margin)
        | (b > np.maximum(low, high) + margin)
        | ~np.isfinite(b)
    )
    label = (
        tornado["parameter"].astype(str)
        if "parameter" in tornado.columns
        else tornado.index.to_series().astype(str)
    )
    if "comparison" in tornado.columns and tornado["comparison"].nunique() > 1:
        label = tornado["comparison"].astype(str) + ": " + label
    label = label.to_numpy()
    bad, explained = [], []
    for i in np.flatnonzero(outside):
        why = (
            _explain_non_monotone(base, tornado.iloc[i], outcome, base_c)
            if base is not None
            else None
        )
        if why is None:
            bad.append(str(label[i]))
        else:
            explained.append(
                f"{label[i].rsplit(': ', 1)[0]}: {why}" if ": " in str(label[i]) else why
            )
    gap = np.maximum(np.minimum(low, high) - b, b - np.maximum(low, high)) / scale
    n_out = int(outside.sum())
    detail = f"{len(b)} bars ({lo_c}/{hi_c} around {base_c}): base outside {n_out}"
    if len(b):
        detail += (
            f" (largest relative overshoot beyond a bar end {max(0.0, float(np.nanmax(gap))):.2e})"
        )
    if explained:
        detail += (
            f"; explained by a non-monotone response {len(explained)} ({'; '.join(explained[:3])})"
        )
    detail += f"; unexplained {len(bad)}" + (f" ({', '.join(bad[:5])})" if bad else "")
    tol = f"relative {TORNADO_RTOL:g}"
    if base is not None:
        tol += f"; bars outside recomputed on a {TORNADO_GRID_POINTS}-point grid within {TORNADO_RECOMPUTE_RTOL:g}"
    return CheckResult("tornado_base_inside", not bad and len(b) > 0, detail, tol)


# --------------------------------------------------------------------------- running


def _safe(name: str, fn: Callable[[], CheckResult]) -> CheckResult:
    """Run one check; an exception is a failed check whose detail is the error."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 (a crashing check is reported as failed, not hidden)
        return CheckResult(name, False, f"error: {type(exc).__name__}: {exc}", "")


def run_checks(
    base,
    *,
    checks: Sequence[Callable[..., CheckResult]] = BASE_CHECKS,
    psa_draws: pd.DataFrame | None = None,
    parameters=None,
    ceac: pd.DataFrame | None = None,
    evpi=None,
    tornado: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Run the base-case checks, and the PSA/DSA checks whose tables are given.

    Parameters
    ----------
    base : cea.pipeline.base.BaseCase
    checks : base-case checks to run (default :data:`BASE_CHECKS`).
    psa_draws : PSA draws (draw x parameter); compared with ``parameters`` (default the base
        case's parameter table).
    ceac : CEAC table (wtp x strategy, or long).
    evpi : EVPI per WTP (number, array, Series or table with ``evpi*`` columns).
    tornado : tornado table with ``inmb_low``, ``inmb_high`` and ``base``.

    Returns
    -------
    pd.DataFrame
        One row per check, columns ``check, passed, detail, tolerance``.
    """
    results = [_safe(fn.__name__.removeprefix("check_"), lambda fn=fn: fn(base)) for fn in checks]
    if psa_draws is not None:
        table = parameters if parameters is not None else base.ptable
        results.append(_safe("psa_sample_means", lambda: check_psa_means(psa_draws, table)))
    if ceac is not None:
        results.append(_safe("ceac_sums_to_one", lambda: check_ceac_sums_to_one(ceac)))
    if evpi is not None:
        results.append(_safe("evpi_nonnegative", lambda: check_evpi_nonnegative(evpi)))
    if tornado is not None:
        results.append(
            _safe("tornado_base_inside", lambda: check_tornado_base_inside(tornado, base=base))
        )
    df = pd.DataFrame([tuple(r) for r in results], columns=CHECK_COLUMNS)
    df["passed"] = df["passed"].astype(bool)
    return df


def validation_checks(base) -> list[CheckResult]:
    """One row per published figure of ``inputs/validation_targets.csv``
    (:func:`cea.pipeline.validation.face_validity`): passed when the model's value is computed
    and finite; a value outside the published band, or a target past the run's horizon (not
    computed), is reported with a detail starting :data:`WARN` (face validity against
    observational data is not a pass/fail test)."""
    try:
        table = face_validity(base)
    except InputFileError:  # a bad row of validation_targets.csv is bad input, not a failure
        raise
    except Exception as exc:  # noqa: BLE001 (reported as a failed check)
        return [CheckResult("validation", False, f"error: {type(exc).__name__}: {exc}", "")]
    out = []
    for r in table.itertuples(index=False):
        beyond = r.model_conditions.startswith(BEYOND_HORIZON)
        status = "inside band" if r.inside_band else f"{WARN}: outside band"
        model = f"model {r.model_value:.4g} ({r.model_conditions})"
        if beyond:
            status, model = WARN, r.model_conditions
        out.append(
            CheckResult(
                f"{VALIDATION_PREFIX}{r.id}",
                beyond or math.isfinite(r.model_value),
                f"{status}: {model} vs published "
                f"{r.published_value:g}, band {r.low:g} to {r.high:g}; {r.source} [{r.evidence}]",
                f"band: {r.tolerance_rule}; outside the band is {WARN}, not a failure",
            )
        )
    return out


def _verdict(passed, detail) -> str:
    if not passed:
        return "FAIL"
    return WARN if str(detail).startswith(WARN) else "PASS"


def format_checks(table: pd.DataFrame) -> str:
    """The check table as terminal lines: PASS/FAIL (WARN for a face-validity value outside
    its band), name, detail and tolerance."""
    lines = []
    for r in table.itertuples(index=False):
        lines.append(
            f"{_verdict(r.passed, r.detail)}  {r.check}: {r.detail} [tolerance: {r.tolerance}]"
        )
    n_ok = int(table["passed"].sum())
    n_warn = sum(
        _verdict(p, d) == WARN for p, d in zip(table["passed"], table["detail"], strict=True)
    )
    lines.append("")
    lines.append(
        f"{n_ok} of {len(table)} checks passed"
        + ("" if n_ok == len(table) else f", {len(table) - n_ok} failed")
        + (
            f"; {n_warn} face-validity values outside their band ({WARN}, not failures)"
            if n_warn
            else ""
        )
    )
    return "\n".join(lines)


def analysis_tables(
    base, n_draws: int = CHECK_PSA_DRAWS, psa_backend: str = psa.DEFAULT_BACKEND
) -> tuple[dict, list[CheckResult]]:
    """PSA and DSA result tables of the base case, for the table checks of :func:`run_checks`.

    A PSA of ``n_draws`` draws (seed from the settings; ``cea psa`` runs more) gives the draws,
    the CEAC and the EVPI; the one-way DSA gives the tornado tables of every named comparison,
    stacked. Returns (keyword arguments for run_checks, failed checks for analyses that raised).
    """
    tables: dict = {}
    failed: list[CheckResult] = []
    try:
        seed = int(base.ptable.settings.get("run", {}).get("seed", 1))
        res = psa.run_psa(
            base.inputs,
            base.country.code,
            n_draws=n_draws,
            backend=psa_backend,
            seed=seed,
            scenario=base.ptable.scenario,
            strategies=base.spec.strategy_names,
        )
        cp = res.countries[base.country.code]
        tables.update(
            psa_draws=cp.draws,
            parameters=cp.base.ptable,
            ceac=cp.tables.ceac,
            evpi=cp.tables.evpi,
        )
    except Exception as exc:  # noqa: BLE001 (reported as a failed check)
        failed.append(CheckResult("psa", False, f"error: {type(exc).__name__}: {exc}", ""))
    comparisons = comparisons_from_settings(base.ptable.settings, base.spec)
    if comparisons:
        try:
            one_way = dsa.run_one_way(base)
            tables["tornado"] = pd.concat(
                [dsa.tornado_table(one_way, c) for c in comparisons], ignore_index=True
            )
        except Exception as exc:  # noqa: BLE001 (reported as a failed check)
            failed.append(CheckResult("dsa", False, f"error: {type(exc).__name__}: {exc}", ""))
    return tables, failed


def check_table(
    base, tables: Mapping | None = None, psa_backend: str = psa.DEFAULT_BACKEND
) -> pd.DataFrame:
    """The check table for the report: :func:`run_checks` on ``base`` with the PSA/DSA tables
    ``tables`` (keyword arguments of run_checks). Without ``tables``, the table ``cea check``
    prints: the tables of :func:`analysis_tables` (a short PSA and the one-way DSA), a
    failed row for an analysis that raised, and the face-validity rows of
    :func:`validation_checks` (when the inputs have ``validation_targets.csv``)."""
    if tables is not None:
        return run_checks(base, **tables)
    tables, failed = analysis_tables(base, psa_backend=psa_backend)
    table = run_checks(base, **tables)
    extra = [*failed, *validation_checks(base)]
    if extra:
        table = pd.concat(
            [table, pd.DataFrame([tuple(r) for r in extra], columns=CHECK_COLUMNS)],
            ignore_index=True,
        )
        table["passed"] = table["passed"].astype(bool)
    return table

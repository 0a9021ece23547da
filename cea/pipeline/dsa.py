"""Deterministic sensitivity analysis: one-way (tornado), two-way grids, scenarios, thresholds.

Every analysis builds a *design*, a draws table (one row per parameter set, one column per
parameter, index ``draw``), and sends it through the same vectorized call as the base case
and the PSA, :func:`cea.igrt.model.run_model`. The calibrated rates (``r_severe_on_bsab``,
``r_myeloma_death_off_bsab``) are recalibrated on every row, so moving a calibration target
(``p_severe_12m_no_igrt``, ``t_target_median_os_months``...) moves the calibrated rates too.

* **One-way**: the base row plus, for every parameter with a range, a row at its low and a
  row at its high value (2k + 1 rows). Ranges: ``ParameterTable.dsa_range`` (``low``/``high``
  of the table, else the 2.5 and 97.5 percentiles of the parameter's distribution);
  zero-width ranges are skipped and listed.
* **Two-way**: a grid over two parameters (their DSA ranges, base values added to each axis).
* **Scenarios**: every TOML file of ``inputs/scenarios/`` run as its own base case.
* **Threshold**: the parameter value where a comparison's INMB is zero: a vectorized scan
  locates sign changes, :func:`scipy.optimize.brentq` refines each.

Conventions (``docs/dsa.md``): INMB of ``a vs b`` = WTP x (QALY_a - QALY_b) - (cost_a - cost_b)
at the country's WTP; ICER quadrants and interpretations come from
:func:`cea.analysis.incremental.pairwise`; an ICER outside the base case's quadrant is reported as a
quadrant, never plotted as a number.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import brentq

from cea.analysis import dsa as analysis_dsa
from cea.analysis.dsa import (
    comparisons_by_draw,
    optimal_by_draw,
    with_labels,
)
from cea.analysis.incremental import nmb, pairwise
from cea.analysis.outcomes import validate_outcomes
from cea.errors import CeaError
from cea.igrt.model import run_model
from cea.io.inputs import Inputs
from cea.io.load import load_inputs
from cea.parameters.designs import (
    BASE,
    HIGH,
    LOW,
    check_parameter,
    design_draws,
    evaluated_value,
    grid_axis,
    natural_bounds,
    range_problem,
    ranges_table,
)
from cea.parameters.table import Scenario, build_parameter_table, load_scenario
from cea.pipeline.base import (
    BaseCase,
    as_scenario,
    build_base_case,
    comparisons_from_settings,
    label_columns,
    resolve_country,
)
from cea.pipeline.memory import BYTES_PER_GRID_POINT, check_fits

#: Points of the vectorized scan that locates sign changes of the INMB before root finding.
THRESHOLD_SCAN_POINTS = 41
#: brentq tolerance on the parameter, relative to the width of the bracket.
THRESHOLD_XTOL_REL = 1e-12
#: brentq relative tolerance (scipy's floor is 4 x machine epsilon).
THRESHOLD_RTOL = 4 * np.finfo(float).eps
#: Largest gap between a design's base row and a separate base-case run (relative).
BASE_CHECK_RTOL = 1e-8


# --------------------------------------------------------------------------- set-up


def prepare(
    inputs: Inputs | Path | str,
    country: str | None = None,
    scenario: Scenario | Path | str | None = None,
    comparison: tuple[str, str] | str | None = None,
    strategies: list[str] | None = None,
    keep_trace: bool = False,
    backend: str = "numpy",
) -> tuple[BaseCase, tuple[str, str]]:
    """Base case and the comparison to analyse (``keep_trace``: with its trace table, which the
    workbook needs).

    The comparison defaults to the first of the settings' ``comparisons``; strategies it names
    that are not in the strategy set (e.g. ``primary_ivig_q6w``) are added to it.
    """
    if not isinstance(inputs, Inputs):
        inputs = load_inputs(inputs)
    scenario = as_scenario(scenario)
    code = resolve_country(inputs, scenario, country)
    ptable = build_parameter_table(inputs, code, scenario)
    model = ptable.settings.get("model", {})
    known = list(inputs.strategies.df["strategy"])
    names = list(strategies or model.get("strategies") or known)
    if comparison is None:
        listed = [(a, b) for a, b in model.get("comparisons", []) if a in names and b in names]
        if not listed:
            raise CeaError(
                "no comparison in the settings: give --comparison intervention:comparator"
            )
        comp = tuple(listed[0])
    else:
        comp = parse_comparison(comparison) if isinstance(comparison, str) else tuple(comparison)
    unknown = [s for s in comp if s not in known]
    if unknown:
        raise CeaError(
            f"unknown strategy {', '.join(repr(s) for s in unknown)} in the comparison "
            f"(known: {', '.join(known)})"
        )
    names += [s for s in comp if s not in names]
    base = build_base_case(
        inputs, code, scenario, names, ptable=ptable, keep_trace=keep_trace, backend=backend
    )
    return base, comp


# --------------------------------------------------------------------------- running a design


@dataclass
class DesignResult:
    """``run_model`` on a design, with the rows the model could not evaluate set aside."""

    outcomes: pd.DataFrame  # feasible rows only
    calibrated: pd.DataFrame
    failures: dict[int, str]  # draw -> the model's message
    calls: int
    seconds: float


def run_design(draws: pd.DataFrame, spec, backend: str = "numpy") -> DesignResult:
    """One :func:`cea.igrt.model.run_model` call on the whole design.

    A single row the model cannot evaluate (e.g. a calibration target no rate can reach with the
    other parameters at that row's values) makes the vectorized call fail; then the design is split
    in halves, recursively, until each failing row is isolated (about 2 log2(n) more calls). Its
    message is kept in ``failures`` and its results are missing, not invented.
    """
    parts: list = []
    failures: dict[int, str] = {}
    calls = 0
    t0 = time.perf_counter()

    def run(d: pd.DataFrame) -> None:
        nonlocal calls
        calls += 1
        try:
            res = run_model(d, spec, backend=backend)
            # a row with a result no model may give (not finite, a negative cost) fails as a
            # row the model cannot evaluate does
            validate_outcomes(res.outcomes, "the design")
            parts.append(res)
        except CeaError as exc:
            if len(d) == 1:
                failures[int(d.index[0])] = re.sub(r" ?\(draw \d+\)", "", str(exc))
            else:
                half = len(d) // 2
                run(d.iloc[:half])
                run(d.iloc[half:])

    run(draws)
    if not parts:
        first = next(iter(failures.values()))
        raise CeaError(f"the model cannot be evaluated at any row of the design: {first}")
    return DesignResult(
        outcomes=pd.concat([p.outcomes for p in parts], ignore_index=True),
        calibrated=pd.concat([p.calibrated for p in parts]).sort_index(),
        failures=failures,
        calls=calls,
        seconds=time.perf_counter() - t0,
    )


# --------------------------------------------------------------------------- one-way


@dataclass
class OneWayTables:
    """The tables of a one-way DSA for one comparison: the tornado in INMB order and in ICER
    order, and every named comparison at every row of the design (the chosen one first)."""

    tornado_inmb: pd.DataFrame
    tornado_icer: pd.DataFrame
    comparisons: pd.DataFrame


def one_way_tables(ow: OneWay, comparison: tuple[str, str]) -> OneWayTables:
    """:class:`OneWayTables` of ``ow`` for ``comparison``."""
    comps = comparisons_from_settings(ow.base.ptable.settings, ow.base.spec)
    comps = [comparison] + [c for c in comps if tuple(c) != tuple(comparison)]
    allc = comparisons_by_draw(ow.outcomes, comps, ow.wtp).merge(
        ow.design[["draw", "parameter", "side", "value"]], on="draw"
    )
    lead = ["draw", "parameter", "side", "value"]
    return OneWayTables(
        tornado_table(ow, comparison, "inmb"),
        tornado_table(ow, comparison, "icer"),
        allc[lead + [c for c in allc.columns if c not in lead]],
    )


@dataclass
class OneWay:
    """A one-way DSA: the design and every strategy's results at every row."""

    base: BaseCase
    ranges: pd.DataFrame
    skipped: pd.DataFrame
    design: pd.DataFrame  # draw, parameter, side, value, evaluated_value
    draws: pd.DataFrame
    outcomes: pd.DataFrame  # run_model outcomes + parameter, side, value, nmb
    calibrated: pd.DataFrame
    optimal: pd.DataFrame  # optimal_by_draw
    seconds: float
    base_check: float  # largest relative gap between the design's base row and the base case
    failures: dict[int, str] = field(default_factory=dict)  # draw -> model message
    calls: int = 1

    @property
    def wtp(self) -> float:
        return self.base.country.wtp_per_qaly


def run_one_way(base: BaseCase, parameters: list[str] | None = None) -> OneWay:
    """Move every parameter with a range to its low and its high value, one at a time.

    One :func:`cea.igrt.model.run_model` call on the 2k + 1 row design (row 0 is the base case); see
    :func:`run_design` for rows the model cannot evaluate.
    """
    ranges, skipped = ranges_table(base.ptable, parameters)
    design_rows = [{"draw": 0, "parameter": BASE, "side": BASE, "value": np.nan}]
    changes: list[dict[str, float]] = [{}]
    for _, r in ranges.iterrows():
        for side in (LOW, HIGH):
            design_rows.append(
                {"draw": len(changes), "parameter": r["parameter"], "side": side, "value": r[side]}
            )
            changes.append({r["parameter"]: r[side]})
    design = pd.DataFrame(design_rows)
    design["evaluated_value"] = [
        evaluated_value(p, v) if p != BASE else np.nan
        for p, v in zip(design["parameter"], design["value"], strict=True)
    ]
    draws = design_draws(base.ptable.base(), changes)
    res = run_design(draws, base.spec, base.backend)
    if 0 in res.failures:
        raise CeaError(f"the base case cannot be evaluated: {res.failures[0]}")
    wtp = base.country.wtp_per_qaly
    out = res.outcomes.merge(design[["draw", "parameter", "side", "value"]], on="draw")
    out = out.sort_values("draw", kind="stable").reset_index(drop=True)
    out["nmb"] = nmb(out["cost"], out["qaly"], wtp)
    lead = ["draw", "parameter", "side", "value", "strategy", "cost", "qaly", "ly", "nmb"]
    out = out[lead + [c for c in out.columns if c not in lead]]
    return OneWay(
        base=base,
        ranges=ranges,
        skipped=skipped,
        design=design,
        draws=draws,
        outcomes=out,
        calibrated=res.calibrated,
        optimal=optimal_by_draw(res.outcomes, wtp),
        seconds=res.seconds,
        base_check=_base_check(res.outcomes, base),
        failures=res.failures,
        calls=res.calls,
    )


def _base_check(outcomes: pd.DataFrame, base: BaseCase) -> float:
    """Largest relative gap in cost and QALY between draw 0 of a design and the base case."""
    row0 = outcomes[outcomes["draw"] == outcomes["draw"].iloc[0]].set_index("strategy")
    ref = base.outcomes.set_index("strategy").loc[row0.index]
    gap = 0.0
    for col in ("cost", "qaly"):
        gap = max(gap, float((abs(row0[col] - ref[col]) / abs(ref[col]).clip(lower=1e-300)).max()))
    if gap > BASE_CHECK_RTOL:
        raise CeaError(
            f"internal check failed: the design's base row differs from the base case by {gap:.2e}"
        )
    return gap


# --------------------------------------------------------------------------- two-way


@dataclass
class TwoWay:
    """A two-way grid: every strategy's results at every (p1, p2) point."""

    base: BaseCase
    parameters: tuple[str, str]
    axes: tuple[np.ndarray, np.ndarray]
    ranges: pd.DataFrame
    comparison: tuple[str, str]
    grid: pd.DataFrame  # one row per point: p1, p2, comparison results, optimal, nmb_<strategy>
    outcomes: pd.DataFrame  # long: draw, p1, p2, strategy, ...
    seconds: float
    base_check: float
    calls: int = 1
    failures: dict[int, str] = field(default_factory=dict)


def run_two_way(
    base: BaseCase,
    p1: str,
    p2: str,
    comparison: tuple[str, str],
    n: int = 11,
    limits: dict[str, tuple[float, float]] | None = None,
) -> TwoWay:
    """INMB of ``comparison`` and the optimal strategy over a grid of two parameters.

    Each axis spans the parameter's DSA range (or ``limits[name]``, e.g. an Ig price from 0)
    in ``n`` steps plus its base value, so the grid contains the base case. One
    :func:`cea.igrt.model.run_model` call on all grid points.
    """
    if p1 == p2:
        raise CeaError(f"--two-way needs two different parameters, got '{p1}' twice")
    limits = dict(limits or {})
    for name in limits:
        if name not in (p1, p2):
            raise CeaError(f"--range names '{name}', not one of the two parameters {p1}, {p2}")
    ranges, skipped = ranges_table(base.ptable, [p1, p2])
    skipped = skipped[~skipped["parameter"].isin(list(limits))]
    if not skipped.empty:
        raise CeaError(
            f"parameter '{skipped['parameter'].iloc[0]}' has no range to vary "
            f"({skipped['reason'].iloc[0]}); give it low/high in the inputs, or --range"
        )
    r = ranges.set_index("parameter")
    for name, (lo, hi) in limits.items():
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise CeaError(f"--range {name}={lo:g}:{hi:g}: needs finite low < high")
        problem = range_problem(name, lo, hi)
        if problem:
            raise CeaError(f"--range {name}={lo:g}:{hi:g}: {problem}")
        r.loc[name, ["low", "high"]] = (lo, hi)
        r.loc[name, "base_value"] = float(base.ptable.df.loc[name, "value"])
        r.loc[name, "range_origin"] = f"command line: --range {name}={lo:g}:{hi:g}"
    ranges = r.reset_index()
    axes = tuple(
        grid_axis(r.loc[p, "low"], r.loc[p, "high"], r.loc[p, "base_value"], n) for p in (p1, p2)
    )
    check_fits(
        len(axes[0]) * len(axes[1]), BYTES_PER_GRID_POINT,
        f"a two-way grid of {len(axes[0]):,} x {len(axes[1]):,} points",
        "at most {:,} points would fit (a smaller --grid)",
    )  # fmt: skip
    x1, x2 = np.meshgrid(axes[0], axes[1], indexing="ij")
    points = list(zip(x1.ravel(), x2.ravel(), strict=True))
    draws = design_draws(base.ptable.base(), [{p1: u, p2: v} for u, v in points])
    res = run_design(draws, base.spec, base.backend)
    seconds = res.seconds
    wtp = base.country.wtp_per_qaly
    pts = pd.DataFrame({"draw": draws.index, p1: x1.ravel(), p2: x2.ravel()})
    b1, b2 = r.loc[p1, "base_value"], r.loc[p2, "base_value"]
    pts["is_base"] = (pts[p1] == b1) & (pts[p2] == b2)
    comp = comparisons_by_draw(res.outcomes, [comparison], wtp)
    opt = optimal_by_draw(res.outcomes, wtp)
    nmbs = opt.pivot(index="draw", columns="strategy", values="nmb").add_prefix("nmb_")
    grid = pts.merge(
        comp[["draw", "inc_cost", "inc_effect", "icer", "quadrant", "interpretation", "inmb"]],
        on="draw",
        how="left",
    ).rename(columns={"inc_effect": "inc_qaly"})
    grid["optimal_strategy"] = (
        grid["draw"].map(opt[opt["optimal"]].set_index("draw")["strategy"]).fillna("not evaluable")
    )
    grid = grid.merge(nmbs.reset_index(), on="draw", how="left")
    grid["model_error"] = [res.failures.get(int(d), "") for d in grid["draw"]]
    out = pts.merge(res.outcomes, on="draw")
    out["nmb"] = nmb(out["cost"], out["qaly"], wtp)
    base_draw = int(pts.loc[pts["is_base"], "draw"].iloc[0])
    if base_draw in res.failures:
        raise CeaError(f"the base case cannot be evaluated: {res.failures[base_draw]}")
    base_out = res.outcomes[res.outcomes["draw"] == base_draw]
    return TwoWay(
        base=base,
        parameters=(p1, p2),
        axes=axes,
        ranges=ranges,
        comparison=comparison,
        grid=grid,
        outcomes=out,
        seconds=seconds,
        base_check=_base_check(base_out, base),
        calls=res.calls,
        failures=res.failures,
    )


# --------------------------------------------------------------------------- scenarios


@dataclass
class ScenarioRun:
    path: str | None
    case: BaseCase


@dataclass
class Scenarios:
    base: BaseCase
    runs: list[ScenarioRun]
    strategies: pd.DataFrame
    comparisons: pd.DataFrame
    summary: pd.DataFrame
    seconds: float
    headline: tuple[str, str] | None = None
    errors: list[str] = field(default_factory=list)


def scenario_files(folder: Path | str) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise CeaError(f"scenario folder {folder} {what} (--dir takes a folder of TOML files)")
    files = sorted(folder.glob("*.toml"))
    if not files:
        raise CeaError(f"no scenario files (*.toml) in {folder}")
    return files


def run_scenarios(
    inputs: Inputs | Path | str,
    country: str | None = None,
    files: list[Path | str] | None = None,
    folder: Path | str | None = None,
    backend: str = "numpy",
) -> Scenarios:
    """Every scenario as its own base case, beside the base case.

    Comparisons reported per scenario: the base case's named comparisons whose two strategies
    both exist in the scenario, plus the scenario's own named comparisons (``in_base_case``
    False, no base values).
    """
    t0 = time.perf_counter()
    if not isinstance(inputs, Inputs):
        inputs = load_inputs(inputs)
    code = resolve_country(inputs, Scenario(), country)
    if files is None:
        if folder is None:
            if not Path(inputs.root).is_dir():
                raise CeaError("inputs are not a folder: give the scenario folder with --dir")
            folder = Path(inputs.root) / "scenarios"
        files = scenario_files(folder)
    base = build_base_case(inputs, code, keep_trace=False, backend=backend)
    runs = [ScenarioRun(None, base)]
    for f in files:
        sc = load_scenario(f)
        runs.append(
            ScenarioRun(
                str(f), build_base_case(inputs, code, sc, keep_trace=False, backend=backend)
            )
        )
    base_comps = [tuple(x) for x in base.comparisons[["intervention", "comparator"]].to_numpy()]
    wtp = base.country.wtp_per_qaly
    strat_rows, comp_rows, summary_rows = [], [], []
    base_inc = base.incremental.set_index("strategy")
    base_pair = base.comparisons.set_index("comparison")
    base_opt = base_inc.index[base_inc["optimal"]][0]
    headline = base_comps[0] if base_comps else None
    for run in runs:
        case = run.case
        name = case.ptable.scenario.name
        names = case.spec.strategy_names
        inc = case.incremental.set_index("strategy")
        opt = inc.index[inc["optimal"]][0]
        res = case.results.set_index("strategy")
        for s in names:
            strat_rows.append(
                {
                    "scenario": name,
                    "strategy": s,
                    "cost": res.loc[s, "cost"],
                    "qaly": res.loc[s, "qaly"],
                    "ly": res.loc[s, "ly"],
                    "nmb": inc.loc[s, "nmb"],
                    "status": inc.loc[s, "status"],
                    "optimal": bool(inc.loc[s, "optimal"]),
                    "base_cost": base_inc.loc[s, "cost"] if s in base_inc.index else np.nan,
                    "base_qaly": base_inc.loc[s, "effect"] if s in base_inc.index else np.nan,
                    "base_nmb": base_inc.loc[s, "nmb"] if s in base_inc.index else np.nan,
                }
            )
        own = [tuple(x) for x in case.ptable.settings.get("model", {}).get("comparisons", [])]
        comps = [c for c in base_comps if c[0] in names and c[1] in names]
        comps += [c for c in own if c not in comps and c[0] in names and c[1] in names]
        pw = pairwise(case.outcomes, comps, wtp=wtp) if comps else pd.DataFrame()
        for _, c in pw.iterrows():
            in_base = c["comparison"] in base_pair.index
            bp = base_pair.loc[c["comparison"]] if in_base else None
            comp_rows.append(
                {
                    "scenario": name,
                    "comparison": c["comparison"],
                    "in_base_case": in_base,
                    "inc_cost": c["inc_cost"],
                    "inc_qaly": c["inc_effect"],
                    "icer": c["icer"],
                    "quadrant": c["quadrant"],
                    "interpretation": c["interpretation"],
                    "inmb": c["inmb"],
                    "cost_effective": c["cost_effective"],
                    "base_inc_cost": bp["inc_cost"] if in_base else np.nan,
                    "base_inc_qaly": bp["inc_effect"] if in_base else np.nan,
                    "base_icer": bp["icer"] if in_base else np.nan,
                    "base_quadrant": bp["quadrant"] if in_base else "",
                    "base_inmb": bp["inmb"] if in_base else np.nan,
                    "inmb_change": c["inmb"] - bp["inmb"] if in_base else np.nan,
                    "decision_changes": bool(
                        in_base and c["cost_effective"] != bp["cost_effective"]
                    ),
                }
            )
        srow = {
            "scenario": name,
            "description": case.ptable.scenario.description,
            "file": run.path or "",
            "strategies": ",".join(names),
            "optimal_strategy": opt,
            "optimal_changes": opt != base_opt,
        }
        if headline is not None:
            hl = f"{headline[0]} vs {headline[1]}"
            h = pw[pw["comparison"] == hl] if not pw.empty else pw
            srow["headline_comparison"] = hl
            if len(h):
                h = h.iloc[0]
                srow.update(
                    headline_inc_cost=h["inc_cost"],
                    headline_inc_qaly=h["inc_effect"],
                    headline_icer=h["icer"],
                    headline_quadrant=h["quadrant"],
                    headline_interpretation=h["interpretation"],
                    headline_inmb=h["inmb"],
                    headline_inmb_change=h["inmb"] - base_pair.loc[hl, "inmb"],
                )
            else:
                srow["headline_interpretation"] = "not in this scenario's strategies"
        srow["calibrated_r_severe_on_bsab"] = case.calibrated.get("r_severe_on_bsab")
        srow["calibrated_r_myeloma_death_off_bsab"] = case.calibrated.get(
            "r_myeloma_death_off_bsab"
        )
        summary_rows.append(srow)
    labels = label_columns(base, None)
    labels.pop("scenario")
    return Scenarios(
        base=base,
        runs=runs,
        strategies=with_labels(pd.DataFrame(strat_rows), labels),
        comparisons=with_labels(pd.DataFrame(comp_rows), labels),
        summary=with_labels(pd.DataFrame(summary_rows), labels),
        seconds=time.perf_counter() - t0,
        headline=headline,
    )


# --------------------------------------------------------------------------- threshold


@dataclass
class Threshold:
    """The value(s) of a parameter at which a comparison's INMB is zero."""

    base: BaseCase
    parameter: str
    comparison: tuple[str, str]
    base_value: float
    bracket: tuple[float, float]
    bracket_origin: str
    scan: pd.DataFrame  # value, inmb, inc_cost, inc_qaly, quadrant (every bracket scanned)
    roots: list[float]
    inmb_at_roots: list[float]  # model rerun at each root
    inmb_at_ends: tuple[float, float]
    message: str
    n_model_calls: int
    seconds: float
    dsa_range: tuple[float, float] | None = None

    @property
    def found(self) -> bool:
        return bool(self.roots)

    @property
    def threshold(self) -> float:
        """The crossing nearest the base value (NaN when there is none)."""
        if not self.roots:
            return math.nan
        return min(self.roots, key=lambda x: abs(x - self.base_value))


class _InmbFunction:
    """INMB of one comparison as a function of one parameter (other parameters at base)."""

    def __init__(self, base: BaseCase, parameter: str, comparison: tuple[str, str]):
        self.base = base
        self.parameter = parameter
        self.comparison = comparison
        # the two strategies only: the other strategies do not change this INMB
        self.spec = base.spec.with_strategies(
            [s for s in base.spec.strategies if s.strategy in comparison]
        )
        self.row = base.ptable.base()
        self.backend = base.backend
        self.calls = 0

    def table(self, values) -> pd.DataFrame:
        values = np.atleast_1d(np.asarray(values, dtype=float))
        draws = design_draws(self.row, [{self.parameter: x} for x in values])
        res = run_design(draws, self.spec, self.backend)
        self.calls += res.calls
        c = comparisons_by_draw(res.outcomes, [self.comparison], self.base.country.wtp_per_qaly)
        c = c.set_index("draw").reindex(draws.index)
        return pd.DataFrame(
            {
                "value": values,
                "evaluated_value": [evaluated_value(self.parameter, x) for x in values],
                "inmb": c["inmb"].to_numpy(),
                "inc_cost": c["inc_cost"].to_numpy(),
                "inc_qaly": c["inc_effect"].to_numpy(),
                "quadrant": c["quadrant"].fillna("not evaluable").to_numpy(),
                "model_error": [res.failures.get(int(d), "") for d in draws.index],
            }
        )

    def __call__(self, x: float) -> float:
        t = self.table([x]).iloc[0]
        if t["model_error"]:
            raise CeaError(
                f"the model cannot be evaluated at {self.parameter} = {x:.6g}: {t['model_error']}"
            )
        return float(t["inmb"])


def _crossings(scan: pd.DataFrame) -> list[tuple[float, float]]:
    """Sub-brackets of a sorted scan where the INMB changes sign (or is exactly zero)."""
    x, y = scan["value"].to_numpy(), scan["inmb"].to_numpy()
    out = []
    for i in range(len(x) - 1):
        if not (np.isfinite(y[i]) and np.isfinite(y[i + 1])):
            continue  # the model could not be evaluated at one end
        if y[i] == 0:
            out.append((x[i], x[i]))
        elif np.sign(y[i]) != np.sign(y[i + 1]) and y[i + 1] != 0:
            out.append((x[i], x[i + 1]))
    if len(y) and y[-1] == 0:
        out.append((x[-1], x[-1]))
    return out


def find_threshold(
    base: BaseCase,
    parameter: str,
    comparison: tuple[str, str],
    low: float | None = None,
    high: float | None = None,
) -> Threshold:
    """Value(s) of ``parameter`` at which the INMB of ``comparison`` is zero.

    Bracket: ``[low, high]`` when given (both or one, the other from the DSA range); else the
    DSA range, widened to the natural bounds (:func:`natural_bounds`) when the INMB does not
    change sign within it. Each bracket is scanned in one vectorized model call
    (:data:`THRESHOLD_SCAN_POINTS` points plus the base value); every sign change found is
    refined with :func:`scipy.optimize.brentq` and the model is rerun at the root.
    """
    t0 = time.perf_counter()
    check_parameter(base.ptable, parameter)
    for s in comparison:
        if s not in base.spec.strategy_names:
            raise CeaError(f"strategy '{s}' is not in the strategy set")
    value = float(base.ptable.df.loc[parameter, "value"])
    dsa_lo, dsa_hi = base.ptable.dsa_range(parameter)
    f = _InmbFunction(base, parameter, comparison)
    brackets: list[tuple[tuple[float, float], str]] = []
    if low is not None or high is not None:
        lo = dsa_lo if low is None else float(low)
        hi = dsa_hi if high is None else float(high)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise CeaError(
                f"threshold range for {parameter}: low and high must be finite numbers, got "
                f"{lo:g} and {hi:g}"
            )
        problem = range_problem(parameter, lo, hi)
        if problem:
            raise CeaError(f"threshold range for {parameter}: [{lo:g}, {hi:g}]: {problem}")
        brackets.append(((lo, hi), "given (--low/--high)"))
    else:
        if dsa_lo != dsa_hi:
            brackets.append(((dsa_lo, dsa_hi), "DSA range"))
        nat = natural_bounds(base.ptable, parameter)
        if nat is not None:
            brackets.append((nat, "natural bounds"))
    if not brackets:
        raise CeaError(
            f"parameter '{parameter}' has no range and no natural bounds: give --low and --high"
        )
    scans = []
    roots: list[float] = []
    for (lo, hi), origin in brackets:
        if not lo < hi:
            raise CeaError(f"threshold range for {parameter}: low {lo:g} must be below high {hi:g}")
        grid = np.unique(np.append(np.linspace(lo, hi, THRESHOLD_SCAN_POINTS), value))
        grid = grid[(grid >= lo) & (grid <= hi)]
        scan = f.table(grid)
        scan.insert(0, "bracket", origin)
        scans.append(scan)
        subs = _crossings(scan)
        if subs:
            xtol = THRESHOLD_XTOL_REL * (hi - lo)
            for a, b in subs:
                roots.append(a if a == b else brentq(f, a, b, xtol=xtol, rtol=THRESHOLD_RTOL))
            break
    scan = pd.concat(scans, ignore_index=True)
    (lo, hi), origin = brackets[len(scans) - 1]
    last = scans[-1]
    finite = last[np.isfinite(last["inmb"])]
    if finite.empty:
        raise CeaError(
            f"the model cannot be evaluated anywhere in the bracket for {parameter}: "
            f"{last['model_error'].iloc[0]}"
        )
    # the ends of the range where the model could be evaluated
    elo, ehi = float(finite["value"].iloc[0]), float(finite["value"].iloc[-1])
    ends = (float(finite["inmb"].iloc[0]), float(finite["inmb"].iloc[-1]))
    failed = last[last["model_error"] != ""]
    check = f.table(roots)["inmb"].tolist() if roots else []
    a, b = comparison
    cur = base.country.currency
    if roots:
        x = min(roots, key=lambda r: abs(r - value))
        msg = (
            f"INMB of {a} vs {b} is zero at {parameter} = {x:.6g} (base {value:.6g}; "
            f"searched {origin} [{lo:.6g}, {hi:.6g}]); INMB {fmt_money(ends[0], cur)} at {elo:.6g} "
            f"and {fmt_money(ends[1], cur)} at {ehi:.6g}"
        )
        if len(roots) > 1:
            msg += f"; {len(roots)} crossings: " + ", ".join(f"{r:.6g}" for r in roots)
        elif ends[0] * ends[1] < 0:
            side = "above" if ends[1] > 0 else "below"
            msg += f"; {a} is cost-effective against {b} for {parameter} {side} the threshold"
    else:
        sign = (
            "positive (a is cost-effective)"
            if ends[0] > 0
            else "negative (a is not cost-effective)"
        )
        where = " and ".join(f"{o} [{br[0]:.6g}, {br[1]:.6g}]" for br, o in brackets[: len(scans)])
        msg = (
            f"no threshold: the INMB of {a} vs {b} does not cross zero for {parameter} in {where}; "
            f"it is {sign} throughout ({fmt_money(ends[0], cur)} at {elo:.6g}, "
            f"{fmt_money(ends[1], cur)} at {ehi:.6g})"
        )
    if len(failed):
        msg += (
            f"; the model could not be evaluated at {len(failed)} of {len(last)} scanned values "
            f"({failed['value'].min():.6g} to {failed['value'].max():.6g}: "
            f"{failed['model_error'].iloc[0]})"
        )
    return Threshold(
        base=base,
        parameter=parameter,
        comparison=comparison,
        base_value=value,
        bracket=(lo, hi),
        bracket_origin=origin,
        scan=scan,
        roots=roots,
        inmb_at_roots=check,
        inmb_at_ends=ends,
        message=msg,
        n_model_calls=f.calls,
        seconds=time.perf_counter() - t0,
        dsa_range=(dsa_lo, dsa_hi),
    )


# --------------------------------------------------------------------------- comparison and tornado


def parse_comparison(text: str) -> tuple[str, str]:
    """``"a:b"`` -> (intervention a, comparator b)."""
    parts = [p.strip() for p in str(text).split(":")]
    if len(parts) != 2 or not all(parts):
        raise CeaError(
            f"--comparison must be intervention:comparator, e.g. primary_ivig:preemptive_ivig; got '{text}'"
        )
    if parts[0] == parts[1]:
        raise CeaError(f"--comparison compares '{parts[0]}' with itself")
    return parts[0], parts[1]


def tornado_table(ow: OneWay, comparison: tuple[str, str], outcome: str = "inmb") -> pd.DataFrame:
    """The tornado table of a one-way DSA (:func:`cea.analysis.dsa.tornado_table`), labelled
    with the country, currency, WTP, scenario and comparison."""
    return analysis_dsa.tornado_table(
        ow.outcomes, ow.design, ow.ranges, ow.optimal, ow.wtp, comparison, outcome,
        failures=ow.failures, labels=label_columns(ow.base, comparison),
    )  # fmt: skip


def fmt_money(x: float, currency: str = "") -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{currency + ' ' if currency else ''}{x:,.0f}"

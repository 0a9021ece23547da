"""Orchestration: inputs -> parameter table -> model -> result tables -> output folder.

The only module that ties the others together. ``run_base_case`` computes; ``write_outputs``
writes atomically (a temporary folder renamed into place, so a failed or interrupted run
leaves nothing half-written).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cea import __version__
from cea.analysis.incremental import icer_table, pairwise
from cea.errors import CeaError
from cea.io.inputs import Inputs, load_inputs
from cea.igrt.model import (
    COST_CATEGORIES,
    COUNTS,
    EFFECTS,
    STATES,
    SUBGROUPS,
    ModelSpec,
    n_cycles_for,
    run_model,
    strategies_from_table,
)
from cea.parameters.table import ParameterTable, Scenario, build_parameter_table, load_scenario

DEFAULT_INPUTS = Path("inputs")
DEFAULT_OUTPUTS = Path("outputs")


def build_spec(
    ptable: ParameterTable, inputs: Inputs, strategies: list[str] | None = None
) -> ModelSpec:
    """The model specification for one country and scenario (settings merged)."""
    model = ptable.settings.get("model", {})
    table = strategies_from_table(inputs.strategies.df)
    names = strategies or model.get("strategies") or list(table)
    unknown = [s for s in names if s not in table]
    if unknown:
        raise CeaError(
            f"unknown strategy {', '.join(repr(s) for s in unknown)} (known: {', '.join(table)})"
        )
    if len(set(names)) != len(names):
        raise CeaError("a strategy is listed twice in the settings")
    for s in names:
        hr = table[s].hr_severe_parameter
        if hr not in ptable.df.index:
            raise CeaError(f"strategy '{s}' needs parameter '{hr}'")
    drug = model.get("bsab_drug", "teclistamab")
    if model.get("include_bsab_costs", True) and f"c_bsab_{drug}_month" not in ptable.df.index:
        raise CeaError(
            f"country {ptable.country.code}: no price item 'c_bsab_{drug}_month' for bsab_drug '{drug}' "
            f"in prices/{ptable.country.code}.csv"
        )
    cycle_days = float(model.get("cycle_days", 28))
    days_per_year = float(model.get("days_per_year", 365.25))
    correction = model.get("correction", "half_cycle")
    if isinstance(correction, list):
        correction = tuple(float(x) for x in correction)
    return ModelSpec(
        strategies=tuple(table[s] for s in names),
        n_cycles=n_cycles_for(float(model.get("horizon_years", 10)), cycle_days, days_per_year),
        cycle_days=cycle_days,
        days_per_year=days_per_year,
        mx_by_age=ptable.country.mx_by_age,
        unit_scale=ptable.unit_scale,
        correction=correction,
        discount_rate_costs=ptable.country.discount_rate_costs,
        discount_rate_effects=ptable.country.discount_rate_effects,
        discount_offset_cycles=float(model.get("discount_offset_cycles", 0.0)),
        discount_step=model.get("discount_step", "cycle"),
        bsab_drug=drug,
        include_bsab_costs=bool(model.get("include_bsab_costs", True)),
        include_subsequent_therapy=bool(model.get("include_subsequent_therapy", False)),
        include_end_of_life=bool(model.get("include_end_of_life", False)),
    )


def apply_discount_settings(spec: ModelSpec, settings: dict) -> ModelSpec:
    """Scenario settings may override the country's discount rates."""
    from dataclasses import replace

    model = settings.get("model", {})
    kw = {}
    for key in ("discount_rate_costs", "discount_rate_effects"):
        if key in model:
            kw[key] = float(model[key])
    return replace(spec, **kw) if kw else spec


@dataclass
class BaseCase:
    """Everything a base-case run produces, in memory."""

    inputs: Inputs
    ptable: ParameterTable
    spec: ModelSpec
    outcomes: pd.DataFrame
    results: pd.DataFrame
    incremental: pd.DataFrame
    comparisons: pd.DataFrame
    trace: pd.DataFrame
    calibrated: dict[str, float]
    extra_files: dict[str, str] = field(default_factory=dict)

    @property
    def country(self):
        return self.ptable.country


def results_table(outcomes: pd.DataFrame, spec: ModelSpec) -> pd.DataFrame:
    """One row per strategy: discounted and undiscounted totals by category, outcomes, counts."""
    labels = {s.strategy: s.label for s in spec.strategies}
    cols = ["strategy"]
    cols += ["cost", "cost_undiscounted"]
    for name in COST_CATEGORIES:
        cols += [name, f"{name}_undiscounted"]
    for name in EFFECTS:
        cols += [name, f"{name}_undiscounted"]
    for name in COUNTS:
        cols += [f"{name}_undiscounted", name]
    df = outcomes[cols].copy()
    df.insert(1, "label", df["strategy"].map(labels))
    return df.reset_index(drop=True)


def trace_table(traces: dict, spec: ModelSpec) -> pd.DataFrame:
    frames = []
    for (strategy, subgroup), tr in traces.items():
        tr = tr[0]  # base case: one draw
        df = pd.DataFrame(tr, columns=list(STATES))
        df.insert(0, "strategy", strategy)
        df.insert(1, "subgroup", subgroup)
        df.insert(2, "cycle", np.arange(len(df)))
        df.insert(3, "time_years", df["cycle"] * spec.dt)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def comparisons_from_settings(
    settings: dict, spec: ModelSpec, known: set[str] | None = None
) -> list[tuple[str, str]]:
    """The settings' comparisons whose two strategies are in this run.

    A comparison naming a strategy that exists (``known``: every id in strategies.csv) but is
    not run is skipped (scenarios change the strategy set); an unknown id is an error.
    """
    names = set(spec.strategy_names)
    out = []
    for a, b in settings.get("model", {}).get("comparisons", []):
        for x in (a, b):
            if known is not None and x not in known:
                raise CeaError(
                    f"comparison {a}:{b} names unknown strategy '{x}' (settings or scenario)"
                )
        if a in names and b in names:
            out.append((a, b))
    return out


def run_base_case(
    inputs_dir: Path | str = DEFAULT_INPUTS,
    country: str | None = None,
    scenario: Scenario | Path | str | None = None,
    strategies: list[str] | None = None,
) -> BaseCase:
    """Load the inputs and run the deterministic base case for one country."""
    inputs = load_inputs(inputs_dir)
    if scenario is not None and not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    scenario = scenario or Scenario()
    country = (
        country
        or scenario.settings.get("run", {}).get("country")
        or inputs.settings.get("run", {}).get("country", "GB")
    )
    ptable = build_parameter_table(inputs, country, scenario)
    spec = apply_discount_settings(build_spec(ptable, inputs, strategies), ptable.settings)
    res = run_model(ptable.base(), spec, keep_traces=True)
    outcomes = res.outcomes
    wtp = ptable.country.wtp_per_qaly
    incremental = icer_table(outcomes, cost="cost", effect="qaly", wtp=wtp)
    comps = comparisons_from_settings(ptable.settings, spec, set(inputs.strategies.df["strategy"]))
    comparisons = (
        pairwise(outcomes, comps, wtp=wtp, extra=("severe_infections", "infection_deaths"))
        if comps
        else pd.DataFrame()
    )
    return BaseCase(
        inputs=inputs,
        ptable=ptable,
        spec=spec,
        outcomes=outcomes,
        results=results_table(outcomes, spec),
        incremental=incremental,
        comparisons=comparisons,
        trace=trace_table(res.traces, spec),
        calibrated={k: float(v) for k, v in res.calibrated.iloc[0].items()},
    )


# --------------------------------------------------------------------------- provenance


def _git(*args: str) -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", *args], cwd=here, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit() -> str | None:
    """The commit of the checkout this package runs from (``-dirty`` with uncommitted changes)."""
    head = _git("rev-parse", "HEAD")
    if head is None:
        return None
    return head + ("-dirty" if _git("status", "--porcelain") else "")


def provenance(base: BaseCase, command: str, seed: int | None = None) -> dict:
    spec, c = base.spec, base.country
    import matplotlib
    import openpyxl
    import scipy

    return {
        "package": "cea",
        "version": __version__,
        "git_commit": git_commit(),
        "command": command,
        "python": platform.python_version(),
        "packages": {
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "scipy": scipy.__version__,
            "openpyxl": openpyxl.__version__,
            "matplotlib": matplotlib.__version__,
        },
        "seed": seed if seed is not None else base.ptable.settings.get("run", {}).get("seed"),
        "country": {
            "code": c.code,
            "name": c.name,
            "currency": c.currency,
            "price_year": c.price_year,
            "macro_year": c.macro_year,
            "fx_lcu_per_usd": c.fx_lcu_per_usd,
            "ppp_lcu_per_intl_dollar": c.ppp_lcu_per_intl_dollar,
            "gdp_per_capita_usd": c.gdp_per_capita_usd,
            "wtp_per_qaly": c.wtp_per_qaly,
            "wtp_basis": c.wtp_basis,
            "wtp_alternatives": list(c.wtp_alternatives),
            "life_table_sex": c.life_table_sex,
        },
        "scenario": {
            "name": base.ptable.scenario.name,
            "description": base.ptable.scenario.description,
            "file": base.ptable.scenario.path,
            "sha256": base.ptable.scenario.sha256,
        },
        "conventions": {
            "perspective": "health-care payer",
            "cycle_days": spec.cycle_days,
            "days_per_year": spec.days_per_year,
            "cycle_length_years": spec.dt,
            "n_cycles": spec.n_cycles,
            "horizon_years": spec.n_cycles * spec.dt,
            "within_cycle_correction": spec.correction
            if isinstance(spec.correction, str)
            else list(spec.correction),
            "discount_rate_costs": spec.discount_rate_costs,
            "discount_rate_effects": spec.discount_rate_effects,
            "discount_timing": f"trace row t discounted at (t + {spec.discount_offset_cycles:g}) cycles, step '{spec.discount_step}'",
            "transition_rewards": "counted once, discounted at the end of the cycle in which the transition happens",
            "competing_risks": "cumulative hazards over a cycle turned into probabilities together: p_i = H_i/H (1 - exp(-H))",
            "subgroups": list(SUBGROUPS),
            "subgroup_weight": "p_igg_isotype",
            "bsab_drug": spec.bsab_drug,
            "include_bsab_costs": spec.include_bsab_costs,
            "include_subsequent_therapy": spec.include_subsequent_therapy,
            "include_end_of_life": spec.include_end_of_life,
            "calibrated_per_year": base.calibrated,
            "calibration": "r_severe_on_bsab: no-IgRT 12-month severe-infection incidence = p_severe_12m_no_igrt; "
            "r_myeloma_death_off_bsab: median OS of a cohort with p_trial_igrt_use on IgRT = t_target_median_os_months",
            "prices_inflated_to": c.price_year,
            "cost_per_infection_averted": "discounted incremental cost / discounted severe infections averted",
        },
        "strategies": spec.strategy_names,
        "input_sha256": dict(sorted(base.inputs.hashes.items())),
    }


# --------------------------------------------------------------------------- writing


#: Output folders this process has moved into place (the CLI names them if interrupted later).
COMMITTED: list[Path] = []


def default_run_name(base: BaseCase) -> str:
    return f"{base.ptable.scenario.name}_{base.country.code}"


class OutputDir:
    """Write into a temporary sibling folder; move it into place on success only.

    An existing target is refused unless ``force``; with ``force`` it is replaced only after
    the new output is complete.
    """

    def __init__(self, target: Path, force: bool = False):
        self.target = Path(target)
        self.force = force
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        if self.target.exists() and not self.force:
            raise CeaError(
                f"output folder {self.target} already exists: use --force to replace it, or --out"
            )
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(
            tempfile.mkdtemp(prefix=f".{self.target.name}.tmp-", dir=self.target.parent)
        )
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        assert self.tmp is not None
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        if not self.force:
            # another run may have created the target since __enter__: a directory is renamed
            # only onto a missing or empty one, so that run's output is never replaced
            try:
                os.rename(self.tmp, self.target)
            except OSError:
                shutil.rmtree(self.tmp, ignore_errors=True)
                raise CeaError(
                    f"output folder {self.target} was created by another run while this one was "
                    "running: nothing written; use --force to replace it, or --out"
                ) from None
            COMMITTED.append(self.target)
            return False
        old = None
        if self.target.exists():
            old = self.target.with_name(f".{self.target.name}.old-{os.getpid()}")
            os.replace(self.target, old)
        os.replace(self.tmp, self.target)
        COMMITTED.append(self.target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return False


def write_base_outputs(base: BaseCase, folder: Path, command: str) -> None:
    """results.csv, incremental.csv, comparisons.csv, trace.csv, parameters.csv, run.json."""
    base.results.to_csv(folder / "results.csv", index=False)
    base.incremental.to_csv(folder / "incremental.csv", index=False)
    base.comparisons.to_csv(folder / "comparisons.csv", index=False)
    base.trace.to_csv(folder / "trace.csv", index=False)
    base.ptable.df.to_csv(folder / "parameters.csv", index=False)
    (folder / "run.json").write_text(
        json.dumps(provenance(base, command), indent=2, default=str) + "\n"
    )


def summary_text(base: BaseCase) -> str:
    """A readable summary of the base case for the terminal."""
    c = base.country
    lines = [
        f"cea {__version__} | {c.name} ({c.code}) | scenario: {base.ptable.scenario.name} | "
        f"{c.currency} {c.price_year} | WTP {c.wtp_per_qaly:,.0f} per QALY ({c.wtp_basis})",
        f"horizon {base.spec.n_cycles} cycles of {base.spec.cycle_days:g} days "
        f"({base.spec.n_cycles * base.spec.dt:.2f} years), discount {c.discount_rate_costs:.1%} costs / "
        f"{c.discount_rate_effects:.1%} effects, correction {base.spec.correction}",
        "",
    ]
    inc = base.incremental.set_index("strategy")
    res = base.results.set_index("strategy")
    header = f"{'strategy':<24}{'cost':>14}{'QALY':>9}{'LY':>8}{'severe inf':>11}{'Ig g':>8}{'ICER':>14}  status"
    lines.append(header)
    lines.append("-" * len(header))
    for s in inc.index:
        r = res.loc[s]
        icer = inc.loc[s, "icer"]
        icer_s = f"{icer:,.0f}" if pd.notna(icer) else ""
        lines.append(
            f"{s:<24}{r['cost']:>14,.0f}{r['qaly']:>9.4f}{r['ly']:>8.4f}"
            f"{r['severe_infections_undiscounted']:>11.3f}{r['ig_grams_undiscounted']:>8.0f}{icer_s:>14}  {inc.loc[s, 'status']}"
        )
    if not base.comparisons.empty:
        lines.append("")
        lines.append("comparisons:")
        for _, r in base.comparisons.iterrows():
            lines.append(
                f"  {r['comparison']:<36} dC {r['inc_cost']:>12,.0f}  dQALY {r['inc_effect']:>8.4f}  {r['interpretation']}"
                f"  INMB {r['inmb']:,.0f}"
            )
    return "\n".join(lines)


def cli_run(args) -> int:
    """``cea run``: the base case for one country (and, with --report xlsx, the workbook)."""
    strategies = [s.strip() for s in args.strategies.split(",")] if args.strategies else None
    base = run_base_case(args.inputs, args.country, args.scenario, strategies)
    out = Path(args.out) if args.out else DEFAULT_OUTPUTS / default_run_name(base)
    command = " ".join(args.argv)
    report = getattr(args, "report", None) == "xlsx"
    table = None
    if report:  # the checks `cea check` prints, for the workbook's verification sheet
        from cea.verify import CHECK_PSA_DRAWS, check_table

        table = check_table(base)
        note = (
            f"As 'cea check': the PSA table checks on a short PSA of {CHECK_PSA_DRAWS} draws (seed "
            "from the settings) and the tornado check on the one-way DSA of the settings' comparisons."
        )
    with OutputDir(out, force=args.force) as tmp:
        write_base_outputs(base, tmp, command)
        if report:
            from cea.report.workbook import write_report

            write_report(
                base,
                tmp / "report.xlsx",
                command=command,
                verification=table,
                verification_note=note,
            )
    print(summary_text(base))
    if report:
        from cea.report.workbook import verification_summary

        print(verification_summary(table))
    print(f"\nwritten: {out}/")
    return 0

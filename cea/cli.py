"""Command line: ``cea <command>`` or ``python -m cea <command>`` (see README).

argparse and one function per command: each computes through :mod:`cea.pipeline` (and
:mod:`cea.verify`), writes through :mod:`cea.report`, and returns an exit code. A user error
(:class:`cea.errors.CeaError`) becomes one line on stderr and exit code 2 (no traceback,
nothing written).

Each command imports the modules it needs inside its function, so that a command loads only its
own (``cea psa`` no DSA, budget or workbook; SciPy, pandas and Matplotlib only when a command
uses them) and ``cea --help`` and errors in the arguments answer at once.

Exit codes: 0 success; 1 a verification check failed (``cea check``); 2 bad input or
options; 130 interrupted.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from cea.errors import CeaError
from cea.io import output
from cea.io.output import DEFAULT_OUTPUTS, OutputDir, OutputFile

if TYPE_CHECKING:
    from cea.parameters.table import Scenario

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
#: Grid points per parameter of a two-way DSA.
GRID_DEFAULT = 11
#: Where a bare --scenario name is looked for when --inputs is a workbook.
DEFAULT_SCENARIOS = Path("inputs") / "scenarios"
#: The engine's backends (:data:`cea.engine.cohort.BACKENDS`), the PSA's default one
#: (:data:`cea.pipeline.psa.DEFAULT_BACKEND`) and the formats of its per-draw files
#: (:data:`cea.report.psa.PER_DRAW_FORMATS`), written here so that building the parser imports
#: none of those modules (tests check that they agree).
BACKENDS = ("numpy", "numba")
PSA_DEFAULT_BACKEND = "numba"
PER_DRAW_FORMATS = ("parquet", "csv")


def _inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--inputs", default="inputs", help="inputs folder or Excel input workbook (default: inputs)"
    )
    p.add_argument(
        "--scenario",
        default=None,
        help="scenario: a TOML file, or the name of one in <inputs>/scenarios (overrides "
        "settings and parameters)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a parameter or price (repeatable; after --scenario; a price in the country's "
        "price year), e.g. --set c_ivig_per_g=30",
    )
    p.add_argument(
        "--wtp",
        type=float,
        default=None,
        help="willingness to pay per QALY, in the country's currency (default: countries.csv)",
    )


def _backend(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default=default,
        help=f"the engine's backend: numpy, or numba (compiled; the same results to 1e-12) "
        f"(default: {default})",
    )


def _outputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None, help="output folder (default: outputs/<name>)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cea",
        description="Cost-effectiveness of immunoglobulin replacement with bispecific antibodies in myeloma.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="base case for one country")
    p.add_argument(
        "--country", default=None, help="ISO2 code (default: settings.toml [run] country)"
    )
    p.add_argument(
        "--strategies", default=None, help="comma-separated strategy ids (default: settings)"
    )
    p.add_argument(
        "--report",
        choices=("xlsx",),
        default=None,
        help="also write report.xlsx with live formulas and the verification checks",
    )
    _inputs(p)
    _outputs(p)
    _backend(p, "numpy")

    p = sub.add_parser(
        "compare", help="regional comparison across countries, with threshold Ig prices"
    )
    p.add_argument(
        "--countries", default="all", help="'all' or a comma-separated list of ISO2 codes"
    )
    _inputs(p)
    _outputs(p)
    _backend(p, "numpy")

    p = sub.add_parser(
        "dsa", help="one-way (tornado) or two-way deterministic sensitivity analysis"
    )
    p.add_argument("--country", default=None)
    p.add_argument(
        "--comparison",
        default=None,
        help="intervention:comparator, e.g. primary_ivig:preemptive_ivig",
    )
    p.add_argument("--outcome", choices=("inmb", "icer"), default="inmb")
    p.add_argument(
        "--two-way",
        dest="two_way",
        default=None,
        help="two parameters, e.g. hr_igrt_severe,c_ivig_per_g",
    )
    p.add_argument(
        "--grid", type=int, default=GRID_DEFAULT, help="grid points per parameter for --two-way"
    )
    p.add_argument(
        "--range",
        action="append",
        default=[],
        metavar="NAME=LOW:HIGH",
        help="an axis of --two-way over LOW to HIGH instead of the DSA range (repeatable), e.g. "
        "--range c_ivig_per_g=0:80 --range p_bsab_price_paid=0:1",
    )
    p.add_argument(
        "--report",
        choices=("xlsx",),
        default=None,
        help="also write report.xlsx: the base case as live formulas, the tornado with a bar "
        "chart and the verification checks (one-way only)",
    )
    _inputs(p)
    _outputs(p)
    _backend(p, "numpy")

    p = sub.add_parser("scenarios", help="every scenario file beside the base case")
    p.add_argument("--country", default=None)
    p.add_argument(
        "--dir", default=None, help="folder of scenario TOML files (default: <inputs>/scenarios)"
    )
    p.add_argument("--inputs", default="inputs")
    _outputs(p)
    _backend(p, "numpy")

    p = sub.add_parser(
        "threshold", help="value of a parameter at which a comparison's INMB is zero"
    )
    p.add_argument("--country", default=None)
    p.add_argument("--parameter", required=True)
    p.add_argument("--comparison", required=True, help="intervention:comparator")
    p.add_argument(
        "--low",
        type=float,
        default=None,
        help="search range (default: the parameter's DSA range, widened)",
    )
    p.add_argument("--high", type=float, default=None)
    _inputs(p)
    _outputs(p)
    _backend(p, "numpy")

    p = sub.add_parser("psa", help="probabilistic sensitivity analysis and value of information")
    p.add_argument("--country", default=None)
    p.add_argument(
        "--countries", default=None, help="'all' or a list: clinical draws shared across countries"
    )
    p.add_argument(
        "--draws", type=int, default=None, help="number of draws (default: settings.toml)"
    )
    p.add_argument("--seed", type=int, default=None, help="seed (default: settings.toml)")
    p.add_argument(
        "--report",
        choices=("xlsx",),
        default=None,
        help="also write report.xlsx: the base case as live formulas, the PSA with CEAC and CE "
        "plane charts and the verification checks (one --country only)",
    )
    p.add_argument(
        "--no-evppi",
        action="store_true",
        help="leave out the EVPPI (its tables, figure and summary lines): the rest is the same",
    )
    p.add_argument(
        "--per-draw",
        choices=PER_DRAW_FORMATS,
        default="parquet",
        help="format of the per-draw files outcomes and draws: parquet (default; pandas, R's "
        "arrow, DuckDB, Excel's Power Query) or csv (gzip-compressed, several times slower)",
    )
    _inputs(p)
    _outputs(p)
    _backend(p, PSA_DEFAULT_BACKEND)
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="threads that run chunks of draws at the same time (default: one per CPU); the "
        "results do not depend on it",
    )

    p = sub.add_parser(
        "budget", help="budget impact of a new mix of strategies (ISPOR; inputs/budget_mix.csv)"
    )
    p.add_argument("--country", default=None)
    p.add_argument("--countries", default=None, help="'all' or a comma-separated list")
    p.add_argument("--years", type=int, default=None, help="1-5 (default: settings.toml [budget])")
    p.add_argument(
        "--report",
        choices=("xlsx",),
        default=None,
        help="also write report.xlsx: the base case as live formulas with the budget sheet "
        "(one --country only)",
    )
    _inputs(p)
    _outputs(p)

    p = sub.add_parser("template", help="write every input table to one editable Excel workbook")
    p.add_argument("--out", required=True, help="workbook to write, e.g. my_inputs.xlsx")
    p.add_argument("--inputs", default="inputs")
    p.add_argument("--force", action="store_true")

    p = sub.add_parser(
        "params", help="every parameter with its value, range, distribution, unit and source"
    )
    p.add_argument("--country", default=None)
    p.add_argument(
        "--format", choices=("text", "csv"), default="text", help="text table or CSV on stdout"
    )
    _inputs(p)

    p = sub.add_parser("check", help="built-in verification (TECH-VER black-box checks)")
    p.add_argument("--country", default=None)
    _inputs(p)
    _backend(p, "numpy")
    return parser


def _scenario(args, one_country: bool = True) -> Scenario:
    """The run's scenario: ``--scenario`` (a file, or a name in <inputs>/scenarios), then
    ``--set`` and ``--wtp`` on top."""
    from cea.parameters.table import Scenario, load_scenario, scenario_path, with_command_line

    if args.wtp is not None and not one_country:
        raise CeaError("--wtp is in one country's currency: use it with --country")
    scenario = Scenario()
    if args.scenario:
        folder = (
            Path(args.inputs) / "scenarios" if Path(args.inputs).is_dir() else DEFAULT_SCENARIOS
        )
        scenario = load_scenario(scenario_path(args.scenario, folder))
    return with_command_line(scenario, args.set, args.wtp)


def _out(args, default_name: str) -> Path:
    """``--out``, else ``outputs/<the command's name for the run><suffix>`` (see
    :func:`name_suffix`)."""
    return Path(args.out) if args.out else DEFAULT_OUTPUTS / f"{default_name}{name_suffix(args)}"


#: Longest readable suffix of a default output folder name; a longer one is replaced by a hash.
MAX_SUFFIX = 48


def name_suffix(args) -> str:
    """What makes a run differ from another of the same command, country and scenario, for its
    default folder name: ``--inputs`` (its name), ``--strategies``, ``--set``/``--wtp``, the
    scenario of a PSA, ``--seed``, ``--countries`` of ``compare``, ``--grid`` of a two-way DSA,
    a threshold's ``--low``/``--high``, and ``--report``. Empty for the defaults; a suffix longer
    than :data:`MAX_SUFFIX` characters becomes a 10-character hash of it."""
    parts: list[str] = []
    if getattr(args, "inputs", "inputs") != "inputs":
        parts.append(f"inputs-{Path(args.inputs).stem}")
    if getattr(args, "strategies", None):
        parts.append("-".join(_strategies(args)))
    if args.command in ("psa", "budget") and args.scenario:
        parts.append(Path(args.scenario).stem)
    sets = [*getattr(args, "set", [])]
    if getattr(args, "wtp", None) is not None:
        sets.append(f"wtp={args.wtp:g}")
    if sets:
        parts.append("set-" + "-".join(s.replace("=", "-") for s in sets))
    if getattr(args, "seed", None) is not None:
        parts.append(f"seed{args.seed}")
    countries = getattr(args, "countries", None)
    if args.command == "compare" and countries and countries.strip().lower() != "all":
        parts.append("-".join(c.strip().upper() for c in countries.split(",") if c.strip()))
    if getattr(args, "years", None) is not None:
        parts.append(f"years{args.years}")
    if getattr(args, "two_way", None) and args.grid != GRID_DEFAULT:
        parts.append(f"grid{args.grid}")
    if getattr(args, "two_way", None) and args.range:
        parts.append("range-" + "-".join(r.replace("=", "-").replace(":", "-") for r in args.range))
    if getattr(args, "low", None) is not None or getattr(args, "high", None) is not None:
        parts.append(f"range-{args.low}-{args.high}")
    if getattr(args, "report", None):
        parts.append("report")
    suffix = "".join("_" + re.sub(r"[^A-Za-z0-9_.+-]", "-", p) for p in parts)
    if len(suffix) > MAX_SUFFIX:
        suffix = "_" + hashlib.sha256(suffix.encode()).hexdigest()[:10]
    return suffix


def _command(args) -> str:
    return " ".join(args.argv)


def _strategies(args) -> list[str] | None:
    """``--strategies`` as a list of names: none empty, none twice."""
    if not args.strategies:
        return None
    names = [s.strip() for s in args.strategies.split(",")]
    for i, name in enumerate(names):
        if not name:
            raise CeaError(f"--strategies lists an empty name (at position {i + 1})")
        if name in names[:i]:
            raise CeaError(f"--strategies lists '{name}' twice")
    return names


def cli_run(args) -> int:
    """``cea run``: the base case for one country (and, with --report xlsx, the workbook with
    the checks ``cea check`` prints)."""
    from cea.pipeline.base import run_base_case
    from cea.pipeline.decision import decide
    from cea.report import base as report_base
    from cea.report.workbook import verification_summary, write_report
    from cea.verify import CHECK_PSA_DRAWS, check_table

    base = run_base_case(
        args.inputs, args.country, _scenario(args), _strategies(args), backend=args.backend
    )
    out = _out(args, report_base.default_run_name(base))
    decision = decide(base)
    table = check_table(base, psa_backend=args.backend) if args.report == "xlsx" else None
    with OutputDir(out, force=args.force) as tmp:
        report_base.write_base_outputs(base, tmp, _command(args))
        if table is not None:
            note = (
                f"As 'cea check': the PSA table checks on a short PSA of {CHECK_PSA_DRAWS} draws "
                "(seed from the settings) and the tornado check on the one-way DSA of the "
                "settings' comparisons."
            )
            write_report(base, tmp / "report.xlsx", _command(args), verification=table,
                         verification_note=note, decision=decision)  # fmt: skip
    print(report_base.summary_text(base, decision))
    if table is not None:
        print(verification_summary(table))
    print(f"\nwritten: {out}/")
    return EXIT_OK


def cli_dsa(args) -> int:
    """``cea dsa``: one-way tornado (default) or ``--two-way p1,p2`` grid; ``--report xlsx``
    (one-way only) adds report.xlsx: the base case as live formulas, sheet ``dsa`` the
    tornado ordered by the INMB swing with a bar chart, ``dsa_tornado_icer`` ordered for the
    ICER, and the verification sheet (base-case checks and the tornado check on it)."""
    from cea.parameters.designs import check_parameter
    from cea.pipeline import dsa
    from cea.pipeline.decision import decide
    from cea.report import base as report_base
    from cea.report import dsa as report_dsa
    from cea.report.workbook import verification_summary, write_report
    from cea.verify import check_table

    if args.report and args.two_way:
        raise CeaError(
            "--report xlsx is written for the one-way DSA only: drop --two-way, or --report"
        )
    if args.range and not args.two_way:
        raise CeaError("--range sets an axis of --two-way: give --two-way p1,p2 with it")
    base, comp = dsa.prepare(
        args.inputs, args.country, _scenario(args), args.comparison, keep_trace=bool(args.report),
        backend=args.backend,
    )  # fmt: skip
    code, suffix = base.country.code, report_dsa.scenario_suffix(base)
    if args.two_way:
        names = [p.strip() for p in args.two_way.split(",")]
        if len(names) != 2 or not all(names):
            raise CeaError(
                f"--two-way needs two parameters separated by a comma, got '{args.two_way}'"
            )
        for p in names:
            check_parameter(base.ptable, p)
        tw = dsa.run_two_way(base, names[0], names[1], comp, args.grid, _ranges(args.range))
        out = _out(args, f"twoway_{code}_{names[0]}_{names[1]}{suffix}")
        with OutputDir(out, force=args.force) as tmp:
            files = report_dsa.write_two_way(tw, tmp, _command(args))
        print(report_dsa.two_way_summary(tw))
        print("\n" + report_base.decision_text(base, decide(base, hazard_ratio=False)))
        print(f"\nwritten: {out}/ ({', '.join(files)})")
        return EXIT_OK
    ow = dsa.run_one_way(base)
    tables = dsa.one_way_tables(ow, comp)
    decision = decide(base)
    out = _out(args, f"dsa_{code}_{comp[0]}_vs_{comp[1]}{suffix}")
    table = check_table(base, {"tornado": tables.tornado_inmb}) if args.report == "xlsx" else None
    with OutputDir(out, force=args.force) as tmp:
        files = report_dsa.write_one_way(ow, comp, tables, tmp, _command(args))
        if table is not None:
            note = (
                f"The tornado check ran on this workbook's tornado ({comp[0]} vs {comp[1]}, "
                "sheet dsa); no PSA checks (no PSA in this run: cea psa --report xlsx)."
            )
            tornado = {"tornado": tables.tornado_inmb, "tornado_icer": tables.tornado_icer}
            write_report(base, tmp / "report.xlsx", _command(args), dsa=tornado,
                         verification=table, verification_note=note, decision=decision)  # fmt: skip
            files = sorted([*files, "report.xlsx"])
    shown = tables.tornado_inmb if args.outcome == "inmb" else tables.tornado_icer
    print(report_dsa.one_way_summary(ow, shown, args.outcome))
    print("\n" + report_base.decision_text(base, decision))
    if table is not None:
        print(verification_summary(table))
    print(f"\nwritten: {out}/ ({', '.join(files)})")
    return EXIT_OK


def _ranges(texts: list[str]) -> dict[str, tuple[float, float]]:
    """``--range NAME=LOW:HIGH`` options as name -> (low, high)."""
    out = {}
    for text in texts:
        name, sep, span = text.partition("=")
        lo, sep2, hi = span.partition(":")
        try:
            if not (sep and sep2 and name.strip()):
                raise ValueError
            span = (float(lo), float(hi))
        except ValueError:
            raise CeaError(
                f"--range '{text}': write NAME=LOW:HIGH, e.g. c_ivig_per_g=0:80"
            ) from None
        if name.strip() in out:
            raise CeaError(f"--range {name.strip()} is given twice")
        out[name.strip()] = span
    return out


def cli_scenarios(args) -> int:
    """``cea scenarios``: every scenario file beside the base case."""
    from cea.io.load import load_inputs
    from cea.pipeline import dsa
    from cea.report import dsa as report_dsa

    sc = dsa.run_scenarios(
        load_inputs(args.inputs), args.country, folder=args.dir, backend=args.backend
    )
    out = _out(args, f"scenarios_{sc.base.country.code}")
    with OutputDir(out, force=args.force) as tmp:
        files = report_dsa.write_scenarios(sc, tmp, _command(args))
    print(report_dsa.scenarios_summary(sc))
    print(f"\nwritten: {out}/ ({', '.join(files)})")
    return EXIT_OK


def cli_threshold(args) -> int:
    """``cea threshold``: the parameter value at which a comparison's INMB is zero."""
    from cea.parameters.designs import check_parameter
    from cea.pipeline import dsa
    from cea.pipeline.decision import decide
    from cea.report import base as report_base
    from cea.report import dsa as report_dsa

    base, comp = dsa.prepare(
        args.inputs, args.country, _scenario(args), args.comparison, backend=args.backend
    )
    check_parameter(base.ptable, args.parameter)
    th = dsa.find_threshold(base, args.parameter, comp, args.low, args.high)
    suffix = report_dsa.scenario_suffix(base)
    out = _out(
        args, f"threshold_{base.country.code}_{args.parameter}_{comp[0]}_vs_{comp[1]}{suffix}"
    )
    with OutputDir(out, force=args.force) as tmp:
        files = report_dsa.write_threshold(th, tmp, _command(args))
    print(report_dsa.threshold_summary(th))
    print("\n" + report_base.decision_text(base, decide(base, hazard_ratio=False)))
    print(f"\nwritten: {out}/ ({', '.join(files)})")
    return EXIT_OK


def cli_psa(args) -> int:
    """``cea psa``: PSA and value of information for one country or several; ``--report xlsx``
    (one country) adds report.xlsx: the base case as live formulas, the PSA sheets (summary,
    CEAC line chart, CE plane scatter chart, EVPI, EVPPI, convergence) and the verification
    sheet (base-case checks and the PSA table checks on these draws)."""
    if args.country and args.countries:
        raise CeaError("give --country or --countries, not both")
    if args.report and args.countries:
        raise CeaError("--report xlsx is written for one country: use --country, not --countries")
    if args.per_draw == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise CeaError("the per-draw Parquet files need pyarrow (pip install pyarrow); or use "
                       "--per-draw csv")  # fmt: skip

    from cea.pipeline import psa
    from cea.pipeline.parallel import process_seconds
    from cea.report import psa as report_psa

    many = bool(args.countries) and (
        args.countries.strip().lower() == "all" or len(args.countries.split(",")) > 1
    )
    run = psa.run_psa(
        args.inputs, args.countries or args.country, args.draws, args.seed,
        _scenario(args, one_country=not many),
        progress=None, backend=args.backend, workers=args.workers, evppi=not args.no_evppi,
    )  # fmt: skip
    codes = list(run.countries)
    every = bool(args.countries) and args.countries.strip().lower() == "all"
    out = _out(args, report_psa.default_run_name(codes, run.n_draws, every))
    table = None
    if args.report == "xlsx":
        from cea.pipeline.decision import decide
        from cea.report.workbook import verification_summary, write_report
        from cea.verify import check_table

        (c,) = run.countries.values()
        table = check_table(c.base, {"psa_draws": c.draws, "parameters": c.ptable,
                                     "ceac": c.tables.ceac, "evpi": c.tables.evpi})  # fmt: skip
        with OutputDir(out, force=args.force) as tmp:
            report_psa.write_country(c, run, tmp, _command(args), args.per_draw)
            note = (
                f"The PSA table checks ran on this PSA ({run.n_draws:,} draws, seed {run.seed}); "
                "no tornado check (no DSA in this run: cea dsa --report xlsx)."
            )
            write_report(c.base, tmp / "report.xlsx", _command(args), psa=c.tables,
                         verification=table, verification_note=note,
                         decision=decide(c.base))  # fmt: skip
    else:
        report_psa.write_outputs(run, out, _command(args), args.force, args.per_draw)
    for c in run.countries.values():
        print(report_psa.summary_text(c))
        print()
    model_s = sum(v for k, v in run.seconds.items() if k.startswith("model_"))
    print(
        f"model {model_s:.1f} s for {len(codes) * run.n_draws:,} country-draws; "
        f"total {process_seconds():.1f} s (the command's wall time, files written)"
    )
    if table is not None:
        print(verification_summary(table))
    print(f"written: {out}/")
    return EXIT_OK


def cli_budget(args) -> int:
    """``cea budget``: the budget impact of the new mix over the current one
    (``budget_mix.csv``), per calendar year, for one country or several."""
    from cea.io.load import load_inputs
    from cea.pipeline import budget, regional
    from cea.pipeline.base import resolve_country
    from cea.pipeline.decision import decide
    from cea.report import base as report_base
    from cea.report import budget as report_budget
    from cea.report.workbook import write_report

    if args.country and args.countries:
        raise CeaError("give --country or --countries, not both")
    if args.report and args.countries:
        raise CeaError("--report xlsx is written for one country: use --country, not --countries")
    inputs = load_inputs(args.inputs)
    many = bool(args.countries)
    scenario = _scenario(args, one_country=not many)
    codes = (
        regional.parse_countries(args.countries, inputs)
        if many
        else [resolve_country(inputs, scenario, args.country)]
    )
    every = many and args.countries.strip().lower() == "all"
    budgets = [budget.budget_impact(inputs, code, scenario, args.years) for code in codes]
    out = _out(args, report_budget.default_run_name(budgets, every))
    decision = decide(budgets[0].base) if len(budgets) == 1 else None
    with OutputDir(out, force=args.force) as tmp:
        files = report_budget.write_outputs(budgets, tmp, _command(args))
        if args.report == "xlsx":
            b = budgets[0]
            write_report(b.base, tmp / "report.xlsx", _command(args), budget=b,
                         decision=decision)  # fmt: skip
            files = sorted([*files, "report.xlsx"])
    if decision is not None:
        print(report_budget.summary_text(budgets[0]))
        print("\nThe decision among the strategies of the mix (costs and QALYs discounted):")
        print(report_base.decision_text(budgets[0].base, decision))
    else:
        print(report_budget.countries_summary(budgets))
    print(f"\nwritten: {out}/ ({', '.join(files)})")
    return EXIT_OK


def cli_compare(args) -> int:
    """``cea compare``: the regional comparison in local currency, US$ and PPP dollars, with
    the threshold Ig price per gram."""
    from cea.pipeline import regional
    from cea.report import regional as report_regional

    scenario = _scenario(args, one_country=False)
    out = _out(args, report_regional.default_run_name(scenario))
    if out.exists() and not args.force:  # before the runs, not after them
        raise CeaError(f"output folder {out} already exists: use --force to replace it, or --out")
    res = regional.compare_countries(args.inputs, args.countries, scenario, args.backend)
    with OutputDir(out, force=args.force) as tmp:
        report_regional.write_outputs(res, tmp, _command(args))
    print(report_regional.summary_text(res))
    print(f"\n{len(res.countries)} countries in {res.seconds:.1f} s; written: {out}/")
    return EXIT_OK


def cli_check(args) -> int:
    """``cea check``: the base-case checks, and the PSA/DSA table checks on a short PSA and the
    one-way DSA, for one country (and scenario); exit 1 if any fails."""
    from cea.pipeline.base import run_base_case
    from cea.verify import CHECK_PSA_DRAWS, check_table, format_checks

    base = run_base_case(args.inputs, args.country, _scenario(args), backend=args.backend)
    c = base.country
    print(
        f"cea check | {c.name} ({c.code}) | scenario: {base.ptable.scenario.name} | TECH-VER "
        f"black-box checks (Buyukkaramikli et al. 2019); PSA checks on {CHECK_PSA_DRAWS} draws\n"
    )
    table = check_table(base, psa_backend=args.backend)
    print(format_checks(table))
    return EXIT_OK if bool(table["passed"].all()) else EXIT_CHECK_FAILED


def cli_params(args) -> int:
    """``cea params``: every parameter of a country, after ``--scenario`` and ``--set``."""
    from cea.io.load import load_inputs
    from cea.parameters.table import build_parameter_table
    from cea.pipeline.base import resolve_country
    from cea.report import params as report_params

    inputs = load_inputs(args.inputs)
    scenario = _scenario(args)
    ptable = build_parameter_table(
        inputs, resolve_country(inputs, scenario, args.country), scenario
    )
    text = report_params.parameters_csv(ptable) if args.format == "csv" else (
        report_params.parameters_text(ptable)
    )  # fmt: skip
    print(text.rstrip("\n"))
    return EXIT_OK


def cli_template(args) -> int:
    """``cea template --out FILE.xlsx [--inputs DIR|FILE] [--force]``: every input table in
    one editable workbook."""
    from cea.io.template import write_template

    out = Path(args.out)
    if out.suffix.lower() != ".xlsx":
        raise CeaError(f"--out {out}: the template must be an .xlsx file")
    if args.force and out.exists() and out.resolve() == Path(args.inputs).resolve():  # read only
        raise CeaError(f"--force will not replace {out}: it is the input workbook")
    with OutputFile(out, force=args.force) as tmp:
        write_template(Path(args.inputs), tmp)
    print(
        f"written: {out} (every input table of {args.inputs}; edit it and run "
        f"`cea run --inputs {out}`)"
    )
    return EXIT_OK


COMMANDS = {
    "run": cli_run,
    "compare": cli_compare,
    "dsa": cli_dsa,
    "scenarios": cli_scenarios,
    "threshold": cli_threshold,
    "psa": cli_psa,
    "budget": cli_budget,
    "template": cli_template,
    "params": cli_params,
    "check": cli_check,
}


def _one_line(text: str) -> str:
    """A message on one line, control characters shown escaped (a cell's text may hold any)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def run() -> NoReturn:
    """The ``cea`` command and ``python -m cea``: :func:`main` on the process's arguments, then
    exit with its code. The objects still alive are left to the operating system at exit
    (``gc.freeze``) instead of Python's last collection going through them one by one, which
    takes 0.3-0.5 s after a PSA, after the printed total. Nothing is lost: every output is
    written, closed and moved into place, and every temporary file and folder removed, before
    :func:`main` returns; exit handlers run and streams are flushed as on any exit (finalizers
    of objects left in reference cycles do not run, and the command leaves none that writes)."""
    code = main()
    gc.freeze()
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import numpy as np  # after the arguments: --help and their errors need no NumPy

    args.argv = ["cea", *(sys.argv[1:] if argv is None else argv)]
    output.COMMITTED.clear()
    output.INPUTS[:] = [
        Path(v) for v in (getattr(args, k, None) for k in ("inputs", "scenario", "dir")) if v
    ]
    try:
        # an overflow in NumPy (a price of 1e308) is not printed as a warning: the model refuses
        # every non-finite result in one line (cea.analysis.outcomes, the engine's checks)
        if getattr(args, "out", None) is not None and not args.out.strip():
            raise CeaError("--out is empty: give a folder (or, for template, an .xlsx file)")
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return COMMANDS[args.command](args)
    except CeaError as exc:
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MemoryError:  # a size the memory checks (cea.pipeline.memory) did not foresee
        print("error: not enough memory for this run: use fewer draws, grid points or "
              "countries", file=sys.stderr)  # fmt: skip
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        # the reader of stdout went away (``cea run ... | head``): the files are complete;
        # point stdout at /dev/null so that Python's exit does not fail on flushing it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK if output.COMMITTED else EXIT_BAD_INPUT
    except OSError as exc:  # a write that failed: read-only or full disk, a name too long, ...
        where = exc.filename or "the output"
        reason = exc.strerror or type(exc).__name__
        print(f"error: cannot write {_one_line(str(where))}: {reason}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        if output.COMMITTED:  # the signal landed after the output was complete and in place
            done = ", ".join(f"{p}/" if p.is_dir() else str(p) for p in output.COMMITTED)
            print(f"interrupted after the output was complete: {done}", file=sys.stderr)
        else:
            print("interrupted: no output written", file=sys.stderr)
        return EXIT_INTERRUPTED

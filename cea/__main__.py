"""Command line: ``cea <command>`` or ``python -m cea <command>`` (see README).

Each command's work lives in its own module; this file only parses arguments and turns
user errors into one line on stderr with exit code 2 (no traceback, nothing written).

Exit codes: 0 success; 1 a verification check failed (``cea check``); 2 bad input or
options; 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from cea.errors import CeaError

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def _inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--inputs", default="inputs", help="inputs folder or Excel input workbook (default: inputs)"
    )
    p.add_argument(
        "--scenario", default=None, help="scenario TOML file (overrides settings and parameters)"
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

    p = sub.add_parser(
        "compare", help="regional comparison across countries, with threshold Ig prices"
    )
    p.add_argument(
        "--countries", default="all", help="'all' or a comma-separated list of ISO2 codes"
    )
    _inputs(p)
    _outputs(p)

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
    p.add_argument("--grid", type=int, default=11, help="grid points per parameter for --two-way")
    p.add_argument(
        "--report",
        choices=("xlsx",),
        default=None,
        help="also write report.xlsx: the base case as live formulas, the tornado with a bar "
        "chart and the verification checks (one-way only)",
    )
    _inputs(p)
    _outputs(p)

    p = sub.add_parser("scenarios", help="every scenario file beside the base case")
    p.add_argument("--country", default=None)
    p.add_argument(
        "--dir", default=None, help="folder of scenario TOML files (default: <inputs>/scenarios)"
    )
    p.add_argument("--inputs", default="inputs")
    _outputs(p)

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
    _inputs(p)
    _outputs(p)

    p = sub.add_parser("template", help="write every input table to one editable Excel workbook")
    p.add_argument("--out", required=True, help="workbook to write, e.g. my_inputs.xlsx")
    p.add_argument("--inputs", default="inputs")
    p.add_argument("--force", action="store_true")

    p = sub.add_parser("check", help="built-in verification (TECH-VER black-box checks)")
    p.add_argument("--country", default=None)
    _inputs(p)
    return parser


#: command -> (module, function). Each function takes the parsed args and returns an exit code.
COMMANDS = {
    "run": ("cea.run", "cli_run"),
    "compare": ("cea.regional", "cli_compare"),
    "dsa": ("cea.dsa", "cli_dsa"),
    "scenarios": ("cea.dsa", "cli_scenarios"),
    "threshold": ("cea.dsa", "cli_threshold"),
    "psa": ("cea.psa", "cli_psa"),
    "template": ("cea.io.workbook", "cli_template"),
    "check": ("cea.verify", "cli_check"),
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = ["cea", *(sys.argv[1:] if argv is None else argv)]
    module, func = COMMANDS[args.command]
    try:
        return getattr(importlib.import_module(module), func)(args)
    except CeaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        from cea.run import COMMITTED

        if COMMITTED:  # the signal landed after the output was complete and in place
            done = ", ".join(f"{p}/" for p in COMMITTED)
            print(f"interrupted after the output was complete: {done}", file=sys.stderr)
        else:
            print("interrupted: no output written", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

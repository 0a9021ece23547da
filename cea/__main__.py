"""Command line: ``cea run``, ``python -m cea run`` (see README)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cea.errors import CeaError

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--inputs", default="inputs", help="inputs folder (default: inputs)")
    p.add_argument("--scenario", default=None, help="scenario TOML file (overrides settings and parameters)")
    p.add_argument("--out", default=None, help="output folder (default: outputs/<scenario>_<country>)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cea", description="Cost-effectiveness of IgRT with bispecific antibodies in myeloma.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="base case for one country")
    run.add_argument("--country", default=None, help="ISO2 code (default: settings.toml [run] country)")
    run.add_argument("--strategies", default=None, help="comma-separated strategy ids (default: settings)")
    _common(run)
    return parser


class _ArgumentError(CeaError):
    pass


def _cmd_run(args) -> int:
    from cea.run import OutputDir, default_run_name, run_base_case, summary_text, write_base_outputs

    strategies = [s.strip() for s in args.strategies.split(",")] if args.strategies else None
    base = run_base_case(args.inputs, args.country, args.scenario, strategies)
    out = Path(args.out) if args.out else Path("outputs") / default_run_name(base)
    with OutputDir(out, force=args.force) as tmp:
        write_base_outputs(base, tmp, " ".join(["cea", *sys.argv[1:]]))
    print(summary_text(base))
    print(f"\nwritten: {out}/")
    return EXIT_OK


COMMANDS = {"run": _cmd_run}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except CeaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted: no output written", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

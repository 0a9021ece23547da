"""The package's layers (docs/conventions.md): each imports only the layers below it, with no
import circle anywhere, and no import hidden in a function to dodge one."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]


def test_layers_contract_of_import_linter_is_kept(monkeypatch, capsys):
    # the contract is in pyproject.toml ([tool.importlinter])
    monkeypatch.chdir(ROOT)
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "1 kept, 0 broken" in out


def test_no_import_circle_between_modules():
    graph = grimp.build_graph("cea")
    circles = [
        (a, b)
        for a in graph.modules
        for b in graph.find_modules_directly_imported_by(a)
        if graph.chain_exists(importer=b, imported=a)
    ]
    assert circles == []


def test_no_package_import_inside_a_function():
    # imports of cea modules sit at the top of each module; inside a function only an optional,
    # slow third-party import may sit (Numba, scipy.stats, matplotlib versions). The exception is
    # cea/cli.py, the top layer, which nothing imports (so it cannot hide a circle): each command
    # imports its own modules, so that a command and --help load only what they use
    hidden = []
    for path in (ROOT / "cea").rglob("*.py"):
        if path == ROOT / "cea" / "cli.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith("cea"):
                        hidden.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
                    if isinstance(inner, ast.Import) and any(
                        a.name.startswith("cea") for a in inner.names
                    ):
                        hidden.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
    assert hidden == []

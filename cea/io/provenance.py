"""The one provenance builder: what every ``run.json`` records about how it was made.

:func:`run_json` adds the package, its version, the git commit, Python and the versions of the
libraries that compute results to the sections the caller describes (country, scenario,
conventions, analysis settings), and the SHA-256 of every input file.
"""

from __future__ import annotations

import json
import platform
import subprocess
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _metadata_version
from pathlib import Path

import numpy as np
import pandas as pd

from cea import __version__


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


def _version(package: str) -> str | None:
    """An installed package's version, without importing it (None when not installed)."""
    try:
        return _metadata_version(package)
    except PackageNotFoundError:
        return None


def environment() -> dict:
    """Package, version, git commit, Python and library versions."""
    import matplotlib
    import openpyxl
    import scipy

    return {
        "package": "cea",
        "version": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "packages": {
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "scipy": scipy.__version__,
            "openpyxl": openpyxl.__version__,
            "matplotlib": matplotlib.__version__,
            "numba": _version("numba"),
        },
    }


def json_default(x):
    """JSON for NumPy scalars (a non-finite float as null) and arrays; anything else as text."""
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x) if np.isfinite(x) else None
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def dumps(meta: dict) -> str:
    """``run.json`` text: indented, NumPy values as JSON, a final newline."""
    return json.dumps(meta, indent=2, default=json_default) + "\n"


def run_json(command: str, sections: dict, input_hashes: dict[str, str]) -> dict:
    """The content of a ``run.json``: the environment, the command, the caller's sections and
    the SHA-256 of every input file."""
    return {
        **environment(),
        "command": command,
        **sections,
        "input_sha256": dict(sorted(input_hashes.items())),
    }

"""Fault injection on real file systems: a read-only and a full disk, made with tmpfs mounts
where the tests run as root and can mount (skipped otherwise). Each failed write is one line
``error: cannot write <path>: <reason>``, exit code 2, and nothing left on the disk.

The other fault classes of the reliability contract are tested beside the code they exercise:
``--force`` safety, signals, control characters and failing writes that need no mount in
``test_robustness.py``; damaged workbooks in ``test_io_workbook.py``; runs too large for memory
in ``test_pipeline_memory.py``; extreme numbers in ``test_cli.py`` and ``test_robustness.py``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cea.cli import main

INPUTS = Path(__file__).resolve().parents[1] / "inputs"
#: A file object left open by a failed write prints a traceback when it is collected.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture
def mount(tmp_path):
    """mount("ro") or mount("size=100k"): a fresh tmpfs under tmp_path, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = []

    def make(options: str) -> Path:
        where = tmp_path / f"mnt{len(mounted)}"
        where.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(where)
        return where

    yield make
    for where in mounted:
        subprocess.run(["umount", str(where)], check=False)


def _one_line_exit_2(capsys, args: list[str], target: Path, reason: str) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("error: cannot write ") and err.rstrip().endswith(reason), err
    assert str(target.parent) in err


@pytest.mark.parametrize(
    "command",
    [
        ["run", "--country", "GB", "--strategies", "none,primary_ivig"],
        ["template"],
    ],
)
def test_a_read_only_disk_is_one_line_and_nothing_written(mount, capsys, command):
    ro = mount("ro")
    target = ro / ("t.xlsx" if command == ["template"] else "out")
    _one_line_exit_2(
        capsys, [*command, "--inputs", str(INPUTS), "--out", str(target)], target,
        "Read-only file system",
    )  # fmt: skip
    assert list(ro.iterdir()) == []


@pytest.mark.parametrize(
    ("size", "command"),
    [
        ("100k", ["run", "--country", "GB"]),
        ("100k", ["template"]),
        ("1m", ["psa", "--country", "GB", "--draws", "2000", "--report", "xlsx"]),
    ],
)
def test_a_full_disk_is_one_line_and_nothing_left(mount, capsys, size, command):
    full = mount(f"size={size}")
    target = full / ("t.xlsx" if command == ["template"] else "out")
    _one_line_exit_2(
        capsys, [*command, "--inputs", str(INPUTS), "--out", str(target)], target,
        "No space left on device",
    )  # fmt: skip
    assert list(full.iterdir()) == []

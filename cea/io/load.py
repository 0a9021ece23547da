"""Inputs from a folder or from the Excel input workbook (``cea template``)."""

from __future__ import annotations

from pathlib import Path

from cea.io.inputs import Inputs, load_inputs_folder
from cea.io.workbook import FORBIDDEN_SUFFIXES, load_inputs_xlsx


def load_inputs(root: Path | str) -> Inputs:
    """Read and validate every table of an inputs folder, or of an input workbook (``.xlsx``;
    another spreadsheet format, such as ``.xlsm``, is refused by the workbook reader saying
    why)."""
    root = Path(root)
    if root.suffix.lower() == ".xlsx" or root.suffix.lower() in FORBIDDEN_SUFFIXES:
        return load_inputs_xlsx(root)
    return load_inputs_folder(root)

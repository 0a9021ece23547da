"""Writing tables as CSV files for analysts who open them in a spreadsheet."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

#: A text cell starting with one of these is read as a formula by a spreadsheet (OWASP, "CSV
#: Injection"): such cells are written with a leading apostrophe, which shows the text as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralised(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every text cell that a spreadsheet would read as a formula prefixed by an
    apostrophe; numbers are left as they are (a negative number is a number, not text)."""
    out = None
    for col in df.columns:
        values = df[col]
        if values.dtype.kind not in "OSU" and not isinstance(values.dtype, pd.StringDtype):
            continue
        risky = values.map(lambda v: isinstance(v, str) and v.startswith(FORMULA_STARTS))
        if risky.any():
            out = df.copy() if out is None else out
            out[col] = values.where(~risky, "'" + values.astype(str))
    return df if out is None else out


def write_csv(df: pd.DataFrame, path: Path | str, **options) -> None:
    """``df.to_csv(path, index=False, **options)`` with formula-like text neutralised."""
    neutralised(df).to_csv(path, index=False, **options)

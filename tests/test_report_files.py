"""CSV outputs (cea.report.files): formula-like text is neutralised for spreadsheets."""

from __future__ import annotations

import pandas as pd

from cea.report.files import write_csv


def test_formula_like_text_is_written_as_text_and_numbers_are_untouched(tmp_path):
    # OWASP CSV injection: a cell starting with = + - @ tab or CR is prefixed with an apostrophe
    df = pd.DataFrame(
        {
            "label": ['=HYPERLINK("http://x","y")', "+cmd", "@SUM(A1)", "-1+1", "plain", None],
            "value": [-1.5, 2.0, 3.0, -4.0, 5.0, 6.0],
        }
    )
    path = tmp_path / "t.csv"
    write_csv(df, path)
    back = pd.read_csv(path)
    assert back["label"].tolist()[:5] == [
        "'=HYPERLINK(\"http://x\",\"y\")", "'+cmd", "'@SUM(A1)", "'-1+1", "plain"
    ]  # fmt: skip
    assert back["value"].tolist() == df["value"].tolist()  # negative numbers stay numbers
    assert df["label"].iloc[0].startswith("=")  # the caller's table is not changed

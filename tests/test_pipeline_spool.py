"""The PSA's per-draw outcomes on disk (cea.pipeline.spool) and their CSV writer
(cea.report.psa.csv_text, write_csv_gz): the numbers come back bit for bit, in the order of
outcomes.csv.gz, and the text is the one pandas writes."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from cea.errors import CeaError
from cea.pipeline.spool import OutcomeStore
from cea.report import psa as report_psa
from cea.report.files import write_csv


def test_blocks_come_back_bit_for_bit_in_strategy_then_draw_order():
    rng = np.random.default_rng(3)
    K, D, C = 3, 23, 4
    full = rng.normal(size=(K, D, C)) * 10.0 ** rng.integers(-8, 9, size=(K, D, C))
    store = OutcomeStore(["a", "b", "c"], np.arange(100, 100 + D), ["w", "x", "y", "z"])
    for lo, hi in ((15, 23), (0, 5), (5, 15)):  # chunks may arrive in any order
        store.put(lo, full[:, lo:hi])
    slow = pd.DataFrame(
        {
            "draw": np.tile(np.arange(100, 100 + D), K),
            "strategy": np.repeat(["a", "b", "c"], D),
            **{c: full[:, :, j].reshape(-1) for j, c in enumerate("wxyz")},
        }
    )
    pd.testing.assert_frame_equal(store.frame(), slow, check_exact=True)
    np.testing.assert_array_equal(store.column("x", rows=4), full[:, :, 1].T)
    blocks = list(store.frames(rows=7))
    assert max(len(b) for b in blocks) == 7
    pd.testing.assert_frame_equal(pd.concat(blocks, ignore_index=True), slow, check_exact=True)
    with pytest.raises(CeaError, match="outcome block"):
        store.put(20, full[:, :5])
    store.close()


def _pandas_text(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, lineterminator="\n")


@pytest.mark.parametrize(
    "values",
    [
        [0.1, 1e16, 1e-5, -0.0, 123456789012345680.0, 5e-324, 1.7976931348623157e308, 3.0],
        [np.nan, 1.0],  # pandas writes an empty cell: through pandas
        [np.inf, -1.0],
    ],
)
def test_csv_text_is_the_text_pandas_writes(values):
    df = pd.DataFrame({"draw": np.arange(len(values)), "strategy": "none", "x": values})
    df["flag"] = df["draw"] > 0
    assert report_psa.csv_text(df) == _pandas_text(df)
    assert report_psa.csv_text(df, header=False) == _pandas_text(df).split("\n", 1)[1]


@pytest.mark.parametrize("text", ["a,b", 'say "x"', "=1+1", "-x", ""])
def test_csv_text_of_text_that_needs_quoting_or_neutralising_goes_through_pandas(tmp_path, text):
    df = pd.DataFrame({"name": [text, "plain"], "x": [1.5, 2.5]})
    write_csv(df, tmp_path / "a.csv", lineterminator="\n")
    assert report_psa.csv_text(df) == (tmp_path / "a.csv").read_text()


def test_random_tables_match_pandas():
    rng = np.random.default_rng(0)
    a = rng.gamma(2.0, 1000.0, (2000, 6)) * rng.choice([1.0, 1e-6, 1e5, 1e-300], (2000, 6))
    df = pd.DataFrame(a, columns=[f"c{j}" for j in range(6)])
    df.insert(0, "strategy", np.repeat(["none", "primary_ivig"], 1000))
    df.insert(0, "draw", np.arange(2000))
    assert report_psa.csv_text(df) == _pandas_text(df)


def test_gzip_of_blocks_is_the_table_written_at_once(tmp_path):
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"draw": np.arange(1000), "x": rng.normal(size=1000)})
    report_psa.write_csv_gz(
        (df.iloc[lo : lo + 300] for lo in range(0, 1000, 300)), tmp_path / "a.csv.gz"
    )
    assert gzip.decompress((tmp_path / "a.csv.gz").read_bytes()).decode() == _pandas_text(df)

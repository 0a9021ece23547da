"""The outcomes table (cea.analysis.outcomes): the contract between the model and the analyses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cea.analysis.outcomes import validate_outcomes
from cea.errors import CeaError

# --------------------------------------------------------------------------- outcomes table


def _outcomes_table():
    df = pd.DataFrame(
        {
            "draw": [0, 0, 1, 1],
            "strategy": ["a", "b", "a", "b"],
            "cost": [1.0, 2.0, 3.0, 4.0],
            "qaly": [0.5, 0.6, 0.7, 0.8],
            "ly": [1.0, 1.0, 1.0, 1.0],
        }
    )
    return validate_outcomes, df


def test_outcomes_table_accepts_a_balanced_finite_panel():
    validate, df = _outcomes_table()
    assert validate(df) is df


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda df: df.drop(columns="ly"), "lack the columns ly"),
        (lambda df: pd.concat([df, df.iloc[[1]]]), "draw 0, strategy 'b' twice"),
        (lambda df: df.drop(index=3), "draw 1 has 1 of the 2 strategies"),
        (lambda df: df.assign(cost=[1.0, np.inf, 3.0, 4.0]), "cost is inf at draw 0, strategy 'b'"),
        (lambda df: df.assign(qaly=[0.5, 0.6, np.nan, 0.8]), "qaly is nan at draw 1, strategy 'a'"),
    ],
)
def test_outcomes_table_refuses_what_breaks_the_contract(change, message):
    validate, df = _outcomes_table()
    with pytest.raises(CeaError, match=message):
        validate(change(df), "test")

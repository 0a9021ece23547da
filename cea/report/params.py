"""``cea params``: every parameter of a country (after a scenario and ``--set``) with its value,
DSA range, distribution, unit, evidence tag and source, as text or CSV."""

from __future__ import annotations

import io

import pandas as pd

from cea.parameters.table import ParameterTable

#: The columns ``cea params`` lists, in order.
COLUMNS = ("parameter", "value", "dsa_low", "dsa_high", "dist", "unit", "category", "evidence",
           "price_year", "origin", "source")  # fmt: skip


def parameters_frame(ptable: ParameterTable) -> pd.DataFrame:
    """One row per parameter: the table's columns, with the range the one-way DSA uses
    (the row's low/high, else the 2.5th and 97.5th percentiles of its distribution)."""
    df = ptable.df
    ranges = [ptable.dsa_range(n) for n in df.index]
    out = pd.DataFrame(
        {
            "parameter": df.index,
            "value": df["value"].astype(float).to_numpy(),
            "dsa_low": [lo for lo, _ in ranges],
            "dsa_high": [hi for _, hi in ranges],
            "dist": df["dist"].to_numpy(),
            "unit": df["unit"].to_numpy(),
            "category": df["category"].to_numpy(),
            "evidence": df["evidence"].to_numpy(),
            "price_year": pd.array(df["price_year"].to_numpy(), dtype="Int64"),
            "origin": df["origin"].to_numpy(),
            "source": df["source"].to_numpy(),
        }
    )
    return out[list(COLUMNS)]


def parameters_text(ptable: ParameterTable) -> str:
    """The parameters as an aligned table for the terminal; the source last, whole."""
    c = ptable.country
    frame = parameters_frame(ptable)
    head = (
        f"{len(frame)} parameters | {c.name} ({c.code}) | scenario: {ptable.scenario.name} | "
        f"prices in {c.currency} {c.price_year} | DSA range: low/high of the row, else the "
        "2.5th-97.5th percentiles of its distribution"
    )
    cols = [
        ("parameter", "<", lambda v: str(v)),
        ("value", ">", _num),
        ("dsa_low", ">", _num),
        ("dsa_high", ">", _num),
        ("dist", "<", str),
        ("unit", "<", str),
        ("evidence", "<", str),
    ]
    cells = [[fmt(r[name]) for name, _, fmt in cols] for _, r in frame.iterrows()]
    widths = [
        max(len(name), *(len(row[i]) for row in cells)) for i, (name, _, _) in enumerate(cols)
    ]
    line = lambda values: "  ".join(  # noqa: E731
        f"{v:{align}{w}}" for v, (_, align, _), w in zip(values, cols, widths, strict=True)
    )
    rows = [head, "", line([n for n, _, _ in cols]) + "  source", "-" * (sum(widths) + 20)]
    for cell, (_, r) in zip(cells, frame.iterrows(), strict=True):
        rows.append(f"{line(cell)}  {r['source']}")
    return "\n".join(rows)


def parameters_csv(ptable: ParameterTable) -> str:
    buf = io.StringIO()
    parameters_frame(ptable).to_csv(buf, index=False)
    return buf.getvalue()


def _num(v) -> str:
    v = float(v)
    return f"{v:,.6g}" if abs(v) < 1e6 else f"{v:,.0f}"

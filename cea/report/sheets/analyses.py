"""The optional sheets of the analyses (engine values): dsa (tornado table with a native bar
chart), psa, psa_ceac (line chart), psa_ce_plane (scatter chart), regional, and a sheet
``<analysis>_<key>`` for every other table passed."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import pandas as pd
from openpyxl.chart import BarChart, LineChart, Reference, ScatterChart, Series
from openpyxl.utils import get_column_letter

from cea.errors import CeaError
from cea.report.sheets.cells import (
    FMT_GENERAL,
    FMT_PROB,
    clean,
    finish_sheet,
    put,
    write_header,
    write_title,
)
from cea.report.sheets.state import ReportState

#: Largest number of draws per series drawn on the CE plane chart (the table holds them all).
CE_PLANE_MAX_POINTS = 5000


# ---------------------------------------------------------------------- tables
def frame_sheet(
    rs: ReportState, name: str, df: pd.DataFrame, title: str, note: str = "", start_row: int = 4
):
    """A sheet holding one table (its header on ``start_row``); returns it and the table."""
    ws = rs.sheet(name)
    write_title(ws, title, note)
    df = df.reset_index(drop=not _has_named_index(df))
    write_header(ws, start_row, [str(c) for c in df.columns])
    for i, row in enumerate(df.itertuples(index=False)):
        for j, value in enumerate(row):
            col = str(df.columns[j])
            if isinstance(value, (bool, np.bool_)):
                value = str(bool(value))
            put(ws, start_row + 1 + i, j + 1, value, _fmt_for(rs, col, value))
    widths = {j + 1: max(12, min(40, len(str(c)) + 4)) for j, c in enumerate(df.columns)}
    finish_sheet(ws, widths, freeze=f"A{start_row + 1}")
    return ws, df


def _fmt_for(rs: ReportState, col: str, value) -> str | None:
    if not isinstance(value, (int, float, np.number)) or isinstance(value, bool):
        return None
    lc = col.lower()
    if (
        any(k in lc for k in ("cost", "nmb", "icer", "price", "wtp", "evpi", "inmb", "value"))
        and "qaly" not in lc
    ):
        return rs.money
    if lc.startswith(("p_", "prob")) or "probability" in lc:
        return FMT_PROB
    return FMT_GENERAL


def _other_frames(rs: ReportState, frames: dict, prefix: str, title: str) -> list[str]:
    """A sheet ``<prefix>_<key>`` for every other table of an analysis."""
    made = []
    for key, df in frames.items():
        if isinstance(df, pd.DataFrame):
            ws, _ = frame_sheet(rs, f"{prefix}_{key}", df, f"{title}: {key}")
            made.append(ws.title)
    return made


def frames_of(obj, default_key: str) -> dict[str, pd.DataFrame]:
    """Tables passed for an optional analysis: a DataFrame, a mapping or a dataclass of them.
    A dict entry (e.g. a headline) becomes a key/value table; other entries are ignored."""
    if obj is None:
        return {}
    if isinstance(obj, pd.DataFrame):
        return {default_key: obj}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if not isinstance(obj, Mapping):
        raise CeaError(
            f"report: {default_key} must be a DataFrame or a mapping of DataFrames, got {type(obj).__name__}"
        )
    out = {}
    for key, value in obj.items():
        if isinstance(value, pd.DataFrame):
            out[str(key)] = value
        elif isinstance(value, Mapping) and value:
            out[str(key)] = pd.DataFrame(
                {
                    "key": [str(k) for k in value],
                    "value": [
                        clean(v) if isinstance(v, (int, float, np.number)) else str(v)
                        for v in value.values()
                    ],
                }
            )
    return out


def _has_named_index(df: pd.DataFrame) -> bool:
    return df.index.name is not None or not isinstance(df.index, pd.RangeIndex)


# ---------------------------------------------------------------------- dsa
def write_dsa(rs: ReportState, dsa) -> list[str]:
    frames = frames_of(dsa, "tornado")
    made = []
    tornado = frames.pop("tornado", None)
    if tornado is not None:
        ws, df = frame_sheet(
            rs,
            "dsa",
            tornado,
            "One-way sensitivity analysis: tornado table (engine values)",
            "inmb_low / inmb_high: incremental net monetary benefit at the parameter's low / high value.",
        )
        made.append(ws.title)
        if {"parameter", "inmb_low", "inmb_high"} <= set(df.columns) and len(df):
            _tornado_chart(rs, ws, df)
    return made + _other_frames(rs, frames, "dsa", "Deterministic sensitivity analysis")


def _tornado_chart(rs: ReportState, ws, df: pd.DataFrame):
    cols = list(df.columns)
    chart = BarChart()
    chart.type = "bar"
    chart.grouping = "clustered"
    chart.overlap = 100
    chart.title = "Tornado: INMB at each parameter's low and high value"
    chart.y_axis.title = f"INMB ({rs.country.currency})"
    lo, hi = cols.index("inmb_low") + 1, cols.index("inmb_high") + 1
    for cidx in (lo, hi):
        chart.add_data(
            Reference(ws, min_col=cidx, min_row=4, max_row=4 + len(df)),
            titles_from_data=True,
        )
    chart.set_categories(
        Reference(ws, min_col=cols.index("parameter") + 1, min_row=5, max_row=4 + len(df))
    )
    chart.height = max(7.5, 0.5 * len(df) + 3)
    chart.width = 18
    ws.add_chart(chart, f"{get_column_letter(len(cols) + 2)}4")


# ---------------------------------------------------------------------- psa
def write_psa(rs: ReportState, psa) -> list[str]:
    frames = frames_of(psa, "summary")
    made = []
    summary = frames.pop("summary", None)
    if summary is not None:
        ws, _ = frame_sheet(
            rs, "psa", summary, "Probabilistic sensitivity analysis: summary (engine values)"
        )
        made.append(ws.title)
    ceac = frames.pop("ceac", None)
    if ceac is not None:
        made.append(_ceac_sheet(rs, ceac))
    plane = frames.pop("ce_plane", None)
    if plane is not None:
        made.append(_ce_plane_sheet(rs, plane))
    return made + _other_frames(rs, frames, "psa", "Probabilistic sensitivity analysis")


def _ceac_sheet(rs: ReportState, ceac: pd.DataFrame) -> str:
    ws, df = frame_sheet(
        rs,
        "psa_ceac",
        _wide_ceac(ceac),
        "Cost-effectiveness acceptability curves: probability each strategy has the highest NMB",
        "wtp per QALY in the first column; one column per strategy.",
    )
    if len(df) and df.shape[1] > 1:
        chart = LineChart()
        chart.title = "CEAC"
        chart.y_axis.title = "probability cost-effective"
        chart.x_axis.title = f"WTP per QALY ({rs.country.currency})"
        chart.y_axis.scaling.min = 0
        chart.y_axis.scaling.max = 1
        chart.add_data(
            Reference(ws, min_col=2, max_col=df.shape[1], min_row=4, max_row=4 + len(df)),
            titles_from_data=True,
        )
        chart.set_categories(Reference(ws, min_col=1, min_row=5, max_row=4 + len(df)))
        chart.width, chart.height = 20, 10
        ws.add_chart(chart, f"{get_column_letter(df.shape[1] + 2)}4")
    return ws.title


def _wide_ceac(df: pd.DataFrame) -> pd.DataFrame:
    """A CEAC as wtp x strategy; a long table (wtp, strategy, probability) is pivoted."""
    cols = set(df.columns)
    if {"wtp", "strategy"} <= cols:
        value = next(
            (c for c in ("probability", "prob", "p_cost_effective", "value") if c in cols), None
        )
        if value is not None:
            wide = df.pivot_table(index="wtp", columns="strategy", values=value, sort=False)
            wide.columns = [str(c) for c in wide.columns]
            return wide.reset_index()
    if "wtp" not in cols and df.index.name:
        df = df.reset_index()
    return df


def _ce_plane_sheet(rs: ReportState, plane: pd.DataFrame) -> str:
    ws, df = frame_sheet(
        rs,
        "psa_ce_plane",
        plane,
        "Cost-effectiveness plane: incremental cost and QALYs per draw",
    )
    cols = list(df.columns)
    if {"inc_cost", "inc_qaly"} <= set(cols) and len(df):
        chart = ScatterChart()
        chart.title = "CE plane"
        chart.style = 13
        chart.x_axis.title = "incremental QALYs"
        chart.y_axis.title = f"incremental cost ({rs.country.currency})"
        xc, yc = cols.index("inc_qaly") + 1, cols.index("inc_cost") + 1
        for label, a, z in _plane_groups(df):
            z = min(
                z, a + CE_PLANE_MAX_POINTS - 1
            )  # the table holds all draws, the chart the first
            s = Series(
                Reference(ws, min_col=yc, min_row=a, max_row=z),
                Reference(ws, min_col=xc, min_row=a, max_row=z),
                title=label,
            )
            s.marker.symbol = "circle"
            s.marker.size = 3
            s.graphicalProperties.line.noFill = True
            chart.series.append(s)
        chart.width, chart.height = 20, 12
        ws.add_chart(chart, f"{get_column_letter(len(cols) + 2)}4")
    return ws.title


def _plane_groups(df: pd.DataFrame) -> list[tuple]:
    """(label, first row, last row) of each series: consecutive rows of one comparison (or
    strategy); one unlabelled series when the table has neither column."""
    by = next((c for c in ("comparison", "strategy") if c in df.columns), None)
    if by is None:
        return [(None, 5, 4 + len(df))]
    groups = []
    labels = df[by].astype(str).tolist()
    start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            groups.append((labels[start], 5 + start, 4 + i))
            start = i
    return groups


# ---------------------------------------------------------------------- regional
def write_regional(rs: ReportState, regional) -> list[str]:
    made = []
    for key, df in frames_of(regional, "regional").items():
        name = "regional" if key == "regional" else f"regional_{key}"
        ws, _ = frame_sheet(
            rs,
            name,
            df,
            "Regional comparison (engine values): local currency, US$ and international $ (PPP)"
            if key == "regional"
            else f"Regional comparison: {key}",
        )
        made.append(ws.title)
    return made

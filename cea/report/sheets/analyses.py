"""The optional sheets of the analyses (engine values): dsa (tornado table with a native bar
chart), psa, psa_ceac (line chart), psa_ce_plane (scatter chart), regional, and a sheet
``<analysis>_<key>`` for every other table passed."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import pandas as pd
from openpyxl.chart import BarChart, Reference, ScatterChart, Series
from openpyxl.chart.shapes import GraphicalProperties
from openpyxl.utils import get_column_letter

from cea.analysis import psa as analysis_psa
from cea.errors import CeaError
from cea.report.sheets.cells import (
    FMT_GENERAL,
    FMT_PROB,
    NOTE_FONT,
    clean,
    finish_sheet,
    put,
    put_formula,
    write_header,
    write_title,
)
from cea.report.sheets.state import ReportState

#: Largest number of draws per series drawn on the CE plane chart.
CE_PLANE_MAX_POINTS = 5000
#: Rows of an engine table a sheet prints at most (the sheet holds them all).
PRINTED_ROWS = 100
#: Rows of draws the CE plane sheet prints (the chart beside them shows up to
#: CE_PLANE_MAX_POINTS per series; the sheet holds the draws of the analysis's CE-plane table).
CE_PLANE_PRINTED_ROWS = 40
#: Marker colours of the CE plane's series (Okabe & Ito 2008, colour-blind safe).
PLANE_COLOURS = ("0072B2", "E69F00", "009E73", "CC79A7", "56B4E9", "D55E00", "F0E442", "000000")


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
    if len(df) > PRINTED_ROWS:  # a long table (draws, a WTP grid) prints its first rows
        put(ws, start_row - 1, 1, f"printed: the first {PRINTED_ROWS} of {len(df):,} rows; "
            "the sheet holds them all", font=NOTE_FONT)  # fmt: skip
        ws.print_area = f"A1:{get_column_letter(max(1, len(df.columns)))}{start_row + PRINTED_ROWS}"
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
    """A tornado around the base case: for each parameter that moves the INMB (largest swing
    on top), bars from the base case to the INMB at its low and at its high value, drawn from
    a small table of the changes beside the tornado table."""
    if "inmb_base" in df.columns:
        base = df["inmb_base"].astype(float)
    else:  # a table without its base: the bars start at 0
        base = pd.Series(0.0, index=df.index)
    low = df["inmb_low"].astype(float) - base
    high = df["inmb_high"].astype(float) - base
    swing = (low.abs() + high.abs()).fillna(0.0)
    order = swing[swing > 0].sort_values(ascending=False, kind="stable").index
    if not len(order):
        return
    cur = rs.country.currency
    c0 = len(df.columns) + 2  # the chart's table: label, low - base, high - base
    put(ws, 4, c0, "parameter [low to high]")
    put(ws, 4, c0 + 1, "low value: change in INMB")
    put(ws, 4, c0 + 2, "high value: change in INMB")
    for i, k in enumerate(order):
        r = df.loc[k]
        label = str(r["parameter"])
        for lo_col, hi_col in (("low", "high"), ("low_value", "high_value")):
            if {lo_col, hi_col} <= set(df.columns):
                label += f" [{r[lo_col]:.4g} to {r[hi_col]:.4g}]"
                break
        put(ws, 5 + i, c0, label)
        put(ws, 5 + i, c0 + 1, float(low[k]) if np.isfinite(low[k]) else None, rs.money)
        put(ws, 5 + i, c0 + 2, float(high[k]) if np.isfinite(high[k]) else None, rs.money)
    last = 4 + len(order)
    chart = BarChart()
    chart.type = "bar"
    chart.grouping = "clustered"
    chart.overlap = 100
    chart.gapWidth = 40
    base_value = float(base.iloc[0]) if len(base) else 0.0
    chart.title = f"Tornado: change in INMB from the base case ({cur} {base_value:,.0f})"
    chart.y_axis.title = f"change in INMB ({cur})"
    chart.y_axis.numFmt = "#,##0"
    chart.y_axis.delete = False
    chart.x_axis.delete = False
    chart.x_axis.scaling.orientation = "maxMin"  # the largest swing on top
    chart.x_axis.tickLblPos = "low"  # labels at the left edge, not on the bars
    for cidx in (c0 + 1, c0 + 2):
        chart.add_data(Reference(ws, min_col=cidx, min_row=4, max_row=last), titles_from_data=True)
    chart.set_categories(Reference(ws, min_col=c0, min_row=5, max_row=last))
    chart.height = max(7.5, 0.55 * len(order) + 3)
    chart.width = 22
    ws.column_dimensions[get_column_letter(c0)].width = 40
    ws.add_chart(chart, f"{get_column_letter(c0 + 4)}4")


# ---------------------------------------------------------------------- psa
def write_psa(rs: ReportState, psa) -> list[str]:
    # an empty table (the EVPPI of a run that left it out) gets no sheet
    frames = {k: v for k, v in frames_of(psa, "summary").items() if len(v)}
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
        chart = ScatterChart()  # a numeric WTP axis: the switch points sit where they are
        chart.title = "CEAC"
        chart.style = 13
        chart.y_axis.title = "probability cost-effective"
        chart.x_axis.title = f"WTP per QALY ({rs.country.currency})"
        chart.x_axis.numFmt = "#,##0"
        chart.y_axis.scaling.min = 0
        chart.y_axis.scaling.max = 1
        chart.x_axis.delete = False
        chart.y_axis.delete = False
        last = 4 + len(df)
        xs = Reference(ws, min_col=1, min_row=5, max_row=last)
        for j in range(2, df.shape[1] + 1):
            s = Series(Reference(ws, min_col=j, min_row=4, max_row=last), xs, title_from_data=True)
            s.marker.symbol = "none"
            s.smooth = False
            chart.series.append(s)
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
    groups = _plane_groups(plane)
    per_series = max((z - a + 1 for _, a, z in groups), default=0)
    ws, df = frame_sheet(
        rs,
        "psa_ce_plane",
        plane,
        "Cost-effectiveness plane: incremental cost and QALYs per draw",
        f"{per_series:,} draws a series: the PSA's first (at most {analysis_psa.CE_PLANE_DRAWS:,}); every "
        "draw is in the per-draw outcomes file.",
    )
    cols = list(df.columns)
    if {"inc_cost", "inc_qaly"} <= set(cols) and len(df):
        chart = ScatterChart()
        chart.title = "CE plane"
        chart.style = 13
        chart.x_axis.title = "incremental QALYs"
        chart.y_axis.title = f"incremental cost ({rs.country.currency})"
        xc, yc = cols.index("inc_qaly") + 1, cols.index("inc_cost") + 1
        chart.x_axis.delete = False
        chart.y_axis.delete = False
        chart.x_axis.numFmt = "0.000"
        chart.y_axis.numFmt = "#,##0"
        for k, (label, a, z) in enumerate(_plane_groups(df)):
            z = min(
                z, a + CE_PLANE_MAX_POINTS - 1
            )  # the chart shows the first draws of each series
            s = Series(
                Reference(ws, min_col=yc, min_row=a, max_row=z),
                Reference(ws, min_col=xc, min_row=a, max_row=z),
                title=label,
            )
            colour = PLANE_COLOURS[k % len(PLANE_COLOURS)]
            s.marker.symbol = "circle"
            s.marker.size = 4
            s.marker.graphicalProperties = GraphicalProperties(solidFill=colour)
            s.marker.graphicalProperties.line.solidFill = colour
            s.graphicalProperties.line.noFill = True
            chart.series.append(s)
        # the WTP line through the origin, over the plane's QALY range: cost = WTP x QALYs
        wc = len(cols) + 2
        put(ws, 3, wc, "WTP line")
        put(ws, 4, wc, "incremental QALYs")
        put(ws, 4, wc + 1, "WTP x QALYs")
        q = f"{get_column_letter(xc)}5:{get_column_letter(xc)}{4 + len(df)}"
        for i, f in enumerate((f"MIN(0,MIN({q}))", f"MAX(0,MAX({q}))")):
            put_formula(ws, 5 + i, wc, f, FMT_GENERAL)
            put_formula(ws, 5 + i, wc + 1, f"wtp_per_qaly*{get_column_letter(wc)}{5 + i}", rs.money)
        line = Series(
            Reference(ws, min_col=wc + 1, min_row=5, max_row=6),
            Reference(ws, min_col=wc, min_row=5, max_row=6),
            title=f"WTP {rs.country.currency} {rs.country.wtp_per_qaly:,.0f} per QALY",
        )
        line.marker.symbol = "none"
        line.graphicalProperties.line.solidFill = "000000"
        line.graphicalProperties.line.dashStyle = "dash"
        chart.series.append(line)
        chart.width, chart.height = 20, 12
        ws.add_chart(chart, f"{get_column_letter(len(cols) + 5)}4")
        # printed: the chart and the first draws (the sheet holds them all)
        last = min(4 + len(df), 4 + CE_PLANE_PRINTED_ROWS)
        ws.print_area = f"A1:{get_column_letter(len(cols) + 16)}{max(last, 30)}"
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

"""What every figure shares: one colour and marker per strategy, money axes (currency, price
year, thousands separators), parameter labels with their units, and laying out and saving as
PNG + SVG.

Strategy styles are keyed by the strategy id (``strategies.csv``), never by the position of a
strategy in a run, so a strategy looks the same in every figure whatever subset of strategies
is run. Colours are the Okabe & Ito (2008) colour-blind-safe set, then Paul Tol's "muted"
scheme (https://personal.sron.nl/~pault/), each paired with a distinct marker so that no two
bundled strategies depend on colour alone.
"""

from __future__ import annotations

import math
import re
import sys
import warnings
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib import pyplot as plt
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import Formatter

DPI = 150
#: Salt of the ids Matplotlib gives the paths and glyphs of an SVG: fixed, so that the same
#: figure gives the same bytes in every run (unset, it is random in each process).
SVG_HASH_SALT = "cea"


@dataclass(frozen=True)
class StrategyStyle:
    colour: str
    marker: str


#: One fixed colour and marker per bundled strategy id: IVIG in blues and greens, SCIG in
#: oranges, the comparator without IgRT in dark grey.
STRATEGY_STYLES: dict[str, StrategyStyle] = {
    "none": StrategyStyle("#4d4d4d", "s"),
    "preemptive_ivig": StrategyStyle("#0072b2", "^"),
    "preemptive_scig": StrategyStyle("#d55e00", "v"),
    "primary_ivig": StrategyStyle("#56b4e9", "o"),
    "primary_scig": StrategyStyle("#e69f00", "D"),
    "primary_ivig_q6w": StrategyStyle("#009e73", "P"),
    "primary_ivig_low_dose": StrategyStyle("#cc79a7", "X"),
    "primary_ivig_adjbw": StrategyStyle("#882255", "h"),
    "primary_ivig_flat30": StrategyStyle("#44aa99", "p"),
    "primary_ivig_vial5": StrategyStyle("#999933", "*"),
    "secondary_ivig": StrategyStyle("#332288", "<"),
    "preemptive_ivig_or_infection": StrategyStyle("#aa4499", ">"),
}
#: For a strategy id not in STRATEGY_STYLES (one an analyst adds to strategies.csv): a colour and
#: marker chosen from the id's CRC-32, so it is the same in every figure and every run.
FALLBACK_COLOURS = ("#117733", "#88ccee", "#ddcc77", "#cc6677", "#661100", "#6699cc", "#888888")
FALLBACK_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "h")


def strategy_style(strategy: str) -> StrategyStyle:
    """The colour and marker of a strategy id in every figure."""
    if strategy in STRATEGY_STYLES:
        return STRATEGY_STYLES[strategy]
    h = zlib.crc32(str(strategy).encode("utf-8"))
    return StrategyStyle(
        FALLBACK_COLOURS[h % len(FALLBACK_COLOURS)],
        FALLBACK_MARKERS[(h // len(FALLBACK_COLOURS)) % len(FALLBACK_MARKERS)],
    )


def strategy_label(labels: Mapping[str, str] | None, strategy: str) -> str:
    """The strategy's label (``strategies.csv``), else its id."""
    return str((labels or {}).get(strategy) or strategy)


def comparison_label(labels: Mapping[str, str] | None, comparison: str) -> str:
    """``"primary_ivig vs none"`` -> ``"Primary IVIG vs No IgRT"`` (ids kept when unlabelled)."""
    parts = str(comparison).split(" vs ")
    if len(parts) != 2:
        return str(comparison)
    return " vs ".join(strategy_label(labels, p) for p in parts)


# --------------------------------------------------------------------------- numbers


#: An axis whose largest tick reaches this is labelled in millions (0.25M, 1.5M), all its ticks
#: alike (full numbers such as 1,250,000 overlap on a 2M-wide axis).
MILLIONS_FROM = 1e6


class Thousands(Formatter):
    """Tick labels with thousands separators (12,500); in millions (12.5M) when the axis reaches
    MILLIONS_FROM, so one axis never mixes 800,000 and 1M. One instance per axis."""

    def format_ticks(self, values):
        top = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
        return [self._text(v, top) for v in values]

    def __call__(self, x, pos=None):
        return self._text(x, abs(x))

    @staticmethod
    def _text(x: float, top: float) -> str:
        if x is None or not math.isfinite(x):
            return str(x)
        if x == 0:
            return "0"
        if top >= MILLIONS_FROM:
            return f"{x / 1e6:,.4g}M"
        if top >= 1000:
            return f"{x:,.0f}"
        return f"{x:.3g}"


def thousands_formatter() -> Thousands:
    """A new :class:`Thousands` formatter (a formatter belongs to one axis)."""
    return Thousands()


def money(currency: str, price_year) -> str:
    """``"GBP 2024"``: what every money axis names."""
    return f"{currency} {price_year}"


def fmt_value(x: float) -> str:
    """A parameter value in text: 1,250 / 0.65 / 31.3."""
    if x is None or not math.isfinite(x):
        return str(x)
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"


# --------------------------------------------------------------------------- parameters


def parameter_labels(table: pd.DataFrame, price_year: int | None = None) -> dict[str, str]:
    """parameter -> ``"label (unit)"`` from a parameter table (``ParameterTable.df``: columns
    ``parameter``, ``label``, ``unit``). A blank or missing label gives the code instead:
    ``"p_igg_low_ever (proportion)"``. With ``price_year`` (the country's, to which every price
    is inflated), a price's unit names it: ``"IVIG price (GBP 2024 per g)"``."""
    out = {}
    for name, r in table.set_index("parameter", drop=False).iterrows():
        label = str(r.get("label") or "").strip() if "label" in table.columns else ""
        unit = str(r.get("unit") or "").strip()
        if price_year is not None and pd.notna(r.get("price_year")) and " " in unit:
            currency, per = unit.split(" ", 1)  # a price row's unit is "<currency> <unit>"
            unit = f"{currency} {price_year} {per}"
        text = label or str(name)
        out[str(name)] = f"{text} ({unit})" if unit else text
    return out


def parameter_label(labels: Mapping[str, str] | None, name: str, unit: str = "") -> str:
    """The label of a parameter, else its code (with ``unit`` when given)."""
    if labels and name in labels:
        return labels[name]
    return f"{name} ({unit})" if unit else str(name)


# --------------------------------------------------------------------------- files


def save(
    fig: Figure, path: Path | str, rect: tuple[float, float, float, float] | None = None
) -> Path:
    """Lay the figure out once and write ``path`` (PNG) and the same figure as SVG beside it.
    Returns the PNG path.

    The layout is Matplotlib's tight layout, computed once for both files: every axes with its
    ticks, labels, title, legend and texts, and the figure's title, inside the figure.
    ``rect`` (left, bottom, right, top, in figure fractions) keeps the axes inside a part of the
    figure, leaving the rest to what the tight layout does not place (a figure legend). Both
    files are the whole figure, drawn once each (no second, tight-bounding-box pass per file).
    The SVG carries no date and fixed ids, so a rerun writes the same bytes."""
    path = Path(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("always", message=_MISSING_GLYPH.pattern, category=UserWarning)
        fig.tight_layout(rect=rect)
        fig.savefig(path, dpi=DPI)
        with rc_context({"svg.hashsalt": SVG_HASH_SALT}):  # else each run draws random ids
            fig.savefig(path.with_suffix(".svg"), metadata={"Date": None})
    plt.close(fig)  # a pyplot figure is released; a bare Figure is unaffected
    _note_missing_glyphs(caught)
    return path


#: Matplotlib's warning for a character its font cannot draw (an emoji, a script DejaVu Sans
#: lacks, in a label of the inputs): the character is drawn as an empty box.
_MISSING_GLYPH = re.compile(r"Glyph (\d+) .*missing from font")
#: Characters already named in the note: one line a process, not a warning a figure.
_NOTED_GLYPHS: set[str] = set()


def _note_missing_glyphs(caught: list[warnings.WarningMessage]) -> None:
    """Name each character the figures cannot draw once: the ones a figure lacks that no earlier
    figure did, on one stderr line; pass any other warning on as it was."""
    missing = []
    for w in caught:
        m = _MISSING_GLYPH.match(str(w.message))
        if m is None:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
        elif chr(int(m.group(1))) not in _NOTED_GLYPHS:
            missing.append(chr(int(m.group(1))))
    if missing:  # the characters not named yet
        shown = ", ".join(f"'{c}' (U+{ord(c):04X})" for c in dict.fromkeys(missing))
        print(f"cea: note: the figures' font has no glyph for {shown}: drawn as an empty box "
              "(the CSV and Excel files keep the text)", file=sys.stderr)  # fmt: skip
    _NOTED_GLYPHS.update(missing)


def legend_handles(strategies: Iterable[str], labels: Mapping[str, str] | None, **line):
    """Legend entries (line and marker) for strategies, in the given order."""
    return [
        Line2D(
            [],
            [],
            color=strategy_style(s).colour,
            marker=strategy_style(s).marker,
            label=strategy_label(labels, s),
            **line,
        )
        for s in strategies
    ]


def comparison_style(comparison: str) -> StrategyStyle:
    """A comparison ``"A vs B"`` is drawn in the colour of A (the intervention) with the marker
    of B (the comparator), so each pair of strategies is distinct in one figure."""
    parts = str(comparison).split(" vs ")
    if len(parts) != 2:
        return strategy_style(str(comparison))
    return StrategyStyle(strategy_style(parts[0]).colour, strategy_style(parts[1]).marker)

"""Incremental analysis of an outcomes table: dominance, extended dominance, ICERs, NMB/NHB.

Input is an outcomes table with one row per strategy (the base case, or the PSA means)
and at least the columns ``strategy``, ``cost`` and ``qaly``; other names can be passed.
This module never imports the model.

Conventions
-----------
- **ICER** = Δcost / Δeffect of the more costly strategy versus the less costly one,
  i.e. the extra cost per extra unit of effect when moving up the frontier.
- **Strong dominance**: B is dominated when another strategy A has cost_A <= cost_B and
  effect_A >= effect_B, with at least one inequality strict. Two strategies with exactly
  the same cost and effect are ties: the first in input order is kept and the other is
  reported as dominated ("identical to ...").
- **Extended (weak) dominance**: among the strategies left, sorted by cost, B is
  extendedly dominated when its ICER is higher than the ICER of the next more costly
  (and more effective) strategy, because a mix of its two neighbours gives at least as
  much effect for less cost (Cantor SB, Med Decis Making 1994;14:259-265; Drummond MF
  et al., Methods for the Economic Evaluation of Health Care Programmes, 4th ed., OUP
  2015, ch. 4). Removal is repeated until the ICERs along the frontier increase.
  Exactly collinear strategies (equal consecutive ICERs) stay on the frontier, as in
  dampack's ``calculate_icers``; ICERs that agree to ``COLLINEAR_RTOL`` count as equal.
- **Net benefit** at willingness to pay λ per unit of effect:
  NMB = λ·effect − cost (money), NHB = effect − cost/λ (effect units).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from cea.errors import CeaError

# ICERs along the frontier that agree to this relative tolerance count as equal
# (collinear strategies), so float rounding in Δcost/Δeffect never flips a status.
COLLINEAR_RTOL = 1e-9

STATUS_ND = "ND"
STATUS_D = "D"
STATUS_ED = "ED"

ICER_COLUMNS = [
    "strategy",
    "cost",
    "effect",
    "inc_cost",
    "inc_effect",
    "icer",
    "status",
    "reference",
    "note",
]

# Effect column names that print better as an abbreviation in interpretations.
_EFFECT_LABELS = {"qaly": "QALY", "qalys": "QALY", "ly": "LY", "lys": "LY"}


#: Where a WTP comes from, as an error asking for a smaller one names them.
WTP_SOURCES = "countries.csv wtp_per_qaly, or wtp_gdp_multiple x gdp_per_capita_usd, or --wtp"


# --------------------------------------------------------------------------- net benefit


def nmb(cost, effect, wtp):
    """Net monetary benefit, elementwise: ``wtp * effect - cost``.

    Parameters
    ----------
    cost, effect : float or np.ndarray
        Costs (currency) and effects (e.g. QALYs); numpy broadcasting applies.
    wtp : float or np.ndarray
        Willingness to pay per unit of effect, >= 0.

    Returns
    -------
    float or np.ndarray
        In currency units; the broadcast shape of the inputs.
    """
    wtp = _check_wtp(wtp, allow_zero=True)
    return wtp * np.asarray(effect, dtype=float) - np.asarray(cost, dtype=float)


def nhb(cost, effect, wtp):
    """Net health benefit, elementwise: ``effect - cost / wtp``.

    Parameters
    ----------
    cost, effect : float or np.ndarray
        Costs (currency) and effects (e.g. QALYs); numpy broadcasting applies.
    wtp : float or np.ndarray
        Willingness to pay per unit of effect, > 0 (the formula divides by it).

    Returns
    -------
    float or np.ndarray
        In effect units; the broadcast shape of the inputs.
    """
    wtp = _check_wtp(wtp, allow_zero=False)
    return np.asarray(effect, dtype=float) - np.asarray(cost, dtype=float) / wtp


def _check_wtp(wtp, *, allow_zero: bool, scalar: bool = False):
    if scalar and np.ndim(wtp) != 0:
        raise CeaError(f"wtp must be a single number here, got shape {np.shape(wtp)}")
    arr = np.asarray(wtp, dtype=float)
    bad = ~np.isfinite(arr) | (arr < 0 if allow_zero else arr <= 0)
    if np.any(bad):
        need = ">= 0" if allow_zero else "> 0"
        raise CeaError(f"wtp must be finite and {need}, got {wtp!r}")
    return arr if arr.ndim else float(arr)


# --------------------------------------------------------------------- incremental table


def icer_table(
    outcomes: pd.DataFrame,
    *,
    cost: str = "cost",
    effect: str = "qaly",
    strategy: str = "strategy",
    wtp: float | None = None,
) -> pd.DataFrame:
    """Full incremental analysis: strong and extended dominance, ICERs along the frontier.

    Steps: sort by cost ascending (ties: effect descending, then input order); mark
    strongly dominated strategies "D"; among the rest, repeatedly mark as "ED" any
    strategy whose ICER exceeds that of the next more costly one, recomputing ICERs
    after each removal; the remaining strategies ("ND") form the efficiency frontier.
    See the module docstring for the definitions and sources.

    Parameters
    ----------
    outcomes : pd.DataFrame
        One row per strategy with columns ``strategy``, ``cost`` and ``effect`` (names
        as given by the keyword arguments). Values must be finite; names unique.
    cost, effect, strategy : str
        Column names in ``outcomes``.
    wtp : float, optional
        Willingness to pay per unit of effect (> 0). When given, the columns ``nmb``,
        ``nhb`` and ``optimal`` are added.

    Returns
    -------
    pd.DataFrame
        One row per input strategy, in cost order, with columns

        - ``strategy``, ``cost``, ``effect``: the inputs.
        - ``inc_cost``, ``inc_effect``, ``icer``: versus ``reference`` for "ND" rows;
          NaN for the first (least costly) "ND" row and for every "D" or "ED" row.
        - ``status``: "ND" on the frontier, "D" strongly dominated, "ED" extendedly
          dominated.
        - ``reference``: the previous frontier strategy for "ND" rows, else "".
        - ``note``: "dominated by X", "identical to X" or "extendedly dominated by X
          and Y" (X, Y the frontier strategies on either side); "" for "ND" rows.
        - with ``wtp``: ``nmb`` = wtp·effect − cost, ``nhb`` = effect − cost/wtp, and
          ``optimal`` (True for the one row of highest NMB; it is always on the frontier,
          and ties, to rounding, go to the less costly strategy).

    Raises
    ------
    CeaError
        Missing columns, no rows, duplicate strategy names, or a non-finite cost or
        effect (the message names the strategy).
    """
    names, c, e = _strategy_values(outcomes, cost=cost, effect=effect, strategy=strategy)
    n = len(names)
    if wtp is not None:
        wtp = _check_wtp(wtp, allow_zero=False, scalar=True)

    # Cost ascending, then effect descending, then input order (lexsort: last key first).
    order = np.lexsort((np.arange(n), -e, c))
    names, c, e = [names[i] for i in order], c[order], e[order]

    status = [STATUS_ND] * n
    note = [""] * n
    reference = [""] * n
    inc_cost = np.full(n, np.nan)
    inc_effect = np.full(n, np.nan)
    icer = np.full(n, np.nan)

    # Strong dominance. Anything with cost <= and effect >= sorts earlier, so look back
    # only; the first such strategy is the one named, and it is never dominated itself
    # (whatever dominated it would dominate this one too and sort earlier still).
    for i in range(n):
        for j in range(i):
            if c[j] <= c[i] and e[j] >= e[i]:
                same = c[j] == c[i] and e[j] == e[i]
                status[i] = STATUS_D
                note[i] = f"{'identical to' if same else 'dominated by'} {names[j]}"
                break

    # Extended dominance. What is left rises strictly in both cost and effect, so every
    # ICER between neighbours is positive (infinite only if a Δeffect underflows).
    frontier = [i for i in range(n) if status[i] == STATUS_ND]
    removed = True
    while removed:
        removed = False
        for k in range(1, len(frontier) - 1):
            prev, cur, nxt = frontier[k - 1], frontier[k], frontier[k + 1]
            with np.errstate(over="ignore"):
                icer_in = (c[cur] - c[prev]) / (e[cur] - e[prev])
                icer_out = (c[nxt] - c[cur]) / (e[nxt] - e[cur])
            if icer_in > icer_out * (1 + COLLINEAR_RTOL):
                status[cur] = STATUS_ED
                del frontier[k]
                removed = True
                break

    for k in range(1, len(frontier)):
        prev, cur = frontier[k - 1], frontier[k]
        inc_cost[cur] = c[cur] - c[prev]
        inc_effect[cur] = e[cur] - e[prev]
        with np.errstate(over="ignore"):  # a vanishing Δeffect gives an infinite ICER
            icer[cur] = inc_cost[cur] / inc_effect[cur]
        reference[cur] = names[prev]

    for i in range(n):
        if status[i] == STATUS_ED:
            below = max((f for f in frontier if e[f] < e[i]), key=lambda f: e[f])
            above = min((f for f in frontier if e[f] > e[i]), key=lambda f: e[f])
            note[i] = f"extendedly dominated by {names[below]} and {names[above]}"

    table = pd.DataFrame(
        {
            "strategy": names,
            "cost": c,
            "effect": e,
            "inc_cost": inc_cost,
            "inc_effect": inc_effect,
            "icer": icer,
            "status": status,
            "reference": reference,
            "note": note,
        },
        columns=ICER_COLUMNS,
    )
    if wtp is not None:
        if np.isinf(wtp * e).any():  # finite effects: the product overflowed
            raise CeaError(
                f"willingness to pay {wtp:g} per QALY times {np.nanmax(np.abs(e)):g} QALYs is "
                f"beyond the range of floating-point numbers: give a smaller WTP ({WTP_SOURCES})"
            )
        table["nmb"] = nmb(c, e, wtp)
        table["nhb"] = nhb(c, e, wtp)
        table["optimal"] = _optimal(
            table["nmb"].to_numpy(), np.array(status) == STATUS_ND, c, e, wtp
        )
    return table


def _optimal(nmb_values, on_frontier, c, e, wtp) -> np.ndarray:
    """One True: the least costly frontier strategy whose NMB ties the maximum.

    The maximum NMB is always reached on the frontier; NMBs within ``COLLINEAR_RTOL`` of
    the largest term count as ties, so at wtp = ICER rounding does not pick the winner.
    """
    tol = COLLINEAR_RTOL * max(np.abs(wtp * e).max(), np.abs(c).max())
    best = nmb_values[on_frontier].max()
    optimal = np.zeros(len(nmb_values), dtype=bool)
    optimal[np.flatnonzero(on_frontier & (nmb_values >= best - tol))[0]] = True
    return optimal


# ------------------------------------------------------------------ pairwise comparisons


def pairwise(
    outcomes: pd.DataFrame,
    comparisons: Iterable[Sequence[str]],
    *,
    wtp: float,
    cost: str = "cost",
    effect: str = "qaly",
    strategy: str = "strategy",
    extra: Iterable[str] = (),
) -> pd.DataFrame:
    """Named head-to-head comparisons, each intervention versus its comparator.

    For a comparison (a, b): Δcost = cost_a − cost_b, Δeffect = effect_a − effect_b,
    INMB = wtp·Δeffect − Δcost. Unlike :func:`icer_table`, no dominance is applied
    across the other strategies: this answers "a instead of b?" only.

    Parameters
    ----------
    outcomes : pd.DataFrame
        One row per strategy, as for :func:`icer_table`.
    comparisons : iterable of (str, str)
        Pairs (intervention, comparator), e.g.
        ``[("primary_ivig", "preemptive_ivig"), ("primary_scig", "primary_ivig")]``.
    wtp : float
        Willingness to pay per unit of effect (>= 0).
    cost, effect, strategy : str
        Column names in ``outcomes``.
    extra : iterable of str
        Further outcome columns (e.g. ``"severe_infections"``, counts per patient) whose
        increments are reported as ``inc_<name>``, with ``cost_per_<name>_averted`` =
        Δcost / −Δ<name> when Δ<name> < 0 (NaN otherwise; negative when a also saves
        money).

    Returns
    -------
    pd.DataFrame
        One row per comparison: ``comparison`` ("a vs b"), ``intervention``,
        ``comparator``, ``inc_cost``, ``inc_effect``, ``icer``, ``quadrant``,
        ``interpretation``, ``inmb``, ``cost_effective`` (INMB > 0), then the
        ``extra`` columns.

        ``quadrant`` on the cost-effectiveness plane (effect on x, cost on y):
        "NE" more costly and more effective; "SW" cheaper and less effective (the ICER
        is then the saving per unit of effect lost, and a is cost-effective when it
        exceeds wtp); "SE" dominant (no more costly, no less effective, one strictly);
        "NW" dominated (the reverse); "same" when both increments are 0.
        ``icer`` = Δcost/Δeffect in NE and SW only; NaN in SE, NW and "same", where a
        ratio would mislead.

    Raises
    ------
    CeaError
        Unknown strategy names (all listed), a strategy compared with itself, a missing
        or non-finite ``extra`` column, or any problem :func:`icer_table` rejects.
    """
    extra = list(extra)
    names, c, e = _strategy_values(outcomes, cost=cost, effect=effect, strategy=strategy)
    frame = _with_strategy_column(outcomes, strategy)
    extras = {}
    for col in extra:
        if col not in frame.columns:
            raise CeaError(f"outcomes has no column '{col}' (asked for in extra)")
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
        for name, v in zip(names, values, strict=True):
            if not np.isfinite(v):
                raise CeaError(f"strategy '{name}': {col} is {v}, must be finite")
        extras[col] = dict(zip(names, values, strict=True))

    pairs = [tuple(p) for p in comparisons]
    for p in pairs:
        if len(p) != 2:
            raise CeaError(f"each comparison must be (intervention, comparator), got {p!r}")
    unknown = sorted({s for p in pairs for s in p} - set(names))
    if unknown:
        raise CeaError(f"unknown strategies in comparisons: {', '.join(map(str, unknown))}")
    for a, b in pairs:
        if a == b:
            raise CeaError(f"comparison '{a} vs {b}' compares a strategy with itself")
    wtp = _check_wtp(wtp, allow_zero=True, scalar=True)

    cost_of = dict(zip(names, c, strict=True))
    effect_of = dict(zip(names, e, strict=True))
    label = _EFFECT_LABELS.get(effect.lower(), effect)
    rows = []
    for a, b in pairs:
        d_cost = cost_of[a] - cost_of[b]
        d_effect = effect_of[a] - effect_of[b]
        quadrant = _quadrant(d_cost, d_effect)
        with np.errstate(over="ignore"):  # a vanishing Δeffect gives an infinite ICER
            ratio = d_cost / d_effect if quadrant in ("NE", "SW") else np.nan
        row = {
            "comparison": f"{a} vs {b}",
            "intervention": a,
            "comparator": b,
            "inc_cost": d_cost,
            "inc_effect": d_effect,
            "icer": ratio,
            "quadrant": quadrant,
            "interpretation": _interpret(quadrant, ratio, d_cost, d_effect, label),
            "inmb": wtp * d_effect - d_cost,
        }
        row["cost_effective"] = bool(row["inmb"] > 0)
        for col in extra:
            d_x = extras[col][a] - extras[col][b]
            row[f"inc_{col}"] = d_x
            row[f"cost_per_{col}_averted"] = d_cost / -d_x if d_x < 0 else np.nan
        rows.append(row)

    columns = [
        "comparison",
        "intervention",
        "comparator",
        "inc_cost",
        "inc_effect",
        "icer",
        "quadrant",
        "interpretation",
        "inmb",
        "cost_effective",
    ]
    for col in extra:
        columns += [f"inc_{col}", f"cost_per_{col}_averted"]
    return pd.DataFrame(rows, columns=columns)


def _quadrant(d_cost: float, d_effect: float) -> str:
    if d_cost == 0 and d_effect == 0:
        return "same"
    if d_cost <= 0 and d_effect >= 0:
        return "SE"
    if d_cost >= 0 and d_effect <= 0:
        return "NW"
    return "NE" if d_effect > 0 else "SW"


def _interpret(quadrant: str, ratio: float, d_cost: float, d_effect: float, label: str) -> str:
    if quadrant == "NE":
        return f"ICER {_fmt(ratio)} per {label} gained"
    if quadrant == "SW":
        return f"SW: {_fmt(ratio)} saved per {label} lost"
    if quadrant == "SE":
        if d_cost == 0:
            return "dominant (same cost and more effective)"
        if d_effect == 0:
            return "dominant (cheaper and equally effective)"
        return "dominant (cheaper and more effective)"
    if quadrant == "NW":
        return "dominated"
    return "no difference in cost or effect"


def _fmt(x: float) -> str:
    """Thousands separators; whole units unless the number is small."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.2f}"


# -------------------------------------------------------------------------------- input


def _with_strategy_column(outcomes: pd.DataFrame, strategy: str) -> pd.DataFrame:
    if not isinstance(outcomes, pd.DataFrame):
        raise CeaError(f"outcomes must be a pandas DataFrame, got {type(outcomes).__name__}")
    if strategy not in outcomes.columns and outcomes.index.name == strategy:
        return outcomes.reset_index()
    return outcomes


def _strategy_values(
    outcomes: pd.DataFrame, *, cost: str, effect: str, strategy: str
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Strategy names, costs and effects in input order, validated."""
    frame = _with_strategy_column(outcomes, strategy)
    missing = [col for col in (strategy, cost, effect) if col not in frame.columns]
    if missing:
        raise CeaError(
            f"outcomes has no column {', '.join(repr(m) for m in missing)}; "
            f"columns are {', '.join(map(str, frame.columns))}"
        )
    if len(frame) == 0:
        raise CeaError("outcomes has no rows")
    names = [str(s) for s in frame[strategy]]
    seen = set()
    for name in names:
        if name in seen:
            raise CeaError(
                f"strategy '{name}' appears more than once; pass one row per strategy "
                "(e.g. the base case or the PSA means)"
            )
        seen.add(name)
    values = {}
    for col in (cost, effect):
        v = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
        for name, x, raw in zip(names, v, frame[col], strict=True):
            if not np.isfinite(x):
                raise CeaError(f"strategy '{name}': {col} is {raw!r}, must be a finite number")
        values[col] = v
    return names, values[cost], values[effect]

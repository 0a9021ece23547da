"""The results, incremental and comparisons sheets: per strategy totals over the trace sheets,
the live full incremental analysis, and the live named pairwise comparisons."""

from __future__ import annotations

import numpy as np
from openpyxl.utils import get_column_letter

from cea.igrt.spec import COST_CATEGORIES, COST_GROUPS
from cea.report.sheets.cells import (
    FMT_INT,
    FMT_QALY,
    HEADER_FILL,
    HEADER_FONT,
    NOTE_FONT,
    finish_sheet,
    put,
    put_formula,
    write_header,
    write_title,
)
from cea.report.sheets.labels import write_labels
from cea.report.sheets.state import REWARD_NAMES, ReportState

INCREMENTAL_COLUMNS = [
    "order",
    "strategy",
    "label",
    "cost",
    "qaly",
    "ly",
    "nmb",
    "nhb",
    "cost_rank",
    "dominated_by_count",
    "candidate",
    "icer_in_max",
    "icer_out_min",
    "status",
    "reference",
    "inc_cost",
    "inc_qaly",
    "icer",
    "optimal",
]
GRID_COL0 = 2  # incremental grids: column of strategy j = GRID_COL0 + j
GRID_TITLES = (
    "grid 1: ICER of row strategy i from each less effective candidate j, (cost_i - cost_j) / (qaly_i - qaly_j)",
    "grid 2: ICER from row strategy i to each more effective candidate j, (cost_j - cost_i) / (qaly_j - qaly_i)",
    "grid 3: QALYs of frontier (ND) strategies less effective than row strategy i (the largest is its reference)",
)

COMPARISON_COLUMNS = [
    "comparison",
    "intervention",
    "comparator",
    "inc_cost",
    "inc_effect",
    "icer",
    "quadrant",
    "inmb",
    "cost_effective",
    "inc_severe_infections",
    "cost_per_severe_infections_averted",
    "inc_infection_deaths",
    "cost_per_infection_deaths_averted",
    *(f"inc_cost_{g}" for g in COST_GROUPS),
]


# ---------------------------------------------------------------------- results
def write_results(rs: ReportState):
    ws = rs.results = rs.sheet("results")
    c = rs.country
    write_title(
        ws,
        f"Results per strategy ({c.currency} {c.price_year}; costs discounted at the costs rate, QALYs, LYs and counts at the effects rate)",
        "Formulas over the trace sheets' weighted totals (rows 8-9). Counts are per patient; *_undiscounted columns are not discounted.",
    )
    cols = list(rs.base.results.columns)
    write_labels(ws, 3, cols, c.currency)
    write_header(ws, 4, cols)
    rs.results_col = {name: j + 1 for j, name in enumerate(cols)}
    for i, st in enumerate(rs.strategies):
        r = 5 + i
        rs.results_row[st.strategy] = r
        for j, name in enumerate(cols):
            _result_cell(rs, ws, r, j + 1, st, name)
    widths = {1: 24, 2: 32}
    finish_sheet(ws, widths, freeze="C5", default_width=16)


def _result_cell(rs: ReportState, ws, r: int, cj: int, st, name: str):
    """One result: the total over the cost categories, a trace total, or the engine's value."""
    disc = not name.endswith("_undiscounted")
    base_name = name[: -len("_undiscounted")] if not disc else name
    fmt = rs.money if base_name.startswith("cost") else FMT_QALY
    if name == "strategy":
        put(ws, r, cj, st.strategy)
    elif name == "label":
        put(ws, r, cj, st.label)
    elif base_name == "cost":
        parts = [
            f"{get_column_letter(rs.results_col[k + ('' if disc else '_undiscounted')])}{r}"
            for k in COST_CATEGORIES
        ]
        put_formula(ws, r, cj, "+".join(parts), fmt)
    elif base_name in REWARD_NAMES:
        put_formula(ws, r, cj, rs.trace_total(st.strategy, base_name, disc), fmt)
    else:  # a column the workbook does not rebuild: the engine's value
        put(ws, r, cj, rs.base.results.set_index("strategy").loc[st.strategy, name])


# ---------------------------------------------------------------------- incremental
def write_incremental(rs: ReportState):
    ws = rs.incr = rs.sheet("incremental")
    c = rs.country
    k = len(rs.strategies)
    write_title(
        ws,
        f"Full incremental analysis, live (QALYs; {c.currency}; WTP = wtp_per_qaly on settings)",
        "D: strongly dominated (another strategy costs no more and gains no less). ED: extendedly dominated (its ICER "
        "from the cheaper candidates exceeds the ICER to a more effective one). ND: on the frontier; icer versus the "
        "previous frontier strategy. Grids below do the pairwise work. Right: the engine's table at write time.",
    )
    cols = INCREMENTAL_COLUMNS
    write_labels(ws, 3, cols, c.currency)
    write_header(ws, 4, cols)
    rs.incr_col = {name: j + 1 for j, name in enumerate(cols)}
    first, last = 5, 5 + k - 1
    g1 = last + 3  # grid: slopes into i from cheaper candidates
    g2 = g1 + k + 3  # grid: slopes out of i to more effective candidates
    g3 = g2 + k + 3  # grid: effects of frontier strategies below i
    rs.incr_row = {}
    for i, st in enumerate(rs.strategies):
        r = first + i
        rs.incr_row[st.strategy] = r
        _incremental_row(rs, ws, r, i, st, (first, last), (g1, g2, g3))
    for kind, (g, text) in enumerate(zip((g1, g2, g3), GRID_TITLES, strict=True)):
        _incremental_grid(rs, ws, g, text, first, kind)
    e0 = len(cols) + 2
    _engine_incremental(rs, ws, e0)
    inc = rs.base.incremental
    widths = {1: 24, 2: 24, 3: 30, 15: 20, 19: 10}
    for j in range(len(inc.columns)):
        widths[e0 + j] = 16
    widths[e0 + list(inc.columns).index("note")] = 44 if "note" in inc.columns else 16
    finish_sheet(ws, widths, freeze="C5", default_width=15)


def _incremental_row(rs: ReportState, ws, r: int, i: int, st, rows: tuple, grids: tuple):
    """A strategy's row: totals, dominance, status, reference and ICER, from the grids."""
    C = {name: get_column_letter(j + 1) for j, name in enumerate(INCREMENTAL_COLUMNS)}
    rng = lambda key: f"${C[key]}${rows[0]}:${C[key]}${rows[1]}"  # noqa: E731
    k = len(rs.strategies)
    put(ws, r, 1, i + 1, FMT_INT)
    put(ws, r, 2, st.strategy)
    put(ws, r, 3, st.label)
    put_formula(ws, r, 4, rs.res(st.strategy, "cost"), rs.money)
    put_formula(ws, r, 5, rs.res(st.strategy, "qaly"), FMT_QALY)
    put_formula(ws, r, 6, rs.res(st.strategy, "ly"), FMT_QALY)
    put_formula(ws, r, 7, f"wtp_per_qaly*E{r}-D{r}", rs.money)
    put_formula(ws, r, 8, f"E{r}-D{r}/wtp_per_qaly", FMT_QALY)
    put_formula(ws, r, 9, f"RANK(D{r},{rng('cost')},1)", FMT_INT)
    put_formula(
        ws,
        r,
        10,
        f"SUMPRODUCT(({rng('cost')}<=D{r})*({rng('qaly')}>=E{r})*((({rng('cost')}<D{r})+({rng('qaly')}>E{r})+({rng('order')}<A{r}))>0))",
        FMT_INT,
    )
    put_formula(ws, r, 11, f"IF(J{r}=0,1,0)", FMT_INT)
    g1r, g2r, g3r = (g + 1 + i for g in grids)
    a, z = get_column_letter(GRID_COL0), get_column_letter(GRID_COL0 + k - 1)
    put_formula(ws, r, 12, f'IF(COUNT({a}{g1r}:{z}{g1r})=0,"",MAX({a}{g1r}:{z}{g1r}))', rs.money)
    put_formula(ws, r, 13, f'IF(COUNT({a}{g2r}:{z}{g2r})=0,"",MIN({a}{g2r}:{z}{g2r}))', rs.money)
    put_formula(
        ws,
        r,
        14,
        f'IF(K{r}=0,"D",IF(AND(ISNUMBER(L{r}),ISNUMBER(M{r})),IF(L{r}>M{r}*(1+collinear_rtol),"ED","ND"),"ND"))',
    )
    prev_e = f"{a}{g3r}:{z}{g3r}"
    prev_order = f'SUMPRODUCT(({rng("status")}="ND")*({rng("qaly")}=MAX({prev_e}))*{rng("order")})'
    has_prev = f'AND(N{r}="ND",COUNT({prev_e})>0)'
    put_formula(ws, r, 15, f'IF({has_prev},INDEX({rng("strategy")},{prev_order}),"")')
    put_formula(ws, r, 16, f'IF({has_prev},D{r}-INDEX({rng("cost")},{prev_order}),"")', rs.money)
    put_formula(ws, r, 17, f'IF({has_prev},E{r}-INDEX({rng("qaly")},{prev_order}),"")', FMT_QALY)
    put_formula(ws, r, 18, f'IF(ISNUMBER(P{r}),P{r}/Q{r},"")', rs.money)
    put_formula(ws, r, 19, f'IF(G{r}=MAX({rng("nmb")}),"optimal","")')


def _incremental_grid(rs: ReportState, ws, g: int, text: str, first: int, kind: int):
    """A pairwise grid below the table (header on row g): kind 0, 1 or 2 (grid 1, 2 or 3)."""
    put(ws, g - 1, 1, text, font=NOTE_FONT)
    put(ws, g, 1, "i \\ j", font=HEADER_FONT, fill=HEADER_FILL)
    for j, st in enumerate(rs.strategies):
        put(ws, g, GRID_COL0 + j, st.strategy, font=HEADER_FONT, fill=HEADER_FILL)
    for i, st in enumerate(rs.strategies):
        ri = first + i
        gr = g + 1 + i
        put(ws, gr, 1, st.strategy, font=HEADER_FONT)
        for j in range(len(rs.strategies)):
            rj = first + j
            if kind == 0:
                fm = f'IF(AND($K${ri}=1,$K${rj}=1,$E${rj}<$E${ri}),($D${ri}-$D${rj})/($E${ri}-$E${rj}),"")'
                fmt = rs.money
            elif kind == 1:
                fm = f'IF(AND($K${ri}=1,$K${rj}=1,$E${rj}>$E${ri}),($D${rj}-$D${ri})/($E${rj}-$E${ri}),"")'
                fmt = rs.money
            else:
                fm = f'IF(AND($N${ri}="ND",$N${rj}="ND",$E${rj}<$E${ri}),$E${rj},"")'
                fmt = FMT_QALY
            put_formula(ws, gr, GRID_COL0 + j, fm, fmt)


def _engine_incremental(rs: ReportState, ws, e0: int):
    """The engine's incremental table (values at write time), from column ``e0``."""
    put(ws, 3, e0, "engine (cea.analysis.incremental.icer_table) at write time", font=HEADER_FONT)
    inc = rs.base.incremental
    write_header(ws, 4, list(inc.columns), start_col=e0)
    for i, (_, rec) in enumerate(inc.iterrows()):
        for j, name in enumerate(inc.columns):
            value = rec[name]
            if isinstance(value, (bool, np.bool_)):
                value = str(bool(value))
            fmt = (
                rs.money
                if name in ("cost", "inc_cost", "icer", "nmb")
                else (FMT_QALY if name in ("effect", "inc_effect", "nhb") else None)
            )
            put(ws, 5 + i, e0 + j, value, fmt)


# ---------------------------------------------------------------------- comparisons
def write_comparisons(rs: ReportState):
    ws = rs.comp = rs.sheet("comparisons")
    write_title(
        ws,
        "Named comparisons, live: intervention versus comparator (no dominance across other strategies)",
        "quadrant on the CE plane (QALYs on x): NE more costly and more effective, SW cheaper and less effective (icer = saving per QALY lost), SE dominant, NW dominated.",
    )
    write_labels(ws, 3, COMPARISON_COLUMNS, rs.country.currency)
    write_header(ws, 4, COMPARISON_COLUMNS)
    rs.comp_col = {name: j + 1 for j, name in enumerate(COMPARISON_COLUMNS)}
    rs.comp_row = {}
    names = {s.strategy for s in rs.strategies}
    comps = rs.base.comparisons
    pairs = (
        [(r["intervention"], r["comparator"]) for _, r in comps.iterrows()]
        if not comps.empty
        else []
    )
    for i, (a, b) in enumerate(p for p in pairs if p[0] in names and p[1] in names):
        r = 5 + i
        rs.comp_row[(a, b)] = r
        _comparison_row(rs, ws, r, a, b)
    finish_sheet(ws, {1: 36, 2: 22, 3: 22, 11: 20, 13: 20}, freeze="B5", default_width=15)


def _comparison_row(rs: ReportState, ws, r: int, a: str, b: str):
    """Intervention ``a`` versus comparator ``b``."""
    put(ws, r, 1, f"{a} vs {b}")
    put(ws, r, 2, a)
    put(ws, r, 3, b)
    put_formula(ws, r, 4, f"{rs.res(a, 'cost')}-{rs.res(b, 'cost')}", rs.money)
    put_formula(ws, r, 5, f"{rs.res(a, 'qaly')}-{rs.res(b, 'qaly')}", FMT_QALY)
    put_formula(
        ws,
        r,
        7,
        f'IF(AND(D{r}=0,E{r}=0),"same",IF(AND(D{r}<=0,E{r}>=0),"SE",IF(AND(D{r}>=0,E{r}<=0),"NW",IF(E{r}>0,"NE","SW"))))',
    )
    put_formula(ws, r, 6, f'IF(OR(G{r}="NE",G{r}="SW"),D{r}/E{r},"")', rs.money)
    put_formula(ws, r, 8, f"wtp_per_qaly*E{r}-D{r}", rs.money)
    put_formula(ws, r, 9, f'IF(H{r}>0,"yes","no")')
    for cc, extra in ((10, "severe_infections"), (12, "infection_deaths")):
        L = get_column_letter(cc)
        put_formula(ws, r, cc, f"{rs.res(a, extra)}-{rs.res(b, extra)}", FMT_QALY)
        put_formula(ws, r, cc + 1, f'IF({L}{r}<0,D{r}/-{L}{r},"")', rs.money)
    # the incremental cost split: IgRT, infections, the added survival (they add up to D)
    for group, cats in COST_GROUPS.items():
        terms = "+".join(f"{rs.res(a, c)}-{rs.res(b, c)}" for c in cats)
        put_formula(ws, r, rs.comp_col[f"inc_cost_{group}"], terms, rs.money)

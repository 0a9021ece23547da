"""The writer's shared state: the workbook being built, where each sheet put what, and the
layout of the sheets the formulas refer to (cycles, per_state, trace_<strategy>, results).

The sheet modules write in the order of :func:`cea.report.workbook.build_workbook`; a sheet
refers only to cells of the sheets written before it, through the references below.
"""

from __future__ import annotations

from openpyxl import Workbook
from openpyxl.utils import get_column_letter

from cea.igrt.spec import COST_CATEGORIES, COUNTS, EFFECTS, STATES, Strategy
from cea.report.sheets.cells import Names, abs_ref, money_format, snake_sheet_name

SHORT = ("N", "L", "I", "OI", "O", "D")  # column codes of the six states, in STATES order
ALIVE_SHORT = SHORT[:5]
STATE_OF = dict(zip(SHORT, STATES, strict=True))
REWARD_NAMES = COST_CATEGORIES + EFFECTS + COUNTS
EFFECT_NAMES = set(EFFECTS + COUNTS)  # discounted at the effects rate (engine: effects=...)

# (from, to) of the 18 possible transitions, in the order of the trace sheet's p_ columns
TRANSITIONS = (
    ("N", "N"),
    ("N", "L"),
    ("N", "I"),
    ("N", "O"),
    ("N", "D"),
    ("L", "L"),
    ("L", "I"),
    ("L", "O"),
    ("L", "D"),
    ("I", "I"),
    ("I", "OI"),
    ("I", "O"),
    ("I", "D"),
    ("OI", "OI"),
    ("OI", "O"),
    ("OI", "D"),
    ("O", "O"),
    ("O", "D"),
)

# cycles sheet: first row (cycle 0) and the column of each per-cycle quantity
CYC_FIRST = 5
CYC = {
    "cycle": 1,
    "t0": 2,
    "t1": 3,
    "wcc": 4,
    "disc_costs": 5,
    "disc_effects": 6,
    "age": 7,
    "mx": 8,
    "h_background": 9,
    "f_infection": 10,
    "log_surv_igg": 11,
    "surv_igg": 12,
    "h_igg_decline": 13,
    "low_igg_share": 14,
    "igrt_infection_mix": 15,
    "h_discontinuation": 16,
}

PS_STATE_COL = 5  # per_state columns E..I: the five alive states

# trace sheets: header row, first row of the first block, and the rows of the totals
TR_HEADER = 11
TR_FIRST = 12
TOTAL_ROWS = {  # (subgroup or "weighted", discounted?) -> row
    ("igg_isotype", False): 4,
    ("igg_isotype", True): 5,
    ("non_igg", False): 6,
    ("non_igg", True): 7,
    ("weighted", False): 8,
    ("weighted", True): 9,
}


def trace_columns() -> list[str]:
    """The columns of a trace sheet, in order."""
    cols = ["subgroup", "cycle", "time_years", "wcc", "disc_costs", "disc_effects"]
    cols += [f"h_death_{s}" for s in ALIVE_SHORT]
    cols += [f"sev_{s}" for s in ALIVE_SHORT] + [f"ns_{s}" for s in ALIVE_SHORT]
    cols += ["h_start_N", "h_start_L"]
    for s in ALIVE_SHORT:
        cols += [f"hx_{s}", f"sx_{s}", f"fx_{s}"]
        if s in ("N", "L", "OI"):
            cols += [f"hi_{s}", f"si_{s}", f"fi_{s}"]
    cols += [f"p_{a}_{b}" for a, b in TRANSITIONS]
    cols += list(STATES) + ["row_sum_error"]
    cols += ["cost", *REWARD_NAMES]
    return cols


class ReportState:
    """What the sheet writers share: the base case, the workbook, its defined names, and the
    rows and columns each sheet wrote (so that later sheets can refer to them)."""

    def __init__(self, base, command: str):
        self.base = base
        self.command = command
        self.spec = base.spec
        self.ptable = base.ptable
        self.country = base.country
        self.T = self.spec.n_cycles
        self.wb = Workbook()
        self.names = Names(self.wb)
        self.money = money_format(self.country.currency)
        self.used_sheets: set[str] = set()
        self.strategies: list[Strategy] = list(self.spec.strategies)
        # the sheets, once written (verification only when a check table is given)
        self.about = self.settings = self.inputs = self.prices = self.strat = None
        self.life = self.cycles = self.per_state = None
        self.results = self.incr = self.comp = self.checks = self.verification = None
        # where each sheet put what
        self.input_row: dict[str, int] = {}  # parameter -> inputs row
        self.strategy_row: dict[str, int] = {}  # strategy -> strategies row
        self.strategy_col: dict[str, int] = {}  # strategies column name -> column
        self.ps: dict[tuple[str, str], int] = {}  # (strategy or "all", quantity) -> per_state row
        self.trace_sheet: dict[str, str] = {}  # strategy -> trace sheet name
        self.trace_blocks: dict[str, dict[str, tuple[int, int]]] = {}  # subgroup -> rows
        self.results_row: dict[str, int] = {}
        self.results_col: dict[str, int] = {}
        self.incr_row: dict[str, int] = {}
        self.incr_col: dict[str, int] = {}
        self.comp_row: dict[tuple[str, str], int] = {}
        self.comp_col: dict[str, int] = {}
        self.check_rows: tuple[int, int] = (0, 0)

    def sheet(self, name: str):
        """A new sheet named ``name`` in snake case (the workbook's first, empty sheet first)."""
        name = snake_sheet_name(name, used=self.used_sheets)
        if (
            len(self.wb.sheetnames) == 1
            and self.wb.active.title == "Sheet"
            and self.wb.active.max_row == 1
        ):
            ws = self.wb.active
            ws.title = name
        else:
            ws = self.wb.create_sheet(name)
        return ws

    def n(self, name: str) -> str:
        """What a formula writes for a parameter or setting (:class:`Names`)."""
        return self.names(name)

    # ------------------------------------------------------------------ references
    def st_cell(self, st: Strategy, col: str) -> str:
        """A strategy's cell on the strategies sheet."""
        return abs_ref(self.strat.title, self.strategy_col[col], self.strategy_row[st.strategy])

    def cyc(self, key: str, t: int) -> str:
        """A quantity of cycle ``t`` on the cycles sheet."""
        return abs_ref("cycles", CYC[key], CYC_FIRST + t)

    def ps_ref(self, owner: str, qty: str, state: str | None = None) -> str:
        """A per_state quantity: its value column, or its column for one alive state."""
        r = self.ps[(owner, qty)]
        col = 4 if state is None else PS_STATE_COL + ALIVE_SHORT.index(state)
        return abs_ref("per_state", col, r)

    def ps_row_range(self, owner: str, qty: str) -> str:
        """A per_state quantity over the five alive states."""
        r = self.ps[(owner, qty)]
        a, b = get_column_letter(PS_STATE_COL), get_column_letter(PS_STATE_COL + 4)
        return f"per_state!${a}${r}:${b}${r}"

    def trace_total(
        self, strategy: str, reward: str, discounted: bool, who: str = "weighted"
    ) -> str:
        """A total of a trace sheet (weighted, or one subgroup's)."""
        sheet = self.trace_sheet[strategy]
        col = trace_columns().index(reward) + 1
        return abs_ref(sheet, col, TOTAL_ROWS[(who, discounted)])

    def res(self, strategy: str, column: str, absolute: bool = True) -> str:
        """A strategy's result on the results sheet."""
        r, c = self.results_row[strategy], self.results_col[column]
        return abs_ref("results", c, r) if absolute else f"results!{get_column_letter(c)}{r}"

"""The trace_<strategy> sheets: per strategy, one block of rows per subgroup (hazards, competing
risks, transition probabilities, state occupancy, events, costs by category, QALYs and LYs per
cycle) and the totals above them (undiscounted, discounted, weighted over the subgroups).

A block is a start row (start rewards, at time 0 and never discounted) and one row per cycle
boundary t = 0..T; row t holds the trace at time t, the transition probabilities of cycle t
(t < T), the state rewards of row t and the transition rewards of cycle t - 1.
"""

from __future__ import annotations

from openpyxl.utils import get_column_letter

from cea.igrt.spec import COST_CATEGORIES, STATES, SUBGROUPS, Strategy
from cea.report.sheets.cells import (
    FMT_GENERAL,
    FMT_INT,
    FMT_PROB,
    FMT_QALY,
    FMT_SMALL,
    HEADER_FONT,
    NOTE_FONT,
    TOTAL_FILL,
    finish_sheet,
    put,
    put_formula,
    snake_sheet_name,
    write_header,
    write_title,
)
from cea.report.sheets.state import (
    ALIVE_SHORT,
    EFFECT_NAMES,
    REWARD_NAMES,
    SHORT,
    STATE_OF,
    TOTAL_ROWS,
    TR_FIRST,
    TR_HEADER,
    TRANSITIONS,
    ReportState,
    trace_columns,
)

#: State rewards: per_state quantity (per person-cycle by state) x occupancy x correction weight.
STATE_REWARDS = (
    "cost_ig",
    "cost_ig_admin",
    "cost_monitoring",
    "cost_adverse_events",
    "cost_bsab",
    "cost_subsequent_therapy",
    "ly",
    "ig_grams",
    "infusions",
    "igg_tests",
    "years_on_igrt",
    "thromboembolic_events",
    "infusion_reactions",
)


def write_trace(rs: ReportState, st: Strategy):
    name = snake_sheet_name(st.strategy, prefix="trace_", used=rs.used_sheets)
    ws = rs.wb.create_sheet(name)
    rs.trace_sheet[st.strategy] = name
    cols = trace_columns()
    C = {c: get_column_letter(j + 1) for j, c in enumerate(cols)}
    write_title(
        ws,
        f"Trace: {st.label} ({st.strategy}), both subgroups; every cell a formula over inputs, prices, per_state and cycles",
        "States: N on_bsab_igg_normal, L on_bsab_igg_low, I on_bsab_igrt, OI off_bsab_igrt, O off_bsab, D dead. "
        "h_ cumulative hazards per cycle; hx/sx/fx exits (death, bsAb stop): total, exp(-total), (1-exp(-total))/total; "
        "hi/si/fi internal IgG/IgRT changes among those remaining. Reward columns: row contributions x correction weight "
        "(undiscounted); transition rewards on the row ending their cycle; start rewards on the 'start' row.",
    )
    write_header(ws, TR_HEADER, cols)
    put(ws, 3, 1, "totals", font=HEADER_FONT)
    block_len = rs.T + 3  # start row, T + 1 rows, a blank row
    blocks = {}
    for b, sg in enumerate(SUBGROUPS):
        start = TR_FIRST + b * block_len
        blocks[sg] = (start, start + 1 + rs.T)
        _Block(rs, ws, st, sg, C).write(start)
    _write_totals(rs, ws, blocks, C)
    put(
        ws,
        10,
        1,
        "weighted = p_igg_isotype x igg_isotype + (1 - p_igg_isotype) x non_igg; discounted totals = SUMPRODUCT(column, discount factors)",
        font=NOTE_FONT,
    )
    rs.trace_blocks[st.strategy] = blocks
    widths = {1: 12, 2: 8}
    for j, c in enumerate(cols):
        if c in STATES:
            widths[j + 1] = 18
        elif c.startswith("cost") or c in REWARD_NAMES:
            widths[j + 1] = 16
    finish_sheet(ws, widths, freeze=f"D{TR_FIRST}", default_width=11)


def _write_totals(rs: ReportState, ws, blocks: dict, C: dict[str, str]):
    """Rows 4-9: per subgroup and weighted, undiscounted and discounted totals of each reward."""
    cols = list(C)
    for (who, disc), r in TOTAL_ROWS.items():
        put(ws, r, 1, who, fill=TOTAL_FILL)
        put(ws, r, 2, "discounted" if disc else "undiscounted", fill=TOTAL_FILL)
        for rw in ["cost", *REWARD_NAMES]:
            c = C[rw]
            fmt = rs.money if rw.startswith("cost") else FMT_QALY
            if who == "weighted":
                iso, non = TOTAL_ROWS[("igg_isotype", disc)], TOTAL_ROWS[("non_igg", disc)]
                w = rs.n("p_igg_isotype")
                formula = f"{w}*{c}{iso}+(1-{w})*{c}{non}"
            elif disc:
                a, z = blocks[who]
                d = C["disc_effects"] if rw in EFFECT_NAMES else C["disc_costs"]
                formula = f"SUMPRODUCT({c}{a}:{c}{z},{d}{a}:{d}{z})"
            else:
                a, z = blocks[who]
                formula = f"SUM({c}{a}:{c}{z})"
            put_formula(ws, r, cols.index(rw) + 1, formula, fmt, fill=TOTAL_FILL)


class _Block:
    """The rows of one subgroup on a strategy's trace sheet."""

    def __init__(self, rs: ReportState, ws, st: Strategy, sg: str, C: dict[str, str]):
        self.rs, self.ws, self.st, self.sg, self.C = rs, ws, st, sg, C
        self.n, self.o = rs.n, st.strategy
        self.col = {c: j + 1 for j, c in enumerate(C)}
        self.costs = list(COST_CATEGORIES)
        self.m = {s: C[STATE_OF[s]] for s in SHORT}  # trace column of each state
        trigger = st.trigger
        self.det = (
            rs.ps_ref(self.o, f"detection_hazard_per_cycle_{sg}")
            if trigger == "igg_below_threshold"
            else None
        )
        self.start_low = trigger == "after_severe_infection" or (
            trigger == "igg_below_threshold" and st.start_after_severe_infection
        )
        self.start_normal = trigger == "after_severe_infection"
        self.mixed = trigger in ("at_start", "after_severe_infection")
        self.cf = self.n("p_case_fatality_severe")
        self.phi = self.n("p_continue_igrt_after_bsab")
        self.stop = rs.ps_ref("all", "igrt_stop_hazard_per_cycle")

    def f(self, r, key, formula, fmt=FMT_GENERAL):
        put_formula(self.ws, r, self.col[key], formula, fmt)

    def v(self, r, key, value, fmt=FMT_GENERAL):
        put(self.ws, r, self.col[key], value, fmt)

    def at(self, key: str, r: int) -> str:
        """A cell of this sheet: column ``key``, row ``r``."""
        return f"{self.C[key]}{r}"

    def trace_range(self, r: int) -> str:  # the alive states
        return f"{self.C[STATES[0]]}{r}:{self.C[STATES[4]]}{r}"

    def sev_range(self, r: int) -> str:
        return f"{self.C['sev_N']}{r}:{self.C['sev_O']}{r}"

    def ns_range(self, r: int) -> str:
        return f"{self.C['ns_N']}{r}:{self.C['ns_O']}{r}"

    def cost_sum(self, r: int):
        C, costs = self.C, self.costs
        self.f(r, "cost", f"SUM({C[costs[0]]}{r}:{C[costs[-1]]}{r})", self.rs.money)

    # ------------------------------------------------------------------ rows
    def write(self, start: int):
        self.start_row(start)
        T = self.rs.T
        for t in range(T + 1):
            r = start + 1 + t
            self.time_and_infections(r, t)
            if t < T:
                self.hazards(r, t)
                self.competing_risks(r, t)
                self.transitions(r, t)
            self.trace(r, t)
            self.state_rewards(r)
            self.transition_rewards(r, t)
            self.cost_sum(r)

    def start_row(self, start: int):
        """Start rewards, counted once at time 0 and never discounted."""
        st, n = self.st, self.n
        put(self.ws, start, self.col["subgroup"], self.sg)
        put(self.ws, start, self.col["cycle"], "start")
        self.v(start, "disc_costs", 1.0)
        self.v(start, "disc_effects", 1.0)
        for rw in REWARD_NAMES:
            self.v(start, rw, 0.0)
        if st.is_scig and st.trigger == "at_start":
            training = f"{self.at(STATES[2], start + 1)}*{n('c_scig_training')}"
            self.f(start, "cost_scig_training", training, self.rs.money)
        self.cost_sum(start)

    def time_and_infections(self, r: int, t: int):
        """Subgroup, cycle, time, weights, discount factors; infections per person-cycle."""
        rs, o = self.rs, self.o
        put(self.ws, r, self.col["subgroup"], self.sg)
        put(self.ws, r, self.col["cycle"], t, FMT_INT)
        self.f(r, "time_years", rs.cyc("t0", t), FMT_SMALL)
        self.f(r, "wcc", rs.cyc("wcc", t))
        self.f(r, "disc_costs", rs.cyc("disc_costs", t), FMT_SMALL)
        self.f(r, "disc_effects", rs.cyc("disc_effects", t), FMT_SMALL)
        finf = rs.cyc("f_infection", t)
        for s in ALIVE_SHORT:
            # primary/secondary patients on IgRT: the untreated rate of their expected IgG mix
            mix = f"*{rs.cyc('igrt_infection_mix', t)}" if s == "I" and self.mixed else ""
            sev = rs.ps_ref(o, "severe_infections_per_cycle_base", s)
            ns = rs.ps_ref(o, "nonsevere_infections_per_cycle_base", s)
            self.f(r, f"sev_{s}", f"{sev}*{finf}{mix}")
            self.f(r, f"ns_{s}", f"{ns}*{finf}{mix}")

    def hazards(self, r: int, t: int):
        """Death hazards by state and the hazards of starting IgRT from N and L."""
        rs, at = self.rs, self.at
        hbg = rs.cyc("h_background", t)
        for s in ALIVE_SHORT:
            myeloma = rs.ps_ref(self.o, "myeloma_death_hazard_per_cycle", s)
            self.f(r, f"h_death_{s}", f"{hbg}+{myeloma}+{at(f'sev_{s}', r)}*{self.cf}")
        if self.start_normal:
            self.f(r, "h_start_N", at("sev_N", r))
        else:
            self.v(r, "h_start_N", 0.0)
        parts = ([self.det] if self.det else []) + ([at("sev_L", r)] if self.start_low else [])
        if parts:
            self.f(r, "h_start_L", "+".join(parts))
        else:
            self.v(r, "h_start_L", 0.0)

    def competing_risks(self, r: int, t: int):
        """Exits (death, bsAb stop) hx/sx/fx; internal IgG/IgRT changes hi/si/fi."""
        at, phi = self.at, self.phi
        hd = self.rs.cyc("h_discontinuation", t)
        hx = {
            "N": f"{hd}+{at('h_death_N', r)}",
            "L": f"{hd}+{at('h_death_L', r)}",
            "I": f"{hd}*{phi}+{hd}*(1-{phi})+{at('h_death_I', r)}",
            "OI": at("h_death_OI", r),
            "O": at("h_death_O", r),
        }
        hdec = self.rs.cyc("h_igg_decline", t)
        hi = {"N": f"{hdec}+{at('h_start_N', r)}", "L": at("h_start_L", r), "OI": self.stop}
        for s in ALIVE_SHORT:
            self.f(r, f"hx_{s}", hx[s])
            self.f(r, f"sx_{s}", f"EXP(-{at(f'hx_{s}', r)})")
            self.f(r, f"fx_{s}", _share(at(f"hx_{s}", r), at(f"sx_{s}", r)))
            if s in hi:
                self.f(r, f"hi_{s}", hi[s])
                self.f(r, f"si_{s}", f"EXP(-{at(f'hi_{s}', r)})")
                self.f(r, f"fi_{s}", _share(at(f"hi_{s}", r), at(f"si_{s}", r)))

    def transitions(self, r: int, t: int):
        """The 18 transition probabilities of cycle t."""
        at, phi, stop = self.at, self.phi, self.stop
        hd = self.rs.cyc("h_discontinuation", t)
        hdec = self.rs.cyc("h_igg_decline", t)
        x = lambda k, s: at(f"{k}_{s}", r)  # noqa: E731
        P = {
            ("N", "N"): f"{x('sx', 'N')}*{x('si', 'N')}",
            ("N", "L"): f"{x('sx', 'N')}*({hdec}*{x('fi', 'N')})",
            ("N", "I"): f"{x('sx', 'N')}*({at('h_start_N', r)}*{x('fi', 'N')})",
            ("N", "O"): f"{hd}*{x('fx', 'N')}",
            ("N", "D"): f"{at('h_death_N', r)}*{x('fx', 'N')}",
            ("L", "L"): f"{x('sx', 'L')}*{x('si', 'L')}",
            ("L", "I"): f"{x('sx', 'L')}*({at('h_start_L', r)}*{x('fi', 'L')})",
            ("L", "O"): f"{hd}*{x('fx', 'L')}",
            ("L", "D"): f"{at('h_death_L', r)}*{x('fx', 'L')}",
            ("I", "I"): x("sx", "I"),
            ("I", "OI"): f"{hd}*{phi}*{x('fx', 'I')}",
            ("I", "O"): f"{hd}*(1-{phi})*{x('fx', 'I')}",
            ("I", "D"): f"{at('h_death_I', r)}*{x('fx', 'I')}",
            ("OI", "OI"): f"{x('sx', 'OI')}*{x('si', 'OI')}",
            ("OI", "O"): f"{x('sx', 'OI')}*({stop}*{x('fi', 'OI')})",
            ("OI", "D"): f"{at('h_death_OI', r)}*{x('fx', 'OI')}",
            ("O", "O"): x("sx", "O"),
            ("O", "D"): f"{at('h_death_O', r)}*{x('fx', 'O')}",
        }
        for (a, b), formula in P.items():
            self.f(r, f"p_{a}_{b}", formula, FMT_PROB)

    def trace(self, r: int, t: int):
        """State occupancy: the start state at t = 0, then the flows of the previous cycle."""
        st, m = self.st, self.m
        if t == 0:
            first = "I" if st.trigger == "at_start" else "N"
            for s in SHORT:
                self.v(r, STATE_OF[s], 1.0 if s == first else 0.0, FMT_PROB)
        else:
            rp = r - 1
            for b in SHORT:
                terms = [
                    f"{m[a]}{rp}*{self.at(f'p_{a}_{b}', rp)}" for a, bb in TRANSITIONS if bb == b
                ]
                if b == "D":
                    terms.append(f"{m['D']}{rp}")
                self.f(r, STATE_OF[b], "+".join(terms), FMT_PROB)
        self.f(r, "row_sum_error", f"ABS(SUM({m['N']}{r}:{m['D']}{r})-1)")

    def state_rewards(self, r: int):
        """Rewards of the cohort on row r, times the correction weight (undiscounted)."""
        rs, n, o = self.rs, self.n, self.o
        w, occ = self.at("wcc", r), self.trace_range(r)
        sev, ns = f"SUMPRODUCT({occ},{self.sev_range(r)})", f"SUMPRODUCT({occ},{self.ns_range(r)})"
        for rw in STATE_REWARDS:
            fmt = rs.money if rw.startswith("cost") else FMT_QALY
            self.f(r, rw, f"{w}*SUMPRODUCT({occ},{rs.ps_row_range(o, rw)})", fmt)
        self.f(r, "severe_infections", f"{w}*{sev}", FMT_QALY)
        self.f(r, "nonsevere_infections", f"{w}*{ns}", FMT_QALY)
        self.f(r, "cost_severe_infections", f"{w}*{sev}*{n('c_hosp_severe_infection')}", rs.money)
        self.f(r, "cost_nonsevere_infections", f"{w}*{ns}*{n('c_outpatient_infection')}", rs.money)
        self.f(
            r,
            "qaly",
            f"{w}*(SUMPRODUCT({occ},{rs.ps_row_range(o, 'qaly_before_infections')})"
            f"-{n('q_qaly_loss_severe')}*{sev}"
            f"-{n('q_qaly_loss_nonsevere')}*{ns})",
            FMT_QALY,
        )

    def transition_rewards(self, r: int, t: int):
        """Rewards of the flows of cycle t - 1 (on row t, discounted at the end of their cycle):
        infection deaths, SCIG training on entering IgRT, end-of-life cost on death."""
        rs, n, m, at = self.rs, self.n, self.m, self.at
        if t == 0:
            for rw in ("infection_deaths", "cost_scig_training", "cost_end_of_life"):
                self.v(r, rw, 0.0)
            return
        rp = r - 1
        terms = [
            f"{m[s]}{rp}*{at(f'p_{s}_D', rp)}*IF({at(f'h_death_{s}', rp)}>0,{at(f'sev_{s}', rp)}*{self.cf}/{at(f'h_death_{s}', rp)},0)"
            for s in ALIVE_SHORT
        ]
        self.f(r, "infection_deaths", "+".join(terms), FMT_QALY)
        if self.st.is_scig:
            entering = f"{m['N']}{rp}*{at('p_N_I', rp)}+{m['L']}{rp}*{at('p_L_I', rp)}"
            self.f(r, "cost_scig_training", f"({entering})*{n('c_scig_training')}", rs.money)
        else:
            self.v(r, "cost_scig_training", 0.0)
        if rs.spec.include_end_of_life:
            deaths = "+".join(f"{m[s]}{rp}*{at(f'p_{s}_D', rp)}" for s in ALIVE_SHORT)
            self.f(r, "cost_end_of_life", f"({deaths})*{n('c_end_of_life')}", rs.money)
        else:
            self.v(r, "cost_end_of_life", 0.0)


def _share(h: str, s: str) -> str:
    """(1 - exp(-H)) / H of a cumulative hazard H (cell h) with exp(-H) in cell s; 1 when H = 0."""
    return f"IF({h}>0,(1-{s})/{h},1)"

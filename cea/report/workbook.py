"""report.xlsx: the base case as live spreadsheet formulas a reviewer can recalculate.

The workbook rebuilds the model of :mod:`cea.igrt.model` cell by cell, so that a reviewer (or an
HTA body that asks for an executable model) can change a price, a utility or a rate in the
workbook and see every trace, total and ICER move, without Python:

==================  =====================================================================
``summary``         the decision in words (what it would take for each IgRT strategy, the
                    view with the bispecific's costs excluded), the key table and the
                    cost-effective strategy as live formulas
``about``           question, country, currency, price year, conventions, provenance,
                    input hashes, CHEERS 2022 items answered and where
``inputs``          every parameter (value, unit, range, distribution, source, evidence)
                    and the two rates calibrated by the engine; each has a defined name
``prices``          the country's unit costs (currency, price year, inflation factor)
``strategies``      the strategies compared (dose, interval, rounding: referenced by the
                    formulas)
``settings``        cycle length, horizon, discount rates, WTP and the model's constants
``life_table``      background mortality hazard by single year of age
``cycles``          per cycle: time, correction weights, discount factors, background
                    mortality, the time-dependent hazards shared by all strategies
``per_state``       per strategy and state: infection rates, resource use, costs and QALYs
                    per person-cycle
``trace_<id>``      one per strategy, both subgroups: hazards, competing risks,
                    transition probabilities, state occupancy, events, costs by category,
                    QALYs and LYs per cycle, totals (undiscounted, discounted, weighted)
``results``         per strategy totals: formulas over the trace sheets
``incremental``     live full incremental analysis (dominance, extended dominance, ICERs,
                    NMB) beside the engine's table
``comparisons``     live named pairwise comparisons
``checks``          the workbook's totals beside the engine's values, with differences
``verification``    optional: the TECH-VER black-box checks (:func:`cea.verify.run_checks`,
                    what ``cea check`` prints), PASS/FAIL with detail and tolerance
``dsa``/``psa_*``   optional tables and native charts (tornado, CEAC, CE plane)
``regional``        optional regional comparison table
``budget``          optional budget impact (``cea budget``): live formulas over the trace
                    sheets, the mix and population as editable inputs
==================  =====================================================================

Every number the formulas use is a reference: to a defined name (a parameter such as
``c_ivig_per_g``, a setting such as ``cycle_length_years``) or to a cell of another sheet.
Structural choices (a strategy's trigger and product, the number of cycles, the correction
rule) decide which formulas are written. Text taken from the inputs is always written as
text, never as a formula.

The formulas reproduce :func:`cea.igrt.declaration.declare` and the engine conventions of
:mod:`cea.engine.markov`: competing exits (death, bsAb discontinuation) turned into probabilities
together, internal IgG/IgRT changes among those remaining; state rewards on trace rows with
the within-cycle correction weights; transition rewards (SCIG training on entering IgRT,
infection deaths on flows into ``dead``) counted once and discounted at the end of their
cycle; start rewards at time 0, undiscounted. ``tests/test_excel_reference.py`` recalculates
the workbook with LibreOffice and compares every total with the engine (relative 1e-9).

The writer computes nothing itself: it writes formulas and the engine's results. Each group
of sheets is written by a module of :mod:`cea.report.sheets` (settings, inputs, cycles,
per_state, trace, results, checks, analyses, about), from a shared
:class:`~cea.report.sheets.state.ReportState`; this module puts them in order
(:func:`build_workbook`) and saves the workbook (:func:`write_report`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from openpyxl import Workbook

from cea.io.workbook import save_workbook
from cea.report.base import decision_text
from cea.report.sheets.about import write_about
from cea.report.sheets.analyses import write_dsa, write_psa, write_regional
from cea.report.sheets.budget import write_budget
from cea.report.sheets.cells import print_setup, snake_sheet_name
from cea.report.sheets.checks import pass_text, write_checks, write_verification
from cea.report.sheets.cycles import write_cycles, write_life_table
from cea.report.sheets.inputs import write_inputs, write_prices, write_strategies
from cea.report.sheets.per_state import write_per_state
from cea.report.sheets.results import write_comparisons, write_incremental, write_results
from cea.report.sheets.settings import write_settings
from cea.report.sheets.state import ReportState
from cea.report.sheets.summary import write_summary
from cea.report.sheets.trace import write_trace

__all__ = ["build_workbook", "snake_sheet_name", "verification_summary", "write_report"]

#: The sheets in workbook order; the optional analysis sheets come after verification and
#: the trace sheets last.
SHEET_ORDER = [
    "summary",
    "about",
    "inputs",
    "prices",
    "strategies",
    "settings",
    "results",
    "incremental",
    "comparisons",
    "checks",
    "verification",
]
MODEL_SHEETS = ["per_state", "cycles", "life_table"]


def build_workbook(
    base,
    command: str,
    dsa=None,
    psa=None,
    regional=None,
    verification=None,
    verification_note="",
    budget=None,
    decision=None,
) -> Workbook:
    """The report workbook of a base case (see :func:`write_report`), not yet saved.

    The sheets are written in the order their formulas need them (each refers only to sheets
    written before it), then put in reading order (:data:`SHEET_ORDER`)."""
    rs = ReportState(base, command)
    rs.about = rs.sheet("about")
    write_settings(rs)
    write_inputs(rs)
    write_prices(rs)
    write_strategies(rs)
    write_life_table(rs)
    write_cycles(rs)
    write_per_state(rs)
    for st in rs.strategies:
        write_trace(rs, st)
    write_results(rs)
    write_incremental(rs)
    write_comparisons(rs)
    write_summary(rs, decision_text(base, decision) if decision is not None else None)
    write_checks(rs)
    if verification is not None:
        write_verification(rs, verification, verification_note)
    extra = []
    if dsa is not None:
        extra += write_dsa(rs, dsa)
    if psa is not None:
        extra += write_psa(rs, psa)
    if regional is not None:
        extra += write_regional(rs, regional)
    if budget is not None:
        extra += write_budget(rs, budget)
    write_about(rs, extra)
    _sort_sheets(rs, extra)
    for ws in rs.wb.worksheets:
        print_setup(ws)
    rs.wb.active = 0
    rs.wb.calculation.fullCalcOnLoad = True
    return rs.wb


def _sort_sheets(rs: ReportState, extra: list[str]):
    order = SHEET_ORDER + extra + MODEL_SHEETS + [rs.trace_sheet[s.strategy] for s in rs.strategies]
    rs.wb._sheets.sort(key=lambda ws: order.index(ws.title) if ws.title in order else len(order))


def write_report(
    base,
    path: Path | str,
    command: str = "",
    dsa=None,
    psa=None,
    regional=None,
    verification: pd.DataFrame | None = None,
    verification_note: str = "",
    budget=None,
    decision=None,
) -> Path:
    """Write report.xlsx for a base case: inputs, live formula traces, results, checks.

    Parameters
    ----------
    base : cea.pipeline.base.BaseCase
        The deterministic base case (inputs, parameter table, spec, engine results).
    path : where to write the workbook (``.xlsx``).
    command : the command line that produced the run (recorded on the ``about`` sheet).
    dsa : DataFrame or dict of DataFrames, optional
        Tornado table with columns ``parameter, low_value, high_value, inmb_low, inmb_high``
        (sheet ``dsa`` with a native bar chart); other entries get their own sheets.
    psa : dict of DataFrames, optional
        ``summary`` (sheet ``psa``), ``ceac`` (wtp x strategy, or long wtp/strategy/probability;
        native line chart), ``ce_plane`` (draws with ``inc_cost``, ``inc_qaly`` and optionally
        ``comparison``; native scatter chart); other entries get their own sheets.
    regional : DataFrame or dict of DataFrames, optional
        The regional comparison table (sheet ``regional``).
    verification : DataFrame, optional
        The TECH-VER check table of :func:`cea.verify.run_checks` (columns ``check, passed,
        detail, tolerance``; what ``cea check`` prints): sheet ``verification``, one row per
        check with PASS/FAIL. ``verification_note``: a sentence added to the sheet's note
        (e.g. which PSA/DSA tables the table checks ran on).
    decision : cea.pipeline.decision.Decision, optional
        The decision of :func:`cea.pipeline.decision.decide`, stated in words on the first
        sheet (``summary``).
    budget : cea.pipeline.budget.Budget, optional
        The budget impact of this base case (sheet ``budget``, live formulas over the trace
        sheets).

    Returns
    -------
    Path of the written workbook.
    """
    path = Path(path)
    wb = build_workbook(
        base,
        command,
        dsa=dsa,
        psa=psa,
        regional=regional,
        verification=verification,
        verification_note=verification_note,
        budget=budget,
        decision=decision,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    save_workbook(wb, path)
    return path


def verification_summary(table: pd.DataFrame) -> str:
    """One terminal line: how many of the report's verification checks passed."""
    n_ok = sum(pass_text(v) == "PASS" for v in table["passed"])
    failed = [
        str(c)
        for c, v in zip(table["check"], table["passed"], strict=True)
        if pass_text(v) != "PASS"
    ]
    return (
        f"verification: {n_ok} of {len(table)} TECH-VER checks passed"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
        + " (report.xlsx, sheet verification)"
    )

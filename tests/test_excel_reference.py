"""report.xlsx, recalculated by a real spreadsheet engine, reproduces the Python engine.

openpyxl writes formulas but never calculates them, and reads only the values a spreadsheet
cached at its last save. So the written workbook is recalculated with LibreOffice headless
(``soffice --headless --calc --convert-to xlsx``) and read back with ``data_only=True``:

* ``results`` (every column: total and undiscounted cost, each cost category, QALYs, LYs
  and the event/resource counts, one row per strategy) equals ``BaseCase.results`` to a
  relative 1e-9, and ``checks!D4`` (the workbook's own largest relative difference) is below
  1e-9 with ``checks!D7`` saying PASS;
* changing one input cell in the workbook (``prices!B<c_ivig_per_g>``, the Ig price per
  gram; ``inputs!B<u_on_bsab>``, a utility) and recalculating moves every total, the live
  incremental analysis (``incremental!N`` status, ``incremental!R`` ICER) and the named
  comparisons (``comparisons!F`` ICER, ``comparisons!H`` INMB) exactly as the engine moves
  when it is rerun with the same change (``cea.igrt.model.run_model`` with the base case's
  calibrated rates).

LibreOffice starts once for the module (all workbooks converted in one call). The tests are
skipped when ``soffice`` is not installed, unless ``CEA_REQUIRE_SOFFICE`` is set (CI sets it,
so a missing install fails there instead of passing silently).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from openpyxl.utils.cell import coordinate_to_tuple

from cea.analysis.incremental import icer_table, pairwise
from cea.analysis.outcomes import results_table
from cea.igrt.calibration import CALIBRATED
from cea.igrt.model import run_model
from cea.io.load import load_inputs
from cea.parameters.table import load_scenario
from cea.pipeline.base import comparisons_from_settings, run_base_case, with_cost_split
from cea.pipeline.budget import budget_impact
from cea.pipeline.decision import decide
from cea.report.workbook import write_report

pytestmark = [pytest.mark.excel, pytest.mark.slow]

INPUTS = Path(__file__).resolve().parents[1] / "inputs"
RTOL = 1e-9
SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
SOFFICE_TIMEOUT_S = 600
PRICE_FACTOR = 0.5  # IVIG at half price: IVIG strategies move onto the frontier
NEW_UTILITY = 0.8  # u_on_bsab from 0.72
NEW_BSAB_SHARE = 0.6  # p_bsab_price_paid from 1: a 40% confidential discount
INJECTED = '=HYPERLINK("http://example.invalid","x")+1'
# LibreOffice profile: recalculate every formula when an .xlsx is loaded (never trust caches)
RECALC_PROFILE = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="OOXMLRecalcMode" oor:op="fuse"><value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="ODFRecalcMode" oor:op="fuse"><value>0</value></prop></item>
</oor:items>
"""


def _require_soffice():
    if SOFFICE is None:
        if os.environ.get("CEA_REQUIRE_SOFFICE"):
            pytest.fail("CEA_REQUIRE_SOFFICE is set but LibreOffice (soffice) is not installed")
        pytest.skip(
            "LibreOffice (soffice) is not installed: apt-get install libreoffice-calc-nogui"
        )


def recalculate(files: list[Path], out: Path, profile: Path) -> dict[str, Path]:
    """Recalculate workbooks with LibreOffice headless; returns name -> recalculated copy."""
    (profile / "user").mkdir(parents=True, exist_ok=True)
    (profile / "user" / "registrymodifications.xcu").write_text(RECALC_PROFILE)
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        SOFFICE,
        f"-env:UserInstallation={profile.as_uri()}",
        "--headless",
        "--norestore",
        "--calc",
        "--convert-to",
        "xlsx",
        "--outdir",
        str(out),
        *map(str, files),
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=SOFFICE_TIMEOUT_S, check=False
    )
    result = {f.name: out / f.name for f in files}
    missing = [n for n, p in result.items() if not p.is_file()]
    assert not missing, f"LibreOffice did not convert {missing}: {proc.stdout} {proc.stderr}"
    return result


class Sheet:
    """The values of one sheet (a read-only pass: fast on large recalculated workbooks)."""

    def __init__(self, ws):
        self.rows = [list(r) for r in ws.iter_rows(values_only=True)]
        self.max_row = len(self.rows)

    def cell(self, row: int, column: int):
        cells = self.rows[row - 1] if 0 < row <= len(self.rows) else []
        return cells[column - 1] if 0 < column <= len(cells) else None

    def row(self, row: int) -> list:
        return self.rows[row - 1] if 0 < row <= len(self.rows) else []

    def __getitem__(self, ref: str):
        r, c = coordinate_to_tuple(ref)
        return self.cell(r, c)


class Book:
    """Sheets of a recalculated workbook, read on first use with the values LibreOffice saved."""

    def __init__(self, path: Path):
        self.path = path
        self._sheets: dict[str, Sheet] = {}

    def __getitem__(self, name: str) -> Sheet:
        if name not in self._sheets:
            wb = openpyxl.load_workbook(self.path, read_only=True, data_only=True)
            try:
                self._sheets[name] = Sheet(wb[name])
            finally:
                wb.close()
        return self._sheets[name]


def _cell_of(ws, name: str, key_col: int = 1, first_row: int = 5) -> int:
    for r in range(first_row, ws.max_row + 1):
        if _value(ws.cell(r, key_col)) == name:
            return r
    raise KeyError(name)


def _blank(x) -> bool:
    return x is None or x == "" or (isinstance(x, float) and np.isnan(x))


def _value(cell):
    return getattr(cell, "value", cell)


def _engine_rerun(base, **changes) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The engine with some parameter values changed and the base case's calibrated rates."""
    draws = base.ptable.base()
    for name, value in changes.items():
        draws[name] = value
    calibrated = pd.DataFrame(
        [[base.calibrated[n] for n in CALIBRATED]], columns=list(CALIBRATED), index=draws.index
    )
    outcomes = run_model(draws, base.spec, calibrated=calibrated).outcomes
    wtp = base.country.wtp_per_qaly
    incremental = icer_table(outcomes, cost="cost", effect="qaly", wtp=wtp)
    comps = comparisons_from_settings(base.ptable.settings, base.spec)
    comparisons = with_cost_split(
        pairwise(outcomes, comps, wtp=wtp, extra=("severe_infections", "infection_deaths")),
        outcomes,
    )
    return results_table(outcomes, base.spec), incremental, comparisons


COVERAGE_SCENARIO = """
name = "excel_coverage"
description = "Every strategy and the less common settings, so that every formula branch of report.xlsx is recalculated."
[settings.model]
horizon_years = 3
correction = "simpson"
discount_step = "annual"
discount_offset_cycles = 0.5
bsab_drug = "elranatamab"
include_end_of_life = true
include_subsequent_therapy = true
strategies = STRATEGIES
comparisons = [["secondary_ivig", "none"], ["primary_ivig_flat30", "primary_ivig"], ["preemptive_ivig_or_infection", "preemptive_ivig"]]
[parameters]
c_end_of_life = 150000
c_subsequent_therapy_month = 90000
k_infection_hazard_shape = 0.8
k_tot_weibull_shape = 1.3
hr_igrt_os = 0.9
q_qaly_loss_ivig_visit = 0.001
q_qaly_loss_scig_week = 0.0002
"""


def _coverage_base(tmp: Path):
    """Japan (JPY, 58 kg), every strategy of strategies.csv (flat, adjusted-weight, vial-rounded,
    low-dose, q6w, secondary, preemptive-or-infection), Simpson weights, whole-year discounting
    with a half-cycle offset, end-of-life and subsequent-therapy costs, a Weibull time on
    treatment and a declining infection hazard."""
    names = pd.read_csv(INPUTS / "strategies.csv")["strategy"].tolist()
    path = tmp / "coverage.toml"
    path.write_text(
        COVERAGE_SCENARIO.replace("STRATEGIES", "[" + ", ".join(f'"{n}"' for n in names) + "]")
    )
    return run_base_case(INPUTS, "JP", scenario=path)


@pytest.fixture(scope="module")
def excel(tmp_path_factory):
    _require_soffice()
    tmp = tmp_path_factory.mktemp("excel")
    src = tmp / "src"
    src.mkdir()
    t0 = time.perf_counter()
    model_inputs = load_inputs(INPUTS)
    base = run_base_case(model_inputs, "GB")
    budget = budget_impact(model_inputs, "GB")
    base.ptable.df.loc["p_male", "source"] = INJECTED  # text that looks like a formula
    decision = decide(base, hazard_ratio=False)
    report = write_report(
        base,
        src / "report.xlsx",
        command="pytest tests/test_excel_reference.py",
        budget=budget,
        decision=decision,
    )
    wb = openpyxl.load_workbook(report)
    prices, inputs = wb["prices"], wb["inputs"]
    price_row = _cell_of(prices, "c_ivig_per_g")
    old_price = prices.cell(price_row, 2).value
    new_price = old_price * PRICE_FACTOR
    prices.cell(price_row, 2).value = new_price
    wb.save(src / "changed_price.xlsx")
    prices.cell(price_row, 2).value = old_price
    util_row = _cell_of(inputs, "u_on_bsab")
    old_utility = inputs.cell(util_row, 2).value
    inputs.cell(util_row, 2).value = NEW_UTILITY
    wb.save(src / "changed_utility.xlsx")
    inputs.cell(util_row, 2).value = old_utility
    share_row = _cell_of(inputs, "p_bsab_price_paid")
    inputs.cell(share_row, 2).value = NEW_BSAB_SHARE
    wb.save(src / "changed_bsab_share.xlsx")
    print(f"\n[excel fixture] workbooks written and edited in {time.perf_counter() - t0:.1f} s")
    started = time.perf_counter()
    coverage = _coverage_base(tmp)
    coverage_budget = budget_impact(
        model_inputs, "JP", load_scenario(tmp / "coverage.toml"), years=3
    )
    write_report(coverage, src / "coverage.xlsx", command="pytest coverage scenario",
                 budget=coverage_budget)  # fmt: skip
    files = recalculate(
        [
            report,
            src / "changed_price.xlsx",
            src / "changed_utility.xlsx",
            src / "changed_bsab_share.xlsx",
            src / "coverage.xlsx",
        ],  # fmt: skip
        tmp / "out",
        tmp / "profile",
    )
    seconds = time.perf_counter() - started
    books = {name: Book(path) for name, path in files.items()}
    return {
        "base": base,
        "decision": decision,
        "budget": budget,
        "coverage": coverage,
        "coverage_budget": coverage_budget,
        "books": books,
        "seconds": seconds,
        "changed_price": _engine_rerun(base, c_ivig_per_g=new_price),
        "changed_utility": _engine_rerun(base, u_on_bsab=NEW_UTILITY),
        "changed_bsab_share": _engine_rerun(base, p_bsab_price_paid=NEW_BSAB_SHARE),
    }


def _sheet_table(ws, header_row: int = 4) -> pd.DataFrame:
    header = []
    for value in ws.row(header_row):
        if value is None:
            break
        header.append(value)
    rows = []
    for r in range(header_row + 1, ws.max_row + 1):
        values = [ws.cell(r, j + 1) for j in range(len(header))]
        if values[0] is None:
            break
        rows.append(values)
    return pd.DataFrame(rows, columns=header)


def _assert_results_equal(ws, expected: pd.DataFrame):
    """results!<column><row>: every numeric column of every strategy, relative 1e-9."""
    got = _sheet_table(ws).set_index("strategy")
    exp = expected.set_index("strategy")
    assert list(got.index) == list(exp.index)
    assert list(got.columns) == list(exp.columns)
    worst = 0.0
    for col in exp.columns:
        if col == "label":
            assert list(got[col]) == list(exp[col])
            continue
        g, e = got[col].to_numpy(float), exp[col].to_numpy(float)
        np.testing.assert_allclose(g, e, rtol=RTOL, atol=0, err_msg=f"results!{col}")
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(e != 0, np.abs(g - e) / np.abs(e), np.abs(g))
        worst = max(worst, float(rel.max()))
    return worst


def test_results_equal_engine(excel):
    """Sheet results, rows 5.. (one per strategy), every column: equals BaseCase.results."""
    worst = _assert_results_equal(excel["books"]["report.xlsx"]["results"], excel["base"].results)
    print(
        f"\nlargest relative difference workbook vs engine (results): {worst:.3g}; LibreOffice {excel['seconds']:.1f} s"
    )


def test_checks_sheet_passes(excel):
    """Sheet checks: D4 = largest relative difference <= 1e-9, D6 = 0 failing checks, D7 PASS."""
    ws = excel["books"]["report.xlsx"]["checks"]
    assert ws["D4"] <= RTOL
    assert ws["D6"] == 0
    assert ws["D7"].startswith("PASS")


def test_trace_rows_sum_to_one_and_totals(excel):
    """Every trace sheet: the state columns of each row sum to 1; rows 8-9 (weighted totals) of
    qaly and cost equal the engine's."""
    book = excel["books"]["report.xlsx"]
    base = excel["base"]
    res = base.results.set_index("strategy")
    for st in base.spec.strategies:
        ws = book[f"trace_{st.strategy}"]
        header = ws.row(11)
        err = header.index("row_sum_error") + 1
        errors = [ws.cell(r, err) for r in range(12, ws.max_row + 1)]
        errors = [e for e in errors if isinstance(e, (int, float))]
        assert len(errors) == 2 * (base.spec.n_cycles + 1)
        assert max(errors) < 1e-12
        qaly = ws.cell(9, header.index("qaly") + 1)
        assert qaly == pytest.approx(res.loc[st.strategy, "qaly"], rel=RTOL)
        ly_und = ws.cell(8, header.index("ly") + 1)
        assert ly_und == pytest.approx(res.loc[st.strategy, "ly_undiscounted"], rel=RTOL)


def _assert_incremental(ws, expected: pd.DataFrame):
    got = _sheet_table(ws).set_index("strategy")
    exp = expected.set_index("strategy")
    for s in exp.index:
        assert got.loc[s, "status"] == exp.loc[s, "status"], s
        e_icer = exp.loc[s, "icer"]
        g_icer = got.loc[s, "icer"]
        if pd.isna(e_icer):
            assert _blank(g_icer), s
        else:
            assert g_icer == pytest.approx(e_icer, rel=RTOL), s
            assert got.loc[s, "reference"] == exp.loc[s, "reference"]
        assert got.loc[s, "nmb"] == pytest.approx(exp.loc[s, "nmb"], rel=RTOL)
    optimal = exp.loc[exp["optimal"]].index[0]
    assert got.loc[optimal, "optimal"] == "optimal"


def _assert_comparisons(ws, expected: pd.DataFrame):
    got = _sheet_table(ws).set_index("comparison")
    for _, e in expected.iterrows():
        g = got.loc[e["comparison"]]
        assert g["quadrant"] == e["quadrant"]
        split = ("inc_cost_igrt", "inc_cost_infections", "inc_cost_added_survival")
        for col in ("inc_cost", "inc_effect", "inmb", "inc_severe_infections", *split):
            assert g[col] == pytest.approx(e[col], rel=1e-8, abs=1e-9), (e["comparison"], col)
        if pd.isna(e["icer"]):
            assert _blank(g["icer"])
        else:
            assert g["icer"] == pytest.approx(e["icer"], rel=1e-8), e["comparison"]


def test_base_incremental_and_comparisons(excel):
    """Sheets incremental (status N, icer R, nmb G) and comparisons (icer F, inmb H)."""
    base = excel["base"]
    _assert_incremental(excel["books"]["report.xlsx"]["incremental"], base.incremental)
    _assert_comparisons(excel["books"]["report.xlsx"]["comparisons"], base.comparisons)


@pytest.mark.parametrize("name", ["changed_price", "changed_utility", "changed_bsab_share"])
def test_changed_input_moves_results_like_the_engine(excel, name):
    """prices!B<c_ivig_per_g> x 0.5, inputs!B<u_on_bsab> = 0.8 or inputs!B<p_bsab_price_paid>
    = 0.6 (the bispecific's share of list price paid), changed in the workbook:
    results, incremental ICERs and statuses, and comparisons equal the engine rerun with the
    same change."""
    results, incremental, comparisons = excel[name]
    book = excel["books"][f"{name}.xlsx"]
    _assert_results_equal(book["results"], results)
    _assert_incremental(book["incremental"], incremental)
    _assert_comparisons(book["comparisons"], comparisons)
    # the change really moved something
    base = excel["base"]
    if name == "changed_price":
        assert not np.allclose(results["cost"], base.results["cost"])
        assert list(incremental["status"]) != list(
            base.incremental["status"]
        )  # the frontier changed
    elif name == "changed_bsab_share":  # the bispecific costs 40% less, nothing else moves
        np.testing.assert_allclose(results["cost_bsab"], 0.6 * base.results["cost_bsab"])
        np.testing.assert_allclose(results["qaly"], base.results["qaly"])
    else:
        assert not np.allclose(results["qaly"], base.results["qaly"])
    # the checks sheet reports the distance from the engine's base case
    assert book["checks"]["D6"] > 0


@pytest.mark.parametrize(
    "name", ["report", "changed_price", "changed_utility", "changed_bsab_share", "coverage"]
)
def test_summary_sheet_states_the_live_decision(excel, name):
    """Sheet summary (first): the cost-effective strategy (C5, a live formula) is the label of
    the strategy with the highest net monetary benefit in the engine's results for the same
    inputs, also after an input was changed in the workbook; the key table's NMB column is
    WTP x QALY - cost of the results."""
    book = excel["books"][f"{name}.xlsx"]
    ws = book["summary"]
    if name.startswith("changed_"):
        results = excel[name][0]
        base = excel["base"]
    else:
        base = excel["base" if name == "report" else "coverage"]
        results = base.results
    wtp = base.country.wtp_per_qaly
    nmb = wtp * results["qaly"] - results["cost"]
    assert ws["C5"] == results.loc[nmb.idxmax(), "label"]
    table = {ws.cell(r, 1): ws.cell(r, 6) for r in range(8, 8 + len(results))}
    for _, row in results.iterrows():
        assert table[row["strategy"]] == pytest.approx(wtp * row["qaly"] - row["cost"], rel=RTOL)
    if name == "report":
        text = [ws.cell(r, 1) for r in range(1, ws.max_row + 1)]
        optimal = excel["decision"].optimal
        label = results.set_index("strategy").loc[optimal, "label"]
        assert (
            f"At GBP 20,000 per QALY the cost-effective strategy is {label} ({optimal})"
            in " ".join(str(t) for t in text)
        )


def _budget_blocks(ws) -> tuple[dict, dict]:
    """The budget sheet's per-patient rows ((strategy, measure) -> values by year since start)
    and budget rows ((mix, measure) -> values by calendar year), found by their labels."""
    per_patient, budget, block = {}, {}, None
    for r in range(1, ws.max_row + 1):
        a, b = ws.cell(r, 1), ws.cell(r, 2)
        if a in ("per patient", "budget") or str(a).startswith("year split"):
            block = a
            continue
        if block is None or _blank(a) or _blank(b):
            continue
        values = [v for v in ws.row(r)[2:] if isinstance(v, int | float)]
        if block == "per patient":
            per_patient[(a, b)] = values
        elif block == "budget":
            budget[(a, b)] = values
    return per_patient, budget


@pytest.mark.parametrize("which", ["budget", "coverage_budget"])
def test_budget_sheet_equals_engine(excel, which):
    """Sheet budget, recalculated: every per-patient number by year since start and every
    budget figure by calendar year (current mix, new mix, net; each cost category, the total,
    Ig grams, chair hours, infections, deaths, life-years) equals cea.pipeline.budget to a
    relative 1e-9, for GB (5 years, half-cycle) and for the coverage scenario (JP, 3 years,
    Simpson weights, every cost category switched on)."""
    b = excel[which]
    book = excel["books"]["report.xlsx" if which == "budget" else "coverage.xlsx"]
    per_patient, budget = _budget_blocks(book["budget"])
    assert len(per_patient) == len(b.strategies) * len(b.per_patient)
    for (name, m), values in per_patient.items():
        expected = b.per_patient[m][b.strategies.index(name)]
        np.testing.assert_allclose(values, expected, rtol=RTOL, atol=1e-9, err_msg=f"{name} {m}")
    for mix in ("current", "new", "net"):
        for m, expected in b.totals[mix].items():
            got = budget[(mix, m)]
            assert len(got) == b.years + 1  # the years and the total
            np.testing.assert_allclose(
                got[:-1], expected, rtol=RTOL, atol=1e-6, err_msg=f"{mix} {m}"
            )
            np.testing.assert_allclose(got[-1], expected.sum(), rtol=RTOL, atol=1e-6)
        usd = budget[(mix, "cost_usd")][:-1]
        np.testing.assert_allclose(usd, b.totals[mix]["cost"] / b.country.fx_lcu_per_usd, rtol=RTOL)
    assert np.any(budget[("net", "cost")][:-1])  # something to compare


def test_every_strategy_and_setting_branch_equals_engine(excel):
    """coverage.xlsx (see _coverage_base): results!* equal the engine, checks!D7 PASS, and the
    live incremental analysis and comparisons equal the engine's."""
    base = excel["coverage"]
    book = excel["books"]["coverage.xlsx"]
    worst = _assert_results_equal(book["results"], base.results)
    assert book["checks"]["D7"].startswith("PASS"), book["checks"]["D4"]
    _assert_incremental(book["incremental"], base.incremental)
    _assert_comparisons(book["comparisons"], base.comparisons)
    res = base.results.set_index("strategy")
    assert res["cost_end_of_life"].min() > 0 and res["cost_subsequent_therapy"].min() > 0
    print(f"\nlargest relative difference workbook vs engine (coverage scenario): {worst:.3g}")


def test_text_stays_text_after_recalculation(excel):
    """inputs!L<p_male>: a source text starting with '=' is still that text after LibreOffice
    recalculated and saved the workbook (never evaluated as a formula)."""
    ws = excel["books"]["report.xlsx"]["inputs"]
    header = ws.row(4)
    row = _cell_of(ws, "p_male")
    assert ws.cell(row, header.index("source") + 1) == INJECTED


#: Pages the GB report (base case, five strategies, budget sheet) may take printed to PDF by
#: LibreOffice: every sheet landscape, fit to one page wide (it measured 38; 702 before the
#: print setup, when wide sheets split across pages).
PAGE_BUDGET = 45


def test_pdf_export_stays_within_the_page_budget(excel, tmp_path):
    """Print the report (LibreOffice --convert-to pdf) and count the pages."""
    import re

    book = excel["books"]["report.xlsx"]
    cmd = [SOFFICE, f"-env:UserInstallation={(tmp_path / 'profile').as_uri()}", "--headless",
           "--norestore", "--convert-to", "pdf", "--outdir", str(tmp_path), str(book.path)]  # fmt: skip
    subprocess.run(cmd, capture_output=True, timeout=SOFFICE_TIMEOUT_S, check=False)
    pdf = (tmp_path / "report.pdf").read_bytes()
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert 10 <= pages <= PAGE_BUDGET, pages

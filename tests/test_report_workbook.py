"""report.xlsx structure, formulas, safety and optional sheets (no spreadsheet engine needed;
tests/test_excel_reference.py recalculates the workbook with LibreOffice)."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from openpyxl.utils import get_column_letter

from cea.io.workbook import exact_numbers, save_workbook
from cea.pipeline.base import run_base_case
from cea.report.workbook import snake_sheet_name, write_report
from cea.verify import BASE_CHECKS, CHECK_COLUMNS, run_checks

INPUTS = Path(__file__).resolve().parents[1] / "inputs"
INJECTED = {"p_male": "=1+1", "p_igg_isotype": "+SUM(A1)", "u_on_bsab": "-2", "u_off_bsab": "@cmd"}
# numbers a formula may contain: 0 and 1 (index arithmetic, complements), 2 (LN(2), a median)
ALLOWED_LITERALS = {"0", "1", "2"}


def synthetic_dsa() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "parameter": ["c_ivig_per_g", "q_height_cm", "hr_igrt_severe", "u_on_bsab"],
            "low_value": [25.0, 160.0, 0.3, 0.6],
            "high_value": [50.0, 180.0, 0.7, 0.8],
            "inmb_low": [-1000.0, -500.0, 500.0, -200.0],
            "inmb_high": [-3000.0, -500.0, -800.0, 100.0],
            "inmb_base": [-500.0, -500.0, -500.0, -500.0],
        }
    )


def synthetic_psa() -> dict[str, pd.DataFrame]:
    wtp = np.array([0.0, 20000.0, 40000.0])
    ceac = pd.DataFrame({"wtp": wtp, "none": [1.0, 0.7, 0.4], "primary_ivig": [0.0, 0.3, 0.6]})
    rng = np.random.default_rng(1)
    plane = pd.DataFrame(
        {
            "draw": np.tile(np.arange(5), 2),
            "comparison": ["primary_ivig vs none"] * 5 + ["preemptive_ivig vs none"] * 5,
            "inc_cost": rng.normal(30000, 5000, 10),
            "inc_qaly": rng.normal(0.05, 0.02, 10),
        }
    )
    summary = pd.DataFrame(
        {
            "strategy": ["none", "primary_ivig"],
            "cost_mean": [4.2e5, 4.6e5],
            "qaly_mean": [1.37, 1.44],
        }
    )
    return {"summary": summary, "ceac": ceac, "ce_plane": plane}


def synthetic_regional() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "country": ["GB", "US"],
            "currency": ["GBP", "USD"],
            "icer": [473518.0, 250000.0],
            "threshold_price_per_g": [10.5, 40.1],
        }
    )


@pytest.fixture(scope="module")
def checks_table():
    """The TECH-VER check table of the GB base case (run_checks, base-case checks)."""
    return run_checks(run_base_case(INPUTS, "GB"))


@pytest.fixture(scope="module")
def report(tmp_path_factory, checks_table):
    base = run_base_case(INPUTS, "GB")
    for name, text in INJECTED.items():
        base.ptable.df.loc[name, "source"] = text
    path = tmp_path_factory.mktemp("report") / "report.xlsx"
    write_report(
        base,
        path,
        command="cea run --country GB --report xlsx",
        dsa=synthetic_dsa(),
        psa=synthetic_psa(),
        regional=synthetic_regional(),
        verification=checks_table,
    )
    wb = openpyxl.load_workbook(path)
    return base, path, wb


def test_sheets_snake_case_and_present(report):
    base, _, wb = report
    names = wb.sheetnames
    assert names[:2] == ["summary", "about"]  # the decision first
    for name in names:
        assert re.fullmatch(r"[a-z0-9_]{1,31}", name), name
    expected = {
        "summary",
        "about",
        "inputs",
        "prices",
        "strategies",
        "settings",
        "life_table",
        "cycles",
        "per_state",
        "results",
        "incremental",
        "comparisons",
        "checks",
        "verification",
        "dsa",
        "psa",
        "psa_ceac",
        "psa_ce_plane",
        "regional",
    }
    assert expected <= set(names)
    for st in base.spec.strategies:
        assert f"trace_{st.strategy}" in names


def test_snake_sheet_name_is_short_and_unique():
    used: set[str] = set()
    a = snake_sheet_name("Preemptive IVIG or after a severe infection!", "trace_", used)
    b = snake_sheet_name("Preemptive IVIG or after a severe infection?", "trace_", used)
    assert len(a) <= 31 and len(b) <= 31 and a != b
    assert re.fullmatch(r"[a-z0-9_]+", a) and re.fullmatch(r"[a-z0-9_]+", b)


def test_every_total_is_a_formula_over_the_trace_sheets(report):
    """results: every number is a formula; weighted totals come from trace_<strategy>!rows 8-9."""
    base, _, wb = report
    ws = wb["results"]
    header = [c.value for c in ws[4]]
    for r in range(5, 5 + len(base.spec.strategies)):
        for j, name in enumerate(header):
            value = ws.cell(r, j + 1).value
            if name in ("strategy", "label"):
                assert isinstance(value, str)
            else:
                assert isinstance(value, str) and value.startswith("="), (name, value)
    assert re.match(r"^='?trace_none'?!\$[A-Z]+\$9$", ws.cell(5, header.index("qaly") + 1).value)


def _formulas(ws):
    for row in ws.iter_rows():
        for cell in row:
            if cell.data_type == "f":
                yield cell.coordinate, cell.value


def _literals(formula: str) -> set[str]:
    """Numbers written in a formula, once cell references, sheet names and names are removed."""
    text = re.sub(r'"[^"]*"', "", formula)  # string literals
    text = re.sub(r"(?:'[^']+'|[A-Za-z_][A-Za-z0-9_]*)!", "", text)  # sheet prefixes
    text = re.sub(r"\$?[A-Z]{1,3}\$?\d+", "", text)  # cell references
    text = re.sub(r"[A-Za-z_][A-Za-z0-9_.]*", "", text)  # names and functions
    return set(re.findall(r"\d+\.?\d*(?:[eE][+-]?\d+)?", text))


def test_model_formulas_hold_no_bare_numbers(report):
    """Every number the model's formulas use is a reference (a named cell or another sheet's cell):
    cycles, per_state and the trace sheets contain no numeric literal except 0, 1 and 2."""
    base, _, wb = report
    sheets = ["cycles", "per_state", "results", "incremental", "comparisons"] + [
        f"trace_{s.strategy}" for s in base.spec.strategies
    ]
    seen = 0
    for name in sheets:
        for coord, formula in _formulas(wb[name]):
            seen += 1
            bad = _literals(formula) - ALLOWED_LITERALS
            assert not bad, f"{name}!{coord}: {formula} has bare numbers {bad}"
    assert seen > 50_000


def test_defined_names_point_at_inputs_and_settings(report):
    base, _, wb = report
    names = wb.defined_names
    for param in base.ptable.df.index:
        assert param in names, param
        dest = names[param].attr_text
        assert dest.startswith("inputs!$E$"), (param, dest)
    for name in ("r_severe_on_bsab", "r_myeloma_death_off_bsab"):
        assert names[name].attr_text.startswith("inputs!")
    for name in (
        "cycle_length_years",
        "discount_rate_costs",
        "wtp_per_qaly",
        "n_cycles",
        "mx_by_age",
    ):
        assert names[name].attr_text.startswith(("settings!", "life_table!"))
    # prices: the inputs value of a price is a reference to the prices sheet
    ws = wb["inputs"]
    row = next(r for r in range(5, ws.max_row + 1) if ws.cell(r, 1).value == "c_ivig_per_g")
    assert ws.cell(row, 2).value.startswith("=prices!$B$")


def test_text_from_inputs_is_never_a_formula(report):
    """inputs!L (source): text starting with =, +, - or @ is stored as a string, not a formula."""
    _, path, wb = report
    ws = wb["inputs"]
    header = [c.value for c in ws[4]]
    col = header.index("source") + 1
    found = {}
    for r in range(5, ws.max_row + 1):
        name = ws.cell(r, 1).value
        if name in INJECTED:
            cell = ws.cell(r, col)
            assert cell.data_type == "s", (name, cell.data_type)
            found[name] = cell.value
    assert found == INJECTED
    with zipfile.ZipFile(path) as zf:
        xml = zf.read(f"xl/worksheets/sheet{wb.sheetnames.index('inputs') + 1}.xml").decode()
    assert "<f>1+1</f>" not in xml and "<f>+SUM(A1)</f>" not in xml
    assert "<t>=1+1</t>" in xml


def test_formatting(report):
    base, _, wb = report
    for ws in wb.worksheets:
        assert ws.sheet_view.showGridLines is False, ws.title
    assert wb["results"].freeze_panes == "C5"
    assert wb["trace_none"].freeze_panes == "D12"
    assert wb["inputs"].freeze_panes == "B5"
    assert wb["verification"].freeze_panes == "A5"
    assert wb["verification"].column_dimensions["C"].width >= 60  # the detail column
    ws = wb["results"]
    header = [c.value for c in ws[4]]
    assert base.country.currency in ws.cell(5, header.index("cost") + 1).number_format
    assert ws.column_dimensions["A"].width >= 20


def test_optional_sheets_have_native_charts(report):
    _, _, wb = report
    assert [type(c).__name__ for c in wb["dsa"]._charts] == ["BarChart"]
    assert wb["dsa"]._charts[0].type == "bar"
    assert [type(c).__name__ for c in wb["psa_ceac"]._charts] == ["ScatterChart"]
    plane = wb["psa_ce_plane"]._charts
    assert [type(c).__name__ for c in plane] == ["ScatterChart"]
    assert len(plane[0].series) == 3  # one series per comparison, and the WTP line
    ws = wb["dsa"]
    assert [c.value for c in ws[4]][:5] == [
        "parameter",
        "low_value",
        "high_value",
        "inmb_low",
        "inmb_high",
    ]


def _chart_xml(path, sheet: str) -> str:
    """The chart part drawn on ``sheet`` (its drawing's relationship), as text."""
    import re
    import zipfile

    wb = openpyxl.load_workbook(path)
    index = wb.sheetnames.index(sheet) + 1
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        rels = z.read(f"xl/worksheets/_rels/sheet{index}.xml.rels").decode()
        drawing = re.search(r'Target="/?(?:xl/)?(?:\.\./)?(drawings/drawing\d+\.xml)"', rels).group(
            1
        )
        drels = z.read(f"xl/drawings/_rels/{drawing.split('/')[1]}.rels").decode()
        chart = re.search(r'Target="/?(?:xl/)?(?:\.\./)?(charts/chart\d+\.xml)"', drels).group(1)
        assert f"xl/{chart}" in names
        xml = z.read(f"xl/{chart}").decode()
    # one spelling whatever the writer's namespace prefix: <c:barChart> and <barChart> alike
    return re.sub(r"<(/?)c:", r"<\1", xml).replace(" />", "/>")


def test_chart_xml_ceac_and_plane_are_scatter_on_value_axes_tornado_around_base(report):
    """CEAC and CE plane: scatterChart with two valAx (a numeric WTP / QALY axis, not a
    category axis); the CE plane's markers are filled and it has a WTP line; the tornado bars
    are the changes from the base case, largest swing on top, parameters without effect left
    out, labels at the axis' low end."""
    _, path, wb = report
    for sheet in ("psa_ceac", "psa_ce_plane"):
        xml = _chart_xml(path, sheet)
        assert "<scatterChart>" in xml and xml.count("<valAx>") == 2 and "<catAx>" not in xml
    plane = _chart_xml(path, "psa_ce_plane")
    assert '<symbol val="circle"/>' in plane and '<a:solidFill><a:srgbClr val="0072B2"/>' in plane
    assert "WTP GBP 20,000 per QALY" in plane
    ws = wb["psa_ce_plane"]
    header = [c.value for c in ws[4]]
    wc = header.index("incremental QALYs") + 1
    assert ws.cell(5, wc + 1).value == f"=wtp_per_qaly*{get_column_letter(wc)}5"
    tornado = _chart_xml(path, "dsa")
    assert "<barChart>" in tornado and '<orientation val="maxMin"/>' in tornado
    assert '<tickLblPos val="low"/>' in tornado
    ws = wb["dsa"]
    header = [c.value for c in ws[4]]
    c0 = header.index("parameter [low to high]") + 1
    rows = [[ws.cell(r, c0 + k).value for k in range(3)] for r in range(5, 9)]
    # base -500: c_ivig_per_g -500/-2500 (swing 3000), hr 1000/-300 (1300), u_on_bsab 300/600
    # (900); q_height_cm moves nothing and is not drawn
    assert rows == [
        ["c_ivig_per_g [25 to 50]", -500, -2500],
        ["hr_igrt_severe [0.3 to 0.7]", 1000, -300],
        ["u_on_bsab [0.6 to 0.8]", 300, 600],
        [None, None, None],
    ]


def test_every_sheet_prints_landscape_fit_to_width_with_titles(report):
    _, _, wb = report
    for ws in wb.worksheets:
        assert ws.page_setup.orientation == "landscape", ws.title
        assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToWidth == 1
        assert ws.print_area, ws.title
    assert wb["results"].print_title_rows == "$1:$4"
    # readable labels above the code header (row 4 keeps the codes of results.csv)
    assert wb["results"]["C3"].value == "Total cost (GBP), discounted"
    assert wb["results"]["D3"].value == "Total cost (GBP), undiscounted"
    assert wb["results"]["C4"].value == "cost"
    labels = [c.value for c in wb["comparisons"][3]]
    assert "ICER (GBP per QALY)" in labels
    assert "Incremental cost: bispecific and other care in added survival (GBP)" in labels
    assert wb["verification"].row_dimensions[5].height >= 15


def test_about_records_provenance_and_cheers(report):
    base, _, wb = report
    ws = wb["about"]
    text = {ws.cell(r, 1).value: ws.cell(r, 2).value for r in range(1, ws.max_row + 1)}
    assert "United Kingdom" in text["country"]
    assert text["currency"] == "GBP"
    assert text["price_year"] == base.country.price_year
    assert text["discount_rate_costs"] == pytest.approx(base.spec.discount_rate_costs)
    assert text["seed"] == 1
    assert "calibrated by the engine" in text["calibrated (per year)"]
    for item in (
        "7 comparators",
        "8 perspective",
        "15 currency, price date and conversion",
        "22 study parameters",
    ):
        assert item in text
    for fname, sha in base.inputs.hashes.items():
        assert text[fname] == sha


def test_read_back_with_pandas_equals_in_memory_tables(report):
    """The inputs, prices and engine tables read back with pandas equal the in-memory ones."""
    base, path, _ = report
    inputs = pd.read_excel(
        path, sheet_name="inputs", header=3, nrows=len(base.ptable.df)
    ).set_index("parameter")
    df = base.ptable.df
    not_price = df["category"] != "prices"
    np.testing.assert_array_equal(
        inputs.loc[df.index[not_price], "value"].to_numpy(float),
        df.loc[not_price, "value"].to_numpy(float),
    )
    assert list(inputs.index) == list(df.index)
    assert list(inputs["dist"]) == list(df["dist"])
    prices = pd.read_excel(path, sheet_name="prices", header=3).set_index("item")
    np.testing.assert_array_equal(
        prices["value"].to_numpy(float), df.loc[~not_price, "value"].to_numpy(float)
    )
    checks = pd.read_excel(path, sheet_name="checks", header=8)
    res = base.results.set_index("strategy")
    rows = checks[checks["check"] == "results"]
    engine = [res.loc[s, q] for s, q in zip(rows["strategy"], rows["quantity"], strict=True)]
    np.testing.assert_array_equal(rows["engine"].to_numpy(float), np.asarray(engine, float))
    # the table, left of the chart's own small table of changes from the base case
    width = len(synthetic_dsa().columns)
    dsa = pd.read_excel(path, sheet_name="dsa", header=3, usecols=range(width))
    pd.testing.assert_frame_equal(dsa, synthetic_dsa(), check_dtype=False)


def test_without_optional_frames_no_optional_sheets(tmp_path):
    base = run_base_case(INPUTS, "GB", strategies=["none", "primary_ivig"])
    path = write_report(base, tmp_path / "r.xlsx")
    names = openpyxl.load_workbook(path, read_only=True).sheetnames
    assert not any(n.startswith(("dsa", "psa", "regional", "verification")) for n in names)
    assert {"trace_none", "trace_primary_ivig"} <= set(names)


def test_fast_writer_writes_the_same_bytes(tmp_path):
    """save_workbook (exact numbers + fast cell writer) writes the same sheet XML as openpyxl."""
    wb = openpyxl.Workbook()
    ws = wb.active
    values = [
        0.1 + 0.2,
        1 / 3,
        42,
        -1.5e-300,
        "=SUM(A1:A3)",
        " padded ",
        "a & <b>",
        "=text",
        None,
        True,
    ]
    for i, v in enumerate(values):
        cell = ws.cell(i + 1, 1)
        cell.value = v
        if v == "=text":
            cell.data_type = "s"
        ws.cell(i + 1, 2).number_format = "0.00"
    ws.cell(1, 3).value = 1.0
    ws.cell(1, 3).number_format = '#,##0 "GBP"'
    with exact_numbers():
        wb.save(tmp_path / "a.xlsx")
    save_workbook(wb, tmp_path / "b.xlsx")
    with zipfile.ZipFile(tmp_path / "a.xlsx") as a, zipfile.ZipFile(tmp_path / "b.xlsx") as b:
        assert a.read("xl/worksheets/sheet1.xml") == b.read("xl/worksheets/sheet1.xml")
    back = openpyxl.load_workbook(tmp_path / "b.xlsx")
    assert back.active["A1"].value == 0.1 + 0.2  # 17 digits where 16 would change the double
    assert back.active["A8"].value == "=text" and back.active["A8"].data_type == "s"


def test_psa_as_dataclass_long_ceac_and_plane_by_strategy(tmp_path):
    """The PSA tables as cea.analysis.psa returns them: a dataclass, a long CEAC (wtp, strategy,
    probability), a CE plane grouped by strategy and a headline dict."""
    from dataclasses import dataclass

    @dataclass
    class Tables:
        summary: pd.DataFrame
        ceac: pd.DataFrame
        ce_plane: pd.DataFrame
        headline: dict

    ceac = pd.DataFrame(
        {
            "wtp": [0.0, 0.0, 1e4, 1e4],
            "strategy": ["none", "primary_ivig"] * 2,
            "probability": [1.0, 0.0, 0.6, 0.4],
            "on_ceaf": [True, False, True, False],
        }
    )
    plane = pd.DataFrame(
        {
            "draw": [0, 1, 2],
            "strategy": ["primary_ivig"] * 3,
            "reference": "none",
            "inc_cost": [1.0, 2.0, 3.0],
            "inc_qaly": [0.1, 0.2, 0.3],
        }
    )
    tables = Tables(
        pd.DataFrame({"strategy": ["none"], "cost_mean": [1.0]}),
        ceac,
        plane,
        {"wtp": 20000.0, "optimal": "none"},
    )
    base = run_base_case(INPUTS, "GB", strategies=["none", "primary_ivig"])
    path = write_report(base, tmp_path / "r.xlsx", psa=tables)
    wb = openpyxl.load_workbook(path)
    ws = wb["psa_ceac"]
    assert [c.value for c in ws[4]] == ["wtp", "none", "primary_ivig"]
    assert ws["C6"].value == 0.4
    assert len(wb["psa_ce_plane"]._charts[0].series) == 2  # the draws and the WTP line
    assert wb["psa_headline"]["A5"].value == "wtp"


# --------------------------------------------------------------------------- verification sheet


def test_verification_sheet_lists_every_check_of_run_checks(report, checks_table):
    """One row per check of cea.verify.run_checks, in its order, with its PASS/FAIL, detail and
    tolerance; the sheet sits after checks; row 3 summarises."""
    _, path, wb = report
    assert wb.sheetnames.index("verification") == wb.sheetnames.index("checks") + 1
    ws = wb["verification"]
    assert [c.value for c in ws[4]] == CHECK_COLUMNS
    sheet = pd.read_excel(path, sheet_name="verification", header=3)
    assert len(sheet) == len(checks_table) == len(BASE_CHECKS)
    assert list(sheet["check"]) == list(checks_table["check"])
    assert list(sheet["passed"]) == ["PASS" if p else "FAIL" for p in checks_table["passed"]]
    assert list(sheet["detail"]) == list(checks_table["detail"])
    assert list(sheet["tolerance"]) == list(checks_table["tolerance"])
    n_ok = int(checks_table["passed"].sum())
    verdict = "PASS" if n_ok == len(checks_table) else "FAIL"
    assert ws["A3"].value == f"{verdict}: {n_ok} of {len(checks_table)} checks passed"


def test_verification_in_the_about_sheet(report):
    """The about sheet's CHEERS item 17 (validation) and its list of sheets name it."""
    _, _, wb = report
    ws = wb["about"]
    rows = [(ws.cell(r, 1).value, ws.cell(r, 2).value) for r in range(1, ws.max_row + 1)]
    item17 = dict(rows)["17 analytics and assumptions"]
    assert "verification" in item17 and "checks" in item17
    listed = [a for a, _ in rows]
    assert listed.index("verification") == listed.index("checks") + 1
    assert {"dsa", "psa_ceac", "psa_ce_plane"} <= set(listed)


def test_verification_failures_and_formula_like_text_stay_text(tmp_path):
    """A failed check reads FAIL (highlighted) and the summary says FAIL; a detail or tolerance
    that starts with =, +, - or @ is stored as text, never as a formula."""
    table = pd.DataFrame(
        {
            "check": ["ok_check", "bad_check", "@odd"],
            "passed": [True, False, np.bool_(True)],
            "detail": ["=1+1", "-2 below", "+SUM(A1)"],
            "tolerance": ["relative 1e-12", "@cmd", ""],
        }
    )
    base = run_base_case(INPUTS, "GB", strategies=["none", "primary_ivig"])
    path = write_report(base, tmp_path / "r.xlsx", verification=table, verification_note="=note")
    wb = openpyxl.load_workbook(path)
    ws = wb["verification"]
    assert ws["A3"].value == "FAIL: 2 of 3 checks passed"
    assert [ws.cell(r, 2).value for r in (5, 6, 7)] == ["PASS", "FAIL", "PASS"]
    assert ws["B6"].fill.fgColor.rgb.endswith("F8CBAD") and ws["B5"].fill.fill_type is None
    for coord, text in (("C5", "=1+1"), ("C6", "-2 below"), ("C7", "+SUM(A1)"), ("D6", "@cmd")):
        assert ws[coord].data_type == "s" and ws[coord].value == text, coord
    assert ws["A7"].value == "@odd" and ws["A2"].value.endswith(" =note")
    assert not list(_formulas(ws))
    assert ws.sheet_view.showGridLines is False


def test_verification_table_without_its_columns_is_refused(tmp_path):
    from cea.errors import CeaError

    base = run_base_case(INPUTS, "GB", strategies=["none", "primary_ivig"])
    with pytest.raises(CeaError, match="verification table needs columns"):
        write_report(base, tmp_path / "r.xlsx", verification=pd.DataFrame({"check": ["a"]}))
    assert not (tmp_path / "r.xlsx").exists()

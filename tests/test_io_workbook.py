"""The Excel input template: exact round trip, the same one-line errors as CSV, and safety."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import openpyxl
import pytest

from cea.cli import main
from cea.errors import InputFileError
from cea.io import workbook as xlsx_inputs
from cea.io.load import load_inputs
from cea.io.template import write_template
from cea.io.workbook import check_workbook, load_inputs_xlsx, save_workbook

INPUTS = Path(__file__).resolve().parents[1] / "inputs"
# outputs of `cea run` that must be byte-identical between the CSV and the workbook inputs;
# parameters.csv (its 'origin' column names the file) and run.json (hashes) differ by design
SAME_OUTPUTS = ("results.csv", "incremental.csv", "comparisons.csv", "trace.csv")


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "my_inputs.xlsx"
    assert main(["template", "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def small(tmp_path_factory, template) -> Path:
    """The template with the life table cut to one country (fast to read, still valid)."""
    wb = openpyxl.load_workbook(template)
    ws = wb["life_tables"]
    keep = [r for r in range(2, ws.max_row + 1) if ws.cell(r, 1).value == "GB"]
    ws.delete_rows(keep[-1] + 1, ws.max_row - keep[-1])
    ws.delete_rows(2, keep[0] - 2)
    path = tmp_path_factory.mktemp("small") / "small.xlsx"
    save_workbook(wb, path)
    return path


def _edited(
    src: Path, dest: Path, sheet: str, edits: dict[tuple[str, str], object], key: str = "parameter"
) -> Path:
    """A copy of ``src`` with cells changed: (row key, column name) -> value."""
    wb = openpyxl.load_workbook(src)
    ws = wb[sheet]
    header = [c.value for c in ws[1]]
    for (row_key, column), value in edits.items():
        r = next(
            r
            for r in range(2, ws.max_row + 1)
            if ws.cell(r, header.index(key) + 1).value == row_key
        )
        cell = ws.cell(r, header.index(column) + 1)
        cell.value = value
        if isinstance(value, str) and not value.startswith("="):
            cell.data_type = "s"
    save_workbook(wb, dest)
    return dest


def _row_of(path: Path, sheet: str, key: str, value: str) -> int:
    ws = openpyxl.load_workbook(path, read_only=True)[sheet]
    rows = list(ws.iter_rows(values_only=True))
    k = rows[0].index(key)
    return next(i + 1 for i, row in enumerate(rows) if row[k] == value)


def test_template_sheets_and_validation(template):
    wb = openpyxl.load_workbook(template)
    codes = load_inputs(INPUTS).country_codes()
    expected = [
        "about",
        "settings",
        "parameters",
        "strategies",
        "countries",
        *[f"prices_{c}" for c in codes],
        "country_overrides",
        "life_tables",
        "macro",
        "cpi",
        "validation_targets",
        "budget_mix",
    ]
    assert wb.sheetnames == expected
    ws = wb["parameters"]
    header = [c.value for c in ws[1]]
    assert header[:6] == ["parameter", "value", "se", "low", "high", "dist"]
    assert ws.cell(1, 1).comment is not None  # column description
    formulas = {dv.formula1 for dv in ws.data_validations.dataValidation}
    assert '"beta,gamma,lognormal,normal,uniform,fixed,dirichlet"' in formulas
    assert '"S,S-d,K,E"' in formulas
    prob = [
        dv
        for dv in ws.data_validations.dataValidation
        if dv.type == "decimal" and dv.formula1 == "0" and dv.formula2 == "1"
    ]
    assert prob, "no [0, 1] validation on probability rows"
    p_male = _row_of(template, "parameters", "parameter", "p_male")
    assert any(f"B{p_male}" in str(dv.sqref) for dv in prob)
    settings = {(r[0], r[1]): r[2] for r in wb["settings"].iter_rows(min_row=2, values_only=True)}
    assert settings[("model", "cycle_days")] == 28
    assert settings[("model", "correction")] == "half_cycle"
    assert settings[("model", "include_bsab_costs")] is True
    assert settings[("model", "strategies")].startswith('["none"')


@pytest.mark.parametrize("country", ["GB", "JP"])
def test_run_on_template_equals_run_on_csv(template, tmp_path, country):
    """`cea run` on the template writes the same results, incremental analysis, comparisons and
    trace, byte for byte, as `cea run` on inputs/."""
    out_csv, out_xlsx = tmp_path / "csv", tmp_path / "xlsx"
    assert main(["run", "--inputs", str(INPUTS), "--country", country, "--out", str(out_csv)]) == 0
    assert (
        main(["run", "--inputs", str(template), "--country", country, "--out", str(out_xlsx)]) == 0
    )
    for name in SAME_OUTPUTS:
        assert (out_csv / name).read_bytes() == (out_xlsx / name).read_bytes(), name
    a = (out_csv / "parameters.csv").read_text().splitlines()
    b = (out_xlsx / "parameters.csv").read_text().splitlines()
    assert len(a) == len(b)


def test_tables_read_back_identical(template):
    a, b = load_inputs(INPUTS), load_inputs_xlsx(template)
    assert a.settings == b.settings
    for name in (
        "parameters",
        "strategies",
        "countries",
        "overrides",
        "life_tables",
        "macro",
        "cpi",
    ):
        ta, tb = getattr(a, name), getattr(b, name)
        cols = [c for c in ta.df.columns if c != "_row"]
        assert ta.df[cols].equals(tb.df[cols]), name
    for code in a.prices:
        assert a.prices[code].df.drop(columns="_row").equals(b.prices[code].df.drop(columns="_row"))
    assert b.parameters.path.name == "my_inputs.xlsx [parameters]"
    assert "my_inputs.xlsx" in b.hashes


@pytest.mark.parametrize(
    ("sheet", "key", "edits", "message"),
    [
        (
            "parameters",
            "p_male",
            {"value": 1.5},
            "row {row}, column 'value': 1.5 is outside [0, 1]",
        ),
        (
            "parameters",
            "p_male",
            {"value": "abc"},
            "row {row}, column 'value': 'abc' is not a number",
        ),
        (
            "parameters",
            "p_male",
            {"dist": "betta"},
            "row {row}, column 'dist': 'betta' is not one of",
        ),
        ("parameters", "p_male", {"source": None}, "row {row}, column 'source': is empty"),
        (
            "strategies",
            "primary_ivig",
            {"trigger": "sometimes"},
            "row {row}, column 'trigger': 'sometimes' is not one of",
        ),
        (
            "prices_GB",
            "c_ivig_per_g",
            {"value": -3},
            "row {row}, column 'value': -3 is below the minimum 0",
        ),
    ],
)
def test_bad_cell_gives_csv_style_error(small, tmp_path, sheet, key, edits, message):
    key_col = {"parameters": "parameter", "strategies": "strategy"}.get(sheet, "item")
    bad = _edited(
        small, tmp_path / "bad.xlsx", sheet, {(key, c): v for c, v in edits.items()}, key=key_col
    )
    row = _row_of(bad, sheet, key_col, key)
    with pytest.raises(InputFileError) as err:
        load_inputs_xlsx(bad)
    text = str(err.value)
    assert text.startswith(f"bad.xlsx [{sheet}], ")
    assert message.format(row=row) in text
    assert "\n" not in text


def test_formula_without_saved_value_is_refused(small, tmp_path):
    bad = _edited(small, tmp_path / "formula.xlsx", "parameters", {("p_male", "value"): "=0.5*1"})
    with pytest.raises(
        InputFileError,
        match=r"formula.xlsx \[parameters\], row \d+: cell B\d+ holds a formula without a saved value",
    ):
        load_inputs_xlsx(bad)


def test_value_beyond_header_and_missing_sheet(small, tmp_path):
    wb = openpyxl.load_workbook(small)
    ws = wb["strategies"]
    ws.cell(3, ws.max_column + 2).value = 7
    save_workbook(wb, tmp_path / "extra.xlsx")
    with pytest.raises(
        InputFileError,
        match=r"\[strategies\], row 3: cell [A-Z]+3 holds a value beyond the last header column",
    ):
        load_inputs_xlsx(tmp_path / "extra.xlsx")
    ws.cell(3, ws.max_column).value = None
    del wb["cpi"]
    save_workbook(wb, tmp_path / "nocpi.xlsx")
    with pytest.raises(InputFileError, match=r"nocpi.xlsx: has no sheet 'cpi'"):
        load_inputs_xlsx(tmp_path / "nocpi.xlsx")


def test_bad_setting(small, tmp_path):
    bad = _edited(
        small, tmp_path / "settings.xlsx", "settings", {("cycle_days", "value"): 999}, key="key"
    )
    with pytest.raises(
        InputFileError,
        match=r"settings.xlsx \[settings\].*invalid value 999 for setting 'cycle_days'",
    ):
        load_inputs_xlsx(bad)


def test_a_setting_nested_too_deeply_is_refused_in_one_line(small, tmp_path):
    # 16,000 brackets fit an Excel cell (32,767 characters); tomllib recursed into a RecursionError
    deep = "[" * 16000 + "]" * 16000
    bad = _edited(
        small, tmp_path / "deep.xlsx", "settings", {("correction", "value"): deep}, key="key"
    )
    with pytest.raises(
        InputFileError,
        match=r"deep.xlsx \[settings\].*column 'value': is not a valid value: nested too deeply",
    ):
        load_inputs_xlsx(bad)


def test_formula_looking_text_round_trips_as_text(tmp_path):
    """A note '=cmd|...' in parameters.csv is written as text and read back unchanged."""
    src = tmp_path / "inputs"
    shutil.copytree(INPUTS, src)
    text = (src / "parameters.csv").read_text()
    note = "=cmd|' /C calc'!A0"
    lines = text.splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0] + ',"' + note.replace('"', '""') + '"'
    (src / "parameters.csv").write_text("\n".join(lines) + "\n")
    out = write_template(src, tmp_path / "t.xlsx")
    ws = openpyxl.load_workbook(out)["parameters"]
    header = [c.value for c in ws[1]]
    cell = ws.cell(2, header.index("note") + 1)
    assert cell.data_type == "s" and cell.value == note
    assert load_inputs_xlsx(out).parameters.df.loc[0, "note"] == note


def test_cli_template_refuses_overwrite_and_wrong_suffix(template, capsys):
    assert main(["template", "--out", str(template)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["template", "--out", str(template.with_suffix(".csv"))]) == 2
    assert "must be an .xlsx file" in capsys.readouterr().err
    assert main(["template", "--out", str(template), "--force"]) == 0


# --------------------------------------------------------------------------- safety


def _tiny_xlsx() -> bytes:
    wb = openpyxl.Workbook()
    wb.active["A1"] = "x"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _with_member(
    tmp_path: Path, name: str, data: bytes, file: str = "t.xlsx", replace: bool = False
) -> Path:
    src = zipfile.ZipFile(io.BytesIO(_tiny_xlsx()))
    path = tmp_path / file
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for item in src.infolist():
            if replace and item.filename == name:
                continue
            zf.writestr(item, src.read(item.filename))
        zf.writestr(name, data)
    return path


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>&lol2;</t></is></c></row></sheetData></worksheet>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>&e;</sheetData></worksheet>"""


def test_plain_workbook_passes(tmp_path):
    path = tmp_path / "ok.xlsx"
    path.write_bytes(_tiny_xlsx())
    check_workbook(path)


@pytest.mark.parametrize(
    ("member", "data", "message"),
    [
        ("xl/vbaProject.bin", b"\x00macro", "contains macros"),
        ("xl/externalLinks/externalLink1.xml", b"<externalLink/>", "contains external links"),
        ("xl/activeX/activeX1.xml", b"<ax/>", "ActiveX"),
        ("xl/connections.xml", b"<connections/>", "contains data connections"),
        ("xl/worksheets/sheet1.xml", BILLION_LAUGHS, "unsafe XML"),
        ("xl/worksheets/sheet1.xml", EXTERNAL_ENTITY, "unsafe XML"),
        ("xl/worksheets/sheet1.xml", b"<worksheet><unclosed></worksheet>", "not well-formed XML"),
    ],
)
def test_unsafe_workbooks_refused(tmp_path, member, data, message):
    path = _with_member(tmp_path, member, data, replace=True)
    with pytest.raises(InputFileError, match=message) as err:
        load_inputs_xlsx(path)
    assert str(err.value).startswith("t.xlsx: ")


def test_macro_suffix_not_zip_and_limits(tmp_path, monkeypatch):
    xlsm = tmp_path / "m.xlsm"
    xlsm.write_bytes(_tiny_xlsx())
    with pytest.raises(InputFileError, match=r"m.xlsm: is a macro-enabled workbook"):
        load_inputs_xlsx(xlsm)
    fake = tmp_path / "fake.xlsx"
    fake.write_text("parameter,value\n")
    with pytest.raises(InputFileError, match=r"fake.xlsx: is not an Excel .xlsx workbook"):
        load_inputs_xlsx(fake)
    ok = tmp_path / "ok.xlsx"
    ok.write_bytes(_tiny_xlsx())
    monkeypatch.setattr(xlsx_inputs, "MAX_MEMBERS", 3)
    with pytest.raises(InputFileError, match="parts, above the limit"):
        check_workbook(ok)
    monkeypatch.setattr(xlsx_inputs, "MAX_MEMBERS", 2000)
    monkeypatch.setattr(xlsx_inputs, "MAX_UNCOMPRESSED_BYTES", 1000)
    with pytest.raises(InputFileError, match="unpacks to"):
        check_workbook(ok)


def test_zip_bomb_refused(tmp_path):
    path = _with_member(tmp_path, "xl/media/padding.bin", b"\x00" * (8 * 1024 * 1024))
    with pytest.raises(InputFileError, match="zip bomb"):
        check_workbook(path)


def test_macro_content_type_refused(tmp_path):
    src = zipfile.ZipFile(io.BytesIO(_tiny_xlsx()))
    types = src.read("[Content_Types].xml").replace(
        b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
        b"application/vnd.ms-excel.sheet.macroEnabled.main+xml",
    )
    path = _with_member(tmp_path, "[Content_Types].xml", types, replace=True)
    with pytest.raises(InputFileError, match="macro-enabled"):
        check_workbook(path)


def test_a_renamed_vba_project_is_refused_by_its_declared_type(tmp_path):
    """A VBA project renamed to an innocent part name is still declared as one: by its content
    type or by the relationship that points at it."""
    src = zipfile.ZipFile(io.BytesIO(_tiny_xlsx()))
    types = src.read("[Content_Types].xml").replace(
        b"</Types>",
        b'<Override PartName="/xl/media/p.bin" ContentType="application/vnd.ms-office.vbaProject"/>'
        b"</Types>",
    )
    by_type = _with_member(tmp_path, "[Content_Types].xml", types, file="a.xlsx", replace=True)
    rels = src.read("xl/_rels/workbook.xml.rels").replace(
        b"</Relationships>",
        b'<Relationship Id="rIdX" Target="media/p.bin" '
        b'Type="http://schemas.microsoft.com/office/2006/relationships/vbaProject"/></Relationships>',
    )
    by_rel = _with_member(tmp_path, "xl/_rels/workbook.xml.rels", rels, file="b.xlsx", replace=True)
    for path in (by_type, by_rel):
        with pytest.raises(InputFileError, match="contains macros") as err:
            check_workbook(path)
        assert str(err.value).startswith(f"{path.name}: ")


def test_an_xlsm_given_as_inputs_is_refused_as_macro_enabled_not_as_a_missing_folder(tmp_path):
    xlsm = tmp_path / "m.xlsm"
    xlsm.write_bytes(_tiny_xlsx())
    with pytest.raises(InputFileError, match=r"^m.xlsm: is a macro-enabled workbook"):
        load_inputs(xlsm)


def _damaged(small: Path, tmp_path: Path, old: bytes, new: bytes) -> Path:
    """``small`` with one cell of the parameters sheet's XML replaced (old -> new)."""
    src = zipfile.ZipFile(small)
    path = tmp_path / "damaged.xlsx"
    found = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.startswith("xl/worksheets/") and b"<t>q_start_age_years</t>" in data:
                found += data.count(old)
                data = data.replace(old, new)
            zf.writestr(item, data)
    assert found == 1
    return path


@pytest.mark.parametrize(
    ("new", "cause"),
    [
        (b'<c r="B2" t="n"><v>abc</v></c>', "ValueError"),  # text in a numeric cell
        (b'<c r="ZZZZZZ2" t="n"><v>66</v></c>', "ValueError"),  # a reference past column XFD
        (b'<c r="B2" t="s"><v>99999</v></c>', "IndexError"),  # a shared string that is not there
        (b'<c r="B2" t="d"><v>not-a-date</v></c>', "ValueError"),  # a date that is not one
    ],
)
def test_a_damaged_cell_is_one_line_naming_sheet_and_row(small, tmp_path, capsys, new, cause):
    path = _damaged(small, tmp_path, b'<c r="B2" t="n"><v>66</v></c>', new)
    with pytest.raises(InputFileError) as err:
        load_inputs(path)
    msg = str(err.value)
    assert msg.startswith("damaged.xlsx [parameters], row 2: a damaged cell cannot be read (")
    assert cause in msg and "\n" not in msg
    out = tmp_path / "out"
    assert main(["run", "--inputs", str(path), "--out", str(out)]) == 2
    err_line = capsys.readouterr().err
    assert err_line.count("\n") == 1 and "row 2" in err_line
    assert not out.exists()


def test_a_stray_cell_far_from_the_tables_costs_no_memory(small, tmp_path):
    # a blank typed into XFD1048576 (Excel's last cell) made the reader pad every row of the
    # sheet to 16,384 cells: 17 billion cells, 24 GB and a kill by the system. Run with a
    # memory limit so that a regression fails here instead of exhausting the machine.
    import subprocess
    import sys

    wb = openpyxl.load_workbook(small)
    wb["parameters"]["XFD1048576"] = " "
    save_workbook(wb, tmp_path / "far.xlsx")
    wb["strategies"]["XFD3"] = "x"
    save_workbook(wb, tmp_path / "far_value.xlsx")
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30)); "
        "from cea.io.load import load_inputs; from cea.errors import InputFileError\n"
        "try:\n    load_inputs(sys.argv[1]); print('ok')\n"
        "except InputFileError as e:\n    print(e)"
    )
    env = {**__import__("os").environ, "PYTHONPATH": str(INPUTS.parent)}
    for name, expected in [
        ("far.xlsx", "ok"),
        ("far_value.xlsx", "far_value.xlsx [strategies], row 3: cell XFD3 holds a value beyond "
         "the last header column"),
    ]:  # fmt: skip
        done = subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == expected


def test_a_workbook_of_too_many_cells_is_refused(small, monkeypatch):
    monkeypatch.setattr(xlsx_inputs, "MAX_CELLS", 1000)
    with pytest.raises(InputFileError, match=r"small.xlsx \[\w+\], row \d+: the workbook holds "
                       r"more than 1,000 cells"):  # fmt: skip
        load_inputs_xlsx(small)

"""``cea run`` through a subprocess, as a user runs it.

Every run of this module is started once, in parallel, by the module-scoped ``runs``
fixture; the tests only read what the runs printed and wrote. Runs that do not need the
full strategy set use ``--strategies none,primary_ivig``.

The console script ``cea`` is what ``pip install`` generates: ``run()`` from ``cea.cli``
(``pyproject.toml``). It is invoked that way (``python -c``), so the tests run this checkout's
code whether or not the package is installed; ``python -m cea`` is tested beside it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cea.analysis.incremental import ICER_COLUMNS
from cea.igrt.spec import COST_CATEGORIES, COUNTS, EFFECTS, STATES

REPO = Path(__file__).resolve().parents[1]
INPUTS = REPO / "inputs"
TWO = "none,primary_ivig"
CONSOLE_SCRIPT = "from cea.cli import run; run()"  # what the `cea` script runs
OUTPUT_FILES = ("results.csv", "incremental.csv", "comparisons.csv", "trace.csv", "run.json")
#: Numeric cells of parameters.csv, written with a decimal comma in the ';' copy.
NUMERIC_PARAMETER_COLUMNS = ("value", "se", "low", "high", "n")


def cea_command(*args: str, console_script: bool = False) -> list[str]:
    if console_script:
        return [sys.executable, "-c", CONSOLE_SCRIPT, *args]
    return [sys.executable, "-m", "cea", *args]


def run_cea(cmd: list[str], cwd: Path = REPO, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def copy_inputs(dest: Path) -> Path:
    """A byte-for-byte copy of inputs/ (scenarios included)."""
    for src in INPUTS.rglob("*"):
        if src.is_file():
            target = dest / src.relative_to(INPUTS)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(src.read_bytes())
    return dest


def semicolon_decimal_comma(text: str) -> str:
    """parameters.csv as Excel writes it in a German locale: ';' separator, decimal commas."""
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    numeric = {header.index(c) for c in NUMERIC_PARAMETER_COLUMNS if c in header}
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=";", lineterminator="\r\n")
    w.writerow(header)
    for row in rows[1:]:
        w.writerow([cell.replace(".", ",") if i in numeric else cell for i, cell in enumerate(row)])
    return buf.getvalue()


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def runs(tmp) -> dict[str, tuple[subprocess.CompletedProcess, Path, Path]]:
    """name -> (completed process, output folder, inputs folder); all started in parallel."""
    plain = copy_inputs(tmp / "copy" / "inputs")
    bom = copy_inputs(tmp / "bom" / "inputs")
    (bom / "parameters.csv").write_bytes(b"\xef\xbb\xbf" + (INPUTS / "parameters.csv").read_bytes())
    semi = copy_inputs(tmp / "semi" / "inputs")
    text = (INPUTS / "parameters.csv").read_text(encoding="utf-8")
    (semi / "parameters.csv").write_text(
        semicolon_decimal_comma(text), encoding="utf-8", newline=""
    )
    scenario = tmp / "unknown_parameter.toml"
    scenario.write_text(
        'name = "bad"\ndescription = "An unknown parameter."\n[parameters]\nno_such_parameter = 1\n'
    )

    plan = {
        "gb": (cea_command("run", "--country", "GB", console_script=True), INPUTS),
        "gb_two": (cea_command("run", "--country", "GB", "--strategies", TWO), INPUTS),
        "us": (cea_command("run", "--country", "US", "--strategies", TWO), INPUTS),
        "horizon": (
            cea_command(
                "run", "--scenario", "inputs/scenarios/horizon_5y.toml", "--strategies", TWO
            ),
            INPUTS,
        ),
        "copy": (cea_command("run", "--inputs", str(plain), "--strategies", TWO), plain),
        "bom": (cea_command("run", "--inputs", str(bom), "--strategies", TWO), bom),
        "semicolon": (cea_command("run", "--inputs", str(semi), "--strategies", TWO), semi),
        "unknown_country": (cea_command("run", "--country", "XX"), INPUTS),
        "unknown_strategy": (cea_command("run", "--strategies", "none,no_such_strategy"), INPUTS),
        "unknown_parameter": (cea_command("run", "--scenario", str(scenario)), INPUTS),
    }

    def start(item):
        name, (cmd, inputs) = item
        out = tmp / "out" / name
        return name, (run_cea([*cmd, "--out", str(out)]), out, inputs)

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return dict(pool.map(start, plan.items()))


def ok(runs, name: str) -> Path:
    proc, out, _ = runs[name]
    assert proc.returncode == 0, f"{name}: exit {proc.returncode}\n{proc.stderr}"
    return out


def results(runs, name: str) -> pd.DataFrame:
    return pd.read_csv(ok(runs, name) / "results.csv")


def run_json(runs, name: str) -> dict:
    return json.loads((ok(runs, name) / "run.json").read_text())


# --------------------------------------------------------------------------- the GB base case


def test_run_exits_0_and_prints_a_summary(runs):
    proc = runs["gb"][0]
    assert proc.returncode == 0, proc.stderr
    assert "United Kingdom (GB)" in proc.stdout and "WTP 20,000 per QALY" in proc.stdout
    table = proc.stdout.split("status", 1)[1]
    for s in ("none", "preemptive_ivig", "preemptive_scig", "primary_ivig", "primary_scig"):
        assert re.search(rf"^{s}\s+[\d,]+\s+\d\.\d{{4}}", table, re.M), s
    assert "comparisons (discounted; INMB at GBP 20,000 per QALY):" in proc.stdout
    assert f"written: {runs['gb'][1]}/" in proc.stdout
    assert "the cost-effective strategy is No IgRT (none)" in proc.stdout
    assert proc.stderr == ""


def test_run_writes_the_five_outputs(runs):
    out = ok(runs, "gb")
    for name in OUTPUT_FILES:
        assert (out / name).is_file(), name
    assert not list(out.parent.glob(".gb.tmp-*"))


def test_results_columns(runs):
    df = results(runs, "gb")
    expected = {"strategy", "label", "cost", "cost_undiscounted"}
    for name in (*COST_CATEGORIES, *EFFECTS, *COUNTS):
        expected |= {name, f"{name}_undiscounted"}
    assert list(df.columns[:3]) == ["strategy", "label", "cost"]
    assert set(df.columns) == expected
    assert list(df["strategy"]) == [
        "none",
        "preemptive_ivig",
        "preemptive_scig",
        "primary_ivig",
        "primary_scig",
    ]
    assert np.isfinite(df.select_dtypes("number").to_numpy()).all()
    np.testing.assert_allclose(df["cost"], df[list(COST_CATEGORIES)].sum(axis=1), rtol=1e-12)
    assert (df["qaly"] <= df["ly"]).all() and (df["cost"] <= df["cost_undiscounted"]).all()


def test_incremental_and_comparison_columns(runs):
    out = ok(runs, "gb")
    inc = pd.read_csv(out / "incremental.csv")
    assert list(inc.columns) == [*ICER_COLUMNS, "nmb", "nhb", "optimal"]
    assert set(inc["status"]) <= {"ND", "D", "ED"} and inc["optimal"].sum() == 1
    comp = pd.read_csv(out / "comparisons.csv")
    for col in (
        "comparison",
        "intervention",
        "comparator",
        "inc_cost",
        "inc_effect",
        "icer",
        "inmb",
    ):
        assert col in comp.columns
    assert "primary_ivig vs preemptive_ivig" in set(comp["comparison"])


def test_trace_columns_and_mass(runs):
    out = ok(runs, "gb")
    trace = pd.read_csv(out / "trace.csv")
    assert list(trace.columns) == ["strategy", "subgroup", "cycle", "time_years", *STATES]
    n_cycles = run_json(runs, "gb")["conventions"]["n_cycles"]
    assert len(trace) == 5 * 2 * (n_cycles + 1)
    np.testing.assert_allclose(trace[list(STATES)].sum(axis=1), 1.0, atol=1e-12)


def test_run_json_hashes_every_input_file(runs):
    meta = run_json(runs, "gb")
    hashes = meta["input_sha256"]
    files = sorted(
        p.relative_to(REPO).as_posix() for p in INPUTS.rglob("*") if p.suffix in (".csv", ".toml")
    )
    files = [f for f in files if not f.startswith("inputs/scenarios/")]  # scenarios: see 'scenario'
    assert sorted(hashes) == files
    for name, digest in hashes.items():
        assert digest == hashlib.sha256((REPO / name).read_bytes()).hexdigest(), name


def test_run_json_provenance_and_conventions(runs):
    meta = run_json(runs, "gb")
    assert "git_commit" in meta
    if (REPO / ".git").exists():  # None outside a git checkout (e.g. an unpacked sdist)
        assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", meta["git_commit"])
    assert meta["command"].startswith("cea run --country GB")
    c = meta["conventions"]
    assert (
        c["cycle_days"] == 28
        and c["n_cycles"] == 130
        and c["within_cycle_correction"] == "half_cycle"
    )
    assert c["discount_rate_costs"] == 0.035 and c["discount_rate_effects"] == 0.035
    assert set(c["calibrated_per_year"]) == {"r_severe_on_bsab", "r_myeloma_death_off_bsab"}
    assert meta["country"]["code"] == "GB" and meta["country"]["currency"] == "GBP"
    assert meta["strategies"] == [
        "none",
        "preemptive_ivig",
        "preemptive_scig",
        "primary_ivig",
        "primary_scig",
    ]


# --------------------------------------------------------------------------- options


def test_python_m_cea_and_strategy_subset(runs):
    df = results(runs, "gb_two")
    assert list(df["strategy"]) == ["none", "primary_ivig"]
    full = results(runs, "gb").set_index("strategy").loc[["none", "primary_ivig"]].reset_index()
    pd.testing.assert_frame_equal(df, full, check_exact=False, rtol=1e-12)
    comp = pd.read_csv(ok(runs, "gb_two") / "comparisons.csv")
    assert list(comp["comparison"]) == ["primary_ivig vs none"]


def test_country_us(runs):
    meta = run_json(runs, "us")
    assert meta["country"]["code"] == "US" and meta["country"]["currency"] == "USD"
    assert meta["conventions"]["discount_rate_costs"] == 0.03
    assert "United States" in runs["us"][0].stdout
    us, gb = results(runs, "us"), results(runs, "gb_two")
    assert not np.allclose(us["cost"], gb["cost"])


def test_scenario_horizon_5y(runs):
    meta = run_json(runs, "horizon")
    assert meta["scenario"]["name"] == "horizon_5y"
    assert (
        meta["scenario"]["sha256"]
        == hashlib.sha256((INPUTS / "scenarios/horizon_5y.toml").read_bytes()).hexdigest()
    )
    assert meta["conventions"]["n_cycles"] == 65
    trace = pd.read_csv(ok(runs, "horizon") / "trace.csv")
    assert trace["cycle"].max() == 65
    assert (results(runs, "horizon")["ly"] < results(runs, "gb_two")["ly"]).all()


@pytest.mark.parametrize("name", ["copy", "bom", "semicolon"])
def test_inputs_copy_gives_identical_results(runs, name):
    # a plain copy, a UTF-8-BOM parameters.csv and a ';'/decimal-comma parameters.csv
    reference = (ok(runs, "gb_two") / "results.csv").read_bytes()
    assert (ok(runs, name) / "results.csv").read_bytes() == reference
    inputs = runs[name][2]
    for key, digest in run_json(runs, name)["input_sha256"].items():
        assert digest == hashlib.sha256((inputs.parent / key).read_bytes()).hexdigest(), key


def test_semicolon_copy_really_uses_decimal_commas(runs):
    text = (runs["semicolon"][2] / "parameters.csv").read_bytes().decode("utf-8")
    assert (
        text.startswith("parameter;value;se;") and "\r\nq_start_age_years;66;;62;70;fixed;" in text
    )
    assert ";0,0156;" in text  # p_igg_isotype se


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("unknown_country", "unknown country 'XX'"),
        ("unknown_strategy", "unknown strategy 'no_such_strategy'"),
        ("unknown_parameter", "unknown parameter 'no_such_parameter'"),
    ],
)
def test_unknown_names_exit_2_with_one_line(runs, name, message):
    proc, out, _ = runs[name]
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.tmp-*"))


# --------------------------------------------------------------------------- --report xlsx

#: Base-case TECH-VER checks (cea.verify.BASE_CHECKS) every verification sheet lists.
BASE_CHECK_NAMES = (
    "qalys_equal_life_years",
    "zero_discounting",
    "identical_strategies",
    "zero_mortality",
    "certain_death",
    "ig_price_zero",
    "no_infections",
    "mass_conserved",
    "probabilities_valid",
    "order_invariance",
    "cycle_halving",
)


@pytest.fixture(scope="module")
def report_runs(tmp) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """``--report xlsx`` of run, dsa and psa, and the refused combinations, in parallel."""
    plan = {
        "run": ("run", "--country", "GB", "--strategies", TWO, "--report", "xlsx"),
        "dsa": ("dsa", "--country", "GB", "--report", "xlsx"),
        "psa": ("psa", "--country", "GB", "--draws", "40", "--report", "xlsx"),
        "two_way": (
            "dsa",
            "--country",
            "GB",
            "--two-way",
            "hr_igrt_severe,c_ivig_per_g",
            "--report",
            "xlsx",
        ),
        "countries": ("psa", "--countries", "GB", "--draws", "40", "--report", "xlsx"),
    }

    def start(item):
        name, args = item
        out = tmp / "report_out" / name
        return name, (run_cea([*cea_command(*args), "--out", str(out)], timeout=300), out)

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return dict(pool.map(start, plan.items()))


def report_of(report_runs, name: str):
    import openpyxl

    proc, out = report_runs[name]
    assert proc.returncode == 0, f"{name}: exit {proc.returncode}\n{proc.stderr}"
    assert proc.stdout.rstrip().splitlines()[-1].startswith(f"written: {out}/")
    assert (out / "report.xlsx").is_file()
    assert not list(out.parent.glob(f".{out.name}.tmp-*"))
    path = out / "report.xlsx"
    verification = pd.read_excel(path, sheet_name="verification", header=3)
    return proc, openpyxl.load_workbook(path), verification


def chart_kinds(path: Path) -> set[str]:
    """The chart types in the workbook's chart parts (xl/charts/chart*.xml)."""
    import zipfile

    kinds = set()
    with zipfile.ZipFile(path) as zf:
        for part in zf.namelist():
            if re.fullmatch(r"xl/charts/chart\d+\.xml", part):
                kinds |= set(
                    re.findall(
                        r"<(?:\w+:)?(barChart|lineChart|scatterChart)>", zf.read(part).decode()
                    )
                )
    return kinds


def assert_verification(proc, verification: pd.DataFrame, extra: set[str]) -> None:
    """Every base-case check and the analysis checks ``extra``, PASS on GB; the printed line
    counts the same rows."""
    assert list(verification.columns) == ["check", "passed", "detail", "tolerance"]
    assert list(verification["check"][: len(BASE_CHECK_NAMES)]) == list(BASE_CHECK_NAMES)
    assert set(verification["check"]) == set(BASE_CHECK_NAMES) | extra
    # WARN: a face-validity value outside its published band (docs/validation.md), not a failure
    assert set(verification["passed"]) <= {"PASS", "WARN"}, verification
    warn = verification[verification["passed"] == "WARN"]
    assert warn["check"].str.startswith("validation_").all()
    assert warn["detail"].str.startswith("WARN: outside band").all()
    assert verification["detail"].str.len().min() > 10
    n = len(verification)
    assert f"verification: {n} of {n} TECH-VER checks passed" in proc.stdout


def test_run_report_has_the_verification_sheet_of_cea_check(report_runs):
    """cea run --report xlsx: the base case workbook and the table cea check prints (base-case
    checks, PSA table checks on a short PSA, the tornado check on the one-way DSA)."""
    proc, wb, verification = report_of(report_runs, "run")
    targets = pd.read_csv(REPO / "inputs" / "validation_targets.csv")["id"]
    assert_verification(
        proc,
        verification,
        {"psa_sample_means", "ceac_sums_to_one", "evpi_nonnegative", "tornado_base_inside"}
        | {f"validation_{t}" for t in targets},
    )
    assert {"results", "checks", "trace_none", "trace_primary_ivig"} <= set(wb.sheetnames)
    assert wb["results"]["C5"].value.startswith("=")  # live formulas
    _, out = report_runs["run"]
    for name in OUTPUT_FILES:
        assert (out / name).is_file(), name


def test_dsa_report_has_the_tornado_bar_chart_and_its_check(report_runs):
    proc, wb, verification = report_of(report_runs, "dsa")
    _, out = report_runs["dsa"]
    assert_verification(proc, verification, {"tornado_base_inside"})
    assert "this workbook's tornado" in wb["verification"]["A2"].value
    assert [type(c).__name__ for c in wb["dsa"]._charts] == ["BarChart"]
    assert chart_kinds(out / "report.xlsx") == {"barChart"}
    # the dsa sheet is the tornado the command wrote (ordered by the INMB swing)
    sheet = pd.read_excel(out / "report.xlsx", sheet_name="dsa", header=3)
    csv_t = pd.read_csv(out / "tornado_inmb.csv")
    assert list(sheet["parameter"]) == list(csv_t["parameter"])
    np.testing.assert_allclose(sheet["inmb_low"], csv_t["inmb_low"], rtol=1e-15)
    assert "dsa_tornado_icer" in wb.sheetnames
    # the base case as live formulas, for the same strategies
    assert wb["results"]["C5"].value.startswith("=")
    assert {f"trace_{s}" for s in ("none", "preemptive_ivig", "primary_ivig")} <= set(wb.sheetnames)
    assert (out / "tornado_inmb.csv").is_file() and "report.xlsx" in proc.stdout


def test_psa_report_has_ceac_and_ce_plane_charts_and_their_checks(report_runs):
    proc, wb, verification = report_of(report_runs, "psa")
    _, out = report_runs["psa"]
    assert_verification(
        proc, verification, {"psa_sample_means", "ceac_sums_to_one", "evpi_nonnegative"}
    )
    assert "40 draws" in wb["verification"]["A2"].value
    assert {"psa", "psa_ceac", "psa_ce_plane", "psa_evpi"} <= set(wb.sheetnames)
    assert [type(c).__name__ for c in wb["psa_ceac"]._charts] == ["ScatterChart"]
    assert [type(c).__name__ for c in wb["psa_ce_plane"]._charts] == ["ScatterChart"]
    assert chart_kinds(out / "report.xlsx") == {"scatterChart"}  # CEAC and CE plane: numeric axes
    plane = pd.read_excel(out / "report.xlsx", sheet_name="psa_ce_plane", header=3)
    assert plane["draw"].nunique() == 40
    assert wb["results"]["C5"].value.startswith("=")
    for name in ("summary.csv", "ceac.csv", "evpi.csv", "run.json"):  # the PSA files as before
        assert (out / name).is_file(), name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("two_way", "--report xlsx is written for the one-way DSA only"),
        ("countries", "--report xlsx is written for one country"),
    ],
)
def test_report_refused_combinations_exit_2_with_one_line(report_runs, name, message):
    proc, out = report_runs[name]
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.tmp-*"))


def test_parser_choices_agree_with_the_modules_they_name():
    # the parser writes them out so that building it imports none of these modules
    from cea import cli
    from cea.engine.cohort import BACKENDS
    from cea.pipeline.psa import DEFAULT_BACKEND
    from cea.report.psa import PER_DRAW_FORMATS

    assert cli.BACKENDS == BACKENDS
    assert cli.PSA_DEFAULT_BACKEND == DEFAULT_BACKEND
    assert cli.PER_DRAW_FORMATS == PER_DRAW_FORMATS


def test_help_and_argument_errors_load_no_model_or_report():
    # each command imports its own modules: the parser alone needs none of them
    code = (
        "import sys\n"
        "from cea.cli import main\n"
        "for argv in (['psa', '--help'], ['psa', '--draws', 'x']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = ('numpy', 'pandas', 'scipy', 'matplotlib', 'cea.pipeline', 'cea.report')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m.startswith(heavy)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout + proc.stderr


def test_run_exits_with_main_code_and_leaves_the_objects_to_the_system(monkeypatch):
    """``cea`` and ``python -m cea`` (``cli.run``): main's exit code, with the objects still
    alive frozen first, so that Python's exit does not collect them one by one after the
    printed total (0.3-0.5 s after a PSA)."""
    import gc

    import cea.cli as cli

    calls = []
    monkeypatch.setattr(cli, "main", lambda: calls.append("main") or 2)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    with pytest.raises(SystemExit) as done:
        cli.run()
    assert done.value.code == 2
    assert calls == ["main", "freeze"]
    import cea.__main__ as python_m  # not run: its __name__ is not "__main__" here

    assert python_m.run is cli.run

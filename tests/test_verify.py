"""The TECH-VER black-box checks (cea/verify.py): every check passes on the GB base case, each
check can fail, the PSA/DSA table checks on small synthetic tables, and ``cea check``."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cea import verify as checks
from cea.igrt.calibration import calibrate
from cea.igrt.declaration import Params as _Params
from cea.parameters import distributions as dist
from cea.pipeline.base import run_base_case

REPO = Path(__file__).resolve().parents[1]
INPUTS = REPO / "inputs"


@pytest.fixture(scope="module")
def base_gb():
    return run_base_case(INPUTS, "GB")


# --------------------------------------------------------------------------- base-case checks


@pytest.mark.parametrize("check", checks.BASE_CHECKS, ids=lambda f: f.__name__)
def test_check_passes_on_gb(base_gb, check):
    result = check(base_gb)
    assert isinstance(result, checks.CheckResult)
    assert result.passed, result.detail
    assert result.name == check.__name__.removeprefix("check_")
    assert result.tolerance and any(ch.isdigit() for ch in result.detail)


def test_run_checks_table(base_gb):
    table = checks.run_checks(base_gb, checks=checks.BASE_CHECKS[:2])
    assert list(table.columns) == checks.CHECK_COLUMNS
    assert list(table["check"]) == ["qalys_equal_life_years", "zero_discounting"]
    assert table["passed"].dtype == bool and table["passed"].all()


def test_a_crashing_check_is_a_failed_check(base_gb):
    def check_broken(base):
        raise RuntimeError("boom")

    table = checks.run_checks(base_gb, checks=(check_broken,))
    assert not table.loc[0, "passed"]
    assert table.loc[0, "check"] == "broken"
    assert "RuntimeError: boom" in table.loc[0, "detail"]


def _biased_run_model(column: str, factor: float):
    original = checks.run_model

    def run(*args, **kwargs):
        res = original(*args, **kwargs)
        res.outcomes[column] = res.outcomes[column] * factor
        return res

    return run


@pytest.mark.parametrize(
    ("check", "column"),
    [
        (checks.check_qalys_equal_life_years, "qaly"),
        (checks.check_zero_discounting, "cost"),
        (checks.check_ig_price_zero, "cost_ig_admin"),
        (checks.check_zero_mortality, "ly_undiscounted"),
        (checks.check_cycle_halving, "qaly"),
    ],
    ids=lambda x: getattr(x, "__name__", x),
)
def test_check_detects_a_planted_error(base_gb, monkeypatch, check, column):
    # a model that got one total 2% wrong must fail the check that looks at it
    monkeypatch.setattr(checks, "run_model", _biased_run_model(column, 1.02))
    assert not check(base_gb).passed


def test_identical_strategies_detects_a_name_dependent_model(base_gb, monkeypatch):
    original = checks.run_model

    def run(draws, spec, **kwargs):
        res = original(draws, spec, **kwargs)
        copy = res.outcomes["strategy"].str.endswith(checks.COPY_SUFFIX)
        res.outcomes.loc[copy, "cost"] += 1.0
        return res

    monkeypatch.setattr(checks, "run_model", run)
    assert not checks.check_identical_strategies(base_gb).passed


def test_no_infections_detects_a_direct_survival_effect(base_gb, monkeypatch):
    # the check sets hr_igrt_os to 1; planting 0.8 afterwards must make QALYs differ
    original = checks._variant_draws

    def variant(base, overrides):
        draws = original(base, overrides)
        return draws.assign(hr_igrt_os=0.8)

    monkeypatch.setattr(checks, "_variant_draws", variant)
    result = checks.check_no_infections(base_gb)
    assert not result.passed, result.detail


def test_calibration_gives_zero_rate_for_zero_incidence(base_gb):
    # draw 0 has no severe infections (target 0), draw 1 the base target: the zero draw must
    # get rate 0 without a search, and the other must equal its own one-draw calibration
    draws = pd.concat([base_gb.ptable.base()] * 2, ignore_index=True)
    draws.index.name = "draw"
    draws.loc[0, "p_severe_12m_no_igrt"] = 0.0
    v = calibrate(_Params(draws, base_gb.spec.unit_scale), base_gb.spec)
    assert v["r_severe_on_bsab"][0] == 0.0
    assert v["r_severe_on_bsab"][1] == pytest.approx(
        base_gb.calibrated["r_severe_on_bsab"], rel=1e-9
    )
    assert v["r_myeloma_death_off_bsab"][1] == pytest.approx(
        base_gb.calibrated["r_myeloma_death_off_bsab"], rel=1e-9
    )


def test_no_infections_check_without_a_never_strategy(base_gb):
    # with only IgRT strategies, a no-IgRT reference is added for the comparison
    spec = base_gb.spec.with_strategies([s for s in base_gb.spec.strategies if s.uses_igrt])
    result = checks.check_no_infections(replace(base_gb, spec=spec))
    assert result.passed, result.detail
    assert "no_igrt_reference" in result.detail


# --------------------------------------------------------------------------- PSA and DSA tables


def _parameter_table() -> pd.DataFrame:
    rows = [
        ("p_a", 0.3, 0.05, None, None, "beta"),
        ("c_b", 1000.0, 200.0, None, None, "gamma"),
        ("hr_c", 0.6, None, 0.4, 0.9, "lognormal"),
        ("q_d", 70.0, 5.0, None, None, "normal"),
        ("q_e", 12.0, None, 10.0, 14.0, "fixed"),
    ]
    df = pd.DataFrame(rows, columns=["parameter", "value", "se", "low", "high", "dist"])
    return df.set_index("parameter", drop=False)


def _psa_draws(table: pd.DataFrame, n: int = 4000, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = {}
    for name, r in table.iterrows():
        d = dist.build(r["dist"], r["value"], se=r["se"], low=r["low"], high=r["high"], name=name)
        out[name] = d.sample(n, rng)
    return pd.DataFrame(out).rename_axis("draw")


def test_psa_means_pass_on_draws_from_the_inputs():
    table = _parameter_table()
    result = checks.check_psa_means(_psa_draws(table), table)
    assert result.passed, result.detail
    assert (
        "4 varying parameters" in result.detail
        and "1 fixed parameters, 0 not constant" in result.detail
    )


def test_psa_means_use_the_lognormal_mean_not_its_median():
    # hr_c is lognormal with median 0.6: its sample mean exceeds 0.6 by many SE
    table = _parameter_table()
    draws = _psa_draws(table, n=20000)
    assert draws["hr_c"].mean() > 0.6 + 5 * draws["hr_c"].std() / np.sqrt(len(draws))
    assert checks.check_psa_means(draws, table).passed


def test_psa_means_fail_on_a_shifted_parameter():
    table = _parameter_table()
    draws = _psa_draws(table)
    draws["c_b"] *= 1.05  # 5% high: about 16 SE with 4000 draws
    result = checks.check_psa_means(draws, table)
    assert not result.passed and "c_b" in result.detail


def test_psa_means_fail_on_a_varying_fixed_parameter():
    table = _parameter_table()
    draws = _psa_draws(table)
    draws.loc[3, "q_e"] = 13.0
    result = checks.check_psa_means(draws, table)
    assert not result.passed and "1 not constant (q_e)" in result.detail


def test_psa_means_z_is_widened_for_many_parameters():
    # one parameter: exactly 3 SE; 45 parameters: Bonferroni keeps the family-wise 0.27%
    table = _parameter_table()
    single = checks.check_psa_means(_psa_draws(table)[["p_a"]], table)
    assert single.tolerance.startswith("3.00 SE")
    many = pd.concat([table.iloc[[0]]] * 45)
    many.index = many["parameter"] = [f"p_{i}" for i in range(45)]
    draws = pd.DataFrame({f"p_{i}": _psa_draws(table, seed=i)["p_a"] for i in range(45)})
    assert checks.check_psa_means(draws, many).tolerance.startswith("4.0")


def test_psa_means_accept_a_parameter_table_object(base_gb):
    # the real parameter table: a draw table at the base values is "fixed" everywhere it must be
    draws = pd.concat([base_gb.ptable.base()] * 3, ignore_index=True)
    fixed = [n for n in base_gb.ptable.names if base_gb.ptable.df.loc[n, "dist"] == "fixed"]
    result = checks.check_psa_means(draws[fixed], base_gb.ptable)
    assert result.passed, result.detail


def _ceac_wide() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    p = rng.random((21, 3))
    p /= p.sum(axis=1, keepdims=True)
    wtp = pd.Index(np.linspace(0, 100_000, 21), name="wtp")
    return pd.DataFrame(p, index=wtp, columns=["none", "primary_ivig", "preemptive_ivig"])


def test_ceac_sums_to_one_wide_and_long():
    wide = _ceac_wide()
    assert checks.check_ceac_sums_to_one(wide).passed
    assert checks.check_ceac_sums_to_one(wide.reset_index()).passed
    long = wide.reset_index().melt(
        id_vars="wtp", var_name="strategy", value_name="p_cost_effective"
    )
    result = checks.check_ceac_sums_to_one(long)
    assert result.passed and "21 WTP values x 3 strategies" in result.detail


def test_ceac_in_the_psa_module_layout():
    # cea.report.psa writes long tables with a boolean on_ceaf column beside the probability
    long = (
        _ceac_wide()
        .reset_index()
        .melt(id_vars="wtp", var_name="strategy", value_name="probability")
    )
    long["on_ceaf"] = long.groupby("wtp")["probability"].transform("max") == long["probability"]
    assert checks.check_ceac_sums_to_one(long).passed


def test_ceac_fails_when_a_row_does_not_sum_to_one():
    wide = _ceac_wide()
    wide.iloc[5, 0] -= 0.01
    result = checks.check_ceac_sums_to_one(wide)
    assert not result.passed and "1.00e-02" in result.detail


def test_ceac_fails_on_a_probability_outside_0_1():
    wide = _ceac_wide()
    wide.iloc[2] = [1.2, -0.2, 0.0]
    assert not checks.check_ceac_sums_to_one(wide).passed


def test_evpi_nonnegative():
    assert checks.check_evpi_nonnegative(0.0).passed
    assert checks.check_evpi_nonnegative(np.array([0.0, 12.5, 3000.0])).passed
    assert checks.check_evpi_nonnegative(
        pd.Series([1e-12, -1e-9])
    ).passed  # float rounding of E[max] - max E
    table = pd.DataFrame(
        {"wtp": [0, 20000], "evpi_per_patient": [0.0, 150.0], "evpi_population": [0.0, 1.5e6]}
    )
    assert checks.check_evpi_nonnegative(table).passed
    # cea.analysis.psa layout: population EVPI blank throughout when the population is unknown
    no_pop = table.assign(evpi_population=np.nan, optimal_strategy="none")
    result = checks.check_evpi_nonnegative(no_pop)
    assert result.passed and "evpi_population" not in result.detail
    assert not checks.check_evpi_nonnegative(table.assign(evpi_per_patient=[0.0, -1.0])).passed
    assert not checks.check_evpi_nonnegative(np.array([5.0, -0.01])).passed
    assert not checks.check_evpi_nonnegative(np.array([np.nan])).passed
    assert not checks.check_evpi_nonnegative(np.array([])).passed


def _tornado() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "parameter": ["c_ivig_per_g", "hr_igrt_severe", "q_height_cm"],
            "inmb_low": [5000.0, -20000.0, -13965.0],
            "inmb_high": [
                -30000.0,
                -9000.0,
                -13965.0,
            ],  # a bar may run either way, or have no width
            "base": [-13965.0] * 3,
        }
    )


def test_tornado_base_inside_every_bar():
    result = checks.check_tornado_base_inside(_tornado())
    assert result.passed, result.detail


def test_tornado_in_the_dsa_module_layout():
    # cea.pipeline.dsa.tornado_table names the base column inmb_base; comparisons may be stacked
    t = _tornado().rename(columns={"base": "inmb_base"})
    two = pd.concat(
        [t.assign(comparison="a vs b"), t.assign(comparison="c vs d")], ignore_index=True
    )
    assert checks.check_tornado_base_inside(two).passed
    two.loc[4, "inmb_base"] = 0.0
    result = checks.check_tornado_base_inside(two)
    assert not result.passed and "unexplained 1 (c vs d: hr_igrt_severe)" in result.detail


def test_tornado_fails_when_the_base_is_outside_a_bar():
    t = _tornado()
    t.loc[1, ["inmb_low", "inmb_high"]] = [-9000.0, -5000.0]  # non-monotone effect, or a bug
    result = checks.check_tornado_base_inside(t)
    assert not result.passed and "hr_igrt_severe" in result.detail


def _fake_run_model(parameter: str, bottom: float):
    """A model whose INMB of primary_ivig vs none is U-shaped in ``parameter`` (lowest at
    ``bottom``): cost 1000 + (x - bottom)^2 x 1e4 cheaper, QALYs unchanged."""

    def run(draws, spec, **kwargs):
        x = draws[parameter].to_numpy(float)
        rows = []
        for d, xi in zip(draws.index, x, strict=True):
            rows.append({"draw": d, "strategy": "none", "cost": 0.0, "qaly": 1.0})
            rows.append(
                {
                    "draw": d,
                    "strategy": "primary_ivig",
                    "cost": 1000 - (xi - bottom) ** 2 * 1e4,
                    "qaly": 1.0,
                }
            )
        return type("R", (), {"outcomes": pd.DataFrame(rows)})()

    return run


def _u_shaped_bar(base, x_low=0.3, x_base=0.5, x_high=1.0, bottom=0.65):
    inmb = lambda x: -(1000 - (x - bottom) ** 2 * 1e4)  # noqa: E731
    return pd.DataFrame(
        {
            "comparison": ["primary_ivig vs none"],
            "parameter": ["rr_infection_igg_normal"],
            "low": [x_low],
            "high": [x_high],
            "base_value": [x_base],
            "wtp_per_qaly": [base.country.wtp_per_qaly],
            "inmb_low": [inmb(x_low)],
            "inmb_high": [inmb(x_high)],
            "inmb_base": [inmb(x_base)],
        }
    )


def test_tornado_base_outside_explained_by_a_non_monotone_response(base_gb, monkeypatch):
    # INMB = (x - 0.65)^2 x 1e4 - 1000: 225 at both ends (0.3, 1.0), -775 at the base 0.5
    monkeypatch.setattr(checks, "run_model", _fake_run_model("rr_infection_igg_normal", 0.65))
    bar = _u_shaped_bar(base_gb)
    assert not checks.check_tornado_base_inside(bar).passed  # strict without the base case
    result = checks.check_tornado_base_inside(bar, base=base_gb)
    assert result.passed, result.detail
    assert "non-monotone response 1 (rr_infection_igg_normal: INMB lowest at 0.65" in result.detail


def test_tornado_base_outside_not_explained_when_the_bar_is_wrong(base_gb, monkeypatch):
    monkeypatch.setattr(checks, "run_model", _fake_run_model("rr_infection_igg_normal", 0.65))
    bar = _u_shaped_bar(base_gb)
    bar["inmb_low"] -= 1.0  # the table disagrees with a recomputation
    result = checks.check_tornado_base_inside(bar, base=base_gb)
    assert not result.passed and "unexplained 1 (rr_infection_igg_normal)" in result.detail


def test_run_checks_includes_the_table_checks_given(base_gb):
    table = _parameter_table()
    out = checks.run_checks(
        base_gb,
        checks=(),
        psa_draws=_psa_draws(table),
        parameters=table,
        ceac=_ceac_wide(),
        evpi=np.array([0.0, 10.0]),
        tornado=_tornado(),
    )
    assert list(out["check"]) == [
        "psa_sample_means",
        "ceac_sums_to_one",
        "evpi_nonnegative",
        "tornado_base_inside",
    ]
    assert out["passed"].all(), out


# --------------------------------------------------------------------------- cea check


def _cea(*args: str, code: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "cea", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_cli_check_passes_on_gb():
    out = _cea("check", "--country", "GB")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    for fn in checks.BASE_CHECKS:
        name = fn.__name__.removeprefix("check_")
        assert any(line.startswith(f"PASS  {name}: ") for line in lines), name
    for name in ("psa_sample_means", "ceac_sums_to_one", "evpi_nonnegative", "tornado_base_inside"):
        assert any(line.startswith(f"PASS  {name}: ") for line in lines), name
    # one face-validity line per published target, PASS or WARN (outside its band)
    targets = pd.read_csv(INPUTS / "validation_targets.csv")["id"]
    for name in targets:
        assert any(
            line.startswith((f"PASS  validation_{name}: ", f"WARN  validation_{name}: "))
            for line in lines
        ), name
    n = len(checks.BASE_CHECKS) + 4 + len(targets)
    assert f"{n} of {n} checks passed" in out.stdout
    assert "Traceback" not in out.stderr


def test_cli_check_exits_1_on_a_failed_check():
    code = (
        "import sys\n"
        "from cea import verify as checks\n"
        "def check_planted(base):\n"
        "    return checks.CheckResult('planted', False, 'x 1 vs 2', 'exact')\n"
        "original = checks.run_checks\n"
        "checks.run_checks = lambda base, **kw: original(base, checks=(checks.check_zero_discounting, check_planted))\n"
        "checks.analysis_tables = lambda base, **kw: ({}, [])\n"
        "checks.validation_checks = lambda base: []\n"
        "from cea.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    out = _cea("check", "--country", "GB", code=code)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "PASS  zero_discounting:" in out.stdout
    assert "FAIL  planted: x 1 vs 2 [tolerance: exact]" in out.stdout
    assert "1 of 2 checks passed, 1 failed" in out.stdout


def test_cli_check_unknown_country_exits_2():
    out = _cea("check", "--country", "XX")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "unknown country 'XX'" in out.stderr
    assert "Traceback" not in out.stderr

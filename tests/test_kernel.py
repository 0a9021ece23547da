"""The compiled cohort kernel (cea.igrt._kernel) against the NumPy reference path.

The reference is the general engine: cea.igrt.model.expand builds the (D, T, S, S) transition array
and the rewards, cea.engine.markov.run_markov runs them (DMHEE-verified, tests/test_published.py).
The kernel must give the same totals, traces and calibration for every kind of strategy and
every switch of the model, on varied draws.
"""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import cea.igrt.model as m
from cea.errors import CeaError, ModelInputError
from cea.igrt import _kernel
from cea.igrt.spec import apply_discount_settings, build_spec
from cea.io.load import load_inputs
from cea.parameters.table import build_parameter_table
from cea.parameters.sampling import sample_draws

pytestmark = pytest.mark.skipif(not _kernel.HAVE_NUMBA, reason="Numba not installed")

INPUTS = Path(__file__).resolve().parents[1] / "inputs"

#: One strategy of every kind: each trigger, both products, each dosing rule.
STRATEGIES = (
    m.Strategy("none", "never"),
    m.Strategy("primary_ivig", "at_start", "ivig", 0.4, 28.0),
    m.Strategy("primary_scig", "at_start", "scig", 0.4, 7.0, dosing_weight="ideal"),
    m.Strategy("preemptive_ivig", "igg_below_threshold", "ivig", 0.4, 28.0, vial_rounding_g=5.0),
    m.Strategy(
        "preemptive_or_infection",
        "igg_below_threshold",
        "scig",
        0.4,
        7.0,
        start_after_severe_infection=True,
    ),
    m.Strategy(
        "secondary_ivig", "after_severe_infection", "ivig", 0.4, 28.0, dosing_weight="adjusted"
    ),
    m.Strategy("flat_ivig", "at_start", "ivig", 0.0, 42.0, dosing_weight="flat", flat_dose_g=30.0),
)


@pytest.fixture(scope="module")
def setting():  # calibrated through the kernel (module fixtures run outside kernel_on)
    with m.compiled_kernel():
        return _setting()


def _setting():
    inputs = load_inputs(INPUTS)
    pt = build_parameter_table(inputs, "GB")
    spec = apply_discount_settings(build_spec(pt, inputs), pt.settings)
    spec = spec.with_strategies(STRATEGIES)
    draws = sample_draws(inputs, {"GB": pt}, 24, 7)["GB"]
    v = m.calibrate(m._Params(draws, spec.unit_scale), spec)
    return spec, v


def _cohorts(spec):
    return [(st, sg) for st in spec.strategies for sg in m.SUBGROUPS]


@pytest.fixture(autouse=True)
def kernel_on(monkeypatch):
    # every model call in these tests runs through the kernel unless a test switches it off;
    # CEA_ENGINE from the environment would override either
    monkeypatch.delenv("CEA_ENGINE", raising=False)
    with m.compiled_kernel():
        yield


def _both(spec, v):
    cohorts = _cohorts(spec)
    assert m.use_kernel()
    fast, _, _ = m._run_cohorts(cohorts, v, spec, True)
    with m.compiled_kernel(False):
        assert not m.use_kernel()
        ref, _, _ = m._run_cohorts(cohorts, v, spec, True)
    return fast, ref


VARIANTS = {
    "base": {},
    "end_of_life_and_subsequent_therapy": dict(
        include_end_of_life=True, include_subsequent_therapy=True
    ),
    "no_bsab_costs_simpson": dict(include_bsab_costs=False, correction="simpson"),
    "annual_discounting_offset": dict(discount_step="annual", discount_offset_cycles=0.5),
    "no_correction_other_rates": dict(
        correction="none", discount_rate_costs=0.05, discount_rate_effects=0.015
    ),
    "short_horizon": dict(n_cycles=7),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_kernel_equals_the_engine_for_every_strategy_and_switch(setting, variant):
    spec, v = setting
    spec = replace(spec, **VARIANTS[variant])
    fast, ref = _both(spec, v)
    assert set(fast.discounted) == set(ref.discounted)
    for name in ref.discounted:
        for got, want in ((fast.discounted, ref.discounted), (fast.undiscounted, ref.undiscounted)):
            np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-13, err_msg=name)
    np.testing.assert_allclose(fast.trace, ref.trace, rtol=0, atol=1e-14)
    # the comparison is not empty: costs, QALYs and infection deaths are all positive
    for name in ("cost_ig", "qaly", "infection_deaths", "cost_scig_training"):
        assert ref.discounted[name].max() > 0, name


def test_kernel_counts_end_of_life_on_every_death(setting):
    # one-off cost 1 on every move into 'dead': the undiscounted total is the share who died
    spec, v = setting
    spec = replace(spec, include_end_of_life=True)
    v1 = v.with_derived(c_end_of_life=np.ones(v.n))
    fast, _ = _both(spec, v1)
    dead_at_end = fast.trace[:, -1, m.DEAD]
    np.testing.assert_allclose(fast.undiscounted["cost_end_of_life"], dead_at_end, rtol=1e-12)


def test_calibration_functions_equal(setting):
    spec, v = setting
    os_spec = m._os_spec(spec, v["t_target_median_os_months"])
    fast = (m.no_igrt_incidence(v, spec, 12.0), m.trial_median_os_years(v, os_spec))
    with m.compiled_kernel(False):
        ref = (m.no_igrt_incidence(v, spec, 12.0), m.trial_median_os_years(v, os_spec))
    np.testing.assert_allclose(fast[0], ref[0], rtol=1e-13)
    np.testing.assert_allclose(fast[1], ref[1], rtol=1e-13)
    # and the calibration through either path lands on the same rates
    with m.compiled_kernel(False):
        again = m.calibrate(m._Params(v._draws, spec.unit_scale), spec)
    for name in m.CALIBRATED:
        np.testing.assert_allclose(again[name], v[name], rtol=1e-9)


def test_run_model_same_results_either_path(setting):
    spec, v = setting
    cal = {n: v[n] for n in m.CALIBRATED}
    import pandas as pd

    calibrated = pd.DataFrame(cal, index=v._draws.index)
    fast = m.run_model(v._draws, spec, calibrated=calibrated).outcomes
    with m.compiled_kernel(False):
        ref = m.run_model(v._draws, spec, calibrated=calibrated).outcomes
    num = [c for c in ref.columns if c not in ("draw", "strategy")]
    np.testing.assert_allclose(fast[num].to_numpy(), ref[num].to_numpy(), rtol=1e-12, atol=1e-12)


def test_run_cohort_refuses_wrong_shapes(setting):
    spec, v = setting
    c = m.cohort(STRATEGIES[1], "non_igg", v, spec)
    with pytest.raises(ValueError, match="shapes"):
        _kernel.run_cohort(c, np.ones(3))


def test_invalid_probabilities_get_the_engines_error(setting):
    # a negative IgG test interval makes the detection probability negative: the kernel flags the
    # draw and the call reruns through the engine, whose one-line error names strategy and draw
    spec, v = setting
    bad = v.with_derived(q_igg_test_interval_days=np.where(np.arange(v.n) == 3, -5.0, 28.0))
    label = v._draws.index[3]
    with pytest.raises(
        ModelInputError, match=rf"^strategy 'preemptive_ivig' \(\w+\): .*at draw {label},"
    ):
        m._run_cohorts(_cohorts(spec), bad, spec, False)
    c = m.cohort(STRATEGIES[3], "non_igg", bad, spec)
    with pytest.raises(_kernel.InvalidProbabilities, match="draw 3"):
        _kernel.run_cohort(c)


def test_cea_engine_setting(monkeypatch):
    # numpy: never the kernel; numba: the kernel unless a caller says otherwise; unset: callers
    monkeypatch.setenv("CEA_ENGINE", "numpy")
    with m.compiled_kernel(True):
        assert not m.use_kernel()
    monkeypatch.setenv("CEA_ENGINE", "numba")
    with m.compiled_kernel(None):
        assert m.use_kernel()
    with m.compiled_kernel(False):
        assert not m.use_kernel()
    monkeypatch.delenv("CEA_ENGINE")
    with m.compiled_kernel(None):
        assert not m.use_kernel()
    with m.compiled_kernel(True):
        assert m.use_kernel()


def test_a_numba_that_cannot_import_falls_back_to_the_engine(setting, monkeypatch):
    spec, v = setting
    monkeypatch.setattr(_kernel, "_compiled", None)
    monkeypatch.setattr(_kernel, "_jit", None)
    monkeypatch.setattr(_kernel, "_failed", "numba cannot be imported: test")
    assert not _kernel.available() and not m.use_kernel()
    out, _, _ = m._run_cohorts(_cohorts(spec)[:2], v, spec, False)
    assert np.isfinite(out.discounted["qaly"]).all()


# --------------------------------------------------------------------------- compiled calibration


def _varied(setting, incidence, median_os):
    spec, v = setting
    draws = v._draws.iloc[: len(incidence)].copy()
    draws.index = range(100, 100 + len(incidence))
    draws["p_severe_12m_no_igrt"] = incidence
    draws["t_target_median_os_months"] = median_os
    return spec, draws


def test_compiled_calibration_meets_both_targets_and_equals_the_numpy_path(setting):
    # the same algorithm per draw in compiled code: on varied draws and targets (one with no
    # severe infections at all) every draw is settled in the kernel, meets both targets when
    # checked through the NumPy engine, and lands on the NumPy path's rates
    spec, draws = _varied(
        setting, [0.2, 0.3, 0.45, 0.55, 0.7, 0.0], [15.0, 30.0, 22.2, 18.0, 25.0, 20.0]
    )
    v = m._Params(draws, spec.unit_scale)
    os_spec = m._os_spec(spec, v["t_target_median_os_months"])
    r, mu, ok = m._calibrate_compiled(v, spec, os_spec)
    assert ok.all()
    assert r[-1] == 0.0 and (r[:-1] > 0).all() and (mu > 0).all()
    with m.compiled_kernel(False):
        fast = v.with_derived(r_severe_on_bsab=r, r_myeloma_death_off_bsab=mu)
        inc = m.no_igrt_incidence(fast, spec, m.CALIBRATION_MONTHS)[:-1]  # r = 0: none on bsAb
        np.testing.assert_allclose(inc, draws["p_severe_12m_no_igrt"][:-1], rtol=0, atol=1e-11)
        os_years = m.trial_median_os_years(fast, os_spec)
        np.testing.assert_allclose(os_years * 12, draws["t_target_median_os_months"], atol=1e-9)
        ref = m.calibrate(m._Params(draws, spec.unit_scale), spec)
    np.testing.assert_allclose(r, ref["r_severe_on_bsab"], rtol=1e-9)
    np.testing.assert_allclose(mu, ref["r_myeloma_death_off_bsab"], rtol=1e-9)


def test_the_mu_step_reusing_its_on_bsab_part_gives_every_median_os_to_the_bit(
    setting, monkeypatch
):
    # _os_eval_reusing records the on-bsAb states' flows in its first evaluation and replays
    # them later (extending the record when a later evaluation runs longer): each median OS
    # and its validity flag must equal the full evaluation's exactly, in any order of mu
    spec, draws = _varied(setting, [0.3, 0.45, 0.6], [15.0, 22.2, 35.0])
    v = m._Params(draws, spec.unit_scale)
    seen = {}
    real = _kernel.calibrate_draws

    def keep(*args, **kwargs):
        seen["args"] = args
        return real(*args, **kwargs)

    monkeypatch.setattr(_kernel, "calibrate_draws", keep)
    r, mu, ok = m._calibrate_compiled(v, spec, m._os_spec(spec, v["t_target_median_os_months"]))
    assert ok.all()
    at_zero, at_one, share, cap, cap_cycles, _, _, settings = seen["args"]
    cal = _kernel._calibration_description(at_zero, at_one, share, cap, cap_cycles, settings)
    full, reusing = _kernel._run_eval, _kernel._os_eval_reusing  # compiled by the call above
    work = _kernel._calibration_work(cal[1][0].shape[1])
    rstate = work[14]
    assert _kernel._reuse_allowed(0, cal[11])  # mu acts after the bsAb only
    for d in range(len(r)):
        rstate[:] = (0.0, d, r[d])
        recorded = []
        # the first evaluation records; a larger mu dies sooner (replay only), a smaller one
        # lives longer (replay, then recording further); a negative mu gives invalid
        # probabilities (the flag must match too)
        for factor in (1.0, 3.0, 0.3, 1.0, 0.05, -50.0, 2.0):
            got = reusing(d, r[d], mu[d] * factor, cal, work)
            want = full(1, d, r[d], mu[d] * factor, cal, work)
            assert got == want, (d, factor, got, want)
            recorded.append(rstate[0])
        assert recorded[0] > 0 and recorded[2] > recorded[1] == recorded[0]  # replayed, extended
        assert want[1] and not reusing(d, r[d], -50.0 * mu[d], cal, work)[1]
        # another r (or draw) than recorded: a full evaluation, never the record
        assert reusing(d, 1.5 * r[d], mu[d], cal, work) == full(1, d, 1.5 * r[d], mu[d], cal, work)


def test_draws_the_kernel_does_not_settle_take_the_numpy_path(setting, monkeypatch):
    # Broyden given no iterations: the kernel settles no draw (status NOT_SETTLED), and the
    # calibration finishes every one through the NumPy path (there: the alternating fallback)
    spec, draws = _varied(setting, [0.3, 0.45, 0.6], [18.0, 22.2, 35.0])
    monkeypatch.setattr(m, "CALIBRATION_BROYDEN_ITER", 0)
    v = m._Params(draws, spec.unit_scale)
    _, _, ok = m._calibrate_compiled(v, spec, m._os_spec(spec, v["t_target_median_os_months"]))
    assert not ok.any()
    got = m.calibrate(m._Params(draws, spec.unit_scale), spec)
    with m.compiled_kernel(False):
        ref = m.calibrate(m._Params(draws, spec.unit_scale), spec)
    for name in m.CALIBRATED:
        np.testing.assert_array_equal(got[name], ref[name])


def test_compiled_calibration_leaves_unreachable_and_invalid_draws_to_the_numpy_path(setting):
    # an incidence target below the lowest rate searched (draw 101) and a negative case
    # fatality (draw 102, negative death hazards) are flagged, the other draws settled; the
    # NumPy path then names the draw by its label, as without the kernel
    spec, draws = _varied(setting, [0.45, 1e-7, 0.45], [22.2, 22.2, 22.2])
    v = m._Params(draws, spec.unit_scale)
    os_spec = m._os_spec(spec, v["t_target_median_os_months"])
    _, _, ok = m._calibrate_compiled(v, spec, os_spec)
    assert ok.tolist() == [True, False, True]
    with pytest.raises(CeaError, match=r"p_severe_12m_no_igrt.*\(draw 101\)"):
        m.calibrate(m._Params(draws, spec.unit_scale), spec)
    bad = draws.copy()
    bad["p_severe_12m_no_igrt"] = 0.45
    bad["p_case_fatality_severe"] = [0.1, 0.1, -5.0]
    v = m._Params(bad, spec.unit_scale)
    _, _, ok = m._calibrate_compiled(v, spec, os_spec)
    assert ok.tolist() == [True, True, False]
    with m.compiled_kernel(False), pytest.raises(CeaError) as want:
        m.calibrate(m._Params(bad, spec.unit_scale), spec)
    with pytest.raises(CeaError) as got:
        m.calibrate(m._Params(bad, spec.unit_scale), spec)
    assert str(got.value) == str(want.value)
    assert "at draw 102," in str(got.value)  # the draw's own label


def test_vectorised_expm1_is_within_an_ulp_of_libm():
    """The cohort kernel's expm1 (arithmetic only, so that it vectorises) against NumPy's, over
    the hazards' range and its edges: tiny, around the reduction's breakpoints k ln2 / 2, large
    (where it is -1 exactly), zero, infinities and NaN."""
    _kernel._kernels()
    rng = np.random.default_rng(3)
    ln2 = np.log(2.0)
    x = np.concatenate(
        [
            -rng.uniform(0.0, 3.0, 4000),
            -rng.uniform(0.0, 1e-6, 1000),
            -(10.0 ** rng.uniform(-300, 0, 1000)),
            rng.uniform(0.0, 5.0, 1000),  # a negative hazard: exp of a positive number
            -rng.uniform(3.0, 60.0, 1000),
            np.outer(np.arange(-60, 6), [1.0 - 1e-15, 1.0, 1.0 + 1e-15]).ravel() * ln2 / 2,
            [0.0, -0.0, -40.0, -41.0, -745.0, -np.inf, 700.0],
        ]
    )
    got = np.array([_kernel._em1(v) for v in x])
    want = np.expm1(x)
    ulps = np.abs(got - want) / np.spacing(np.abs(want))
    # the kernel takes expm1(-hazard): 1 ulp there; 2 for positive x (an invalid hazard, which
    # only has to give a probability outside [0, 1])
    assert np.all(ulps[x <= 0] <= 1.0), x[x <= 0][np.argmax(ulps[x <= 0])]
    assert np.all(ulps[x > 0] <= 2.0)
    assert np.all(got[x <= -40.0] == -1.0)
    assert np.isnan(_kernel._em1(np.nan))


def test_distinct_discount_rows_match_numpys_unique():
    # the kernel accumulates the trace once per distinct discount row: every reward's row must
    # be found among them, each once, as np.unique(axis=0) finds them (order aside)
    rng = np.random.default_rng(5)
    base = rng.random((3, 7))
    rows = base[[2, 0, 2, 1, 0, 0, 2]]
    kinds, kind_of = _kernel._distinct_rows(rows)
    assert kind_of.dtype == np.int64 and kinds.flags.c_contiguous
    np.testing.assert_array_equal(kinds[kind_of], rows)
    assert len(kinds) == len(np.unique(rows, axis=0)) == 3
    assert kind_of.tolist() == [0, 1, 0, 2, 1, 1, 0]  # first seen, first numbered
    empty, none = _kernel._distinct_rows(np.zeros((0, 7)))
    assert empty.shape == (0, 7) and none.shape == (0,)

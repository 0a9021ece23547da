"""The ahead-of-time module (cea._aot): the JIT kernels' machine code, loaded without Numba.

The reference is the JIT (itself checked against the NumPy engine in tests/test_kernel.py):
the module must give the same results to the bit, load without importing Numba, never run
code on arguments of another type than it was built for, and fall back to the JIT, once and
quietly, where it cannot be built.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cea.model as m
from cea import _aot, _kernel, psa
from cea.inputs import load_inputs
from cea.parameters import build_parameter_table
from cea.run import apply_discount_settings, build_spec

pytestmark = pytest.mark.skipif(not _kernel.HAVE_NUMBA, reason="Numba not installed")

INPUTS = Path(__file__).resolve().parents[1] / "inputs"


@pytest.fixture(scope="module")
def model():
    inputs = load_inputs(INPUTS)
    pt = build_parameter_table(inputs, "GB")
    spec = apply_discount_settings(build_spec(pt, inputs), pt.settings)
    draws = psa.sample_draws(inputs, {"GB": pt}, 40, 3)["GB"]
    return spec, draws


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    # a cache folder of the test's own, and nothing loaded in this process yet
    monkeypatch.setenv("CEA_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("CEA_AOT", raising=False)
    monkeypatch.delenv("CEA_ENGINE", raising=False)
    monkeypatch.setattr(_aot, "_cache", {})
    monkeypatch.setattr(_kernel, "_compiled", None)
    return tmp_path


def _run(spec, draws):
    """The PSA's model call, plus the calibration and its targets' own curves (trace, events)."""
    out, cal = psa._run_chunk(draws, spec)
    with m.compiled_kernel():
        v = m.calibrate(m._Params(draws, spec.unit_scale), spec)
        inc = m.no_igrt_incidence(v, spec, m.CALIBRATION_MONTHS)
        os_years = m.trial_median_os_years(v, m._os_spec(spec, v["t_target_median_os_months"]))
    return out, cal, inc, os_years


def _same(a, b):
    out_a, cal_a, inc_a, os_a = a
    out_b, cal_b, inc_b, os_b = b
    pd.testing.assert_frame_equal(out_a, out_b, check_exact=True)
    pd.testing.assert_frame_equal(cal_a, cal_b, check_exact=True)
    assert np.array_equal(inc_a, inc_b) and np.array_equal(os_a, os_b)


def test_the_module_runs_the_jits_machine_code_to_the_bit(model, fresh, monkeypatch):
    spec, draws = model
    monkeypatch.setattr(_kernel, "_compiled", _kernel._jit_kernels())
    assert not _kernel.ready()  # nothing built in this folder yet
    by_jit = _run(spec, draws)
    two_by_jit = _run(spec, draws.iloc[:2])
    assert _kernel.build_module() is None
    assert _aot.module_path().is_file() and _aot.signature_path().is_file()
    assert _aot.module_path().parent == fresh and _aot.module_path().name.startswith("cea_kernels_")
    # the exports were built for the model's arguments: one signature per kernel
    built_for = json.loads(_aot.signature_path().read_text())
    assert [len(built_for[k]) for k in _aot.EXPORTS] == [37, 9]

    monkeypatch.setattr(_kernel, "_compiled", None)
    entries = _kernel._kernels()
    assert all(isinstance(e, _aot.Entry) for e in entries) and _kernel.ready()
    # every model call goes to the exported code, none to the JIT
    for e in entries:
        monkeypatch.setattr(e, "fallback", lambda: pytest.fail("a model call went to the JIT"))
    _same(_run(spec, draws), by_jit)
    _same(_run(spec, draws.iloc[:2]), two_by_jit)

    # another process loads it in a millisecond, without importing Numba, and gets the same
    code = (
        "import sys, pickle; from pathlib import Path; from cea import psa; "
        "from cea.inputs import load_inputs; from cea.parameters import build_parameter_table; "
        "from cea.run import apply_discount_settings, build_spec; "
        f"inputs = load_inputs(Path({str(INPUTS)!r})); pt = build_parameter_table(inputs, 'GB'); "
        "spec = apply_discount_settings(build_spec(pt, inputs), pt.settings); "
        "draws = psa.sample_draws(inputs, {'GB': pt}, 40, 3)['GB']; "
        "out, cal = psa._run_chunk(draws, spec); "
        "sys.stdout.buffer.write(pickle.dumps(('numba' in sys.modules, out, cal)))"
    )
    env = {**__import__("os").environ, "CEA_CACHE_DIR": str(fresh)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, check=True)
    numba_imported, out, cal = __import__("pickle").loads(done.stdout)
    assert not numba_imported
    pd.testing.assert_frame_equal(out, by_jit[0], check_exact=True)
    pd.testing.assert_frame_equal(cal, by_jit[1], check_exact=True)


def test_arguments_of_another_type_go_to_the_jit_not_to_the_exported_code():
    # the exported code would read another dtype or layout as the built one (and crash); the
    # entry hands such calls to the JIT, which compiles for them
    calls = []
    built_for = [
        ["array", "<f8", 2, "C", True],
        ["array", "<f8", 1, "C", False],
        ["tuple", [["array", "|b1", 1, "C", True], ["int"]]],
        ["bool"],
        ["int"],
        ["float"],
    ]
    entry = _aot.Entry(
        lambda *a: calls.append("exported"), built_for, lambda: lambda *a: calls.append("jit")
    )
    good = (np.zeros((2, 3)), np.zeros(3), (np.zeros(2, dtype=bool), 4), True, 3, 0.5)
    entry(*good)
    readonly = np.broadcast_to(np.zeros(1), (3,)).copy()
    readonly.flags.writeable = False
    entry(good[0], readonly, *good[2:])  # read-only where the code only reads: fine
    assert calls == ["exported", "exported"]
    wrong = [
        (np.zeros((2, 3), dtype=np.float32), *good[1:]),  # dtype
        (np.zeros((3, 2)).T, *good[1:]),  # layout: not C-contiguous
        (np.zeros(6), *good[1:]),  # dimensions
        (readonly.reshape(1, 3), *good[1:]),  # read-only where the code writes
        (*good[:2], (np.zeros(2), 4), *good[3:]),  # inside the tuple
        (*good[:2], (np.zeros(2, dtype=bool),), *good[3:]),  # tuple length
        (*good[:3], 1, 3, 0.5),  # an int for a bool
        (*good[:4], True, 0.5),  # a bool for an int
        (*good[:5], 1),  # an int for a float
        good[:-1],  # one argument short
    ]
    for args in wrong:
        calls.clear()
        entry(*args)
        assert calls == ["jit"], args


def test_a_failed_build_is_remembered_and_the_jit_runs(model, fresh, monkeypatch, capsys):
    spec, draws = model
    from numba.pycc import CC

    tries = []

    def no_compiler(self):
        tries.append(1)
        raise OSError("no C compiler here")

    monkeypatch.setattr(CC, "compile", no_compiler)
    monkeypatch.setattr(_kernel, "_compiled", _kernel._jit_kernels())
    by_jit = psa._run_chunk(draws, spec)
    assert not _kernel.ready() and _aot.can_build()
    failed = _kernel.build_module()
    assert failed == "OSError: no C compiler here"
    assert _aot.failure_path().read_text().strip() == failed
    assert not _aot.module_path().exists()
    assert [p.name for p in fresh.iterdir()] == [_aot.failure_path().name]  # no build folder left
    # not tried again for this key; the kernels are then ready when Numba's cache holds them
    assert not _aot.can_build() and _kernel.build_module() is None and tries == [1]
    assert _kernel.ready()  # Numba's cache holds the kernels compiled above
    monkeypatch.setattr(_kernel, "_compiled", None)
    assert _kernel._kernels() is _kernel._jit_kernels()
    pd.testing.assert_frame_equal(psa._run_chunk(draws, spec)[0], by_jit[0], check_exact=True)
    # the PSA says so once on stderr, and runs
    monkeypatch.setattr(_aot, "_cache", {})
    monkeypatch.setenv("CEA_CACHE_DIR", str(fresh / "other"))
    psa._prepare_kernels(draws, spec)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no C compiler here" in err and "JIT" in err
    assert str(_aot.failure_path()) in err


def test_the_psas_first_run_builds_it_and_model_calls_of_any_size_use_it(model, fresh, monkeypatch):
    # as on a first run: the kernels compiled on one draw, the module built from them; then
    # chunks of 1, 2 and 40 draws all run the exported code
    spec, draws = model
    monkeypatch.setattr(_kernel, "_compiled", _kernel._jit_kernels())
    assert not psa._kernels_compiled()
    psa._prepare_kernels(draws, spec)
    assert psa._kernels_compiled() and _aot.module_path().is_file()
    monkeypatch.setattr(_kernel, "_compiled", None)
    entries = _kernel._kernels()
    for e in entries:
        monkeypatch.setattr(e, "fallback", lambda: pytest.fail("a model call went to the JIT"))
    for n in (1, 2, 40):
        out, _ = psa._run_chunk(draws.iloc[:n], spec)
        assert len(out) == n * len(spec.strategies) and np.isfinite(out["cost"]).all()


def test_a_module_that_does_not_load_is_a_lasting_failure(model, fresh, monkeypatch):
    # e.g. a cache folder mounted noexec: the build succeeds, the import fails
    from numba.pycc import CC

    def garbage(self):
        Path(self.output_dir, self._output_file).write_bytes(b"not a shared library")

    monkeypatch.setattr(CC, "compile", garbage)
    monkeypatch.setattr(_kernel, "_compiled", _kernel._jit_kernels())
    psa._run_chunk(model[1].iloc[:2], model[0])
    failed = _kernel.build_module()
    assert failed.startswith("built but cannot be loaded: ")
    assert _aot.failure_path().read_text().strip() == failed
    assert _aot.load() is None and not _aot.can_build()


def test_failures_of_this_process_are_not_written_down(fresh, monkeypatch, tmp_path):
    class Kernel:
        nopython_signatures = []  # not compiled yet

    with pytest.raises(_aot.BuildFailed, match="has 0 compiled signatures") as info:
        _aot.build((Kernel(), Kernel()))
    assert not info.value.remembered and not _aot.failure_path().exists()
    assert not _aot.can_build()  # this process gives up
    # an unwritable cache folder: nowhere to write it down either, and nothing to delete
    monkeypatch.setattr(_aot, "_cache", {})
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("CEA_CACHE_DIR", str(blocker / "cache"))
    Kernel.nopython_signatures = [None]  # one signature: the folder is what fails

    with pytest.raises(_aot.BuildFailed, match="cannot write to") as info:
        _aot.build((Kernel(), Kernel()))
    assert not info.value.remembered and not _aot.can_build()


def test_the_build_targets_the_hosts_own_features(tmp_path):
    # pycc alone gives LLVM the host CPU's name and no features: every feature of that CPU
    # model assumed, though a virtual machine may hide some. During the build it gets the
    # host's features, as the JIT does; pycc's temporary folders go inside the build folder
    import tempfile

    from numba.core.codegen import AOTCPUCodegen, JITCPUCodegen

    assert AOTCPUCodegen("plain", cpu_name="host")._tm_features == ""
    with _aot._pycc_settings(str(tmp_path)):
        aot = AOTCPUCodegen("built", cpu_name="host")
        assert tempfile.gettempdir() == str(tmp_path)
    assert aot._tm_features == JITCPUCodegen("jit")._tm_features != ""
    assert AOTCPUCodegen("after", cpu_name="host")._tm_features == ""
    assert tempfile.gettempdir() != str(tmp_path)


def test_the_key_follows_the_sources_the_versions_and_the_cpu(monkeypatch, tmp_path):
    import importlib.metadata

    monkeypatch.setattr(_aot, "_cache", {})
    first = _aot.key()
    assert len(first) == 20 and _aot.module_name() == f"cea_kernels_{first}"

    def rekey():
        _aot._cache.clear()
        return _aot.key()

    assert rekey() == first  # deterministic
    edited = tmp_path / "_kernel.py"
    edited.write_bytes(_aot._SOURCES[0].read_bytes() + b"\n# edited\n")
    real_version = importlib.metadata.version
    changes = [
        (_aot, "_SOURCES", (edited, _aot._SOURCES[1])),
        (_aot.os, "environ", {**_aot.os.environ, "NUMBA_CPU_NAME": "skylake-avx512"}),
        (_aot, "_cpu_identity", lambda: "another-cpu +avx512f"),
        (importlib.metadata, "version", lambda n: "9.9" if n == "numba" else real_version(n)),
        (importlib.metadata, "version", lambda n: "9.9" if n == "numpy" else real_version(n)),
    ]
    for target, name, value in changes:
        with monkeypatch.context() as mp:
            mp.setattr(target, name, value)
            assert rekey() != first, name
    assert rekey() == first


CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC 7B13
cpu MHz\t\t: 2450.000
flags\t\t: fpu sse2 avx avx2 fma
bogomips\t: 4900.00

processor\t: 1
vendor_id\t: AuthenticAMD
cpu MHz\t\t: 2300.000
flags\t\t: fpu sse2 avx avx2 fma
"""


def test_the_cpu_is_the_first_processors_model_and_flags(monkeypatch, tmp_path):
    info = tmp_path / "cpuinfo"
    monkeypatch.setattr(_aot, "_CPUINFO", info)
    info.write_text(CPUINFO)
    assert _aot._cpu_identity() == (
        "cpu family : 25\nflags : fpu sse2 avx avx2 fma\nmodel : 1\n"
        "model name : AMD EPYC 7B13\nvendor_id : AuthenticAMD"
    )
    same = _aot._cpu_identity()
    info.write_text(CPUINFO.replace("2450.000", "3000.000").replace("4900.00", "6000.00"))
    assert _aot._cpu_identity() == same  # clock speed is not the instruction set
    info.write_text(CPUINFO.replace("avx2 fma\nbogomips", "avx2 fma avx512f\nbogomips"))
    assert _aot._cpu_identity() != same
    # no /proc/cpuinfo (or no flags in it): LLVM's own view of the host
    import llvmlite.binding as llvm

    for text in (None, "processor\t: 0\nvendor_id\t: X\n"):
        if text is None:
            info.unlink()
        else:
            info.write_text(text)
        assert _aot._cpu_identity().startswith(llvm.get_host_cpu_name() + " ")


def test_cea_aot_0_turns_the_module_off(fresh, monkeypatch):
    monkeypatch.setenv("CEA_AOT", "0")
    assert _aot.load() is None and not _aot.can_build() and _kernel.build_module() is None
    assert _kernel._kernels() is _kernel._jit_kernels()

"""The compiled kernels built ahead of time into an extension module, so that a process loads
them in a few hundredths of a second (mostly computing the key below) instead of setting Numba up.

Why: every process that calls a Numba function imports Numba and builds its typing and target
contexts (importing scipy.linalg on the way) before it can even load cached machine code: about
0.8 s of CPU per process here, twice that with the PSA's two workers, against about 1.7 s for
running the model on all 10,000 draws (docs/psa.md, Speed). An extension module built once with
``numba.pycc`` from the same kernels imports without Numba.

How: :func:`build` exports two thin forwarders, ``cohort`` and ``calibrate``, each calling one of
cea._kernel's compiled kernels with the signature it was compiled for. The kernels keep their
own options, and the module is compiled for this machine's CPU name and features, as the JIT
compiles them (:func:`_pycc_settings`), so the results are bit-identical (tests/test_aot.py).
Exported code does not check its arguments' types (another dtype or layout would be read as the
built one, and crash the process), so :func:`load` gives each export with the signature saved
beside the module, and cea._kernel wraps it in :class:`Entry`, which checks the arguments and
hands a call with other types to the JIT, which compiles for them. The module is named after a
key over everything its code depends on: the sources of cea._kernel and of this module, the
versions of Python, Numba, llvmlite and NumPy, the CPU's model and feature flags, and Numba's
``NUMBA_*`` settings. A change to any of them gives a new name, so a stale module is never
loaded, nor a copy moved to another CPU.

Where: ``$CEA_CACHE_DIR`` when set, else ``cea/__pycache__`` beside this file when writable (as
Numba's own cache), else ``~/.cache/cea``. A build that fails for a lasting reason (no C
compiler, no setuptools, no ``numba.pycc`` in a later Numba, a module that does not load here)
leaves a ``.failed`` file with the reason beside where the module would be, so it is not retried
for the same key; any failure stops the process from trying again. The kernels then run through
Numba's JIT as before. ``CEA_AOT=0`` turns the module off (JIT only).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import shutil
import sys
import sysconfig
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

#: The exported functions, in the order cea._kernel._kernels returns the kernels.
EXPORTS = ("cohort", "calibrate")

_HERE = Path(__file__).resolve().parent
_SOURCES = (_HERE / "_kernel.py", Path(__file__).resolve())
_DEPENDENCIES = ("numba", "llvmlite", "numpy")

# this process's key, loaded exports, and why a build failed in this process
_cache: dict = {}


def enabled() -> bool:
    """False when ``CEA_AOT=0`` (or ``no``/``false``/``off``): the kernels then run through the JIT."""
    return os.environ.get("CEA_AOT", "").strip().lower() not in ("0", "no", "false", "off")


def cache_dir() -> Path:
    """Where the module is built and looked for (see the module docstring)."""
    env = os.environ.get("CEA_CACHE_DIR", "").strip()
    if env:
        return Path(env)
    beside = _HERE / "__pycache__"
    if os.access(beside if beside.exists() else _HERE, os.W_OK):
        return beside
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "cea"


_CPUINFO = Path("/proc/cpuinfo")
#: The lines of /proc/cpuinfo that say which instructions the CPU runs (x86, ARM, RISC-V):
#: what LLVM's host detection reads too, through the same CPUID registers.
_CPUINFO_FIELDS = frozenset(
    (
        "vendor_id", "cpu family", "model", "model name", "flags",
        "CPU implementer", "CPU architecture", "CPU variant", "CPU part", "Features",
        "isa", "uarch",
    )
)  # fmt: skip


def _cpu_identity() -> str:
    """The CPU the module is compiled for: on Linux its model and feature flags from
    /proc/cpuinfo (read in a millisecond), elsewhere LLVM's host CPU name and features
    (importing llvmlite, about 0.05 s per process)."""
    try:
        block = _CPUINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        block = ""
    block = block.split("\n\n", 1)[0]  # the first processor
    found = sorted(
        " ".join(line.split())
        for line in block.splitlines()
        if line.split(":", 1)[0].strip() in _CPUINFO_FIELDS
    )
    if any(line.split(":", 1)[0].strip() in ("flags", "Features", "isa") for line in found):
        return "\n".join(found)
    import llvmlite.binding as llvm  # llvmlite comes with Numba

    return f"{llvm.get_host_cpu_name()} {llvm.get_host_cpu_features().flatten()}"


def key() -> str:
    """A hash of everything the module's machine code depends on (module docstring)."""
    if "key" not in _cache:
        from importlib.metadata import version

        h = hashlib.sha256()
        for path in _SOURCES:
            h.update(path.read_bytes())
        for part in (
            sys.version,
            platform.machine(),
            sysconfig.get_config_var("EXT_SUFFIX") or "",
            *(f"{name}=={version(name)}" for name in _DEPENDENCIES),
            _cpu_identity(),
            # Numba's settings that change code generation (NUMBA_CPU_NAME, _CPU_FEATURES,
            # _OPT, _BOUNDSCHECK, ...): all of them, to be safe
            *sorted(f"{k}={v}" for k, v in os.environ.items() if k.startswith("NUMBA_")),
        ):
            h.update(part.encode() + b"\0")
        _cache["key"] = h.hexdigest()[:20]
    return _cache["key"]


def module_name() -> str:
    return f"cea_kernels_{key()}"


def module_path() -> Path:
    return cache_dir() / (module_name() + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))


def failure_path() -> Path:
    return cache_dir() / (module_name() + ".failed")


def signature_path() -> Path:
    """The argument types each export was built for (JSON, :func:`_describe`), beside the module."""
    return cache_dir() / (module_name() + ".json")


def _describe(t) -> list:
    """A Numba type as JSON: the argument types an export was built for."""
    from numba import types
    from numba.np.numpy_support import as_dtype

    if isinstance(t, types.Array):
        return ["array", as_dtype(t.dtype).str, t.ndim, t.layout, bool(t.mutable)]
    if isinstance(t, types.BaseTuple):
        return ["tuple", [_describe(e) for e in t.types]]
    if isinstance(t, types.Boolean):
        return ["bool"]
    if isinstance(t, types.Integer):
        return ["int"]
    if isinstance(t, types.Float):
        return ["float"]
    return ["other", str(t)]  # matches no value: such calls go to the JIT


def _matches(expected: list, x) -> bool:
    """True when the exported code reads the value ``x`` correctly as type ``expected`` (from
    :func:`_describe`): the same dtype and dimensions, the layout (or any, for layout "A"), and
    writeable where the code may write (a writeable array is read as well as a read-only one)."""
    kind = expected[0]
    if kind == "array":
        _, dtype, ndim, layout, mutable = expected
        return (
            isinstance(x, np.ndarray)
            and x.dtype.str == dtype
            and x.ndim == ndim
            and (bool(x.flags.writeable) or not mutable)
            and (
                layout == "A"
                or (layout == "C" and x.flags.c_contiguous)
                or (layout == "F" and x.flags.f_contiguous)
            )
        )
    if kind == "tuple":
        return (
            isinstance(x, tuple)
            and len(x) == len(expected[1])
            and all(_matches(e, v) for e, v in zip(expected[1], x, strict=True))
        )
    if kind == "bool":
        return isinstance(x, bool | np.bool_)
    if kind == "int":
        return isinstance(x, int | np.integer) and not isinstance(x, bool | np.bool_)
    if kind == "float":
        return isinstance(x, float | np.floating)
    return False


class Entry:
    """An exported kernel behind a check of its arguments' types: a call whose arguments are
    typed as built runs the exported code; any other goes to ``fallback()`` (the JIT's kernel,
    which compiles for those types), so a type the build did not see costs time, never a crash."""

    def __init__(self, function, argument_types: list, fallback):
        self.function = function
        self.argument_types = argument_types
        self.fallback = fallback

    def __call__(self, *args):
        if len(args) == len(self.argument_types) and all(
            _matches(e, x) for e, x in zip(self.argument_types, args, strict=True)
        ):
            return self.function(*args)
        return self.fallback()(*args)


def load():
    """The built module's exports for this key, ``{name: (function, argument types)}`` (imported
    once per process; wrap them in :class:`Entry`), or None when it is not built, is turned off,
    cannot be keyed (e.g. Numba not installed) or cannot be loaded."""
    if not enabled():
        return None
    if _cache.get("module") is None:
        try:
            path = module_path()
        except Exception:  # noqa: BLE001 - no key (a dependency missing): no module
            return None
        if not path.is_file():
            return None
        try:
            argument_types = json.loads(signature_path().read_text(encoding="utf-8"))
            module = _import(path, module_name())
            _cache["module"] = {
                name: (getattr(module, name), argument_types[name]) for name in EXPORTS
            }
        except Exception:  # noqa: BLE001 - an unloadable module: the JIT runs instead
            return None
    return _cache["module"]


def can_build() -> bool:
    """True when the module is not built yet but may be: turned on, and no earlier build for
    this key failed (here, or in this process: see :func:`build`)."""
    if not enabled() or "failed" in _cache or load() is not None:
        return False
    try:
        return not failure_path().exists()
    except Exception:  # noqa: BLE001 - no key: nothing to build
        return False


class BuildFailed(Exception):
    """The module could not be built. ``remembered``: the reason is in :func:`failure_path`
    (a lasting failure: no C compiler, a module that does not load); otherwise only this
    process gives up (an unwritable folder, or kernels not compiled as the build needs)."""

    def __init__(self, reason: str, remembered: bool = False):
        super().__init__(reason)
        self.remembered = remembered


@contextmanager
def _pycc_settings(tmp: str):
    """Two settings of numba.pycc, during a build only. Its code generator targets the host
    CPU's name with no feature list, so LLVM would assume every feature of that CPU model,
    though a virtual machine may hide some (the module would then stop on an illegal
    instruction): it gets the host's own features, as the JIT does (including
    NUMBA_CPU_FEATURES). And it leaves its build folder behind when the compiler fails: its
    temporary folders go inside ``tmp``, which the build removes."""
    from numba.core.codegen import AOTCPUCodegen

    saved = vars(AOTCPUCodegen)["_customize_tm_features"]
    saved_tempdir = tempfile.tempdir
    AOTCPUCodegen._customize_tm_features = AOTCPUCodegen._get_host_cpu_features
    tempfile.tempdir = tmp
    try:
        yield
    finally:
        AOTCPUCodegen._customize_tm_features = saved
        tempfile.tempdir = saved_tempdir


def _import(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _forwarder(kernel, n_args: int, name: str):
    """``def name(a0, ..., aN): return kernel(a0, ..., aN)``: exported with the kernel's
    signature, it compiles to a call of the kernel's own code. Written out (exec) because the
    export needs a fixed list of arguments."""
    args = ", ".join(f"a{i}" for i in range(n_args))
    namespace = {"_kernel": kernel}
    exec(f"def {name}({args}):\n    return _kernel({args})\n", namespace)  # noqa: S102
    return namespace[name]


def build(kernels) -> Path:
    """Build the module from ``kernels`` (Numba dispatchers in :data:`EXPORTS` order, each
    compiled for exactly one signature, as the model's calls compile them) and return its path.

    Built in a temporary folder and moved into place in one step, so that a process never loads
    a half-written module and two builds at once do not clash; then loaded once, to check it
    loads here. On failure raises BuildFailed; a lasting failure is written to
    :func:`failure_path` (not tried again for this key), any failure stops this process from
    trying again."""
    try:
        return _build(kernels)
    except BuildFailed as exc:
        _cache["failed"] = str(exc)
        if exc.remembered:
            try:
                failure_path().write_text(f"{exc}\n", encoding="utf-8")
            except OSError:
                exc.remembered = False
        raise


def _build(kernels) -> Path:
    sigs = {name: kernel.nopython_signatures for name, kernel in zip(EXPORTS, kernels, strict=True)}
    for name, found in sigs.items():
        if len(found) != 1:  # this process's state, not the machine's: not remembered
            raise BuildFailed(f"kernel {name} has {len(found)} compiled signatures, not 1")
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".build-", dir=directory)
    except OSError as exc:
        raise BuildFailed(f"cannot write to {directory}: {exc}") from None
    try:
        with warnings.catch_warnings(), _pycc_settings(tmp):
            warnings.simplefilter("ignore")  # pycc's pending deprecation
            from numba.pycc import CC

            cc = CC(module_name())
            cc.output_dir = tmp
            cc.target_cpu = "host"
            cc.verbose = False
            argument_types = {}
            for (name, found), kernel in zip(sigs.items(), kernels, strict=True):
                cc.export(name, found[0])(_forwarder(kernel, len(found[0].args), name))
                argument_types[name] = [_describe(t) for t in found[0].args]
            cc.compile()
        built = Path(tmp) / module_path().name
        if not built.is_file():
            raise BuildFailed(f"the compiler left no {built.name}", remembered=True)
        # the signatures first: a module is only loaded with its signatures beside it
        described = Path(tmp) / signature_path().name
        described.write_text(json.dumps(argument_types), encoding="utf-8")
        os.replace(described, signature_path())
        os.replace(built, module_path())
    except BuildFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - the compiler or the toolchain: a lasting failure
        raise BuildFailed(f"{type(exc).__name__}: {exc}".strip(), remembered=True) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    try:  # e.g. a folder mounted noexec: built, but not loadable
        _import(module_path(), module_name())
    except Exception as exc:  # noqa: BLE001
        raise BuildFailed(
            f"built but cannot be loaded: {type(exc).__name__}: {exc}", remembered=True
        ) from None
    return module_path()

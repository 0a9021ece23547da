"""cea: cost-effectiveness of immunoglobulin replacement (IVIG/SCIG) with bispecific antibodies
in relapsed multiple myeloma.

Public API (imported lazily, so ``import cea`` stays cheap)
----------
run_markov, MarkovResult   the generic Markov cohort engine (cea.engine.markov)
icer_table, pairwise       full incremental analysis and named comparisons (cea.analysis.incremental)
load_inputs                read and validate an inputs folder or workbook (cea.io.load)
run_base_case              the deterministic base case of the IgRT model (cea.pipeline.base)
"""

__version__ = "0.1.0"

_API = {
    "run_markov": "cea.engine.markov",
    "MarkovResult": "cea.engine.markov",
    "icer_table": "cea.analysis.incremental",
    "pairwise": "cea.analysis.incremental",
    "load_inputs": "cea.io.load",
    "run_base_case": "cea.pipeline.base",
}

__all__ = [*_API, "__version__"]


def __getattr__(name):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'cea' has no attribute {name!r}")

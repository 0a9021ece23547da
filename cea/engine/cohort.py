"""Run declared cohort models (:mod:`cea.engine.declaration`) with a chosen backend."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from cea.engine import compiled, numpy_backend
from cea.engine.declaration import CohortModel, CohortResult, Timing, validate
from cea.errors import ModelInputError

#: Backends of :func:`run_cohorts`.
BACKENDS = ("numpy", "numba")


def run_cohorts(
    models: Sequence[CohortModel],
    profiles: Mapping[str, np.ndarray],
    timing: Timing,
    *,
    backend: str = "numpy",
    keep_trace: bool = False,
    keep_events: bool = False,
    keep_per_cycle: bool = False,
) -> list[CohortResult]:
    """Run declared cohorts of D draws that share ``profiles`` (name -> (D, T) arrays).

    ``backend``: ``"numpy"`` builds the (D, T, S, S) transition array of each cohort and runs
    :func:`cea.engine.markov.run_markov` (the reference); ``"numba"`` runs every cohort in one
    compiled pass over draws and cycles without storing any (D, T, ...) array
    (:mod:`cea.engine.compiled`). Both give the same totals to 1e-12 (tests/test_engine_cohort.py).

    ``keep_per_cycle`` returns each row's contribution (:class:`CohortResult`); it always runs
    the NumPy reference, whatever ``backend`` says (a budget needs one draw, not speed).

    Raises ModelInputError naming the cohort and the problem for a declaration the engine cannot
    run (:func:`cea.engine.declaration.validate`), and naming the cohort and draw when a hazard
    is negative or not finite.
    """
    if backend not in BACKENDS:
        raise ModelInputError(f"unknown backend '{backend}' (known: {', '.join(BACKENDS)})")
    validate(models, profiles, timing)
    if keep_per_cycle:
        return [
            numpy_backend.run(m, profiles, timing, keep_trace, keep_events, keep_per_cycle=True)
            for m in models
        ]
    if backend == "numba":
        return compiled.run_cohorts(models, profiles, timing, keep_trace, keep_events)
    return [numpy_backend.run(m, profiles, timing, keep_trace, keep_events) for m in models]


def rerun(
    base: CohortModel,
    units: Sequence[CohortModel],
    profiles: Mapping[str, np.ndarray],
    timing: Timing,
    **options,
) -> compiled.Rerun:
    """A cohort whose hazards are linear in a few unknowns per draw (``base`` declared with
    every unknown at 0, ``units[k]`` with unknown k at 1), made ready once to be run again and
    again at other values of them, on any subset of its draws, by the compiled backend: a
    :class:`cea.engine.compiled.Rerun`, whose docstring lists the ``options`` (``keep_trace``,
    ``keep_events``, ``keep_states``, ``stop``, ``check``). Raises ModelInputError as
    :func:`run_cohorts` for a declaration the engine cannot run."""
    return compiled.Rerun(base, units, profiles, timing, **options)

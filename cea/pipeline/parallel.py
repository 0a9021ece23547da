"""The pipeline's threads: chunks of draws run in threads of this process
(:func:`cea.analysis.voi.in_threads`, the package's one thread helper, which the analysis's
blocks of draws use too).

Each chunk is an independent model call (its own draws, calibration and arrays), so the results
do not depend on how many threads run them or in which order they finish: they are returned in
the chunks' order. The compiled backend's kernel releases the GIL, and NumPy releases it in its
array loops, so the threads run at the same time; there are no worker processes, so nothing
outlives the command.
"""

from __future__ import annotations

import os
import time

from cea.analysis.voi import AHEAD, cpus, in_threads
from cea.errors import CeaError

__all__ = ["AHEAD", "check_workers", "cpus", "in_threads", "process_seconds"]


#: When this module was imported: the start of the clock where the process's start is unknown.
_IMPORTED = time.perf_counter()


def process_seconds() -> float:
    """Wall seconds since this process started (Python's start-up and imports included), from
    the start time Linux records in /proc/self/stat (field 22, clock ticks since boot);
    elsewhere, seconds since this module was imported."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            after_name = f.read().rsplit(")", 1)[1].split()
        started = int(after_name[19]) / os.sysconf("SC_CLK_TCK")  # field 22 = 3rd after name + 19
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, ValueError, IndexError, AttributeError):
        return time.perf_counter() - _IMPORTED


def check_workers(workers: int | None) -> int:
    """``workers`` threads (None: one per CPU this process may use); refused unless >= 1."""
    if workers is None:
        return cpus()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise CeaError(f"workers must be a whole number >= 1, got {workers!r}")
    return workers

"""The pipeline's one parallel mechanism: chunks of draws run in threads of this process.

Each chunk is an independent model call (its own draws, calibration and arrays), so the results
do not depend on how many threads run them or in which order they finish: they are returned in
the chunks' order. The compiled backend's kernel releases the GIL, and NumPy releases it in its
array loops, so the threads run at the same time; there are no worker processes, so nothing
outlives the command.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import TypeVar

from cea.analysis.voi import cpus
from cea.errors import CeaError

#: Items started ahead of the one being yielded, per thread: keeps every thread busy while the
#: caller takes the results in order.
AHEAD = 2

T = TypeVar("T")
R = TypeVar("R")


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


def in_threads(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``fn(item)`` for every item, ``workers`` at a time in threads; yields the results in the
    items' order. At most 2 x ``workers`` items are started ahead of the one yielded, and a
    result is let go once yielded, so memory does not grow with the number of items (the
    caller streams them). An exception in one item cancels the items not yet started and is
    raised once the running ones have finished."""
    items = iter(items)
    n = workers
    if n <= 1:
        for item in items:
            yield fn(item)
        return
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="cea-chunk") as pool:
        pending = deque(pool.submit(fn, item) for item in islice(items, AHEAD * n))
        try:
            while pending:
                result = pending.popleft().result()
                for item in islice(items, 1):
                    pending.append(pool.submit(fn, item))
                yield result
                del result
        finally:
            for future in pending:
                future.cancel()

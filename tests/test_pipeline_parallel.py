"""The pipeline's threads (cea.pipeline.parallel): results in the items' order, whatever order
the threads finish in; an error in one item reaches the caller and stops the rest."""

from __future__ import annotations

import threading
import time

import pytest

from cea.pipeline.parallel import AHEAD, check_workers, cpus, in_threads, process_seconds


def test_results_come_back_in_the_items_order():
    # later items finish first: the results still follow the items
    def slow_first(i):
        time.sleep(0.02 * (5 - i))
        return i * i

    assert list(in_threads(slow_first, range(6), workers=3)) == [0, 1, 4, 9, 16, 25]


def test_items_run_in_several_threads_at_once():
    # three items that each wait for the other two can only finish if three threads run them
    barrier = threading.Barrier(3, timeout=10)
    assert list(in_threads(lambda i: barrier.wait() >= 0, range(3), workers=3)) == [True] * 3


def test_one_worker_runs_in_the_callers_thread():
    names = list(in_threads(lambda _: threading.current_thread().name, range(3), workers=1))
    assert names == [threading.current_thread().name] * 3


def test_one_item_runs_in_the_callers_thread():
    """A single item starts no thread, whatever the workers (the analysis of 10,000 draws is
    one block of draws); two items do run in the pool."""

    def name(_):
        return threading.current_thread().name

    assert list(in_threads(name, [0], workers=4)) == [threading.current_thread().name]
    assert list(in_threads(name, iter([0]), workers=4)) == [threading.current_thread().name]
    assert list(in_threads(name, [], workers=4)) == []
    two = list(in_threads(name, range(2), workers=2))
    assert all(n.startswith("cea-worker") for n in two)


def test_the_callers_numpy_error_state_holds_in_the_threads():
    # the CLI silences NumPy's overflow/invalid warnings (it refuses non-finite results in one
    # line); NumPy's error state is a context variable, which a new thread does not inherit:
    # `cea psa` printed "RuntimeWarning: invalid value encountered" lines from its workers
    import warnings

    import numpy as np

    def inf_times_zero(_):
        return float((np.array([np.inf]) * 0.0)[0])

    with warnings.catch_warnings(record=True) as caught, np.errstate(invalid="ignore"):
        warnings.simplefilter("always")
        assert len(list(in_threads(inf_times_zero, range(4), workers=2))) == 4
    assert [w for w in caught if issubclass(w.category, RuntimeWarning)] == []


def test_an_error_reaches_the_caller_and_cancels_the_items_not_started():
    started = []

    def fail_on_one(i):
        started.append(i)
        if i == 1:
            raise ValueError("item 1")
        time.sleep(0.05)
        return i

    with pytest.raises(ValueError, match="item 1"):
        list(in_threads(fail_on_one, range(40), workers=2))
    time.sleep(0.2)
    assert len(started) < 40


def test_workers_default_to_the_cpus_and_must_be_whole_and_positive():
    assert check_workers(None) == cpus() >= 1
    assert check_workers(3) == 3
    for bad in (0, -2, 2.0, True, "4"):
        with pytest.raises(Exception, match="workers must be a whole number >= 1"):
            check_workers(bad)


def test_items_are_started_a_bounded_number_ahead_of_the_caller():
    # the caller streams the results: when it takes result i, at most AHEAD x workers items
    # beyond it have been started, and the results it has taken are no longer held
    started, seen = [], []
    lock = threading.Lock()

    def note(i):
        with lock:
            started.append(i)
        return [i] * 1000

    for result in in_threads(note, range(50), workers=2):
        i = result[0]
        with lock:
            assert len(started) <= i + 1 + AHEAD * 2
        seen.append(i)
    assert seen == list(range(50)) and sorted(started) == list(range(50))


def test_process_seconds_counts_from_the_process_start():
    # at least the time since this test started, and not absurdly more than Python has run
    t0 = time.perf_counter()
    before = process_seconds()
    time.sleep(0.05)
    after = process_seconds()
    assert 0 < before and after - before >= 0.05 - 0.02  # clock ticks of 10 ms
    assert after < time.perf_counter() - t0 + 24 * 3600

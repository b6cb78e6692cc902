"""bounded_map: order, the window bound, errors, and cancelling what is still pending."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from wsidist.runtime.parallel import bounded_map


class CountingSubmit:
    """An executor's submit that records how many futures are submitted and unfinished."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self.pool = pool
        self.pending = self.peak = self.submitted = 0
        self.futures = []
        self.lock = threading.Lock()

    def __call__(self, fn, *args):
        with self.lock:
            self.pending += 1
            self.submitted += 1
            self.peak = max(self.peak, self.pending)
        future = self.pool.submit(fn, *args)
        future.add_done_callback(self._done)
        self.futures.append(future)
        return future

    def _done(self, _future) -> None:
        with self.lock:
            self.pending -= 1


def slow_square(x: int, delay: float) -> int:
    time.sleep(delay)
    return x * x


def test_ordered_results_come_in_submission_order():
    delays = [0.05, 0.0, 0.03, 0.0, 0.02, 0.0, 0.01, 0.0]
    with ThreadPoolExecutor(4) as pool:
        submit = CountingSubmit(pool)
        out = list(bounded_map(submit, slow_square, enumerate(delays), 3, ordered=True))
    assert out == [i * i for i in range(len(delays))]
    assert submit.submitted == len(delays) and submit.peak <= 3


def test_unordered_results_come_as_they_finish():
    args = [(0, 0.3), (1, 0.0), (2, 0.0)]
    with ThreadPoolExecutor(3) as pool:
        out = list(bounded_map(pool.submit, slow_square, args, 3, ordered=False))
    assert sorted(out) == [0, 1, 4]
    assert out[-1] == 0  # the slow one arrives last


def test_window_bounds_work_in_flight_and_reads_arguments_lazily():
    consumed = []

    def args():
        for i in range(20):
            consumed.append(i)
            yield (i, 0.005)

    with ThreadPoolExecutor(8) as pool:
        submit = CountingSubmit(pool)
        results = bounded_map(submit, slow_square, args(), 2, ordered=False)
        first = next(results)
        assert len(consumed) <= 3  # the window, plus one refill after the first result
        rest = list(results)
    assert sorted([first, *rest]) == [i * i for i in range(20)]
    assert submit.peak <= 2


def test_closing_early_cancels_pending_work():
    started = []

    def task(i: int) -> int:
        started.append(i)
        time.sleep(0.05)
        return i

    with ThreadPoolExecutor(1) as pool:
        submit = CountingSubmit(pool)
        results = bounded_map(submit, task, [(i,) for i in range(10)], 4, ordered=True)
        assert next(results) == 0
        results.close()
        pool.shutdown(wait=True)
    cancelled = [f for f in submit.futures if f.cancelled()]
    assert submit.submitted == 5  # 4, then one refill
    assert len(cancelled) >= 2 and len(started) < 5


def test_an_error_propagates_and_cancels_the_rest():
    def task(i: int) -> int:
        if i == 1:
            raise ValueError("bad item")
        time.sleep(0.05)
        return i

    with ThreadPoolExecutor(1) as pool:
        submit = CountingSubmit(pool)
        with pytest.raises(ValueError, match="bad item"):
            list(bounded_map(submit, task, [(i,) for i in range(8)], 4, ordered=True))
        pool.shutdown(wait=True)
    assert any(f.cancelled() for f in submit.futures)
    assert submit.submitted < 8

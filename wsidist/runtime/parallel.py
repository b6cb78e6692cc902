"""Bounded parallel map over any ``submit`` (``Client.submit`` or ``Executor.submit``)."""

from __future__ import annotations

import itertools
import queue
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

Submit = Callable[..., Any]  # submit(fn, *args) -> a future with .result() and callbacks


def bounded_map(
    submit: Submit,
    fn: Callable[..., Any],
    arg_tuples: Iterable[tuple[Any, ...]],
    window: int,
    *,
    ordered: bool,
) -> Iterator[Any]:
    """Yield ``fn(*args)`` for every args tuple, with at most ``window`` submitted at a time.

    ``ordered``: results in submission order; otherwise as they finish. Closing the iterator
    early (or an error) cancels what is still pending.
    """
    pending_args = iter(arg_tuples)
    window = max(1, window)
    in_flight: deque[Any] = deque()
    finished: queue.SimpleQueue = queue.SimpleQueue()

    def submit_next(n: int) -> None:
        for args in itertools.islice(pending_args, n):
            future = submit(fn, *args)
            if not ordered:
                future.add_done_callback(finished.put)
            in_flight.append(future)

    try:
        submit_next(window)
        while in_flight:
            if ordered:
                future = in_flight.popleft()
            else:
                future = finished.get()
                in_flight.remove(future)
            result = future.result()
            submit_next(1)
            yield result
    finally:
        for future in in_flight:
            future.cancel()

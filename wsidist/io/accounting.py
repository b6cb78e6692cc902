"""Bytes and requests a slide task moves from its sources (egress accounting).

A :class:`ReadMeter` counts bytes and requests; :func:`metering` makes one the current meter of
the calling context for the length of a ``with`` block (``runtime.tasks.run_slide_task`` wraps
each slide's work in one). Readers opened inside that block (range reads of a remote slide, a
staging download) add to it, also from the threads they start. The current meter is held in a
:class:`contextvars.ContextVar`, so concurrent tasks in one process (Dask worker threads) each
count their own slide.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["ReadMeter", "current_meter", "metering"]


@dataclass
class ReadMeter:
    """Thread-safe totals of bytes received and requests sent."""

    bytes_read: int = 0
    read_requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    parent: ReadMeter | None = field(default=None, repr=False, compare=False)

    def add(self, nbytes: int, requests: int = 1) -> None:
        with self._lock:
            self.bytes_read += int(nbytes)
            self.read_requests += int(requests)
        if self.parent is not None:
            self.parent.add(nbytes, requests)

    def child(self) -> ReadMeter:
        """A meter of its own (one open slide) that also adds to this one."""
        return ReadMeter(parent=self)

    def as_row(self) -> dict[str, int]:
        return {"bytes_read": self.bytes_read, "read_requests": self.read_requests}


_CURRENT: contextvars.ContextVar[ReadMeter | None] = contextvars.ContextVar(
    "wsidist_read_meter", default=None
)


def current_meter() -> ReadMeter | None:
    """The meter of the enclosing :func:`metering` block, or None."""
    return _CURRENT.get()


@contextlib.contextmanager
def metering() -> Iterator[ReadMeter]:
    """Count the reads of everything opened inside the block in a fresh meter."""
    meter = ReadMeter()
    token = _CURRENT.set(meter)
    try:
        yield meter
    finally:
        _CURRENT.reset(token)

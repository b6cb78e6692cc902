"""Bytes and requests a slide task moves from its sources (egress accounting).

A :class:`ReadMeter` counts bytes and requests; :func:`metering` makes one the current meter of
the calling context for the length of a ``with`` block (``runtime.tasks.run_slide_task`` wraps
each slide's work in one). Every read a reader does (a range request of a remote slide, a
staging download) is added to the reader's own meter and to the current meter of the context
that asked for it, wherever the slide was opened (a slide shared by the tasks of a process is
charged to the task that reads). The current meter is held in a
:class:`contextvars.ContextVar`, so concurrent tasks in one process each count their own.

A meter also remembers the remote objects' HEADs (``info``) taken in its block
(:meth:`ReadMeter.remember_info`), so a slide task's version check and its opening of the
slide share one HEAD; reads are pinned to that ETag (If-Match), so a change after it is seen.
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
    _outer: ReadMeter | None = field(default=None, repr=False, compare=False)
    _infos: dict[str, dict] = field(default_factory=dict, repr=False, compare=False)

    def add(self, nbytes: int, requests: int = 1) -> None:
        """Count a read here and in the current context's meter (when that is another)."""
        self._count(nbytes, requests)
        context = _CURRENT.get()
        if context is not None and context is not self:
            context._count(nbytes, requests)

    def _count(self, nbytes: int, requests: int) -> None:
        with self._lock:
            self.bytes_read += int(nbytes)
            self.read_requests += int(requests)
        if self._outer is not None:  # a metering block inside another counts in both
            self._outer._count(nbytes, requests)

    def remember_info(self, url: str, info: dict) -> None:
        """Keep ``url``'s HEAD for the rest of this block."""
        with self._lock:
            self._infos[url] = dict(info)

    def recall_info(self, url: str) -> dict | None:
        """The HEAD of ``url`` taken in this block, or None."""
        with self._lock:
            info = self._infos.get(url)
        return None if info is None else dict(info)

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
    """Count the reads done inside the block in a fresh meter (and in any enclosing one)."""
    meter = ReadMeter(_outer=_CURRENT.get())
    token = _CURRENT.set(meter)
    try:
        yield meter
    finally:
        _CURRENT.reset(token)

"""Open slides shared by the tasks of one process: a few at a time, closed on eviction.

Stage-2 block tasks each read one block of a slide. A pickled :class:`~wsidist.io.slide.Slide`
reopens the slide wherever it is unpickled (the scheduler included) and opening one costs
15-20 ms. Block tasks carry a :class:`~wsidist.io.slide.SlideRef` instead and borrow the
process's open slide with :meth:`SlideCache.lease`: it is opened once, kept while in use, and
the least recently used idle slides beyond ``max_open`` are closed, so a worker's descriptors
stay flat however many slides it sees.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from wsidist.io.slide import Slide, SlideRef

DEFAULT_MAX_OPEN = 4  # slides kept open per process (each: a few descriptors, its tile caches)


@dataclass
class _Entry:
    slide: Slide
    users: int = 0


class SlideCache:
    """At most ``max_open`` idle open slides by :class:`SlideRef` (more only while in use)."""

    def __init__(self, max_open: int = DEFAULT_MAX_OPEN) -> None:
        if max_open < 1:
            raise ValueError(f"max_open must be ≥ 1, got {max_open}")
        self.max_open = max_open
        self._entries: OrderedDict[SlideRef, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def lease(self, ref: SlideRef) -> Iterator[Slide]:
        """The open slide of ``ref`` (opened on first use), not closed while leased."""
        entry = self._take(ref)
        if entry is None:
            opened = ref.open()
            with self._lock:
                entry = self._entries.get(ref)
                if entry is None:  # no other thread opened it meanwhile
                    entry = self._entries[ref] = _Entry(opened)
                    opened = None
                entry.users += 1
            if opened is not None:
                opened.close()
        try:
            yield entry.slide
        finally:
            with self._lock:
                entry.users -= 1
                idle = self._evict()
            for slide in idle:
                slide.close()

    def _take(self, ref: SlideRef) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(ref)
            if entry is not None:
                self._entries.move_to_end(ref)
                entry.users += 1
            return entry

    def _evict(self) -> list[Slide]:
        """Idle slides beyond ``max_open``, least recently used first (removed, to close), and
        every idle staged slide but the latest: an open staged slide pins its entry in the
        bounded staging cache, so idle processes must not hold room other slides need."""
        idle = [ref for ref, e in self._entries.items() if e.users == 0]
        excess = len(self._entries) - self.max_open
        out = idle[: max(0, excess)]
        pinned = [r for r in idle[len(out) :] if self._entries[r].slide.staged.pinned]
        return [self._entries.pop(ref).slide for ref in out + pinned[:-1]]

    def __len__(self) -> int:
        return len(self._entries)

    def close(self) -> None:
        """Close every idle slide (leased ones close when their lease ends)."""
        with self._lock:
            idle = [ref for ref, e in self._entries.items() if e.users == 0]
            slides = [self._entries.pop(ref).slide for ref in idle]
        for slide in slides:
            slide.close()


@functools.cache
def process_slide_cache() -> SlideCache:
    """This process's :class:`SlideCache` (one per worker process, made on first use)."""
    return SlideCache()

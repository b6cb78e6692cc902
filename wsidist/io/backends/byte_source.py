"""What a backend reads a slide file through when it is not a local path."""

from __future__ import annotations

from typing import Protocol


class ByteSource(Protocol):
    """A slide file read by ranges (:class:`wsidist.io.ranged.RangeReader`): a seekable binary
    file object for tifffile, plus ``pread`` and a ``prefetch`` of many ``(offset, count)``."""

    size: int

    def pread(self, count: int, offset: int) -> bytes: ...

    def prefetch(self, ranges: list[tuple[int, int]]) -> None: ...

    def seek(self, offset: int, whence: int = 0) -> int: ...

    def read(self, size: int = -1) -> bytes: ...

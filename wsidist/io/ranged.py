"""A remote object read by byte ranges: a seekable file-like object with a small span cache.

:class:`RangeReader` serves ``read``/``readinto`` (for tifffile parsing a TIFF directory) and
``pread`` (for tile decoders) from an in-memory LRU cache of byte spans. A miss fetches the
bytes asked for and at least ``block_bytes`` from there on (an IFD is followed by its tag
values, so one request usually covers a page's directory). :meth:`RangeReader.prefetch` takes the exact byte ranges of the
tiles a read needs, coalesces adjacent ones (gaps up to ``gap_bytes``) into requests of at most
``max_request_bytes`` and fetches the missing ones concurrently (``fs.cat_ranges``, at most
``max_concurrency`` in flight per slide), so a read moves the tiles' bytes and little else.
Every request and byte received is counted in the reader's :class:`ReadMeter`.

The object is pinned at open: its size and ETag are taken once. On S3 (s3fs) every range GET
carries ``If-Match: <ETag>``, so an object replaced mid-read (even by one of the same size)
fails the read; elsewhere a short read is the only sign. Either way, and when the object
disappears, a read raises :class:`SlideError` saying so.
"""

from __future__ import annotations

import asyncio
import bisect
import io
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import fsspec
import fsspec.asyn

from wsidist.errors import SlideError
from wsidist.io.accounting import ReadMeter

__all__ = ["RangeReader", "RangeSpec", "coalesce"]

DEFAULT_BLOCK_BYTES = 4 * 2**10  # read-ahead of a directory read (an IFD and its values)
DEFAULT_SPAN_CACHE_BYTES = 32 * 2**20
DEFAULT_GAP_BYTES = 0
DEFAULT_MAX_REQUEST_BYTES = 8 * 2**20
DEFAULT_MAX_CONCURRENCY = 8


@dataclass(frozen=True)
class RangeSpec:
    """How a slide is read by ranges (a job's ``--range-*`` options; picklable): at most
    ``max_concurrency`` requests in flight per open slide, coalesced requests of at most
    ``max_request_bytes``, and a span cache of ``cache_bytes`` per open slide (at least one
    request). Checked when built: a ValueError names the bad value."""

    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    cache_bytes: int = DEFAULT_SPAN_CACHE_BYTES

    def __post_init__(self) -> None:
        if not 1 <= self.max_concurrency <= 256:
            raise ValueError(f"range concurrency must be in 1..256, got {self.max_concurrency}")
        if self.max_request_bytes < 2**16:
            raise ValueError(f"range request cap must be >= 64 KiB, got {self.max_request_bytes}")
        if self.cache_bytes < self.max_request_bytes:
            raise ValueError(
                f"range cache ({self.cache_bytes} bytes) must hold one request "
                f"({self.max_request_bytes} bytes)"
            )


def coalesce(
    ranges: Iterable[tuple[int, int]],
    gap_bytes: int = 0,
    max_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
) -> list[tuple[int, int]]:
    """Merge ``(start, end)`` ranges that overlap or lie within ``gap_bytes``, as ``(start, end)``
    requests of at most ``max_bytes`` each (a single longer range stays whole)."""
    merged: list[list[int]] = []
    for start, end in sorted((int(s), int(e)) for s, e in ranges if e > s):
        if merged and start <= merged[-1][1] + gap_bytes and end - merged[-1][0] <= max_bytes:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


def _precondition_failed(exc: BaseException) -> bool:
    """Whether ``exc`` is S3's 412 for an If-Match that no longer holds."""
    cause = getattr(exc, "__cause__", None)
    code = str(getattr(cause, "response", {}).get("Error", {}).get("Code", ""))
    return code in ("PreconditionFailed", "412") or "pre-condition" in str(exc).lower()


class RangeReader(io.RawIOBase):
    """Read-only, seekable view of ``path`` on ``fs`` (``size`` bytes) through range requests."""

    def __init__(
        self,
        fs: fsspec.AbstractFileSystem,
        path: str,
        size: int,
        *,
        url: str,
        meter: ReadMeter,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
        cache_bytes: int = DEFAULT_SPAN_CACHE_BYTES,
        gap_bytes: int = DEFAULT_GAP_BYTES,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        etag: str | None = None,
    ) -> None:
        super().__init__()
        self.etag = etag
        self.fs, self.rpath, self.size, self.url = fs, path, int(size), url
        self.name = path
        self.meter = meter
        self.block_bytes = block_bytes
        self.cache_bytes = cache_bytes
        self.gap_bytes = gap_bytes
        self.max_request_bytes = max_request_bytes
        self.max_concurrency = max_concurrency
        self._pos = 0
        self._starts: list[int] = []  # sorted span starts
        self._spans: OrderedDict[int, bytes] = OrderedDict()  # start → bytes, LRU order
        self._cached = 0
        self._lock = threading.RLock()
        self.fetched: list[tuple[int, int]] = []  # every (start, end) received, in order

    @classmethod
    def pinned(
        cls,
        fs: fsspec.AbstractFileSystem,
        path: str,
        info: dict,
        ranges: RangeSpec,
        *,
        url: str,
        meter: ReadMeter,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
    ) -> RangeReader:
        """The reader of an object as its HEAD ``info`` pinned it (size; ETag, so every range GET
        carries If-Match) and as a job's :class:`RangeSpec` says: how every remote slide file,
        TIFF or DICOM, is read."""
        return cls(
            fs, path, int(info.get("size") or 0), url=url, meter=meter, block_bytes=block_bytes,
            etag=info.get("ETag") or info.get("etag"), cache_bytes=ranges.cache_bytes,
            max_request_bytes=ranges.max_request_bytes, max_concurrency=ranges.max_concurrency,
        )  # fmt: skip

    # -- span cache ---------------------------------------------------------------------------
    def _find(self, start: int, end: int) -> bytes | None:
        with self._lock:
            i = bisect.bisect_right(self._starts, start) - 1
            if i < 0:
                return None
            s = self._starts[i]
            data = self._spans[s]
            if s + len(data) >= end:
                self._spans.move_to_end(s)
                return data[start - s : end - s]
            if s + len(data) <= start:
                return None
            parts, reached = [data[start - s :]], s + len(data)
            for nxt in self._starts[i + 1 :]:  # spans that continue it without a gap
                if nxt > reached or reached >= end:
                    break
                more = self._spans[nxt]
                parts.append(more[reached - nxt :])
                reached = max(reached, nxt + len(more))
            if reached < end:
                return None
            return b"".join(parts)[: end - start]

    def _missing(self, ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
        return [(s, e) for s, e in ranges if self._find(s, e) is None]

    def _store(self, start: int, data: bytes) -> None:
        with self._lock:
            if start in self._spans:
                if len(self._spans[start]) >= len(data):
                    return
                self._cached -= len(self._spans.pop(start))
                self._starts.remove(start)
            self._spans[start] = data
            bisect.insort(self._starts, start)
            self._cached += len(data)
            while len(self._spans) > 1 and self._cached > self.cache_bytes:
                old, dropped = self._spans.popitem(last=False)
                self._starts.remove(old)
                self._cached -= len(dropped)

    # -- fetching -----------------------------------------------------------------------------
    def _fetch(self, requests: list[tuple[int, int]]) -> None:
        for i in range(0, len(requests), self.max_concurrency):
            batch = requests[i : i + self.max_concurrency]
            n = len(batch)
            try:
                if self.etag and hasattr(self.fs, "_call_s3"):
                    blobs = fsspec.asyn.sync(self.fs.loop, self._get_if_match, batch)
                elif n == 1:
                    blobs = [self.fs.cat_file(self.rpath, start=batch[0][0], end=batch[0][1])]
                else:
                    blobs = self.fs.cat_ranges(
                        [self.rpath] * n, [s for s, _ in batch], [e for _, e in batch],
                        on_error="return", batch_size=self.max_concurrency,
                    )  # fmt: skip
            except FileNotFoundError as exc:
                raise self._gone(exc) from exc
            for (start, end), blob in zip(batch, blobs, strict=True):
                if isinstance(blob, FileNotFoundError):
                    raise self._gone(blob) from blob
                if isinstance(blob, BaseException) and _precondition_failed(blob):
                    raise SlideError(
                        f"{self.url}: the object changed while it was being read (its ETag is "
                        f"no longer {self.etag}); run it again to read the new one"
                    ) from blob
                if isinstance(blob, BaseException):
                    raise SlideError(f"{self.url}: reading bytes {start}–{end} failed: {blob}")
                self.meter.add(len(blob))
                if len(blob) != end - start:
                    raise SlideError(
                        f"{self.url}: short read of bytes {start}–{end} ({len(blob)} received): "
                        "the object changed while it was being read"
                    )
                self.fetched.append((start, end))
                self._store(start, bytes(blob))

    async def _get_if_match(self, batch: list[tuple[int, int]]) -> list[bytes | BaseException]:
        """The ranges of ``batch`` by concurrent S3 GETs conditional on the pinned ETag."""
        bucket, key, _ = self.fs.split_path(self.rpath)

        async def one(start: int, end: int) -> bytes:
            resp = await self.fs._call_s3(
                "get_object", Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}",
                IfMatch=self.etag,
            )  # fmt: skip
            try:
                return await resp["Body"].read()
            finally:
                resp["Body"].close()

        return await asyncio.gather(*(one(s, e) for s, e in batch), return_exceptions=True)

    def _gone(self, exc: BaseException) -> SlideError:
        return SlideError(f"{self.url}: the object was deleted while it was being read ({exc})")

    def prefetch(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Make the ``(offset, count)`` ranges cached: missing ones fetched, adjacent merged."""
        wanted = [(int(o), int(o) + int(c)) for o, c in ranges if int(c) > 0]
        missing, budget = [], self.cache_bytes // 2  # never more than the cache keeps
        for s, e in self._missing(wanted):
            budget -= e - s
            if budget < 0 and missing:
                break  # the rest is fetched when it is read
            missing.append((s, e))
        if missing:
            self._fetch(coalesce(missing, self.gap_bytes, self.max_request_bytes))

    def pread(self, count: int, offset: int) -> bytes:
        """``count`` bytes at ``offset`` (fewer at the end of the object)."""
        start, end = int(offset), min(int(offset) + int(count), self.size)
        if end <= start:
            return b""
        data = self._find(start, end)
        if data is None:
            self._fetch([(start, min(max(end, start + self.block_bytes), self.size))])
            data = self._find(start, end)
            if data is None:  # the span was larger than the cache: fetch it exactly
                self._fetch([(start, end)])
                data = self._find(start, end) or b""
        return data

    # -- file-like ----------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + int(offset))
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self.pread(len(view), self._pos)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self.size - self._pos
        data = self.pread(size, self._pos)
        self._pos += len(data)
        return data

    def close(self) -> None:
        with self._lock:
            self._spans.clear()
            self._starts.clear()
            self._cached = 0
        super().close()

"""A tiled TIFF written head last, so it streams to an object store as its tiles are encoded.

tifffile seeks back to fill in each page's tile offsets, which an S3 multipart upload cannot
do. The TIFF format lets tiles lie anywhere, so :class:`TiffHead` puts every IFD first: it lets
tifffile write the file once with empty tiles into a :class:`SparseFile` (which keeps only
non-zero bytes), which gives the head, whose size depends only on the tile counts, and where
in it each level's tile offsets and byte counts go. :class:`TileStream` then writes tiles after
the head in the order they are encoded, and the head (with those places filled in) last,
through a head-last writer (:mod:`wsidist.io.upload`: the head is part 1 of the upload).

Memory: the head (the IFDs and the offset arrays, 12–16 bytes per tile) and the tile index.
Local scratch: none.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import tifffile

_PAGE = 4096


class SparseFile(io.RawIOBase):
    """A seekable in-memory file that stores only its non-zero bytes, in pages."""

    def __init__(self) -> None:
        super().__init__()
        self._pages: dict[int, bytearray] = {}
        self._pos = 0
        self.size = 0

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self.size}[whence]
        self._pos = base + offset
        return self._pos

    def write(self, data) -> int:  # noqa: ANN001 — bytes-like
        view = np.frombuffer(data, np.uint8) if len(memoryview(data)) else np.empty(0, np.uint8)
        n, zero = view.size, not view.any()
        pos = self._pos
        while pos < self._pos + n:
            page, at = divmod(pos, _PAGE)
            take = min(_PAGE - at, self._pos + n - pos)
            buf = self._pages.get(page)
            if buf is None and not zero:
                buf = self._pages[page] = bytearray(_PAGE)
            if buf is not None:
                buf[at : at + take] = view[pos - self._pos : pos - self._pos + take].tobytes()
            pos += take
        self._pos += n
        self.size = max(self.size, self._pos)
        return n

    def read_at(self, start: int, n: int) -> bytes:
        """``n`` bytes from ``start`` (zeros where nothing non-zero was written)."""
        out = bytearray(n)
        pos = start
        while pos < start + n:
            page, at = divmod(pos, _PAGE)
            take = min(_PAGE - at, start + n - pos)
            buf = self._pages.get(page)
            if buf is not None:
                out[pos - start : pos - start + take] = buf[at : at + take]
            pos += take
        return bytes(out)

    def readinto(self, b) -> int:  # noqa: ANN001 — a writable buffer
        n = max(0, min(len(b), self.size - self._pos))
        b[:n] = self.read_at(self._pos, n)
        self._pos += n
        return n


WriteLevels = Callable[[tifffile.TiffWriter, Callable[[int], Iterator[bytes]]], None]
_TYPES = {3: "u2", 4: "u4", 16: "u8"}  # SHORT, LONG, LONG8


class TiffHead:
    """Every IFD of the TIFF ``write_levels(tw, tiles_of)`` describes, its tiles to follow.

    ``write_levels`` calls ``tw.write(tiles_of(k), …)`` for each level ``k`` in order, with
    ``tile_counts[k]`` tiles. :attr:`size` is the head's length in bytes."""

    def __init__(self, write_levels: WriteLevels, tile_counts: list[int], *, bigtiff: bool):
        skeleton = SparseFile()
        with tifffile.TiffWriter(skeleton, bigtiff=bigtiff) as tw:
            write_levels(tw, lambda k: iter([b""] * tile_counts[k]))
        self.size = skeleton.size
        self._bytes = bytearray(skeleton.read_at(0, self.size))
        self._slots: list[tuple[int, np.dtype, int, np.dtype]] = []
        skeleton.seek(0)
        with tifffile.TiffFile(skeleton) as tif:
            order = tif.byteorder
            for page in tif.pages:
                off, cnt = page.tags["TileOffsets"], page.tags["TileByteCounts"]
                self._slots.append((
                    off.valueoffset, np.dtype(order + _TYPES[off.dtype]),
                    cnt.valueoffset, np.dtype(order + _TYPES[cnt.dtype]),
                ))  # fmt: skip
        if len(self._slots) != len(tile_counts):
            raise RuntimeError(f"{len(self._slots)} pages written, {len(tile_counts)} levels")
        self._offsets = [np.zeros(n, np.int64) for n in tile_counts]
        self._lengths = [np.full(n, -1, np.int64) for n in tile_counts]

    def place(self, level: int, index: int, offset: int, length: int) -> None:
        """Tile ``index`` (row-major) of ``level`` is at ``offset``, ``length`` bytes."""
        self._offsets[level][index] = offset
        self._lengths[level][index] = length

    def render(self, unplaced: tuple[int, int] = (0, 0)) -> bytes:
        """The head, with the tiles never placed at ``unplaced`` (offset, length)."""
        for (at_off, t_off, at_len, t_len), offs, lens in zip(
            self._slots, self._offsets, self._lengths, strict=True
        ):
            missing = lens < 0
            offs = np.where(missing, unplaced[0], offs)
            lens = np.where(missing, unplaced[1], lens)
            for at, kind, values in ((at_off, t_off, offs), (at_len, t_len, lens)):
                if values.size and int(values.max()) >= 2 ** (8 * kind.itemsize):
                    raise ValueError(f"a tile offset or length does not fit the TIFF's {kind}")
                data = values.astype(kind).tobytes()
                self._bytes[at : at + len(data)] = data
        return bytes(self._bytes)


class TileStream:
    """Tiles written after a :class:`TiffHead` as they come, then the head (``finish``).

    ``out`` is a head-last writer (:mod:`wsidist.io.upload`) opened for ``head.size`` bytes.
    Tiles never added are ``glass``: one copy written first, shared by all of them (none
    when empty)."""

    def __init__(self, head: TiffHead, out: Any, glass: bytes = b"") -> None:
        self._head, self._out, self._pos = head, out, head.size
        self._glass = (0, 0)
        if glass:
            self._glass = (self._pos, len(glass))
            self._write(glass)

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self._pos += len(data)

    def add(self, level: int, index: int, data: bytes) -> None:
        """Tile ``index`` (row-major) of ``level``; empty bytes make an empty tile."""
        self._head.place(level, index, self._pos if data else 0, len(data))
        if data:
            self._write(data)

    def finish(self) -> int:
        """Write the head; return the file's length in bytes."""
        self._out.finish(self._head.render(self._glass))
        return self._pos

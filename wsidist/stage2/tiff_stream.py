"""A tiled TIFF written front to back, so it can stream to an object store as it is produced.

tifffile seeks back to fill in each page's tile offsets and the chain of IFDs, which an S3
multipart upload cannot do. Once every tile is encoded (the :class:`Spool`), every tile's length
is known, and so is the whole file's layout. :func:`stream_tiff` therefore lets tifffile write
the file once with zero placeholder tiles of the same lengths into a :class:`SparseFile` (which
keeps only non-zero bytes: the header, the IFDs, the offset arrays), reads the tile offsets
back from that skeleton, and then writes the real file in one forward pass: skeleton bytes
between tiles, each tile's bytes from the spool. The result is byte-identical to what tifffile
writes to a seekable file, and it needs no local copy of the output.

Local scratch: the spool (the encoded tiles, about the size of the output). Memory: the
skeleton (the IFDs and the offset arrays, 16 bytes per tile in a BigTIFF) and the spool index.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

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


class Spool:
    """Encoded tiles of every level in one temporary file, indexed by (level, row, col)."""

    def __init__(self, path: Path, grids: list[tuple[int, int]]):
        self._fh = open(path, "w+b")  # noqa: SIM115 — closed by close()
        self._offsets = [np.full(g, -1, np.int64) for g in grids]
        self._lengths = [np.zeros(g, np.int64) for g in grids]

    def add(self, level: int, row: int, col: int, data: bytes) -> None:
        self._fh.seek(0, os.SEEK_END)
        self._offsets[level][row, col] = self._fh.tell()
        self._lengths[level][row, col] = len(data)
        self._fh.write(data)

    def placeholders(self, level: int, glass_len: int) -> Iterator[bytes]:
        """Zero tiles of the level's tile lengths, row-major (glass: ``glass_len``)."""
        lengths = np.where(self._offsets[level] < 0, glass_len, self._lengths[level])
        for n in lengths.ravel().tolist():
            yield bytes(n)

    def tile(self, level: int, index: int, glass_bytes: bytes) -> bytes:
        """Tile ``index`` (row-major) of ``level``; glass (never added) as ``glass_bytes``."""
        off = int(self._offsets[level].flat[index])
        if off < 0:
            return glass_bytes
        self._fh.seek(off)
        return self._fh.read(int(self._lengths[level].flat[index]))

    def close(self) -> None:
        self._fh.close()


WriteLevels = Callable[[tifffile.TiffWriter, Callable[[int], Iterator[bytes]]], None]


def stream_tiff(
    write_levels: WriteLevels, spool: Spool, glass_bytes: bytes, out: BinaryIO, *, bigtiff: bool
) -> int:
    """Write the TIFF ``write_levels(tw, tiles_of)`` describes to ``out`` front to back.

    ``write_levels`` calls ``tw.write(tiles_of(k), …)`` for each level ``k`` in order; the tiles
    come from ``spool``. Returns the bytes written."""
    skeleton = SparseFile()
    with tifffile.TiffWriter(skeleton, bigtiff=bigtiff) as tw:
        write_levels(tw, lambda k: spool.placeholders(k, len(glass_bytes)))
    pieces = []
    skeleton.seek(0)
    with tifffile.TiffFile(skeleton) as tif:
        for k, page in enumerate(tif.pages):
            counts = page.databytecounts
            pieces += [(o, n, k, i) for i, (o, n) in enumerate(zip(page.dataoffsets, counts)) if n]
    pieces.sort()
    pos = 0
    for offset, n, level, index in pieces:
        if offset > pos:
            out.write(skeleton.read_at(pos, offset - pos))
        data = spool.tile(level, index, glass_bytes)
        if len(data) != n:
            raise RuntimeError(f"tile {index} of level {level}: {len(data)} bytes, not {n}")
        out.write(data)
        pos = offset + n
    out.write(skeleton.read_at(pos, skeleton.size - pos))
    return skeleton.size

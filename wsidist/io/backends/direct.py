"""Direct-decode fast path for TIFF-family slides (Aperio SVS, generic tiled TIFF).

Regions are read by fetching the stored tiles' bytes (``os.pread`` on one file descriptor, so
reads need no lock; the descriptor is closed with the reader, or when it is collected) and decoding them with imagecodecs: ``jpeg8_decode`` (libjpeg-turbo, the
TIFF's JPEGTables merged) or ``jpeg2k_decode`` (OpenJPEG). The output is pixel-identical to
OpenSlide's ``read_region`` composited onto white, within these limits:

* vendors ``aperio`` and ``generic-tiff`` only, with OpenSlide's level list equal to the tiled
  top-level pages (checked against OpenSlide's ``level_dimensions``);
* 8-bit, 3-sample, contiguous tiles: JPEG (photometric RGB or YCbCr) or Aperio JPEG 2000 RGB
  (33005). Aperio JPEG 2000 YCbCr (33003) is not taken: OpenSlide converts those components to
  RGB with its own arithmetic after OpenJPEG, which has not been verified here;
* a ``read_region`` whose level-0 origin maps to a whole level pixel (``x / downsample`` is an
  integer in double arithmetic, as OpenSlide computes it). Otherwise OpenSlide paints the tiles
  at a sub-pixel offset through cairo (bilinear resampling), which is not reproduced:
  :meth:`DirectTiffReader.read_region` raises :class:`UnalignedRegion` and
  :class:`DirectOpenSlideBackend` falls back to OpenSlide.

:class:`DirectOpenSlideBackend` is a drop-in :class:`OpenSlideBackend` that uses the fast path
where it is exact and OpenSlide everywhere else (set ``WSIDIST_DIRECT=0`` to disable it).
"""

from __future__ import annotations

import math
import os
import weakref
from dataclasses import replace

import imagecodecs
import numpy as np
import tifffile

from wsidist.errors import UnalignedRegion, UnsupportedSlide
from wsidist.io.backends.byte_source import ByteSource
from wsidist.io.backends.openslide_backend import OpenSlideBackend
from wsidist.io.backends.tiff_pages import Level as _Level
from wsidist.io.backends.tiff_pages import make_level, page_problem, whole_factor
from wsidist.io.backends.tile_cache import DEFAULT_CACHE_BYTES, TileCache
from wsidist.io.tiff_format import (
    is_tiff_header,
)

__all__ = [
    "DirectOpenSlideBackend",
    "DirectTiffReader",
    "UnalignedRegion",
    "UnsupportedSlide",
    "supports",
]

VENDORS = ("aperio", "generic-tiff")


class Unsupported(str):
    """A falsy reason string: ``supports(path)`` is ``True`` or one of these."""

    def __bool__(self) -> bool:
        return False


def _openslide_geometry(path: str) -> tuple[str, tuple, tuple]:
    import openslide

    try:
        with openslide.OpenSlide(path) as osr:
            vendor = osr.properties.get(openslide.PROPERTY_NAME_VENDOR) or "unknown"
            return vendor, tuple(osr.level_dimensions), tuple(osr.level_downsamples)
    except openslide.OpenSlideError as exc:
        raise UnsupportedSlide(f"OpenSlide cannot open it: {exc}") from exc


class DirectTiffReader:
    """Read RGB regions of a JPEG / JPEG 2000 tiled TIFF slide by decoding its tiles directly.

    ``DirectTiffReader.open(path)`` raises :class:`UnsupportedSlide` (with the reason) when the
    slide is not eligible. Geometry comes from OpenSlide (opened briefly) unless given.
    """

    def __init__(
        self,
        path: str,
        *,
        vendor: str | None = None,
        level_dimensions: tuple | None = None,
        level_downsamples: tuple | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        source: ByteSource | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self._source = source
        try:
            if source is not None:
                magic = source.pread(4, 0)
            else:
                with open(self.path, "rb") as fh:
                    magic = fh.read(4)
        except OSError as exc:
            raise UnsupportedSlide(f"cannot read it: {exc}") from exc
        if not is_tiff_header(magic):
            raise UnsupportedSlide("not a TIFF")
        try:
            if source is not None:
                source.seek(0)
            with tifffile.TiffFile(self.path if source is None else source) as tif:
                base_problem = page_problem(tif.pages.first)
                pages = [p for p in tif.pages if p.is_tiled]
                problems = [page_problem(p) for p in pages]
                found = tuple((int(p.imagewidth), int(p.imagelength)) for p in pages)
                levels = [make_level(p, 0.0) for p in pages]
        except Exception as exc:  # noqa: BLE001 — tifffile raises many types on bad files
            raise UnsupportedSlide(f"tifffile cannot parse it: {exc}") from exc
        if base_problem:
            raise UnsupportedSlide(f"first page: {base_problem}")
        if vendor is None or level_dimensions is None or level_downsamples is None:
            vendor, level_dimensions, level_downsamples = _openslide_geometry(self.path)
        if vendor not in VENDORS:
            raise UnsupportedSlide(f"OpenSlide vendor {vendor!r} is not one of {VENDORS}")
        dims = tuple((int(w), int(h)) for w, h in level_dimensions)
        if found != dims:
            raise UnsupportedSlide(f"tiled pages {found} do not match OpenSlide's levels {dims}")
        for i, problem in enumerate(problems):
            if problem:
                raise UnsupportedSlide(f"level {i}: {problem}")
        self._levels = tuple(
            replace(lv, downsample=float(d))
            for lv, d in zip(levels, level_downsamples, strict=True)
        )
        size = os.path.getsize(self.path) if source is None else source.size
        for i, lv in enumerate(self._levels):
            if lv.offsets.size and int((lv.offsets + lv.counts).max()) > size:
                raise UnsupportedSlide(f"level {i}: tile data beyond the end of the file")
        self.vendor = vendor
        self.level_dimensions = dims
        self.level_downsamples = tuple(lv.downsample for lv in self._levels)
        self.compression = tuple(lv.codec for lv in self._levels)
        if source is None:
            self._fd = os.open(self.path, os.O_RDONLY)
            # the raw descriptor is closed by close() or, at the latest, when it is collected
            self._close_fd = weakref.finalize(self, os.close, self._fd)
        else:
            self._fd = -1
            self._close_fd = lambda: None
        self._cache = TileCache(cache_bytes)

    @classmethod
    def open(cls, path: str, **kwargs) -> DirectTiffReader:
        return cls(path, **kwargs)

    # -- tiles --------------------------------------------------------------------------------
    def _decode_tile(self, lv: _Level, index: int) -> np.ndarray | None:
        count = int(lv.counts[index])
        if count == 0:
            return None  # missing tile: OpenSlide leaves it transparent → white
        offset = int(lv.offsets[index])
        if self._source is not None:
            data = self._source.pread(count, offset)
        else:
            data = os.pread(self._fd, count, offset)
        if len(data) != count:
            raise OSError(f"{self.path}: short read of tile {index}")
        if lv.codec == "jpeg":
            return imagecodecs.jpeg8_decode(
                data, tables=lv.tables, colorspace=lv.colorspace, outcolorspace="RGB"
            )
        return imagecodecs.jpeg2k_decode(data)

    def _tile(self, level: int, index: int) -> np.ndarray | None:
        key = (level, index)
        found = self._cache.lookup([key])
        if key in found:
            return found[key]
        arr = self._decode_tile(self._levels[level], index)
        self._cache.store({key: arr})
        return arr

    def tile_indices(self, level: int, x: int, y: int, w: int, h: int) -> list[int]:
        """Indices of the stored tiles that the level region (x, y, w, h) touches."""
        lv = self._levels[level]
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, lv.width), min(y + h, lv.height)
        if x1 <= x0 or y1 <= y0:
            return []
        return [
            r * lv.across + c
            for r in range(y0 // lv.tile_h, (y1 - 1) // lv.tile_h + 1)
            for c in range(x0 // lv.tile_w, (x1 - 1) // lv.tile_w + 1)
        ]

    def level_factor(self, level: int) -> int | None:
        """The whole factor by which ``level`` reduces level 0 (:func:`whole_factor`), or None."""
        lv = self._levels[level]
        return whole_factor(self.level_dimensions[0], (lv.width, lv.height), lv.downsample)

    def tile_px(self, level: int) -> int | None:
        """The side of ``level``'s stored tiles, or None when they are not square."""
        lv = self._levels[level]
        return lv.tile_w if lv.tile_w == lv.tile_h else None

    def tile_ranges(self, level: int, indices: list[int]) -> list[tuple[int, int]]:
        """The ``(offset, count)`` of the stored tiles ``indices`` of ``level``."""
        lv = self._levels[level]
        return [(int(lv.offsets[i]), int(lv.counts[i])) for i in indices]

    def prefetch(self, level: int, indices: list[int]) -> None:
        """Fetch the bytes of the tiles not decoded yet in one go (a ranged source only)."""
        cached = self._cache.lookup((level, i) for i in indices)
        todo = [i for i in indices if (level, i) not in cached]
        if todo and self._source is not None:
            self._source.prefetch(self.tile_ranges(level, todo))

    def prefetch_regions(self, level: int, regions: list[tuple[int, int, int, int]]) -> None:
        """Fetch at once the tiles that ``read_region`` of each (x, y level 0, w, h) needs."""
        ds = self._levels[level].downsample
        indices: dict[int, None] = {}
        for x, y, w, h in regions:
            origin = self.level_origin(x, y, level)
            if origin is not None:  # decoded here: exactly its tiles
                found = self.tile_indices(level, origin[0], origin[1], w, h)
            else:  # OpenSlide paints it at a sub-pixel offset: a margin for its resampling
                lx, ly = math.floor(x / ds) - 2, math.floor(y / ds) - 2
                found = self.tile_indices(level, lx, ly, w + 5, h + 5)
            indices.update(dict.fromkeys(found))
        self.prefetch(level, list(indices))

    # -- regions ------------------------------------------------------------------------------
    def read_level(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """uint8 (h, w, 3) of ``level`` pixels [x, x+w) × [y, y+h); outside the level is white."""
        lv = self._levels[level]
        out = np.full((h, w, 3), 255, np.uint8)
        indices = self.tile_indices(level, x, y, w, h)
        if self._source is not None:
            self.prefetch(level, indices)
        for index in indices:
            tile = self._tile(level, index)
            if tile is None:
                continue
            r, c = divmod(index, lv.across)
            tx, ty = c * lv.tile_w, r * lv.tile_h
            # the stored tile is clipped to the level (edge tiles carry padding)
            ix0, iy0 = max(x, tx), max(y, ty)
            ix1 = min(x + w, tx + min(lv.tile_w, tile.shape[1]), lv.width)
            iy1 = min(y + h, ty + min(lv.tile_h, tile.shape[0]), lv.height)
            if ix1 > ix0 and iy1 > iy0:
                out[iy0 - y : iy1 - y, ix0 - x : ix1 - x] = tile[
                    iy0 - ty : iy1 - ty, ix0 - tx : ix1 - tx, :3
                ]
        return out

    def level_origin(self, x: int, y: int, level: int) -> tuple[int, int] | None:
        """The level pixel OpenSlide starts at for level-0 (x, y), or None if it is sub-pixel."""
        ds = self._levels[level].downsample
        lx, ly = x / ds, y / ds  # double division, exactly as OpenSlide does it
        if lx.is_integer() and ly.is_integer():
            return int(lx), int(ly)
        return None

    def read_region(self, x: int, y: int, level: int, size: tuple[int, int]) -> np.ndarray:
        """Like OpenSlide's ``read_region`` on white: (x, y) level-0 px, size in level px.

        Raises :class:`UnalignedRegion` when (x, y) maps to a sub-pixel level position.
        """
        origin = self.level_origin(int(x), int(y), level)
        if origin is None:
            ds = self._levels[level].downsample
            raise UnalignedRegion(
                f"({x}, {y}) / downsample {ds!r} is not a whole pixel of level {level}"
            )
        return self.read_level(level, origin[0], origin[1], int(size[0]), int(size[1]))

    def close(self) -> None:
        self._fd = -1
        self._close_fd()
        self._cache.clear()

    def __enter__(self) -> DirectTiffReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def supports(path: str) -> bool | Unsupported:
    """``True`` if ``path`` can take the fast path, else a falsy :class:`Unsupported` reason."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return Unsupported("a directory (DICOM series), not a TIFF file")
    try:
        DirectTiffReader(path).close()
    except UnsupportedSlide as exc:
        return Unsupported(str(exc))
    return True


class DirectOpenSlideBackend(OpenSlideBackend):
    """:class:`OpenSlideBackend` that reads through :class:`DirectTiffReader` where exact.

    ``fast_path`` is the reader or None; ``fast_path_reason`` says why it is off.
    """

    def __init__(self, path: str, source: ByteSource | None = None) -> None:
        super().__init__(path)
        self.fast_path: DirectTiffReader | None = None
        self.fast_path_reason = "disabled by WSIDIST_DIRECT=0"
        if os.environ.get("WSIDIST_DIRECT", "1") == "0":
            return
        try:
            self.fast_path = DirectTiffReader(
                path,
                vendor=self.vendor,
                level_dimensions=self.level_dimensions,
                level_downsamples=self.level_downsamples,
                source=source,
            )
            self.fast_path_reason = ""
        except UnsupportedSlide as exc:
            self.fast_path_reason = str(exc)

    def read_region(self, x: int, y: int, level: int, size: tuple[int, int]) -> np.ndarray:
        fast = self.fast_path
        if fast is not None:
            origin = fast.level_origin(x, y, level)
            if origin is not None:
                return fast.read_level(level, origin[0], origin[1], size[0], size[1])
        return super().read_region(x, y, level, size)

    def read_level(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        if self.fast_path is None:  # OpenSlide resamples origins that fall between level px
            return super().read_level(level, x, y, w, h)
        return self.fast_path.read_level(level, x, y, w, h)  # the level's own pixels

    def level_factor(self, level: int) -> int | None:
        """:meth:`DirectTiffReader.level_factor` when the fast path reads the slide, else None."""
        return None if self.fast_path is None else self.fast_path.level_factor(level)

    def tile_px(self, level: int) -> int | None:
        """The side of ``level``'s square stored tiles when they are decoded here, else None."""
        return None if self.fast_path is None else self.fast_path.tile_px(level)

    def prefetch_regions(self, level: int, regions: list[tuple[int, int, int, int]]) -> None:
        if self.fast_path is not None:
            self.fast_path.prefetch_regions(level, regions)

    def close(self) -> None:
        if self.fast_path is not None:
            self.fast_path.close()
        super().close()

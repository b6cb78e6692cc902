"""tifffile backend: plain and pyramidal TIFFs that OpenSlide does not open.

Levels come from the first series' pyramid (``tif.series[0].levels``: SubIFDs, SVS, OME, …) or,
when that has one tiled level, from the following top-level tiled pages of decreasing size.
A read decodes only the tiles or strips it touches: the raw bytes are fetched with
``FileHandle.read_segments`` and decoded one by one with ``TiffPage.decode`` (which handles JPEG
tables, predictors and every codec imagecodecs has). Decoded segments are kept in a small LRU
cache so neighbouring reads (thumbnail blocks, tile grids) do not decode a tile twice.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import tifffile

from wsidist.errors import SlideError
from wsidist.io.backends.byte_source import ByteSource
from wsidist.io.backends.tile_cache import TileCache
from wsidist.io.tiff_format import (
    PHOTOMETRIC,
    as_page,
    decode_transcoded_tile,
    is_tiff_header,
    level_pages,
    pixel_problem,
    transcode_meta,
    wsidist_meta,
)

_TEXT_TAGS = ("ImageDescription", "Make", "Model", "Software", "DateTime", "Artist", "HostComputer")
_UM_PER_UNIT = {2: 25_400.0, 3: 10_000.0, 4: 1_000.0, 5: 1.0}  # inch, cm, mm, µm
_PHOTO = PHOTOMETRIC


class _Capture(logging.Handler):
    """Collect tifffile's log records of the current thread (it logs, not raises, on bad IFDs)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread:
            return
        msg = record.getMessage()
        if record.levelno >= logging.ERROR or "invalid offset to first page" in msg:
            self.messages.append(msg.split("> ", 1)[-1])


def can_open(path: str) -> bool:
    """Cheap check: a TIFF or BigTIFF header. The constructor does the real validation."""
    try:
        with open(path, "rb") as fh:
            return is_tiff_header(fh.read(4))
    except OSError:
        return False


@dataclass(frozen=True)
class _Level:
    page: tifffile.TiffPage
    width: int
    height: int
    seg_w: int  # tile width, or the page width for strips
    seg_h: int  # tile height, or rows per strip
    across: int
    down: int
    samples: int
    separate: bool  # PlanarConfiguration 2: one plane of segments per sample


def _make_level(page: tifffile.TiffPage) -> _Level:
    w, h = int(page.imagewidth), int(page.imagelength)
    if page.is_tiled:
        sw, sh = int(page.tilewidth), int(page.tilelength)
    else:
        sw, sh = w, max(1, min(int(page.rowsperstrip or h), h))
    return _Level(
        page,
        w,
        h,
        sw,
        sh,
        math.ceil(w / sw),
        math.ceil(h / sh),
        int(page.samplesperpixel),
        page.planarconfig == 2 and page.samplesperpixel > 1,
    )


def _to_rgb(arr: np.ndarray, photometric) -> np.ndarray:
    if arr.ndim == 2:
        arr = arr[..., None]
    if photometric == _PHOTO.MINISWHITE:
        arr = 255 - arr
    if arr.shape[-1] < 3:
        return np.repeat(arr[..., :1], 3, axis=-1)
    return np.ascontiguousarray(arr[..., :3])


def _aperio_fields(description: str) -> dict[str, str]:
    if not description.startswith("Aperio"):
        return {}
    fields = {}
    for part in description.split("|")[1:]:
        key, sep, value = part.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def _positive(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


class TiffBackend:
    name = "tifffile"
    vendor = "tiff"

    def __init__(self, path: str, source: ByteSource | None = None) -> None:
        self.path = path
        self._source = source
        size = os.path.getsize(path) if source is None else source.size
        capture = _Capture()
        log = logging.getLogger("tifffile")
        log.addHandler(capture)
        try:
            if source is not None:
                source.seek(0)
            self._tif = tifffile.TiffFile(path if source is None else source)
            len(self._tif.pages)  # walk the whole IFD chain now, while logs are captured
            self._tif.series  # noqa: B018
        except Exception as exc:  # noqa: BLE001 — TiffFileError, OSError, ValueError, …
            raise SlideError(f"{path}: corrupt or truncated TIFF ({size} bytes): {exc}") from exc
        finally:
            log.removeHandler(capture)
        try:
            if capture.messages:
                msgs = "; ".join(dict.fromkeys(capture.messages))
                raise SlideError(f"{path}: corrupt or truncated TIFF ({size} bytes): {msgs}")
            self._setup()
        except SlideError:
            self._tif.close()
            raise
        except Exception as exc:  # noqa: BLE001
            self._tif.close()
            raise SlideError(f"{path}: cannot read TIFF structure: {exc}") from exc
        self._tif.filehandle.set_lock(True)  # threads share this handle (seek + read)
        self._cache = TileCache()

    def _setup(self) -> None:
        tif, path = self._tif, self.path
        if not tif.series:
            raise SlideError(f"{path}: TIFF holds no images")
        pages = level_pages(tif)
        problem = pixel_problem(pages[0])
        if problem:
            raise SlideError(f"unsupported format: {path}: {problem}")
        size = tif.filehandle.size
        for i, page in enumerate(pages):
            ends = np.add(page.dataoffsets, page.databytecounts, dtype=np.int64)
            if ends.size and int(ends.max()) > size:
                raise SlideError(
                    f"{path}: truncated file: level {i} image data ends at byte {int(ends.max())} "
                    f"but the file has {size} bytes"
                )
        self._levels = tuple(_make_level(p) for p in pages)
        w0, h0 = self._levels[0].width, self._levels[0].height
        self.level_dimensions = tuple((lv.width, lv.height) for lv in self._levels)
        self.level_downsamples = tuple((w0 / lv.width + h0 / lv.height) / 2 for lv in self._levels)
        base = pages[0]
        props = {
            f"tiff.{name}": str(base.tags[name].value) for name in _TEXT_TAGS if name in base.tags
        }
        aperio = _aperio_fields(str(base.description or ""))
        props.update({f"aperio.{k}": v for k, v in aperio.items()})
        ours = wsidist_meta(str(base.description or ""))
        transcode = transcode_meta(str(base.description or ""))
        self._transcoded = transcode is not None  # tiles: JPEG-XL recompressed JPEG streams
        self._jpeg_colorspace = transcode.get("jpeg_colorspace") if transcode else None
        props["tifffile.series"] = tif.series[0].name or ""
        props["tifffile.compression"] = base.compression.name.lower()
        self.properties = MappingProxyType(props)
        self.mpp_x, self.mpp_y = self._mpp(base, aperio)
        self.objective_power = _positive(aperio.get("AppMag"))
        if ours:
            self.objective_power = self.objective_power or _positive(ours.get("objective_power"))
            if self.mpp_x is None and self.mpp_y is None and _positive(ours.get("mpp")):
                self.mpp_x = self.mpp_y = _positive(ours.get("mpp"))
        self.tile_size = (int(base.tilewidth), int(base.tilelength)) if base.is_tiled else None
        self.compression = base.compression.name.lower()
        self._associated = {}
        for i, series in enumerate(tif.series[1:], start=1):
            page = as_page(series.pages[0])
            if series.name and not pixel_problem(page):
                self._associated.setdefault(series.name.lower(), i)
        self.associated_images = tuple(sorted(self._associated))

    def _mpp(
        self, page: tifffile.TiffPage, aperio: dict[str, str]
    ) -> tuple[float | None, float | None]:
        mpp = _positive(aperio.get("MPP"))
        if mpp:
            return mpp, mpp
        unit = page.tags["ResolutionUnit"].value if "ResolutionUnit" in page.tags else 2
        ij = self._tif.imagej_metadata or {}
        if int(unit) == 1 and str(ij.get("unit", "")).lower() in ("micron", "µm", "um", "\\u00B5m"):
            unit = 5
        um = _UM_PER_UNIT.get(int(unit))
        result = []
        for tag in ("XResolution", "YResolution"):
            res = page.tags[tag].value if tag in page.tags else None
            px_per_unit = _positive(res[0] / res[1]) if isinstance(res, tuple) and res[1] else None
            value = um / px_per_unit if um and px_per_unit else None
            # < 254 dpi (mpp > 100 µm) is a screen default (72/96 dpi), not a microscope.
            result.append(value if value is not None and value <= 100 else None)
        return result[0], result[1]

    # -- pixels ---------------------------------------------------------------------------------

    def _decode(self, level: int, indices: list[int]) -> dict[int, np.ndarray | None]:
        lv = self._levels[level]
        page = lv.page
        cached = self._cache.lookup((level, i) for i in indices)
        found: dict[int, np.ndarray | None] = {
            i: cached[(level, i)] for i in indices if (level, i) in cached
        }
        missing = [i for i in indices if i not in found]
        if not missing:
            return found
        fh = self._tif.filehandle
        kind = "tile" if page.is_tiled else "strip"
        try:
            if self._source is not None:  # one batch of coalesced, concurrent range requests
                self._source.prefetch(
                    [(int(page.dataoffsets[i]), int(page.databytecounts[i])) for i in missing]
                )
            segments = fh.read_segments(
                [page.dataoffsets[i] for i in missing],
                [page.databytecounts[i] for i in missing],
                indices=missing,
                lock=fh.lock,
                sort=True,
                flat=True,
            )
            for data, i in segments:
                if self._transcoded:
                    found[i] = decode_transcoded_tile(data, self._jpeg_colorspace)
                    continue
                arr, _, _ = page.decode(
                    data, i, jpegtables=page.jpegtables, jpegheader=page.jpegheader
                )
                found[i] = None if arr is None else arr[0]
        except Exception as exc:  # noqa: BLE001 — codec errors have many types
            raise SlideError(
                f"{self.path}: decoding a {kind} of level {level} failed: {exc}"
            ) from exc
        self._cache.store({(level, i): found[i] for i in missing})
        return found

    def _wanted(self, level: int, x: int, y: int, w: int, h: int) -> list[tuple[int, int, int]]:
        """(plane, row, col) of the segments the level region touches."""
        lv = self._levels[level]
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, lv.width), min(y + h, lv.height)
        if x1 <= x0 or y1 <= y0:
            return []
        rows = range(y0 // lv.seg_h, (y1 - 1) // lv.seg_h + 1)
        cols = range(x0 // lv.seg_w, (x1 - 1) // lv.seg_w + 1)
        planes = range(min(lv.samples, 3)) if lv.separate else range(1)
        return [(p, r, c) for p in planes for r in rows for c in cols]

    def prefetch_regions(self, level: int, regions: list[tuple[int, int, int, int]]) -> None:
        """Fetch at once the segments ``read_region`` of each (x, y level 0, w, h) needs."""
        if self._source is None:
            return
        lv, (w0, h0) = self._levels[level], self.level_dimensions[0]
        per_plane = lv.across * lv.down
        found: dict[int, None] = {}
        for x, y, w, h in regions:
            lx, ly = round(x * lv.width / w0), round(y * lv.height / h0)
            for p, r, c in self._wanted(level, lx, ly, w, h):
                found[p * per_plane + r * lv.across + c] = None
        cached = self._cache.lookup((level, i) for i in found)
        page = lv.page
        self._source.prefetch(
            [(int(page.dataoffsets[i]), int(page.databytecounts[i]))
             for i in found if (level, i) not in cached]
        )  # fmt: skip

    def read_level(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        lv = self._levels[level]
        out = np.full((h, w, 3), 255, np.uint8)
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, lv.width), min(y + h, lv.height)
        wanted = self._wanted(level, x, y, w, h)
        if not wanted:
            return out
        per_plane = lv.across * lv.down
        decoded = self._decode(level, [p * per_plane + r * lv.across + c for p, r, c in wanted])
        photometric = lv.page.photometric
        for p, r, c in wanted:
            seg = decoded[p * per_plane + r * lv.across + c]
            if seg is None:
                continue  # empty segment: stays white
            sx, sy = c * lv.seg_w, r * lv.seg_h
            ix0, iy0 = max(x0, sx), max(y0, sy)
            ix1, iy1 = min(x1, sx + seg.shape[1]), min(y1, sy + seg.shape[0])
            if ix1 <= ix0 or iy1 <= iy0:
                continue
            part = seg[iy0 - sy : iy1 - sy, ix0 - sx : ix1 - sx]
            dst = out[iy0 - y : iy1 - y, ix0 - x : ix1 - x]
            if lv.separate:
                plane = part[..., 0]
                dst[..., p] = 255 - plane if photometric == _PHOTO.MINISWHITE else plane
            else:
                dst[...] = _to_rgb(part, photometric)
        return out

    def read_region(self, x: int, y: int, level: int, size: tuple[int, int]) -> np.ndarray:
        w0, h0 = self.level_dimensions[0]
        lw, lh = self.level_dimensions[level]
        return self.read_level(level, round(x * lw / w0), round(y * lh / h0), size[0], size[1])

    def associated_image(self, name: str) -> np.ndarray:
        if name not in self._associated:
            have = ", ".join(self.associated_images) or "none"
            raise SlideError(f"{self.path}: no associated image {name!r} (has: {have})")
        series = self._tif.series[self._associated[name]]
        try:
            arr = series.asarray()
        except Exception as exc:  # noqa: BLE001
            raise SlideError(
                f"{self.path}: reading associated image {name!r} failed: {exc}"
            ) from exc
        return _to_rgb(np.asarray(arr), as_page(series.pages[0]).photometric)

    def close(self) -> None:
        self._tif.close()
        self._cache.clear()

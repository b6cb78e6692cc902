"""DICOM whole-slide images read frame by frame: pydicom for headers, imagecodecs for frames.

A slide is one series (see :mod:`wsidist.io.dicom_series`): the files of its folder with the
same SeriesInstanceUID. Pyramid levels are its VOLUME instances (largest first; a level split
into a concatenation is joined; of several focal planes or optical paths the first is read),
and LABEL, OVERVIEW and THUMBNAIL instances are the associated images ``label``, ``macro``
and ``thumbnail``. Frames are located once from the encapsulated pixel data (extended or basic
offset table, else the fragments themselves), fetched with ``os.pread`` and decoded with
imagecodecs: JPEG (baseline, extended, lossless), JPEG-LS, JPEG 2000 / HTJ2K, or native pixels.

JPEG colours follow the stream, not the tag: files that say PhotometricInterpretation RGB but
hold JFIF (YCbCr) frames, as some converters write them, are decoded as YCbCr, and the slide
carries a warning saying so (:attr:`DicomBackend.warnings`). Lenient where it is safe: a
missing DimensionOrganizationType is TILED_FULL when the frame count fits, and a single-frame
image without a total pixel matrix is a one-tile level. Anything else unreadable raises
:class:`SlideError` with the reason, and ``open_slide`` then tries OpenSlide.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from wsidist.errors import SlideError
from wsidist.io.backends.dicom_frames import Instance, read_instance
from wsidist.io.backends.tile_cache import DEFAULT_CACHE_BYTES, TileCache
from wsidist.io.dicom_series import dcm_files, group_series, read_header, series_of

ASSOCIATED = {"LABEL": "label", "OVERVIEW": "macro", "THUMBNAIL": "thumbnail"}


def can_open(path: str) -> bool:
    """A file with the DICOM preamble (``DICM`` at byte 128)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


@dataclass
class _Level:
    width: int
    height: int
    tile_w: int
    tile_h: int
    parts: list[tuple[Instance, int]]  # (instance, first frame number of the level in it)
    positions: dict[tuple[int, int], tuple[int, int]] | None = None  # sparse: (r, c) → part, i
    across: int = field(init=False)
    down: int = field(init=False)

    def __post_init__(self) -> None:
        self.across = math.ceil(self.width / self.tile_w)
        self.down = math.ceil(self.height / self.tile_h)

    def locate(self, row: int, col: int) -> tuple[Instance, int] | None:
        """The instance and local frame index of tile (row, col), None when absent."""
        if self.positions is not None:
            hit = self.positions.get((row, col))
            return None if hit is None else (self.parts[hit[0]][0], hit[1])
        number = row * self.across + col
        for inst, first in self.parts:
            if first <= number < first + inst.n_frames:
                return inst, number - first
        return None


def _level_of(group: list[Instance]) -> _Level:
    head = group[0]
    parts = sorted(group, key=lambda i: (i.concat_offset, i.instance_number, i.path))
    if head.concat_uid is None or any(i.concat_uid != head.concat_uid for i in group):
        parts = parts[:1]  # other focal planes / optical paths: the first is read
    level = _Level(
        head.width, head.height, head.frame_w, head.frame_h, [(i, i.concat_offset) for i in parts]
    )
    if any(i.positions is not None for i in parts):
        level.positions = {}
        for k, (inst, _) in enumerate(level.parts):
            for index, (x, y) in enumerate(inst.positions or ()):
                key = (y // level.tile_h, x // level.tile_w)
                level.positions.setdefault(key, (k, index))
    elif sum(i.n_frames for i in parts) < level.across * level.down:
        raise SlideError(
            f"{head.path}: {sum(i.n_frames for i in parts)} frames for a "
            f"{level.across}×{level.down} tile grid (TILED_FULL needs every tile)"
        )
    return level


class DicomBackend:
    """One DICOM series, read frame by frame (see the module docstring)."""

    name = "dicom"
    vendor = "dicom"

    def __init__(
        self,
        path: str,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        opened: tuple[tuple[str, ...], list[Instance], list[str]] | None = None,
    ) -> None:
        """``opened``: the series' files, instances and problems read elsewhere (a remote
        series read by ranges); else the files of ``path``'s folder are read here."""
        self.path = path
        if opened is None:
            self.files = _series_files(path)
            instances, problems = [], []
            for f in self.files:
                try:
                    instances.append(read_instance(f))
                except SlideError as exc:
                    problems.append(str(exc))
        else:
            self.files, instances, problems = opened[0], list(opened[1]), list(opened[2])
        volumes = [i for i in instances if i.kind == "VOLUME"]
        if not volumes:
            volumes = [i for i in instances if i.kind not in ASSOCIATED]
        if not volumes:
            reason = "; ".join(problems) or "no pyramid (VOLUME) image in the series"
            raise SlideError(f"{path}: {reason}")
        groups: dict[tuple[int, int], list[Instance]] = {}
        for inst in sorted(volumes, key=lambda i: -i.width * i.height):
            groups.setdefault((inst.width, inst.height), []).append(inst)
        self._levels = tuple(_level_of(g) for g in groups.values())
        w0, h0 = self._levels[0].width, self._levels[0].height
        self.level_dimensions = tuple((lv.width, lv.height) for lv in self._levels)
        self.level_downsamples = tuple((w0 / lv.width + h0 / lv.height) / 2 for lv in self._levels)
        self._associated = {
            ASSOCIATED[i.kind]: i for i in reversed(instances) if i.kind in ASSOCIATED
        }
        self.associated_images = tuple(sorted(self._associated))
        base = self._levels[0].parts[0][0]
        self.mpp_x, self.mpp_y = base.mpp_x, base.mpp_y
        self.objective_power = base.objective_power
        self.tile_size = (base.frame_w, base.frame_h)
        self.compression = base.codec
        self._instances = instances
        smallest = self._levels[-1].parts[0][0]
        smallest.ensure_colour()  # the colour space, from the smallest level's first frame
        self.properties = MappingProxyType(
            {
                "dicom.SeriesInstanceUID": base.series_uid or "",
                "dicom.PhotometricInterpretation": base.photometric,
                "dicom.TransferSyntaxUID": base.transfer_syntax,
                "dicom.decoded-as": smallest.decode_as or smallest.photometric,
                "dicom.files": str(len(self.files)),
            }
        )
        self._cache = TileCache(cache_bytes)

    @property
    def warnings(self) -> tuple[str, ...]:
        """Each instance's warnings (a remote one's once a frame of it is decoded)."""
        return tuple(dict.fromkeys(w for i in self._instances for w in i.warnings))

    # -- tiles --------------------------------------------------------------------------------
    def _prefetch(self, level: int, boxes: list[tuple[int, int, int, int]]) -> None:
        """Ask each instance at once for the frames of the level px boxes (x0, y0, x1, y1) that
        are not decoded yet (coalesced range requests for a remote series; nothing locally)."""
        lv = self._levels[level]
        keys: dict[tuple[int, int, int], None] = {}
        for x0, y0, x1, y1 in boxes:
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, lv.width), min(y1, lv.height)
            for row in range(y0 // lv.tile_h, (y1 - 1) // lv.tile_h + 1) if y1 > y0 else ():
                for col in range(x0 // lv.tile_w, (x1 - 1) // lv.tile_w + 1) if x1 > x0 else ():
                    keys[(level, row, col)] = None
        found = self._cache.lookup(list(keys))
        wanted: dict[Instance, list[int]] = {}
        for key in keys:
            hit = None if key in found else lv.locate(key[1], key[2])
            if hit is not None:
                wanted.setdefault(hit[0], []).append(hit[1])
        for inst, frames in wanted.items():
            inst.prefetch_frames(frames)

    def prefetch_regions(self, level: int, regions: list[tuple[int, int, int, int]]) -> None:
        """Fetch at once the frames that ``read_region`` of each (x, y level 0, w, h) needs."""
        ds = self.level_downsamples[level]
        boxes = []
        for x, y, w, h in regions:
            lx, ly = round(x / ds), round(y / ds)
            boxes.append((lx, ly, lx + int(w), ly + int(h)))
        self._prefetch(level, boxes)

    def _tile(self, level: int, row: int, col: int) -> np.ndarray | None:
        key = (level, row, col)
        found = self._cache.lookup([key])
        if key in found:
            return found[key]
        hit = self._levels[level].locate(row, col)
        arr = None if hit is None else hit[0].decode_frame(hit[1])
        self._cache.store({key: arr})
        return arr

    def read_level(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """uint8 (h, w, 3) of ``level`` pixels [x, x+w) × [y, y+h); outside is white."""
        lv = self._levels[level]
        out = np.full((h, w, 3), 255, np.uint8)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, lv.width), min(y + h, lv.height)
        if x1 <= x0 or y1 <= y0:
            return out
        self._prefetch(level, [(x0, y0, x1, y1)])
        for row in range(y0 // lv.tile_h, (y1 - 1) // lv.tile_h + 1):
            for col in range(x0 // lv.tile_w, (x1 - 1) // lv.tile_w + 1):
                tile = self._tile(level, row, col)
                if tile is None:
                    continue
                tx, ty = col * lv.tile_w, row * lv.tile_h
                ix0, iy0 = max(x0, tx), max(y0, ty)
                ix1 = min(x1, tx + tile.shape[1])
                iy1 = min(y1, ty + tile.shape[0])
                if ix1 > ix0 and iy1 > iy0:
                    out[iy0 - y : iy1 - y, ix0 - x : ix1 - x] = tile[
                        iy0 - ty : iy1 - ty, ix0 - tx : ix1 - tx
                    ]
        return out

    def read_region(self, x: int, y: int, level: int, size: tuple[int, int]) -> np.ndarray:
        ds = self.level_downsamples[level]
        lx, ly = x / ds, y / ds
        lx = int(lx) if lx.is_integer() else round(lx)
        ly = int(ly) if ly.is_integer() else round(ly)
        return self.read_level(level, lx, ly, int(size[0]), int(size[1]))

    def associated_image(self, name: str) -> np.ndarray:
        inst = self._associated.get(name)
        if inst is None:
            have = ", ".join(self.associated_images) or "none"
            raise SlideError(f"{self.path}: no associated image {name!r} (has: {have})")
        level = _level_of([inst])
        out = np.full((inst.height, inst.width, 3), 255, np.uint8)
        for row in range(level.down):
            for col in range(level.across):
                hit = level.locate(row, col)
                tile = None if hit is None else inst.decode_frame(hit[1])
                if tile is not None:
                    ty, tx = row * level.tile_h, col * level.tile_w
                    part = tile[: inst.height - ty, : inst.width - tx]
                    out[ty : ty + part.shape[0], tx : tx + part.shape[1]] = part
        return out

    def close(self) -> None:
        for lv in self._levels:
            for inst, _ in lv.parts:
                inst.close()
        for inst in self._associated.values():
            inst.close()
        self._cache.clear()


def _series_files(path: str) -> tuple[str, ...]:
    """The files of the series ``path`` (a .dcm file) belongs to, from its folder's headers."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        names = os.listdir(folder)
    except OSError as exc:
        raise SlideError(f"{path}: cannot list its folder: {exc}") from exc
    headers = [read_header(f) for f in dcm_files(names, folder, os.path.join)]
    if not any(h.path == os.path.abspath(path) for h in headers):
        headers.append(read_header(os.path.abspath(path)))
    mine = series_of(os.path.abspath(path), group_series(headers))
    if mine is None or mine.uid is None:
        reason = mine.error if mine is not None else "not found in its folder"
        raise SlideError(f"{path}: {reason}")
    return mine.files

"""Open a remote TIFF-family slide by range reads, without downloading it.

:func:`open_ranged` reads the object's TIFF directory through a :class:`RangeReader` and opens
the same backend the local path would pick, with the tile bytes coming from ranges:

* a TIFF OpenSlide opens (Aperio SVS, generic tiled TIFF) whose tiles the direct decoder takes
  (:class:`~wsidist.io.backends.direct.DirectTiffReader`): OpenSlide opens a *sparse shadow* of
  the object, a local temporary file of the object's size holding only the directory bytes
  read so far, so its metadata (vendor, levels, properties, associated images) is OpenSlide's
  own. Aligned reads decode the fetched tiles directly; a read OpenSlide must paint itself (a
  sub-pixel origin, an associated image) first writes the bytes it needs into the shadow.
* any other TIFF the tifffile backend opens (wsidist and transcoded pyramids, plain tiled
  TIFFs): tifffile reads the ranges directly.

Everything else (not a TIFF, a vendor format only OpenSlide reads, a DICOM folder, a TIFF that
no backend opens) returns None, and the caller stages the object whole, so the local path gives
its usual answer. OpenSlide's ``openslide.quickhash-1`` (a hash of the smallest level's raw
bytes) is dropped from the properties: computing it would read that level.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import math
import os
import posixpath
import shutil
import tempfile
import threading
import time
import weakref
from types import MappingProxyType
from typing import Any

import fsspec
import numpy as np
import tifffile

from wsidist.errors import SlideError
from wsidist.io.accounting import ReadMeter
from wsidist.io.backends import BACKENDS
from wsidist.io.backends.direct import DirectOpenSlideBackend
from wsidist.io.ranged import RangeReader, RangeSpec
from wsidist.io.remote import head, info_version
from wsidist.io.staging_cache import as_cache
from wsidist.io.tiff_format import is_tiff_header

__all__ = [
    "REMOTE_READS",
    "RemoteObject",
    "ShadowOpenSlideBackend",
    "open_ranged",
    "open_ranged_url",
    "remote_object",
    "remote_read_mode",
    "sweep_shadows",
]

_STAGED_SUFFIXES = (".dcm", ".mrxs", ".vms", ".vmu", ".scn", ".bif", ".ndpi")
_DROPPED_PROPERTIES = ("openslide.quickhash-1",)


class RemoteObject:
    """One remote file pinned at open: filesystem, path, size and version (ETag)."""

    def __init__(
        self,
        url: str,
        storage_options: dict | None,
        meter: ReadMeter,
        ranges: RangeSpec | None = None,
    ) -> None:
        self.url = url
        self.ranges = ranges or RangeSpec()
        self.fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
        self.path = path.rstrip("/")
        self.info = head(self.fs, self.path, url)  # the task's one HEAD; FileNotFoundError: gone
        meter.add(0, 1)
        self.meter = meter

    @property
    def is_file(self) -> bool:
        return self.info.get("type") != "directory"

    @property
    def size(self) -> int:
        return int(self.info.get("size") or 0)

    @property
    def version(self) -> str | None:
        """:func:`~wsidist.io.remote.source_version` of the object as pinned."""
        return info_version(self.info)

    def reader(self) -> RangeReader:
        return RangeReader.pinned(
            self.fs, self.path, self.info, self.ranges, url=self.url, meter=self.meter
        )


REMOTE_READS = ("range", "stage")


def remote_read_mode(mode: str | None = None) -> str:
    """``mode``, else ``$WSIDIST_REMOTE_READ``, else ``"range"``; a bad value is a SlideError."""
    mode = mode or os.environ.get("WSIDIST_REMOTE_READ") or "range"
    if mode not in REMOTE_READS:
        raise SlideError(f"unknown remote read mode {mode!r} (choose {', '.join(REMOTE_READS)})")
    return mode


def remote_object(
    url: str, storage_options: dict | None, meter: ReadMeter, ranges: RangeSpec | None = None
) -> RemoteObject:
    return RemoteObject(url, storage_options, meter, ranges)


SHADOW_PREFIX = "wsidist-range-"  # a shadow's folder in the temporary folder
_SHADOW_LOCK = ".lock"  # held (flock) by the process whose shadow it is
_UNLOCKED_GRACE_S = 60.0  # a folder without its lock file yet: being made, unless older


def sweep_shadows(root: str | None = None) -> int:
    """Remove the shadow folders no live process holds (a killed worker's) from ``root`` (the
    temporary folder); return how many. A process holds its shadow's lock while it is open
    (``flock`` locks end with their process), so a live one is never touched."""
    removed = 0
    for folder in glob.glob(os.path.join(root or tempfile.gettempdir(), SHADOW_PREFIX + "*")):
        try:
            fd = os.open(os.path.join(folder, _SHADOW_LOCK), os.O_RDWR)
        except FileNotFoundError:  # being made now, or left by a writer without locks
            with contextlib.suppress(OSError):
                if time.time() - os.stat(folder).st_mtime > _UNLOCKED_GRACE_S:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
            continue
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # held: its process is alive
        finally:
            os.close(fd)  # (closing also releases a lock just taken)
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed


def _release(fd: int, folder: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    os.close(fd)


class _Shadow:
    """A sparse local file of the object's size; ranges written in on demand, removed on close
    (or, when its process is killed, by the next process that opens one: :func:`sweep_shadows`)."""

    def __init__(self, reader: RangeReader, name: str) -> None:
        self.reader = reader
        sweep_shadows()
        self.dir = tempfile.mkdtemp(prefix=SHADOW_PREFIX)
        lock = os.open(os.path.join(self.dir, "lock.new"), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)  # locked before a sweeper can see it by its name
        os.rename(os.path.join(self.dir, "lock.new"), os.path.join(self.dir, _SHADOW_LOCK))
        self.path = os.path.join(self.dir, name)
        self._cleanup = weakref.finalize(self, _release, lock, self.dir)
        with open(self.path, "wb") as fh:
            fh.truncate(reader.size)
        self._done: set[tuple[int, int]] = set()
        self._lock = threading.Lock()

    def fill(self, ranges: list[tuple[int, int]]) -> None:
        """Write the ``(offset, count)`` ranges' bytes at their offsets (fetched if needed)."""
        todo = [(o, c) for o, c in ranges if c > 0 and (o, c) not in self._done]
        if not todo:
            return
        self.reader.prefetch(todo)
        with self._lock, open(self.path, "r+b") as fh:
            for offset, count in todo:
                fh.seek(offset)
                fh.write(self.reader.pread(count, offset))
                self._done.add((offset, count))

    def close(self) -> None:
        self._cleanup()


class ShadowOpenSlideBackend(DirectOpenSlideBackend):
    """OpenSlide on a sparse shadow for the metadata, the direct decoder over ranges for tiles."""

    def __init__(self, shadow: _Shadow, url: str) -> None:
        super().__init__(shadow.path, source=shadow.reader)
        self._shadow = shadow
        self.path = url
        props = {k: v for k, v in self.properties.items() if k not in _DROPPED_PROPERTIES}
        self.properties = MappingProxyType(props)
        self._others: list[tuple[int, int]] | None = None

    def read_region(self, x: int, y: int, level: int, size: tuple[int, int]) -> np.ndarray:
        fast = self.fast_path
        if fast is not None and fast.level_origin(x, y, level) is not None:
            return super().read_region(x, y, level, size)
        # OpenSlide paints it: give the shadow the tiles it touches (2 px margin for resampling)
        if fast is not None:
            ds = self.level_downsamples[level]
            lx, ly = math.floor(x / ds) - 2, math.floor(y / ds) - 2
            indices = fast.tile_indices(level, lx, ly, int(size[0]) + 5, int(size[1]) + 5)
            self._shadow.fill(fast.tile_ranges(level, indices))
        return super().read_region(x, y, level, size)

    def associated_image(self, name: str) -> np.ndarray:
        if self._others is None:
            self._others = _non_level_ranges(self._shadow.reader, self.level_dimensions)
        self._shadow.fill(self._others)
        return super().associated_image(name)

    def close(self) -> None:
        super().close()
        self._shadow.close()


def _non_level_ranges(reader: RangeReader, levels: tuple) -> list[tuple[int, int]]:
    """Data ranges of the pages that are not pyramid levels (label, macro, thumbnail)."""
    found = []
    reader.seek(0)
    with tifffile.TiffFile(reader) as tif:
        for page in tif.pages:
            if page.is_tiled and (int(page.imagewidth), int(page.imagelength)) in levels:
                continue
            found += [(int(o), int(c)) for o, c in zip(page.dataoffsets, page.databytecounts)]
    return found


def _parse_directory(reader: RangeReader) -> None:
    """Read every IFD and the series once (what OpenSlide and tifffile read at open)."""
    reader.seek(0)
    with tifffile.TiffFile(reader) as tif:
        for page in tif.pages:
            page.dataoffsets  # noqa: B018 — loads the tile offset and byte count arrays
        tif.series  # noqa: B018


def open_ranged(obj: RemoteObject, backend: str) -> tuple[Any, str] | None:
    """The backend for ``obj`` reading ranges, and its name; None when it must be staged."""
    name = posixpath.basename(obj.path) or "slide"
    if not obj.is_file or name.lower().endswith(_STAGED_SUFFIXES) or obj.size < 8:
        return None
    reader = obj.reader()
    try:
        if not is_tiff_header(reader.pread(4, 0)):
            reader.close()
            return None
        _parse_directory(reader)
    except SlideError:
        reader.close()
        raise
    except Exception:  # noqa: BLE001 — a TIFF tifffile cannot parse: the local path decides
        reader.close()
        return None
    for backend_name in [n for n in BACKENDS if backend in ("auto", n)]:
        impl = _try_backend(backend_name, reader, obj.url, name)
        if impl is _STAGE:
            break
        if impl is not None:
            return impl, backend_name
    reader.close()
    return None


_STAGE = object()  # the local path would read this slide with OpenSlide alone


def _try_backend(backend_name: str, reader: RangeReader, url: str, name: str) -> Any:
    """An open backend, None (the local path tries the next one) or ``_STAGE``."""
    spec = BACKENDS[backend_name]
    if not spec.available():
        return None
    if backend_name == "dicom":
        return None
    if backend_name == "tifffile":
        from wsidist.io.backends.tifffile_backend import TiffBackend

        try:
            return TiffBackend(url, source=reader)
        except SlideError:
            return None
    shadow = _Shadow(reader, name)
    shadow.fill(list({(s, e - s) for s, e in reader.fetched}))
    if not spec.can_open(shadow.path):
        shadow.close()
        return None
    try:
        impl = ShadowOpenSlideBackend(shadow, url)
    except SlideError:
        shadow.close()
        return None
    if impl.fast_path is None:  # OpenSlide alone would read the tiles: stage the object
        impl.close()
        return _STAGE
    return impl


def open_ranged_url(
    url: str, backend: str, meter: ReadMeter, cache_dir: Any = None
) -> tuple[Any, Any] | None:
    """The range-reading backend of ``url`` (read as ``cache_dir``'s range settings say) and
    the pinned object; None: stage it."""
    try:
        obj = remote_object(url, None, meter, as_cache(cache_dir).range_reads)
        if not obj.is_file or obj.path.lower().endswith(".dcm"):  # a DICOM series
            from wsidist.io.remote_dicom import open_dicom_ranged

            return open_dicom_ranged(obj, backend, meter, cache_dir)
        opened = open_ranged(obj, backend)
    except FileNotFoundError as exc:
        raise SlideError(f"slide not found: {url}") from exc
    except SlideError:
        raise
    except Exception as exc:  # noqa: BLE001 — network and credential errors of any fsspec backend
        raise SlideError(f"{url}: cannot fetch it: {exc}") from exc
    return None if opened is None else (opened[0], obj)

"""Open a whole-slide image from a path or URL and read regions and thumbnails from it.

``open_slide(url)`` reads a remote TIFF-family slide by byte ranges (:mod:`wsidist.io.remote_range`)
or stages it to a local cache (:mod:`wsidist.io.remote`: other formats, or ``remote_read="stage"``),
picks a backend from :data:`wsidist.io.backends.BACKENDS` (OpenSlide for every format it knows,
tifffile for other TIFFs) and returns a :class:`Slide`. The bytes and requests it moves are
counted in ``Slide.meter`` and in the reading context's :func:`wsidist.io.accounting.metering`. Every read returns ``uint8 (h, w, 3)`` RGB; pixels outside
the slide are white. Every failure (missing, corrupt, truncated, unsupported, unreadable) is a
:class:`SlideError` naming the file and the reason.
"""

from __future__ import annotations

import math
import os
import weakref
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from wsidist.errors import SlideError
from wsidist.imaging.resample import DEFAULT_BLOCK_PX
from wsidist.io.accounting import ReadMeter
from wsidist.io.backends import BACKENDS
from wsidist.io.local_paths import resolve_local, sniff
from wsidist.io.remote import CacheSpec, Lease, lease, local_path, source_version
from wsidist.io.remote_range import REMOTE_READS, open_ranged_url, remote_read_mode
from wsidist.io.thumbnail import level_thumbnail

__all__ = [
    "DEFAULT_BLOCK_PX",
    "REMOTE_READS",
    "Slide",
    "SlideError",
    "SlideInfo",
    "SlideRef",
    "open_slide",
    "remote_read_mode",
]


@dataclass(frozen=True)
class SlideRef:
    """What opens a slide again elsewhere (a few strings: cheap to pickle, opens nothing);
    ``version``, the source's identity then: :meth:`open` refuses another file at the URL."""

    url: str
    cache_dir: str | CacheSpec | None = None
    backend: str = "auto"
    version: str | None = None
    remote_read: str | None = None

    def open(self) -> Slide:
        slide = open_slide(
            self.url, cache_dir=self.cache_dir, backend=self.backend, remote_read=self.remote_read
        )
        if self.version is not None and slide.source_version() != self.version:
            slide.close()
            raise SlideError(f"{self.url}: the file changed while it was being read")
        return slide


@dataclass(frozen=True)
class SlideInfo:
    url: str
    vendor: str
    backend: str
    width: int
    height: int
    level_count: int
    level_dimensions: tuple[tuple[int, int], ...]
    level_downsamples: tuple[float, ...]
    mpp_x: float | None
    mpp_y: float | None
    objective_power: float | None
    associated_images: tuple[str, ...]
    tile_width: int | None = None
    tile_height: int | None = None
    compression: str | None = None
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-able dict (tuples become lists)."""
        d = asdict(self)
        d["level_dimensions"] = [list(wh) for wh in self.level_dimensions]
        d["level_downsamples"] = list(self.level_downsamples)
        d["associated_images"] = list(self.associated_images)
        d["warnings"] = list(self.warnings)
        return d


class Slide:
    """An open slide. Use as a context manager; workers open their own (``open_slide(url)``)."""

    def __init__(
        self,
        url: str,
        path: str,
        impl: Any,
        *,
        cache_dir: str | CacheSpec | None,
        backend: str,
        notes: tuple[str, ...] = (),
        meter: ReadMeter | None = None,
        remote_read: str | None = None,
        remote_object: Any = None,
        staged: Lease | None = None,
    ):
        self.url = url
        self._notes = notes
        self.path = path  # the local file read (the URL itself when read by ranges)
        self._impl = impl
        self.meter = meter or ReadMeter()  # bytes and requests moved from a remote source
        self.remote_read = remote_read  # "range" | "stage" for a remote URL, else None
        self._object = remote_object  # the pinned remote object, when read by ranges
        self.file_bytes: int | None = remote_object.size if remote_object is not None else None
        self._reopen_args = (url, cache_dir, backend, remote_read)
        self._closed = False
        self._download: Lease | None = None  # a range-read slide downloaded by local_file()
        self.staged = staged or Lease(path)  # what staging fetched; its lock is held while open
        # an unreferenced slide closes its files (descriptors never outlive the object)
        self._finalizer = weakref.finalize(self, _close, impl, self.staged)

    # -- metadata ---------------------------------------------------------------------------
    backend = property(lambda self: self._impl.name)
    vendor = property(lambda self: self._impl.vendor)
    level_dimensions = property(lambda self: self._impl.level_dimensions)
    level_downsamples = property(lambda self: self._impl.level_downsamples)
    level_count = property(lambda self: len(self._impl.level_dimensions))
    dimensions = property(lambda self: self._impl.level_dimensions[0])
    mpp_x = property(lambda self: self._impl.mpp_x)
    mpp_y = property(lambda self: self._impl.mpp_y)
    objective_power = property(lambda self: self._impl.objective_power)
    associated_images = property(lambda self: self._impl.associated_images)

    @property
    def warnings(self) -> tuple[str, ...]:
        """What the reader noticed (e.g. a mis-tagged colour space, a fallback reader)."""
        return (*self._notes, *getattr(self._impl, "warnings", ()))

    @property
    def properties(self) -> Mapping[str, str]:
        return self._impl.properties

    def best_level_for_downsample(self, downsample: float) -> int:
        """The smallest level whose downsample is ≤ ``downsample`` (level 0 if none is)."""
        ds = self.level_downsamples
        fits = [i for i, d in enumerate(ds) if d <= downsample * (1 + 1e-6)]
        return max(fits, key=lambda i: ds[i]) if fits else 0

    def info(self) -> SlideInfo:
        w, h = self.dimensions
        tile = self._impl.tile_size
        return SlideInfo(
            url=self.url, vendor=self.vendor, backend=self.backend, width=w, height=h,
            level_count=self.level_count, level_dimensions=tuple(self.level_dimensions),
            level_downsamples=tuple(self.level_downsamples), mpp_x=self.mpp_x, mpp_y=self.mpp_y,
            objective_power=self.objective_power, associated_images=tuple(self.associated_images),
            tile_width=tile[0] if tile else None, tile_height=tile[1] if tile else None,
            compression=self._impl.compression, warnings=self.warnings,
        )  # fmt: skip

    # -- pixels -----------------------------------------------------------------------------
    def _guard(self, what: str, fn: Callable[[], np.ndarray]) -> np.ndarray:
        if self._closed:
            raise SlideError(f"{self.url}: slide is closed")
        try:
            return fn()
        except SlideError:
            raise
        except Exception as exc:  # noqa: BLE001 — I/O and codec errors become SlideError
            raise SlideError(f"{self.url}: {what} failed: {exc}") from exc

    def _check_level(self, level: int) -> None:
        if not 0 <= level < self.level_count:
            raise SlideError(f"{self.url}: level {level} out of range (0..{self.level_count - 1})")

    def read_region(self, x: int, y: int, level: int, size: tuple[int, int]) -> np.ndarray:
        """uint8 (h, w, 3): (x, y) in level-0 px, size (w, h) in ``level`` px; outside is white."""
        self._check_level(level)
        w, h = (int(v) for v in size)
        if w < 0 or h < 0:
            raise SlideError(f"{self.url}: negative region size {size}")
        x, y = int(x), int(y)
        return self._guard("read_region", lambda: self._impl.read_region(x, y, level, (w, h)))

    def read_level(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """uint8 (h, w, 3) with (x, y, w, h) all in ``level`` px."""
        self._check_level(level)
        return self._guard("read_level", lambda: self._impl.read_level(level, x, y, w, h))

    def _level_factor(self, level: int) -> int | None:
        return getattr(self._impl, "level_factor", lambda level: None)(level)

    def grid_downsample(self, level: int) -> float:
        """Level-0 px per px of ``level``'s pixel grid: the whole factor of a level that reduces
        level 0 from its top-left corner (its size rounded), else the reported downsample."""
        self._check_level(level)
        factor = self._level_factor(level)
        return float(factor) if factor is not None else float(self.level_downsamples[level])

    def thumbnail(self, scale: float, *, block_px: int = DEFAULT_BLOCK_PX) -> np.ndarray:
        """uint8 (ceil(H/scale), ceil(W/scale), 3), each pixel the area average of its box.

        Read from the smallest level whose downsample is ≤ ``scale``, in source blocks of at most
        ``block_px`` level px a side (never a whole level at once). A level that is a whole-
        factor reduction of level 0 (see the backend's ``level_factor``) is read on its own
        grid, not stretched by its rounded size.
        """
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"thumbnail scale must be a positive number, got {scale!r}")
        if block_px < 1:
            raise ValueError(f"block_px must be ≥ 1, got {block_px}")
        level = self.best_level_for_downsample(scale)

        def read(x: int, y: int, w: int, h: int) -> np.ndarray:
            return self.read_level(level, x, y, w, h)

        tile_px = getattr(self._impl, "tile_px", None)
        tile = tile_px(level) if tile_px is not None and self._object is None else None
        geometry = (self.dimensions, self.level_dimensions[level], self._level_factor(level))
        return self._guard(
            f"thumbnail at scale {scale}",
            lambda: level_thumbnail(read, *geometry, scale, block_px, tile),
        )

    def prefetch(self, level: int, regions: list[tuple[int, int, int, int]]) -> None:
        """Fetch in one concurrent batch what ``read_region`` of each ``(x, y, w, h)`` (level-0
        origin, ``level`` px) will need; for a slide read by ranges (else nothing happens)."""
        fetch = getattr(self._impl, "prefetch_regions", None)
        if self._object is not None and fetch is not None and regions:
            self._check_level(level)
            self._guard("prefetch", lambda: fetch(level, list(regions)))

    def associated_image(self, name: str) -> np.ndarray:
        return self._guard(f"associated image {name!r}", lambda: self._impl.associated_image(name))

    # -- the file itself ---------------------------------------------------------------------
    def source_file(self) -> Any:
        """A binary file object of the slide's file (a new range reader when read by ranges),
        for a context manager; for raw looks at the TIFF (tifffile.TiffFile takes it)."""
        if self._object is not None:
            return self._object.reader()
        return open(self.path, "rb")

    def local_file(self) -> str:
        """A local path of the slide's file: a range-read slide is downloaded now (counted)."""
        if self._object is None:
            return self.path
        if self._download is None:  # held (not evicted) until the slide closes
            held = lease(self.url, self._reopen_args[1])
            self.meter.add(held.bytes_downloaded, held.requests)
            self._download = held
            weakref.finalize(self, held.close)
        return self._download.path

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def ref(self) -> SlideRef:
        """A :class:`SlideRef` to this slide's URL, with the source's identity now."""
        url, cache_dir, backend, remote_read = self._reopen_args
        return SlideRef(url, cache_dir, backend, self.source_version(), remote_read)

    def source_version(self) -> str | None:
        """The source's identity: as pinned at open (read by ranges: If-Match), else now."""
        return self._object.version if self._object is not None else source_version(self.url)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._finalizer()
            if self._download is not None:
                self._download.close()

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self):
        # Pickling reopens the slide from its URL on the other side (nothing else is shipped).
        return (_reopen, self._reopen_args)

    def __repr__(self) -> str:
        w, h = self.dimensions
        return (
            f"<Slide {self.url!r} {self.vendor}/{self.backend} {w}×{h} levels={self.level_count}>"
        )


def _close(impl: Any, staged: Lease) -> None:
    try:
        impl.close()
    finally:
        staged.close()  # after the reader: the staged file may be evicted from now on


def _reopen(
    url: str, cache_dir: str | CacheSpec | None, backend: str, remote_read: str | None
) -> Slide:
    return open_slide(url, cache_dir=cache_dir, backend=backend, remote_read=remote_read)


def open_slide(
    url: str,
    *,
    cache_dir: str | CacheSpec | None = None,
    backend: str = "auto",
    remote_read: str | None = None,
) -> Slide:
    """Open a local path, ``file://`` URL or fsspec URL.

    A remote TIFF-family slide is read by byte ranges (``remote_read="range"``, the default, or
    ``$WSIDIST_REMOTE_READ``); other remote files, and all with ``remote_read="stage"``, are
    downloaded whole to the bounded cache ``cache_dir`` first (a folder or a
    :class:`~wsidist.io.remote.CacheSpec`).
    """
    url = os.fspath(url)
    if backend != "auto" and backend not in BACKENDS:
        raise SlideError(f"unknown backend {backend!r} (choose auto, {', '.join(BACKENDS)})")
    meter = ReadMeter()
    remote = local_path(url) is None
    mode = remote_read_mode(remote_read) if remote else None
    kwargs = {"cache_dir": cache_dir, "backend": backend, "meter": meter, "remote_read": mode}
    if mode == "range":
        opened = open_ranged_url(url, backend, meter, cache_dir)
        if opened is not None:
            impl, obj = opened
            return Slide(url, url, impl, remote_object=obj, **kwargs)
        kwargs["remote_read"] = "stage"
    try:
        staged = lease(url, cache_dir)
    except FileNotFoundError as exc:
        raise SlideError(f"slide not found: {url}") from exc
    except SlideError as exc:
        raise type(exc)(f"{url}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 — network and credential errors of any fsspec backend
        raise SlideError(f"{url}: cannot fetch it: {exc}") from exc
    if remote:
        meter.add(staged.bytes_downloaded, staged.requests)
    try:
        return _open_staged(url, staged, kwargs)
    except BaseException:
        staged.close()
        raise


def _open_staged(url: str, staged: Lease, kwargs: dict[str, Any]) -> Slide:
    backend = kwargs["backend"]
    path = resolve_local(staged.path)
    names = [n for n in BACKENDS if backend in ("auto", n)]
    errors = []
    for name in names:
        spec = BACKENDS[name]
        if not spec.available():
            errors.append(f"{name} backend not installed")
            continue
        if not spec.can_open(path):
            continue
        try:
            impl = spec.open(path)
        except SlideError as exc:
            errors.append(f"{name} reader: {exc}")
            continue
        notes = tuple(f"opened with {name} after {e}" for e in errors if "not installed" not in e)
        return Slide(url, path, impl, notes=notes, staged=staged, **kwargs)
    if errors:
        raise SlideError("; ".join(errors))
    reason = sniff(path) if backend == "auto" else f"the {backend} backend cannot open it"
    raise SlideError(f"unsupported format: {path}: {reason}")

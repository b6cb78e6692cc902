"""Open a remote DICOM series by range reads: headers at open, then only the frames a read needs.

:func:`open_dicom_ranged` lists the series' folder (one request), reads each ``.dcm`` file's
header up to the pixel data through a :class:`~wsidist.io.ranged.RangeReader` (one request of
:data:`HEADER_BLOCK_BYTES` for a usual header, files read concurrently) and groups the files by
series as the local path does. Frames are then found through the instance's offset table:

* Extended or Basic Offset Table: each frame's byte span is known, so a read fetches exactly
  the frames it needs (adjacent ones coalesced, concurrent requests, ``RangeReader.prefetch``).
* No offset table and one frame (or native pixels): the span is known all the same.
* No offset table and several frames: the item headers that delimit the frames are spread
  through the pixel data, so locating any frame means reading every fragment before it. An
  instance of at most :data:`WHOLE_INSTANCE_BYTES` is fetched whole into the reader's memory
  (a few concurrent requests) and indexed there; a larger one is staged alone through the
  bounded staging cache (one GET, shared by the processes of a host) and read locally. Either
  way only the instance of the level being read moves, once, never the rest of the series.

Every request and byte is counted in the slide's :class:`~wsidist.io.accounting.ReadMeter`.
"""

from __future__ import annotations

import contextvars
import hashlib
import posixpath
import struct
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wsidist.errors import SlideError
from wsidist.io.accounting import ReadMeter
from wsidist.io.backends.dicom_backend import DicomBackend
from wsidist.io.backends.dicom_frames import (
    _ITEM,
    _NATIVE,
    _PIXEL_TAG,
    _SEQ_END,
    Instance,
    _choose_jpeg_colorspace,
    index_fragments,
    instance_from,
    read_dataset,
    read_instance,
)
from wsidist.io.dicom_series import DicomHeader, group_series, image_kind, is_dcm_name, series_of
from wsidist.io.ranged import DEFAULT_SPAN_CACHE_BYTES, RangeReader, RangeSpec
from wsidist.io.remote import files_version, info_version
from wsidist.io.staging_cache import CacheSpec, Lease, acquire, as_cache

__all__ = ["HEADER_BLOCK_BYTES", "WHOLE_INSTANCE_BYTES", "RemoteSeries", "open_dicom_ranged"]

HEADER_BLOCK_BYTES = 16 * 2**10  # the first read of a file: its header and offset table
WHOLE_INSTANCE_BYTES = DEFAULT_SPAN_CACHE_BYTES // 2  # without a table: in memory up to this
MAX_HEADER_THREADS = 8


@dataclass(eq=False)
class RemoteInstance(Instance):
    """An :class:`Instance` whose frames come from byte ranges of a remote file."""

    source: Any = None  # RangeReader of the file
    size: int = 0
    pixel_pos: int = 0  # offset of the pixel data element
    first: int = 0  # offset of the first fragment item (after the basic offset table)
    bot_len: int = 0  # bytes of the basic offset table (read on the first read)
    spans: np.ndarray | None = None  # (n_frames, 2) byte spans; None: not located yet
    itemised: bool = True  # spans hold fragment items (encapsulated), not raw pixels
    cache: CacheSpec | None = None
    version: str = ""
    _local: Instance | None = None
    _lease: Lease | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def frame_bytes(self, i: int) -> bytes:
        if not 0 <= i < self.n_frames:
            raise SlideError(f"{self.path}: frame {i} out of range (0..{self.n_frames - 1})")
        self._locate()
        if self._local is not None:
            return self._local.frame_bytes(i)
        start, end = (int(v) for v in self.spans[i])
        data = self.source.pread(end - start, start)
        return _item_data(data, self.path, i) if self.itemised else data

    def prefetch_frames(self, indices: list[int]) -> None:
        self._locate()
        if self._local is None and indices:
            spans = self.spans[np.asarray(indices, np.int64)]
            self.source.prefetch([(int(a), int(b - a)) for a, b in spans])

    def ensure_colour(self) -> None:
        """Without frame spans, the colour space comes from the first fragment's first bytes
        (one small read), not from locating the frames."""
        if self.codec != "jpeg" or self._colour_done:
            return
        if self.spans is not None or self._local is not None or not self.first:
            return super().ensure_colour()
        tag, length = struct.unpack("<II", self.source.pread(8, self.first))
        if tag != _ITEM:
            raise SlideError(f"{self.path}: no fragment after the basic offset table")
        _choose_jpeg_colorspace(self, self.source.pread(min(length, 65536), self.first + 8))

    def release(self) -> None:
        """Nothing to release between reads (no descriptor is held)."""

    def close(self) -> None:
        if self._local is not None:
            self._local.close()
        if self._lease is not None:
            self._lease.close()
        self.source.close()

    # -- locating frames without an offset table ---------------------------------------------
    def _locate(self) -> None:
        if self.spans is not None or self._local is not None:
            return
        with self._lock:  # a slide shared by a process's tasks: located once
            if self.spans is None and self._local is None:
                self._locate_now()

    def _locate_now(self) -> None:
        src = self.source
        if self.bot_len:
            table = np.frombuffer(src.pread(self.bot_len, self.pixel_pos + 20), "<u4")
            if _set_spans(self, table.astype(np.int64), None):
                return
        if self.size <= WHOLE_INSTANCE_BYTES:  # the header's read may hold a part of it already
            start = max([e for s, e in src.fetched if s <= self.pixel_pos] + [self.pixel_pos])
            src.prefetch([(start, self.size - start)])
            index = index_fragments(
                src, self.pixel_pos + 12, self.n_frames, {}, self.path, self.size
            )
            first, last = index.starts[:-1], index.starts[1:] - 1
            self.spans = np.stack(
                [index.offsets[first] - 8, index.offsets[last] + index.lengths[last]], axis=1
            )
            self.n_frames = self.n_frames or len(self.spans)
            return
        self._lease = _stage_one(self)
        self._local = read_instance(self._lease.path)
        self.n_frames = self.n_frames or self._local.n_frames


def _stage_one(inst: RemoteInstance) -> Lease:
    """Stage ``inst``'s file alone in the bounded cache, keyed by its URL and version."""
    src = inst.source
    name = posixpath.basename(src.rpath)
    key = hashlib.sha256(f"{src.url}\n{inst.version}".encode()).hexdigest()[:32]

    def fetch(entry) -> tuple[int, int]:
        entry.mkdir(parents=True, exist_ok=True)
        src.fs.get_file(src.rpath, str(entry / name))
        return (entry / name).stat().st_size, 1

    held = acquire(as_cache(inst.cache), key, inst.size, name, fetch)
    src.meter.add(held.bytes_downloaded, held.files_downloaded)
    return held


def _item_data(data: bytes, path: str, frame: int) -> bytes:
    """The fragment data of the items in ``data`` (one frame's span), joined."""
    parts, pos = [], 0
    while pos + 8 <= len(data):
        tag, length = struct.unpack_from("<II", data, pos)
        if tag == _SEQ_END:
            break
        if tag != _ITEM or pos + 8 + length > len(data):
            raise SlideError(f"{path}: frame {frame}: the offset table points outside its items")
        parts.append(data[pos + 8 : pos + 8 + length])
        pos += 8 + length
    if not parts:
        raise SlideError(f"{path}: frame {frame}: no pixel data at its offset")
    return b"".join(parts)


# -- one file's header ------------------------------------------------------------------------
def _read_file(fs, rpath: str, info: dict, meter: ReadMeter, cache: CacheSpec | None):
    """``(DicomHeader, RemoteInstance or None, problem or None)`` of one remote file."""
    url = fs.unstrip_protocol(rpath)
    size = int(info.get("size") or 0)
    ranges = as_cache(cache).range_reads
    reader = RangeReader.pinned(
        fs, rpath, info, ranges, url=url, meter=meter, block_bytes=HEADER_BLOCK_BYTES
    )
    header = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds, ts, pixel_pos, head = read_dataset(reader, url)
            uid = str(ds.get("SeriesInstanceUID") or "") or None
            if uid is None:
                return DicomHeader(url, error="DICOM file without a SeriesInstanceUID"), None, None
            width = int(ds.get("TotalPixelMatrixColumns") or ds.get("Columns") or 0)
            height = int(ds.get("TotalPixelMatrixRows") or ds.get("Rows") or 0)
            header = DicomHeader(url, uid, image_kind(ds.get("ImageType")), width, height,
                                 int(ds.get("InstanceNumber") or 0))  # fmt: skip
            extra = {"source": reader, "size": size, "pixel_pos": pixel_pos, "cache": cache,
                     "version": info_version(info) or ""}  # fmt: skip
            inst = instance_from(url, ds, ts, RemoteInstance, **extra)
            if head[:4] != _PIXEL_TAG:
                raise SlideError(f"{url}: no pixel data")
            _locate_by_table(inst, ds, ts)
    except SlideError as exc:
        reader.close()
        return header or DicomHeader(url, error=str(exc)), None, str(exc)
    except Exception as exc:  # noqa: BLE001 — pydicom and fsspec raise many types on bad files
        reader.close()
        return DicomHeader(url, error=f"not a readable DICOM file: {exc}"), None, None
    return header, inst, None


def _locate_by_table(inst: RemoteInstance, ds, ts: str) -> None:
    """Frame spans when they are known without reading pixel data: native pixels, an Extended
    Offset Table (in the header), one frame; a Basic Offset Table is read on the first read."""
    if inst.codec == "native":
        base = inst.pixel_pos + (12 if _NATIVE[ts] else 8)
        inst.n_frames = n = inst.n_frames or 1
        stride = inst.frame_w * inst.frame_h * inst.samples
        starts = base + stride * np.arange(n, dtype=np.int64)
        inst.spans, inst.itemised = np.stack([starts, starts + stride], axis=1), False
        return
    tag, bot_len = struct.unpack("<II", inst.source.pread(8, inst.pixel_pos + 12))
    if tag != _ITEM:
        raise SlideError(f"{inst.path}: encapsulated pixel data without a basic offset table")
    inst.first, inst.bot_len = inst.pixel_pos + 20 + bot_len, bot_len
    eot, lengths = ds.get("ExtendedOffsetTable"), ds.get("ExtendedOffsetTableLengths")
    if eot:
        table = np.frombuffer(eot, "<u8").astype(np.int64)
        _set_spans(inst, table, np.frombuffer(lengths, "<u8") if lengths else None)
    elif bot_len:
        inst.n_frames = inst.n_frames or bot_len // 4
    elif inst.n_frames == 1:  # one frame: the rest of the file
        _set_spans(inst, np.zeros(1, np.int64), None)
    if inst.n_frames == 0:  # how many frames only a scan tells: now
        inst.prefetch_frames([])


def _set_spans(inst: RemoteInstance, table: np.ndarray, lengths: np.ndarray | None) -> bool:
    """Spans from an offset table (item offsets from the first fragment); False when the table
    cannot be right (then the frames are found by a scan)."""
    size = inst.size
    if not len(table) or len(table) != (inst.n_frames or len(table)):
        return False
    if np.any(np.diff(table) <= 0) or inst.first + int(table[-1]) + 8 > size:
        return False
    starts = inst.first + table
    ends = np.append(starts[1:], size)
    if lengths is not None and len(lengths) == len(table):  # one fragment per frame
        ends[-1] = min(size, int(starts[-1]) + 8 + int(lengths[-1]))
    inst.spans, inst.n_frames = np.stack([starts, ends], axis=1), len(table)
    return True


# -- the series -------------------------------------------------------------------------------
class RemoteSeries:
    """A remote DICOM series read by ranges: its URL, total bytes and main file, each member's
    HEAD info as pinned at open, and the job's range settings."""

    is_file = False

    def __init__(
        self, url: str, fs, main: str, infos: dict[str, dict], meter: ReadMeter, ranges: RangeSpec
    ) -> None:
        self.url, self.fs, self.main, self.meter = url, fs, main, meter
        self.infos, self.ranges = infos, ranges
        self.sizes = {u: int(i.get("size") or 0) for u, i in infos.items()}
        self.size = sum(self.sizes.values())

    @property
    def version(self) -> str:
        """The series' identity as pinned at open: every instance's version (size, ETag,
        modification time) hashed in path order, so rewriting any one of them changes it; for a
        folder holding only the series, :func:`~wsidist.io.remote.source_version` of it."""
        return files_version({self.fs._strip_protocol(u): i for u, i in self.infos.items()})

    def reader(self) -> RangeReader:
        """A range reader of the series' main file (its largest level), pinned as the headers
        were read (If-Match its ETag) and read as the job's range settings say."""
        rpath = self.fs._strip_protocol(self.main)
        info = self.infos[self.main]
        return RangeReader.pinned(
            self.fs, rpath, info, self.ranges, url=self.main, meter=self.meter
        )


def _in_context(fn, *args):
    ctx = contextvars.copy_context()  # the reading task's meter counts the header reads too
    return lambda: ctx.run(fn, *args)


def open_dicom_ranged(
    obj, backend: str, meter: ReadMeter, cache: str | CacheSpec | None = None
) -> tuple[DicomBackend, RemoteSeries] | None:
    """The DICOM backend of the remote folder or ``.dcm`` file ``obj`` (a pinned
    :class:`~wsidist.io.remote_range.RemoteObject`) reading by ranges, and its series; None when
    the folder holds no ``.dcm`` file or another backend was asked for (then it is staged)."""
    if backend not in ("auto", "dicom"):
        return None
    fs = obj.fs
    folder = posixpath.dirname(obj.path) if obj.is_file else obj.path
    fs.invalidate_cache(folder)
    entries = fs.ls(folder, detail=True)
    meter.add(0, 1)
    files = {
        e["name"]: e
        for e in entries
        if e.get("type") != "directory" and is_dcm_name(posixpath.basename(e["name"]))
    }
    if not files:
        return None
    spec = as_cache(cache)
    with ThreadPoolExecutor(min(MAX_HEADER_THREADS, len(files))) as pool:
        jobs = [
            pool.submit(_in_context(_read_file, fs, p, i, meter, spec)) for p, i in files.items()
        ]
        read = [job.result() for job in jobs]
    series = group_series([h for h, _, _ in read])
    if obj.is_file:
        mine = series_of(fs.unstrip_protocol(obj.path), series)
    else:
        found = [s for s in series if s.uid is not None]
        if not found:
            raise SlideError(
                f"{obj.url}: a directory without readable DICOM (.dcm) files is not a slide"
            )
        if len(found) > 1:
            raise SlideError(
                f"{obj.url}: the folder holds {len(found)} DICOM series: give one file of the "
                "series to open (or the folder itself to a job, which lists each series)"
            )
        mine = found[0]
    if mine is None or mine.uid is None:
        _close_all(read)
        reason = mine.error if mine is not None else "not found in its folder"
        raise SlideError(f"{obj.url}: {reason}")
    members = set(mine.files)
    instances = [i for h, i, _ in read if h.path in members and i is not None]
    problems = [p for h, _, p in read if h.path in members and p]
    _close_all([r for r in read if r[0].path not in members])
    try:
        impl = DicomBackend(obj.url, opened=(mine.files, instances, problems))
    except BaseException:
        _close_all(read)
        raise
    infos = {fs.unstrip_protocol(p): i for p, i in files.items()}
    infos = {u: i for u, i in infos.items() if u in members}
    return impl, RemoteSeries(obj.url, fs, mine.main, infos, meter, spec.range_reads)


def _close_all(read: list) -> None:
    for _, inst, _ in read:
        if inst is not None:
            inst.close()

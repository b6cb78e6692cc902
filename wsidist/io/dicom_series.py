"""DICOM files grouped into slides by series, from their headers only (no pixel data read).

A DICOM whole-slide image is one series (SeriesInstanceUID): its pyramid levels, label and
overview are separate files, usually in one folder, which may hold other series too. Here:

- :func:`read_header` reads one file's header (``stop_before_pixels``) and never raises: a
  file that is not DICOM comes back with its ``error``;
- :func:`group_series` groups a folder's files by series; each unreadable file is a group of
  its own (so it becomes a ``failed`` row, not a silent loss);
- :func:`series_url` is the one URL a series is known by: its folder when the folder holds
  exactly one readable series, else the series' main file (its largest pyramid level). The
  slide id derives from that URL alone.
"""

from __future__ import annotations

import posixpath
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Any

DCM_SUFFIX = ".dcm"
_TAGS = [
    "SeriesInstanceUID", "ImageType", "TotalPixelMatrixColumns", "TotalPixelMatrixRows",
    "Columns", "Rows", "InstanceNumber",
]  # fmt: skip


def is_dcm_name(name: str) -> bool:
    """A ``.dcm`` file name (macOS ``._`` resource forks are not DICOM files)."""
    return name.lower().endswith(DCM_SUFFIX) and not name.startswith("._")


@dataclass(frozen=True)
class DicomHeader:
    """What grouping needs from one file's header; ``error`` when it is not readable DICOM."""

    path: str
    series_uid: str | None = None
    kind: str = "OTHER"  # VOLUME | LABEL | OVERVIEW | THUMBNAIL | OTHER (ImageType value 3)
    width: int = 0  # total pixel matrix (or one frame) columns
    height: int = 0
    instance: int = 0
    error: str | None = None


def image_kind(image_type: Any) -> str:
    """VOLUME, LABEL, OVERVIEW, THUMBNAIL or OTHER from ImageType (value 3)."""
    values = [str(v).upper() for v in (image_type or [])]
    return values[2] if len(values) > 2 and values[2] else "OTHER"


def _past_needed(tag: Any, vr: Any, length: int) -> bool:
    return tag > 0x00480007  # TotalPixelMatrixRows, the last grouping field


def _open_local(path: str) -> IO[bytes]:
    return open(path, "rb")


def read_header(path: str, opener: Callable[[str], IO[bytes]] = _open_local) -> DicomHeader:
    """The grouping fields of one file, from its header; ``error`` says why it is not DICOM."""
    from pydicom.filereader import read_partial
    from pydicom.tag import Tag

    try:
        with opener(path) as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns on every non-conformant value
            # stop after the last tag needed: per-frame groups can be megabytes of header
            ds = read_partial(fh, stop_when=_past_needed, specific_tags=[Tag(t) for t in _TAGS])
    except Exception as exc:  # noqa: BLE001 — pydicom and fsspec raise many types on bad files
        return DicomHeader(path, error=f"not a readable DICOM file: {exc}")
    uid = str(ds.get("SeriesInstanceUID") or "") or None
    if uid is None:
        return DicomHeader(path, error="DICOM file without a SeriesInstanceUID")
    width = int(ds.get("TotalPixelMatrixColumns") or ds.get("Columns") or 0)
    height = int(ds.get("TotalPixelMatrixRows") or ds.get("Rows") or 0)
    instance = int(ds.get("InstanceNumber") or 0)
    return DicomHeader(path, uid, image_kind(ds.get("ImageType")), width, height, instance)


@dataclass(frozen=True)
class DicomSeries:
    """One slide's files (sorted); ``uid`` None for an unreadable file standing alone."""

    uid: str | None
    files: tuple[str, ...]
    main: str  # the largest pyramid level's file (or the first file)
    error: str | None = None


def _main_file(headers: list[DicomHeader]) -> str:
    best = min(headers, key=lambda h: (h.kind != "VOLUME", -h.width * h.height, h.path))
    return best.path


def group_series(headers: Iterable[DicomHeader]) -> list[DicomSeries]:
    """Series of ``headers`` (readable ones by SeriesInstanceUID), ordered by main file."""
    by_uid: dict[str, list[DicomHeader]] = {}
    alone = []
    for h in headers:
        if h.series_uid is None:
            alone.append(DicomSeries(None, (h.path,), h.path, h.error))
        else:
            by_uid.setdefault(h.series_uid, []).append(h)
    series = [
        DicomSeries(uid, tuple(sorted(h.path for h in hs)), _main_file(hs))
        for uid, hs in by_uid.items()
    ]
    return sorted(series + alone, key=lambda s: s.main)


def readable(series: list[DicomSeries]) -> list[DicomSeries]:
    return [s for s in series if s.uid is not None]


def series_url(folder: str, all_series: list[DicomSeries], one: DicomSeries) -> str:
    """The URL ``one`` is known by: ``folder`` when it is the folder's only readable series,
    else its main file."""
    if one.uid is not None and len(readable(all_series)) == 1:
        return folder
    return one.main


def series_of(path: str, all_series: list[DicomSeries]) -> DicomSeries | None:
    """The series that holds file ``path``."""
    return next((s for s in all_series if path in s.files), None)


def dcm_files(names: Iterable[str], folder: str, join=posixpath.join) -> list[str]:
    """The ``.dcm`` files among a folder's entry names, as paths, sorted."""
    return sorted(join(folder, n) for n in names if is_dcm_name(n))

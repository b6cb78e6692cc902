"""One DICOM image file: its header facts, where each frame's bytes are, and decoding a frame.

:func:`read_instance` reads the header (pydicom, ``stop_before_pixels``) and indexes the pixel
data without reading it: for encapsulated transfer syntaxes the fragment items are walked once
and grouped into frames (by the extended or basic offset table, one fragment per frame, or the
codec start markers); native pixel data is a fixed stride. Frames are then read with
``os.pread`` on one descriptor and decoded with imagecodecs. The colour space of JPEG frames is
taken from the stream (:mod:`wsidist.io.backends.jpeg_stream`) when the stream says it; a tag
that disagrees is reported in :attr:`Instance.warnings`.
"""

from __future__ import annotations

import os
import struct
import warnings
from dataclasses import dataclass, field

import imagecodecs
import numpy as np

from wsidist.errors import SlideError
from wsidist.io.backends.jpeg_stream import jpeg_stream_colorspace
from wsidist.io.dicom_series import image_kind

_PIXEL_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010) little endian
_ITEM = 0xE000FFFE
_SEQ_END = 0xE0DDFFFE
_NATIVE = {"1.2.840.10008.1.2": False, "1.2.840.10008.1.2.1": True}  # UID → explicit VR
_CODECS = {
    **dict.fromkeys(("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"), "jpeg"),
    **dict.fromkeys(("1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"), "jpeg_lossless"),
    **dict.fromkeys(("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"), "jpegls"),
    **dict.fromkeys(
        (
            "1.2.840.10008.1.2.4.90",
            "1.2.840.10008.1.2.4.91",
            "1.2.840.10008.1.2.4.201",
            "1.2.840.10008.1.2.4.202",
            "1.2.840.10008.1.2.4.203",
        ),
        "j2k",
    ),  # fmt: skip
}
_START_MARKERS = (b"\xff\xd8", b"\xff\x4f", b"\x00\x00\x00\x0c")  # JPEG SOI, J2K SOC, JP2 box


@dataclass(frozen=True)
class FrameIndex:
    """Byte ranges of every frame: frame i is fragments ``starts[i]:starts[i + 1]``."""

    offsets: np.ndarray  # int64 file offsets of fragment data
    lengths: np.ndarray  # int64 fragment lengths
    starts: np.ndarray  # int64, n_frames + 1


@dataclass(eq=False)
class Instance:
    """One DICOM image file of a series (a pyramid level, a part of one, or a label …)."""

    path: str
    kind: str
    series_uid: str | None
    width: int
    height: int
    frame_w: int
    frame_h: int
    n_frames: int
    samples: int
    photometric: str
    planar: int
    transfer_syntax: str
    codec: str  # jpeg | jpeg_lossless | jpegls | j2k | native
    index: FrameIndex | None  # None: native, fixed stride from native_offset
    native_offset: int = 0
    positions: list[tuple[int, int]] | None = None  # TILED_SPARSE: (x, y) of each frame
    mpp_x: float | None = None
    mpp_y: float | None = None
    objective_power: float | None = None
    instance_number: int = 0
    concat_uid: str | None = None
    concat_offset: int = 0
    decode_as: str | None = None  # JPEG colour space to decode with (None: the stream's)
    warnings: list[str] = field(default_factory=list)
    _fd: int = -1
    _colour_done: bool = False

    # -- bytes and pixels ---------------------------------------------------------------------
    def frame_bytes(self, i: int) -> bytes:
        if not 0 <= i < self.n_frames:
            raise SlideError(f"{self.path}: frame {i} out of range (0..{self.n_frames - 1})")
        if self._fd < 0:
            self._fd = os.open(self.path, os.O_RDONLY)
        if self.index is None:
            size = self.frame_w * self.frame_h * self.samples
            return _pread(self._fd, size, self.native_offset + i * size, self.path)
        idx = self.index
        a, b = int(idx.starts[i]), int(idx.starts[i + 1])
        return b"".join(
            _pread(self._fd, int(idx.lengths[k]), int(idx.offsets[k]), self.path)
            for k in range(a, b)
        )

    def prefetch_frames(self, indices: list[int]) -> None:
        """Make frames ``indices`` cheap to read (a local file needs nothing)."""

    def ensure_colour(self) -> None:
        """Choose the JPEG colour space now (from frame 0) if no frame was decoded yet."""
        if self.codec == "jpeg" and not self._colour_done:
            _choose_jpeg_colorspace(self)

    def decode_frame(self, i: int) -> np.ndarray:
        """uint8 (frame_h, frame_w, 3) RGB of frame ``i``."""
        data = self.frame_bytes(i)
        if self.codec == "jpeg" and not self._colour_done:
            _choose_jpeg_colorspace(self, data)
        try:
            arr = self._decode(data)
        except Exception as exc:  # noqa: BLE001 — codec errors become SlideError
            raise SlideError(f"{self.path}: decoding frame {i} failed: {exc}") from exc
        return _as_rgb(arr, self.photometric if self.codec != "jpeg" else "RGB")

    def _decode(self, data: bytes) -> np.ndarray:
        if self.codec == "jpeg":
            return imagecodecs.jpeg8_decode(data, colorspace=self.decode_as, outcolorspace="RGB")
        if self.codec == "jpeg_lossless":
            try:
                return imagecodecs.jpeg8_decode(data)
            except Exception:  # noqa: BLE001 — older libjpeg: the lossless-only decoder
                return imagecodecs.ljpeg_decode(data)
        if self.codec == "jpegls":
            return imagecodecs.jpegls_decode(data)
        if self.codec == "j2k":
            return imagecodecs.jpeg2k_decode(data)
        arr = np.frombuffer(data, np.uint8)
        if self.samples == 1:
            return arr.reshape(self.frame_h, self.frame_w)
        if self.planar == 1:
            return arr.reshape(self.samples, self.frame_h, self.frame_w).transpose(1, 2, 0)
        return arr.reshape(self.frame_h, self.frame_w, self.samples)

    def release(self) -> None:
        """Close the file descriptor until the next read (after a look at open)."""
        self.close()

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


def _pread(fd: int, size: int, offset: int, path: str) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise SlideError(f"{path}: truncated: {len(data)} of {size} bytes at offset {offset}")
    return data


def _as_rgb(arr: np.ndarray, photometric: str) -> np.ndarray:
    if arr.dtype != np.uint8:
        raise SlideError(f"{arr.dtype} samples are not supported (need 8-bit)")
    if arr.ndim == 2 or arr.shape[-1] == 1:
        gray = arr.reshape(arr.shape[0], arr.shape[1])
        if photometric == "MONOCHROME1":
            gray = 255 - gray
        return np.repeat(gray[..., None], 3, axis=2)
    if photometric in ("YBR_FULL", "YBR_FULL_422") and arr.shape[-1] == 3:
        return _ycbcr_to_rgb(arr)
    return np.ascontiguousarray(arr[..., :3])


def _ycbcr_to_rgb(arr: np.ndarray) -> np.ndarray:
    y, cb, cr = (arr[..., k].astype(np.float32) for k in range(3))
    rgb = np.stack(
        [y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
         y + 1.772 * (cb - 128)],
        axis=-1,
    )  # fmt: skip
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


# -- reading a header and indexing the pixel data -------------------------------------------------
def read_dataset(fh, path: str):
    """``(dataset, transfer syntax UID, offset of the pixel data element, its first 12 bytes)``
    of the open file ``fh``: the header only, read up to (not including) the pixel data."""
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns on every non-conformant value
        ds = pydicom.dcmread(fh, stop_before_pixels=True)
    pixel_pos = fh.tell()
    head = fh.read(12)
    ts = str(getattr(ds.file_meta, "TransferSyntaxUID", "") or "")
    return ds, ts, pixel_pos, head


def read_instance(path: str) -> Instance:
    """The :class:`Instance` of one file (header and frame index; no pixel data read)."""
    try:
        with open(path, "rb") as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds, ts, pixel_pos, head = read_dataset(fh, path)
            inst = instance_from(path, ds, ts)
            if head[:4] != _PIXEL_TAG:
                raise SlideError(f"{path}: no pixel data")
            if inst.codec == "native":
                explicit = _NATIVE[ts]
                inst.native_offset = pixel_pos + (12 if explicit else 8)
                inst.n_frames = inst.n_frames or 1
            else:
                size = os.fstat(fh.fileno()).st_size
                inst.index = index_fragments(fh, pixel_pos + 12, inst.n_frames, ds, path, size)
                inst.n_frames = len(inst.index.starts) - 1
    except SlideError:
        raise
    except Exception as exc:  # noqa: BLE001 — pydicom raises many types on bad files
        raise SlideError(f"{path}: not a readable DICOM image: {exc}") from exc
    inst.ensure_colour()
    return inst


def instance_from(path: str, ds, ts: str, cls: type = Instance, **extra) -> Instance:
    if ts not in _NATIVE and ts not in _CODECS:
        from pydicom.uid import UID

        name = f"{UID(ts).name} ({ts})" if ts else "missing"
        raise SlideError(f"{path}: transfer syntax {name} is not supported")
    if int(ds.get("BitsAllocated", 8)) != 8:
        raise SlideError(f"{path}: {ds.get('BitsAllocated')}-bit samples (need 8-bit)")
    frame_w, frame_h = int(ds.Columns), int(ds.Rows)
    width = int(ds.get("TotalPixelMatrixColumns") or frame_w)
    height = int(ds.get("TotalPixelMatrixRows") or frame_h)
    n_frames = int(ds.get("NumberOfFrames") or 0)  # 0: not given, counted from the data
    mpp_y, mpp_x = _pixel_spacing_um(ds, width, height)
    optical = ds.get("OpticalPathSequence")
    power = optical[0].get("ObjectiveLensPower") if optical else None
    inst = cls(
        path=path, kind=image_kind(ds.get("ImageType")),
        series_uid=str(ds.get("SeriesInstanceUID") or "") or None,
        width=width, height=height, frame_w=frame_w, frame_h=frame_h, n_frames=n_frames,
        samples=int(ds.get("SamplesPerPixel") or 1),
        photometric=str(ds.get("PhotometricInterpretation") or "RGB").upper(),
        planar=int(ds.get("PlanarConfiguration") or 0), transfer_syntax=ts,
        codec=_CODECS.get(ts, "native"), index=None, mpp_x=mpp_x, mpp_y=mpp_y,
        objective_power=float(power) if power else None,
        instance_number=int(ds.get("InstanceNumber") or 0),
        concat_uid=str(ds.get("ConcatenationUID") or "") or None,
        concat_offset=int(ds.get("ConcatenationFrameOffsetNumber") or 0), **extra,
    )  # fmt: skip
    organisation = str(ds.get("DimensionOrganizationType") or "").upper()
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if organisation == "TILED_SPARSE" or (organisation != "TILED_FULL" and per_frame):
        inst.positions = _sparse_positions(per_frame, path) if per_frame else None
    return inst


def _pixel_spacing_um(ds, width: int, height: int) -> tuple[float | None, float | None]:
    """(row spacing, column spacing) in µm: PixelSpacing (mm), else the imaged volume size."""
    try:
        spacing = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
        y, x = (float(v) * 1000 for v in spacing)
        if x > 0 and y > 0:
            return y, x
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        pass
    vw, vh = ds.get("ImagedVolumeWidth"), ds.get("ImagedVolumeHeight")
    if vw and vh and width and height:
        return float(vh) * 1000 / height, float(vw) * 1000 / width
    return None, None


def _sparse_positions(per_frame, path: str) -> list[tuple[int, int]]:
    out = []
    for item in per_frame:
        try:
            pos = item.PlanePositionSlideSequence[0]
            col = int(pos.ColumnPositionInTotalImagePixelMatrix)
            row = int(pos.RowPositionInTotalImagePixelMatrix)
        except (AttributeError, IndexError) as exc:
            raise SlideError(f"{path}: TILED_SPARSE frame without a position") from exc
        out.append((col - 1, row - 1))  # 1-based in DICOM
    return out


def index_fragments(fh, pos: int, n_frames: int, ds, path: str, size: int) -> FrameIndex:
    """Walk the encapsulated items after the pixel data header (``fh`` of ``size`` bytes) and
    group them into frames."""
    fh.seek(pos)
    tag, length = struct.unpack("<II", fh.read(8))
    if tag != _ITEM:
        raise SlideError(f"{path}: encapsulated pixel data without a basic offset table")
    bot = np.frombuffer(fh.read(length), "<u4").astype(np.int64) if length else None
    first = fh.tell()
    offsets, lengths = [], []
    while True:
        head = fh.read(8)
        if len(head) < 8:
            break  # truncated at the end: the frames that are complete still read
        tag, length = struct.unpack("<II", head)
        if tag == _SEQ_END:
            break
        if tag != _ITEM:
            raise SlideError(f"{path}: bad item tag {tag:#010x} in the pixel data")
        offsets.append(fh.tell())
        lengths.append(length)
        fh.seek(length, os.SEEK_CUR)
    offs = np.asarray(offsets, np.int64)
    lens = np.asarray(lengths, np.int64)
    if len(offs) and int((offs + lens).max()) > size:
        complete = int((offs + lens <= size).sum())
        raise SlideError(
            f"{path}: truncated file: {complete} of {len(offs)} pixel data fragments complete"
        )
    item_pos = offs - 8 - first  # item positions relative to the first fragment
    eot = ds.get("ExtendedOffsetTable")
    table = np.frombuffer(eot, "<u8").astype(np.int64) if eot else bot
    if table is not None and len(table) and len(table) == (n_frames or len(table)):
        starts = np.searchsorted(item_pos, table)
    elif len(offs) == n_frames or (not n_frames and len(offs) == 1):
        starts = np.arange(len(offs))
    else:
        heads = []
        for o in offs:
            fh.seek(int(o))
            heads.append(fh.read(4).startswith(_START_MARKERS))
        starts = np.flatnonzero(np.asarray(heads, bool))
    starts = np.append(starts, len(offs)).astype(np.int64)
    n_frames = n_frames or len(starts) - 1
    if len(starts) - 1 < n_frames:
        raise SlideError(
            f"{path}: {len(starts) - 1} of {n_frames} frames found in the pixel data "
            "(truncated or damaged file)"
        )
    return FrameIndex(offs, lens, starts[: n_frames + 1])


def _choose_jpeg_colorspace(inst: Instance, data: bytes | None = None) -> None:
    """Decode JPEG frames in the colour space their stream declares (from ``data``, else frame
    0); warn when the tag differs."""
    inst._colour_done = True
    try:
        found = jpeg_stream_colorspace((inst.frame_bytes(0) if data is None else data)[:65536])
    except SlideError:
        return
    tag = inst.photometric
    tag_space = "RGB" if tag == "RGB" else ("YCbCr" if tag.startswith("YBR") else None)
    inst.decode_as = found.colorspace or tag_space
    if found.colorspace and tag_space and found.colorspace != tag_space:
        inst.warnings.append(
            f"DICOM PhotometricInterpretation says {tag} but the JPEG frames are "
            f"{found.colorspace} ({found.evidence}): decoded as {found.colorspace}"
        )
    if data is None:
        inst.release()

"""Synthetic DICOM whole-slide series with known pixels, conformant or broken on purpose.

:func:`write_dicom_series` writes one series (a VL Whole Slide Microscopy image per pyramid
level, JPEG frames, TILED_FULL) from RGB arrays, so a reader's output can be compared with the
pixels that went in. The options reproduce the classes of files met in the wild:

- ``jpeg="jfif"`` (YCbCr frames with a JFIF marker) or ``"rgb"`` (RGB frames, Adobe marker),
  each with any ``photometric`` tag: JFIF frames tagged ``RGB`` are the mis-tag some
  converters write (readers that follow the tag show false colours);
- ``offsets="bot" | "none" | "eot"``: basic, empty or extended offset table;
- ``codec="native"``: uncompressed frames (explicit VR little endian), lossless pixels;
- ``organisation=None`` (no DimensionOrganizationType), ``wsm=False`` (a generic secondary
  capture image instead of a slide), ``drop`` (attributes left out): non-conformant files;
- ``series_uid`` and ``prefix``: several series in one folder.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import imagecodecs
import numpy as np

WSM_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
EXPLICIT_LITTLE = "1.2.840.10008.1.2.1"


def _frames(
    rgb: np.ndarray, fw: int, fh: int, jpeg: str, quality: int, codec: str = "jpeg"
) -> list[bytes]:
    h, w = rgb.shape[:2]
    out = []
    for r in range(math.ceil(h / fh)):
        for c in range(math.ceil(w / fw)):
            tile = np.full((fh, fw, 3), 255, np.uint8)
            part = rgb[r * fh : (r + 1) * fh, c * fw : (c + 1) * fw]
            tile[: part.shape[0], : part.shape[1]] = part
            if codec == "native":
                out.append(tile.tobytes())
                continue
            kw = {"colorspace": "RGB", "outcolorspace": "RGB"} if jpeg == "rgb" else {}
            out.append(imagecodecs.jpeg8_encode(tile, level=quality, **kw))
    return out


def write_dicom_series(
    folder: str | Path,
    levels: Sequence[np.ndarray],
    *,
    frame: int = 256,
    jpeg: str = "jfif",
    photometric: str = "YBR_FULL_422",
    mpp: float | None = 0.5,
    quality: int = 90,
    series_uid: str | None = None,
    prefix: str = "level",
    offsets: str = "bot",
    organisation: str | None = "TILED_FULL",
    wsm: bool = True,
    drop: Sequence[str] = (),
    label: np.ndarray | None = None,
    codec: str = "jpeg",
) -> list[Path]:
    """Write one DICOM series (one file per level, plus ``label``) into ``folder``; return
    the paths. ``levels`` are uint8 RGB arrays, largest first."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.encaps import encapsulate, encapsulate_extended
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.uid import generate_uid

    if jpeg not in ("jfif", "rgb") or offsets not in ("bot", "none", "eot"):
        raise ValueError(f"jpeg must be jfif or rgb, offsets bot, none or eot: {jpeg}, {offsets}")
    if codec not in ("jpeg", "native"):
        raise ValueError(f"codec must be jpeg or native: {codec}")
    native = codec == "native"
    if native:
        photometric = "RGB"
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study_uid, frame_of_reference = generate_uid(), generate_uid()
    w0 = levels[0].shape[1]
    images = [("VOLUME", arr) for arr in levels] + ([("LABEL", label)] if label is not None else [])
    paths = []
    for k, (kind, rgb) in enumerate(images):
        h, w = rgb.shape[:2]
        # frames of `frame` px; a level (or label) smaller than that is one exact frame
        tiled = wsm and kind == "VOLUME" and min(w, h) >= frame
        fw, fh = (frame, frame) if tiled else (w, h)
        frames = _frames(rgb, fw, fh, jpeg, quality, codec)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = WSM_SOP_CLASS if wsm else SECONDARY_CAPTURE
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = EXPLICIT_LITTLE if native else JPEG_BASELINE
        path = folder / f"{prefix}-{k}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID = frame_of_reference
        ds.Modality = "SM"
        ds.InstanceNumber = k + 1
        ds.ImageType = ["ORIGINAL" if k == 0 else "DERIVED", "PRIMARY", kind, "NONE"]
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = (
            3, photometric, 0
        )  # fmt: skip
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.Rows, ds.Columns, ds.NumberOfFrames = fh, fw, len(frames)
        ds.LossyImageCompression = "00" if native else "01"
        if wsm:
            ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows = w, h
            ds.TotalPixelMatrixFocalPlanes, ds.NumberOfOpticalPaths = 1, 1
            if organisation:
                ds.DimensionOrganizationType = organisation
            ds.ContainerIdentifier = "synthetic"
            ds.ImageOrientationSlide = [0, -1, 0, -1, 0, 0]
            spacing_mm = (mpp or 1.0) * (w0 / w) / 1000
            ds.ImagedVolumeWidth, ds.ImagedVolumeHeight = w * spacing_mm, h * spacing_mm
            ds.ImagedVolumeDepth = 0.001
            if mpp:
                pixel = FileDataset(None, {})
                pixel.PixelSpacing = [spacing_mm, spacing_mm]
                pixel.SliceThickness = 0.001
                shared = FileDataset(None, {})
                shared.PixelMeasuresSequence = DicomSequence([pixel])
                ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
        if native:
            ds.PixelData = b"".join(frames)
            ds["PixelData"].VR = "OB"
        else:
            if offsets == "eot":
                data, table, lengths = encapsulate_extended(frames)
                ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = table, lengths
            else:
                data = encapsulate(frames, has_bot=offsets == "bot")
            ds.PixelData = data
            ds["PixelData"].VR = "OB"
            ds["PixelData"].is_undefined_length = True
        for name in drop:
            if name in ds:
                delattr(ds, name)
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def pyramid(rgb: np.ndarray, n_levels: int) -> list[np.ndarray]:
    """``rgb`` and its 2× area reductions (``n_levels`` in all)."""
    from wsidist.imaging.resample import area_reduce

    out = [rgb]
    for _ in range(n_levels - 1):
        out.append(area_reduce(out[-1], 2))
    return out

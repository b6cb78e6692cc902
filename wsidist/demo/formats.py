"""Synthetic slides in formats only OpenSlide reads: from object storage they must be staged.

:func:`write_ndpi` writes the synthetic slide of a spec as a Hamamatsu NDPI file: one JPEG
strip per level (the NDPI tags OpenSlide needs: format flag, source lens, offsets, focal plane),
which OpenSlide opens as ``hamamatsu``. It reads each level of the synthetic TIFF whole, so it
is for small slides only (at most :data:`MAX_NDPI_PX` level-0 px).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import tifffile

from wsidist.demo.spec import SynthSpec
from wsidist.demo.synth import SynthTruth, write_synthetic_slide
from wsidist.errors import WsidistError
from wsidist.io.slide import open_slide

MAX_NDPI_PX = 16_000_000
_FORMAT_FLAG, _SOURCE_LENS, _X_OFFSET, _Y_OFFSET, _FOCAL_PLANE = 65420, 65421, 65422, 65423, 65424


def write_ndpi(path: str | Path, spec: SynthSpec | None = None) -> SynthTruth:
    """Write ``spec``'s synthetic slide as an NDPI file at ``path``; return its truth."""
    spec = spec or SynthSpec()
    if spec.width * spec.height > MAX_NDPI_PX:
        raise WsidistError(
            f"write_ndpi reads whole levels: {spec.width}×{spec.height} px is over {MAX_NDPI_PX} px"
        )
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source.tiff"
        truth = write_synthetic_slide(source, spec)
        with open_slide(source) as slide, tifffile.TiffWriter(path) as tw:
            lens = spec.objective_power or 20.0
            for k, (w, h) in enumerate(slide.level_dimensions):
                ds = slide.level_downsamples[k]
                res = {}
                if spec.mpp:
                    ppcm = 1e4 / (spec.mpp * ds)
                    res = {"resolution": (ppcm, ppcm), "resolutionunit": "CENTIMETER"}
                tw.write(
                    slide.read_level(k, 0, 0, w, h), photometric="rgb", compression="jpeg",
                    compressionargs={"level": spec.jpeg_quality}, rowsperstrip=h,
                    metadata=None, **res,
                    extratags=[
                        (_FORMAT_FLAG, "H", 1, 1, True), (_SOURCE_LENS, "f", 1, lens / ds, True),
                        (_X_OFFSET, "i", 1, 0, True), (_Y_OFFSET, "i", 1, 0, True),
                        (_FOCAL_PLANE, "i", 1, 0, True),
                    ],
                )  # fmt: skip
    return truth

"""Encoders: pictures as PNG / JPEG / WebP bytes, masks as 1-bit PNGs, and pyramid tiles as
JPEG-XL / JPEG."""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import imagecodecs
import numpy as np
from PIL import Image

IMAGE_FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}
MASK_PNG_LEVEL = 6  # DEFLATE level of 1-bit mask PNGs (libdeflate: smaller and faster than zlib)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def to_uint8_image(array: np.ndarray) -> np.ndarray:
    """Any filter output (bool, float, uint8; gray or rgb) as a displayable uint8 array.

    bool → 0/255; uint8 as is; anything else min-max scaled to 0..255.
    """
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint8:
        return array
    finite = np.nan_to_num(array.astype(np.float64))
    lo, hi = float(finite.min()), float(finite.max())
    scaled = (finite - lo) / (hi - lo) if hi > lo else np.zeros_like(finite)
    return (scaled * 255).round().astype(np.uint8)


def encode_image(array: np.ndarray, fmt: str, quality: int = 90) -> bytes:
    """``array`` as PNG, JPEG (``jpeg``/``jpg``) or WebP bytes; bool arrays become 1-bit PNGs.

    ``quality`` applies to JPEG and WebP.
    """
    try:
        pil_format = IMAGE_FORMATS[fmt.lower()]
    except KeyError:
        raise ValueError(
            f"unknown image format {fmt!r} (choose {', '.join(IMAGE_FORMATS)})"
        ) from None
    if array.dtype == bool and pil_format == "PNG":
        return mask_png(array)
    image = to_uint8_image(array)
    if pil_format == "JPEG" and (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        # libjpeg-turbo without the imaging library's copies: the same bytes, in 0.6× the time
        return imagecodecs.jpeg8_encode(np.ascontiguousarray(image), level=int(quality))
    buf = io.BytesIO()
    kwargs: dict[str, Any] = {} if pil_format == "PNG" else {"quality": int(quality)}
    Image.fromarray(image).save(buf, format=pil_format, **kwargs)
    return buf.getvalue()


def mask_png(mask: np.ndarray, level: int = MASK_PNG_LEVEL) -> bytes:
    """A bool ``(h, w)`` mask as a 1-bit grayscale PNG (rows packed 8 pixels a byte, filter
    none, one IDAT chunk): what the imaging library writes for mode ``1``, in a tenth of its
    time (DEFLATE by libdeflate where imagecodecs has it, else zlib)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2 or 0 in mask.shape:
        raise ValueError(f"a mask PNG needs a non-empty 2-D mask, got shape {mask.shape}")
    h, w = mask.shape
    rows = np.zeros((h, 1 + (w + 7) // 8), np.uint8)  # each row: filter byte 0, then its bits
    rows[:, 1:] = np.packbits(mask, axis=1)
    raw = rows.tobytes()
    data = (
        imagecodecs.deflate_encode(raw, level=level)
        if imagecodecs.DEFLATE.available
        else zlib.compress(raw, level)
    )
    header = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)  # 1 bit, gray, deflate, no interlace
    return _PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@dataclass(frozen=True)
class TileCodec:
    """Pyramid tile codec settings; ``encode``/``decode`` one RGB tile, ``write_kw`` for tifffile."""

    name: str = "jpegxl"  # jpegxl | jpeg
    distance: float = 1.0
    effort: int = 3
    lossless: bool = False
    jpeg_quality: int = 90

    def _jxl_kw(self) -> dict[str, Any]:
        if self.lossless:
            return {"lossless": True, "effort": self.effort}
        return {"distance": float(self.distance), "effort": self.effort}

    def encode(self, tile: np.ndarray) -> bytes:
        if self.name == "jpegxl":
            return imagecodecs.jpegxl_encode(tile, numthreads=1, **self._jxl_kw())
        # the stream tifffile writes for compression="jpeg" on RGB: YCbCr, 2×2 subsampling
        return imagecodecs.jpeg8_encode(
            tile,
            level=int(self.jpeg_quality),
            colorspace="RGB",
            outcolorspace="YCBCR",
            subsampling=(2, 2),
        )

    def decode(self, data: bytes) -> np.ndarray:
        if self.name == "jpegxl":
            return imagecodecs.jpegxl_decode(data)
        return imagecodecs.jpeg8_decode(data, colorspace="YCBCR", outcolorspace="RGB")

    @property
    def write_kw(self) -> dict[str, Any]:
        if self.name == "jpegxl":
            return {
                "compression": "jpegxl",
                "compressionargs": self._jxl_kw(),
                "photometric": "rgb",
            }
        return {
            "compression": "jpeg",
            "compressionargs": {"level": int(self.jpeg_quality)},
            "photometric": "rgb",
            "subsampling": (2, 2),
        }

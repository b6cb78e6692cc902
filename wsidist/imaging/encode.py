"""Encoders: pictures as PNG / JPEG / WebP bytes, and pyramid tiles as JPEG-XL / JPEG."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import imagecodecs
import numpy as np
from PIL import Image

IMAGE_FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}


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
    buf = io.BytesIO()
    if array.dtype == bool and pil_format == "PNG":
        Image.fromarray(array).convert("1").save(buf, format="PNG")
        return buf.getvalue()
    kwargs: dict[str, Any] = {} if pil_format == "PNG" else {"quality": int(quality)}
    Image.fromarray(to_uint8_image(array)).save(buf, format=pil_format, **kwargs)
    return buf.getvalue()


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

"""What inference writes for a slide: heatmap TIFFs, previews, arrays and the predictions table.

- A map (mean probability or a standard deviation, one class) is a tiled pyramidal TIFF of
  ``uint8 = round(255 · value)`` (deflate, 2× levels, mpp in the resolution tags, a JSON
  description), which :func:`wsidist.io.slide.open_slide` reads like any slide.
- Its preview is a PNG of at most 1024 px over the slide's thumbnail, with a colour bar.
- ``heatmap.npz`` holds the float16 arrays (mean, tta_std, ensemble_std: (C, h, w); weight:
  the covered area per heatmap px) and the scale.
- ``predictions/slide_id=<id>/part-0.parquet``: one row per patch (the slide id is in the path,
  hive style).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from typing import Any

import numpy as np
import pyarrow as pa
import tifffile
from PIL import Image, ImageDraw, ImageFont

from wsidist import layout
from wsidist.imaging import area_reduce
from wsidist.io.storage import Store

__all__ = ["colorize", "heatmap_tiff_bytes", "preview_png", "write_arrays", "write_map_images"]

PREVIEW_PX = 1024
_TITLES = {"mean": "probability", "tta_std": "TTA std", "ensemble_std": "ensemble std"}
# colour ramp (value, RGB): dark blue → teal → yellow → red
_RAMP = np.array(
    [(0.0, 30, 40, 120), (0.35, 30, 150, 160), (0.7, 250, 220, 50), (1.0, 220, 30, 30)]
)


def colorize(values: np.ndarray) -> np.ndarray:
    """uint8 (h, w, 3) colours of values in [0, 1]."""
    v = np.clip(np.asarray(values, np.float64), 0, 1)
    rgb = [np.interp(v, _RAMP[:, 0], _RAMP[:, i]) for i in (1, 2, 3)]
    return np.rint(np.stack(rgb, -1)).astype(np.uint8)


def heatmap_tiff_bytes(values: np.ndarray, *, mpp: float | None, description: dict) -> bytes:
    """A pyramidal tiled TIFF of a [0, 1] map as ``uint8 × 255`` (levels down to ≤ 256 px)."""
    level = np.rint(np.clip(values, 0, 1) * 255).astype(np.uint8)[..., None]
    with tempfile.TemporaryDirectory(prefix="wsidist-heatmap-") as tmp:
        path = os.path.join(tmp, "map.tiff")
        with tifffile.TiffWriter(path) as tw:
            k = 0
            while True:
                extra = {}
                if mpp:
                    ppcm = 1e4 / (mpp * 2**k)
                    extra = {"resolution": (ppcm, ppcm), "resolutionunit": "CENTIMETER"}
                tw.write(
                    level[..., 0], tile=(256, 256), photometric="minisblack",
                    compression="zlib", subfiletype=1 if k else 0, metadata=None,
                    description=json.dumps(description) if k == 0 else None, **extra,
                )  # fmt: skip
                if max(level.shape[:2]) <= 256:
                    break
                level, k = area_reduce(level, 2), k + 1
        with open(path, "rb") as fh:
            return fh.read()


def preview_size(shape: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of a map's preview: its long side scaled to ``PREVIEW_PX``."""
    h, w = shape
    f = PREVIEW_PX / max(h, w)
    return max(1, round(w * f)), max(1, round(h * f))


def preview_png(
    values: np.ndarray, weight: np.ndarray, thumb: np.ndarray, title: str, um_per_px: float | None
) -> bytes:
    """A PNG of ``values`` (in [0, 1]) blended over ``thumb`` where patches fell, with a colour
    bar, a title and the preview's scale."""
    size = preview_size(values.shape)
    grow = size[0] >= values.shape[1]
    resample = Image.Resampling.NEAREST if grow else Image.Resampling.BOX
    vals = np.asarray(Image.fromarray(values.astype(np.float32)).resize(size, resample))
    covered = Image.fromarray((weight > 0).astype(np.uint8) * 255).resize(size, resample)
    covered = np.asarray(covered) > 127
    base = np.asarray(Image.fromarray(thumb).resize(size, Image.Resampling.BOX), np.float64)
    blend = np.where(covered[..., None], 0.35 * base + 0.65 * colorize(vals), base)
    image = np.rint(blend).astype(np.uint8)
    bar_w, pad = 170, 16
    canvas = Image.new("RGB", (image.shape[1] + bar_w, max(image.shape[0], 300)), "white")
    canvas.paste(Image.fromarray(image), (0, 0))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=16)
    x0, top, height = image.shape[1] + pad, 48, 220
    ramp = colorize(np.linspace(1, 0, height))[:, None, :].repeat(28, 1)
    canvas.paste(Image.fromarray(ramp), (x0, top))
    draw.rectangle((x0, top, x0 + 27, top + height - 1), outline="black")
    for value in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = top + round((1 - value) * (height - 1))
        draw.line((x0 + 28, y, x0 + 34, y), fill="black")
        draw.text((x0 + 38, y - 9), f"{value:g}", fill="black", font=font)
    draw.text((x0 - 6, 12), title, fill="black", font=font)
    if um_per_px:
        scale_um = um_per_px * values.shape[1] / size[0]
        draw.text((x0 - 6, top + height + 14), f"{scale_um:.3g} um/px", fill="black", font=font)
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def write_arrays(store: Store, slide_id: str, maps: dict[str, np.ndarray], **attrs: Any) -> str:
    """``heatmap.npz``: float16 maps plus scalar attributes; returns its key."""
    buf = io.BytesIO()
    arrays = {k: np.asarray(v, np.float16) for k, v in maps.items()}
    np.savez_compressed(buf, **arrays, **{k: np.asarray(v) for k, v in attrs.items()})
    key = layout.heatmap_arrays_key(slide_id)
    store.write_bytes(key, buf.getvalue())
    return key


def write_predictions(store: Store, slide_id: str, table: pa.Table) -> str:
    key = layout.predictions_key(slide_id)
    store.write_parquet(key, table)
    return key


def write_map_images(
    store: Store, slide_id: str, name: str, maps: np.ndarray, weight: np.ndarray,
    thumb: np.ndarray, *, mpp: float | None, description: dict,
) -> list[str]:  # fmt: skip
    """TIFF and PNG preview of every class of one map kind; returns the keys."""
    keys = []
    for c, values in enumerate(maps):
        desc = {**description, "map": name, "class": c}
        tiff_key = layout.heatmap_image_key(slide_id, name, c, "tiff")
        store.write_bytes(tiff_key, heatmap_tiff_bytes(values, mpp=mpp, description=desc))
        png_key = layout.heatmap_image_key(slide_id, name, c, "png")
        title = f"{_TITLES.get(name, name)}, class {c}"
        um = mpp if mpp else None
        store.write_bytes(png_key, preview_png(values, weight, thumb, title, um))
        keys += [tiff_key, png_key]
    return keys

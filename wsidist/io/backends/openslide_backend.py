"""OpenSlide backend: every vendor format OpenSlide knows (SVS, NDPI, MRXS, DICOM, …)."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import openslide

from wsidist.errors import SlideError


def can_open(path: str) -> bool:
    try:
        return openslide.OpenSlide.detect_format(path) is not None
    except Exception:  # noqa: BLE001 — detection must never raise
        return False


def rgba_to_rgb_on_white(rgba: np.ndarray) -> np.ndarray:
    """Composite non-premultiplied RGBA onto white (alpha 0 → 255), as uint8 RGB."""
    rgb = rgba[..., :3]
    alpha = rgba[..., 3:4]
    if alpha.size == 0 or alpha.min() == 255:
        return np.ascontiguousarray(rgb)
    a = alpha.astype(np.uint32)
    out = (rgb.astype(np.uint32) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _float_or_none(value: str | None) -> float | None:
    try:
        result = float(value) if value is not None else None
    except ValueError:
        return None
    return result if result is not None and result > 0 else None


class OpenSlideBackend:
    name = "openslide"

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._osr = openslide.OpenSlide(path)
        except openslide.OpenSlideError as exc:
            raise SlideError(f"{path}: OpenSlide cannot open it: {exc}") from exc
        osr = self._osr
        props = dict(osr.properties)
        self.properties = MappingProxyType(props)
        self.vendor = props.get(openslide.PROPERTY_NAME_VENDOR) or "unknown"
        self.level_dimensions = tuple((int(w), int(h)) for w, h in osr.level_dimensions)
        self.level_downsamples = tuple(float(d) for d in osr.level_downsamples)
        self.mpp_x = _float_or_none(props.get(openslide.PROPERTY_NAME_MPP_X))
        self.mpp_y = _float_or_none(props.get(openslide.PROPERTY_NAME_MPP_Y))
        self.objective_power = _float_or_none(props.get(openslide.PROPERTY_NAME_OBJECTIVE_POWER))
        self.associated_images = tuple(sorted(osr.associated_images.keys()))
        tw = props.get("openslide.level[0].tile-width")
        th = props.get("openslide.level[0].tile-height")
        self.tile_size = (int(tw), int(th)) if tw and th else None
        self.compression = None

    def read_region(self, x: int, y: int, level: int, size: tuple[int, int]) -> np.ndarray:
        w, h = size
        if w == 0 or h == 0:
            return np.full((h, w, 3), 255, np.uint8)
        try:
            img = self._osr.read_region((x, y), level, (w, h))
        except openslide.OpenSlideError as exc:
            raise SlideError(
                f"{self.path}: reading level {level} at ({x}, {y}) size {w}×{h} failed: {exc}"
            ) from exc
        return rgba_to_rgb_on_white(np.asarray(img))

    def read_level(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        # OpenSlide takes level-0 coordinates; it maps them back with the level's downsample.
        ds = self.level_downsamples[level]
        return self.read_region(round(x * ds), round(y * ds), level, (w, h))

    def associated_image(self, name: str) -> np.ndarray:
        try:
            img = self._osr.associated_images[name]
        except KeyError:
            raise SlideError(
                f"{self.path}: no associated image {name!r} (has: {', '.join(self.associated_images) or 'none'})"
            ) from None
        except openslide.OpenSlideError as exc:
            raise SlideError(
                f"{self.path}: reading associated image {name!r} failed: {exc}"
            ) from exc
        return rgba_to_rgb_on_white(np.asarray(img.convert("RGBA")))

    def close(self) -> None:
        self._osr.close()

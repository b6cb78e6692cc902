"""Synthetic whole-slide images with known tissue and pen masks.

Everything is drawn from a label map on a grid of `CELL` x `CELL` level-0 pixels (glass, tissue,
fat, pens of five colours, dust, bubble rims, scanner borders; :mod:`wsidist.demo.layout`), so
the truth is exact at any scale. Level 0 is rendered tile by tile (:mod:`wsidist.demo.render`)
and written as a tiled pyramidal JPEG TIFF that OpenSlide opens (aperio or generic-tiff).
Memory: the label map (1/16 of level-0 area, 1 byte) and level 1 (1/16 of level 0, RGB; on disk
beside the output when large) are held; level 0 never is. The failure classes the tissue
detector is tested on are in :mod:`wsidist.demo.classes`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import tifffile
from threadpoolctl import threadpool_limits

from wsidist.demo.layout import (
    BORDER,
    BUBBLE,
    CELL,
    DEBRIS,
    FAT,
    GLASS,
    PEN_BLACK,
    PEN_BLUE,
    PEN_GREEN,
    PEN_LABELS,
    PEN_NAVY,
    PEN_RED,
    TISSUE,
    TISSUE_LABELS,
    blur_discs,
    layout_labels,
)
from wsidist.demo.render import TileSource, render_tile
from wsidist.demo.spec import SynthSpec
from wsidist.imaging import area_reduce, summed_area_table

__all__ = [
    "BORDER",
    "BUBBLE",
    "CELL",
    "DEBRIS",
    "FAT",
    "GLASS",
    "PEN_BLACK",
    "PEN_BLUE",
    "PEN_GREEN",
    "PEN_LABELS",
    "PEN_NAVY",
    "PEN_RED",
    "TISSUE",
    "SynthSpec",
    "SynthTruth",
    "blur_discs",
    "demo_specs",
    "generate_demo_slides",
    "synth_truth",
    "write_synthetic_slide",
]

APERIO_HEAD = "Aperio Image Library v12.0.15 \r\n"
_MEMMAP_BYTES = 256 * 2**20  # level 1 larger than this is kept in a file beside the output


@dataclass(frozen=True, eq=False)
class SynthTruth:
    """Known answer for a synthetic slide: `labels` on a CELL grid clipped to the slide."""

    spec: SynthSpec
    labels: np.ndarray  # uint8 (ceil(H/CELL), ceil(W/CELL))

    def fraction(self, scale: float, labels: tuple[int, ...]) -> np.ndarray:
        """Fraction of each output pixel's level-0 area covered by `labels`."""
        return _box_fraction(
            np.isin(self.labels, labels), self.spec.width, self.spec.height, float(scale)
        )

    def tissue_mask(self, scale: float) -> np.ndarray:
        """bool (ceil(H/scale), ceil(W/scale)): majority of the pixel's level-0 area is tissue."""
        return self.fraction(scale, TISSUE_LABELS) > 0.5

    def pen_mask(self, scale: float, colours: tuple[str, ...] | None = None) -> np.ndarray:
        """Majority of the pixel is pen ink (of ``colours``, default every colour)."""
        labels = tuple(PEN_LABELS[c] for c in colours) if colours else tuple(PEN_LABELS.values())
        return self.fraction(scale, labels) > 0.5

    @property
    def tissue_fraction(self) -> float:
        return float(self.fraction(max(self.spec.width, self.spec.height), TISSUE_LABELS)[0, 0])

    @property
    def pen_fraction(self) -> float:
        big = max(self.spec.width, self.spec.height)
        return float(self.fraction(big, tuple(PEN_LABELS.values()))[0, 0])


def synth_truth(spec: SynthSpec) -> SynthTruth:
    """The truth for `spec` without rendering pixels (fast)."""
    ch, cw = -(-spec.height // CELL), -(-spec.width // CELL)
    return SynthTruth(spec, layout_labels(spec, ch, cw)[0])


# ---------------------------------------------------------------- truth at any scale
def _box_fraction(cells: np.ndarray, width: int, height: int, scale: float) -> np.ndarray:
    """Exact covered fraction of each ceil(H/s) x ceil(W/s) box of a piecewise-constant map."""
    if not scale > 0:
        raise ValueError("scale must be > 0")
    ch, cw = cells.shape
    sat = summed_area_table(cells, np.int32)
    nx, ny = math.ceil(width / scale - 1e-9), math.ceil(height / scale - 1e-9)
    xb = np.minimum(np.arange(nx + 1) * scale, width) / CELL
    ix = np.minimum(np.floor(xb).astype(int), cw - 1)
    fx = xb - ix
    out = np.empty((ny, nx), np.float32)
    wid = np.diff(xb)
    for r0 in range(0, ny, 512):
        yb = np.minimum(np.arange(r0, min(ny, r0 + 512) + 1) * scale, height) / CELL
        iy = np.minimum(np.floor(yb).astype(int), ch - 1)
        fy = (yb - iy)[:, None]
        rows = sat[iy].astype(np.float64) * (1 - fy) + sat[iy + 1] * fy
        g = rows[:, ix] * (1 - fx) + rows[:, ix + 1] * fx
        area = g[1:, 1:] - g[:-1, 1:] - g[1:, :-1] + g[:-1, :-1]
        out[r0 : r0 + yb.size - 1] = area / np.maximum(np.diff(yb)[:, None] * wid[None, :], 1e-12)
    return out


# ---------------------------------------------------------------- rendering
def _render_tile(spec: SynthSpec, lab: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """The level-0 tile at (x0, y0), rendered from the label map (see :mod:`.render`)."""
    return render_tile(spec, lab, x0, y0)


def _level_array(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    if math.prod(shape) <= _MEMMAP_BYTES:
        return np.zeros(shape, np.uint8)
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)


def _reduce_banded(src: np.ndarray, dst: np.ndarray, band: int = 4096) -> None:
    """dst = area_reduce(src, 4), a band of source rows at a time (bounded memory)."""
    for r0 in range(0, src.shape[0], band):
        dst[r0 // 4 : r0 // 4 + -(-min(band, src.shape[0] - r0) // 4)] = area_reduce(
            np.asarray(src[r0 : r0 + band]), 4
        )


def write_synthetic_slide(path: str | Path, spec: SynthSpec | None = None) -> SynthTruth:
    """Write a tiled pyramidal JPEG TIFF for `spec` at `path`; return its truth."""
    # the noise is many small matrix products: BLAS threads only contend for them
    with threadpool_limits(1, user_api="blas"):
        return _write(Path(path), spec or SynthSpec())


def _write(path: Path, spec: SynthSpec) -> SynthTruth:
    t = spec.tile
    ntx, nty = -(-spec.width // t), -(-spec.height // t)
    lab = np.zeros((nty * t // CELL, ntx * t // CELL), np.uint8)
    ch, cw = -(-spec.height // CELL), -(-spec.width // CELL)
    labels, under_cells = layout_labels(spec, ch, cw)
    lab[:ch, :cw] = labels
    under = None
    if under_cells is not None:
        under = np.zeros(lab.shape, bool)
        under[:ch, :cw] = under_cells
    tiles = TileSource(spec, lab, under)
    dims = spec.level_dimensions
    scratch = [path.with_name(f"{path.name}.level{k}.npy") for k in range(len(dims))]
    levels: list[np.ndarray] = []
    if len(dims) > 1:
        levels.append(_level_array(scratch[1], (dims[1][1], dims[1][0], 3)))

    def level0_tiles():
        q = t // 4
        for ty in range(nty):
            rows = min(t, spec.height - ty * t)
            # encode the whole band first: tifffile stops pulling after the last tile
            band = [tiles.tile(tx * t, ty * t) for tx in range(ntx)]
            if levels:
                y1 = ty * q
                for tx, (_, img) in enumerate(band):
                    cols = min(t, spec.width - tx * t)
                    small = area_reduce(img[:rows, :cols], 4)
                    levels[0][y1 : y1 + small.shape[0], tx * q : tx * q + small.shape[1]] = small
            for data, _ in band:
                yield data

    desc0 = f"{spec.width}x{spec.height} [0,0 {spec.width}x{spec.height}] ({t}x{t})"
    q = spec.jpeg_quality

    def meta(k: int) -> dict:
        if spec.vendor_style == "aperio":
            d = APERIO_HEAD + desc0
            if k:
                d += f" -> {dims[k][0]}x{dims[k][1]}"
            d += f" JPEG/RGB Q={q}"
            if k == 0:
                if spec.objective_power:
                    d += f"|AppMag = {spec.objective_power:g}"
                if spec.mpp:
                    d += f"|MPP = {spec.mpp:g}"
                d += "".join(f"|{key} = {value}" for key, value in spec.properties)
            return {"description": d}
        extra = {}
        if k == 0 and spec.properties:
            extra["description"] = "; ".join(f"{key}={value}" for key, value in spec.properties)
        if spec.mpp:
            ppcm = 1e4 / (spec.mpp * spec.level_downsamples[k])
            return {"resolution": (ppcm, ppcm), "resolutionunit": "CENTIMETER", **extra}
        return extra

    kw = dict(photometric="rgb", compression="jpeg", compressionargs={"level": q}, metadata=None)
    bigtiff = spec.width * spec.height * 3 > 2**31
    tmp = path.with_name(path.name + ".part")
    try:
        with tifffile.TiffWriter(tmp, bigtiff=bigtiff) as tw:
            tw.write(
                level0_tiles(),
                shape=(spec.height, spec.width, 3),
                dtype=np.uint8,
                tile=(t, t),
                **kw,
                **meta(0),
            )
            for k in range(2, len(dims)):
                levels.append(_level_array(scratch[k], (dims[k][1], dims[k][0], 3)))
                _reduce_banded(levels[-2], levels[-1])
            if spec.vendor_style == "aperio":  # stripped thumbnail as the second page, like Aperio
                thumb = np.asarray(levels[-1]) if levels else render_tile(spec, lab, 0, 0)
                tw.write(
                    thumb,
                    **kw,
                    description=APERIO_HEAD + f"{desc0} -> {thumb.shape[1]}x{thumb.shape[0]} - ",
                )
            for k, arr in enumerate(levels, start=1):
                # Aperio marks levels as full-resolution images (tifffile's SVS reader relies on it)
                reduced = int(spec.vendor_style == "generic")
                tw.write(arr, tile=(t, t), subfiletype=reduced, **kw, **meta(k))
        tmp.replace(path)
    finally:
        levels.clear()
        for f in scratch:
            if f.exists():
                os.remove(f)
    return SynthTruth(spec, lab[:ch, :cw].copy())


def demo_specs(n: int = 3, seed: int = 0) -> list[SynthSpec]:
    """Varied small specs: typical, heavy pens (generic TIFF), mostly glass at 0.25 mpp."""
    base = [
        SynthSpec(width=6000, height=4000, n_blobs=4),
        SynthSpec(width=8000, height=6000, n_blobs=3, strokes_per_pen=3, vendor_style="generic"),
        SynthSpec(
            width=7000,
            height=5000,
            n_blobs=1,
            blob_size=0.8,
            pens=("blue",),
            mpp=0.25,
            objective_power=40,
        ),
    ]
    return [replace(base[i % 3], seed=seed * 1000 + i) for i in range(n)]


DEMO_TRUTH_SCALE = 8.0  # the demo's true tissue masks: level-0 px per px


def generate_demo_slides(
    folder: str | Path,
    n: int = 3,
    seed: int = 0,
    truth_dir: str | Path | None = None,
    truth_scale: float = DEMO_TRUTH_SCALE,
    annotations_dir: str | Path | None = None,
) -> list[Path]:
    """Write `n` demo slides into `folder` (aperio ones as .svs, generic as .tiff); with
    `truth_dir`, each slide's true tissue mask too: `<stem>.png` at `truth_scale` level-0 px
    per px (a pixel is tissue when most of it is), its grid in the PNG's ``wsidist`` chunk;
    with `annotations_dir`, `<stem>.geojson`: the truth as QuPath annotations (classes
    ``tissue``, ``fat`` and ``pen``, in level-0 px)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = ("typical", "pens", "sparse")
    out = []
    for i, spec in enumerate(demo_specs(n, seed)):
        ext = ".svs" if spec.vendor_style == "aperio" else ".tiff"
        p = folder / f"synth_{i:02d}_{names[i % 3]}{ext}"
        truth = write_synthetic_slide(p, spec)
        if truth_dir is not None:
            write_truth_mask(truth, Path(truth_dir) / f"{p.stem}.png", truth_scale)
        if annotations_dir is not None:
            write_truth_annotations(truth, Path(annotations_dir) / f"{p.stem}.geojson")
        out.append(p)
    return out


def write_truth_annotations(truth: SynthTruth, path: Path, scale: float = DEMO_TRUTH_SCALE) -> None:
    """The truth's tissue, fat and pen regions as a QuPath GeoJSON FeatureCollection."""
    import json

    from wsidist.demo.annotations import geojson_doc, mask_classes

    groups = {"tissue": (TISSUE,), "fat": (FAT,), "pen": tuple(PEN_LABELS.values())}
    masks = {name: truth.fraction(scale, labels) > 0.5 for name, labels in groups.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(geojson_doc(mask_classes(masks, scale))))


def write_truth_mask(truth: SynthTruth, path: Path, scale: float = DEMO_TRUTH_SCALE) -> None:
    """The true tissue mask at ``scale`` as a 1-bit PNG with its grid (``metrics`` reads it)."""
    from wsidist.imaging.masks import encode_mask_png

    spec = truth.spec
    grid = {"downsample": float(scale), "width0": spec.width, "height0": spec.height,
            "truth": "tissue"}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_mask_png(truth.tissue_mask(scale), grid))

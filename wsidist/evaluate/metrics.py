"""``wsidist metrics PRED GT``: Dice, Jaccard, precision, recall and accuracy per slide.

Slides of PRED and GT (see :mod:`wsidist.evaluate.sources`) are matched by id, ignoring
case; a slide on one side only is a ``pred_only`` / ``gt_only`` row, never silently dropped,
and a slide that cannot be read is a ``failed`` row with its reason.

**The common grid** (per slide, written in each row and the table's metadata): with
``scale`` given, ``scale`` level-0 px per pixel over the slide (its size must be known). Else
the grid of one of the masks, as is: ``grid="coarser"`` (default; the mask of fewer pixels),
``"finer"``, ``"pred"`` or ``"gt"``. Annotations have no grid of their own: with a mask they
take its grid, alone (both sides annotations) :data:`DEFAULT_SCALE`. A mask's level-0 px per
pixel comes from the stage-1 ``scale``, the PNG's ``wsidist`` chunk, the other mask's when
both have one shape, or the slide size over the mask size (a mask is taken to span the slide); with no slide size and no scale known, two
masks are taken to span the same extent.

**Resampling**: a mask on another grid is area-weighted, a pixel set when at least half of it
is covered (:func:`wsidist.imaging.masks.resample_mask`); annotations are rasterised with a
pixel set when its centre is inside. Overall figures are given twice: ``pooled`` (counts
summed over slides, every pixel the same weight) and ``mean`` (mean of the slides' values).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import shapely.affinity

from wsidist.errors import ConfigError, WsidistError
from wsidist.evaluate.sources import Raster, Source, Vector, open_source, slide_sizes
from wsidist.imaging.labels import rasterise_labels
from wsidist.imaging.mask_metrics import METRICS, Counts, confusion, mean_of, scores
from wsidist.imaging.masks import grid_shape, resample_mask
from wsidist.runtime.budget import DEFAULT_MEMORY_BUDGET_MB, MB

__all__ = ["DEFAULT_SCALE", "GRIDS", "METRICS_SCHEMA", "MetricsOptions", "compare"]

DEFAULT_SCALE = 32.0  # the stage-1 default: the grid of two sets of annotations
GRIDS = ("coarser", "finer", "pred", "gt")
BYTES_PER_GRID_PX = 16  # two masks on the grid, the float coverage of a resample, the counts

METRICS_SCHEMA = pa.schema(
    [
        ("scope", pa.string()),  # slide | pooled | mean
        ("slide_id", pa.string()),
        ("status", pa.string()),  # ok | failed | pred_only | gt_only
        ("error", pa.string()),
        *((name, pa.float64()) for name in METRICS),
        ("n_slides", pa.int64()),
        ("tp", pa.int64()),
        ("fp", pa.int64()),
        ("fn", pa.int64()),
        ("tn", pa.int64()),
        ("grid", pa.string()),  # which grid, in words
        ("grid_px0_x", pa.float64()),  # level-0 px per grid px (null: not known)
        ("grid_px0_y", pa.float64()),
        ("grid_width", pa.int64()),
        ("grid_height", pa.int64()),
        ("pred_resampled", pa.string()),  # how PRED reached the grid
        ("gt_resampled", pa.string()),
        ("pred_source", pa.string()),
        ("gt_source", pa.string()),
    ]
)


@dataclass(frozen=True)
class MetricsOptions:
    """How to compare: the grid rule, the annotation class, where slide sizes come from."""

    grid: str = "coarser"
    scale: float | None = None
    class_name: str | None = None
    slides: str | None = None  # a slides.parquet (or stage-1 folder) for slide sizes
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB

    def __post_init__(self) -> None:
        if self.grid not in GRIDS:
            raise ConfigError(f"--grid {self.grid!r}: choose one of {', '.join(GRIDS)}")
        if self.scale is not None and not self.scale > 0:
            raise ConfigError(f"--scale must be > 0, got {self.scale}")


@dataclass(frozen=True)
class Grid:
    px0: tuple[float, float] | None  # level-0 px per pixel; None: only relative to the masks
    shape: tuple[int, int]
    words: str


def compare(
    pred: str,
    gt: str,
    options: MetricsOptions | None = None,
    storage_options: dict[str, Any] | None = None,
) -> pa.Table:
    """The metrics table: one row per slide of either side, then ``pooled`` and ``mean``."""
    options = options or MetricsOptions()
    sides = open_source(pred, storage_options), open_source(gt, storage_options)
    sizes = slide_sizes(options.slides, storage_options) if options.slides else {}
    pairs, rows = _match(*sides)
    done: list[tuple[dict, Counts]] = []
    for pred_id, gt_id in pairs:
        try:
            row, counts = _one_slide(pred_id, gt_id, *sides, sizes, options)
            done.append((row, counts))
            rows.append(row)
        except (WsidistError, ValueError) as exc:
            rows.append({"scope": "slide", "slide_id": pred_id, "status": "failed",
                         "error": str(exc)})  # fmt: skip
    rows.sort(key=lambda r: (r["slide_id"].lower(), r["slide_id"]))
    total = sum((c for _, c in done), Counts())
    summary = {"n_slides": len(done), "status": "ok"}
    pooled = scores(total) if done else dict.fromkeys(METRICS)  # no slide: nothing to say
    rows.append({"scope": "pooled", **summary, **pooled, **vars(total)})
    rows.append({"scope": "mean", **summary, **mean_of(r for r, _ in done)})
    table = pa.Table.from_pylist([{n: r.get(n) for n in METRICS_SCHEMA.names} for r in rows],
                                 schema=METRICS_SCHEMA)  # fmt: skip
    meta = {"pred": sides[0].describe(), "gt": sides[1].describe(), "grid": options.grid,
            "scale": options.scale, "class": options.class_name,
            "resampling": "area-weighted, set where ≥ 50 % covered; annotations: pixel centres"}  # fmt: skip
    return table.replace_schema_metadata({"wsidist": json.dumps(meta)})


def _match(pred: Source, gt: Source) -> tuple[list[tuple[str, str]], list[dict]]:
    """(pred id, gt id) pairs matched ignoring case, and the rows of the unmatched."""
    gt_ids = {s.lower(): s for s in (*gt.items, *gt.failed)}
    pairs, rows, seen = [], [], set()
    for sid in sorted({*pred.items, *pred.failed}):
        other = gt_ids.get(sid.lower())
        if sid in pred.failed or (other is not None and other in gt.failed):
            reason = pred.failed.get(sid) or f"ground truth: {gt.failed[other]}"
            rows.append({"scope": "slide", "slide_id": sid, "status": "failed", "error": reason})
        elif other is None:
            rows.append({"scope": "slide", "slide_id": sid, "status": "pred_only",
                         "error": f"no ground truth for it in {gt.url}"})  # fmt: skip
        else:
            pairs.append((sid, other))
        if other is not None:
            seen.add(other)
    for sid in sorted(set(gt.items) - seen):
        rows.append({"scope": "slide", "slide_id": sid, "status": "gt_only",
                     "error": f"no prediction for it in {pred.url}"})  # fmt: skip
    for sid in sorted(set(gt.failed) - seen):
        rows.append({"scope": "slide", "slide_id": sid, "status": "gt_only",
                     "error": f"no prediction; ground truth: {gt.failed[sid]}"})  # fmt: skip
    return pairs, rows


def _one_slide(
    pred_id: str, gt_id: str, pred: Source, gt: Source, sizes: dict, options: MetricsOptions
) -> tuple[dict, Counts]:
    size = sizes.get(pred_id) or sizes.get(gt_id) or pred.size(pred_id) or gt.size(gt_id)
    max_px = int(options.memory_budget_mb * MB / BYTES_PER_GRID_PX)
    a = pred.load(pred_id, class_name=options.class_name, max_px=max_px)
    b = gt.load(gt_id, class_name=options.class_name, max_px=max_px)
    a, b = _with_px0(a, b, size), _with_px0(b, a, size)
    grid = _grid(a, b, size, options)
    if grid.shape[0] * grid.shape[1] > max_px:
        raise WsidistError(
            f"the grid {grid.shape[1]}×{grid.shape[0]} px is over the memory budget "
            f"({options.memory_budget_mb:g} MB): use a larger --scale"
        )
    pa_mask, pa_how = _on_grid(a, b, grid)
    gt_mask, gt_how = _on_grid(b, a, grid)
    counts = confusion(pa_mask, gt_mask)
    px0 = grid.px0 or (None, None)
    row = {
        "scope": "slide", "slide_id": pred_id, "status": "ok", **scores(counts), **vars(counts),
        "n_slides": 1, "grid": grid.words, "grid_px0_x": px0[0], "grid_px0_y": px0[1],
        "grid_width": grid.shape[1], "grid_height": grid.shape[0], "pred_resampled": pa_how,
        "gt_resampled": gt_how, "pred_source": a.source, "gt_source": b.source,
    }  # fmt: skip
    return row, counts


def _with_px0(side: Raster | Vector, other: Raster | Vector, size) -> Raster | Vector:
    """``side`` with its level-0 px per pixel: a mask of the other's shape shares its grid;
    else the slide size over the mask size (the mask spans the slide)."""
    if not isinstance(side, Raster) or side.px0 is not None:
        return side
    if isinstance(other, Raster) and other.px0 and other.mask.shape == side.mask.shape:
        return Raster(side.mask, other.px0, side.source)
    if size is not None:
        rows, cols = side.mask.shape
        return Raster(side.mask, (size[0] / cols, size[1] / rows), side.source)
    return side


def _grid(a: Raster | Vector, b: Raster | Vector, size, options: MetricsOptions) -> Grid:
    if options.scale is not None:
        if size is None:
            raise WsidistError("--scale needs the slide's size: pass --slides slides.parquet")
        s = float(options.scale)
        return Grid((s, s), grid_shape(*size, s), f"--scale {s:g} over the slide")
    rasters = [(name, r) for name, r in (("pred", a), ("gt", b)) if isinstance(r, Raster)]
    if not rasters:
        if size is None:
            raise WsidistError("two sets of annotations need the slide's size: pass --slides")
        s = DEFAULT_SCALE
        return Grid((s, s), grid_shape(*size, s), f"scale {s:g} over the slide (default)")
    choice = rasters[0]
    if len(rasters) == 2:
        named = dict(rasters)
        if options.grid in named:
            choice = (options.grid, named[options.grid])
        elif rasters[0][1].mask.size != rasters[1][1].mask.size:  # else the truth's grid
            pick = min if options.grid == "coarser" else max
            choice = pick(rasters, key=lambda nr: nr[1].mask.size)
        else:
            choice = rasters[1]
    name, r = choice
    if r.px0 is None and len(rasters) == 1:
        raise WsidistError(
            f"the {name} mask's scale is unknown and annotations need level-0 px: pass --slides"
        )
    words = f"the {name} mask's grid"
    if len(rasters) == 2 and options.grid in ("coarser", "finer"):
        same = rasters[0][1].mask.shape == rasters[1][1].mask.shape
        words += " (both of one size)" if same else f" (the {options.grid})"
    if r.px0 is None:
        words += ", both masks taken to span the same extent (no slide size known)"
    return Grid(r.px0, r.mask.shape, words)


def _on_grid(side: Raster | Vector, other: Raster | Vector, grid: Grid):
    """``side`` on ``grid``, and how it got there."""
    if isinstance(side, Vector):
        gx, gy = grid.px0  # annotations only meet grids in level-0 px (see _grid)
        geometry = shapely.affinity.scale(side.geometry, 1 / gx, 1 / gy, origin=(0, 0))
        mask = rasterise_labels({"class": geometry}, grid.shape, 1.0) > 0
        repaired = f", {side.repaired} geometries repaired" if side.repaired else ""
        return mask, f"rasterised (pixel centres inside){repaired}"
    if side.mask.shape == grid.shape and (grid.px0 is None or side.px0 == grid.px0):
        return side.mask, "native"
    if grid.px0 is None:  # relative: the grid is the other mask's, both span one extent
        gx, gy = 1.0, 1.0
        sx, sy = grid.shape[1] / side.mask.shape[1], grid.shape[0] / side.mask.shape[0]
    else:
        (gx, gy), (sx, sy) = grid.px0, side.px0
    how = f"area ≥ 50 % from {side.mask.shape[1]}×{side.mask.shape[0]} px"
    return resample_mask(side.mask, (sx, sy), (gx, gy), grid.shape), how

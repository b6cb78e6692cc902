"""Inference for one slide, run on a worker: patches → models → heatmaps, predictions, regions.

The slide's patches are a selection's boxes or a grid over its tissue mask (the stage-1 mask
when the job reads a stage-1 output, else computed with the config's preset). Batches are read
while the models run; predictions are averaged into a tiled down-scaled heatmap; the maps,
the per-patch table and the region features are written under the output root.
:func:`wsidist.runtime.tasks.run_slide_task` supplies the rerun skip (while the predictions
still exist), the failure row and the status JSON.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from wsidist import layout
from wsidist.filters import FilterContext, tissue_mask
from wsidist.imaging.masks import mask_downsample
from wsidist.infer import tta
from wsidist.infer.config import InferConfig
from wsidist.infer.heatmap import HeatmapAccumulator
from wsidist.infer.models import load_model
from wsidist.infer.outputs import (
    preview_size,
    write_arrays,
    write_map_images,
    write_predictions,
)
from wsidist.infer.patches import grid_boxes, patch_geometry, read_batches
from wsidist.infer.predict import PredictionTable, predict_batch
from wsidist.infer.regions import region_rows, slide_features
from wsidist.io.remote import CacheSpec
from wsidist.io.slide import Slide, open_slide
from wsidist.io.storage import Store
from wsidist.runtime.jobconfig import SCHEMA_VERSION
from wsidist.runtime.tasks import run_slide_task

__all__ = ["InferTask", "infer_slide"]


@dataclass(frozen=True)
class InferTask:
    """One slide of an inference job; ``boxes`` (level-0 x, y, w, h) from a selection, or
    None for a grid over the tissue mask."""

    slide_id: str
    url: str
    boxes: tuple[tuple[int, int, int, int], ...] | None = None
    config_hash: str = ""  # the job's hash with this task's boxes and the models' digests


def infer_slide(
    task: InferTask,
    *,
    config: InferConfig,
    store: Store,
    masks: Store | None = None,
    normalizer=None,
    overwrite: bool = False,
    cache_dir: str | CacheSpec | None = None,
) -> dict[str, Any]:
    """Infer one slide and return its ``inference.parquet`` row (with its regions and
    features). Never raises for slide errors."""

    def work() -> dict[str, Any]:
        with open_slide(task.url, cache_dir=cache_dir) as slide:
            return _infer(slide, task, config, store, masks, normalizer)

    return run_slide_task(
        task,
        work,
        store=store,
        config_hash=task.config_hash,
        status_key=layout.inference_status_key(task.slide_id),
        overwrite=overwrite,
        still_current=lambda _: store.exists(layout.predictions_key(task.slide_id)),
        on_failure=lambda: store.remove(layout.predictions_partition(task.slide_id), True),
        finish=_throughput,
    )


def _throughput(row: dict[str, Any]) -> dict[str, Any]:
    if row.get("n_patches") and row.get("seconds"):
        return {"patches_per_s": round(row["n_patches"] / row["seconds"], 2)}
    return {}


def _infer(slide: Slide, task, config: InferConfig, store: Store, masks, normalizer) -> dict:
    width, height = slide.dimensions
    geom = patch_geometry(slide, config)
    mask, mask_ds, mask_source = _mask(slide, task, config, masks)
    if task.boxes is not None:
        boxes, tissue = list(task.boxes), [None] * len(task.boxes)
    else:
        boxes, tissue = grid_boxes(
            width, height, geom.side_px0, geom.stride_px0, mask, mask_ds, config.min_tissue
        )
    if not boxes:
        raise ValueError(f"no patches: no tissue in the {mask_source} tissue mask")
    models = [load_model(spec, threads=config.model_threads) for spec in config.models]
    augs = tta.augmentations(config.tta)
    table, acc = PredictionTable(), None
    seconds = {"read": 0.0, "model": 0.0, "heatmap": 0.0}
    peak_bytes = 0
    for start, batch, read_s in read_batches(
        slide, boxes, geom.spec, config.batch_size, normalizer
    ):
        t0 = time.perf_counter()
        pred = predict_batch(models, augs, batch)
        t1 = time.perf_counter()
        if acc is None:
            acc = HeatmapAccumulator(width, height, config.heatmap_scale, pred.channels(0).shape[0])
        chunk = boxes[start : start + len(batch)]
        for i, (x, y, w, h) in enumerate(chunk):
            acc.add(x, y, w, h, pred.channels(i))
        table.add(chunk, tissue[start : start + len(batch)], pred)
        seconds["read"] += read_s
        seconds["model"] += t1 - t0
        seconds["heatmap"] += time.perf_counter() - t1
        peak_bytes = max(peak_bytes, acc.nbytes)
    t0 = time.perf_counter()
    values, weight = acc.result()
    n_classes = pred.mean.shape[1]
    maps = {name: values[i * n_classes : (i + 1) * n_classes] for i, name in enumerate(pred.names)}
    hm_mpp = slide.mpp_x * config.heatmap_scale if slide.mpp_x else None
    level = geom.spec.level
    preds = table.table(level=level, mpp=geom.mpp, input_px=geom.input_px)
    preds = preds.replace_schema_metadata(  # the id is the partition folder's, not a column
        {"wsidist.schema_version": SCHEMA_VERSION, "wsidist.config_hash": task.config_hash,
         "wsidist.slide_id": task.slide_id, "wsidist.url": task.url}
    )  # fmt: skip
    write_predictions(store, task.slide_id, preds)
    write_arrays(store, task.slide_id, {**maps, "weight": weight}, scale=config.heatmap_scale)
    thumb = _preview_thumbnail(slide, values.shape[1:])
    description = {"wsidist": "heatmap", "slide_id": task.slide_id, "source": task.url,
                   "heatmap_scale": config.heatmap_scale, "config_hash": task.config_hash}  # fmt: skip
    for name, arr in maps.items():
        write_map_images(store, task.slide_id, name, arr, weight, thumb, mpp=hm_mpp,
                         description=description)  # fmt: skip
    tissue_hm = _resample_mask(mask, mask_ds, config.heatmap_scale, values.shape[1:])
    regions, features = _regions(task.slide_id, maps["mean"], tissue_hm, config, slide.mpp_x)
    seconds["heatmap"] += time.perf_counter() - t0
    return {
        "n_patches": len(boxes), "n_classes": n_classes, "input_px": geom.input_px,
        "patch_px0": geom.side_px0, "stride_px0": geom.stride_px0, "patch_mpp": geom.mpp,
        "augmentations": len(augs), "models": len(models), "mask_source": mask_source,
        "heatmap_width": int(values.shape[2]), "heatmap_height": int(values.shape[1]),
        "heatmap_scale": config.heatmap_scale, "heatmap_bytes": peak_bytes,
        "read_seconds": round(seconds["read"], 3), "model_seconds": round(seconds["model"], 3),
        "heatmap_seconds": round(seconds["heatmap"], 3),
        "width": width, "height": height, "regions": regions, "features": features,
    }  # fmt: skip


def _regions(slide_id, mean, tissue, config: InferConfig, mpp) -> tuple[list, list]:
    n_classes = mean.shape[0]
    classes = config.classes
    if classes is None:
        classes = tuple(range(n_classes)) if n_classes == 1 else tuple(range(1, n_classes))
    regions, features = [], []
    for c in classes:
        if not 0 <= c < n_classes:
            raise ValueError(f"class {c} out of range: the model has {n_classes} classes")
        by_threshold = {
            t: region_rows(mean[c], t, scale=config.heatmap_scale, mpp=mpp)
            for t in config.thresholds
        }
        for rows in by_threshold.values():
            regions += [{"slide_id": slide_id, "class": c, **r} for r in rows]
        features.append(
            {"slide_id": slide_id, "class": c, **slide_features(mean[c], tissue, by_threshold)}
        )
    return regions, features


def _mask(slide: Slide, task, config: InferConfig, masks: Store | None):
    """(bool mask, its downsample, "stage1" | "computed")."""
    width, height = slide.dimensions
    if masks is not None:
        status = masks.read_json(layout.status_key(task.slide_id)) or {}
        if status.get("status") == "ok" and status.get("url") == task.url:
            try:
                data = masks.read_bytes(layout.mask_key(task.slide_id))
            except FileNotFoundError:
                data = None
            if data is not None:
                mask = np.asarray(Image.open(io.BytesIO(data)).convert("L")) > 0
                ds = mask_downsample(width, height, mask.shape, status.get("scale"))
                return mask, ds, "stage1"
    rgb = slide.thumbnail(config.mask_scale)
    ds = mask_downsample(width, height, rgb.shape, config.mask_scale)
    found, _ = tissue_mask(rgb, config.tissue, FilterContext(downsample=ds, mpp=slide.mpp_x))
    return found.array, ds, "computed"


def _resample_mask(mask: np.ndarray, mask_ds: float, scale: float, shape) -> np.ndarray:
    """The mask at heatmap pixels (nearest, at each heatmap pixel's centre)."""
    rows = np.minimum(
        ((np.arange(shape[0]) + 0.5) * scale / mask_ds).astype(int), mask.shape[0] - 1
    )
    cols = np.minimum(
        ((np.arange(shape[1]) + 0.5) * scale / mask_ds).astype(int), mask.shape[1] - 1
    )
    return mask[np.ix_(rows, cols)]


def _preview_thumbnail(slide: Slide, shape) -> np.ndarray:
    """The slide at the size of the maps' previews."""
    width = preview_size(shape)[0]
    return slide.thumbnail(slide.dimensions[0] / width)


INFERENCE_SCHEMA = pa.schema(
    [
        ("url", pa.string()), ("slide_id", pa.string()), ("status", pa.string()),
        ("error", pa.string()), ("n_patches", pa.int64()), ("n_classes", pa.int32()),
        ("input_px", pa.int32()), ("patch_px0", pa.int64()), ("stride_px0", pa.int64()),
        ("patch_mpp", pa.float64()), ("augmentations", pa.int32()), ("models", pa.int32()),
        ("mask_source", pa.string()), ("width", pa.int64()), ("height", pa.int64()),
        ("heatmap_width", pa.int64()), ("heatmap_height", pa.int64()),
        ("heatmap_scale", pa.float64()), ("heatmap_bytes", pa.int64()),
        ("read_seconds", pa.float64()), ("model_seconds", pa.float64()),
        ("heatmap_seconds", pa.float64()), ("seconds", pa.float64()),
        ("patches_per_s", pa.float64()), ("config_hash", pa.string()), ("worker", pa.string()),
        ("started_at", pa.string()), ("finished_at", pa.string()), ("skipped", pa.bool_()),
    ]
)  # fmt: skip

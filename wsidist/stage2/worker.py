"""Stage 2a for one slide, run on a worker: its tissue mask, then its glass-removed pyramid.

The mask is the slide's stage-1 mask (its ``status`` says ok for the same URL and the same
source file) or, when there is none, computed with the config's tissue preset. Inside a Dask
worker the pyramid's blocks of tiles are submitted back to the cluster, so one big slide uses
every worker; this task is the one writer. :func:`wsidist.runtime.tasks.run_slide_task` supplies
the rerun skip (same source, config, stage-1 mask hash and stage-1 config hash, and only while
the pyramid still exists), the failure row (a failed slide's earlier pyramid is removed) and
the status JSON.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from wsidist import layout
from wsidist.filters import FilterContext, tissue_mask
from wsidist.imaging.masks import mask_downsample
from wsidist.io.remote import CacheSpec, source_version
from wsidist.io.slide import Slide, open_slide
from wsidist.io.storage import Store
from wsidist.io.upload import open_head_last
from wsidist.runtime.budget import MB, check_memory
from wsidist.runtime.cluster import cluster_submitter, progress_reporter
from wsidist.runtime.tasks import SlideTask, run_slide_task
from wsidist.stage2.config import RewriteConfig
from wsidist.stage2.match import match_distance, source_quality
from wsidist.stage2.pyramid import PyramidOptions, pyramid_memory, write_pyramid
from wsidist.stage2.report import PYRAMIDS_SCHEMA, PyramidReport
from wsidist.stage2.transcode import transcode_pyramid

# peak bytes per pixel of computing a tissue mask at the filter scale (the image and the tissue
# pipeline; measured 10-20 B/px with the adaptive detector), plus the tile caches and block buffers of reading the slide
MASK_BYTES_PER_PX = 32
MASK_READ_BYTES = 160 * MB

__all__ = [
    "Stage1Mask", "computed_mask", "larger_warning", "mask_identity", "remove_outputs",
    "rewrite_slide", "stage1_mask",
]  # fmt: skip


@dataclass(frozen=True)
class Stage1Mask:
    """A slide's stage-1 mask as stored (PNG bytes) and the stage-1 config it came from."""

    png: bytes
    config_hash: str | None
    scale: float | None = None  # stage 1's scale (its status); None: the mask spans the slide

    @property
    def identity(self) -> dict[str, Any]:
        """What a pyramid made from this mask depends on (part of the rerun skip key)."""
        return {
            "mask_sha256": hashlib.sha256(self.png).hexdigest(),
            "mask_config_hash": self.config_hash,
        }

    def array(self) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(self.png)).convert("L")) > 0


def rewrite_slide(
    task: SlideTask,
    config: RewriteConfig,
    store: Store,
    masks: Store,
    *,
    overwrite: bool = False,
    cache_dir: str | CacheSpec | None = None,
) -> dict[str, Any]:
    """Rewrite one slide and return its ``pyramids.parquet`` row. Never raises for slide errors.

    A manifest ``mpp`` (``task.mpp``) is used instead of the config's and the slide's.
    """
    if task.mpp is not None:
        config = config.model_copy(update={"mpp": task.mpp})
    inputs: dict[str, Stage1Mask | None] = {}

    def depends_on() -> dict[str, Any]:
        inputs["mask"] = found = stage1_mask(masks, task)
        return _identity(found)

    def work() -> dict[str, Any]:
        with open_slide(task.url, cache_dir=cache_dir) as slide:
            return _rewrite(slide, task, config, store, inputs.get("mask"))

    def throughput(row: dict[str, Any]) -> dict[str, Any]:
        if row.get("megapixels") and row.get("workers"):
            return {"mp_per_s_per_worker": row["megapixels"] / row["seconds"] / row["workers"]}
        return {}

    return run_slide_task(
        task,
        work,
        store=store,
        config_hash=config.config_hash(),
        status_key=layout.pyramid_status_key(task.slide_id),
        columns={
            "codec": config.codec,
            "glass": config.glass,
            "transcode": config.transcode,
            **task.labels,
        },  # fmt: skip
        overwrite=overwrite,
        still_current=lambda _: store.exists(layout.pyramid_key(task.slide_id)),
        depends_on=depends_on,
        on_failure=lambda: remove_outputs(store, task.slide_id),
        finish=throughput,
    )


def mask_identity(masks: Store, task: SlideTask) -> dict[str, Any]:
    """What the slide's pyramid depends on (its stage-1 mask, or none): the skip key's part."""
    return _identity(stage1_mask(masks, task))


def _identity(found: Stage1Mask | None) -> dict[str, Any]:
    return found.identity if found else {"mask_sha256": None, "mask_config_hash": None}


def remove_outputs(store: Store, slide_id: str) -> None:
    """Remove a slide's pyramid (a failed slide leaves none that looks current)."""
    store.remove(layout.pyramid_key(slide_id))


def _rewrite(
    slide: Slide,
    task: SlideTask,
    config: RewriteConfig,
    store: Store,
    stage1: Stage1Mask | None,
) -> dict[str, Any]:
    width, height = slide.dimensions
    options = config.pyramid_options(slide.mpp_x)
    check_rewrite_memory(slide, config, options, stage1)
    if stage1 is not None:
        mask, mask_source = stage1.array(), "stage1"
    else:
        mask, mask_source = computed_mask(slide, config), "computed"
    if not mask.any():
        raise ValueError(f"no tissue in the {mask_source} tissue mask: no pyramid written")
    scale = stage1.scale if stage1 is not None else config.scale
    downsample = mask_downsample(width, height, mask.shape, scale)
    notes = list(slide.warnings)
    if options.mpp is None and options.margin_px0 is None and options.margin_um > 0:
        notes.append(
            f"no mpp: the {options.margin_um:g} µm margin was applied as "
            f"{options.margin_for(None):g} level-0 px (give --mpp or a manifest mpp)"
        )
    matched: dict[str, Any] = {}
    if config.lossy_jpegxl and config.match_source:
        source = source_quality(slide, mask, downsample, tile=config.tile)
        if source is not None:
            distance = match_distance(slide, source, finest=config.distance, effort=config.effort)
            options = dataclasses.replace(options, distance=distance)
            matched = {"source_quality": source.describe, "source_psnr_db": source.psnr_db}
    used = {"distance": options.distance} if config.lossy_jpegxl else {}
    extra = {
        "slide_id": task.slide_id,
        "mask_source": mask_source,
        "config_hash": config.config_hash(),
        **used,
        **matched,
    }
    with cluster_submitter() as (submit, workers):
        if config.transcode:
            margin_px0 = options.margin_for(options.mpp)
            out_path, output = _streamed_output(store, task.slide_id)
            report = transcode_pyramid(
                slide.local_file(), mask, downsample, out_path, margin_px0=margin_px0,
                submit=submit, description_extra=extra, slide=slide, output=output,
            )  # fmt: skip
        else:
            out_path, output = _streamed_output(store, task.slide_id)
            report = write_pyramid(
                slide, mask, downsample, out_path, options, submit=submit, workers=workers,
                description_extra=extra, on_block=progress_reporter(task.slide_id),
                output=output,
            )  # fmt: skip
    return {
        **_report_columns(report),
        **used,
        **matched,
        "warning": "; ".join(
            filter(None, [*notes, larger_warning(report.source_bytes, report.output_bytes)])
        )
        or None,
        "key": layout.pyramid_key(task.slide_id),
        "mask_source": mask_source,
        "mask_config_hash": stage1.config_hash if stage1 is not None else None,
        "width": width,
        "height": height,
        "megapixels": width * height / 1e6,
        "workers": workers,
    }


def larger_warning(source_bytes: int, output_bytes: int) -> str | None:
    """The row's warning when the pyramid came out larger than the source file."""
    if not source_bytes or output_bytes <= source_bytes:
        return None
    pct = 100.0 * (output_bytes / source_bytes - 1)
    return f"output {pct:.0f} % larger than the source: try a larger --distance or --codec jpeg"


def check_rewrite_memory(
    slide: Slide, config: RewriteConfig, options: PyramidOptions, stage1: Stage1Mask | None
) -> None:
    """:class:`~wsidist.errors.MemoryBudgetError`, before any pixel is read, when the slide
    needs more than ``config.memory_budget_mb``: the tissue mask (computed, or stage 1's) and,
    unless transcoding, the pyramid levels the writer holds."""
    width, height = slide.dimensions
    needs = {} if config.transcode else pyramid_memory(width, height, options)
    if stage1 is None:
        w, h = math.ceil(width / config.scale), math.ceil(height / config.scale)
        part = f"computing the tissue mask from the {w}×{h} px image at scale {config.scale:g}"
        needs[part] = w * h * MASK_BYTES_PER_PX + MASK_READ_BYTES
    else:
        w, h = Image.open(io.BytesIO(stage1.png)).size
        needs["the stage-1 mask"] = w * h * 2
    check_memory(
        f"{slide.url} ({width}×{height} px)", needs, config.memory_budget_mb,
        " (or write a stage-1 mask at a larger scale)" if stage1 is None else "",
    )  # fmt: skip


def stage1_mask(masks: Store, task: SlideTask) -> Stage1Mask | None:
    """The stage-1 mask of this slide, or None when there is none: its status must be ok for
    the same URL and the same source file (size and mtime or ETag) as now."""
    status = masks.read_json(layout.status_key(task.slide_id)) or {}
    if status.get("status") != "ok" or status.get("url") != task.url:
        return None
    if status.get("source_version") != source_version(task.url):
        return None  # stage 1 read another file at this URL: its mask is stale
    try:
        data = masks.read_bytes(layout.mask_key(task.slide_id))
    except FileNotFoundError:
        return None
    return Stage1Mask(data, status.get("config_hash"), status.get("scale"))


def computed_mask(slide: Slide, config: RewriteConfig) -> np.ndarray:
    """The tissue mask stage 1 would compute for ``slide`` with the config's preset and scale."""
    rgb = slide.thumbnail(config.scale)
    ctx = FilterContext(
        downsample=mask_downsample(*slide.dimensions, rgb.shape, config.scale),
        mpp=config.mpp or slide.mpp_x,
    )
    mask, _ = tissue_mask(rgb, config.tissue, ctx)
    return mask.array


def _streamed_output(store: Store, slide_id: str) -> tuple[str, Any]:
    """Where the pyramid goes: a local path, or the URL and the head-last writer that uploads it
    as it is written (:func:`~wsidist.io.upload.open_head_last`: multipart, no local copy)."""
    key = layout.pyramid_key(slide_id)
    if store.is_local:
        final = store.path(key)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        return final, None
    return store.full_url(key), functools.partial(open_head_last, store, key)


def _report_columns(report: PyramidReport) -> dict[str, Any]:
    d = report.as_dict()
    d["level_count"] = len(d.pop("level_dimensions"))
    return {k: v for k, v in d.items() if k in PYRAMIDS_SCHEMA.names}

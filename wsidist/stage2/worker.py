"""Stage 2a for one slide, run on a worker: its tissue mask, then its glass-removed pyramid.

The mask is the slide's stage-1 mask (its ``status`` says ok for the same URL) or, when there
is none, computed with the config's tissue preset. Inside a Dask worker the pyramid's blocks of
tiles are submitted back to the cluster, so one big slide uses every worker; this task is the
one writer. :func:`wsidist.runtime.tasks.run_slide_task` supplies the rerun skip (only while
the pyramid still exists), the failure row and the status JSON.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import numpy as np
from PIL import Image

from wsidist import layout
from wsidist.filters import FilterContext, tissue_mask
from wsidist.io.slide import Slide, open_slide
from wsidist.io.storage import Store
from wsidist.runtime.cluster import cluster_submitter, progress_reporter
from wsidist.runtime.tasks import SlideTask, run_slide_task
from wsidist.stage2.config import RewriteConfig
from wsidist.stage2.match import match_distance, source_quality
from wsidist.stage2.pyramid import write_pyramid
from wsidist.stage2.report import PYRAMIDS_SCHEMA, PyramidReport
from wsidist.stage2.transcode import transcode_pyramid

__all__ = ["computed_mask", "larger_warning", "rewrite_slide"]


def rewrite_slide(
    task: SlideTask,
    config: RewriteConfig,
    store: Store,
    masks: Store,
    *,
    overwrite: bool = False,
    cache_dir: str | None = None,
) -> dict[str, Any]:
    """Rewrite one slide and return its ``pyramids.parquet`` row. Never raises for slide errors.

    A manifest ``mpp`` (``task.mpp``) is used instead of the config's and the slide's.
    """
    if task.mpp is not None:
        config = config.model_copy(update={"mpp": task.mpp})

    def work() -> dict[str, Any]:
        with open_slide(task.url, cache_dir=cache_dir) as slide:
            return _rewrite(slide, task, config, store, masks)

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
        finish=throughput,
    )


def _rewrite(
    slide: Slide,
    task: SlideTask,
    config: RewriteConfig,
    store: Store,
    masks: Store,
) -> dict[str, Any]:
    width, height = slide.dimensions
    mask, mask_source = stage1_mask(masks, task), "stage1"
    if mask is None:
        mask, mask_source = computed_mask(slide, config), "computed"
    if not mask.any():
        raise ValueError(f"no tissue in the {mask_source} tissue mask: no pyramid written")
    downsample = width / mask.shape[1]
    options = config.pyramid_options(slide.mpp_x)
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
    with cluster_submitter() as (submit, workers), _local_output(store, task.slide_id) as out_path:
        if config.transcode:
            margin_px0 = options.margin_for(options.mpp)
            report = transcode_pyramid(
                slide.path, mask, downsample, out_path, margin_px0=margin_px0, submit=submit,
                description_extra=extra, slide=slide,
            )  # fmt: skip
        else:
            report = write_pyramid(
                slide, mask, downsample, out_path, options, submit=submit, workers=workers,
                description_extra=extra, on_block=progress_reporter(task.slide_id),
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


def stage1_mask(masks: Store, task: SlideTask) -> np.ndarray | None:
    """The stage-1 mask of this slide (same URL, status ok), or None when there is none."""
    status = masks.read_json(layout.status_key(task.slide_id)) or {}
    if status.get("status") != "ok" or status.get("url") != task.url:
        return None
    try:
        data = masks.read_bytes(layout.mask_key(task.slide_id))
    except FileNotFoundError:
        return None
    return np.asarray(Image.open(io.BytesIO(data)).convert("L")) > 0


def computed_mask(slide: Slide, config: RewriteConfig) -> np.ndarray:
    """The tissue mask stage 1 would compute for ``slide`` with the config's preset and scale."""
    rgb = slide.thumbnail(config.scale)
    ctx = FilterContext(
        downsample=slide.dimensions[0] / rgb.shape[1], mpp=config.mpp or slide.mpp_x
    )
    mask, _ = tissue_mask(rgb, config.tissue, ctx)
    return mask.array


@contextlib.contextmanager
def _local_output(store: Store, slide_id: str) -> Iterator[str]:
    """A local path to write the pyramid to; uploaded (or moved) to the store afterwards."""
    key = layout.pyramid_key(slide_id)
    if store.is_local:
        final = store.path(key)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        yield final  # the writers write a temporary name and rename it into place
        return
    with tempfile.TemporaryDirectory(prefix="wsidist-pyramid-") as tmp:
        path = os.path.join(tmp, f"{slide_id}.tiff")
        yield path
        store.put_file(path, key)


def _report_columns(report: PyramidReport) -> dict[str, Any]:
    d = report.as_dict()
    d["level_count"] = len(d.pop("level_dimensions"))
    return {k: v for k, v in d.items() if k in PYRAMIDS_SCHEMA.names}

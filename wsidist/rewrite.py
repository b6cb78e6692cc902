"""Stage 2a job: rewrite slides as glass-removed pyramids, one slide per Dask task.

Each slide task runs on a worker: it takes the slide's stage-1 tissue mask (``masks/<id>.png``
under the stage-1 root, when its ``status/<id>.json`` says ok for the same URL) or computes one,
then writes ``pyramids/<id>.tiff`` with :func:`wsidist.pyramid.write_pyramid` (or, with
``transcode``, :func:`wsidist.transcode.transcode_pyramid`). Inside a slide the blocks of tiles
are submitted back to the cluster (``worker_client``), so one big slide uses every worker; the
slide task is the one writer. The driver writes ``pyramids.parquet``, one row per slide.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

import dask.bag as db
import numpy as np
import pyarrow as pa
from distributed import Client
from PIL import Image

from wsidist.config import Stage1Config
from wsidist.errors import failure_reason
from wsidist.job import plan_tasks, run_slide_tasks, write_job_table
from wsidist.pyramid import PyramidReport, write_pyramid
from wsidist.rewrite_config import RewriteConfig
from wsidist.slide import Slide, open_slide
from wsidist.stage1 import SlideTask, status_key
from wsidist.storage import Store

PYRAMIDS_KEY = "pyramids.parquet"
PYRAMIDS_SCHEMA = pa.schema(
    [
        ("url", pa.string()),
        ("slide_id", pa.string()),
        ("status", pa.string()),  # ok | failed
        ("error", pa.string()),
        ("key", pa.string()),  # pyramids/<id>.tiff under the output root
        ("codec", pa.string()),
        ("glass", pa.string()),
        ("transcode", pa.bool_()),
        ("lossless", pa.bool_()),
        ("mask_source", pa.string()),  # stage1 | computed
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("level_count", pa.int32()),
        ("levels_from", pa.string()),  # level0 (area averages) | source (copied exactly)
        ("source_bytes", pa.int64()),
        ("output_bytes", pa.int64()),
        ("reduction_pct", pa.float64()),
        ("n_tiles", pa.int64()),
        ("n_tissue_tiles", pa.int64()),
        ("glass_fraction", pa.float64()),
        ("psnr_db", pa.float64()),
        ("psnr_min_db", pa.float64()),
        ("ssim", pa.float64()),
        ("ssim_min", pa.float64()),
        ("quality_tiles", pa.int32()),
        ("megapixels", pa.float64()),  # level-0 megapixels of the slide
        ("seconds", pa.float64()),
        ("workers", pa.int32()),  # worker threads the slide's blocks could use
        ("mp_per_s_per_worker", pa.float64()),  # megapixels / seconds / workers
        ("skipped", pa.bool_()),
        ("config_hash", pa.string()),
        ("worker", pa.string()),
        ("started_at", pa.string()),  # ISO 8601 UTC, ms
        ("finished_at", pa.string()),
    ]
)

ResultCallback = Callable[[dict[str, Any]], None]


def pyramid_key(slide_id: str) -> str:
    return f"pyramids/{slide_id}.tiff"


def pyramid_status_key(slide_id: str) -> str:
    return f"pyramids/{slide_id}.json"


# ------------------------------------------------------------------------------ worker side
def rewrite_slide(
    task: SlideTask,
    config: RewriteConfig,
    store: Store,
    masks: Store,
    *,
    overwrite: bool = False,
    cache_dir: str | None = None,
) -> dict[str, Any]:
    """Rewrite one slide and return its ``pyramids.parquet`` row. Never raises for slide errors."""
    config_hash = config.config_hash()
    if not overwrite:
        previous = store.read_json(pyramid_status_key(task.slide_id))
        done = previous and (
            previous.get("status"),
            previous.get("config_hash"),
            previous.get("url"),
        )
        if done == ("ok", config_hash, task.url) and store.exists(pyramid_key(task.slide_id)):
            return {**previous, "skipped": True}
    started = time.perf_counter()
    row: dict[str, Any] = {
        "started_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "url": task.url,
        "slide_id": task.slide_id,
        "codec": config.codec,
        "glass": config.glass,
        "transcode": config.transcode,
        "config_hash": config_hash,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }
    try:
        with open_slide(task.url, cache_dir=cache_dir) as slide:
            row.update(_rewrite(slide, task, config, store, masks))
        row["status"] = "ok"
    except Exception as exc:  # noqa: BLE001 — a slide's failure is a row, not a crash
        row.update(status="failed", error=failure_reason(exc))
    row["seconds"] = round(time.perf_counter() - started, 3)
    if row.get("megapixels") and row.get("workers"):
        row["mp_per_s_per_worker"] = row["megapixels"] / row["seconds"] / row["workers"]
    row["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    row["skipped"] = False
    store.write_bytes(pyramid_status_key(task.slide_id), json.dumps(row).encode())
    return row


def _rewrite(
    slide: Slide, task: SlideTask, config: RewriteConfig, store: Store, masks: Store
) -> dict[str, Any]:
    width, height = slide.dimensions
    mask, mask_source = _stage1_mask(masks, task), "stage1"
    if mask is None:
        mask, mask_source = _computed_mask(slide, config), "computed"
    if not mask.any():
        raise ValueError(f"no tissue in the {mask_source} tissue mask: no pyramid written")
    downsample = width / mask.shape[1]
    mpp = config.mpp or slide.mpp_x
    margin_px0 = config.margin_um / mpp if mpp else 64.0
    extra = {
        "slide_id": task.slide_id,
        "mask_source": mask_source,
        "config_hash": config.config_hash(),
    }
    with _block_submitter() as (submit, workers), _local_output(store, task.slide_id) as out_path:
        if config.transcode:
            from wsidist.transcode import transcode_pyramid

            report = transcode_pyramid(
                slide.path,
                mask,
                downsample,
                out_path,
                margin_px0=margin_px0,
                submit=submit,
                description_extra=extra,
                slide=slide,
            )
        else:
            report = write_pyramid(
                slide,
                mask,
                downsample,
                out_path,
                codec=config.codec,
                distance=config.distance,
                effort=config.effort,
                lossless=config.lossless,
                jpeg_quality=config.jpeg_quality,
                glass=config.glass,
                margin_px0=margin_px0,
                tile=config.tile,
                mpp=mpp,
                submit=submit,
                workers=workers,
                description_extra=extra,
            )
    return {
        **_report_columns(report),
        "key": pyramid_key(task.slide_id),
        "mask_source": mask_source,
        "width": width,
        "height": height,
        "megapixels": width * height / 1e6,
        "workers": workers,
    }


def _stage1_mask(masks: Store, task: SlideTask) -> np.ndarray | None:
    """The stage-1 mask of this slide (same URL, status ok), or None when there is none."""
    status = masks.read_json(status_key(task.slide_id)) or {}
    if status.get("status") != "ok" or status.get("url") != task.url:
        return None
    try:
        data = masks.read_bytes(f"masks/{task.slide_id}.png")
    except FileNotFoundError:
        return None
    return np.asarray(Image.open(io.BytesIO(data)).convert("L")) > 0


def _computed_mask(slide: Slide, config: RewriteConfig) -> np.ndarray:
    from wsidist.analysis import analyse_slide

    stage1 = Stage1Config(tissue=config.tissue, scale=config.scale, mpp=config.mpp)
    return analyse_slide(slide, stage1).tissue


@contextlib.contextmanager
def _block_submitter() -> Iterator[tuple[Callable[..., Any] | None, int]]:
    """Inside a Dask worker: submit blocks to the whole cluster (and count its threads).
    Elsewhere: (None, cores) — the writer uses a local thread pool."""
    try:
        from distributed import get_worker, worker_client

        get_worker()
    except (ImportError, ValueError):
        yield None, os.cpu_count() or 1
        return
    with worker_client() as client:
        yield functools.partial(client.submit, pure=False), _cluster_threads(client)


def _cluster_threads(client: Client) -> int:
    return max(1, sum(client.nthreads().values()))


@contextlib.contextmanager
def _local_output(store: Store, slide_id: str) -> Iterator[str]:
    """A local path to write the pyramid to; uploaded (or moved) to the store afterwards."""
    key = pyramid_key(slide_id)
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


# ------------------------------------------------------------------------------ driver
def run_rewrite(
    inputs: Sequence[str],
    out: str,
    config: RewriteConfig | None = None,
    *,
    masks: str | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    client: Client | None = None,
    overwrite: bool = False,
    cache_dir: str | None = None,
    storage_options: dict[str, Any] | None = None,
    on_result: ResultCallback | None = None,
) -> pa.Table:
    """Rewrite ``inputs`` into ``out/pyramids/``; returns the ``pyramids.parquet`` table.

    ``masks`` is the stage-1 output root holding ``masks/`` and ``status/`` (default ``out``).
    """
    config = config or RewriteConfig()
    tasks = plan_tasks(inputs)
    storage_options = storage_options or {}
    store = Store(out, storage_options)
    mask_store = Store(masks or out, storage_options)
    bag = db.from_sequence(tasks, npartitions=len(tasks)).map(
        rewrite_slide,
        config=config,
        store=store,
        masks=mask_store,
        overwrite=overwrite,
        cache_dir=cache_dir,
    )

    # A slide task secedes while its blocks run: without a bound every slide would start at
    # once. One writer per worker thread keeps the cluster busy and the open files few.
    rows = run_slide_tasks(
        bag, tasks, config, client=client, scheduler=scheduler, workers=workers,
        on_result=on_result, max_in_flight=_cluster_threads,
    )  # fmt: skip
    return write_job_table(store, PYRAMIDS_KEY, rows, PYRAMIDS_SCHEMA, config)

"""The stage-1 driver: fan slides out over Dask, collect one summary per slide.

The driver plans the slides (inputs expanded once), maps :func:`process_slide` over them on the
cluster, shows progress, and writes ``slides.parquet`` from the summaries. It never touches
pixels or tile tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from distributed import Client

from wsidist import layout
from wsidist.io.remote import CacheSpec
from wsidist.io.storage import Store
from wsidist.runtime.cluster import guard_local_cluster
from wsidist.runtime.manifest import labelled_schema, stored_schema, with_labels
from wsidist.runtime.preflight import check_output_root, check_stored_ids, output_root
from wsidist.runtime.results import (
    ProgressCallback,
    prepare_output,
    run_slide_tasks,
    write_job_table,
)
from wsidist.runtime.skips import current_rows, hash_per_mpp
from wsidist.runtime.tasks import SlideTask, lost_task_row, plan_tasks, record_lost
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.labels import ANNOTATION_FIELDS, annotation_depends, attach_annotations
from wsidist.stage1.scoring import Scorer
from wsidist.stage1.worker import process_slide, remove_outputs

__all__ = ["SLIDES_SCHEMA", "run_stage1"]

SLIDES_SCHEMA = pa.schema(
    [
        ("url", pa.string()),
        ("slide_id", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("warning", pa.string()),
        ("qc_flags", pa.list_(pa.string())),
        ("vendor", pa.string()),
        ("backend", pa.string()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("level_count", pa.int32()),
        ("mpp_x", pa.float64()),
        ("mpp_y", pa.float64()),
        ("mpp_source", pa.string()),
        ("objective_power", pa.float64()),
        ("scale", pa.float64()),
        ("tile_px0", pa.int64()),
        ("stride_px0", pa.int64()),
        ("n_tiles", pa.int64()),
        ("n_tissue_tiles", pa.int64()),
        ("tissue_frac", pa.float64()),
        ("pen_frac", pa.float64()),
        ("seconds", pa.float64()),
        ("bytes_read", pa.int64()),  # bytes moved from the slide's source (0: local, cache hit)
        ("read_requests", pa.int64()),  # requests sent to the slide's source
        ("skipped", pa.bool_()),
        ("config_hash", pa.string()),
        ("source_version", pa.string()),  # size and mtime (or ETag) of the slide file read
        ("worker", pa.string()),
        ("finished_at", pa.string()),
    ]
)


def run_stage1(
    inputs: Sequence[str | SlideTask],
    out: str,
    config: Stage1Config | None = None,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    client: Client | None = None,
    overwrite: bool = False,
    cache_dir: str | CacheSpec | None = None,
    storage_options: dict[str, Any] | None = None,
    scorer: Scorer | None = None,
    on_result: ProgressCallback | None = None,
    manifest: str | None = None,
    annotations: str | None = None,
) -> pa.Table:
    """Run stage 1 over ``inputs`` into ``out``; returns the slides table it wrote.

    ``inputs`` are paths, folders, globs or URLs (or tasks from
    :func:`~wsidist.runtime.tasks.plan_tasks`). ``scorer`` overrides ``config.scorer`` with a
    Python callable (it must pickle). A ``client`` is used as given; otherwise ``scheduler`` or
    a LocalCluster of ``workers``. ``manifest`` (CSV/Parquet: url, optional mpp, slide_id and
    label columns) adds slides and their metadata; labels become columns of the table.
    ``annotations`` (a folder or file of GeoJSON/ASAP XML, matched by slide id or stem) or a
    manifest ``annotations`` column label the tiles (:mod:`wsidist.stage1.labels`).

    Before any slide is read: the output must not be a file, and an id the output already
    holds for another URL refuses the job (:class:`~wsidist.errors.ConfigError`).
    """
    config = (config or Stage1Config()).pin_scorer()  # its rails file read once, here
    check_output_root(out, storage_options)
    out = output_root(out)
    tasks = plan_tasks(inputs, exclude=(out,), manifest=manifest, storage_options=storage_options)
    tasks = attach_annotations(tasks, annotations, storage_options)
    labelled = annotations is not None or any(t.annotation for t in tasks)
    store = Store(out, storage_options or {})
    check_stored_ids(store, tasks)
    base = pa.schema([*SLIDES_SCHEMA, *ANNOTATION_FIELDS]) if labelled else SLIDES_SCHEMA
    schema = labelled_schema(base, tasks, stored_schema(store, layout.SLIDES_TABLE))
    if client is None and not scheduler:
        guard_local_cluster()  # before anything is written: a LocalCluster will start
    prepare_output(store)
    config_hash = config.config_hash()

    def lost(task: SlideTask, exc: BaseException) -> dict[str, Any]:
        row = lost_task_row(task, exc, config_hash, scale=config.scale)
        key = layout.status_key(task.slide_id)
        return record_lost(store, key, row, lambda: remove_outputs(store, task.slide_id))

    skipped = {} if overwrite else current_rows(
        store, tasks, status_dir=layout.STATUS_DIR, status_key=layout.status_key,
        config_hash=hash_per_mpp(config),
        depends_on=(lambda t: annotation_depends(t.annotation)) if labelled else None,
    )  # fmt: skip
    rows = run_slide_tasks(
        process_slide,
        tasks,
        fn_kwargs={
            "config": config, "store": store, "overwrite": overwrite, "cache_dir": cache_dir,
            "scorer": scorer, "labelled": labelled,
        },
        lost=lost, client=client, scheduler=scheduler, workers=workers, on_result=on_result,
        skipped=skipped,
    )  # fmt: skip
    return write_job_table(
        store, layout.SLIDES_TABLE, with_labels(rows, tasks), schema, config,
        status_dir=layout.STATUS_DIR,
    )  # fmt: skip

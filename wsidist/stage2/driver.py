"""The stage-2a driver: rewrite slides as glass-removed pyramids, one slide per Dask task.

The driver plans the slides, maps :func:`~wsidist.stage2.worker.rewrite_slide` over them with
at most one slide writer per worker thread (a slide task secedes while its blocks run; without
the bound every slide would start at once), and writes ``pyramids.parquet``, one row per slide.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
from distributed import Client

from wsidist import layout
from wsidist.io.remote import CacheSpec
from wsidist.io.storage import Store
from wsidist.runtime.cluster import cluster_threads, guard_local_cluster
from wsidist.runtime.manifest import labelled_schema, stored_schema, with_labels
from wsidist.runtime.preflight import check_output_root, check_stored_ids, output_root
from wsidist.runtime.results import prepare_output, run_slide_tasks, write_job_table
from wsidist.runtime.skips import current_rows, hash_per_mpp
from wsidist.runtime.tasks import SlideTask, lost_task_row, plan_tasks, record_lost
from wsidist.stage2.config import RewriteConfig
from wsidist.stage2.report import PYRAMIDS_SCHEMA
from wsidist.stage2.worker import mask_identity, remove_outputs, rewrite_slide

__all__ = ["PYRAMIDS_SCHEMA", "run_rewrite"]

ResultCallback = Callable[[dict[str, Any]], None]


def run_rewrite(
    inputs: Sequence[str | SlideTask],
    out: str,
    config: RewriteConfig | None = None,
    *,
    masks: str | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    client: Client | None = None,
    overwrite: bool = False,
    cache_dir: str | CacheSpec | None = None,
    storage_options: dict[str, Any] | None = None,
    on_result: ResultCallback | None = None,
    manifest: str | None = None,
) -> pa.Table:
    """Rewrite ``inputs`` into ``out/pyramids/``; returns the ``pyramids.parquet`` table.

    ``masks`` is the stage-1 output root holding ``masks/`` and ``status/`` (default ``out``).
    ``manifest`` adds slides with their ``mpp`` (used for the margin), ids and labels. The
    output is checked before any slide is read, as by :func:`~wsidist.stage1.run_stage1`.
    """
    config = config or RewriteConfig()
    storage_options = storage_options or {}
    check_output_root(out, storage_options)
    out = output_root(out)
    tasks = plan_tasks(inputs, exclude=(out,), manifest=manifest, storage_options=storage_options)
    store = Store(out, storage_options)
    check_stored_ids(store, tasks)
    schema = labelled_schema(PYRAMIDS_SCHEMA, tasks, stored_schema(store, layout.PYRAMIDS_TABLE))
    if client is None and not scheduler:
        guard_local_cluster()  # before anything is written: a LocalCluster will start
    prepare_output(store)
    config_hash = config.config_hash()

    def lost(task: SlideTask, exc: BaseException) -> dict[str, Any]:
        row = lost_task_row(task, exc, config_hash)
        key = layout.pyramid_status_key(task.slide_id)
        return record_lost(store, key, row, lambda: remove_outputs(store, task.slide_id))

    mask_store = Store(output_root(masks or out), storage_options)
    skipped = {} if overwrite else current_rows(
        store, tasks, status_dir=layout.PYRAMIDS_DIR, status_key=layout.pyramid_status_key,
        config_hash=hash_per_mpp(config), depends_on=lambda t: mask_identity(mask_store, t),
        still_current=lambda t, _, listed: layout.pyramid_key(t.slide_id) in listed,
    )  # fmt: skip
    rows = run_slide_tasks(
        rewrite_slide,
        tasks,
        fn_kwargs={
            "config": config, "store": store,
            "masks": mask_store,
            "overwrite": overwrite, "cache_dir": cache_dir,
        },
        lost=lost,
        max_in_flight=cluster_threads,
        client=client, scheduler=scheduler, workers=workers, on_result=on_result,
        skipped=skipped,
    )  # fmt: skip
    return write_job_table(
        store, layout.PYRAMIDS_TABLE, with_labels(rows, tasks), schema, config,
        status_dir=layout.PYRAMIDS_DIR,
    )  # fmt: skip

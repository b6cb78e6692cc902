"""The stage-1 driver: fan slides out over Dask, collect one summary per slide.

The driver expands inputs, starts (or connects to) a cluster, maps :func:`process_slide` over a
Dask bag with one slide per partition, shows progress, and writes ``slides.parquet`` from the
summaries. It never touches pixels or tile tables.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import dask
import dask.bag as db
import pyarrow as pa
from distributed import Client, LocalCluster, as_completed
from pydantic import BaseModel

from wsidist.config import SCHEMA_VERSION, ConfigError, Stage1Config
from wsidist.inputs import assign_slide_ids, expand_inputs
from wsidist.scoring import Scorer
from wsidist.stage1 import SlideTask, process_slide
from wsidist.storage import Store, merge_by_slide_id, rows_to_table

T = TypeVar("T")
SLIDES_KEY = "slides.parquet"
SLIDES_SCHEMA = pa.schema(
    [
        ("url", pa.string()),
        ("slide_id", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("warning", pa.string()),
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
        ("skipped", pa.bool_()),
        ("config_hash", pa.string()),
        ("worker", pa.string()),
        ("finished_at", pa.string()),
    ]
)

ProgressCallback = Callable[[dict[str, Any]], None]


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Client]:
    """A client of an existing scheduler, or of a LocalCluster of worker processes (one per core)."""
    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    n_workers = workers or os.cpu_count() or 1
    with (
        dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environ()}),
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=40,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def worker_environ() -> dict[str, Any]:
    """Environment of worker processes: Dask's defaults with a glibc heap that keeps big buffers.

    Dask sets ``MALLOC_TRIM_THRESHOLD_=65536``, so every multi-megabyte image buffer is mapped
    afresh and page-faulted in; with blocks of 12 MB that made the stage-2 rewrite 2.8× slower
    than the same work on threads. Large buffers stay on the heap here (up to 1 GiB kept free
    per worker before trimming; buffers over 64 MiB still use their own mapping).
    """
    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    env.update(MALLOC_TRIM_THRESHOLD_=2**30, MALLOC_MMAP_THRESHOLD_=2**26)
    return env


def plan_tasks(inputs: Sequence[str]) -> list[SlideTask]:
    """Slide tasks (url and sanitised id) for the job's inputs, in a stable order."""
    urls = expand_inputs(list(inputs))
    if not urls:
        raise ConfigError("no slides to process: give slide paths, folders, globs or URLs")
    ids = assign_slide_ids(urls)
    return [SlideTask(url, ids[url]) for url in urls]


def run_stage1(
    inputs: Sequence[str],
    out: str,
    config: Stage1Config | None = None,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    client: Client | None = None,
    overwrite: bool = False,
    cache_dir: str | None = None,
    storage_options: dict[str, Any] | None = None,
    scorer: Scorer | None = None,
    on_result: ProgressCallback | None = None,
) -> pa.Table:
    """Run stage 1 over ``inputs`` into ``out``; returns the slides table it wrote.

    ``scorer`` overrides ``config.scorer`` with a Python callable (it must pickle). A
    ``client`` is used as given; otherwise ``scheduler`` or a LocalCluster of ``workers``.
    """
    config = config or Stage1Config()
    tasks = plan_tasks(inputs)
    store = Store(out, storage_options or {})
    bag = db.from_sequence(tasks, npartitions=len(tasks)).map(
        process_slide,
        config=config,
        store=store,
        overwrite=overwrite,
        cache_dir=cache_dir,
        scorer=scorer,
    )

    rows = run_slide_tasks(
        bag, tasks, config, failed_extra={"scale": config.scale}, client=client,
        scheduler=scheduler, workers=workers, on_result=on_result,
    )  # fmt: skip
    return write_job_table(store, SLIDES_KEY, rows, SLIDES_SCHEMA, config)


def partition_results(
    client: Client, bag: db.Bag, tasks: Sequence[T], max_in_flight: int | None = None
) -> Iterator[tuple[T, Any, BaseException | None]]:
    """Compute a bag of one task per partition; yield (task, result, error) as each finishes.

    Partitions are retried twice (a worker killed by a slide is retried elsewhere); a partition
    that still fails yields its exception instead of raising, so one slide never stops a job.
    With ``max_in_flight``, at most that many partitions are submitted at a time (tasks that
    secede to run sub-tasks would otherwise all start at once).
    """
    pending = iter(zip(bag.to_delayed(), tasks, strict=True))
    running = as_completed()
    task_of: dict[str, T] = {}

    def submit_next() -> None:
        for part, task in itertools.islice(pending, 1):
            future = client.compute(part, retries=2)
            task_of[future.key] = task
            running.add(future)

    for _ in range(max_in_flight or len(tasks)):
        submit_next()
    for future in running:
        submit_next()
        try:
            (result,) = future.result()
        except Exception as exc:  # noqa: BLE001 — e.g. a worker killed by a slide, twice over
            yield task_of[future.key], None, exc
        else:
            yield task_of[future.key], result, None


def run_slide_tasks(
    bag: db.Bag,
    tasks: Sequence[SlideTask],
    config: BaseModel,
    *,
    failed_extra: dict[str, Any] | None = None,
    max_in_flight: Callable[[Client], int] | None = None,
    client: Client | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    on_result: ProgressCallback | None = None,
) -> list[dict[str, Any]]:
    """Compute a bag of one slide task per partition; its rows in task order.

    Runs on ``client``, else on ``scheduler`` or a new LocalCluster of ``workers``. A partition
    that fails even after retries (e.g. a worker killed twice) becomes a ``failed`` row with
    ``config``'s hash and ``failed_extra``; ``on_result`` sees each row as it arrives.
    ``max_in_flight(client)`` bounds the slides running at once.
    """

    def failed_row(task: SlideTask, exc: BaseException) -> dict[str, Any]:
        return {
            "url": task.url,
            "slide_id": task.slide_id,
            "status": "failed",
            "error": f"worker failed on the slide: {type(exc).__name__}: {exc}",
            "config_hash": config.config_hash(),
            "skipped": False,
            **(failed_extra or {}),
        }

    rows = []
    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(dask_client(scheduler, workers))
        limit = max_in_flight(client) if max_in_flight else None
        for task, row, exc in partition_results(client, bag, tasks, limit):
            row = failed_row(task, exc) if exc is not None else row
            rows.append(row)
            if on_result:
                on_result(row)
    order = {t.slide_id: i for i, t in enumerate(tasks)}
    return sorted(rows, key=lambda r: order[r["slide_id"]])


def write_job_table(
    store: Store, key: str, rows: list[dict[str, Any]], schema: pa.Schema, config: BaseModel
) -> pa.Table:
    """Merge ``rows`` over the stored table at ``key`` (other slides kept) and write it with the
    schema version and ``config`` (its hash and JSON) in the Parquet metadata."""
    table = merge_by_slide_id(store, key, rows_to_table(rows, schema))
    meta = {
        "wsidist.schema_version": SCHEMA_VERSION,
        "wsidist.config_hash": config.config_hash(),
        "wsidist.config": config.model_dump_json(),
    }
    store.write_parquet(key, table.replace_schema_metadata(meta))
    return table

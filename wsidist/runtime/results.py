"""The driver side of a slide job: one Dask task per slide, results as they finish, the table.

:func:`run_slide_tasks` maps a worker function over the slides (a Dask bag with one slide per
partition), retries a slide whose worker died, turns a slide that still fails into a row, and
returns one row per slide in task order. :func:`write_job_table` merges the rows over the
stored table and writes it with the schema version and config in the Parquet metadata.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

import dask.bag as db
import pyarrow as pa
from distributed import Client, as_completed

from wsidist.io.storage import Store, merge_by_slide_id, rows_to_table
from wsidist.runtime.cluster import dask_client
from wsidist.runtime.jobconfig import SCHEMA_VERSION

T = TypeVar("T")
Row = dict[str, Any]
ProgressCallback = Callable[[Row], None]


class HasSlideId(Protocol):
    slide_id: str


class HashedConfig(Protocol):
    def config_hash(self) -> str: ...

    def model_dump_json(self) -> str: ...


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
    fn: Callable[..., Row],
    tasks: Sequence[HasSlideId],
    *,
    lost: Callable[[Any, BaseException], Row],
    fn_kwargs: dict[str, Any] | None = None,
    max_in_flight: Callable[[Client], int] | None = None,
    client: Client | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    on_result: ProgressCallback | None = None,
) -> list[Row]:
    """``fn(task, **fn_kwargs)`` for every task on the cluster; one row per task, in task order.

    Runs on ``client``, else on ``scheduler`` or a new LocalCluster of ``workers``. A task that
    fails even after retries (e.g. a worker killed twice) becomes ``lost(task, exc)``;
    ``on_result`` sees each row as it arrives. ``max_in_flight(client)`` bounds the slides
    running at once.
    """
    if not tasks:
        return []
    bag = db.from_sequence(tasks, npartitions=len(tasks)).map(fn, **(fn_kwargs or {}))
    rows = []
    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(dask_client(scheduler, workers))
        limit = max_in_flight(client) if max_in_flight else None
        for task, row, exc in partition_results(client, bag, tasks, limit):
            row = lost(task, exc) if exc is not None else row
            rows.append(row)
            if on_result:
                on_result(row)
    order = {t.slide_id: i for i, t in enumerate(tasks)}
    return sorted(rows, key=lambda r: order[r["slide_id"]])


def write_job_table(
    store: Store,
    key: str,
    rows: list[Row],
    schema: pa.Schema,
    config: HashedConfig | None = None,
) -> pa.Table:
    """Merge ``rows`` over the stored table at ``key`` (other slides' rows kept) and write it,
    with the schema version and ``config`` (its hash and JSON) in the Parquet metadata."""
    table = merge_by_slide_id(store, key, rows_to_table(rows, schema))
    if config is not None:
        meta = {
            "wsidist.schema_version": SCHEMA_VERSION,
            "wsidist.config_hash": config.config_hash(),
            "wsidist.config": config.model_dump_json(),
        }
        table = table.replace_schema_metadata(meta)
    store.write_parquet(key, table)
    return table

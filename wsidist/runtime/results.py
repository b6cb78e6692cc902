"""The driver side of a slide job: one Dask task per slide, results as they finish, the table.

:func:`prepare_output` checks that the output is writable and removes orphaned temporary files
before any work. :func:`run_slide_tasks` maps a worker function over the slides (one Dask
task per slide, submitted as the cluster has room), retries a slide whose worker died, turns a slide that still
fails into a row, stops the job at the first permanent write error, and returns one row per
slide in task order. :func:`write_job_table` builds the job's table from the per-slide status
files (the source of truth, so concurrent runs into one output lose nothing) and writes it with
the schema version and config in the Parquet metadata.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import posixpath
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import pyarrow as pa
from distributed import Client, as_completed

from wsidist import layout
from wsidist.errors import OutputError
from wsidist.io.storage import Store, merge_by_slide_id, rows_to_table
from wsidist.runtime.cluster import cluster_threads, dask_client
from wsidist.runtime.jobconfig import SCHEMA_VERSION

T = TypeVar("T")
Row = dict[str, Any]
ProgressCallback = Callable[[Row], None]

ORPHAN_GRACE_S = 600.0  # temporary files untouched this long before a run are orphans
IN_FLIGHT = 1024  # default bound on slides submitted at once (see window())
REBUILDS = 8  # rebuilds of a job table while other runs keep changing status files
_VERSIONS_META = "wsidist.status_versions"  # status key -> version the table's row came from


class HasSlideId(Protocol):
    slide_id: str


class HashedConfig(Protocol):
    def config_hash(self) -> str: ...

    def model_dump_json(self) -> str: ...


def prepare_output(store: Store, *, grace_s: float = ORPHAN_GRACE_S) -> list[str]:
    """Before a job: fail fast (:class:`OutputError`) unless the output is writable, then remove
    the temporary files of earlier runs that crashed (untouched for ``grace_s`` seconds, so a
    concurrent run's writes in progress are left alone). Returns the keys removed."""
    store.check_writable()
    return remove_orphans(store, time.time() - grace_s)


ORPHAN_DIRS = ("", layout.TEMP_DIR, layout.PYRAMIDS_DIR)  # where temporary names can be


def remove_orphans(store: Store, older_than: float) -> list[str]:
    """Remove the temporary files and folders (:func:`wsidist.layout.is_temporary`) whose
    newest content was modified before ``older_than`` (unix seconds), from one listing each
    of the root, the store's write folder (``.wsidist-tmp/``) and ``pyramids/`` (a pyramid's
    ``.part`` file and spool folder): never a walk of the whole output."""
    removed = []
    for folder in ORPHAN_DIRS:
        for key, modified, is_dir in store.entries(folder):
            name = posixpath.basename(key)
            if key == layout.TEMP_DIR or not (
                folder == layout.TEMP_DIR or layout.is_temporary(name)
            ):
                continue
            newest = (
                max([modified] + [m for _, m, _ in store.find(key, hidden=True)])
                if is_dir
                else modified
            )
            if newest < older_than:
                store.remove(key, recursive=is_dir, hidden=True)
                removed.append(key)
    return removed


def task_results(
    client: Client,
    fn: Callable[..., Any],
    tasks: Sequence[T],
    fn_kwargs: dict[str, Any] | None = None,
    max_in_flight: int | None = None,
) -> Iterator[tuple[T, Any, BaseException | None]]:
    """Run ``fn(task, **fn_kwargs)`` as one Dask task per item; yield (task, result, error) as
    each finishes.

    Each is submitted on its own (a constant cost per slide: no graph of all slides is built
    or sent per submission). Tasks are retried twice (a worker killed by a slide is retried
    elsewhere); one that still fails yields its exception instead of raising, so one slide
    never stops a job. With ``max_in_flight``, at most that many run at a time (tasks that
    secede to run sub-tasks would otherwise all start at once). Closing the generator early
    cancels the tasks still running.
    """
    pending = iter(tasks)
    running = as_completed()
    task_of: dict[str, T] = {}
    futures: dict[str, Any] = {}
    name = getattr(fn, "__name__", "slide")

    def submit_next() -> None:
        for task in itertools.islice(pending, 1):
            key = f"{name}-{getattr(task, 'slide_id', '')}-{uuid.uuid4().hex[:12]}"
            future = client.submit(fn, task, **(fn_kwargs or {}), key=key, retries=2)
            task_of[future.key] = task
            futures[future.key] = future
            running.add(future)

    try:
        for _ in range(max_in_flight or len(tasks)):
            submit_next()
        for future in running:
            futures.pop(future.key, None)
            submit_next()
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 — e.g. a worker killed by a slide, twice over
                yield task_of[future.key], None, exc
            else:
                yield task_of[future.key], result, None
            finally:
                future.release()
    finally:
        if futures:
            client.cancel(list(futures.values()))


def window(client: Client) -> int:
    """Slides submitted at a time by default: enough to keep every thread (and an autoscaler)
    busy, few enough that the scheduler never holds a million tasks."""
    return max(IN_FLIGHT, 4 * cluster_threads(client))


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
    skipped: Mapping[str, Row] | None = None,
) -> list[Row]:
    """``fn(task, **fn_kwargs)`` for every task on the cluster; one row per task, in task order.

    ``skipped`` (``slide_id -> row``, from :func:`wsidist.runtime.skips.current_rows`) holds
    the rows of slides the driver proved current: they are not submitted (and no cluster is
    started when nothing is left to run).

    Runs on ``client``, else on ``scheduler`` or a new LocalCluster of ``workers``. A task that
    fails even after retries (e.g. a worker killed twice) becomes ``lost(task, exc)``;
    ``on_result`` sees each row as it arrives. ``max_in_flight(client)`` bounds the slides
    submitted at once (default :func:`window`). A row with ``output_error`` (a write error no retry can fix: permission,
    read-only, no space) stops the job: the other slides are cancelled and
    :class:`OutputError` is raised with that one message.
    """
    if not tasks:
        return []
    order = {t.slide_id: i for i, t in enumerate(tasks)}
    skipped = skipped or {}
    rows = [dict(skipped[t.slide_id]) for t in tasks if t.slide_id in skipped]
    for row in rows:
        if on_result:
            on_result(row)
    todo = [t for t in tasks if t.slide_id not in skipped]
    if not todo:
        return sorted(rows, key=lambda r: order[r["slide_id"]])
    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(dask_client(scheduler, workers))
        limit = max_in_flight(client) if max_in_flight else window(client)
        results = stack.enter_context(
            contextlib.closing(task_results(client, fn, todo, fn_kwargs, limit))
        )
        for task, row, exc in results:
            row = lost(task, exc) if exc is not None else row
            if row.get("output_error"):
                raise OutputError(row["output_error"], permanent=True)
            rows.append(row)
            if on_result:
                on_result(row)
    return sorted(rows, key=lambda r: order[r["slide_id"]])


def write_job_table(
    store: Store,
    key: str,
    rows: list[Row],
    schema: pa.Schema,
    config: HashedConfig | None = None,
    *,
    status_dir: str | None = None,
) -> pa.Table:
    """Write the job table at ``key``, with the schema version and ``config`` (its hash and
    JSON) in the Parquet metadata; returns it.

    With ``status_dir`` (where the slides' status files are), the table is built from every
    status file there, this run's ``rows`` over them (they say what was skipped) and the stored
    table's rows of slides without a status file. After writing, the status files are listed
    again and the table is rebuilt while another run changed them meanwhile, so the last
    writer's table holds every run's slides. Without it, ``rows`` are merged over the stored
    table (other slides' rows kept).
    """
    if status_dir is None:
        table = merge_by_slide_id(store, key, rows_to_table(rows, schema))
        store.write_parquet(key, _with_meta(table, config, {}))
        return table
    stored, cache = stored_rows(store, key, status_dir)
    versions = store.signatures(status_dir, layout.STATUS_SUFFIX)
    for attempt in range(REBUILDS):
        table = _build_table(store, versions, cache, rows, stored, schema)
        used = {k: v for k, v in versions.items() if k in cache}
        store.write_parquet(key, _with_meta(table, config, used))
        again = store.signatures(status_dir, layout.STATUS_SUFFIX)
        if again == versions:
            break
        versions = again
        time.sleep(0.05 * (attempt + 1))
    return table


def stored_rows(
    store: Store, key: str, status_dir: str
) -> tuple[list[Row], dict[str, tuple[str, Row]]]:
    """The stored table's rows, and ``status key -> (version, row)`` of those whose status
    version is recorded (a status file still at that version need not be read again): in the
    ``status_version`` column, or in the footer of tables written before that column."""
    try:
        table = store.read_parquet(key)
    except Exception:  # noqa: BLE001 — missing or damaged: rebuilt from the status files
        return [], {}
    column = layout.STATUS_VERSION_COLUMN
    recorded: dict[str, str | None] = {}
    if column in table.column_names:
        ids = table.column("slide_id").to_pylist()
        for sid, version in zip(ids, table.column(column).to_pylist(), strict=True):
            recorded[posixpath.join(status_dir, f"{sid}{layout.STATUS_SUFFIX}")] = version
        table = table.drop_columns([column])
    else:
        meta = table.schema.metadata or {}
        try:
            old = json.loads(meta.get(_VERSIONS_META.encode(), b"{}"))
        except ValueError:
            old = {}
        recorded = {status: version for status, (version, _) in old.items()}
    rows = table.to_pylist()
    by_id = {r.get("slide_id"): r for r in rows}
    cache = {}
    for status, version in recorded.items():
        sid = posixpath.basename(status)[: -len(layout.STATUS_SUFFIX)]
        if version and sid in by_id:
            cache[status] = (version, by_id[sid])
    return rows, cache


def _build_table(
    store: Store,
    versions: dict[str, str],
    cache: dict[str, tuple[str, Row]],
    rows: list[Row],
    stored: list[Row],
    schema: pa.Schema,
) -> pa.Table:
    stale = [k for k, v in versions.items() if cache.get(k, ("",))[0] != v]
    for status, data in store.read_many(stale).items():
        try:
            row = json.loads(data)
        except ValueError:
            continue  # a damaged status file: that slide reruns
        if isinstance(row, dict) and row.get("slide_id"):
            cache[status] = (versions[status], row)
    by_id = {cache[k][1]["slide_id"]: cache[k][1] for k in versions if k in cache}
    ours = {}
    for row in rows:  # this run's row, unless another run finished the slide after it
        found = by_id.get(row["slide_id"])
        if found is None or str(row.get("finished_at") or "") >= str(
            found.get("finished_at") or ""
        ):
            ours[row["slide_id"]] = row
    others = {sid: r for sid, r in by_id.items() if sid not in ours}
    for row in stored:
        sid = row.get("slide_id")
        if sid not in ours and sid not in others:
            others[sid] = row
    ordered = [others[sid] for sid in sorted(others)] + list(ours.values())
    return rows_to_table(ordered, schema)


def _with_meta(table: pa.Table, config: HashedConfig | None, versions: dict[str, str]) -> pa.Table:
    """The table as written: its schema version and config in the footer, and with
    ``versions`` (status key -> version its row came from) the ``status_version`` column, so
    a later build (or a rerun's skip decision) reuses rows whose status file is unchanged.
    A column, not the footer: a footer map would grow ~100 bytes per slide past the Parquet
    readers' footer limits near 10⁶ slides."""
    meta: dict[str, str] = {"wsidist.schema_version": SCHEMA_VERSION}
    if config is not None:
        meta["wsidist.config_hash"] = config.config_hash()
        meta["wsidist.config"] = config.model_dump_json()
    if versions:
        by_id = {
            posixpath.basename(k)[: -len(layout.STATUS_SUFFIX)]: v for k, v in versions.items()
        }
        column = pa.array([by_id.get(s) for s in table.column("slide_id").to_pylist()], pa.string())
        if layout.STATUS_VERSION_COLUMN in table.column_names:
            table = table.drop_columns([layout.STATUS_VERSION_COLUMN])
        table = table.append_column(layout.STATUS_VERSION_COLUMN, column)
    return table.replace_schema_metadata(meta)

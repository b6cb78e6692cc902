"""The one per-slide task template, run on a worker: skip, run, failure row, timings, status.

Every stage's worker function is ``run_slide_task(task, work, …)``: ``work()`` does the slide's
job and returns its row's columns; everything else (the rerun skip, the worker id, turning an
exception into a ``failed`` row with a readable reason, timestamps, the status JSON) is here,
once.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from wsidist.errors import ConfigError, OutputError, failure_reason
from wsidist.io.accounting import metering
from wsidist.io.inputs import assign_slide_ids, expand
from wsidist.io.remote import source_version
from wsidist.io.storage import Store
from wsidist.runtime.manifest import read_manifest

Row = dict[str, Any]


@dataclass(frozen=True)
class SlideTask:
    """One slide of a job: where it is, the id its outputs are written under, and what an
    input manifest says about it (``mpp`` instead of the file's, label columns)."""

    url: str
    slide_id: str
    mpp: float | None = None
    labels: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    annotation: str | None = None  # the slide's annotation file (manifest or --annotations)


@dataclass(frozen=True)
class Plan:
    """A job's slides, and notes on what input folders and globs skipped."""

    tasks: list[SlideTask]
    notes: list[str] = field(default_factory=list)


def plan_job(
    inputs: Sequence[str | SlideTask],
    *,
    exclude: Iterable[str | None] = (),
    manifest: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Plan:
    """Slide tasks for a job's inputs and manifest, in a stable order, with notes.

    Inputs are paths, folders, globs or URLs, expanded once (files under an ``exclude`` root,
    the job's own output, are skipped); the manifest's slides are added, and its ``slide_id``,
    ``mpp`` and labels apply to its URLs. Already planned :class:`SlideTask` items pass through
    unchanged (a caller that planned a job to show progress does not list a bucket twice).
    Raises :class:`ConfigError` when two slides would share an id.
    """
    if inputs and all(isinstance(item, SlideTask) for item in inputs):
        return Plan(list(inputs))  # type: ignore[arg-type]
    found = expand([str(item) for item in inputs], exclude=exclude)
    rows = read_manifest(manifest, storage_options) if manifest else []
    by_url = {r.url: r for r in rows}
    urls = sorted(set(found.urls) | set(by_url))
    if not urls:
        raise ConfigError("no slides to process: give slide paths, folders, globs or URLs")
    ids = assign_slide_ids(urls, {r.url: r.slide_id for r in rows if r.slide_id})
    tasks = []
    for url in urls:
        row = by_url.get(url)
        extra = {"mpp": row.mpp, "labels": row.labels, "annotation": row.annotation} if row else {}
        tasks.append(SlideTask(url, ids[url], **extra))
    return Plan(tasks, found.notes())


def plan_tasks(
    inputs: Sequence[str | SlideTask],
    *,
    exclude: Iterable[str | None] = (),
    manifest: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> list[SlideTask]:
    """The tasks of :func:`plan_job`."""
    return plan_job(
        inputs, exclude=exclude, manifest=manifest, storage_options=storage_options
    ).tasks


def worker_id() -> str:
    """``host:pid`` of the process running a task."""
    return f"{socket.gethostname()}:{os.getpid()}"


def utc_now() -> str:
    """The current time, ISO 8601 UTC with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def run_slide_task(
    task: SlideTask,
    work: Callable[[], Row],
    *,
    store: Store,
    config_hash: str,
    status_key: str | None,
    columns: Row | None = None,
    overwrite: bool = False,
    still_current: Callable[[Row], bool] | None = None,
    depends_on: Callable[[], Row] | None = None,
    on_failure: Callable[[], None] | None = None,
    finish: Callable[[Row], Row] | None = None,
) -> Row:
    """Run ``work`` for one slide and return its row. Never raises for slide or write errors.

    - Skip key: the URL, ``config_hash``, the source's identity (``source_version``: size plus
      mtime, or ETag) and ``depends_on()`` (e.g. an input mask's hash), all kept in the status
      JSON. Unless ``overwrite``, a status ``ok`` with the same key (and
      ``still_current(previous)``, e.g. "the output still exists") is returned as the row, with
      ``skipped`` True. A source that cannot be read is never current.
    - Run: the row starts as url, slide_id, ``columns``, config_hash, worker, started_at, the
      skip key, and takes ``work()``'s columns; status ``ok``.
    - Failure: any exception becomes status ``failed`` with :func:`failure_reason` as the
      error; ``on_failure()`` then removes outputs (partial ones, and earlier ones that would
      look current next to a failed row).
    - Accounting: ``bytes_read`` and ``read_requests``, what the slide's reads moved from its
      source in this task (:mod:`wsidist.io.accounting`), plus any the work reported itself
      (reads by sub-tasks on other workers).
    - Finish: seconds, finished_at, skipped False, then ``finish(row)``'s columns; the row is
      written to ``status_key`` (when given) so a rerun can skip it.
    - Write errors that no retry can fix (permission, read-only, no space, …), in the work, the
      cleanup or the status write, also set ``output_error``: the results loop stops the job.
    """
    started = time.perf_counter()
    row: Row = {
        "url": task.url,
        "slide_id": task.slide_id,
        **(columns or {}),
        "config_hash": config_hash,
        "worker": worker_id(),
        "started_at": utc_now(),
    }
    with metering() as meter:
        try:
            if status_key is not None:
                row["source_version"] = source_version(task.url)
            if depends_on is not None:
                row["depends_on"] = depends_on()
            if not overwrite and status_key is not None:
                previous = store.read_json(status_key)
                if is_current(previous, row, still_current):
                    return {**previous, "skipped": True}
            row.update(work())
            row["status"] = "ok"
        except Exception as exc:  # noqa: BLE001 — a slide's failure is a row, not a crash
            _fail(row, exc)
            if on_failure is not None:
                try:
                    on_failure()
                except Exception as cleanup:  # noqa: BLE001
                    _fail(row, cleanup, keep_error=True)
    row["bytes_read"] = meter.bytes_read + int(row.get("bytes_read") or 0)
    row["read_requests"] = meter.read_requests + int(row.get("read_requests") or 0)
    row["seconds"] = round(time.perf_counter() - started, 3)
    row["finished_at"] = utc_now()
    row["skipped"] = False
    if finish is not None:
        row.update(finish(row))
    if status_key is not None:
        try:
            store.write_json(status_key, row)
        except Exception as exc:  # noqa: BLE001 — e.g. the output became read-only or full
            _fail(row, exc)
    return row


def is_current(previous: Any, row: Row, still_current: Callable[[Row], bool] | None) -> bool:
    """Whether a stored status is ``ok`` for exactly this row's skip key."""
    return (
        isinstance(previous, dict)
        and previous.get("status") == "ok"
        and row.get("source_version") is not None
        and all(previous.get(k) == row.get(k) for k in SKIP_KEY)
        and (still_current is None or still_current(previous))
    )


SKIP_KEY = ("url", "config_hash", "source_version", "depends_on")
_FATAL_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})


def _fail(row: Row, exc: BaseException, keep_error: bool = False) -> None:
    """Mark ``row`` failed with ``exc``'s reason (or keep an earlier one); a permanent write
    error also sets ``output_error``, which stops the job."""
    if not (keep_error and row.get("status") == "failed"):
        row.update(status="failed", error=failure_reason(exc))
    fatal = isinstance(exc, OutputError) and exc.permanent
    fatal = fatal or (isinstance(exc, OSError) and exc.errno in _FATAL_ERRNOS)
    if fatal and "output_error" not in row:
        row["output_error"] = failure_reason(exc)


def lost_task_row(task: SlideTask, exc: BaseException, config_hash: str, **columns: Any) -> Row:
    """The ``failed`` row of a slide whose task never returned (its worker died twice, …)."""
    return {
        "url": task.url,
        "slide_id": task.slide_id,
        "status": "failed",
        "error": f"worker failed on the slide: {type(exc).__name__}: {exc}",
        "config_hash": config_hash,
        "skipped": False,
        "finished_at": utc_now(),
        **columns,
    }


def record_lost(
    store: Store, status_key: str, row: Row, cleanup: Callable[[], None] | None = None
) -> Row:
    """After ``cleanup()`` (outputs that would look current), write a lost task's ``failed``
    row as its status, so the tables built from the status files say so; returns the row."""
    if cleanup is not None:
        cleanup()
    store.write_json(status_key, row)
    return row

"""Rerun skips decided on the driver: one listing of the status folder, then only the work.

A rerun over slides that are already done must not cost a Dask task each. :func:`current_rows`
lists a stage's status folder once, reads only the status files of slides that have one, and
returns the rows of slides whose stored status is ``ok`` for exactly the skip key the worker
checks (:func:`wsidist.runtime.tasks.is_current`: URL, config hash, the source's identity and
what the stage depends on, plus "still current"). Those slides are not submitted; the worker's
own check stays as the safety net for the rest (a driver that cannot prove a skip submits).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from wsidist.io.remote import local_path, source_version
from wsidist.io.storage import Store
from wsidist.runtime.tasks import SlideTask, is_current

Row = dict[str, Any]
REMOTE_THREADS = 16  # concurrent metadata requests for remote sources


def current_rows(
    store: Store,
    tasks: Sequence[SlideTask],
    *,
    status_dir: str,
    status_key: Callable[[str], str],
    config_hash: Callable[[SlideTask], str],
    depends_on: Callable[[SlideTask], Row] | None = None,
    still_current: Callable[[SlideTask, Row, frozenset[str]], bool] | None = None,
) -> dict[str, Row]:
    """``slide_id -> row`` (``skipped`` True) of the tasks a rerun would skip.

    ``config_hash(task)`` and ``depends_on(task)`` compute what the worker puts in its row;
    ``still_current(task, previous, listed)`` sees the keys listed in ``status_dir`` (any
    suffix), e.g. to check that the stage's output file is there. One listing, one read per
    candidate status file, one source identity per candidate.
    """
    listed = frozenset(store.signatures(status_dir, ""))
    candidates = [t for t in tasks if status_key(t.slide_id) in listed]
    if not candidates:
        return {}
    stored = store.read_many([status_key(t.slide_id) for t in candidates])
    candidates = [t for t in candidates if status_key(t.slide_id) in stored]

    def check(task: SlideTask) -> Row | None:
        try:
            previous = json.loads(stored[status_key(task.slide_id)])
        except ValueError:
            return None  # a damaged status file: the worker reruns the slide
        if not isinstance(previous, dict) or previous.get("status") != "ok":
            return None
        row: Row = {"url": task.url, "config_hash": config_hash(task)}
        if any(previous.get(k) != v for k, v in row.items()):
            return None  # cheap parts of the key first: no source request for a changed config
        row["source_version"] = source_version(task.url)
        if depends_on is not None:
            row["depends_on"] = depends_on(task)
        current = None
        if still_current is not None:
            current = lambda prev: still_current(task, prev, listed)  # noqa: E731
        if not is_current(previous, row, current):
            return None
        return {**previous, "skipped": True}

    remote = any(local_path(t.url) is None for t in candidates)
    if remote or depends_on is not None:
        with ThreadPoolExecutor(REMOTE_THREADS if remote else 4) as pool:
            found = list(pool.map(check, candidates))
    else:
        found = [check(t) for t in candidates]
    return {t.slide_id: row for t, row in zip(candidates, found, strict=True) if row is not None}


def hash_per_mpp(config: Any) -> Callable[[SlideTask], str]:
    """``task -> config hash`` as the workers compute it (a manifest ``mpp`` is part of the
    config), hashing each distinct mpp once."""
    hashes: dict[float | None, str] = {None: config.config_hash()}

    def of(task: SlideTask) -> str:
        if task.mpp not in hashes:
            hashes[task.mpp] = config.model_copy(update={"mpp": task.mpp}).config_hash()
        return hashes[task.mpp]

    return of

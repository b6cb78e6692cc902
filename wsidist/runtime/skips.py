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

from wsidist import layout
from wsidist.io.remote import listed_versions, local_path, source_version
from wsidist.io.storage import Store
from wsidist.runtime.results import stored_rows
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
    suffix), e.g. to check that the stage's output file is there. One listing of the status
    folder, one read of the job table (its ``status_version`` column says which rows are still
    their status file: only the others are read), one listing per input folder for the
    sources' identities (a HEAD only where the listing does not match).
    """
    signatures = store.signatures(status_dir, "")
    listed = frozenset(signatures)
    candidates = [t for t in tasks if status_key(t.slide_id) in listed]
    if not candidates:
        return {}
    previous = _previous_rows(store, candidates, status_dir, status_key, signatures, depends_on)
    candidates = [t for t in candidates if t.slide_id in previous]

    def cheap(task: SlideTask) -> bool:
        prev = previous[task.slide_id]
        if not isinstance(prev, dict) or prev.get("status") != "ok":
            return False
        return prev.get("url") == task.url and prev.get("config_hash") == config_hash(task)

    # cheap parts of the key first: no source request for a changed config
    candidates = [t for t in candidates if cheap(t)]
    from_listing = listed_versions([t.url for t in candidates])

    def check(task: SlideTask) -> Row | None:
        prev = previous[task.slide_id]
        row: Row = {"url": task.url, "config_hash": config_hash(task)}
        version = from_listing.get(task.url)
        if version is None or version != prev.get("source_version"):
            version = source_version(task.url)  # a HEAD (or stat): the worker's own identity
        row["source_version"] = version
        if depends_on is not None:
            row["depends_on"] = depends_on(task)
        current = None
        if still_current is not None:
            current = lambda p: still_current(task, p, listed)  # noqa: E731
        if not is_current(prev, row, current):
            return None
        return {**prev, "skipped": True}

    remote = any(local_path(t.url) is None for t in candidates)
    if remote or depends_on is not None:
        with ThreadPoolExecutor(REMOTE_THREADS if remote else 4) as pool:
            found = list(pool.map(check, candidates))
    else:
        found = [check(t) for t in candidates]
    return {t.slide_id: row for t, row in zip(candidates, found, strict=True) if row is not None}


def _previous_rows(
    store: Store,
    tasks: Sequence[SlideTask],
    status_dir: str,
    status_key: Callable[[str], str],
    signatures: dict[str, str],
    depends_on: Callable[[SlideTask], Row] | None,
) -> dict[str, Any]:
    """``slide_id -> stored status`` of ``tasks``: the job table's row where the table records
    the status file's listed version (one read of the table instead of one per slide), else
    the status file itself. Rows of stages that depend on other outputs are always read from
    their status files (the table does not carry ``depends_on``)."""
    table_key = {d: t for t, d in layout.ID_TABLES}.get(status_dir)
    reused: dict[str, Any] = {}
    if table_key is not None and depends_on is None:
        _, cache = stored_rows(store, table_key, status_dir)
        for task in tasks:
            key = status_key(task.slide_id)
            version, row = cache.get(key, (None, None))
            if version is not None and version == signatures.get(key):
                reused[task.slide_id] = row
    wanted = [t for t in tasks if t.slide_id not in reused]
    stored = store.read_many([status_key(t.slide_id) for t in wanted])
    for task in wanted:
        data = stored.get(status_key(task.slide_id))
        if data is None:
            continue
        try:
            reused[task.slide_id] = json.loads(data)
        except ValueError:
            continue  # a damaged status file: the worker reruns the slide
    return reused


def hash_per_mpp(config: Any) -> Callable[[SlideTask], str]:
    """``task -> config hash`` as the workers compute it (a manifest ``mpp`` is part of the
    config), hashing each distinct mpp once."""
    hashes: dict[float | None, str] = {None: config.config_hash()}

    def of(task: SlideTask) -> str:
        if task.mpp not in hashes:
            hashes[task.mpp] = config.model_copy(update={"mpp": task.mpp}).config_hash()
        return hashes[task.mpp]

    return of

"""Checks a job passes before any slide is read: the output root, and slide ids it already holds.

- :func:`output_root`: a local output path made absolute, so workers anywhere write there;
- :func:`check_output_root`: the output is (or can become) a folder, not an existing file;
- :func:`check_stored_ids`: a slide id of this job that the output already holds for a
  different URL (in ``slides.parquet``, ``pyramids.parquet`` or a per-slide status JSON,
  compared case-insensitively) refuses the job, naming both URLs: a rerun never silently
  replaces another slide's rows and tiles.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence
from typing import Any, Protocol

import fsspec
import pyarrow.parquet as pq

from wsidist import layout
from wsidist.errors import ConfigError
from wsidist.io.inputs import id_clash_message
from wsidist.io.remote import local_path
from wsidist.io.storage import Store


class Planned(Protocol):
    url: str
    slide_id: str


def output_root(out: str) -> str:
    """``out`` as workers must see it: a local path made absolute (workers of a cluster run in
    other folders), a URL unchanged."""
    local = local_path(out)
    return os.path.abspath(local) if local is not None else out


def check_output_root(out: str, storage_options: dict[str, Any] | None = None) -> None:
    """ConfigError when ``out`` (or a folder above it) is an existing file."""
    local = local_path(out)
    if local is not None:
        path = os.path.abspath(local)
        probe = path
        while not os.path.lexists(probe) and os.path.dirname(probe) != probe:
            probe = os.path.dirname(probe)
        if os.path.lexists(probe) and not os.path.isdir(probe):
            what = "is" if probe == path else f"is inside {probe}, which is"
            raise ConfigError(f"output {out!r} {what} an existing file, not a folder")
        return
    fs, root = fsspec.core.url_to_fs(out, **(storage_options or {}))
    try:
        is_file = fs.isfile(root.rstrip("/"))
    except Exception:  # noqa: BLE001 — an unreachable store fails later, with its own reason
        return
    if is_file:
        raise ConfigError(f"output {out!r} is an existing object, not a folder")


def _table_urls(store: Store, key: str) -> dict[str, tuple[str, str]]:
    """``{lower id: (id, url)}`` of a stored table (empty when missing or unreadable)."""
    try:
        if not store.exists(key):
            return {}
        with store.fs.open(store.path(key), "rb") as fh:
            table = pq.read_table(fh, columns=["slide_id", "url"])
    except Exception:  # noqa: BLE001 — a damaged old table is replaced, as the merge does
        return {}
    ids, urls = table.column("slide_id").to_pylist(), table.column("url").to_pylist()
    return {i.lower(): (i, u) for i, u in zip(ids, urls) if i and u}


def _status_urls(
    store: Store, folder: str, wanted: set[str], known: dict[str, tuple[str, str]]
) -> dict[str, tuple[str, str]]:
    """Owners from per-slide status JSONs of wanted ids the table does not list."""
    out = {}
    for key in store.list(folder):
        name = posixpath.basename(key)
        if not name.endswith(".json") or name.startswith("_tmp-"):
            continue
        sid = name[: -len(".json")]
        if sid.lower() not in wanted or sid.lower() in known:
            continue
        status = store.read_json(key)
        if isinstance(status, dict) and status.get("url"):
            out[sid.lower()] = (sid, str(status["url"]))
    return out


def check_stored_ids(store: Store, tasks: Sequence[Planned]) -> None:
    """ConfigError when the output already holds one of the tasks' ids for another URL."""
    wanted = {t.slide_id.lower(): t for t in tasks}
    if not wanted:
        return
    for table_key, status_dir in layout.ID_TABLES:
        owners = _table_urls(store, table_key)
        owners.update(_status_urls(store, status_dir, set(wanted), owners))
        for lower, (_, url) in owners.items():
            task = wanted.get(lower)
            if task is not None and url != task.url:
                raise ConfigError(id_clash_message(task.slide_id, url, task.url, stored=True))

"""Output storage on any fsspec URL: safe keys and atomic writes.

Everything a job writes goes through :class:`Store`: a root URL (a local folder or
``s3://bucket/prefix``) plus relative keys. Keys are checked so that no slide name can write
outside the root, and every write goes to a temporary key first and is then moved into place,
so a reader never sees a half-written file.
"""

from __future__ import annotations

import io
import json
import posixpath
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from wsidist.errors import WsidistError

_SAFE_PART = re.compile(r"^[A-Za-z0-9._=-]+$")


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key (no ``..``, no absolute path), else raise."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise WsidistError(f"unsafe output key {key!r}")
    for part in parts:
        if not _SAFE_PART.match(part) or part.startswith("."):
            raise WsidistError(f"unsafe output key part {part!r} in {key!r}")
    return key


@dataclass(frozen=True)
class Store:
    """A root URL and its filesystem. Picklable: workers rebuild the filesystem lazily."""

    url: str
    storage_options: dict[str, Any] = field(default_factory=dict)

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        fs, _ = fsspec.core.url_to_fs(self.url, **self.storage_options)
        return fs

    @property
    def root(self) -> str:
        _, root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        return root.rstrip("/")

    @property
    def is_local(self) -> bool:
        return "file" in _protocols(self.fs)

    def path(self, key: str) -> str:
        """Filesystem path (without protocol) of a checked key."""
        return posixpath.join(self.root, check_key(key))

    def full_url(self, key: str) -> str:
        """URL of a key, with the protocol, for tools outside fsspec (DuckDB, users)."""
        path = self.path(key)
        return path if self.is_local else f"{_protocols(self.fs)[0]}://{path}"

    def exists(self, key: str) -> bool:
        return self.fs.exists(self.path(key))

    def read_bytes(self, key: str) -> bytes:
        return self.fs.cat_file(self.path(key))

    def read_json(self, key: str) -> Any:
        """The JSON document at ``key``, or None when it is missing or unreadable."""
        try:
            return json.loads(self.read_bytes(key))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def write_bytes(self, key: str, data: bytes) -> str:
        """Write ``data`` to a temporary key, then move it into place. Returns the path."""
        return self._publish(lambda fs, tmp: fs.pipe_file(tmp, data), key)

    def put_file(self, local_path: str, key: str) -> str:
        """Upload a local file to a temporary key, then move it into place. Returns the path."""
        return self._publish(lambda fs, tmp: fs.put_file(local_path, tmp), key)

    def _publish(self, write: Callable[[fsspec.AbstractFileSystem, str], Any], key: str) -> str:
        fs = self.fs
        final = self.path(key)
        parent = posixpath.dirname(final)
        tmp = posixpath.join(parent, f"_tmp-{uuid.uuid4().hex}-{posixpath.basename(final)}")
        if self.is_local:
            fs.makedirs(parent, exist_ok=True)
        write(fs, tmp)
        try:
            fs.mv(tmp, final)
        except Exception:
            fs.rm(tmp)
            raise
        return final

    def write_parquet(self, key: str, table: pa.Table) -> str:
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        return self.write_bytes(key, buf.getvalue())

    def read_parquet(self, key: str) -> pa.Table:
        with self.fs.open(self.path(key), "rb") as fh:
            return pq.read_table(fh)

    def list(self, prefix: str) -> list[str]:
        """Keys directly under ``prefix`` (a folder key), sorted; empty if it does not exist."""
        base = self.path(prefix)
        try:
            names = self.fs.ls(base, detail=False)
        except FileNotFoundError:
            return []
        return sorted(posixpath.relpath(n.rstrip("/"), self.root) for n in names)

    def remove(self, key: str, recursive: bool = False) -> None:
        path = self.path(key)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=recursive)


def rows_to_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows (dicts, missing keys as nulls) as a table of ``schema``."""
    return pa.Table.from_pylist([{n: r.get(n) for n in schema.names} for r in rows], schema=schema)


def merge_by_slide_id(store: Store, key: str, table: pa.Table) -> pa.Table:
    """``table`` plus the rows of the table stored at ``key`` whose slide is not in ``table``.

    An earlier run's rows for other slides are kept; an unreadable old table is replaced.
    """
    if not store.exists(key):
        return table
    try:
        previous = store.read_parquet(key)
    except Exception:  # noqa: BLE001 — a damaged old table is replaced, not fatal
        return table
    done = set(table.column("slide_id").to_pylist())
    keep = [r for r in previous.to_pylist() if r.get("slide_id") not in done]
    return pa.concat_tables([rows_to_table(keep, table.schema), table]) if keep else table


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)

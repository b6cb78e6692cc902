"""Output storage on any fsspec URL: safe keys, atomic writes, readable write errors.

Everything a job writes goes through :class:`Store`: a root URL (a local folder or
``s3://bucket/prefix``) plus relative keys. Keys are checked so that no slide name can write
outside the root, and every write goes to a temporary key first and is then moved into place,
so a reader never sees a half-written file; a failed write removes its temporary key. The
temporary keys are all in one folder, ``.wsidist-tmp/`` under the root, so finding the orphans
of a crashed run is one listing. A write
that fails raises :class:`~wsidist.errors.OutputError`, ``permanent`` for errors a retry cannot
fix (permission, read-only, no space, quota, a missing bucket or a file in the way).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import posixpath
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from wsidist.errors import OutputError, WsidistError

_SAFE_PART = re.compile(r"^[A-Za-z0-9._=-]+$")
TEMP_PREFIX = "_tmp-"  # as wsidist.layout.TEMP_PREFIX (io does not import layout)
WRITE_BLOCK_BYTES = 16 * 2**20  # a streamed upload's part size: 10,000 parts make 160 GiB
TEMP_DIR = ".wsidist-tmp"  # as wsidist.layout.TEMP_DIR: every write in progress, one folder
_SPOOL_ATTEMPTS = 8  # concurrent writers race on the spool folder's mkdir and rmdir
_PERMANENT_ERRNOS = frozenset(
    {
        errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG,
        errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST,
    }
)  # fmt: skip


def is_permanent(exc: BaseException) -> bool:
    """Whether a write error is one a retry cannot fix (permission, no space, not found, …)."""
    if isinstance(exc, OutputError):
        return exc.permanent
    if isinstance(exc, PermissionError | FileNotFoundError | NotADirectoryError | FileExistsError):
        return True
    return isinstance(exc, OSError) and exc.errno in _PERMANENT_ERRNOS


def output_error(exc: BaseException, where: str) -> OutputError:
    """``exc`` (raised writing ``where``) as an :class:`OutputError` with a one-line reason."""
    if isinstance(exc, OutputError):
        return exc
    if isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror
    else:
        reason = str(exc) or type(exc).__name__
    return OutputError(f"cannot write {where}: {reason}", permanent=is_permanent(exc))


def check_key(key: str, hidden: bool = False) -> str:
    """Return ``key`` if it is a safe relative key (no ``..``, no absolute path), else raise.

    Parts may start with a dot only when ``hidden`` (removing a writer's temporary folder)."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise WsidistError(f"unsafe output key {key!r}")
    for part in parts:
        if not _SAFE_PART.match(part) or (part.startswith(".") and not hidden):
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

    @functools.cached_property
    def root(self) -> str:  # once per Store: resolving the URL is ~70 µs, called per key
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

    def write_json(self, key: str, document: Any) -> str:
        return self.write_bytes(key, json.dumps(document).encode())

    def put_file(self, local_path: str, key: str) -> str:
        """Upload a local file to a temporary key, then move it into place. Returns the path."""
        return self._publish(lambda fs, tmp: fs.put_file(local_path, tmp), key)

    @contextlib.contextmanager
    def open_write(self, key: str, block_size: int = WRITE_BLOCK_BYTES) -> Iterator[BinaryIO]:
        """A stream that writes ``key`` as it is written, for outputs too large to spool.

        On an object store it is one multipart upload (one part of ``block_size`` bytes in
        memory at a time): the object appears only when the block ends without an error, else
        the upload is aborted. Locally, a temporary file renamed into place. A write that fails
        raises :class:`~wsidist.errors.OutputError`."""
        final = self.path(key)
        where = self._url_of(final)
        fs = self.fs
        target = final
        if self.is_local:  # in the one folder of writes in progress, as every other write
            spool = posixpath.join(self.root, TEMP_DIR)
            target = posixpath.join(spool, f"{TEMP_PREFIX}{uuid.uuid4().hex}-{key.rsplit('/')[-1]}")
        try:
            if self.is_local:
                fs.makedirs(posixpath.dirname(final), exist_ok=True)
                fs.makedirs(spool, exist_ok=True)
            fh = fs.open(target, "wb", block_size=block_size)
        except Exception as exc:
            raise output_error(exc, where) from exc
        try:
            yield _Checked(fh, where)
        except BaseException:  # the caller's error, as it is
            self._abandon(fh, target, final)
            raise
        try:
            fh.close()
            if target != final:
                fs.mv(target, final)
        except Exception as exc:
            self._abandon(fh, target, final)
            raise output_error(exc, where) from exc

    def _abandon(self, fh: Any, target: str, final: str) -> None:
        """Abort an unfinished upload (multipart: nothing appears) or remove a temporary file."""
        with contextlib.suppress(Exception):
            if isinstance(fh, fsspec.spec.AbstractBufferedFile):
                fh.discard()
                fh.closed = True
            else:
                fh.close()
        with contextlib.suppress(Exception):
            if target != final and self.fs.exists(target):
                self.fs.rm(target)

    def _publish(self, write: Callable[[fsspec.AbstractFileSystem, str], Any], key: str) -> str:
        final = self.path(key)
        parent = posixpath.dirname(final)
        spool = posixpath.join(self.root, TEMP_DIR)
        tmp = posixpath.join(spool, f"{TEMP_PREFIX}{uuid.uuid4().hex}-{posixpath.basename(final)}")
        fs, local = self.fs, self.is_local
        try:
            if local:
                fs.makedirs(parent, exist_ok=True)
            for attempt in range(_SPOOL_ATTEMPTS):
                if local:  # another writer may remove the emptied spool folder at any moment:
                    with contextlib.suppress(FileExistsError):  # made, then gone before the check
                        fs.makedirs(spool, exist_ok=True)
                try:
                    write(fs, tmp)
                    break
                except FileNotFoundError:  # the spool folder went before the write
                    if attempt == _SPOOL_ATTEMPTS - 1 or not local:
                        raise
            fs.mv(tmp, final)
        except Exception as exc:
            with contextlib.suppress(Exception):  # a partial temporary key is never left behind
                if fs.exists(tmp):
                    fs.rm(tmp)
            raise output_error(exc, self._url_of(final)) from exc
        if local:  # no empty folder left next to a user's file (fails while others write)
            with contextlib.suppress(OSError):
                os.rmdir(spool)
        return final

    def _url_of(self, path: str) -> str:
        return path if self.is_local else f"{_protocols(self.fs)[0]}://{path}"

    def check_writable(self) -> None:
        """Write and remove a probe key; :class:`OutputError` naming the reason if that fails."""
        where = self._url_of(self.root)
        if self.is_local and self.fs.isfile(self.root):
            raise OutputError(f"cannot write {where}: it is a file, not a folder", permanent=True)
        probe = self.path(f"_tmp-probe-{uuid.uuid4().hex}")
        try:
            if self.is_local:
                self.fs.makedirs(self.root, exist_ok=True)
            self.fs.pipe_file(probe, b"")
            self.fs.rm(probe)
        except Exception as exc:
            raise output_error(exc, where) from exc

    def find(self, prefix: str = "", hidden: bool = False) -> list[tuple[str, float, bool]]:
        """``(key, modified unix time, is_dir)`` of everything under ``prefix`` (all: ""; a
        folder whose name starts with a dot only with ``hidden``)."""
        base = posixpath.join(self.root, check_key(prefix, hidden)) if prefix else self.root
        fs = self.fs
        fs.invalidate_cache(base)
        try:
            found = fs.find(base, withdirs=True, detail=True)
        except FileNotFoundError:
            return []
        finally:
            fs.invalidate_cache(base)
        items = []
        for path, info in found.items():
            key = posixpath.relpath(path.rstrip("/"), self.root)
            if key != ".":
                items.append((key, _modified(info), info.get("type") == "directory"))
        return sorted(items)

    def entries(self, prefix: str = "") -> list[tuple[str, float, bool]]:
        """``(key, modified unix time, is_dir)`` of what is directly under ``prefix`` (the root:
        ""; hidden folders too): one listing, not a walk."""
        base = posixpath.join(self.root, check_key(prefix, hidden=True)) if prefix else self.root
        fs = self.fs
        fs.invalidate_cache(base)
        try:
            infos = fs.ls(base, detail=True)
        except FileNotFoundError:
            return []
        finally:
            fs.invalidate_cache(base)
        items = []
        for info in infos:
            key = posixpath.relpath(info["name"].rstrip("/"), self.root)
            if key != "." and not key.startswith(".."):
                items.append((key, _modified(info), info.get("type") == "directory"))
        return sorted(items)

    def signatures(self, prefix: str, suffix: str) -> dict[str, str]:
        """``key -> version`` (size with ETag, or inode and mtime) of the files directly under
        ``prefix`` whose names end with ``suffix``; a rewritten file gets a new version."""
        base = self.path(prefix)
        fs = self.fs
        fs.invalidate_cache(base)
        try:
            infos = fs.ls(base, detail=True)
        except FileNotFoundError:
            return {}
        finally:
            fs.invalidate_cache(base)  # later exists()/info() must not answer from this listing
        found = {}
        for info in infos:
            name = info["name"].rstrip("/")
            base_name = posixpath.basename(name)
            if info.get("type") == "directory" or not base_name.endswith(suffix):
                continue
            if base_name.startswith((TEMP_PREFIX, ".")):
                continue
            key = posixpath.relpath(name, self.root)
            found[key] = "|".join(
                f"{k}={info[k]}" for k in _SIGNATURE_KEYS if info.get(k) is not None
            )
        return found

    def read_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The bytes of several keys (fetched concurrently where the filesystem can); keys that
        vanished meanwhile are left out."""
        paths = {self.path(k): k for k in keys}
        if not paths:
            return {}
        data = self.fs.cat(list(paths), on_error="return")
        found = {}
        for path, value in data.items():
            if isinstance(value, FileNotFoundError):
                continue
            if isinstance(value, BaseException):
                raise value
            found[paths.get(path, paths.get(path.rstrip("/"), path))] = value
        return found

    def write_parquet(self, key: str, table: pa.Table, **options: Any) -> str:
        """``table`` as one Parquet file (zstd; ``options`` go to ``pyarrow.parquet.write_table``,
        e.g. per-column ``use_dictionary`` and ``column_encoding``)."""
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, **{"compression": "zstd", **options})
        return self.write_bytes(key, sink.getvalue().to_pybytes())

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

    def remove(self, key: str, recursive: bool = False, hidden: bool = False) -> None:
        """Remove a key (a folder with ``recursive``); a missing key is fine."""
        path = posixpath.join(self.root, check_key(key, hidden))
        try:
            if self.fs.exists(path):
                self.fs.rm(path, recursive=recursive)
        except FileNotFoundError:
            pass  # removed meanwhile
        except Exception as exc:
            raise output_error(exc, self._url_of(path)) from exc


class _Checked:
    """A write-only stream whose write errors are :class:`OutputError` naming the output."""

    def __init__(self, fh: Any, where: str) -> None:
        self._fh, self._where = fh, where

    def write(self, data: bytes) -> int:
        try:
            return self._fh.write(data)
        except Exception as exc:
            raise output_error(exc, self._where) from exc

    def tell(self) -> int:
        return self._fh.tell()


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


_SIGNATURE_KEYS = ("size", "ETag", "LastModified", "ino", "mtime")


def _modified(info: dict[str, Any]) -> float:
    """Modification time (unix seconds) from an fsspec info dict (local or object store)."""
    value = info.get("mtime", info.get("LastModified", info.get("last_modified")))
    if value is None:
        return 0.0
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    return float(value)


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)

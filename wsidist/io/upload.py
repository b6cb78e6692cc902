"""Outputs whose head is written last: the body streams first, the head (of a size known in
advance, such as a TIFF's IFDs) at the end, with no local copy of the output.

:func:`open_head_last` opens one for a key of a :class:`~wsidist.io.storage.Store`, and
:func:`local_head_last` for a local path:

- **S3** (s3fs): one multipart upload. Parts may be uploaded in any order, so part 1 is kept
  for the head: the body's first ``max(0, 5 MiB - head)`` bytes wait in memory (S3's smallest
  part), later bytes go out as parts 2, 3, … of ``part_bytes`` as they arrive, and part 1
  (head + the bytes held back) is sent last. A small output is one PUT. Memory: at most about
  ``part_bytes + 5 MiB``; local scratch: none.
- **Local**: a temporary file beside the output, the body written after a gap of the head's
  size, the head written into the gap, then renamed into place. Scratch: none but the file.
- **Other object stores**: the body spools to a local temporary file (scratch: about the
  output's size), then head and body stream through the store's own writer.

The output appears only when :meth:`HeadLastWriter.finish` succeeds; an error (or leaving the
block unfinished) aborts it, and write errors are :class:`~wsidist.errors.OutputError`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any, Protocol

from wsidist.errors import OutputError
from wsidist.io.storage import WRITE_BLOCK_BYTES, Store, output_error

__all__ = ["MIN_PART_BYTES", "HeadLastWriter", "local_head_last", "open_head_last"]

MIN_PART_BYTES = 5 * 2**20  # S3's smallest part (all but the last)


class HeadLastWriter(Protocol):
    """A stream of the body, then :meth:`finish` with the head."""

    def write(self, data: bytes) -> None: ...

    def finish(self, head: bytes) -> None: ...

    def abort(self) -> None: ...


class _LocalHeadLast:
    def __init__(self, path: str, head_bytes: int) -> None:
        self._final, self._tmp, self._head_bytes = path, path + ".part", head_bytes
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._fh = open(self._tmp, "wb")  # noqa: SIM115 — closed by finish() or abort()
        self._fh.seek(head_bytes)

    def write(self, data: bytes) -> None:
        self._fh.write(data)

    def finish(self, head: bytes) -> None:
        _check_head(head, self._head_bytes)
        self._fh.seek(0)
        self._fh.write(head)
        self._fh.close()
        os.replace(self._tmp, self._final)

    def abort(self) -> None:
        self._fh.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)


class _MultipartHeadLast:
    def __init__(self, fs: Any, path: str, head_bytes: int, part_bytes: int) -> None:
        if part_bytes < MIN_PART_BYTES:
            raise ValueError(f"part_bytes must be at least {MIN_PART_BYTES}, got {part_bytes}")
        self._fs, self._path, self._head_bytes, self._part = fs, path, head_bytes, part_bytes
        self._bucket, self._key, _ = fs.split_path(path)
        self._hold = max(0, MIN_PART_BYTES - head_bytes)  # body bytes that go out in part 1
        self._held, self._buf = bytearray(), bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        if len(self._held) < self._hold:
            take = self._hold - len(self._held)
            self._held += view[:take]
            view = view[take:]
        self._buf += view
        if len(self._buf) >= self._part:
            self._send(len(self._parts) + 2, self._buf)
            self._buf = bytearray()

    def _send(self, number: int, body: bytearray) -> None:
        if self._upload_id is None:
            made = self._fs.call_s3("create_multipart_upload", Bucket=self._bucket, Key=self._key)
            self._upload_id = made["UploadId"]
        sent = self._fs.call_s3(
            "upload_part", Bucket=self._bucket, Key=self._key, UploadId=self._upload_id,
            PartNumber=number, Body=bytes(body),
        )  # fmt: skip
        self._parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    def finish(self, head: bytes) -> None:
        _check_head(head, self._head_bytes)
        first = bytearray(head) + self._held
        self._held = bytearray()
        if self._upload_id is None:  # small: one PUT
            self._fs.pipe_file(self._path, bytes(first + self._buf))
        else:
            if self._buf:
                self._send(len(self._parts) + 2, self._buf)
            self._buf = bytearray()
            self._send(1, first)
            parts = sorted(self._parts, key=lambda p: p["PartNumber"])
            self._fs.call_s3(
                "complete_multipart_upload", Bucket=self._bucket, Key=self._key,
                UploadId=self._upload_id, MultipartUpload={"Parts": parts},
            )  # fmt: skip
            self._upload_id = None
        self._fs.invalidate_cache(self._path)

    def abort(self) -> None:
        if self._upload_id is not None:
            with contextlib.suppress(Exception):
                self._fs.call_s3(
                    "abort_multipart_upload", Bucket=self._bucket, Key=self._key,
                    UploadId=self._upload_id,
                )  # fmt: skip
            self._upload_id = None


class _SpooledHeadLast:
    def __init__(self, fs: Any, path: str, head_bytes: int) -> None:
        self._fs, self._path, self._head_bytes = fs, path, head_bytes
        self._spool = tempfile.TemporaryFile()  # noqa: SIM115 — closed by finish() or abort()

    def write(self, data: bytes) -> None:
        self._spool.write(data)

    def finish(self, head: bytes) -> None:
        _check_head(head, self._head_bytes)
        self._spool.seek(0)
        with self._fs.open(self._path, "wb", block_size=WRITE_BLOCK_BYTES) as out:
            out.write(head)
            shutil.copyfileobj(self._spool, out, WRITE_BLOCK_BYTES)
        self._spool.close()

    def abort(self) -> None:
        self._spool.close()


class _Guarded:
    """Write errors as :class:`OutputError` naming the output; remembers a finish."""

    def __init__(self, inner: Any, where: str) -> None:
        self._inner, self._where, self.finished = inner, where, False

    def write(self, data: bytes) -> None:
        self._call(self._inner.write, data)

    def finish(self, head: bytes) -> None:
        self._call(self._inner.finish, head)
        self.finished = True

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._inner.abort()

    def _call(self, fn: Any, arg: bytes) -> None:
        try:
            fn(arg)
        except Exception as exc:
            raise output_error(exc, self._where) from exc


def _check_head(head: bytes, expected: int) -> None:
    if len(head) != expected:
        raise ValueError(f"the head is {len(head)} bytes, {expected} were reserved")


@contextlib.contextmanager
def _guarded(open_inner: Any, where: str) -> Iterator[HeadLastWriter]:
    try:
        inner = open_inner()
    except Exception as exc:
        raise output_error(exc, where) from exc
    writer = _Guarded(inner, where)
    try:
        yield writer
    except BaseException:
        writer.abort()
        raise
    if not writer.finished:
        writer.abort()
        raise OutputError(f"{where}: the output was closed before its head was written")


def local_head_last(path: str, head_bytes: int) -> contextlib.AbstractContextManager:
    """A head-last writer of the local file ``path`` (see the module docstring)."""
    return _guarded(lambda: _LocalHeadLast(os.fspath(path), head_bytes), os.fspath(path))


def open_head_last(
    store: Store, key: str, head_bytes: int, part_bytes: int = WRITE_BLOCK_BYTES
) -> contextlib.AbstractContextManager:
    """A head-last writer of ``key`` in ``store``, with ``head_bytes`` kept for the head."""
    path, where, fs = store.path(key), store.full_url(key), store.fs
    if store.is_local:
        return _guarded(lambda: _LocalHeadLast(path, head_bytes), where)
    if hasattr(fs, "call_s3") and hasattr(fs, "split_path"):
        return _guarded(lambda: _MultipartHeadLast(fs, path, head_bytes, part_bytes), where)
    return _guarded(lambda: _SpooledHeadLast(fs, path, head_bytes), where)

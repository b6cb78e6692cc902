"""A bounded local cache of staged slides, shared by the processes of one host.

Layout under the cache folder: ``<key>/`` holds one staged source (a file, a DICOM folder, an
``.mrxs`` file with its companion folder) and, once complete, ``<key>/.entry.json`` (its bytes;
its modification time is the entry's last use); ``<key>.lock`` is the entry's lock file and
``.index.lock`` the lock every admission and eviction holds.

- A reader holds a *shared* ``flock`` on ``<key>.lock`` while the slide is open (a
  :class:`Lease`); a download holds it *exclusively*, so a second process wanting the same slide
  waits for the first download instead of fetching it again.
- Eviction (least recently used first, by bytes, until the new entry fits in ``max_bytes``)
  removes an entry only when it can take its lock exclusively without waiting: an entry some
  process has open is never removed. Evictions and the downgrade of a finished download to a
  shared lock both happen under ``.index.lock``, so no evictor slips into that gap.
- A download in progress counts with the bytes it reserved. An entry without ``.entry.json``
  whose lock nobody holds is an orphan (a download whose process died; ``flock`` locks end
  with their process) and is removed by the next admission, before the tally.
- When every byte is held by open slides, an admission waits up to ``wait_s`` for room, then
  fails with :class:`~wsidist.errors.StagingError`; so does a source larger than the cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from wsidist.errors import StagingError
from wsidist.io.ranged import RangeSpec

DEFAULT_CACHE_MAX_GB = 20.0
DEFAULT_WAIT_S = 300.0
_ENTRY = ".entry.json"
_RESERVE = ".reserve"
_INDEX_LOCK = ".index.lock"
_POLL_S = 0.25
_KEY = re.compile(r"[0-9a-f]{32}")  # an entry's name (io.remote's key: 32 hex digits)


def default_cache_dir() -> str:
    """``$WSIDIST_CACHE_DIR`` or ``~/.cache/wsidist/slides``."""
    return os.environ.get("WSIDIST_CACHE_DIR") or str(Path.home() / ".cache" / "wsidist" / "slides")


@dataclass(frozen=True)
class CacheSpec:
    """Where remote slides are staged and how many bytes they may take there, and how the ones
    read by ranges are read (:class:`~wsidist.io.ranged.RangeSpec`); picklable, carried by a
    job to every worker that opens a slide."""

    dir: str | None = None
    max_gb: float = DEFAULT_CACHE_MAX_GB
    wait_s: float = DEFAULT_WAIT_S  # how long a download waits for room held by open slides
    range_reads: RangeSpec = field(default_factory=RangeSpec)

    def __post_init__(self) -> None:
        if not self.max_gb > 0:
            raise ValueError(f"cache_max_gb must be > 0, got {self.max_gb!r}")

    @property
    def root(self) -> Path:
        return Path(self.dir or default_cache_dir())

    @property
    def max_bytes(self) -> int:
        return int(self.max_gb * 1e9)


def as_cache(value: str | os.PathLike[str] | CacheSpec | None) -> CacheSpec:
    """A :class:`CacheSpec` from a spec, a folder (default bound) or None (the default)."""
    if isinstance(value, CacheSpec):
        return value
    return CacheSpec(os.fspath(value) if value is not None else None)


@dataclass
class Lease:
    """A local path held open: the entry is not evicted until :meth:`close`.

    ``bytes_downloaded`` and ``files_downloaded`` are what staging fetched for this lease (0 on
    a cache hit, and for local paths, which hold no lock); ``requests`` counts the object-store
    calls it made: the metadata look-ups (also on a hit) and one GET per file downloaded."""

    path: str
    bytes_downloaded: int = 0
    files_downloaded: int = 0
    requests: int = 0
    _fd: int | None = field(default=None, repr=False)

    @property
    def pinned(self) -> bool:
        """Whether this lease holds a cache entry (a remote slide), not just a local path."""
        return self._fd is not None

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # releases the shared lock

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _flock(path: Path, mode: int, block: bool = True) -> int | None:
    """A descriptor of ``path`` locked with ``mode``; None when ``block`` is False and another
    holds it. Retries when the file was replaced while waiting (so lock files may be removed)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, mode if block else mode | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


@contextlib.contextmanager
def _index_lock(root: Path) -> Iterator[None]:
    fd = _flock(root / _INDEX_LOCK, fcntl.LOCK_EX)
    try:
        yield
    finally:
        os.close(fd)


def _tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _entry_bytes(entry: Path) -> int | None:
    try:
        return int(json.loads((entry / _ENTRY).read_text())["bytes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _remove_entry(root: Path, key: str) -> None:
    shutil.rmtree(root / key, ignore_errors=True)


def _tally(root: Path, own_key: str) -> tuple[int, list[tuple[int, str, int]]]:
    """Bytes the cache holds (downloads in progress at their reservation) and the complete
    entries (last use, key, bytes); orphans are removed on the way. Under the index lock."""
    used, complete = 0, []
    for entry in root.iterdir():
        key = entry.name
        if not _KEY.fullmatch(key) or not entry.is_dir() or key == own_key:
            continue  # only our own entries: a cache folder shared with other files loses none
        size = _entry_bytes(entry)
        if size is not None:
            used += size
            complete.append(((entry / _ENTRY).stat().st_mtime_ns, key, size))
            continue
        fd = _flock(root / f"{key}.lock", fcntl.LOCK_EX, block=False)
        if fd is not None:  # nobody is downloading it: an orphan
            try:
                _remove_entry(root, key)
                (root / f"{key}.lock").unlink(missing_ok=True)
            finally:
                os.close(fd)
            continue
        try:
            used += int((entry / _RESERVE).read_text())
        except (OSError, ValueError):
            used += _tree_bytes(entry)
    return used, sorted(complete)


def sweep(cache: CacheSpec) -> None:
    """Remove orphaned downloads (entries no live process is writing) from the cache."""
    root = cache.root
    if root.is_dir():
        with _index_lock(root):
            _tally(root, own_key="")


def _make_room(cache: CacheSpec, key: str, need: int) -> None:
    """Evict idle entries, least recently used first, until ``need`` more bytes fit; reserve
    them. Waits for open slides to close, then raises StagingError."""
    root, deadline = cache.root, time.monotonic() + cache.wait_s
    while True:
        with _index_lock(root):
            used, complete = _tally(root, key)
            for _, other, size in complete:
                if used + need <= cache.max_bytes:
                    break
                fd = _flock(root / f"{other}.lock", fcntl.LOCK_EX, block=False)
                if fd is None:
                    continue  # open in some process: never evicted
                try:
                    _remove_entry(root, other)
                    (root / f"{other}.lock").unlink(missing_ok=True)
                finally:
                    os.close(fd)
                used -= size
            if used + need <= cache.max_bytes:
                (root / key).mkdir(parents=True, exist_ok=True)
                (root / key / _RESERVE).write_text(str(need))
                return
        if time.monotonic() >= deadline:
            raise StagingError(
                f"the staging cache {root} is full: {used / 1e9:.3g} GB of its "
                f"{cache.max_gb:g} GB (--cache-max-gb) are slides open in running tasks, and "
                f"this slide needs {need / 1e9:.3g} GB; give a larger --cache-max-gb or fewer "
                "workers per host"
            )
        time.sleep(_POLL_S)


def acquire(
    cache: CacheSpec,
    key: str,
    need_bytes: int,
    main: str,
    fetch: Callable[[Path], tuple[int, int]],
) -> Lease:
    """A :class:`Lease` of ``main`` (a path relative to entry ``key``'s folder): a hit, or
    ``fetch(entry_dir)`` after making room for ``need_bytes``. ``fetch`` downloads into the
    folder and returns (bytes, files). Entries may hold several slides (a DICOM folder's
    series): each caller names its own ``main``.
    """
    if need_bytes > cache.max_bytes:
        raise StagingError(
            f"the slide is {need_bytes / 1e9:.3g} GB, larger than the whole staging cache "
            f"({cache.max_gb:g} GB, --cache-max-gb): give a larger --cache-max-gb"
        )
    root = cache.root
    root.mkdir(parents=True, exist_ok=True)
    lock, entry = root / f"{key}.lock", root / key
    path = str(entry / main)
    fd = _flock(lock, fcntl.LOCK_SH)
    if _hit(entry):
        return Lease(path, _fd=fd)
    os.close(fd)
    fd = _flock(lock, fcntl.LOCK_EX)  # waits while another process downloads it
    try:
        nbytes = nfiles = 0
        if not _hit(entry):
            shutil.rmtree(entry, ignore_errors=True)  # a dead download's leftovers
            _make_room(cache, key, need_bytes)
            try:
                nbytes, nfiles = fetch(entry)
                (entry / _RESERVE).unlink(missing_ok=True)
                (entry / _ENTRY).write_text(json.dumps({"bytes": _tree_bytes(entry)}))
                _touch(entry / _ENTRY)
            except BaseException:
                shutil.rmtree(entry, ignore_errors=True)
                raise
        with _index_lock(root):  # no evictor runs between the exclusive and the shared lock
            fcntl.flock(fd, fcntl.LOCK_SH)
    except BaseException:
        os.close(fd)
        raise
    return Lease(path, nbytes, nfiles, _fd=fd)


def _hit(entry: Path) -> bool:
    """Whether the entry is complete (its last use set to now)."""
    try:
        _touch(entry / _ENTRY)
    except OSError:
        return False
    return True


def _touch(path: Path) -> None:
    """Set the last use of ``path`` to now, to the nanosecond (a file system stamps with its
    clock tick, a few ms: two uses within one tick would tie, and LRU would pick by key)."""
    now = time.time_ns()
    os.utime(path, ns=(now, now))

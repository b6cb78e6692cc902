"""Stage remote slides (any fsspec URL) into a local cache so OpenSlide and tifffile can open them.

The cache key hashes the URL together with the object's size, etag and modification time, so a
changed object is fetched again. The cache is bounded and shared by the processes of a host
(:mod:`wsidist.io.staging_cache`: LRU by bytes, file locks, a slide open somewhere is never
evicted, a second process waits for the first one's download). A directory URL (a DICOM
series) and the companion folder of an ``.mrxs`` file are staged as a whole; a ``.dcm`` file
URL brings the ``.dcm`` files of its folder (the other files of its series are among them).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from datetime import timezone
from pathlib import Path
from urllib.parse import unquote, urlparse

import fsspec

from wsidist.io.accounting import current_meter
from wsidist.io.staging_cache import CacheSpec, Lease, acquire, as_cache, default_cache_dir

_VERSION_KEYS = ("size", "ETag", "etag", "LastModified", "last_modified", "mtime", "md5", "created")


__all__ = ["CacheSpec", "Lease", "default_cache_dir", "files_version", "head", "info_version",
           "lease", "local_path", "source_version", "stage"]  # fmt: skip


def local_path(url: str) -> str | None:
    """The local filesystem path of ``url`` (plain path or ``file://``), or None if remote."""
    if "://" not in url:
        return url
    parsed = urlparse(url)
    if parsed.scheme in ("file", "local"):
        return unquote(parsed.path) if parsed.netloc in ("", "localhost") else None
    return None


def _version(info: dict) -> str:
    return "|".join(f"{k}={info[k]}" for k in _VERSION_KEYS if info.get(k) is not None)


def source_version(url: str, storage_options: dict | None = None) -> str | None:
    """The identity of the file (or DICOM folder) at ``url``: size plus modification time
    (locally) or ETag (remotely), as a string; a replaced file gets another one.

    None when it cannot be read (then nothing is skipped: the slide task reports the error).
    """
    try:
        path = local_path(url)
        if path is not None:
            return _local_version(path)
        fs, rpath = fsspec.core.url_to_fs(url, **(storage_options or {}))
        rpath = rpath.rstrip("/")
        info = head(fs, rpath, url)
        if info.get("type") == "directory":
            return files_version(fs.find(rpath, detail=True))
        return _version(info) or None
    except Exception:  # noqa: BLE001 — a missing or unreadable source is never "current"
        return None


def files_version(infos: dict[str, dict]) -> str:
    """The identity of several remote files (``path -> info``, paths without the protocol):
    each one's :func:`info_version`, in path order, hashed; any file replaced, added or
    removed gives another string (:func:`source_version` of a folder)."""
    found = sorted(infos.items())
    digest = hashlib.sha256(";".join(f"{p}:{_version(i)}" for p, i in found).encode())
    return f"files={len(found)}|sha256={digest.hexdigest()[:16]}"


def info_version(info: dict) -> str | None:
    """:func:`source_version`'s string for a remote file's HEAD ``info``."""
    return _version(info) or None


def head(fs: fsspec.AbstractFileSystem, rpath: str, url: str) -> dict:
    """``fs.info`` of ``rpath``, fresh (no cached listing), once per slide task: a HEAD taken
    inside the current :func:`~wsidist.io.accounting.metering` block is reused."""
    meter = current_meter()
    info = meter.recall_info(url) if meter is not None else None
    if info is None:
        fs.invalidate_cache(rpath)
        info = fs.info(rpath)  # FileNotFoundError when it is gone
        if meter is not None and info.get("type") != "directory":
            meter.remember_info(url, info)
    return info


def listed_versions(
    urls: list[str], storage_options: dict | None = None, min_per_folder: int = 8
) -> dict[str, str]:
    """``url -> version`` of remote files from one listing per folder (folders holding at
    least ``min_per_folder`` of ``urls``; local files and the rest are left out).

    A listing's entry has the fields a HEAD gives, but a listing's time is finer than a HEAD's
    (whole seconds): it is cut to whole UTC seconds, so that for the same object this gives
    :func:`source_version`'s string on the servers tried. A caller compares and falls back to
    :func:`source_version` when they differ, so an unusual server only costs the HEAD."""
    folders: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for url in urls:
        if local_path(url) is None:
            parent, _, _ = url.rstrip("/").rpartition("/")
            protocol = url.partition("://")[0]
            folders.setdefault((protocol, parent), []).append((url, url.partition("://")[2]))
    found: dict[str, str] = {}
    for (_, parent), members in folders.items():
        if len(members) < min_per_folder:
            continue
        try:
            fs, rparent = fsspec.core.url_to_fs(parent, **(storage_options or {}))
            fs.invalidate_cache(rparent)
            infos = {i["name"].rstrip("/"): i for i in fs.ls(rparent, detail=True)}
            fs.invalidate_cache(rparent)
        except Exception:  # noqa: BLE001 — no listing: the callers ask per file
            continue
        for url, rpath in members:
            info = infos.get(rpath.rstrip("/"))
            if info is not None and info.get("type") == "file":
                found[url] = _version(_whole_seconds(info))
    return found


def _whole_seconds(info: dict) -> dict:
    out = dict(info)
    for key in ("LastModified", "last_modified"):
        value = out.get(key)
        if hasattr(value, "astimezone"):
            out[key] = value.astimezone(timezone.utc).replace(microsecond=0)
    return out


def _local_version(path: str) -> str:
    st = os.stat(path)
    if not os.path.isdir(path):
        return f"size={st.st_size}|mtime_ns={st.st_mtime_ns}"
    parts = []
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            f = os.stat(full)
            parts.append(f"{os.path.relpath(full, path)}:{f.st_size}:{f.st_mtime_ns}")
    digest = hashlib.sha256(";".join(sorted(parts)).encode()).hexdigest()[:16]
    return f"files={len(parts)}|sha256={digest}"


def _get(fs: fsspec.AbstractFileSystem, sources: list[str], base: str, dest: Path) -> int:
    """Download ``sources`` (paths under ``base``) into the folder ``dest``; their bytes."""
    total = 0
    for src in sorted(sources):
        target = dest / posixpath.relpath(src, base)
        target.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(src, str(target))
        total += target.stat().st_size
    return total


def _files(fs: fsspec.AbstractFileSystem, rpath: str) -> dict[str, dict]:
    return {p: i for p, i in fs.find(rpath, detail=True).items() if i.get("type") != "directory"}


def lease(
    url: str, cache: str | CacheSpec | None = None, storage_options: dict | None = None
) -> Lease:
    """A local path for ``url`` held open (``Lease.path``; close the lease when done reading).

    Local paths and ``file://`` URLs are returned as they are. A remote object is downloaded
    once into the bounded cache (:mod:`wsidist.io.staging_cache`), keyed by its URL and
    version (size, ETag, modification time), so a changed object is fetched fresh;
    ``Lease.bytes_downloaded`` is what this call fetched (0 on a hit), ``Lease.requests`` the
    object-store calls it made (metadata look-ups, one GET per file downloaded). Raises
    ``FileNotFoundError`` when the object does not exist and
    :class:`~wsidist.errors.StagingError` when it cannot fit in the cache.
    """
    path = local_path(url)
    if path is not None:
        return Lease(path)
    fs, rpath = fsspec.core.url_to_fs(url, **(storage_options or {}))
    rpath = rpath.rstrip("/")
    info = head(fs, rpath, url)  # the task's one HEAD; raises FileNotFoundError
    looked = 1  # metadata requests: info, then a listing for a folder, a series or a companion
    name = posixpath.basename(rpath) or "slide"
    if info.get("type") == "directory":  # a DICOM series folder: all of it
        files, base, main = _files(fs, rpath), posixpath.dirname(rpath), name
        ident, looked = url, looked + 1
    elif name.lower().endswith(".dcm"):  # the .dcm files of its folder (its series among them)
        base = posixpath.dirname(rpath)
        files = {
            e["name"]: e
            for e in fs.ls(base, detail=True)
            if e.get("type") != "directory" and e["name"].lower().endswith(".dcm")
        }
        main = posixpath.join(posixpath.basename(base) or "series", name)
        base, ident, looked = posixpath.dirname(base), fs.unstrip_protocol(base), looked + 1
    else:
        files, base, main, ident = {rpath: info}, posixpath.dirname(rpath), name, url
        companion = rpath[: -len(".mrxs")] if name.lower().endswith(".mrxs") else None
        if companion:
            looked += 1
            if fs.isdir(companion):
                files.update(_files(fs, companion))
                looked += 1
    version = ";".join(f"{p}:{_version(i)}" for p, i in sorted(files.items()))
    key = hashlib.sha256(f"{ident}\n{version}".encode()).hexdigest()[:32]
    need = sum(int(i.get("size") or 0) for i in files.values())

    def fetch(entry: Path) -> tuple[int, int]:
        return _get(fs, list(files), base, entry), len(files)

    held = acquire(as_cache(cache), key, need, main, fetch)
    held.requests = looked + held.files_downloaded
    return held


def stage(
    url: str, cache_dir: str | CacheSpec | None = None, storage_options: dict | None = None
) -> str:
    """A local path for ``url`` (see :func:`lease`). The path holds no lock: once other slides
    need the room it may be evicted, so readers hold a :func:`lease` while a slide is open."""
    with lease(url, cache_dir, storage_options) as held:
        return held.path

"""Stage remote slides (any fsspec URL) into a local cache so OpenSlide and tifffile can open them.

The cache key hashes the URL together with the object's size, etag and modification time, so a
changed object is fetched again. Downloads go to a temporary name in the cache and are renamed
into place, so concurrent worker processes never see a partial file (the loser of a race just
discards its copy). A directory URL (a DICOM series) and the companion folder of an ``.mrxs``
file are staged as a whole; a ``.dcm`` file URL brings the ``.dcm`` files of its folder (the
other files of its series are among them).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import uuid
from datetime import timezone
from pathlib import Path
from urllib.parse import unquote, urlparse

import fsspec

_VERSION_KEYS = ("size", "ETag", "etag", "LastModified", "last_modified", "mtime", "md5", "created")


def default_cache_dir() -> str:
    """``$WSIDIST_CACHE_DIR`` or ``~/.cache/wsidist/slides``."""
    return os.environ.get("WSIDIST_CACHE_DIR") or str(Path.home() / ".cache" / "wsidist" / "slides")


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
        info = fs.info(rpath)
        if info.get("type") == "directory":
            found = sorted(fs.find(rpath, detail=True).items())
            digest = hashlib.sha256(";".join(f"{p}:{_version(i)}" for p, i in found).encode())
            return f"files={len(found)}|sha256={digest.hexdigest()[:16]}"
        return _version(info) or None
    except Exception:  # noqa: BLE001 — a missing or unreadable source is never "current"
        return None


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


def _download_file(fs: fsspec.AbstractFileSystem, rpath: str, dest: Path) -> None:
    tmp = dest.with_name(f".tmp-{uuid.uuid4().hex}-{dest.name}")
    try:
        fs.get_file(rpath, str(tmp))
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _download_dir(
    fs: fsspec.AbstractFileSystem, rpath: str, dest: Path, sources: list[str] | None = None
) -> None:
    tmp = dest.with_name(f".tmp-{uuid.uuid4().hex}-{dest.name}")
    tmp.mkdir(parents=True)
    try:
        for src in sorted(fs.find(rpath) if sources is None else sources):
            rel = posixpath.relpath(src, rpath.rstrip("/"))
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(src, str(target))
        try:
            os.rename(tmp, dest)
        except OSError:
            if not dest.is_dir():  # another process won the race: keep theirs
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def stage(url: str, cache_dir: str | None = None, storage_options: dict | None = None) -> str:
    """Return a local path for ``url``, downloading remote objects into ``cache_dir`` once.

    Local paths and ``file://`` URLs are returned as local paths without copying. Raises
    ``FileNotFoundError`` when the remote object does not exist.
    """
    path = local_path(url)
    if path is not None:
        return path
    fs, rpath = fsspec.core.url_to_fs(url, **(storage_options or {}))
    rpath = rpath.rstrip("/")
    info = fs.info(rpath)  # raises FileNotFoundError
    is_dir = info.get("type") == "directory"
    name = posixpath.basename(rpath) or "slide"
    if not is_dir and name.lower().endswith(".dcm"):
        return _stage_dcm_folder(fs, url, rpath, cache_dir)
    if is_dir:
        version = ";".join(
            f"{p}:{_version(i)}" for p, i in sorted(fs.find(rpath, detail=True).items())
        )
    else:
        version = _version(info)
    companion = None
    if not is_dir and name.lower().endswith(".mrxs"):
        companion = rpath[: -len(".mrxs")]
        if not fs.isdir(companion):
            companion = None
    key = hashlib.sha256(f"{url}\n{version}".encode()).hexdigest()[:32]
    root = Path(cache_dir or default_cache_dir()) / key
    root.mkdir(parents=True, exist_ok=True)
    dest = root / name
    if companion is not None:
        comp_dest = root / posixpath.basename(companion)
        if not comp_dest.is_dir():
            _download_dir(fs, companion, comp_dest)
    if is_dir:
        if not dest.is_dir():
            _download_dir(fs, rpath, dest)
    elif not dest.is_file():
        _download_file(fs, rpath, dest)
    return str(dest)


def _stage_dcm_folder(
    fs: fsspec.AbstractFileSystem, url: str, rpath: str, cache_dir: str | None
) -> str:
    """Stage the ``.dcm`` files of ``rpath``'s folder; the local path of ``rpath`` in it."""
    folder = posixpath.dirname(rpath)
    entries = fs.ls(folder, detail=True)
    dcm = sorted(
        (e for e in entries if e.get("type") != "directory" and e["name"].lower().endswith(".dcm")),
        key=lambda e: e["name"],
    )
    version = ";".join(f"{e['name']}:{_version(e)}" for e in dcm)
    key = hashlib.sha256(f"{fs.unstrip_protocol(folder)}\n{version}".encode()).hexdigest()[:32]
    root = Path(cache_dir or default_cache_dir()) / key
    root.mkdir(parents=True, exist_ok=True)
    dest = root / (posixpath.basename(folder) or "series")
    if not dest.is_dir():
        _download_dir(fs, folder, dest, [e["name"] for e in dcm])
    return str(dest / posixpath.basename(rpath))

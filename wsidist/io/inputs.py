"""Expand CLI inputs (files, folders, globs, URLs) into slide URLs, and name slides safely.

A folder is searched recursively for slide files; a folder holding ``.dcm`` files is one DICOM
slide (and a ``.dcm`` file stands for its folder). Globs work locally and on any fsspec URL
(``s3://bucket/prefix/*.svs``). Local results are absolute paths; remote ones keep their
protocol. The result is sorted and free of duplicates.
"""

from __future__ import annotations

import glob
import hashlib
import os
import posixpath
import re
from collections import Counter

import fsspec

from wsidist.errors import WsidistError
from wsidist.io.remote import local_path

SLIDE_EXTENSIONS = (
    ".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".bif", ".vms", ".vmu", ".svslide",
    ".qptiff",
)  # fmt: skip
_STEM_SUFFIXES = (".ome.tiff", ".ome.tif", *SLIDE_EXTENSIONS, ".dcm")
_GLOB_CHARS = re.compile(r"[*?\[]")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_ID_LEN = 100


def is_slide_name(name: str) -> bool:
    return name.lower().endswith(SLIDE_EXTENSIONS) and not name.startswith(".")


def _is_dcm(name: str) -> bool:
    return name.lower().endswith(".dcm") and not name.startswith(".")


def _walk_local(root: str) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if any(_is_dcm(f) for f in filenames):
            found.append(dirpath)
        found += [os.path.join(dirpath, f) for f in filenames if is_slide_name(f)]
    return found


def _expand_local(item: str, path: str) -> list[str]:
    if _GLOB_CHARS.search(path):
        hits = glob.glob(path, recursive=True)
        out = []
        for hit in hits:
            if os.path.isdir(hit):
                out += _walk_local(hit)
            elif _is_dcm(os.path.basename(hit)):
                out.append(os.path.dirname(hit) or ".")
            elif is_slide_name(os.path.basename(hit)):
                out.append(hit)
        return out
    if os.path.isdir(path):
        return _walk_local(path)
    if os.path.isfile(path):
        return [os.path.dirname(path) or "."] if _is_dcm(os.path.basename(path)) else [path]
    raise WsidistError(f"input {item!r}: no such file or directory")


def _expand_remote(item: str) -> list[str]:
    fs, path = fsspec.core.url_to_fs(item)
    out: list[str] = []

    def add_dir(root: str) -> None:
        files = fs.find(root)
        dcm_dirs = {posixpath.dirname(f) for f in files if _is_dcm(posixpath.basename(f))}
        out.extend(dcm_dirs)
        out.extend(f for f in files if is_slide_name(posixpath.basename(f)))

    if _GLOB_CHARS.search(path):
        for hit in fs.glob(path):
            name = posixpath.basename(hit)
            if _is_dcm(name):
                out.append(posixpath.dirname(hit))
            elif is_slide_name(name):
                out.append(hit)
            elif fs.isdir(hit):
                add_dir(hit)
    elif fs.isdir(path):
        add_dir(path)
    elif fs.exists(path):
        name = posixpath.basename(path)
        out.append(posixpath.dirname(path) if _is_dcm(name) else path)
    else:
        raise WsidistError(f"input {item!r}: no such object")
    return [fs.unstrip_protocol(p.rstrip("/")) for p in out]


def expand_inputs(items: list[str]) -> list[str]:
    """Slide URLs for files, folders, globs and URLs; sorted, deduplicated.

    Raises :class:`WsidistError` naming the first item that matches no slide.
    """
    urls: set[str] = set()
    for item in items:
        path = local_path(item)
        try:
            found = _expand_local(item, path) if path is not None else _expand_remote(item)
        except WsidistError:
            raise
        except Exception as exc:  # noqa: BLE001 — fsspec backends raise many types
            raise WsidistError(f"input {item!r}: {exc}") from exc
        if not found:
            raise WsidistError(f"input {item!r} matches no slide files")
        if path is not None:
            found = [os.path.abspath(f) for f in found]
        urls.update(found)
    return sorted(urls)


def slide_id_for(url: str) -> str:
    """A safe id from the URL's file stem (a DICOM folder's name): ``[A-Za-z0-9._-]``, ≤ 100."""
    path = url.split("?", 1)[0].rstrip("/\\")
    name = re.split(r"[/\\]", path)[-1]
    if _is_dcm(name):
        parts = re.split(r"[/\\]", path)
        name = parts[-2] if len(parts) > 1 else name
    lower = name.lower()
    for suffix in _STEM_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    sid = _UNSAFE.sub("_", name).strip("_").lstrip(".")[:MAX_ID_LEN].rstrip("_")
    return sid or "slide"


def assign_slide_ids(urls: list[str]) -> dict[str, str]:
    """``{url: slide_id}``; ids that collide (case-insensitively) get ``-<8 hex of the URL>``."""
    base = {url: slide_id_for(url) for url in dict.fromkeys(urls)}
    counts = Counter(sid.lower() for sid in base.values())
    out = {}
    for url, sid in base.items():
        if counts[sid.lower()] > 1:
            digest = hashlib.sha256(url.encode()).hexdigest()[:8]
            sid = f"{sid[: MAX_ID_LEN - 9]}-{digest}"
        out[url] = sid
    return out

"""Expand CLI inputs (files, folders, globs, URLs) into slide URLs, and name slides safely.

A folder is searched recursively for slide files. ``.dcm`` files are grouped by DICOM series
(headers only, :mod:`wsidist.io.dicom_series`): each series is one slide, known by its folder
when the folder holds one series, else by its main file; a ``.dcm`` argument stands for its
series. Globs work locally and on any fsspec URL (``s3://bucket/prefix/*.svs``); a path that
exists is taken literally even when it contains ``[``, ``*`` or ``?``. Local results are
absolute paths; remote ones keep their protocol. The result is sorted and free of duplicates
(also of one file reached twice through a symbolic link).

Inside folders and globs, files with other extensions, macOS ``._`` resource forks, hidden
folders and everything under an excluded root (the job's own output) are skipped, and
:class:`Expansion` counts them by reason. Explicitly named files are always kept.

A slide's id is a function of its URL alone (:func:`slide_id_for`); two URLs of one job that
would share an id (compared case-insensitively) are refused by :func:`assign_slide_ids`.
"""

from __future__ import annotations

import glob
import os
import posixpath
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import fsspec

from wsidist.errors import ConfigError, WsidistError
from wsidist.io.dicom_series import (
    DicomSeries,
    dcm_files,
    group_series,
    is_dcm_name,
    read_header,
    series_of,
    series_url,
)
from wsidist.io.remote import local_path

SLIDE_EXTENSIONS = (
    ".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".bif", ".vms", ".vmu", ".svslide",
    ".qptiff",
)  # fmt: skip
_STEM_SUFFIXES = (".ome.tiff", ".ome.tif", *SLIDE_EXTENSIONS, ".dcm")
_GLOB_CHARS = re.compile(r"[*?\[]")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_ID_LEN = 100
RESOURCE_FORK = "macOS resource fork (._*)"
UNKNOWN_EXTENSION = "unknown extension"
HIDDEN_FOLDER = "in a hidden folder"
IN_OUTPUT = "inside the job's output folder"
SAME_FILE = "the same file through a symbolic link"


def is_slide_name(name: str) -> bool:
    return name.lower().endswith(SLIDE_EXTENSIONS) and not name.startswith("._")


@dataclass
class Expansion:
    """Slide URLs of a job's inputs, and what folders and globs skipped, by reason."""

    urls: list[str] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, path: str) -> None:
        self.skipped.setdefault(reason, []).append(path)

    def notes(self) -> list[str]:
        """One readable line per skip reason, e.g. ``skipped 2 files: unknown extension …``."""
        lines = []
        for reason, paths in sorted(self.skipped.items()):
            what = "file" if reason != HIDDEN_FOLDER else "folder"
            detail = ""
            if reason == UNKNOWN_EXTENSION:
                exts = Counter(posixpath.splitext(p)[1].lower() or "(none)" for p in paths)
                detail = " (" + ", ".join(f"{e} ×{n}" for e, n in exts.most_common(8)) + ")"
            else:
                detail = f" (e.g. {paths[0]})"
            plural = "s" if len(paths) > 1 else ""
            lines.append(f"skipped {len(paths)} {what}{plural}: {reason}{detail}")
        return lines


class _Lister:
    """Filesystem operations of one expansion, local or fsspec, with cached DICOM grouping."""

    def __init__(self, fs: fsspec.AbstractFileSystem | None, out: Expansion, exclude: list[str]):
        self.fs = fs
        self.out = out
        self.exclude = exclude
        self._series: dict[str, list[DicomSeries]] = {}
        self._real: set[str] = set()

    def join(self, a: str, b: str) -> str:
        return os.path.join(a, b) if self.fs is None else posixpath.join(a, b)

    def excluded(self, path: str) -> bool:
        sep = os.sep if self.fs is None else "/"
        return any(path == root or path.startswith(root.rstrip(sep) + sep) for root in self.exclude)

    def series_in(self, folder: str, names: Iterable[str]) -> list[DicomSeries]:
        if folder not in self._series:
            if self.fs is None:
                headers = [read_header(p) for p in dcm_files(names, folder, os.path.join)]
            else:
                fs = self.fs
                opener: Callable = lambda p: fs.open(p, "rb", block_size=2**16)  # noqa: E731
                headers = [read_header(p, opener) for p in dcm_files(names, folder)]
            self._series[folder] = group_series(headers)
        return self._series[folder]

    def dcm_url(self, path: str) -> str:
        """The URL of the series holding ``.dcm`` file ``path`` (its folder or main file)."""
        folder = os.path.dirname(path) if self.fs is None else posixpath.dirname(path)
        if folder not in self._series:
            if self.fs is None:
                names = os.listdir(folder or ".")
            else:
                names = [posixpath.basename(p) for p in self.fs.ls(folder, detail=False)]
            self.series_in(folder, names)
        found = self._series[folder]
        mine = series_of(path, found)
        return path if mine is None else series_url(folder, found, mine)

    def add_file(self, path: str) -> None:
        """A file found in a folder or glob: a slide, a DICOM series member, or skipped."""
        name = os.path.basename(path) if self.fs is None else posixpath.basename(path)
        if name.startswith("._"):
            self.out.skip(RESOURCE_FORK, path)
        elif self.excluded(path):
            self.out.skip(IN_OUTPUT, path)
        elif is_dcm_name(name):
            self.out.urls.append(self.dcm_url(path))
        elif not is_slide_name(name):
            self.out.skip(UNKNOWN_EXTENSION, path)
        elif self.fs is None and not self._first_time(path):
            self.out.skip(SAME_FILE, path)
        else:
            self.out.urls.append(path)

    def _first_time(self, path: str) -> bool:
        # the file itself when it resolves; a dangling link or loop: its name in the real folder
        real = (
            os.path.realpath(path)
            if os.path.exists(path)
            else os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
        )
        seen = real in self._real
        self._real.add(real)
        return not seen

    def walk_local(self, root: str) -> None:
        for dirpath, dirnames, filenames in os.walk(root):
            keep = []
            lower = {f.lower() for f in filenames}
            for d in sorted(dirnames):
                full = os.path.join(dirpath, d)
                if d.startswith("."):
                    self.out.skip(HIDDEN_FOLDER, full)
                elif self.excluded(full):
                    self.out.skip(IN_OUTPUT, full)
                elif f"{d}.mrxs".lower() not in lower:
                    keep.append(d)  # (a MIRAX slide's companion folder is part of it)
            dirnames[:] = keep
            if any(map(is_dcm_name, filenames)):
                self.series_in(dirpath, filenames)
            for f in sorted(filenames):
                self.add_file(os.path.join(dirpath, f))

    def walk_remote(self, root: str) -> None:
        assert self.fs is not None
        files = sorted(self.fs.find(root))
        mrxs = {f[: -len(".mrxs")] + "/" for f in files if f.lower().endswith(".mrxs")}
        by_dir: dict[str, list[str]] = {}
        for f in files:
            by_dir.setdefault(posixpath.dirname(f), []).append(posixpath.basename(f))
        for folder, names in by_dir.items():
            if any(map(is_dcm_name, names)):
                self.series_in(folder, names)
        for f in files:
            if _hidden_dir(posixpath.relpath(f, root)):
                self.out.skip(HIDDEN_FOLDER, f)
            elif not any(f.startswith(m) for m in mrxs):
                self.add_file(f)


def _hidden_dir(rel: str) -> bool:
    """True when a relative path runs through a hidden folder (``.name``)."""
    return any(p.startswith(".") and p not in (".", "..") for p in re.split(r"[/\\]", rel)[:-1])


def _glob_base(pattern: str) -> str:
    """The literal folder a glob pattern starts from."""
    head = _GLOB_CHARS.split(pattern, 1)[0]
    return head if head.endswith(("/", os.sep)) else os.path.dirname(head)


def _expand_local(item: str, path: str, lister: _Lister) -> None:
    literal = os.path.lexists(path)
    if _GLOB_CHARS.search(path) and not literal:
        hidden = {"include_hidden": True} if sys.version_info >= (3, 11) else {}
        hits = glob.glob(path, recursive=True, **hidden)
        base = _glob_base(path)
        # shallowest first: of one file reached through a symlinked folder, the direct path wins
        for hit in sorted(hits, key=lambda h: (h.count(os.sep), h)):
            is_dir = os.path.isdir(hit)
            rel = os.path.relpath(hit, base) + (os.sep + "x" if is_dir else "")
            if _hidden_dir(rel):
                lister.out.skip(HIDDEN_FOLDER, hit)
            elif is_dir:
                lister.walk_local(hit)
            else:
                lister.add_file(hit)
        return
    if os.path.isdir(path):
        lister.walk_local(path)
    elif literal:
        name = os.path.basename(path)
        lister.out.urls.append(lister.dcm_url(path) if is_dcm_name(name) else path)
    else:
        raise WsidistError(f"input {item!r}: no such file or directory")


def _expand_remote(item: str, lister: _Lister) -> None:
    fs = lister.fs
    assert fs is not None
    _, path = fsspec.core.url_to_fs(item)
    if _GLOB_CHARS.search(path) and not fs.exists(path):
        for hit in fs.glob(path):
            if fs.isdir(hit):
                lister.walk_remote(hit)
            else:
                lister.add_file(hit)
    elif fs.isdir(path):
        lister.walk_remote(path)
    elif fs.exists(path):
        name = posixpath.basename(path)
        lister.out.urls.append(lister.dcm_url(path) if is_dcm_name(name) else path)
    else:
        raise WsidistError(f"input {item!r}: no such object")


def _exclude_roots(exclude: Iterable[str | None], item_path: str, fs) -> list[str]:
    roots = []
    for root in exclude:
        if not root:
            continue
        local = local_path(root)
        if fs is None and local is not None:
            roots.append(os.path.abspath(local))
        elif fs is not None and local is None:
            roots.append(fsspec.core.url_to_fs(root)[1].rstrip("/"))
    sep = os.sep if fs is None else "/"
    # a folder given inside the output root is the user's own choice: not excluded
    return [r for r in roots if not (item_path == r or item_path.startswith(r + sep))]


def expand(items: list[str], *, exclude: Iterable[str | None] = ()) -> Expansion:
    """Slide URLs for files, folders, globs and URLs (sorted, deduplicated), and what was
    skipped. Files under an ``exclude`` root (the job's output) are skipped in folders and
    globs. Raises :class:`WsidistError` naming the first item that matches no slide."""
    exclude = list(exclude)
    total = Expansion()
    for item in items:
        path = local_path(item)
        found = Expansion()
        try:
            if path is not None:
                path = os.path.abspath(path)
                lister = _Lister(None, found, _exclude_roots(exclude, path, None))
                _expand_local(item, path, lister)
            else:
                fs, rpath = fsspec.core.url_to_fs(item)
                lister = _Lister(fs, found, _exclude_roots(exclude, rpath.rstrip("/"), fs))
                _expand_remote(item, lister)
                found.urls = [fs.unstrip_protocol(p.rstrip("/")) for p in found.urls]
        except WsidistError:
            raise
        except Exception as exc:  # noqa: BLE001 — fsspec backends raise many types
            raise WsidistError(f"input {item!r}: {exc}") from exc
        if not found.urls:
            why = "; ".join(found.notes())
            raise WsidistError(
                f"input {item!r} matches no slide files" + (f" ({why})" if why else "")
            )
        total.urls += found.urls
        for reason, paths in found.skipped.items():
            total.skipped.setdefault(reason, []).extend(paths)
    total.urls = sorted(set(total.urls))
    return total


def expand_inputs(items: list[str], *, exclude: Iterable[str | None] = ()) -> list[str]:
    """The slide URLs of :func:`expand`."""
    return expand(items, exclude=exclude).urls


def slide_id_for(url: str) -> str:
    """A safe id from the URL alone: the file stem (a DICOM folder's name), ``[A-Za-z0-9._-]``,
    at most 100 characters, never starting with a dot."""
    path = url.split("?", 1)[0].rstrip("/\\")
    name = re.split(r"[/\\]", path)[-1]
    lower = name.lower()
    for suffix in _STEM_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    sid = _UNSAFE.sub("_", name).strip("_").lstrip(".")[:MAX_ID_LEN].rstrip("_")
    return sid or "slide"


SAFE_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$")


def check_slide_id(slide_id: str, where: str) -> str:
    """``slide_id`` when it is a safe id (``[A-Za-z0-9._-]``, ≤ 100, no leading dot)."""
    if not isinstance(slide_id, str) or not SAFE_ID.match(slide_id):
        raise ConfigError(
            f"{where}: slide_id {slide_id!r} is not a safe id (letters, digits, '.', '_', '-'; "
            "at most 100; not starting with '.')"
        )
    return slide_id


def id_clash_message(slide_id: str, first: str, second: str, stored: bool = False) -> str:
    """The refusal for two URLs that would share one slide id."""
    place = "the output already holds it for" if stored else "it would name both"
    return (
        f"slide id {slide_id!r} is taken: {place} {first} and {second} (ids compare "
        "case-insensitively). Give one of them its own id in a manifest (--manifest, columns "
        "url and slide_id), or write them to different outputs."
    )


def assign_slide_ids(urls: list[str], given: dict[str, str] | None = None) -> dict[str, str]:
    """``{url: slide_id}``: ``given[url]`` (checked) or :func:`slide_id_for`.

    Raises :class:`ConfigError` naming both URLs when two would share an id
    (case-insensitively): a slide's id never depends on the other inputs of a run.
    """
    given = given or {}
    out: dict[str, str] = {}
    owner: dict[str, str] = {}
    for url in dict.fromkeys(urls):
        sid = check_slide_id(given[url], url) if url in given else slide_id_for(url)
        other = owner.setdefault(sid.lower(), url)
        if other != url:
            raise ConfigError(id_clash_message(sid, other, url))
        out[url] = sid
    return out

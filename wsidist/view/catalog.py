"""Which slides the viewer serves: every slide under the given roots, and nothing else.

``wsidist view OUT`` serves the slides listed in ``OUT/slides.parquet`` and the pyramids that
``rewrite`` wrote under ``OUT/pyramids/`` (paired with their source for side-by-side viewing),
with OUT's masks, contours, tiles and selection as overlays. ``wsidist view SLIDES…`` serves
the slides found under the given files and folders. A local slide whose real path (symlinks
resolved) is outside its root is left out, so a link out of a folder is never served; the
server looks slides up by key only, so no request path reaches the file system.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field

from wsidist import layout
from wsidist.errors import WsidistError
from wsidist.io.inputs import expand_inputs, slide_id_for
from wsidist.io.remote import local_path
from wsidist.io.storage import Store

PYRAMID_SUFFIX = "@rewrite"


@dataclass(frozen=True)
class Entry:
    """One servable slide."""

    key: str  # the id in URLs: a sanitised slide id (+ "@rewrite" for a pyramid)
    url: str  # what open_slide is given
    name: str  # shown to people
    slide_id: str  # the dataset's slide id (overlays)
    kind: str = "slide"  # slide | pyramid
    pair: str | None = None  # the key of the source / rewritten pyramid
    status: str | None = None  # stage-1 status when served from an OUT


@dataclass(frozen=True)
class Catalog:
    entries: dict[str, Entry]
    out: Store | None = None  # the stage-1 output, when one was given
    skipped: tuple[str, ...] = field(default_factory=tuple)  # left out: outside their root

    def get(self, key: str) -> Entry | None:
        return self.entries.get(key)


def _inside(path: str, root: str) -> bool:
    real, base = os.path.realpath(path), os.path.realpath(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def is_output_root(target: str) -> bool:
    """True when ``target`` is a stage-1 output (it holds ``slides.parquet``)."""
    try:
        return Store(_root(target)).exists(layout.SLIDES_TABLE)
    except Exception:  # noqa: BLE001 — an unreachable URL is simply not an output
        return False


def _root(url: str) -> str:
    return url.rstrip("/") if "://" in url else os.path.abspath(url)


def build_catalog(targets: Sequence[str]) -> Catalog:
    """The catalogue of one stage-1 OUT, or of slide files and folders."""
    if not targets:
        raise WsidistError("nothing to view: give a stage-1 output folder or slides")
    if len(targets) == 1 and is_output_root(targets[0]):
        return _from_output(Store(_root(targets[0])))
    return _from_slides(targets)


def _from_slides(targets: Sequence[str]) -> Catalog:
    entries: dict[str, Entry] = {}
    skipped = []
    kept: list[str] = []
    for target in targets:
        root = local_path(target)
        for url in expand_inputs([target]):
            path = local_path(url)
            if root is not None and path is not None and not _inside(path, root):
                skipped.append(url)
                continue
            kept.append(url)
    ids = _viewer_keys(sorted(set(kept)))
    common = _common_dir(list(ids))
    for url, sid in ids.items():
        entries[sid] = Entry(sid, url, _name(url, common), sid)
    return Catalog(entries, None, tuple(skipped))


def _viewer_keys(urls: list[str]) -> dict[str, str]:
    """``{url: key}``: the slide id, unique ignoring case. The viewer stores nothing under these
    keys, so a slide and its rewritten pyramid (``…/pyramids/<id>.tiff``) are both shown: the
    pyramid as ``<id>@rewrite``, any other clash as ``<id>~2``, ``<id>~3``, … in URL order."""
    keys: dict[str, str] = {}
    taken: set[str] = set()
    for url in sorted(urls, key=lambda u: (_is_pyramid(u), u)):
        sid = key = slide_id_for(url)
        if key.lower() in taken and _is_pyramid(url):
            key = f"{sid}{PYRAMID_SUFFIX}"
        n = 2
        while key.lower() in taken:
            key, n = f"{sid}~{n}", n + 1
        taken.add(key.lower())
        keys[url] = key
    return keys


def _is_pyramid(url: str) -> bool:
    parent = posixpath.basename(posixpath.dirname(url.rstrip("/")))
    return parent == layout.PYRAMIDS_DIR and url.lower().endswith((".tif", ".tiff"))


def _from_output(out: Store) -> Catalog:
    slides = out.read_parquet(layout.SLIDES_TABLE).to_pylist()
    pyramids = {}
    if out.exists(layout.PYRAMIDS_TABLE):
        for row in out.read_parquet(layout.PYRAMIDS_TABLE).to_pylist():
            if row.get("status") == "ok" and row.get("slide_id"):
                pyramids[row["slide_id"]] = row
    common = _common_dir([r["url"] for r in slides if r.get("url")])
    entries: dict[str, Entry] = {}
    skipped = []
    for row in slides:
        sid, url = row.get("slide_id"), row.get("url")
        if not sid or not url:
            continue
        key_p = layout.pyramid_key(sid)
        has_pyramid = sid in pyramids and out.exists(key_p)
        pair = f"{sid}{PYRAMID_SUFFIX}" if has_pyramid else None
        entries[sid] = Entry(sid, url, _name(url, common), sid, "slide", pair, row.get("status"))
        if has_pyramid:
            path = out.full_url(key_p)
            if out.is_local and not _inside(path, out.root):
                skipped.append(path)
                continue
            name = f"{_name(url, common)} (rewritten: {pyramids[sid].get('codec') or 'pyramid'})"
            entries[pair] = Entry(pair, path, name, sid, "pyramid", sid, row.get("status"))
    return Catalog(entries, out, tuple(skipped))


def _common_dir(urls: list[str]) -> str:
    parents = [posixpath.dirname(u.rstrip("/")) for u in urls]
    try:
        return posixpath.commonpath(parents) if parents else ""
    except ValueError:
        return ""


def _name(url: str, common: str) -> str:
    path = url.rstrip("/")
    if common and path.startswith(common.rstrip("/") + "/"):
        return path[len(common.rstrip("/")) + 1 :]
    return posixpath.basename(path) or path

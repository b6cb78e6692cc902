"""Which annotation file belongs to which slide: one file per slide, by slide id or stem.

``--annotations DIR|URL`` names a folder (local or any fsspec URL) of ``.geojson``, ``.json``
or ``.xml`` files, or one such file. A file matches a slide when its name without the
extension — also without a trailing ``.annotation(s)``, ``_annotation(s)`` or
``-annotation(s)`` — equals the slide's id or its file's stem (the name without its
extensions), compared case-insensitively. A manifest's ``annotations`` column names a file per
slide explicitly and wins over the folder. Two files that would match the same name are
refused (:class:`~wsidist.errors.ConfigError`) before any slide is read.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from typing import Any

import fsspec

from wsidist.errors import ConfigError
from wsidist.io.annotations import ANNOTATION_SUFFIXES

__all__ = ["annotation_index", "match_annotation", "slide_stem"]

_ANNOTATION_TAIL = re.compile(r"[._-]annotations?$", re.IGNORECASE)


def _names(basename: str) -> set[str]:
    stem = basename
    for suffix in ANNOTATION_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    names = {stem.lower()}
    names.add(_ANNOTATION_TAIL.sub("", stem).lower())
    return {n for n in names if n}


def slide_stem(url: str) -> str:
    """A slide file's name without its extensions: ``s3://b/a/CMU-1.ome.tiff`` → ``CMU-1``."""
    name = url.rstrip("/").rsplit("/", 1)[-1]
    return name.split(".", 1)[0] if not name.startswith(".") else name


def annotation_index(source: str, storage_options: dict[str, Any] | None = None) -> dict[str, str]:
    """``lowercase name -> file URL`` of the annotation files at ``source`` (a folder or one
    file). Raises :class:`ConfigError` when ``source`` holds none or two files share a name."""
    so = storage_options or {}
    try:
        fs, path = fsspec.core.url_to_fs(source, **so)
        if fs.isfile(path):
            files = [path]
        elif fs.isdir(path):
            files = [f for f in fs.find(path) if f.lower().endswith(ANNOTATION_SUFFIXES)]
        else:
            raise ConfigError(f"--annotations {source}: no such file or folder")
    except ConfigError:
        raise
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--annotations {source}: cannot list it: {exc}") from None
    if not files:
        raise ConfigError(
            f"--annotations {source}: no {', '.join(ANNOTATION_SUFFIXES)} files there"
        )
    protocol = fs.protocol[0] if isinstance(fs.protocol, tuple) else fs.protocol
    index: dict[str, str] = {}
    for f in sorted(files):
        url = f if protocol in ("file", "local") else f"{protocol}://{f}"
        for name in _names(posixpath.basename(f)):
            if name in index and index[name] != url:
                raise ConfigError(
                    f"--annotations {source}: {index[name]} and {url} both match slide {name!r}"
                )
            index[name] = url
    return index


def match_annotation(index: dict[str, str], slide_id: str, url: str) -> str | None:
    """The annotation file of a slide: by its id, then its file's stem, else None."""
    for name in _candidates(slide_id, url):
        if name in index:
            return index[name]
    return None


def _candidates(slide_id: str, url: str) -> Iterable[str]:
    yield slide_id.lower()
    yield slide_stem(url).lower()
    name = url.rstrip("/").rsplit("/", 1)[-1]
    yield name.rsplit(".", 1)[0].lower()  # CMU-1.v2.svs → cmu-1.v2

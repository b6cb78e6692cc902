"""Seed 000's ``slide_info`` and ``slide_stats`` for slides or a stage-1 output, without
running stage 1: one metadata row per slide (vendor, size, levels, mpp, objective, file size,
associated images), the size statistics, and the dataset page's charts.

Slides are opened on a bounded thread pool (metadata only; no pixels are read). A slide that
cannot be opened is a row with ``status`` ``failed`` and its reason.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from wsidist import layout
from wsidist.errors import SlideError
from wsidist.io.inputs import expand_inputs
from wsidist.io.remote import CacheSpec
from wsidist.io.slide import open_slide
from wsidist.io.storage import Store
from wsidist.report.tables import dataset_rows, display_names, slide_stats
from wsidist.runtime.parallel import bounded_map

Row = dict[str, Any]
INFO_COLUMNS = (
    "name", "status", "error", "vendor", "backend", "width", "height", "mpix", "level_count",
    "mpp_x", "mpp_y", "objective_power", "tile_width", "compression", "file_bytes",
    "associated_images", "url",
)  # fmt: skip


def slide_info(url: str, cache_dir: str | CacheSpec | None = None) -> Row:
    """One slide's metadata row (never raises for a bad slide)."""
    try:
        with open_slide(url, cache_dir=cache_dir) as slide:
            info = slide.info().as_dict()
            path, remote_bytes = slide.path, slide.file_bytes
    except SlideError as exc:
        return {"url": url, "status": "failed", "error": str(exc)}
    folder = os.path.isdir(url) or url.lower().endswith(".dcm")  # a DICOM series: every file
    if remote_bytes is not None:  # read by ranges: the object's size
        size = remote_bytes
    elif folder or not os.path.isfile(path):
        size = _folder_bytes(path)
    else:
        size = os.path.getsize(path)
    return {
        **{k: info.get(k) for k in INFO_COLUMNS if k in info},
        "url": url,
        "status": "ok",
        "error": None,
        "level_count": info["level_count"],
        "mpix": info["width"] * info["height"] / 1e6,
        "file_bytes": size,
        "associated_images": ", ".join(info["associated_images"]),
    }


def _folder_bytes(path: str) -> int:
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    return sum(e.stat().st_size for e in os.scandir(folder) if e.is_file())


def collect(
    targets: Sequence[str], *, threads: int = 8, cache_dir: str | CacheSpec | None = None
) -> list[Row]:
    """slide_info rows for slides (files, folders, globs, URLs) or for one stage-1 output."""
    if len(targets) == 1 and is_output(targets[0]):
        rows = dataset_rows(Store(_root(targets[0])))
        for r in rows:
            r.setdefault("mpp_y", None)
        return rows
    urls = expand_inputs(list(targets))
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        rows = list(bounded_map(pool.submit, slide_info, ((u, cache_dir) for u in urls),
                                2 * threads, ordered=True))  # fmt: skip
    for row, name in zip(rows, display_names(urls)):
        row["name"] = name
    return rows


def stats(rows: Sequence[Row]) -> list[Row]:
    """Seed 000's slide_stats table for slide_info rows."""
    return slide_stats(rows)


def is_output(target: str) -> bool:
    """Whether ``target`` is a stage-1 output root (it holds ``slides.parquet``)."""
    try:
        return Store(_root(target)).exists(layout.SLIDES_TABLE)
    except Exception:  # noqa: BLE001 — not reachable: not an output
        return False


def _root(url: str) -> str:
    return url.rstrip("/") if "://" in url else os.path.abspath(url)

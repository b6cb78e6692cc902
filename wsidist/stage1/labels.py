"""Annotations joined to stage 1's tiles: coverage columns, the ``label`` and the label mask.

With annotations in a job every tile table gains ``label`` (string: the class with the largest
coverage when it covers more of the tile than no class does, else ``none``) and, per class of
the slide's annotation, ``label_<class>`` (float32: the exact share of the tile's level-0 area
inside the class). Class names become safe lowercase suffixes
(:func:`wsidist.io.annotations.class_column`); ``label`` holds the same suffix. A slide of
such a job without an annotation file gets ``label`` = ``none`` and no class columns (DuckDB
reads the folder ``union_by_name``, so other slides' classes read as NULL there).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa

from wsidist.imaging.labels import box_coverage, encode_label_png, rasterise_labels
from wsidist.io.annotation_match import annotation_index, match_annotation
from wsidist.io.annotations import NO_CLASS, SlideAnnotations, read_annotations
from wsidist.io.remote import source_version
from wsidist.runtime.tasks import SlideTask

__all__ = [
    "ANNOTATION_FIELDS",
    "NO_CLASS",
    "annotation_columns",
    "annotation_depends",
    "attach_annotations",
    "label_mask_png",
    "label_tiles",
    "load_annotation",
]

ANNOTATION_FIELDS = (  # slides.parquet columns of a job with annotations
    ("annotation_url", pa.string()),
    ("annotation_classes", pa.list_(pa.string())),
    ("annotation_repaired", pa.int64()),
)


def load_annotation(url: str | None) -> SlideAnnotations | None:
    """The slide's annotation (None without a file); AnnotationError names a bad file."""
    return read_annotations(url) if url else None


def annotation_depends(url: str | None) -> dict[str, Any]:
    """What a slide's rerun skip depends on: the annotation file and its identity."""
    return {"annotation": url, "annotation_version": source_version(url) if url else None}


def label_tiles(tiles: pa.Table, annotations: SlideAnnotations | None) -> pa.Table:
    """``tiles`` with ``label_<class>`` columns and ``label`` (see the module docstring)."""
    n = tiles.num_rows
    label = np.full(n, NO_CLASS, dtype=object)
    if annotations is not None and annotations.classes:
        boxes = np.stack([tiles.column(c).to_numpy() for c in ("x", "y", "w", "h")], axis=1)
        cover = box_coverage(annotations.classes, boxes)
        columns = annotations.columns()
        names = annotations.names
        stack = np.stack([cover[name] for name in names], axis=1)
        for name in names:
            tiles = tiles.append_column(
                f"label_{columns[name]}", pa.array(cover[name].astype(np.float32))
            )
        best = stack.argmax(axis=1)
        top = stack[np.arange(n), best]
        uncovered = np.maximum(0.0, 1.0 - stack.sum(axis=1))
        winners = np.asarray([columns[name] for name in names], dtype=object)
        chosen = (top > 0) & (top >= uncovered)
        label[chosen] = winners[best[chosen]]
    return tiles.append_column("label", pa.array(label.tolist(), type=pa.string()))


def label_mask_png(
    annotations: SlideAnnotations, shape: tuple[int, int], downsample: float
) -> bytes:
    """The label mask at the filter scale (``shape`` of the mask), as an indexed PNG."""
    labels = rasterise_labels(annotations.classes, shape, downsample)
    columns = annotations.columns()
    return encode_label_png(labels, [columns[n] for n in annotations.names])


def annotation_columns(annotations: SlideAnnotations | None, url: str | None) -> dict[str, Any]:
    """The slide row's ``annotation_url``, ``annotation_classes``, ``annotation_repaired``."""
    if annotations is None:
        return {"annotation_url": url, "annotation_classes": None, "annotation_repaired": None}
    columns = annotations.columns()
    return {
        "annotation_url": url,
        "annotation_classes": [columns[n] for n in annotations.names],
        "annotation_repaired": annotations.repaired,
    }


def attach_annotations(
    tasks: list[SlideTask], source: str | None, storage_options: dict[str, Any] | None = None
) -> list[SlideTask]:
    """Tasks with their annotation file: the manifest's, else the match in ``source``
    (:mod:`wsidist.io.annotation_match`; one file and one slide always match). ConfigError
    when ``source`` holds no annotation files or two match one name."""
    if not source:
        return tasks
    index = annotation_index(source, storage_options)
    only = next(iter(set(index.values()))) if len(set(index.values())) == 1 else None
    out = []
    for task in tasks:
        url = task.annotation or match_annotation(index, task.slide_id, task.url)
        if url is None and only is not None and len(tasks) == 1:
            url = only
        out.append(replace(task, annotation=url) if url != task.annotation else task)
    return out

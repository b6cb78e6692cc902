"""The inference driver: plan the slides, one Dask task per slide, write the job's tables.

The source is a selection Parquet (its boxes are the patches), a stage-1 output root (its
``ok`` slides, a grid over their stage-1 masks) or slides, folders, globs and URLs (a grid over
a computed mask). Every model is checked and fingerprinted before any slide is read; a slide's
rerun hash is the config's, the models' digests and its boxes'. The driver writes
``inference.parquet`` (one row per slide), ``regions.parquet`` (one row per region) and
``region_features.parquet`` (one row per slide and class).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from distributed import Client

from wsidist import layout
from wsidist.errors import ConfigError
from wsidist.infer.config import InferConfig
from wsidist.infer.models import check_model_spec, model_digest
from wsidist.infer.worker import INFERENCE_SCHEMA, InferTask, infer_slide
from wsidist.io.remote import CacheSpec
from wsidist.io.storage import Store, rows_to_table
from wsidist.runtime.jobconfig import SCHEMA_VERSION
from wsidist.runtime.results import run_slide_tasks, write_job_table
from wsidist.runtime.tasks import SlideTask, lost_task_row, plan_tasks

__all__ = ["plan_infer", "run_infer"]

ResultCallback = Callable[[dict[str, Any]], None]
SELECTION_COLUMNS = ("slide_id", "url", "x", "y", "w", "h")


def plan_infer(
    inputs: Sequence[str | SlideTask], storage_options: dict[str, Any] | None = None
) -> tuple[list[InferTask], Store | None]:
    """(tasks, the stage-1 root holding masks or None) for a selection, a stage-1 root or slides."""
    storage_options = storage_options or {}
    items = list(inputs)
    if len(items) == 1 and isinstance(items[0], str):
        source = items[0].rstrip("/")
        if source.endswith(".parquet"):
            return _selection_tasks(_read_table(source, storage_options)), None
        root = Store(source if "://" in source else _abs(source), storage_options)
        if _is_dir_like(source) and root.exists(layout.SLIDES_TABLE):
            slides = root.read_parquet(layout.SLIDES_TABLE).to_pylist()
            ok = [r for r in slides if r.get("status") == "ok"]
            if not ok:
                raise ConfigError(f"{source}: no slide with status ok in {layout.SLIDES_TABLE}")
            return [InferTask(r["slide_id"], r["url"]) for r in ok], root
    return [InferTask(t.slide_id, t.url) for t in plan_tasks(items)], None


def _abs(path: str) -> str:
    return os.path.abspath(path)


def _is_dir_like(source: str) -> bool:
    return "://" in source or os.path.isdir(source)


def _read_table(url: str, storage_options: dict[str, Any]) -> pa.Table:
    import fsspec

    try:
        with fsspec.open(url, "rb", **storage_options) as fh:
            return pq.read_table(fh)
    except FileNotFoundError:
        raise ConfigError(f"selection not found: {url}") from None


def _selection_tasks(table: pa.Table) -> list[InferTask]:
    missing = [c for c in SELECTION_COLUMNS if c not in table.column_names]
    if missing:
        raise ConfigError(f"selection lacks column(s) {', '.join(missing)} "
                          f"(has {', '.join(table.column_names)})")  # fmt: skip
    groups: dict[str, tuple[str, list]] = {}
    for sid, url, x, y, w, h in zip(*(table.column(c).to_pylist() for c in SELECTION_COLUMNS)):
        if None in (sid, url, x, y, w, h) or w < 1 or h < 1:
            raise ConfigError(f"selection row with a null or empty box: {(sid, x, y, w, h)}")
        url0, boxes = groups.setdefault(sid, (url, []))
        if url0 != url:
            raise ConfigError(f"slide_id {sid!r} has two urls: {url0!r} and {url!r}")
        boxes.append((int(x), int(y), int(w), int(h)))
    return [InferTask(sid, url, tuple(boxes)) for sid, (url, boxes) in groups.items()]


def _hashed(task: InferTask, job_hash: str) -> InferTask:
    payload = json.dumps([job_hash, task.boxes]).encode()
    return InferTask(task.slide_id, task.url, task.boxes, hashlib.sha256(payload).hexdigest()[:16])


def run_infer(
    inputs: Sequence[str | SlideTask] | Sequence[InferTask],
    out: str,
    config: InferConfig,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    client: Client | None = None,
    masks: Store | None = None,
    overwrite: bool = False,
    cache_dir: str | CacheSpec | None = None,
    storage_options: dict[str, Any] | None = None,
    on_result: ResultCallback | None = None,
) -> pa.Table:
    """Infer every slide of ``inputs`` into ``out``; returns the ``inference.parquet`` table.

    ``inputs`` are planned with :func:`plan_infer` unless they are already
    :class:`~wsidist.infer.worker.InferTask` items (then ``masks`` is the stage-1 root to read
    masks from, as :func:`plan_infer` returned it).
    """
    if not config.models:
        raise ConfigError("no model given")
    for spec in config.models:
        check_model_spec(spec)
    normalizer = None
    if config.normalize:
        from wsidist.imaging.stain import StainNormalizer

        normalizer = StainNormalizer.load(config.normalize)
    storage_options = storage_options or {}
    if inputs and all(isinstance(t, InferTask) for t in inputs):
        tasks = list(inputs)
    else:
        tasks, masks = plan_infer(inputs, storage_options)  # type: ignore[arg-type]
    digests = [model_digest(spec) for spec in config.models]
    if normalizer is not None:  # the normaliser's content, not only its path
        digests.append(hashlib.sha256(normalizer.to_json().encode()).hexdigest()[:16])
    job_hash = hashlib.sha256(json.dumps([config.config_hash(), digests]).encode()).hexdigest()
    tasks = [_hashed(t, job_hash) for t in tasks]
    store = Store(out if "://" in out else _abs(out), storage_options)
    rows = run_slide_tasks(
        infer_slide,
        tasks,
        fn_kwargs={"config": config, "store": store, "masks": masks, "normalizer": normalizer,
                   "overwrite": overwrite, "cache_dir": cache_dir},
        lost=lambda task, exc: lost_task_row(task, exc, task.config_hash),
        client=client, scheduler=scheduler, workers=workers, on_result=on_result,
    )  # fmt: skip
    regions = [r for row in rows for r in row.pop("regions", None) or []]
    features = [f for row in rows for f in row.pop("features", None) or []]
    ran = {t.slide_id for t in tasks}
    _replace_slides(store, layout.REGIONS_TABLE, regions, REGIONS_SCHEMA, ran)
    _replace_slides(
        store, layout.REGION_FEATURES_TABLE, features, features_schema(config.thresholds), ran
    )
    return write_job_table(store, layout.INFERENCE_TABLE, rows, INFERENCE_SCHEMA, config)


def _replace_slides(store: Store, key: str, rows: list[dict], schema: pa.Schema, ran: set) -> None:
    """Write ``rows`` over the stored table at ``key``, whose rows of the slides in ``ran`` go
    (a slide with no region left has none) while other slides' rows stay."""
    table = rows_to_table(rows, schema)
    if store.exists(key):
        try:
            old = store.read_parquet(key)
        except Exception:  # noqa: BLE001 — a damaged old table is replaced
            old = None
        if old is not None and old.schema.names == schema.names:
            keep = [r for r in old.to_pylist() if r["slide_id"] not in ran]
            table = pa.concat_tables([rows_to_table(keep, schema), table])
    store.write_parquet(
        key, table.replace_schema_metadata({"wsidist.schema_version": SCHEMA_VERSION})
    )


REGIONS_SCHEMA = pa.schema(
    [("slide_id", pa.string()), ("class", pa.int32()), ("threshold", pa.float64()),
     ("region", pa.int32())]
    + [(n, pa.float64()) for n in ("area", "perimeter", "axis_major_length", "eccentricity",
                                   "extent", "solidity", "mean_confidence", "max_confidence")]
    + [(n, pa.int64()) for n in ("x", "y", "w", "h")]
    + [(n, pa.float64()) for n in ("centroid_x", "centroid_y", "area_um2", "perimeter_um",
                                   "axis_major_um")]
)  # fmt: skip


def features_schema(thresholds: Sequence[float]) -> pa.Schema:
    """``region_features.parquet``: slide_id, class, max_probability and, per threshold, the
    counts (int64) and the features and statistics (float64) of :mod:`wsidist.infer.regions`."""
    from wsidist.infer.regions import REGION_STATS, STATISTICS, prefix

    fields = [("slide_id", pa.string()), ("class", pa.int32()), ("max_probability", pa.float64())]
    for t in thresholds:
        p = prefix(t)
        fields += [(f"{p}_n_regions", pa.int64()), (f"{p}_nonzero_px", pa.int64())]
        fields += [
            (f"{p}_{n}", pa.float64())
            for n in ("tissue_ratio", "largest_area", "largest_major_axis", "mean_confidence")
        ]
        fields += [(f"{p}_{n}_{s}", pa.float64()) for n in REGION_STATS for s in STATISTICS]
    return pa.schema(fields)

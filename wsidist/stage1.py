"""Stage 1 for one slide, run on a worker: thumbnail → mask → tiles → scores → outputs.

The worker writes everything for its slide itself and returns one small summary dict (a
``slides.parquet`` row). Any error becomes a ``failed`` summary with a readable reason.
Outputs under the job root:

- ``tiles/slide_id=<id>/part-0.parquet``: one row per tile (level-0 boxes, features, score, rank)
- ``masks/<id>.png`` (1-bit, ceil(H/scale) × ceil(W/scale)), ``thumbnails/<id>.jpg``
- ``status/<id>.json``: the summary, so a rerun with the same config hash skips the slide
- batch mode: ``batch/<id>/``: every filter step, the tile summary and the score heat map
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa

from wsidist import render
from wsidist.analysis import analyse_slide
from wsidist.config import SCHEMA_VERSION, Stage1Config
from wsidist.errors import failure_reason
from wsidist.scoring import Scorer, resolve_scorer
from wsidist.slide import open_slide
from wsidist.storage import Store

DARK_BACKGROUND_LEVEL = 60  # median gray below this: not a brightfield slide


@dataclass(frozen=True)
class SlideTask:
    """One slide of a job: where it is and the id its outputs are written under."""

    url: str
    slide_id: str


def status_key(slide_id: str) -> str:
    return f"status/{slide_id}.json"


def tiles_key(slide_id: str) -> str:
    return f"tiles/slide_id={slide_id}/part-0.parquet"


def process_slide(
    task: SlideTask,
    config: Stage1Config,
    store: Store,
    *,
    overwrite: bool = False,
    cache_dir: str | None = None,
    scorer: Scorer | None = None,
) -> dict[str, Any]:
    """Run stage 1 on one slide and return its summary row. Never raises for slide errors."""
    config_hash = config.config_hash()
    if not overwrite:
        previous = store.read_json(status_key(task.slide_id))
        if (
            previous
            and previous.get("status") == "ok"
            and previous.get("config_hash") == config_hash
            and previous.get("url") == task.url
        ):
            return {**previous, "skipped": True}
    started = time.perf_counter()
    summary: dict[str, Any] = {
        "url": task.url,
        "slide_id": task.slide_id,
        "scale": config.scale,
        "config_hash": config_hash,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }
    try:
        summary.update(
            _run(
                task, config, store, config_hash, cache_dir, scorer or resolve_scorer(config.scorer)
            )
        )
        summary["status"] = "ok"
    except Exception as exc:  # noqa: BLE001 — a slide's failure is a row, not a crash
        summary.update(status="failed", error=failure_reason(exc))
        store.remove(f"tiles/slide_id={task.slide_id}", recursive=True)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    summary["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    summary["skipped"] = False
    store.write_bytes(status_key(task.slide_id), json.dumps(summary).encode())
    return summary


def _run(
    task: SlideTask,
    config: Stage1Config,
    store: Store,
    config_hash: str,
    cache_dir: str | None,
    scorer: Scorer,
) -> dict[str, Any]:
    with open_slide(task.url, cache_dir=cache_dir) as slide:
        analysis = analyse_slide(slide, config, scorer)
    rgb, tissue, pen, tiles = analysis.rgb, analysis.tissue, analysis.pen, analysis.tiles
    downsample, grid, meta = analysis.downsample, analysis.grid, analysis.meta
    warnings = _warnings(rgb, tissue)

    sid = task.slide_id
    store.write_bytes(f"masks/{sid}.png", render.encode(tissue, "png"))
    store.write_bytes(f"thumbnails/{sid}.jpg", render.encode(rgb, "jpeg"))
    if config.batch:
        _write_batch(store, sid, rgb, tissue, analysis.steps, tiles, downsample)
    store.write_parquet(tiles_key(sid), _tile_table(tiles, task, config, config_hash))

    tissue_frac = tiles.column("tissue_frac").to_numpy()
    return {
        **meta,
        "error": None,
        "warning": "; ".join(warnings) or None,
        "tile_px0": grid.tile_px0,
        "stride_px0": grid.stride_px0,
        "n_tiles": tiles.num_rows,
        "n_tissue_tiles": int((tissue_frac >= config.min_tissue_frac).sum()),
        "tissue_frac": float(tissue.mean()),
        "pen_frac": float((pen & ~tissue).mean()),
    }


def _warnings(rgb: np.ndarray, tissue: np.ndarray) -> list[str]:
    found = []
    if not tissue.any():
        found.append("no tissue detected")
    if float(np.median(rgb.mean(axis=2))) < DARK_BACKGROUND_LEVEL:
        found.append("dark background (fluorescence?): brightfield tissue presets may not apply")
    return found


def _write_batch(
    store: Store,
    sid: str,
    rgb: np.ndarray,
    tissue: np.ndarray,
    steps: list[tuple[str, np.ndarray]],
    tiles: pa.Table,
    downsample: float,
) -> None:
    base = f"batch/{sid}"
    store.write_bytes(f"{base}/00-rgb.png", render.encode(rgb, "png"))
    for name, array in steps:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        store.write_bytes(f"{base}/steps/{safe}.png", render.encode(array, "png"))
    masked = np.where(tissue[..., None], rgb, 0).astype(np.uint8)
    store.write_bytes(f"{base}/tissue.png", render.encode(masked, "png"))
    summary = render.tile_summary(rgb, tiles, downsample)
    store.write_bytes(f"{base}/tile_summary.png", render.encode(summary, "png"))
    heat = render.score_heatmap(rgb, tiles, downsample)
    store.write_bytes(f"{base}/score_heatmap.png", render.encode(heat, "png"))


def _tile_table(
    tiles: pa.Table, task: SlideTask, config: Stage1Config, config_hash: str
) -> pa.Table:
    meta = {
        "wsidist.schema_version": SCHEMA_VERSION,
        "wsidist.config_hash": config_hash,
        "wsidist.config": config.model_dump_json(),
        "wsidist.slide_id": task.slide_id,
        "wsidist.url": task.url,
    }
    ids = pa.array([task.slide_id] * tiles.num_rows, type=pa.string())
    tiles = tiles.add_column(0, "slide_id", ids)
    return tiles.replace_schema_metadata({**(tiles.schema.metadata or {}), **meta})

"""Sample patch boxes from a stage-1 output (``wsidist select --sample``), without pixels.

Per ``ok`` slide, candidates come from the slide's stage-1 mask (``masks/<id>.png``, one pixel
per ``scale`` level-0 px): seed 003's sampling grid (:func:`~wsidist.query.placement.
grid_candidates`) or, with ``within_contours``, seed 001's windows covering each tissue region
(:func:`~wsidist.query.placement.contour_boxes`). A candidate's ``class`` is a SQL expression
(``class_by``; default ``label`` when the tile tables have it) evaluated by DuckDB on the
stage-1 tile holding the box centre, and ``where`` filters on that tile too (one query for
the candidates of all slides, up to ``MAX_PROBE_BOXES`` boxes per query). With
``per_class`` N each class gets exactly N boxes per slide: drawn without replacement when it
has N candidates or more, else all of them plus repeats (``draw`` ≥ 1) moved by a fresh
perturbation. Boxes are perturbed by up to ±``jitter`` px and stay inside the slide; the
random numbers come from ``seed`` and the slide id only, so a slide's sample never depends on
the other slides or on the run.

The result is a selection (``slide_id, url, x, y, w, h, level, mpp, level_count``, …) that
``wsidist extract`` and :class:`wsidist.data.TileDataset` read unchanged; the per-class counts
and the sampling settings are in its Parquet metadata (``wsidist.sample``).
"""

from __future__ import annotations

import io
import json
import os
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

from wsidist import layout
from wsidist.errors import ConfigError, WsidistError
from wsidist.imaging.labels import decode_label_png
from wsidist.imaging.masks import mask_downsample
from wsidist.io.storage import Store
from wsidist.query.placement import contour_boxes, grid_candidates, jitter_boxes, label_classes
from wsidist.query.sample_config import Length, SampleConfig, parse_length
from wsidist.query.select import _read_all_slides, _root, check_expression, open_tiles

__all__ = ["Length", "SampleConfig", "SampleResult", "parse_length", "sample"]


@dataclass(frozen=True)
class SampleResult:
    """The selection, one counts row per slide and class, and notes on slides left out."""

    table: pa.Table
    counts: list[dict[str, Any]]
    notes: list[str]


MAX_REDRAWS = 16  # fresh offsets tried for a repeat that lands on a box already chosen
MAX_PROBE_BOXES = 2_000_000  # candidate boxes classed by one query (bounds the driver's memory)
SLIDE_FIELDS = ("slide_id", "url", "width", "height", "mpp_x", "scale", "level_count",
                "tile_px0", "stride_px0")  # fmt: skip


def sample(
    out: str, config: SampleConfig, storage_options: dict[str, Any] | None = None
) -> SampleResult:
    """Sample boxes from the ``ok`` slides of stage-1 output ``out`` (see the module doc).

    Raises :class:`WsidistError` before any mask is read for a bad expression, or for sizes
    in µm on slides without mpp (naming them).
    """
    out = os.fspath(out)
    store = Store(_root(out), storage_options or {})
    slides = _ok_slides(store, out, config)
    con, columns = open_tiles(out, store)
    try:
        class_by = config.class_by or ("label" if "label" in columns else None)
        class_by = None if config.labels else class_by
        if config.per_class and not (class_by or config.labels):
            raise ConfigError(
                f"per_class {config.per_class} needs classes: the tiles have no label column; "
                "give class_by (a SQL expression) or labels (the label mask)"
            )
        if class_by:
            check_expression(con, class_by, columns, "class expression")
        if config.where:
            check_expression(con, config.where, columns, "where expression")
        parts, counts, notes = [], [], []
        batch: list[tuple[dict[str, Any], dict, dict]] = []

        def flush() -> None:  # one query classes the candidates of every slide in the batch
            if not batch:
                return
            for (slide, _, extra), boxes in zip(batch, _classify(con, batch, config, class_by)):
                table, rows = _choose(slide, boxes, config)
                parts.append(table)
                counts.extend({**row, **extra} for row in rows)
            batch.clear()

        for slide in slides:
            sid = slide["slide_id"]
            mask, why = _read_png(store, layout.mask_key(sid), _decode_mask, "stage-1 mask")
            labels = None
            if mask is not None and config.labels:
                labels, why = _read_png(store, layout.labels_key(sid), decode_label_png,
                                        "label mask")  # fmt: skip
            if why:
                notes.append(f"{sid}: left out, {why}")
                continue
            boxes, extra = _candidates(slide, mask, config, labels)
            if batch and sum(b["x"].size for _, b, _ in batch) + boxes["x"].size > MAX_PROBE_BOXES:
                flush()
            batch.append((slide, boxes, extra))
        flush()
    finally:
        con.close()
    table = pa.concat_tables(parts) if parts else _empty()
    meta = {"config": config.to_json(), "class_by": class_by, "counts": counts}
    meta_bytes = json.dumps(meta, default=str).encode()
    table = table.replace_schema_metadata({b"wsidist.sample": meta_bytes})
    return SampleResult(table, counts, notes)


def sample_counts(table: pa.Table) -> list[dict[str, Any]]:
    """The counts stored in a sampled selection's metadata (``[]`` for other selections)."""
    raw = (table.schema.metadata or {}).get(b"wsidist.sample")
    return json.loads(raw)["counts"] if raw else []


# -- per slide ---------------------------------------------------------------------------------
def _ok_slides(store: Store, out: str, config: SampleConfig) -> list[dict[str, Any]]:
    slides = _read_all_slides(store, out)
    ok = slides.filter(pc.equal(slides["status"], "ok"))
    rows = ok.select([c for c in SLIDE_FIELDS if c in ok.column_names]).to_pylist()
    lengths = [config.size, config.stride, config.jitter, config.pad]
    if any(v is not None and v.unit == "um" and v.value for v in lengths):
        no_mpp = sorted(r["slide_id"] for r in rows if not r.get("mpp_x"))
        if no_mpp:
            raise ConfigError(
                f"sizes in µm need each slide's mpp; {len(no_mpp)} slide(s) have none: "
                f"{', '.join(no_mpp)} (give the sizes in px)"
            )
    for r in rows:
        size = config.size.px0(r.get("mpp_x"))
        if size < 1 or size > min(r["width"], r["height"]):
            raise ConfigError(
                f"size {config.size} ({size} px) does not fit slide {r['slide_id']} "
                f"({r['width']}×{r['height']} px)"
            )
    return sorted(rows, key=lambda r: r["slide_id"])


def _decode_mask(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L")) > 0


def _read_png(store: Store, key: str, decode, what: str):
    """(decoded, None), or (None, why) for a missing or unreadable file."""
    try:
        return decode(store.read_bytes(key)), None
    except FileNotFoundError:
        return None, f"no {what} {key}"
    except Exception as exc:  # noqa: BLE001 — a corrupt PNG leaves its slide out, named
        return None, f"cannot read its {what} {key}: {type(exc).__name__}: {exc}"


def _geometry(slide: dict[str, Any], config: SampleConfig) -> dict[str, int]:
    mpp = slide.get("mpp_x")
    size = config.size.px0(mpp)
    stride = config.stride.px0(mpp) if config.stride is not None else size
    return {"size": size, "stride": max(1, stride), "jitter": config.jitter.px0(mpp),
            "pad": config.pad.px0(mpp)}  # fmt: skip


def _candidates(slide, mask, config: SampleConfig, labels=None) -> tuple[dict, dict]:
    """The slide's candidate boxes (arrays), and extra per-slide counts (regions)."""
    g = _geometry(slide, config)
    try:
        ds = mask_downsample(slide["width"], slide["height"], mask.shape, slide.get("scale"))
    except ValueError as exc:
        raise WsidistError(f"{slide['slide_id']}: stage-1 mask: {exc}") from None
    w, h = slide["width"], slide["height"]
    if labels is not None:  # labelled pixels are candidates even off the tissue mask
        if labels[0].shape != mask.shape:
            raise WsidistError(f"{slide['slide_id']}: label mask and tissue mask differ in size")
        mask = mask | (labels[0] > 0)
    if not config.within_contours:
        boxes = grid_candidates(mask, ds, w, h, g["size"], g["stride"], config.min_tissue)
        boxes["region"] = np.full(boxes["x"].size, -1, np.int64)
        if labels is not None:
            found = label_classes(*labels, ds, boxes["x"], boxes["y"], g["size"], config.class_at)
            boxes["label_class"] = found
        return boxes, {}
    found = contour_boxes(mask, ds, w, h, g["size"], g["stride"], g["pad"], config.allow_straddle)
    order = np.lexsort((found.x, found.y, found.region))
    x, y, region = found.x[order], found.y[order], found.region[order]
    boxes = {"x": x, "y": y, "grid_row": np.full(x.size, -1), "grid_col": np.full(x.size, -1),
             "region": region, "tissue_frac": _box_tissue(mask, ds, x, y, g["size"])}  # fmt: skip
    if labels is not None:
        boxes["label_class"] = label_classes(*labels, ds, x, y, g["size"], config.class_at)
    covered = found.region_covered
    extra = {"regions": found.n_regions,
             "min_region_covered": float(covered.min()) if covered.size else None}  # fmt: skip
    return boxes, extra


def _box_tissue(mask, ds, x, y, size) -> np.ndarray:
    from wsidist.imaging import box_sums, summed_area_table
    from wsidist.query.placement import touched

    sat = summed_area_table(mask.astype(np.uint8))
    x0, x1 = touched(x, x + size, ds, mask.shape[1])
    y0, y1 = touched(y, y + size, ds, mask.shape[0])
    return box_sums(sat, y0, x0, y1, x1) / np.maximum((x1 - x0) * (y1 - y0), 1)


def _classify(con, batch, config: SampleConfig, class_by: str | None) -> list[dict]:
    """Each slide's boxes with ``class`` and ``score`` from the stage-1 tile holding the box
    centre (of the tiles holding it, the one whose centre is nearest), without the boxes
    failing ``where``: one query for the whole batch of ``(slide, boxes, extra)``."""
    probes = [_probe(k, slide, boxes, _geometry(slide, config)["size"])
              for k, (slide, boxes, _) in enumerate(batch)]  # fmt: skip
    try:
        found = _tile_query(con, pa.concat_tables(probes), [s for s, _, _ in batch], class_by,
                            config.where)  # fmt: skip
    except WsidistError:
        if len(batch) == 1:
            raise
        for one in batch:  # name the slide whose tiles the expression fails on
            _classify(con, [one], config, class_by)
        raise
    cuts = np.searchsorted(found["s"], np.arange(len(batch) + 1))
    out = []
    for k, (_, boxes, _) in enumerate(batch):
        part = slice(cuts[k], cuts[k + 1])
        idx = np.asarray(found["i"][part], np.int64)
        picked = {key: np.asarray(v)[idx] for key, v in boxes.items()}
        picked["class"] = np.asarray([None if _null(v) else str(v) for v in found["class"][part]],
                                     object)  # fmt: skip
        if "label_class" in picked:
            picked["class"] = picked.pop("label_class")
        picked["score"] = np.ma.filled(np.ma.asarray(found["score"][part], float), np.nan)
        out.append(picked)
    return out


def _probe(k: int, slide, boxes, size: int) -> pa.Table:
    """One slide's box centres and the row and column of the tile nearest each."""
    n = boxes["x"].size
    tile, stride = int(slide.get("tile_px0") or 0), int(slide.get("stride_px0") or 0)
    stride = stride or tile
    cx, cy = boxes["x"] + size / 2, boxes["y"] + size / 2
    if tile:
        trow = np.floor((cy - tile / 2 + stride / 2) / stride).astype(np.int64).clip(0)
        tcol = np.floor((cx - tile / 2 + stride / 2) / stride).astype(np.int64).clip(0)
    else:
        trow = tcol = np.zeros(n, np.int64)
    return pa.table({"s": np.full(n, k, np.int64), "probe_slide": [slide["slide_id"]] * n,
                     "i": np.arange(n, dtype=np.int64), "cx": np.asarray(cx, np.float64),
                     "cy": np.asarray(cy, np.float64), "trow": trow, "tcol": tcol})  # fmt: skip


def _tile_query(con, probe: pa.Table, slides, class_by: str | None, where: str | None):
    label = f"CAST(({class_by}) AS VARCHAR)" if class_by else "NULL::VARCHAR"
    keep = f"WHERE coalesce(({where}), false)" if where else ""
    ids = ", ".join("'" + s["slide_id"].replace("'", "''") + "'" for s in slides)
    sql = (
        f"SELECT p.s, p.i, {label} AS class, t.score::DOUBLE AS score "
        f"FROM probe p LEFT JOIN (SELECT * FROM candidates WHERE slide_id IN ({ids})) t "
        "ON t.slide_id = p.probe_slide AND t.row = p.trow AND t.col = p.tcol "
        "AND t.x <= p.cx AND p.cx < t.x + t.w AND t.y <= p.cy AND p.cy < t.y + t.h "
        f"{keep} ORDER BY p.s, p.i"
    )
    con.register("probe", probe)
    try:
        return con.sql(sql).fetchnumpy()
    except Exception as exc:  # noqa: BLE001 — a runtime error of the user's expression
        names = ", ".join(s["slide_id"] for s in slides)
        raise WsidistError(f"{names}: sampling query failed: {exc}") from None
    finally:
        con.unregister("probe")


def _null(value) -> bool:
    return value is None or value is np.ma.masked or (isinstance(value, float) and value != value)


def _rng(seed: int, slide_id: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(slide_id.encode())])


def _choose(slide, boxes, config: SampleConfig) -> tuple[pa.Table, list[dict[str, Any]]]:
    """Pick and perturb one slide's boxes; returns its selection rows and per-class counts."""
    g = _geometry(slide, config)
    rng = _rng(config.seed, slide["slide_id"])
    classes = boxes["class"]
    n = classes.size
    found = sorted({c for c in classes if c is not None})
    if config.per_class is None:
        pick, draw = np.arange(n), np.zeros(n, np.int64)
        names = found + [None] if any(c is None for c in classes) or not found else found
    else:
        names = list(config.classes or found)
        parts = [_balanced(np.flatnonzero(classes == name), config.per_class, rng)
                 for name in names]  # fmt: skip
        pick = np.concatenate([p for p, _ in parts]).astype(np.int64) if parts else np.zeros(0, int)
        draw = np.concatenate([d for _, d in parts]).astype(np.int64) if parts else np.zeros(0, int)
    x0, y0 = boxes["x"][pick], boxes["y"][pick]
    x, y = _perturb(x0, y0, draw, slide, g, rng)
    rows = {k: v[pick] for k, v in boxes.items()}
    count_rows = []
    for name in names:
        in_class, available = rows["class"] == name, int((classes == name).sum())
        count_rows.append({
            "slide_id": slide["slide_id"], "class": name, "candidates": available,
            "selected": int(in_class.sum()), "repeats": int((draw[in_class] > 0).sum()),
            "short": bool(config.per_class and available < config.per_class),
        })  # fmt: skip
    table = _table(slide, g["size"], rows, x, y, x0, y0, draw)
    return table, count_rows


def _balanced(idx: np.ndarray, n: int, rng: np.random.Generator):
    """``n`` of ``idx``: without replacement when there are enough, else every one plus
    repeats cycling through a shuffled order (draw 1, 2, …)."""
    if idx.size >= n:
        return np.sort(rng.choice(idx, n, replace=False)), np.zeros(n, np.int64)
    if not idx.size:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    extra = n - idx.size
    order = np.concatenate([rng.permutation(idx) for _ in range(-(-extra // idx.size))])
    draws = 1 + np.arange(extra) // idx.size
    return np.concatenate([idx, order[:extra]]), np.concatenate([np.zeros(idx.size), draws])


def _perturb(x0, y0, draw, slide, g, rng) -> tuple[np.ndarray, np.ndarray]:
    """Jitter every box; a repeat (draw ≥ 1, moved by ±jitter, or ±stride/2 without jitter)
    or a jittered box landing on a box already chosen is redrawn (up to MAX_REDRAWS times)."""
    w, h, size = slide["width"], slide["height"], g["size"]
    x, y = jitter_boxes(x0, y0, size, g["jitter"], w, h, rng)
    repeat_jitter = g["jitter"] or max(1, g["stride"] // 2)
    first = np.flatnonzero(draw == 0)
    seen: set[tuple[int, int]] = set()
    redo = list(np.flatnonzero(draw > 0))
    for i in first:
        key = (int(x[i]), int(y[i]))
        if key in seen and g["jitter"]:
            redo.append(i)
        seen.add(key)
    for i in redo:
        for _ in range(MAX_REDRAWS):
            nx, ny = jitter_boxes(x0[i : i + 1], y0[i : i + 1], size, repeat_jitter, w, h, rng)
            if (int(nx[0]), int(ny[0])) not in seen:
                break
        x[i], y[i] = nx[0], ny[0]
        seen.add((int(x[i]), int(y[i])))
    return x, y


def _table(slide, size, rows, x, y, x0, y0, draw) -> pa.Table:
    n = x.size
    order = np.lexsort((draw, x, y, rows["region"]))
    col = lambda v: np.asarray(v)[order]  # noqa: E731
    region = col(rows["region"])
    return pa.table({
        "slide_id": pa.array([slide["slide_id"]] * n, pa.string()),
        "url": pa.array([slide["url"]] * n, pa.string()),
        "x": pa.array(col(x), pa.int64()), "y": pa.array(col(y), pa.int64()),
        "w": pa.array(np.full(n, size), pa.int64()), "h": pa.array(np.full(n, size), pa.int64()),
        "level": pa.array(np.zeros(n, np.int32), pa.int32()),
        "mpp": pa.array([slide.get("mpp_x")] * n, pa.float64()),
        "level_count": pa.array([slide.get("level_count")] * n, pa.int64()),
        "class": pa.array(list(col(rows["class"])), pa.string()),
        "score": pa.array(col(rows["score"]).astype(float), pa.float64(), from_pandas=True),
        "tissue_frac": pa.array(col(rows["tissue_frac"]), pa.float64()),
        "grid_x": pa.array(col(x0), pa.int64()), "grid_y": pa.array(col(y0), pa.int64()),
        "jitter_dx": pa.array(col(x - x0), pa.int64()),
        "jitter_dy": pa.array(col(y - y0), pa.int64()),
        "draw": pa.array(col(draw), pa.int32()),
        "region": pa.array(np.where(region < 0, None, region).tolist(), pa.int64()),
        "sample_index": pa.array(np.arange(n), pa.int64()),
    })  # fmt: skip


def _empty() -> pa.Table:
    slide = {"slide_id": "", "url": "", "mpp_x": None, "level_count": None}
    z = np.zeros(0, np.int64)
    rows = {"class": np.zeros(0, object), "score": np.zeros(0), "tissue_frac": np.zeros(0),
            "region": z}  # fmt: skip
    return _table(slide, 0, rows, z, z, z, z, z)

"""The dataset table of a report, from what the jobs wrote: ``slides.parquet`` joined with
``pyramids.parquet`` (when a rewrite ran) and per-slide tile-class counts from ``tiles/``, in
DuckDB. Also seed 000's ``slide_stats``: the largest, smallest and mean slide sizes.

Nothing here touches pixels; a missing optional table or column is a null column, so any
stage-1 output (older, newer, with or without ``qc_flags``) gives the same table shape.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from wsidist import layout
from wsidist.errors import WsidistError
from wsidist.io.storage import Store
from wsidist.runtime.tiletable import create_tiles_view

# (key, label, kind, unit): kind is text | int | num | pct | bytes; shown in this order
COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("name", "slide", "text", ""),
    ("status", "status", "text", ""),
    ("qc", "QC flags", "text", ""),
    ("error", "error / warning", "text", ""),
    ("vendor", "vendor", "text", ""),
    ("width", "width", "int", "px"),
    ("height", "height", "int", "px"),
    ("mpix", "size", "num", "Mpx"),
    ("mpp", "mpp", "num", "µm/px"),
    ("objective", "objective", "num", "×"),
    ("tissue_pct", "tissue", "pct", "%"),
    ("n_tiles", "tiles", "int", ""),
    ("n_tissue_tiles", "tissue tiles", "int", ""),
    ("n_high", "high", "int", ""),
    ("n_medium", "medium", "int", ""),
    ("n_low", "low", "int", ""),
    ("seconds", "time", "num", "s"),
    ("reduction_pct", "saved", "pct", "%"),
    ("saved_bytes", "saved", "bytes", "B"),
    ("ssim", "SSIM", "num", ""),
)
_SLIDE_COLS = {
    "slide_id": "VARCHAR", "url": "VARCHAR", "status": "VARCHAR", "error": "VARCHAR",
    "warning": "VARCHAR", "vendor": "VARCHAR", "backend": "VARCHAR", "width": "BIGINT",
    "height": "BIGINT", "level_count": "INTEGER", "mpp_x": "DOUBLE", "objective_power": "DOUBLE",
    "tissue_frac": "DOUBLE", "n_tiles": "BIGINT", "n_tissue_tiles": "BIGINT", "seconds": "DOUBLE",
    "scale": "DOUBLE", "tile_px0": "BIGINT", "finished_at": "VARCHAR",
}  # fmt: skip
_PYRAMID_COLS = {
    "slide_id": "VARCHAR", "status": "VARCHAR", "error": "VARCHAR", "codec": "VARCHAR",
    "source_bytes": "BIGINT", "output_bytes": "BIGINT", "reduction_pct": "DOUBLE",
    "ssim": "DOUBLE", "psnr_db": "DOUBLE", "glass_fraction": "DOUBLE", "key": "VARCHAR",
}  # fmt: skip


def slide_name(url: str) -> str:
    """The file name of a slide URL (a DICOM folder's name)."""
    return posixpath.basename(url.rstrip("/")) or url


def display_names(urls: Sequence[str]) -> list[str]:
    """Each URL relative to the deepest folder they all share (``a/x.svs``, ``b/x.svs``)."""
    paths = [u.rstrip("/") for u in urls]
    parents = [posixpath.dirname(p) for p in paths]
    try:
        common = posixpath.commonpath(parents) if parents else ""
    except ValueError:  # absolute and relative paths mixed
        common = ""
    if not common or common == "/" and not all(p.startswith("/") for p in paths):
        return [slide_name(p) for p in paths]
    return [posixpath.relpath(p, common) if p.startswith(common) else p for p in paths]


def read_job_table(store: Store, key: str, columns: dict[str, str]) -> pa.Table | None:
    """``key`` with exactly ``columns`` (missing ones null, cast to their type), or None."""
    if not store.exists(key):
        return None
    try:
        table = store.read_parquet(key)
    except Exception as exc:  # noqa: BLE001 — a damaged table is named, not a traceback
        raise WsidistError(f"cannot read {store.full_url(key)}: {exc}") from exc
    con = duckdb.connect()
    try:
        con.register("t", table)
        present = set(table.column_names)
        exprs = [
            f'CAST("{c}" AS {t}) AS "{c}"' if c in present else f'NULL::{t} AS "{c}"'
            for c, t in columns.items()
        ]
        qc = "qc_flags" in present and key == layout.SLIDES_TABLE
        if qc:
            kind = str(table.schema.field("qc_flags").type)
            flags = "array_to_string(qc_flags, '; ')" if kind.startswith("list") else "qc_flags"
            flags = f"NULLIF(CAST({flags} AS VARCHAR), '')"
            exprs.append(f"CAST({flags} AS VARCHAR) AS qc_flags")
        return _fetch(con.sql(f"SELECT {', '.join(exprs)} FROM t"))
    finally:
        con.close()


def class_counts(store: Store, slide_ids: Sequence[str]) -> pa.Table | None:
    """slide_id, n_high, n_medium, n_low: tiles per tissue class, from ``tiles/`` in DuckDB."""
    if not slide_ids or not store.list(layout.TILES_DIR):
        return None
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    con.execute("SET autoload_known_extensions = false")
    if not store.is_local:
        con.register_filesystem(store.fs)
    try:
        create_tiles_view(con, store, "tiles")
        return _fetch(
            con.sql(
                "SELECT slide_id, count(*) FILTER (tissue_class = 'high') AS n_high, "
                "count(*) FILTER (tissue_class = 'medium') AS n_medium, "
                "count(*) FILTER (tissue_class = 'low') AS n_low "
                "FROM tiles GROUP BY slide_id"
            )
        )
    except duckdb.Error:
        return None  # no readable tile tables: the counts stay empty
    finally:
        con.close()


def dataset_rows(store: Store) -> list[dict[str, Any]]:
    """One dict per slide of a stage-1 output (the report's table), in slide_id order."""
    slides = read_job_table(store, layout.SLIDES_TABLE, _SLIDE_COLS)
    if slides is None:
        raise WsidistError(
            f"{store.url}: no slides.parquet: not a stage-1 output (run `wsidist score` first)"
        )
    pyramids = read_job_table(store, layout.PYRAMIDS_TABLE, _PYRAMID_COLS)
    counts = class_counts(store, slides.column("slide_id").to_pylist())
    con = duckdb.connect()
    try:
        con.register("s", slides)
        joins, extra = "", []
        if pyramids is not None:
            con.register("p", pyramids)
            joins += " LEFT JOIN p ON p.slide_id = s.slide_id"
            extra += [
                "p.status AS pyr_status", "p.error AS pyr_error", "p.codec AS pyr_codec",
                "p.reduction_pct", "p.source_bytes - p.output_bytes AS saved_bytes", "p.ssim",
                "p.psnr_db", "p.glass_fraction", "p.key AS pyr_key", "p.source_bytes",
                "p.output_bytes",
            ]  # fmt: skip
        if counts is not None:
            con.register("c", counts)
            joins += " LEFT JOIN c ON c.slide_id = s.slide_id"
            extra += ["c.n_high", "c.n_medium", "c.n_low"]
        qc = "s.qc_flags AS qc" if "qc_flags" in slides.column_names else "NULL::VARCHAR AS qc"
        sql = (
            "SELECT s.*, s.slide_id AS id, s.mpp_x AS mpp, s.objective_power AS objective, "
            "s.width * s.height / 1e6 AS mpix, s.tissue_frac * 100 AS tissue_pct, "
            f"{qc}{''.join(', ' + e for e in extra)} FROM s{joins} ORDER BY s.slide_id"
        )
        rows = _fetch(con.sql(sql)).to_pylist()
    finally:
        con.close()
    names = display_names([row.get("url") or row["id"] for row in rows])
    optional = ("n_high", "n_medium", "n_low", "pyr_status", "reduction_pct", "saved_bytes", "ssim")
    for row, name in zip(rows, names):
        for key in optional:
            row.setdefault(key, None)
        row["name"] = name
        row.pop("qc_flags", None)
    return rows


def slide_stats(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Seed 000's table: max/min/mean width, height and size (px) and which slide it is."""
    sized = [r for r in rows if r.get("width") and r.get("height")]
    if not sized:
        return []
    out = []
    for attr, key in (("width", "width"), ("height", "height"), ("size", None)):

        def value(r: dict[str, Any], key: str | None = key) -> int:
            return int(r[key]) if key else int(r["width"]) * int(r["height"])

        big, small = max(sized, key=value), min(sized, key=value)
        out.append({"attribute": f"max {attr}", "pixels": value(big), "slide": big["name"]})
        out.append({"attribute": f"min {attr}", "pixels": value(small), "slide": small["name"]})
        mean = sum(value(r) for r in sized) / len(sized)
        out.append({"attribute": f"mean {attr}", "pixels": round(mean), "slide": None})
    order = [f"{k} {a}" for k in ("max", "min", "mean") for a in ("width", "height", "size")]
    return sorted(out, key=lambda r: order.index(r["attribute"]))


def _fetch(relation: duckdb.DuckDBPyRelation) -> pa.Table:
    # DuckDB ≥ 2.0 names it to_arrow_table; older releases arrow()
    fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
    result = fetch()
    return result.read_all() if hasattr(result, "read_all") else result

"""Fit seed 004's rails from labelled tiles, with DuckDB (the tiles never reach the driver).

:func:`fit_rails` reads a stage-1 output's tile tables (``OUT/tiles/``, run with
``--annotations``) or any Parquet table (a file or glob) with the feature columns and a
``label`` column, keeps the whole tiles of one size whose ``label`` is the class, and takes per
feature the ``quantiles`` (default ``(0, 1)``: the seed's minimum and maximum; e.g.
``(0.01, 0.99)`` for robust rails) with DuckDB's ``quantile_cont``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import duckdb

from wsidist import layout
from wsidist.errors import WsidistError
from wsidist.filters.rails import Rails
from wsidist.io.annotations import class_column
from wsidist.io.storage import Store
from wsidist.runtime.tiletable import create_tiles_view

__all__ = ["fit_rails"]


def _source(source: str, storage_options: dict[str, Any] | None) -> tuple[str, Store | None]:
    """The Parquet URL/glob DuckDB reads, and the Store of a stage-1 output."""
    root = source.rstrip("/") if "://" in source else os.path.abspath(source)
    store = Store(root, storage_options or {})
    if store.exists(layout.SLIDES_TABLE) or store.fs.isdir(store.path(layout.TILES_DIR)):
        return f"{store.full_url(layout.TILES_DIR)}/{layout.TILE_FILES}", store
    return (source if "://" in source else os.path.abspath(source)), None


def fit_rails(
    source: str,
    label: str,
    *,
    features: Sequence[str] = ("entropy",),
    quantiles: tuple[float, float] = (0.0, 1.0),
    tile_px0: int | None = None,
    min_tissue_frac: float | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Rails:
    """Rails of ``features`` over the tiles of ``source`` labelled ``label``.

    ``tile_px0``: the tile side the rails are for (whole ``w = h = tile_px0`` tiles only);
    by default the side of the labelled whole tiles, which must be one size.
    ``min_tissue_frac``: only tiles with at least this tissue share (the seed fits on tiles
    that passed its background sift). Raises :class:`WsidistError` when nothing is
    labelled ``label`` or a column is missing.
    """
    lo_q, hi_q = (float(q) for q in quantiles)
    if not 0.0 <= lo_q <= hi_q <= 1.0:
        raise WsidistError(f"quantiles must satisfy 0 ≤ low ≤ high ≤ 1, got {quantiles}")
    if not features:
        raise WsidistError("give at least one feature column")
    cls = class_column(label, source)
    url, store = _source(source, storage_options)
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    try:
        con.execute("SET autoload_known_extensions = false")
        if store is not None and not store.is_local:
            con.register_filesystem(store.fs)
        quoted = url.replace("'", "''")
        try:
            if store is not None:  # a stage-1 output: partitioned or compacted tiles
                create_tiles_view(con, store, "t")
            else:
                con.execute(
                    f"CREATE TEMP VIEW t AS SELECT * FROM read_parquet('{quoted}', "
                    "hive_partitioning = true, union_by_name = true)"
                )
            columns = [r[0] for r in con.execute("DESCRIBE t").fetchall()]
        except duckdb.Error as exc:
            raise WsidistError(f"{source}: cannot read tiles: {exc}") from None
        need = ("label", "w", "h", *features, *(("tissue_frac",) if min_tissue_frac else ()))
        missing = [c for c in need if c not in columns]
        if missing:
            raise WsidistError(
                f"{source}: no column(s) {', '.join(missing)} (rails need a stage-1 output run "
                f"with --annotations, or a table with them)\navailable columns: "
                f"{', '.join(columns)}"
            )
        labelled = "label = ?"
        if min_tissue_frac:
            labelled += f" AND tissue_frac >= {float(min_tissue_frac)!r}"
        if tile_px0 is None:
            sizes = con.execute(
                f"SELECT DISTINCT greatest(w, h) FROM t WHERE {labelled} AND w = h", [cls]
            ).fetchall()
            sizes = sorted(int(s[0]) for s in sizes)
            if len(sizes) > 1:
                raise WsidistError(
                    f"{source}: tiles labelled {cls!r} come in sizes {sizes}: give --tile-size"
                )
            if not sizes:
                found = con.execute("SELECT DISTINCT label FROM t ORDER BY 1").fetchall()
                raise WsidistError(
                    f"{source}: no whole tiles labelled {cls!r} (labels there: "
                    f"{', '.join(str(r[0]) for r in found) or 'none'})"
                )
            tile_px0 = sizes[0]
        filt = f"{labelled} AND w = {int(tile_px0)} AND h = {int(tile_px0)}"
        aggs = ", ".join(
            f"quantile_cont({c}, {lo_q!r}), quantile_cont({c}, {hi_q!r})" for c in features
        )
        try:
            n, *bounds = con.execute(
                f"SELECT count(*), {aggs} FROM t WHERE {filt} AND "
                + " AND ".join(f"isfinite({c})" for c in features),
                [cls],
            ).fetchone()
        except duckdb.Error as exc:
            raise WsidistError(f"{source}: rails query failed: {exc}") from None
    finally:
        con.close()
    if not n:
        raise WsidistError(
            f"{source}: no whole {tile_px0} px tiles labelled {cls!r} to fit rails on"
        )
    pairs = {c: (float(bounds[2 * i]), float(bounds[2 * i + 1])) for i, c in enumerate(features)}
    return Rails(
        pairs, label=cls, quantiles=(lo_q, hi_q), tile_px0=tile_px0, n_tiles=int(n), source=source
    )

"""Select tiles from a stage-1 output with DuckDB, without touching pixels.

:func:`select` queries the tile table (``OUT/tiles/``: the per-slide partitions, or the
compacted bucket files of ``wsidist compact`` and the partitions re-run since) joined with the ``ok`` rows of
``OUT/slides.parquet`` (failed slides are excluded), filters with a SQL ``where`` expression,
and keeps the top-N tiles per slide and/or seed-000 style tissue strata. OUT is a local folder
or any fsspec URL (``s3://bucket/prefix``); remote outputs are read through fsspec, so DuckDB
never downloads or autoloads an extension.

A ``where`` expression sees the tile and slide columns only: the slides table is registered
from memory and the tile files are the only ones DuckDB may open (``allowed_directories`` is
``OUT/tiles/``, external access is off and the configuration locked before the expression is
read), so ``read_text(…)`` or ``glob(…)`` of anything else fails without reading it; and it
must be one expression, not more statements.

Columns a ``where`` expression can use: every tile column (``slide_id, row, col, x, y, w, h,
tissue_frac, pen_frac, background_frac, entropy, color_factor, sv_factor, quantity_factor,
tissue_class, score, rank``) and the slide columns in :data:`SLIDE_COLUMNS` (``url, vendor,
mpp_x, slide_width``, …).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from wsidist import layout
from wsidist.errors import WsidistError
from wsidist.io.storage import Store
from wsidist.runtime.tiletable import create_tiles_view

# slides.parquet column -> name in the selection view (renamed where a tile column has its name)
SLIDE_COLUMNS = {
    "url": "url",
    "vendor": "vendor",
    "backend": "backend",
    "mpp_x": "mpp_x",
    "mpp_y": "mpp_y",
    "objective_power": "objective_power",
    "width": "slide_width",
    "height": "slide_height",
    "level_count": "level_count",
    "scale": "scale",
    "tile_px0": "tile_px0",
    "n_tiles": "slide_n_tiles",
    "tissue_frac": "slide_tissue_frac",
}
OUTPUT_COLUMNS = ("slide_id", "url", "x", "y", "w", "h", "level", "mpp", "score", "rank")


def select(
    out: str,
    *,
    top: int | None = None,
    where: str | None = None,
    strata: Sequence[tuple[float, int]] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> pa.Table:
    """Tiles of the ``ok`` slides of stage-1 output ``out``, filtered and ranked per slide.

    - ``where``: SQL boolean expression over the tile and slide columns, applied first.
    - ``strata``: ``[(min_tissue_frac, limit), ...]``; stratum ``t`` holds the tiles with
      ``t ≤ tissue_frac <`` the next higher threshold (or ≤ 1 for the highest), and up to
      ``limit`` of them per slide are kept, best score first. The ``stratum`` column is ``t``.
    - ``top``: at most ``top`` tiles per slide, best score first (after ``strata``).

    Ties are broken by stage-1 rank, then row, col. Columns: slide_id, url, x, y, w, h,
    level (0), mpp (the slide's mpp_x), score, rank, tissue_frac, level_count (the slide's
    levels, so ``extract`` can check ``--level`` before it starts) (+ stratum); ordered by
    slide_id then score descending. Raises :class:`WsidistError` for a missing output or
    a bad expression (with DuckDB's message and the available columns).
    """
    if top is not None and top < 0:
        raise WsidistError(f"top must be ≥ 0, got {top}")
    bounds = _check_strata(strata) if strata is not None else None
    store = Store(_root(out), storage_options or {})
    slides = _read_slides(store, out)
    con = _connect(store)
    try:
        _create_view(con, slides, store, out)
        _lock_down(con, store.full_url(layout.TILES_DIR))
        columns = [r[0] for r in con.execute("DESCRIBE candidates").fetchall()]
        if where is not None and where.strip():
            _check_where(con, where, columns)
            filtered = f"SELECT * FROM candidates WHERE ({where})"
        else:
            filtered = "SELECT * FROM candidates"
        order = "score DESC NULLS LAST, rank, row, col"
        picked = f"SELECT *, NULL::DOUBLE AS stratum FROM ({filtered})"
        if bounds is not None:
            picked = _strata_sql(filtered, bounds, order)
        if top is not None:
            picked = (
                f"SELECT * FROM ({picked}) QUALIFY row_number() OVER "
                f"(PARTITION BY slide_id ORDER BY {order}) <= {int(top)}"
            )
        extra = ", stratum" if bounds is not None else ""
        levels = ", level_count" if "level_count" in columns else ""
        sql = (
            "SELECT slide_id, url, x, y, w, h, 0::INTEGER AS level, mpp_x AS mpp, score, rank, "
            f"tissue_frac{levels}{extra} FROM ({picked}) ORDER BY slide_id, {order}"
        )
        try:
            relation = con.sql(sql)
            # DuckDB ≥ 2.0 names it to_arrow_table; older releases arrow()
            fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
            return fetch()
        except duckdb.Error as exc:
            raise WsidistError(_bad_query(exc, where, columns)) from None
    finally:
        con.close()


def failed_slides(out: str, storage_options: dict[str, Any] | None = None) -> list[dict]:
    """``slide_id`` and ``error`` of every slide of ``out/slides.parquet`` that is not ``ok``
    (what :func:`select` leaves out)."""
    store = Store(_root(out), storage_options or {})
    slides = _read_all_slides(store, out)
    cols = [c for c in ("slide_id", "error") if c in slides.column_names]
    bad = slides.filter(pc.not_equal(slides["status"], "ok")).select(cols)
    return bad.to_pylist()


def write_selection(
    table: pa.Table, url: str, storage_options: dict[str, Any] | None = None
) -> str:
    """Write a selection as Parquet to ``url`` (local path or fsspec URL), atomically."""
    if "://" not in url:
        url = os.path.abspath(url)
    root, _, key = url.rstrip("/").rpartition("/")
    if not key:
        raise WsidistError(f"selection url {url!r} has no file name")
    store = Store(root or "/", storage_options or {})
    store.write_parquet(key, table)
    return store.full_url(key)


def selection_counts(table: pa.Table) -> pa.Table:
    """Tiles per slide of a selection: columns slide_id, n_tiles, ordered by slide_id."""
    counts = table.group_by("slide_id").aggregate([("slide_id", "count")])
    counts = counts.rename_columns(["slide_id", "n_tiles"])
    return counts.sort_by("slide_id")


def open_tiles(out: str, store: Store) -> tuple[duckdb.DuckDBPyConnection, list[str]]:
    """A locked-down DuckDB connection with the ``candidates`` view (tiles of the ``ok``
    slides joined with their slide columns, as :func:`select` sees them) and its columns.
    In-memory tables may still be registered; no other file can be opened."""
    con = _connect(store)
    try:
        _create_view(con, _read_slides(store, out), store, out)
        _lock_down(con, store.full_url(layout.TILES_DIR))
        return con, [r[0] for r in con.execute("DESCRIBE candidates").fetchall()]
    except BaseException:
        con.close()
        raise


def check_expression(con: duckdb.DuckDBPyConnection, expr: str, columns: list[str], what: str):
    """Raise :class:`WsidistError` unless ``expr`` is one expression over ``candidates``."""
    sql = f"SELECT ({expr}) FROM candidates"
    try:
        statements = con.extract_statements(sql)
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            raise WsidistError(
                f"bad {what} {expr!r}: give one expression over the tile and slide columns, "
                f"not more statements\navailable columns: {', '.join(columns)}"
            )
        con.execute(f"{sql} LIMIT 0").fetchall()
    except duckdb.Error as exc:
        raise WsidistError(
            f"bad {what} {expr!r}: {exc}\navailable columns: {', '.join(columns)}"
        ) from None


# -- internals ---------------------------------------------------------------------------------
def _root(out: str) -> str:
    return out.rstrip("/") if "://" in out else os.path.abspath(out)


def _check_strata(strata: Sequence[tuple[float, int]]) -> list[tuple[float, float | None, int]]:
    """(lower, upper or None, limit) per stratum, highest threshold first."""
    items = []
    for item in strata:
        try:
            threshold, limit = item
            threshold, limit = float(threshold), int(limit)
        except (TypeError, ValueError):
            raise WsidistError(f"a stratum is (min_tissue_frac, limit), got {item!r}") from None
        if not 0.0 <= threshold <= 1.0 or limit < 0:
            raise WsidistError(f"stratum {item!r}: need 0 ≤ min_tissue_frac ≤ 1 and limit ≥ 0")
        items.append((threshold, limit))
    if not items:
        raise WsidistError("strata is empty: give at least one (min_tissue_frac, limit)")
    thresholds = [t for t, _ in items]
    if len(set(thresholds)) != len(thresholds):
        raise WsidistError(f"strata thresholds repeat: {thresholds}")
    items.sort(key=lambda tl: -tl[0])
    return [(t, items[i - 1][0] if i else None, limit) for i, (t, limit) in enumerate(items)]


def _strata_sql(filtered: str, bounds: list[tuple[float, float | None, int]], order: str) -> str:
    cases = " ".join(
        f"WHEN tissue_frac >= {lo!r}" + (f" AND tissue_frac < {hi!r}" if hi is not None else "")
        + f" THEN {lo!r}"
        for lo, hi, _ in bounds
    )  # fmt: skip
    limits = " ".join(f"WHEN {lo!r} THEN {limit}" for lo, _, limit in bounds)
    return (
        f"SELECT * FROM (SELECT *, CASE {cases} END::DOUBLE AS stratum FROM ({filtered})) "
        "WHERE stratum IS NOT NULL QUALIFY row_number() OVER "
        f"(PARTITION BY slide_id, stratum ORDER BY {order}) <= CASE stratum {limits} END"
    )


def _read_slides(store: Store, out: str) -> pa.Table:
    slides = _read_all_slides(store, out)
    ok = slides.filter(pc.equal(slides["status"], "ok"))
    keep = [c for c in SLIDE_COLUMNS if c in ok.column_names]
    table = ok.select(["slide_id", *keep])
    return table.rename_columns(["slide_id", *(SLIDE_COLUMNS[c] for c in keep)])


def _read_all_slides(store: Store, out: str) -> pa.Table:
    try:
        slides = store.read_parquet(layout.SLIDES_TABLE)
    except FileNotFoundError:
        raise WsidistError(
            f"{out}: no slides.parquet: not a stage-1 output (run `wsidist score` first)"
        ) from None
    except Exception as exc:  # noqa: BLE001 — credentials, network, corrupt file
        raise WsidistError(f"{out}: cannot read slides.parquet: {exc}") from exc
    missing = {"slide_id", "status"} - set(slides.column_names)
    if missing:
        raise WsidistError(f"{out}/slides.parquet lacks columns {sorted(missing)}")
    return slides


def _connect(store: Store) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    con.execute("SET autoload_known_extensions = false")
    if not store.is_local:
        # remote outputs go through fsspec (the Store's filesystem, same options): no httpfs
        con.register_filesystem(store.fs)
    return con


def _create_view(con: duckdb.DuckDBPyConnection, slides: pa.Table, store: Store, out: str):
    con.register("ok_slides", slides)
    try:
        create_tiles_view(con, store, "tiles")
        con.execute("SELECT count(*) FROM tiles LIMIT 0").fetchall()
    except duckdb.IOException as exc:
        raise WsidistError(f"{out}: no tile tables under tiles/ ({exc})") from None
    except duckdb.Error as exc:
        raise WsidistError(f"{out}: cannot read the tile tables: {exc}") from None
    slide_cols = ", ".join(f"s.{c}" for c in slides.column_names if c != "slide_id")
    con.execute(
        f"CREATE TEMP VIEW candidates AS SELECT t.*, {slide_cols} "
        "FROM tiles t JOIN ok_slides s USING (slide_id)"
    )


def _lock_down(con: duckdb.DuckDBPyConnection, tiles_dir: str) -> None:
    """From now on DuckDB may open the tile files only, and nothing can change that."""
    allowed = (tiles_dir.rstrip("/") + "/").replace("'", "''")
    con.execute(f"SET allowed_directories = ['{allowed}']")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _check_where(con: duckdb.DuckDBPyConnection, where: str, columns: list[str]) -> None:
    try:
        statements = con.extract_statements(f"SELECT * FROM candidates WHERE ({where})")
    except duckdb.Error as exc:
        raise WsidistError(_bad_query(exc, where, columns)) from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise WsidistError(
            f"bad where expression {where!r}: give one expression over the tile and slide "
            f"columns, not more statements\navailable columns: {', '.join(columns)}"
        )
    try:
        con.execute(f"SELECT * FROM candidates WHERE ({where}) LIMIT 0").fetchall()
    except duckdb.Error as exc:
        raise WsidistError(_bad_query(exc, where, columns)) from None


def _bad_query(exc: Exception, where: str | None, columns: list[str]) -> str:
    head = f"bad where expression {where!r}" if where else "selection query failed"
    return f"{head}: {exc}\navailable columns: {', '.join(columns)}"

"""The stage-1 tile table in either of its two layouts, for every reader.

- **Partitioned** (what stage 1 writes): ``tiles/slide_id=<id>/part-0.parquet``, one hive
  partition per slide, ``slide_id`` in the folder name only.
- **Compacted** (``wsidist compact``, :mod:`wsidist.runtime.compact`): ``tiles/_manifest.json``
  lists a few large files ``tiles/_compacted/<gen>/bucket-<b>.parquet``; a slide's rows are in
  bucket ``bucket_of(slide_id, n_buckets)``, sorted by ``slide_id`` (a column there), in row
  groups whose statistics let DuckDB and pyarrow skip the other slides.

Both can hold a slide at once: a slide re-run after compaction gets a new partition folder,
and **any non-temporary key in ``tiles/slide_id=<id>/`` wins over that slide's compacted
rows** (the folder's ``part-*.parquet`` files are its tiles; a folder holding only the
``_removed`` marker means "no tiles", written when a re-run fails). So readers never see a
slide twice, and nothing stale. With a manifest, readers list ``tiles/`` (which then holds only
the slides re-run since compaction and the bucket files), never one prefix per slide.

Every writer of a tile table (stage 1's partitions, the compacted buckets) encodes its columns
as :func:`tile_parquet_options` says.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from wsidist import layout
from wsidist.io.storage import Store

MANIFEST_VERSION = 1
_PREFIX = f"{layout.TILES_DIR}/{layout.PARTITION_COLUMN}="


def tile_parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """How a tile table's columns are written (``pyarrow.parquet`` writer options; the values
    read back are the same either way): zstd, a dictionary for text (few classes, one slide id
    per many rows), delta-packed integers (grid indices and coordinates step by one tile,
    ranks are a permutation) and plain floats (scores and fractions are mostly distinct), so
    the writer never builds a dictionary it then throws away: half the bytes of dictionaries
    everywhere and a quarter less time."""
    text = [
        f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
    ]
    ints = [f.name for f in schema if pa.types.is_integer(f.type)]
    return {
        "compression": "zstd",
        "use_dictionary": text,
        "column_encoding": dict.fromkeys(ints, "DELTA_BINARY_PACKED"),
    }


def bucket_of(slide_id: str, n_buckets: int) -> int:
    """The compacted bucket of a slide: the first 32 bits of its id's MD5, modulo the count
    (:func:`bucket_sql` is the same in DuckDB)."""
    return int(hashlib.md5(slide_id.encode()).hexdigest()[:8], 16) % n_buckets


def bucket_sql(n_buckets: int, column: str = "slide_id") -> str:
    """:func:`bucket_of` as a DuckDB expression."""
    return f"(('0x' || md5({column})[1:8])::UBIGINT % {int(n_buckets)})"


def read_manifest(store: Store) -> dict[str, Any] | None:
    """The compacted layout's manifest, or None (partitioned layout, or unreadable)."""
    manifest = store.read_json(layout.TILES_MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("version") != MANIFEST_VERSION:
        return None
    return manifest


@dataclass(frozen=True)
class LiveFiles:
    """What one listing of ``tiles/`` found outside the compacted files."""

    parts: dict[str, dict[str, float]]  # slide_id -> {part-*.parquet key: modified time}
    markers: dict[str, dict[str, float]]  # slide_id -> {any other non-temporary key: mtime}

    @property
    def slide_ids(self) -> set[str]:
        """Slides whose partition folder wins over their compacted rows."""
        return set(self.parts) | set(self.markers)


def live_files(store: Store) -> LiveFiles:
    """One listing of ``tiles/`` (cheap once compacted: the re-run slides and the buckets)."""
    parts: dict[str, dict[str, float]] = {}
    markers: dict[str, dict[str, float]] = {}
    for key, modified, is_dir in store.find(layout.TILES_DIR):
        if is_dir or not key.startswith(_PREFIX):
            continue
        folder, _, name = key[len(_PREFIX) :].partition("/")
        if not name or "/" in name or layout.is_temporary(name):
            continue
        if name.startswith("part-") and name.endswith(".parquet"):
            parts.setdefault(folder, {})[key] = modified
        else:
            markers.setdefault(folder, {})[key] = modified
    return LiveFiles(parts, markers)


def create_tiles_view(con: duckdb.DuckDBPyConnection, store: Store, name: str = "tiles") -> None:
    """A DuckDB view ``name`` of every tile row (``slide_id`` VARCHAR) in either layout.

    Raises ``duckdb.Error`` when nothing is readable (as DuckDB's glob over no files)."""
    manifest = read_manifest(store)
    hive = "hive_partitioning = true, union_by_name = true, hive_types = {'slide_id': VARCHAR}"
    if manifest is None:
        glob = _quote(f"{store.full_url(layout.TILES_DIR)}/{layout.TILE_FILES}")
        con.execute(f"CREATE TEMP VIEW {name} AS SELECT * FROM read_parquet({glob}, {hive})")
        return
    live = live_files(store)
    parts = sorted(k for keys in live.parts.values() for k in keys)
    selects = []
    compacted = [f["key"] for f in manifest["files"].values()]
    if compacted:
        overridden = pa.table({"slide_id": pa.array(sorted(live.slide_ids), pa.string())})
        con.register(f"{name}_overridden", overridden)
        selects.append(
            f"SELECT * FROM read_parquet({_url_list(store, compacted)}, union_by_name = true) "
            f"WHERE slide_id NOT IN (SELECT slide_id FROM {name}_overridden)"
        )
    if parts:
        selects.append(f"SELECT * FROM read_parquet({_url_list(store, parts)}, {hive})")
    if not selects:
        raise duckdb.IOException(f"{store.url}: no tile files (the manifest lists none)")
    con.execute(f"CREATE TEMP VIEW {name} AS {' UNION ALL BY NAME '.join(selects)}")


def read_slide_tiles(store: Store, slide_id: str) -> pa.Table | None:
    """One slide's tile table (no ``slide_id`` column, as stage 1 writes it) from whichever
    layout holds it, or None. A compacted slide costs one listing of its (missing) partition
    folder, the manifest, the bucket file's footer and the row groups that can hold it."""
    folder = layout.tiles_partition(slide_id)
    store.fs.invalidate_cache(store.path(folder))  # a long-lived reader sees re-runs
    # names inside the folder only: an object store may list an emptied folder as itself
    listed = {k[len(folder) + 1 :] for k in store.list(folder) if k.startswith(folder + "/")}
    parts = sorted(n for n in listed if n.startswith("part-") and n.endswith(".parquet"))
    if parts:
        tables = [store.read_parquet(f"{folder}/{name}") for name in parts]
        return (
            tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")
        )
    if any(not layout.is_temporary(n) for n in listed):
        return None  # the `_removed` marker: re-run since compaction, no tiles now
    manifest = read_manifest(store)
    if manifest is None:
        return None
    entry = manifest["files"].get(str(bucket_of(slide_id, int(manifest["n_buckets"]))))
    if entry is None or not entry["slide_min"] <= slide_id <= entry["slide_max"]:
        return None
    with store.fs.open(store.path(entry["key"]), "rb") as fh:
        table = _rows_of(pq.ParquetFile(fh), slide_id)
    if table is None or table.num_rows == 0:
        return None
    return table.drop_columns(["slide_id"]).replace_schema_metadata(None)


def _rows_of(file: pq.ParquetFile, slide_id: str) -> pa.Table | None:
    """The rows of ``slide_id`` from the row groups whose statistics may hold it."""
    meta = file.metadata
    column = file.schema_arrow.get_field_index("slide_id")
    groups = []
    for i in range(meta.num_row_groups):
        stats = meta.row_group(i).column(column).statistics
        if stats is None or not stats.has_min_max or stats.min <= slide_id <= stats.max:
            groups.append(i)
    if not groups:
        return None
    table = file.read_row_groups(groups, use_threads=False)
    return table.filter(pc.equal(table.column("slide_id"), slide_id))


def mark_removed(store: Store, slide_id: str) -> None:
    """After a slide's partition was removed: if compacted rows of it may exist, write the
    ``_removed`` marker so that they no longer count (a failed re-run leaves no tiles)."""
    if store.exists(layout.TILES_MANIFEST):
        store.write_bytes(layout.tiles_removed_key(slide_id), b"")


def _url_list(store: Store, keys: list[str]) -> str:
    return "[" + ", ".join(_quote(store.full_url(k)) for k in keys) + "]"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"

"""``wsidist compact``: the per-slide tile partitions rewritten into a few bucket files.

Each slide goes to bucket :func:`~wsidist.runtime.tiletable.bucket_of` (its id's hash); a
bucket file holds its slides' rows sorted by ``slide_id`` (a column), in row groups of
:data:`ROW_GROUP_ROWS` whose min/max statistics let readers skip other slides, its columns
encoded as stage 1 encodes them (:func:`~wsidist.runtime.tiletable.tile_parquet_options`).
DuckDB sorts the rows (it spills to disk, so memory stays within its limit) and streams them
to the Parquet writer, bucket by bucket.

Crash-safe in four steps, each leaving a readable output:

1. write the new bucket files under a new generation folder (unreferenced until step 2);
2. replace ``tiles/_manifest.json`` (one atomic write): readers switch to the new files;
   the partitions compacted into them still exist and still win, so no slide is doubled;
3. remove the compacted partitions that have not changed since they were listed (a slide
   re-run meanwhile keeps its new partition, which wins);
4. remove bucket files no manifest refers to (crashed runs, and the files the previous
   compaction replaced: those are kept one compaction longer for readers mid-query).

Incremental: with the same bucket count, only buckets holding a slide re-run since the last
compaction are rewritten. Run one compaction of an output at a time.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
import uuid
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from wsidist import layout
from wsidist.errors import WsidistError
from wsidist.io.storage import Store
from wsidist.runtime.tiletable import (
    MANIFEST_VERSION,
    LiveFiles,
    bucket_of,
    bucket_sql,
    live_files,
    read_manifest,
    tile_parquet_options,
)

ROW_GROUP_ROWS = 65_536
BUCKET_BYTES = 256 * 2**20  # target size of one bucket file (from the partitions' sizes)


@dataclass(frozen=True)
class Compaction:
    """What one compaction did."""

    n_buckets: int
    buckets_written: int
    slides_compacted: int  # partitions (and markers) folded into bucket files
    rows: int  # rows in all bucket files
    files_removed: int


def compact_tiles(
    store: Store, *, buckets: int | None = None, memory_limit: str = "2GB"
) -> Compaction:
    """Compact ``store``'s tile table (see the module docstring); returns what it did."""
    if buckets is not None and buckets < 1:
        raise WsidistError(f"buckets must be ≥ 1, got {buckets}")
    old = read_manifest(store)
    if old is None and store.exists(layout.TILES_MANIFEST):
        raise WsidistError(f"{store.full_url(layout.TILES_MANIFEST)}: unreadable manifest")
    live = live_files(store)
    if old is None and not live.parts:
        raise WsidistError(f"{store.url}: no tile tables under tiles/ (run `wsidist score`)")
    n_buckets = buckets or (int(old["n_buckets"]) if old else _estimate_buckets(store, live))
    same = old is not None and int(old["n_buckets"]) == n_buckets
    touched = {bucket_of(s, n_buckets) for s in live.slide_ids}
    todo = sorted(touched) if same else list(range(n_buckets))
    generation = f"g{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
    files = {b: e for b, e in (old["files"].items() if same else ()) if int(b) not in todo}
    files |= _write_buckets(store, old, live, n_buckets, todo, generation, memory_limit)
    replaced = [e["key"] for b, e in (old["files"] if old else {}).items() if files.get(b) != e]
    manifest = {
        "version": MANIFEST_VERSION,
        "generation": generation,
        "n_buckets": n_buckets,
        "files": dict(sorted(files.items(), key=lambda kv: int(kv[0]))),
        "previous": replaced,  # removed by the next compaction
    }
    store.write_json(layout.TILES_MANIFEST, manifest)  # the swap
    removed = remove_compacted_partitions(store, live)
    removed += remove_unreferenced(store, manifest)
    return Compaction(
        n_buckets=n_buckets,
        buckets_written=len(todo),
        slides_compacted=len(live.slide_ids),
        rows=sum(int(e["rows"]) for e in files.values()),
        files_removed=removed,
    )


def _estimate_buckets(store: Store, live: LiveFiles) -> int:
    fs = store.fs
    keys = [store.path(k) for keys in live.parts.values() for k in keys]
    sizes = [fs.info(p).get("size") or 0 for p in keys[:: max(1, len(keys) // 200)]]
    total = (sum(sizes) / max(1, len(sizes))) * len(keys)
    return max(1, math.ceil(total / BUCKET_BYTES))


def _write_buckets(
    store: Store,
    old: dict | None,
    live: LiveFiles,
    n_buckets: int,
    todo: list[int],
    generation: str,
    memory_limit: str,
) -> dict[str, dict]:
    """Write the buckets in ``todo``; returns ``str(bucket) -> manifest entry`` (non-empty)."""
    by_bucket: dict[int, list[str]] = {}
    for sid, keys in live.parts.items():
        by_bucket.setdefault(bucket_of(sid, n_buckets), []).extend(sorted(keys))
    same = old is not None and int(old["n_buckets"]) == n_buckets
    old_files = old["files"] if old else {}
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    written: dict[str, dict] = {}
    try:
        con.execute("SET autoload_known_extensions = false")
        con.execute(f"SET memory_limit = '{memory_limit}'")
        if not store.is_local:
            con.register_filesystem(store.fs)
        overridden = sorted(live.slide_ids)
        con.register("overridden", pa.table({"slide_id": pa.array(overridden, pa.string())}))
        with tempfile.TemporaryDirectory(prefix="wsidist-compact-") as tmp:
            for b in todo:
                sources = [old_files[str(b)]["key"]] if same and str(b) in old_files else []
                if not same:
                    sources = [e["key"] for e in old_files.values()]
                entry = _write_bucket(
                    con, store, b, n_buckets, sources, by_bucket.get(b, []), generation, tmp
                )
                if entry is not None:
                    written[str(b)] = entry
    finally:
        con.close()
    return written


def _write_bucket(
    con: duckdb.DuckDBPyConnection,
    store: Store,
    bucket: int,
    n_buckets: int,
    compacted: list[str],
    parts: list[str],
    generation: str,
    tmp: str,
) -> dict | None:
    selects = []
    if compacted:
        selects.append(
            f"SELECT * FROM read_parquet({_urls(store, compacted)}, union_by_name = true) "
            f"WHERE {bucket_sql(n_buckets)} = {bucket} "
            "AND slide_id NOT IN (SELECT slide_id FROM overridden)"
        )
    if parts:
        selects.append(
            f"SELECT * FROM read_parquet({_urls(store, parts)}, hive_partitioning = true, "
            "union_by_name = true, hive_types = {'slide_id': VARCHAR})"
        )
    if not selects:
        return None
    local = os.path.join(tmp, f"bucket-{bucket:05d}.parquet")
    rows = " UNION ALL BY NAME ".join(selects)
    query = f"SELECT slide_id, * EXCLUDE (slide_id) FROM ({rows}) ORDER BY slide_id, row, col"
    _write_row_groups(con.sql(query).to_arrow_reader(ROW_GROUP_ROWS), local, ROW_GROUP_ROWS)
    n_rows, n_slides, lo, hi = con.execute(
        f"SELECT count(*), count(DISTINCT slide_id), min(slide_id), max(slide_id) "
        f"FROM read_parquet('{local}')"
    ).fetchall()[0]
    if not n_rows:
        os.remove(local)
        return None
    key = layout.compacted_key(generation, bucket)
    store.put_file(local, key)
    os.remove(local)
    return {"key": key, "rows": n_rows, "slides": n_slides, "slide_min": lo, "slide_max": hi}


def _write_row_groups(reader: pa.RecordBatchReader, path: str, rows_per_group: int) -> None:
    """``reader``'s rows as a tile table at ``path``, in row groups of ``rows_per_group`` (the
    last one shorter), holding at most one group's batches in memory."""
    options = tile_parquet_options(reader.schema)
    with pq.ParquetWriter(path, reader.schema, **options) as writer:
        pending: list[pa.RecordBatch] = []
        held = 0
        for batch in reader:
            pending.append(batch)
            held += batch.num_rows
            while held >= rows_per_group:
                table = pa.Table.from_batches(pending, reader.schema)
                writer.write_table(table.slice(0, rows_per_group), row_group_size=rows_per_group)
                rest = table.slice(rows_per_group)
                pending, held = rest.to_batches(), rest.num_rows
        if held:
            writer.write_table(pa.Table.from_batches(pending, reader.schema))


def remove_compacted_partitions(store: Store, compacted: LiveFiles) -> int:
    """Step 3: remove the listed partition files still as they were listed; returns how many."""
    now = live_files(store)
    removed = 0
    for before, after in ((compacted.parts, now.parts), (compacted.markers, now.markers)):
        for sid, keys in before.items():
            for key, modified in keys.items():
                if after.get(sid, {}).get(key) == modified:
                    store.remove(key)
                    removed += 1
    if store.is_local:  # empty partition folders (object stores have none)
        for sid in compacted.slide_ids:
            with contextlib.suppress(OSError):
                os.rmdir(store.path(layout.tiles_partition(sid)))
    return removed


def remove_unreferenced(store: Store, manifest: dict) -> int:
    """Step 4: remove the compacted files neither ``manifest`` nor its ``previous`` names."""
    keep = {e["key"] for e in manifest["files"].values()}
    keep |= set(manifest.get("previous") or [])
    removed = 0
    for key, _, is_dir in store.find(layout.COMPACTED_DIR):
        if not is_dir and key not in keep and not layout.is_temporary(key.rsplit("/", 1)[-1]):
            store.remove(key)
            removed += 1
    if store.is_local:
        for key, _, is_dir in reversed(store.find(layout.COMPACTED_DIR)):
            if is_dir:
                with contextlib.suppress(OSError):
                    os.rmdir(store.path(key))
    return removed


def _urls(store: Store, keys: list[str]) -> str:
    return "[" + ", ".join("'" + store.full_url(k).replace("'", "''") + "'" for k in keys) + "]"

"""wsidist compact: the tile partitions rewritten into bucket files, on a real stage-1 output.

Every row is kept exactly once (DuckDB counts before and after), `select` and the per-slide
readers give the same answers on both layouts, a slide re-run after compaction wins over its
compacted rows (a failed re-run leaves no tiles), and a compaction that crashes before or
after its manifest swap leaves an output that reads the same.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wsidist import layout
from wsidist.demo.synth import SynthSpec, write_synthetic_slide
from wsidist.io.storage import Store
from wsidist.query.select import select
from wsidist.report.tables import class_counts
from wsidist.runtime import compact as compact_mod
from wsidist.runtime.compact import compact_tiles
from wsidist.runtime.tiletable import bucket_of, read_manifest, read_slide_tiles
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.driver import run_stage1

CONFIG = Stage1Config(scale=16)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Three generated slides and two copies under other names (five ids)."""
    folder = tmp_path_factory.mktemp("compact-in")
    for seed in (1, 2, 3):
        spec = SynthSpec(width=1024, height=768, seed=seed, n_blobs=2, n_debris=5)
        write_synthetic_slide(folder / f"s{seed}.svs", spec)
    for copy in ("c4", "c5"):
        shutil.copyfile(folder / "s1.svs", folder / f"{copy}.svs")
    return folder


@pytest.fixture(scope="module")
def base(inputs, tmp_path_factory, client) -> Path:
    """Stage 1 on the five slides, once; tests compact copies of it."""
    out = tmp_path_factory.mktemp("compact-out") / "out"
    table = run_stage1([str(inputs)], str(out), CONFIG, client=client)
    assert table.column("status").to_pylist() == ["ok"] * 5
    return out


def _copy(base: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(base, out)
    return out


def _fresh(inputs: Path, tmp_path: Path, client) -> tuple[Path, Path]:
    """Inputs of its own (a test changes them) and their stage-1 output."""
    folder, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(inputs, folder)
    run_stage1([str(folder)], str(out), CONFIG, client=client)
    return folder, out


def hive_counts(out: Path) -> dict[str, int]:
    """Rows per slide of the partitioned layout, read by DuckDB's own hive glob."""
    rows = duckdb.sql(
        f"SELECT slide_id, count(*) FROM read_parquet('{out}/tiles/*/part-*.parquet', "
        "hive_partitioning = true) GROUP BY slide_id"
    ).fetchall()
    return dict(rows)


def bucket_counts(out: Path) -> dict[str, int]:
    """Rows per slide of the bucket files the manifest lists, read by DuckDB directly."""
    manifest = read_manifest(Store(str(out)))
    files = [str(out / e["key"]) for e in manifest["files"].values()]
    rows = duckdb.sql(
        f"SELECT slide_id, count(*) FROM read_parquet({files}) GROUP BY slide_id"
    ).fetchall()
    return dict(rows)


def _sorted(table: pa.Table) -> list[dict]:
    return table.sort_by([("row", "ascending"), ("col", "ascending")]).to_pylist()


def test_compaction_keeps_every_row_once_and_reads_the_same(base, tmp_path):
    out = _copy(base, tmp_path)
    store = Store(str(out))
    before = hive_counts(out)
    assert len(before) == 5 and all(n > 0 for n in before.values())
    top = select(str(out), top=3)
    where = select(str(out), where="tissue_frac > 0.2 AND slide_tissue_frac > 0")
    tiles = {sid: read_slide_tiles(store, sid) for sid in before}
    counts = class_counts(store, list(before))

    done = compact_tiles(store, buckets=2)

    assert (done.n_buckets, done.slides_compacted, done.rows) == (2, 5, sum(before.values()))
    assert bucket_counts(out) == before  # every row exactly once
    assert hive_counts_or_none(out) is None  # the partitions are gone
    manifest = read_manifest(store)
    for b, entry in manifest["files"].items():
        meta = pq.read_metadata(out / entry["key"])
        names = [meta.schema.column(i).name for i in range(meta.num_columns)]
        stats = meta.row_group(0).column(names.index("slide_id")).statistics
        assert stats.has_min_max and stats.min == entry["slide_min"]
        ids = pq.read_table(out / entry["key"], columns=["slide_id"])["slide_id"].to_pylist()
        assert ids == sorted(ids) and {bucket_of(s, 2) for s in ids} == {int(b)}
    assert select(str(out), top=3).equals(top)
    assert select(str(out), where="tissue_frac > 0.2 AND slide_tissue_frac > 0").equals(where)
    for sid, table in tiles.items():
        assert _sorted(read_slide_tiles(store, sid)) == _sorted(table)
    assert class_counts(store, list(before)).sort_by("slide_id").equals(counts.sort_by("slide_id"))
    assert read_slide_tiles(store, "not-a-slide") is None


def hive_counts_or_none(out: Path) -> dict[str, int] | None:
    try:
        return hive_counts(out)
    except duckdb.IOException:
        return None  # no partition left


def test_a_rerun_after_compaction_wins_and_compacts_again(base, inputs, tmp_path, client):
    folder, out = _fresh(inputs, tmp_path, client)
    store = Store(str(out))
    compact_tiles(store, buckets=3)
    # s2 changes (another slide under the same name): stage 1 reruns it alone
    write_synthetic_slide(folder / "s2.svs", SynthSpec(width=1280, height=768, seed=9, n_blobs=3))
    table = run_stage1([str(folder)], str(out), CONFIG, client=client)
    rows = {r["slide_id"]: r for r in table.to_pylist()}
    assert [s for s, r in rows.items() if not r["skipped"]] == ["s2"]
    fresh = pq.read_table(out / layout.tiles_key("s2"))
    got = select(str(out))
    per_slide = dict(
        duckdb.sql("SELECT slide_id, count(*) FROM got GROUP BY slide_id").fetchall()
    )  # fmt: skip
    assert per_slide == {s: r["n_tiles"] for s, r in rows.items()}  # no stale or doubled rows
    assert per_slide["s2"] == fresh.num_rows != bucket_counts(out)["s2"]
    assert _sorted(read_slide_tiles(store, "s2")) == _sorted(fresh)

    again = compact_tiles(store)  # the manifest's bucket count; only s2's bucket is rewritten
    assert (again.n_buckets, again.buckets_written, again.slides_compacted) == (3, 1, 1)
    assert not (out / layout.tiles_partition("s2")).exists()
    assert bucket_counts(out) == {s: r["n_tiles"] for s, r in rows.items()}
    assert select(str(out)).equals(got)


def test_a_failed_rerun_leaves_no_compacted_tiles(base, inputs, tmp_path, client):
    folder, out = _fresh(inputs, tmp_path, client)
    store = Store(str(out))
    compact_tiles(store, buckets=2)
    (folder / "s3.svs").write_bytes(b"II*\x00 not a slide any more" * 10)
    table = run_stage1([str(folder)], str(out), CONFIG, client=client)
    assert {r["slide_id"]: r["status"] for r in table.to_pylist()}["s3"] == "failed"
    assert (out / layout.tiles_removed_key("s3")).exists()
    assert read_slide_tiles(store, "s3") is None
    assert "s3" not in set(select(str(out))["slide_id"].to_pylist())
    assert "s3" not in set(class_counts(store, ["s3"])["slide_id"].to_pylist())
    compact_tiles(store)
    assert "s3" not in bucket_counts(out) and not (out / layout.tiles_partition("s3")).exists()
    assert read_slide_tiles(store, "s3") is None


def test_a_crash_before_or_after_the_manifest_swap_reads_the_same(base, tmp_path, monkeypatch):
    out = _copy(base, tmp_path)
    store = Store(str(out))
    want = select(str(out), top=4)
    counts = hive_counts(out)
    real_write_json = Store.write_json

    def crash_on_manifest(self, key, document):
        if key == layout.TILES_MANIFEST:
            raise OSError("killed before the swap")
        return real_write_json(self, key, document)

    with monkeypatch.context() as mp:
        mp.setattr(Store, "write_json", crash_on_manifest)
        with pytest.raises(OSError, match="before the swap"):
            compact_tiles(store, buckets=2)
    orphans = list((out / layout.COMPACTED_DIR).rglob("*.parquet"))
    assert orphans and read_manifest(store) is None
    assert select(str(out), top=4).equals(want) and hive_counts(out) == counts

    def crash_after_swap(*args):
        raise OSError("killed after the swap")

    with monkeypatch.context() as mp:
        mp.setattr(compact_mod, "remove_compacted_partitions", crash_after_swap)
        with pytest.raises(OSError, match="after the swap"):
            compact_tiles(store, buckets=2)
    # both layouts hold every slide now: the partitions win, nothing is doubled
    assert hive_counts(out) == counts and bucket_counts(out) == counts
    assert select(str(out), top=4).equals(want)

    compact_tiles(store)  # a clean run finishes the job and removes the crashed run's files
    assert hive_counts_or_none(out) is None and bucket_counts(out) == counts
    listed = {str(out / e["key"]) for e in read_manifest(store)["files"].values()}
    kept = {str(p) for p in (out / layout.COMPACTED_DIR).rglob("*.parquet")}
    assert not any(str(o) in kept for o in orphans) and listed <= kept
    assert select(str(out), top=4).equals(want)


def test_compaction_on_s3(base, s3, s3_bucket):
    local = select(str(base), top=3)
    url = f"{s3_bucket}/out"
    fs = s3.filesystem()
    fs.put(str(base) + "/", url.removeprefix("s3://") + "/", recursive=True)
    store = Store(url)
    done = compact_tiles(store, buckets=2)
    assert done.rows == sum(hive_counts(base).values())
    assert not [k for k in fs.find(url) if "/slide_id=" in k]
    assert select(url, top=3).equals(local)
    for sid in hive_counts(base):  # an emptied folder on the object store does not count
        assert _sorted(read_slide_tiles(store, sid)) == _sorted(
            pq.read_table(base / layout.tiles_key(sid))
        )


def test_the_compact_command(base, tmp_path):
    out = _copy(base, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    run = [sys.executable, "-m", "wsidist.cli", "compact", str(out)]
    bad = subprocess.run([*run, "--buckets", "0"], capture_output=True, text=True, env=env)
    assert bad.returncode != 0 and "buckets must be ≥ 1" in _said(bad)
    assert "Traceback" not in bad.stdout + bad.stderr
    good = subprocess.run([*run, "--buckets", "2"], capture_output=True, text=True, env=env)
    assert good.returncode == 0, good.stdout + good.stderr
    said = _said(good)
    assert "2 bucket(s), 2 written" in said and "5 slide partition(s)" in said
    assert bucket_counts(out) == hive_counts(base)
    empty = subprocess.run(
        [*run[:-1], str(tmp_path / "nothing")], capture_output=True, text=True, env=env
    )
    assert empty.returncode != 0 and "no tile tables under tiles/" in _said(empty)


def _said(done: subprocess.CompletedProcess) -> str:
    """What a command printed, its lines joined (the console wraps them)."""
    return " ".join((done.stdout + done.stderr).split())


def column_encodings(files: list[Path]) -> dict[str, set[tuple[tuple[str, ...], str]]]:
    """Per column: the (encodings, compression) of its chunks in ``files``, as written."""
    found: dict[str, set[tuple[tuple[str, ...], str]]] = {}
    for path in files:
        meta = pq.read_metadata(path)
        for g in range(meta.num_row_groups):
            for i in range(meta.num_columns):
                chunk = meta.row_group(g).column(i)
                entry = (tuple(sorted(chunk.encodings)), chunk.compression)
                found.setdefault(chunk.path_in_schema, set()).add(entry)
    return found


def test_compacted_files_encode_their_columns_as_stage1_does(base, tmp_path, monkeypatch):
    out = _copy(base, tmp_path)
    parts = sorted(out.glob("tiles/*/part-*.parquet"))
    written = column_encodings(parts)
    assert {c for e in written.values() for _, c in e} == {"ZSTD"}
    assert any("DELTA_BINARY_PACKED" in enc for enc, _ in written["row"])
    assert any("RLE_DICTIONARY" in enc for enc, _ in written["tissue_class"])
    assert not any("RLE_DICTIONARY" in enc for enc, _ in written["score"])
    hive = "hive_partitioning = true, hive_types = {'slide_id': VARCHAR}"
    glob = f"'{out}/tiles/*/part-*.parquet'"
    columns = sorted(duckdb.sql(f"SELECT * FROM read_parquet({glob}, {hive}) LIMIT 0").columns)
    order = ", ".join(f'"{c}"' for c in columns)
    rows = duckdb.sql(
        f"SELECT {order} FROM read_parquet({glob}, {hive}) ORDER BY slide_id, row, col"
    ).fetchall()
    assert len(rows) > 2
    monkeypatch.setattr(compact_mod, "ROW_GROUP_ROWS", 2)  # several groups per bucket

    compact_tiles(Store(str(out)), buckets=2)

    manifest = read_manifest(Store(str(out)))
    buckets = [out / e["key"] for e in manifest["files"].values()]
    compacted = column_encodings(buckets)
    assert compacted.pop("slide_id") == written["tissue_class"]  # text: a dictionary
    assert compacted == written
    groups = []
    for path in buckets:
        meta = pq.read_metadata(path)
        groups.append([meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
    assert all(set(sizes[:-1]) <= {2} and sizes[-1] in (1, 2) for sizes in groups)
    assert max(len(sizes) for sizes in groups) > 1 and sum(map(sum, groups)) == len(rows)
    files = "[" + ", ".join(f"'{p}'" for p in buckets) + "]"
    again = duckdb.sql(
        f"SELECT {order} FROM read_parquet({files}) ORDER BY slide_id, row, col"
    ).fetchall()
    assert again == rows

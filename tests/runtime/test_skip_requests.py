"""What a rerun costs in storage requests, and the job table's status versions.

A full-skip rerun on a real S3 server (SeaweedFS) makes no request per slide: the status
rows come from the job table's ``status_version`` column and the sources' identities from one
listing of their folder (counted at s3fs's one request function). The status versions live in
a column, not the Parquet footer, so the footer does not grow with the slides; tables written
with the old footer map are still read.
"""

from __future__ import annotations

import collections
import json

import pyarrow.parquet as pq
import s3fs
from distributed import Client, LocalCluster

from wsidist import layout
from wsidist.demo.synth import SynthSpec, write_synthetic_slide
from wsidist.io.storage import Store
from wsidist.runtime import results
from wsidist.runtime.results import stored_rows, write_job_table
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.driver import SLIDES_SCHEMA, run_stage1

N_SLIDES = 12


def _count_requests(monkeypatch) -> collections.Counter:
    """``(method, key)`` of every S3 request s3fs makes in this process from now on."""
    counts: collections.Counter = collections.Counter()
    real = s3fs.S3FileSystem._call_s3

    async def counted(self, method, *args, **kwargs):
        counts[method, kwargs.get("Key") or kwargs.get("Prefix") or ""] += 1
        return await real(self, method, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", counted)
    return counts


def test_a_full_skip_rerun_on_s3_makes_no_request_per_slide(s3, s3_bucket, tmp_path, monkeypatch):
    fs = s3.filesystem()
    bucket = s3_bucket.removeprefix("s3://")
    local = tmp_path / "s.svs"
    write_synthetic_slide(local, SynthSpec(width=768, height=512, seed=4, n_blobs=1, n_debris=3))
    for i in range(N_SLIDES):
        fs.put_file(str(local), f"{bucket}/in/s{i:02d}.svs")
    out, config = f"{s3_bucket}/out", Stage1Config(scale=16)
    with (
        LocalCluster(n_workers=1, threads_per_worker=2, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        first = run_stage1([f"{s3_bucket}/in"], out, config, client=client)
        assert first.column("status").to_pylist() == ["ok"] * N_SLIDES
        counts = _count_requests(monkeypatch)
        again = run_stage1([f"{s3_bucket}/in"], out, config, client=client)
    assert again.column("skipped").to_pylist() == [True] * N_SLIDES
    keep = ("slide_id", "n_tiles", "source_version", "finished_at")
    assert [{k: r[k] for k in keep} for r in again.to_pylist()] == [
        {k: r[k] for k in keep} for r in first.to_pylist()
    ]
    per_slide = [
        (m, k) for m, k in counts if m in ("head_object", "get_object") and per_slide_key(k)
    ]
    assert per_slide == [], per_slide  # was one status GET and one source HEAD per slide
    # a changed status file is the one status file read
    key = layout.status_key("s03")
    fs.pipe_file(f"{bucket}/out/{key}", fs.cat_file(f"{bucket}/out/{key}") + b" ")
    counts.clear()
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        third = run_stage1([f"{s3_bucket}/in"], out, config, client=client)
    assert third.column("skipped").to_pylist() == [True] * N_SLIDES
    status_reads = [k for m, k in counts if m == "get_object" and k.startswith("out/status/")]
    assert status_reads == [f"out/{key}"]


def per_slide_key(key: str) -> bool:
    return key.startswith(("in/s", "out/status/"))


def _rows(n: int) -> list[dict]:
    return [
        {
            "slide_id": f"slide-{i:06d}",
            "url": f"/data/slide-{i:06d}.svs",
            "status": "ok",
            "n_tiles": i,
            "config_hash": "c0ffee",
            "source_version": f"size={i}|mtime_ns=1",
            "finished_at": "2026-12-01T00:00:00+00:00",
        }
        for i in range(n)
    ]


def _build(tmp_path, n: int) -> Store:
    store = Store(str(tmp_path / f"out{n}"))
    for row in _rows(n):
        store.write_json(layout.status_key(row["slide_id"]), row)
    write_job_table(store, layout.SLIDES_TABLE, [], SLIDES_SCHEMA, status_dir=layout.STATUS_DIR)
    return store


def test_status_versions_are_a_column_and_the_footer_stays_small(tmp_path, monkeypatch):
    small, big = _build(tmp_path, 10), _build(tmp_path, 400)
    footers = []
    for store in (small, big):
        path = store.path(layout.SLIDES_TABLE)
        meta = pq.read_metadata(path).metadata
        assert b"wsidist.status_versions" not in meta
        footers.append(sum(len(k) + len(v) for k, v in meta.items()))
        table = pq.read_table(path)
        versions = store.signatures(layout.STATUS_DIR, layout.STATUS_SUFFIX)
        assert dict(
            zip(
                [layout.status_key(s) for s in table.column("slide_id").to_pylist()],
                table.column(layout.STATUS_VERSION_COLUMN).to_pylist(),
                strict=True,
            )
        ) == versions  # fmt: skip
    assert footers[0] == footers[1]  # the key-value footer does not grow with the slides

    read: list[str] = []
    real_read_many = Store.read_many

    def counted(self, keys):
        keys = list(keys)
        read.extend(keys)
        return real_read_many(self, keys)

    monkeypatch.setattr(Store, "read_many", counted)
    changed = {**_rows(400)[7], "n_tiles": 777}
    big.write_json(layout.status_key(changed["slide_id"]), changed)
    table = write_job_table(
        big, layout.SLIDES_TABLE, [], SLIDES_SCHEMA, status_dir=layout.STATUS_DIR
    )  # fmt: skip
    assert read == [layout.status_key(changed["slide_id"])]  # one status file read, not 400
    assert table.column("n_tiles").to_pylist()[7] == 777
    assert layout.STATUS_VERSION_COLUMN not in table.column_names  # the returned table


def test_a_table_with_the_old_footer_map_is_still_read(tmp_path):
    store = _build(tmp_path, 5)
    path = store.path(layout.SLIDES_TABLE)
    table = pq.read_table(path)
    versions = table.column(layout.STATUS_VERSION_COLUMN).to_pylist()
    ids = table.column("slide_id").to_pylist()
    old = {layout.status_key(s): (v, s) for s, v in zip(ids, versions, strict=True)}
    meta = {**table.schema.metadata, results._VERSIONS_META.encode(): json.dumps(old).encode()}
    pq.write_table(
        table.drop_columns([layout.STATUS_VERSION_COLUMN]).replace_schema_metadata(meta), path
    )
    rows, cache = stored_rows(store, layout.SLIDES_TABLE, layout.STATUS_DIR)
    assert len(rows) == 5 and {k: v for k, (v, _) in cache.items()} == {
        k: v for k, (v, _) in old.items()
    }
    assert layout.STATUS_VERSION_COLUMN not in rows[0]

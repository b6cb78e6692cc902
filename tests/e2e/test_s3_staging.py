"""Slides staged from a real S3 server on 2 worker processes through a small bounded cache:
the same results as the local run, the cache within --cache-max-gb all along. The slides are
generated NDPI files, a format only OpenSlide reads, so they are staged however other formats
are read."""

from __future__ import annotations

import contextlib
import secrets
import threading
from pathlib import Path

import duckdb
import pytest

from wsidist.demo.formats import write_ndpi
from wsidist.demo.spec import SynthSpec
from wsidist.io.remote import CacheSpec
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.driver import run_stage1

N_SLIDES = 4


@pytest.fixture(scope="module")
def slides(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("staged")
    paths = []
    for i in range(N_SLIDES):
        path = folder / f"s{i}.ndpi"
        write_ndpi(path, SynthSpec(width=800, height=600, seed=300 + i, n_blobs=2))
        paths.append(path)
    return paths


def _tiles(out: str, con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.sql(
        f"SELECT * FROM read_parquet('{out}/tiles/**/*.parquet', "
        "hive_partitioning = true) ORDER BY slide_id, row, col"
    ).fetchall()


def _cache_bytes(root: Path) -> int:
    total = 0
    for p in root.rglob("*"):
        with contextlib.suppress(FileNotFoundError):  # evicted meanwhile
            total += p.stat().st_size if p.is_file() and p.parent != root else 0
    return total


def test_stage1_of_staged_slides_on_two_workers_within_the_cache_bound(
    s3, s3_client, slides, tmp_path
):
    fs = s3.filesystem()
    bucket = s3.make_bucket(f"staged-{secrets.token_hex(4)}")
    for path in slides:
        fs.put_file(str(path), f"{bucket[5:]}/in/{path.name}")
    largest = max(p.stat().st_size for p in slides)
    cache = CacheSpec(str(tmp_path / "cache"), max_gb=2.5 * largest / 1e9, wait_s=60)
    config = Stage1Config(scale=16)
    local = run_stage1([str(p) for p in slides], str(tmp_path / "local"), config, client=s3_client)
    remote_out = str(tmp_path / "remote")
    seen, done = [0], threading.Event()

    def watch() -> None:  # the cache's bytes on disk while the job runs
        while not done.wait(0.02):
            if Path(cache.dir).is_dir():
                seen.append(_cache_bytes(Path(cache.dir)))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        remote = run_stage1(
            [f"{bucket}/in/"], remote_out, config, client=s3_client, cache_dir=cache
        )
    finally:
        done.set()
        watcher.join()

    assert set(remote.column("status").to_pylist()) == {"ok"}
    assert set(remote.column("vendor").to_pylist()) == {"hamamatsu"}
    assert remote.num_rows == local.num_rows == N_SLIDES
    con = duckdb.connect()
    assert _tiles(remote_out, con) == _tiles(str(tmp_path / "local"), con)
    for path in slides:
        mask = f"masks/{path.stem}.png"
        assert (tmp_path / "remote" / mask).read_bytes() == (tmp_path / "local" / mask).read_bytes()
    # every slide was downloaded, but the cache never held more than its bound
    entries = [p for p in Path(cache.dir).iterdir() if p.is_dir()]
    assert 1 <= len(entries) < N_SLIDES
    assert _cache_bytes(Path(cache.dir)) <= cache.max_bytes
    assert 0 < max(seen) <= cache.max_bytes

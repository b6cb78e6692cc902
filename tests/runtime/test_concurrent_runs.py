"""Two runs into one output at the same time lose nothing: the per-slide status files are the
source of truth and the tables are built from them. Real LocalCluster, real slides copied into
temporary folders, a local output and one on the SeaweedFS S3 server."""

from __future__ import annotations

import shutil
import threading

import duckdb
import fsspec
import pyarrow.parquet as pq
import pytest

from tests.helpers.paths import CMU, KIDNEY
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.driver import run_stage1
from wsidist.stage2.config import RewriteConfig
from wsidist.stage2.driver import run_rewrite


def _copies(folder, src, prefix: str, n: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{prefix}{i}{src.suffix}"
        shutil.copyfile(src, path)
        paths.append(str(path))
    return paths


def _at_once(*jobs) -> list:
    """Run each ``job(on_result)`` in its own thread; each waits, after its last slide, until
    every job got there, so all of them write their tables at the same moment."""
    barrier = threading.Barrier(len(jobs), timeout=600)
    results: list = [None] * len(jobs)
    errors: list[BaseException] = []

    def run(i, job, n_slides):
        seen = [0]

        def on_result(row):
            seen[0] += 1
            if seen[0] == n_slides:
                barrier.wait()

        try:
            results[i] = job(on_result)
        except BaseException as exc:  # noqa: BLE001 — re-raised in the test thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i, *job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def _stage1_job(inputs, out, client, storage_options=None):
    def job(on_result):
        return run_stage1(
            inputs, out, Stage1Config(scale=64), client=client, on_result=on_result,
            storage_options=storage_options,
        )  # fmt: skip

    return job, len(inputs)


@pytest.fixture(scope="module")
def two_sets(real_slides_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("concurrent")
    return _copies(folder / "a", CMU, "a", 3), _copies(folder / "b", KIDNEY, "b", 3)


def test_two_concurrent_stage1_runs_into_one_local_output(client, two_sets, tmp_path):
    a, b = two_sets
    out = str(tmp_path / "out")
    _at_once(_stage1_job(a, out, client), _stage1_job(b, out, client))
    rows = duckdb.sql(f"SELECT slide_id, status FROM '{out}/slides.parquet' ORDER BY 1").fetchall()
    assert rows == [(s, "ok") for s in ("a0", "a1", "a2", "b0", "b1", "b2")]
    # and a third run of one set keeps the other's rows
    run_stage1(a, out, Stage1Config(scale=64), client=client)
    assert pq.read_table(f"{out}/slides.parquet").num_rows == 6


@pytest.mark.slow
def test_two_concurrent_stage1_runs_into_one_s3_output(client, two_sets, s3, s3_bucket):
    a, b = two_sets
    out = f"{s3_bucket}/out"
    opts = s3.storage_options
    _at_once(_stage1_job(a, out, client, opts), _stage1_job(b, out, client, opts))
    with fsspec.open(f"{out}/slides.parquet", "rb", **opts) as fh:
        table = pq.read_table(fh)
    assert sorted(table.column("slide_id").to_pylist()) == ["a0", "a1", "a2", "b0", "b1", "b2"]
    assert set(table.column("status").to_pylist()) == {"ok"}
    fs = s3.filesystem()
    assert not [p for p in fs.find(out.removeprefix("s3://")) if "_tmp-" in p]


@pytest.mark.slow
def test_two_concurrent_rewrites_into_one_output(client, two_sets, tmp_path):
    a, b = two_sets
    out = str(tmp_path / "out")

    def rewrite(inputs):
        def job(on_result):
            return run_rewrite(
                inputs[:2], out, RewriteConfig(codec="jpeg"), client=client, on_result=on_result
            )

        return job, 2

    _at_once(rewrite(a), rewrite(b))
    rows = duckdb.sql(f"SELECT slide_id, status FROM '{out}/pyramids.parquet' ORDER BY 1")
    assert rows.fetchall() == [(s, "ok") for s in ("a0", "a1", "b0", "b1")]

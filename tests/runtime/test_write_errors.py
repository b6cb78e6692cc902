"""A read-only or full output: no retries, one clear message, no temporary keys left, and a
rerun (with space again) completes and removes orphans of crashed writers. Real read-only and
full filesystems (tmpfs), a real LocalCluster, the CLI, and a read-only identity on the
SeaweedFS S3 server."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from distributed import get_task_stream

from tests.helpers.mounts import read_only_folder, remount, tmpfs
from tests.helpers.paths import CMU, KIDNEY, REPO, TCGA
from wsidist.errors import OutputError
from wsidist.io.storage import Store
from wsidist.runtime.results import prepare_output
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.driver import run_stage1
from wsidist.stage2.config import RewriteConfig
from wsidist.stage2.driver import run_rewrite

SLIDES = [str(CMU), str(KIDNEY), str(TCGA)]


def _temporary(root) -> list[str]:
    return [
        os.path.join(d, n)
        for d, dirs, files in os.walk(root)
        for n in files + dirs
        if n.startswith(("_tmp-", ".pyramid-")) or n.endswith(".part")
    ]


def _is_task(record: dict, fn: str) -> bool:
    """Whether a task-stream record ran ``fn`` on a slide (the map step of the slide bag)."""
    key = record.get("key")
    return isinstance(key, tuple) and str(key[0]).startswith(f"{fn}-")


def _cli(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "wsidist.cli", *args],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=300,
    )  # fmt: skip


def test_cli_on_a_read_only_output_fails_fast_with_one_message(real_slides_dir, tmp_path):
    with read_only_folder(tmp_path / "ro") as ro:
        t0 = time.perf_counter()
        res = _cli("score", *SLIDES, "--out", str(ro / "out"), "--workers", "1", cwd=tmp_path)
        seconds = time.perf_counter() - t0
        assert res.returncode == 2, res.stderr
        assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
        text = "".join(res.stderr.split())  # the console wraps long lines
        assert res.stderr.count("error:") == 1, res.stderr
        assert f"error:cannotwrite{ro}/out" in text, res.stderr
        assert "Read-onlyfilesystem" in text or "Permissiondenied" in text
        assert not _temporary(ro) and not os.listdir(ro)
    print(f"read-only output: failed in {seconds:.1f} s")
    assert seconds < 60  # no cluster started, no slide read, nothing retried


def test_rewrite_into_a_read_only_output_raises_before_any_work(client, real_slides_dir, tmp_path):
    with read_only_folder(tmp_path / "ro") as ro:
        with get_task_stream(client) as stream, pytest.raises(OutputError, match="cannot") as err:
            run_rewrite([str(CMU)], str(ro), RewriteConfig(), client=client)
        assert err.value.permanent
        assert not [t for t in stream.data if _is_task(t, "rewrite_slide")]


def test_a_full_output_stops_the_job_and_a_rerun_completes(client, real_slides_dir, tmp_path):
    with tmpfs(tmp_path / "small", 64) as small:
        out = small / "out"
        with get_task_stream(client) as stream:
            t0 = time.perf_counter()
            with pytest.raises(OutputError, match="No space left on device") as err:
                run_stage1(SLIDES, str(out), Stage1Config(scale=16), client=client)
            seconds = time.perf_counter() - t0
        assert err.value.permanent
        # one message, no slide tried more than once, no temporary key left behind
        runs = [t["key"] for t in stream.data if _is_task(t, "process_slide")]
        assert len(runs) == len(set(runs)) <= len(SLIDES), runs
        assert not _temporary(small)
        print(f"full output: stopped after {seconds:.1f} s, {len(runs)} slide task(s)")

        # a writer that crashed long ago left orphans; one writing right now must be left alone
        old = time.time() - 3600
        orphans = [
            out / ".wsidist-tmp" / "_tmp-0123abcd-part-0.parquet",
            out / "pyramids" / "x.tiff.part",
            out / "pyramids" / ".pyramid-k3j2" / "tiles.spool",
        ]
        remount(small, "rw,size=64m")
        for path in orphans:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"partial")
            os.utime(path, (old, old))
        os.utime(out / "pyramids" / ".pyramid-k3j2", (old, old))
        live = out / ".wsidist-tmp" / "_tmp-fffffff-live.png"
        live.parent.mkdir(parents=True, exist_ok=True)
        live.write_bytes(b"being written")

        table = run_stage1(SLIDES, str(out), Stage1Config(scale=16), client=client)
        assert set(table.column("status").to_pylist()) == {"ok"}
        assert table.num_rows == 3
        assert not any(p.exists() for p in orphans)
        assert not (out / "pyramids" / ".pyramid-k3j2").exists()
        assert live.exists()  # younger than the grace period: maybe a concurrent writer's


def test_a_read_only_s3_output_fails_fast(client, s3, s3_bucket, tmp_path, real_slides_dir):
    out = f"{s3_bucket}/out"
    with pytest.raises(OutputError) as err:
        prepare_output(Store(out, s3.read_only_storage_options))
    assert err.value.permanent and out in str(err.value)
    with get_task_stream(client) as stream, pytest.raises(OutputError, match="cannot write"):
        run_stage1([str(KIDNEY)], out, client=client, storage_options=s3.read_only_storage_options)
    assert not [t for t in stream.data if _is_task(t, "process_slide")]
    assert not s3.filesystem().find(s3_bucket.removeprefix("s3://"))

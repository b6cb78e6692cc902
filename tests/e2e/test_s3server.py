"""The S3 fixture is a real server: objects, Parquet, env-only configuration in subprocesses."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import s3fs

pytestmark = pytest.mark.slow  # needs the SeaweedFS server (about 4 s to start, once)


def test_put_list_get(s3, s3_bucket):
    fs = s3.filesystem()
    bucket = s3_bucket.removeprefix("s3://")
    fs.pipe(f"{bucket}/a/b.txt", b"hello")
    with fs.open(f"{bucket}/a/c.bin", "wb") as f:
        f.write(os.urandom(3 * 1024 * 1024))  # multi-chunk upload path
    assert sorted(fs.ls(f"{bucket}/a")) == [f"{bucket}/a/b.txt", f"{bucket}/a/c.bin"]
    assert fs.cat(f"{bucket}/a/b.txt") == b"hello"
    assert fs.size(f"{bucket}/a/c.bin") == 3 * 1024 * 1024
    assert fs.cat_file(f"{bucket}/a/c.bin", start=10, end=20).__len__() == 10
    fs.mv(f"{bucket}/a/b.txt", f"{bucket}/a/d.txt")
    assert fs.exists(f"{bucket}/a/d.txt") and not fs.exists(f"{bucket}/a/b.txt")


def test_credentials_are_enforced(s3, s3_bucket):
    bad = s3fs.S3FileSystem(
        skip_instance_cache=True, key="nope", secret="nope",
        client_kwargs={"endpoint_url": s3.endpoint_url},
    )  # fmt: skip
    with pytest.raises(PermissionError):
        bad.ls(s3_bucket)
    anon = s3fs.S3FileSystem(
        skip_instance_cache=True, anon=True, client_kwargs={"endpoint_url": s3.endpoint_url}
    )
    with pytest.raises(PermissionError):
        anon.ls(s3_bucket)


def test_parquet_roundtrip(s3, s3_bucket):
    table = pa.table({"slide_id": ["a", "a", "b"], "x": [0, 256, 0], "score": [0.1, 0.5, 0.9]})
    pq.write_table(table, f"{s3_bucket}/one.parquet", filesystem=s3.filesystem())
    assert pq.read_table(f"{s3_bucket}/one.parquet", filesystem=s3.filesystem()).equals(table)
    # hive-partitioned dataset through plain fsspec URLs (env/config only)
    fs, root = fsspec.core.url_to_fs(f"{s3_bucket}/tiles")
    pq.write_to_dataset(table, root, partition_cols=["slide_id"], filesystem=fs)
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls(root)) == ["slide_id=a", "slide_id=b"]
    back = pq.read_table(root, filesystem=fs).sort_by("score")
    assert back.column("score").to_pylist() == [0.1, 0.5, 0.9]
    assert back.column("slide_id").to_pylist() == ["a", "a", "b"]


def test_plain_fsspec_in_process(s3, s3_bucket):
    with fsspec.open(f"{s3_bucket}/plain.txt", "wb") as f:
        f.write(b"plain")
    assert fsspec.filesystem("s3").cat(f"{s3_bucket}/plain.txt") == b"plain"
    assert s3fs.S3FileSystem(skip_instance_cache=True).cat(f"{s3_bucket}/plain.txt") == b"plain"


@pytest.mark.parametrize("only", ["all", "FSSPEC_", "AWS_"])
def test_env_only_subprocess(s3, s3_bucket, only):
    bucket = s3_bucket.removeprefix("s3://")
    s3.filesystem().pipe(f"{bucket}/x.txt", b"x")
    env = dict(os.environ)
    if only != "all":  # prove each family of names works on its own
        env = {
            k: v
            for k, v in env.items()
            if not k.startswith(("AWS_", "FSSPEC_")) or k.startswith(only)
        }
    code = f"import fsspec; print(fsspec.filesystem('s3').ls({bucket!r}))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"{bucket}/x.txt" in out.stdout


def test_server_is_local_only(s3):
    for name, port in s3.ports.items():
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) == 0, name
    if shutil.which("ss") is None:
        return
    listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
    for port in s3.ports.values():
        for line in listening.splitlines():
            if line.split()[3].endswith(f":{port}"):
                assert line.split()[3] == f"127.0.0.1:{port}", line
    assert s3.startup_seconds < 60

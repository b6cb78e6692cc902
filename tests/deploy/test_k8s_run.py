"""The manifests' own commands, run for real: the scheduler, two workers and the job runners of
the rendered DaskJobs as local processes (env from the Secret, the job file from the ConfigMap,
the address the operator injects), against the SeaweedFS S3 server.

Stage 1 must write the same slides.parquet as an in-process run of the same job file; the
extract and rewrite overlays then run on the same cluster (their scheduler and worker commands
are the base's, checked in test_k8s.py). Nothing the jobs wrote or logged may contain the S3
secret key.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Any

import duckdb
import fsspec
import pyarrow.parquet as pq
import pytest
import yaml
from distributed import Client

from tests.deploy.k8s import KUBECTL, LocalPods, one, operator_pods, render
from wsidist.runtime.cluster import worker_environ

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl (kustomize) not installed")

COMPARED = ["status", "width", "height", "n_tiles", "n_tissue_tiles", "tissue_frac", "pen_frac",
            "config_hash"]  # fmt: skip


@dataclass
class K8sRun:
    pods: LocalPods
    running: dict[str, Any]
    stage1: dict[str, Any]  # the job file from the ConfigMap
    out: str
    con: duckdb.DuckDBPyConnection
    runner: Any  # the stage-1 runner's CompletedProcess


@pytest.fixture(scope="module")
def k8s_run(s3, synthetic_slides, tmp_path_factory):
    """The base DaskJob's scheduler and 2 workers running, and its stage-1 runner run."""
    base = render("base")
    objects = base + render("overlays/rewrite") + render("overlays/extract")
    stage1 = yaml.safe_load(one(base, "ConfigMap")["data"]["stage1.yaml"])
    in_bucket, out = stage1["inputs"][0].removeprefix("s3://").rstrip("/"), stage1["out"]
    fs = s3.filesystem()
    s3.make_bucket(in_bucket)
    s3.make_bucket(out.removeprefix("s3://").split("/")[0])
    for slide in synthetic_slides:
        fs.put_file(str(slide.path), f"{in_bucket}/{slide.path.name}")
    secrets = {"wsidist-s3": {"AWS_ACCESS_KEY_ID": s3.key, "AWS_SECRET_ACCESS_KEY": s3.secret,
                              "AWS_ENDPOINT_URL": s3.endpoint_url}}  # fmt: skip
    pods = LocalPods(objects, secrets, tmp_path_factory.mktemp("pods"))
    con = duckdb.connect()
    con.register_filesystem(fsspec.filesystem("s3", **s3.storage_options))
    with pods.cluster(one(base, "DaskJob"), workers=2) as running:
        done = pods.run_job(running)
        yield K8sRun(pods, running, stage1, out, con, done)


def test_workers_get_the_manifest_env(k8s_run, s3):
    with Client(k8s_run.pods.service_address(k8s_run.running)) as c:
        names = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "AWS_ACCESS_KEY_ID")
        envs = c.run(lambda: {k: os.environ.get(k) for k in names})
    assert len(envs) == 2
    for env in envs.values():
        assert env["MALLOC_TRIM_THRESHOLD_"] == str(worker_environ()["MALLOC_TRIM_THRESHOLD_"])
        assert env["MALLOC_MMAP_THRESHOLD_"] == str(worker_environ()["MALLOC_MMAP_THRESHOLD_"])
        assert env["AWS_ACCESS_KEY_ID"] == s3.key  # from the Secret


def test_stage1_daskjob_writes_the_right_slides_table(k8s_run, synthetic_slides, tmp_path):
    """The same table as the job file run in-process on the same slides, read with DuckDB."""
    from wsidist.stage1.config import build_job
    from wsidist.stage1.driver import run_stage1

    assert k8s_run.runner.returncode == 0, k8s_run.pods.log_text()[-6000:]
    got = k8s_run.con.sql(
        f"SELECT * FROM read_parquet('{k8s_run.out}/slides.parquet') ORDER BY slide_id"
    ).to_arrow_table()
    local = tmp_path / "stage1.yaml"
    inputs = [str(s.path) for s in synthetic_slides]
    local.write_text(
        yaml.safe_dump({**k8s_run.stage1, "inputs": inputs, "out": str(tmp_path / "o")})
    )
    job = build_job(local)
    with Client(k8s_run.pods.service_address(k8s_run.running)) as client:  # the same workers
        want = run_stage1(job.inputs, job.out, job.config, client=client).sort_by("slide_id")
    assert got.column("slide_id").to_pylist() == sorted(s.path.stem for s in synthetic_slides)
    assert got.column("url").to_pylist() == [
        f"{k8s_run.stage1['inputs'][0].rstrip('/')}/{s}"
        for s in sorted(s.path.name for s in synthetic_slides)
    ]
    assert set(got.column("status").to_pylist()) == {"ok"}
    for name in COMPARED:
        assert got.column(name).to_pylist() == want.column(name).to_pylist(), name


def test_extract_daskjob_writes_patches(k8s_run):
    extract = render("overlays/extract")
    done = k8s_run.pods.run_job(operator_pods(one(extract, "DaskJob")))
    assert done.returncode == 0, k8s_run.pods.log_text()[-6000:]
    env = {
        e["name"]: e.get("value")
        for e in one(extract, "DaskJob")["spec"]["job"]["spec"]["containers"][0]["env"]
    }
    patches, selection = env["WSIDIST_PATCHES"], f"{env['WSIDIST_OUT']}/selection.parquet"
    index = dict(k8s_run.con.sql(
        f"SELECT status, count(*) FROM read_parquet('{patches}/index.parquet') GROUP BY ALL"
    ).fetchall())  # fmt: skip
    ((selected,),) = k8s_run.con.sql(f"SELECT count(*) FROM read_parquet('{selection}')").fetchall()
    assert selected > 0 and index == {"written": selected}


def test_rewrite_daskjob_writes_pyramids(k8s_run):
    done = k8s_run.pods.run_job(operator_pods(one(render("overlays/rewrite"), "DaskJob")))
    assert done.returncode == 0, done.stdout[-3000:]
    rows = k8s_run.con.sql(
        f"SELECT slide_id, status, mask_source FROM read_parquet('{k8s_run.out}/pyramids.parquet')"
    ).fetchall()
    assert {r[1:] for r in rows} == {("ok", "stage1")} and len(rows) == 3


def test_no_secret_in_logs_tables_or_config(k8s_run, s3):
    """The S3 secret key is in no log (runner, scheduler, workers), no output object (tables,
    their config metadata, status files, masks), and not in the hashed config."""
    from wsidist.stage1.config import Stage1Config

    secret = s3.secret.encode()
    fs = s3.filesystem()
    assert secret not in k8s_run.pods.log_text().encode()
    keys = fs.find(k8s_run.out.removeprefix("s3://").split("/")[0])
    assert any(k.endswith("slides.parquet") for k in keys) and len(keys) > 10
    for key in keys:
        assert secret not in fs.cat_file(key), key
    table = pq.read_table(
        io.BytesIO(fs.cat_file(f"{k8s_run.out.removeprefix('s3://')}/slides.parquet"))
    )
    meta = table.schema.metadata
    config = Stage1Config.model_validate_json(meta[b"wsidist.config"])
    assert config.config_hash() == meta[b"wsidist.config_hash"].decode()
    assert secret not in config.model_dump_json().encode()

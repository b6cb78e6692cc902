"""--range-concurrency, --range-request-mb, --range-cache-mb: job configuration carried to the
workers in the job's cache spec, a bad value refused before any work, naming it."""

from __future__ import annotations

import pickle

import pytest
from typer.testing import CliRunner

from wsidist.cli.app import app
from wsidist.io.ranged import RangeSpec
from wsidist.stage1.config import build_job

RUNNER = CliRunner()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["score", "missing.svs", "--out", "OUT", "--range-concurrency", "0"], "range_concurrency"),
        (["rewrite", "missing.svs", "--out", "OUT", "--range-request-mb", "-1"], "range_request_mb"),
        (["infer", "missing.svs", "--out", "OUT", "--range-cache-mb", "0"], "range_cache_mb"),
        (["extract", "sel.parquet", "--to", "OUT", "--range-concurrency", "999"],
         "range_concurrency"),
        (["extract", "sel.parquet", "--to", "OUT", "--range-request-mb", "16",
          "--range-cache-mb", "4"], "range_cache_mb"),
    ],
)  # fmt: skip
def test_a_bad_range_setting_is_refused_first(args, named, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = RUNNER.invoke(app, args, env={"COLUMNS": "200"})
    assert res.exit_code == 2, res.output
    assert named in res.output and args[-1] in res.output
    assert not (tmp_path / "OUT").exists()


def test_the_job_carries_the_range_settings_to_its_workers(tmp_path):
    job = build_job(
        inputs=["a.svs"], out=str(tmp_path), range_concurrency=3, range_request_mb=0.5,
        range_cache_mb=4,
    )  # fmt: skip
    spec = pickle.loads(pickle.dumps(job.cache()))  # as a task ships it to a worker
    assert spec.range_reads == RangeSpec(3, 2**19, 4 * 2**20)
    assert build_job(inputs=["a.svs"], out=str(tmp_path)).cache().range_reads == RangeSpec()


def test_shown_defaults_are_the_jobs():
    from wsidist.runtime.jobconfig import JobSpec

    text = RUNNER.invoke(app, ["score", "--help"], env={"COLUMNS": "200"}).output
    job = JobSpec()
    assert f"[default: {job.range_concurrency}]" in text
    assert f"[default: {job.range_request_mb:g} MiB]" in text
    assert f"[default: {job.range_cache_mb:g} MiB]" in text

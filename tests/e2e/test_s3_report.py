"""The report of a stage-1 output on a real S3 server (SeaweedFS), written to S3 and locally."""

import json

import pytest

from wsidist.report.driver import build_report
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.driver import run_stage1


@pytest.mark.slow
@pytest.mark.long  # a report over the S3 server
def test_report_of_an_s3_output(s3, s3_bucket, synthetic_slides, tmp_path, s3_client):
    fs = s3.filesystem()
    bucket = s3_bucket.removeprefix("s3://")
    fs.put_file(str(synthetic_slides[0].path), f"{bucket}/in/synth.svs")
    out = f"{s3_bucket}/run1"
    client = s3_client  # its workers started after the S3 server: they have its environment
    run_stage1([f"{s3_bucket}/in/"], out, Stage1Config(batch=True), client=client,
               cache_dir=str(tmp_path / "cache"))  # fmt: skip
    local = build_report(out, str(tmp_path / "site"), client=client, cache_dir=str(tmp_path / "cache"),
                         storage_options=s3.storage_options)  # fmt: skip
    remote = build_report(out, client=client, cache_dir=str(tmp_path / "cache"),
                          storage_options=s3.storage_options)  # fmt: skip
    assert local.n_slides == 1 and not local.failed_pages
    page = (tmp_path / "site" / "slides" / "synth.html").read_text()
    assert "synth.svs" in page and (tmp_path / "site" / "slides" / "synth" / "classes.jpg").exists()
    extract = json.loads((tmp_path / "site" / "data" / "slides.json").read_text())
    fields = extract["fields"]
    (row,) = extract["rows"]
    assert row[fields.index("n_high")] is not None  # tile classes counted by DuckDB over s3://
    assert remote.index_url.startswith("s3://") and fs.exists(f"{bucket}/run1/report/index.html")
    assert fs.exists(f"{bucket}/run1/report/slides/synth/top/0001.jpg")

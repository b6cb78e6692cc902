"""Inputs and ids on a real S3 server: output inside the input prefix, id clashes, DICOM series
and a manifest stored in the bucket."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from wsidist.demo.dicom import pyramid, write_dicom_series
from wsidist.demo.synth import SynthSpec, write_synthetic_slide
from wsidist.errors import ConfigError
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.driver import run_stage1
from wsidist.stage2.config import RewriteConfig
from wsidist.stage2.driver import run_rewrite


@pytest.mark.slow
def test_s3_output_inside_input_ids_dicom_and_manifest(
    s3, s3_bucket, real_slides_dir, tmp_path, s3_client
):
    fs = s3.filesystem()
    bucket = s3_bucket.removeprefix("s3://")
    write_synthetic_slide(tmp_path / "s.svs", SynthSpec(width=1500, height=1100, seed=8))
    fs.put_file(str(tmp_path / "s.svs"), f"{bucket}/in/s.svs")
    rgb = np.full((600, 800, 3), 236, np.uint8)
    rgb[100:500, 150:650] = (170, 80, 150)
    local = tmp_path / "mixed"
    first = write_dicom_series(local, pyramid(rgb, 2), prefix="first")
    second = write_dicom_series(local, [np.ascontiguousarray(rgb[:300, :400])], prefix="second")
    for p in first + second:
        fs.put_file(str(p), f"{bucket}/in/mixed/{p.name}")
    fs.put_file(str(real_slides_dir / "tcga-cr-7395-01a-01-ts1.svs"), f"{bucket}/other/s.svs")
    fs.pipe_file(f"{bucket}/in/m.csv", b"url,mpp,site\ns.svs,0.5,liver\n")
    out = f"{s3_bucket}/in/out"
    cfg = Stage1Config(scale=32)
    kw = dict(client=s3_client, cache_dir=str(tmp_path / "cache"))
    table = run_stage1([f"{s3_bucket}/in"], out, cfg, manifest=f"{s3_bucket}/in/m.csv", **kw)
    rows = {r["url"]: r for r in table.to_pylist()}
    dcm_a = f"{s3_bucket}/in/mixed/first-0.dcm"
    dcm_b = f"{s3_bucket}/in/mixed/second-0.dcm"
    assert set(rows) == {f"{s3_bucket}/in/s.svs", dcm_a, dcm_b}
    assert all(r["status"] == "ok" for r in rows.values()), rows
    assert (rows[dcm_a]["width"], rows[dcm_b]["width"]) == (800, 400)
    assert rows[f"{s3_bucket}/in/s.svs"]["site"] == "liver"
    assert rows[f"{s3_bucket}/in/s.svs"]["mpp_source"] == "manifest"

    rewritten = run_rewrite([f"{s3_bucket}/in/s.svs"], out, RewriteConfig(effort=1), **kw)
    assert rewritten.column("status").to_pylist() == ["ok"]
    assert fs.exists(f"{bucket}/in/out/pyramids/s.tiff")
    # the pyramid inside the input prefix is not read back as a slide
    again = run_stage1([f"{s3_bucket}/in"], out, cfg, manifest=f"{s3_bucket}/in/m.csv", **kw)
    assert sorted(again.column("url").to_pylist()) == sorted(rows)
    assert all(again.column("skipped").to_pylist())

    # another slide with a stored slide's id: refused, naming both URLs
    with pytest.raises(ConfigError) as err:
        run_stage1([f"{s3_bucket}/other/s.svs"], out, cfg, **kw)
    assert f"{s3_bucket}/other/s.svs" in str(err.value)
    assert f"{s3_bucket}/in/s.svs" in str(err.value)
    with fs.open(f"{bucket}/in/out/slides.parquet", "rb") as fh:
        assert sorted(pq.read_table(fh).column("url").to_pylist()) == sorted(rows)

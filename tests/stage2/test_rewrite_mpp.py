"""The rewrite's µm margin on slides without mpp: a warning in the row, or the manifest's mpp."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import tifffile

from wsidist.demo.synth import SynthSpec, write_synthetic_slide
from wsidist.stage2.config import RewriteConfig
from wsidist.stage2.driver import run_rewrite


@pytest.fixture()
def no_mpp(tmp_path):
    path = tmp_path / "slides" / "nompp.svs"
    path.parent.mkdir()
    write_synthetic_slide(path, SynthSpec(width=1600, height=1200, seed=21, n_blobs=2, mpp=None))
    return path


def margin_px0(out, slide_id):
    with tifffile.TiffFile(out / "pyramids" / f"{slide_id}.tiff") as tif:
        return json.loads(tif.pages[0].description)["margin_px0"]


def test_margin_without_mpp_warns_then_manifest_mpp_is_used(client, no_mpp, tmp_path):
    out = tmp_path / "out"
    config = RewriteConfig(effort=1, margin_um=50)
    (row,) = run_rewrite([str(no_mpp)], str(out), config, client=client).to_pylist()
    assert row["status"] == "ok", row["error"]
    assert "no mpp" in row["warning"] and "50 µm" in row["warning"]
    assert margin_px0(out, "nompp") == 64
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"url,mpp,batch\n{no_mpp},0.25,b7\n")
    (row,) = run_rewrite([], str(out), config, client=client, manifest=str(manifest)).to_pylist()
    assert row["status"] == "ok" and not row["skipped"]  # the mpp changes the output
    assert row["warning"] is None and row["batch"] == "b7"
    assert margin_px0(out, "nompp") == 200  # 50 µm at 0.25 µm/px
    stored = pq.read_table(out / "pyramids.parquet").to_pylist()
    assert [(r["slide_id"], r["batch"]) for r in stored] == [("nompp", "b7")]

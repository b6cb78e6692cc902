"""The input manifest: per-slide mpp, slide_id and labels, into slides.parquet (LocalCluster)."""

from __future__ import annotations

import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wsidist.errors import ConfigError
from wsidist.runtime.manifest import read_manifest
from wsidist.runtime.tasks import plan_tasks
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.driver import run_stage1


@pytest.fixture()
def slides(real_slides_dir, tmp_path):
    folder = tmp_path / "slides"
    folder.mkdir()
    shutil.copy(real_slides_dir / "CMU-1-Small-Region.svs", folder / "cmu.svs")
    shutil.copy(real_slides_dir / "tcga-cr-7395-01a-01-ts1.svs", folder / "tcga.svs")
    return folder


def test_manifest_mpp_ids_and_labels_reach_slides_parquet(client, slides, tmp_path):
    """tcga records no mpp: the manifest's makes --tile-um work; labels become columns."""
    manifest = slides / "manifest.csv"
    manifest.write_text(
        "url,mpp,slide_id,diagnosis,stage\n"
        "tcga.svs,0.25,TCGA-CR-7395,HNSC,2\n"  # relative to the manifest's folder
        "cmu.svs,,,skin,1\n"
    )
    out = tmp_path / "out"
    table = run_stage1(
        [], str(out), Stage1Config(scale=32, tile_um=256), client=client, manifest=str(manifest)
    )
    got = {r["slide_id"]: r for r in pq.read_table(out / "slides.parquet").to_pylist()}
    assert set(got) == {"TCGA-CR-7395", "cmu"}
    tcga, cmu = got["TCGA-CR-7395"], got["cmu"]
    assert tcga["status"] == "ok", tcga["error"]
    assert tcga["mpp_x"] == 0.25 and tcga["mpp_source"] == "manifest"
    assert tcga["tile_px0"] == 1024  # 256 µm at 0.25 µm/px
    assert cmu["mpp_source"] == "slide" and cmu["tile_px0"] == round(256 / 0.499)
    assert (tcga["diagnosis"], tcga["stage"], cmu["diagnosis"]) == ("HNSC", 2, "skin")
    assert table.schema.field("stage").type == pa.int64()
    # a later run without a manifest keeps the earlier labels; a changed label is current
    manifest.write_text("url,diagnosis\ncmu.svs,melanoma\n")
    run_stage1([], str(out), Stage1Config(scale=32, tile_um=256), client=client,
               manifest=str(manifest))  # fmt: skip
    got = {r["slide_id"]: r for r in pq.read_table(out / "slides.parquet").to_pylist()}
    assert got["cmu"]["diagnosis"] == "melanoma" and got["cmu"]["skipped"]
    assert got["TCGA-CR-7395"]["diagnosis"] == "HNSC" and got["TCGA-CR-7395"]["stage"] == 2


def test_parquet_manifest_and_inputs_together(client, slides, tmp_path):
    manifest = tmp_path / "m.parquet"
    pq.write_table(pa.table({"url": [str(slides / "tcga.svs")], "mpp": [0.5]}), manifest)
    tasks = plan_tasks([str(slides)], manifest=str(manifest))
    assert [(t.slide_id, t.mpp) for t in tasks] == [("cmu", None), ("tcga", 0.5)]
    table = run_stage1(tasks, str(tmp_path / "out"), Stage1Config(scale=32), client=client)
    assert table.column("mpp_x").to_pylist() == [pytest.approx(0.499), 0.5]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("path\nx.svs\n", "no 'url' column"),
        ("url,mpp\ncmu.svs,-1\n", "row 1: mpp must be a positive"),
        ("url,mpp\ncmu.svs,abc\n", "row 1: mpp must be a positive"),
        ("url,slide_id\ncmu.svs,../up\n", "not a safe id"),
        ("url\ncmu.svs\ncmu.svs\n", "also row 1"),
        ("url\n", "lists no slides"),
        ("url,slide_id\ncmu.svs,x\ntcga.svs,X\n", "case-insensitively"),
        ("url,status\ncmu.svs,great\n", "status would replace"),
    ],
)
def test_bad_manifest_fails_before_any_work_naming_the_value(slides, tmp_path, text, named):
    manifest = slides / "bad.csv"
    manifest.write_text(text)
    with pytest.raises(ConfigError, match=named):
        run_stage1([], str(tmp_path / "out"), Stage1Config(), manifest=str(manifest))
    assert not (tmp_path / "out").exists()


def test_manifest_dcm_row_stands_for_its_series(real_slides_dir, tmp_path):
    dcm = sorted((real_slides_dir / "dicom" / "cmu-1-small-region").glob("*.dcm"))[3]
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"url\n{dcm}\n")
    (row,) = read_manifest(str(manifest))
    assert row.url == str(dcm.parent)

"""Annotations through stage 1 on a LocalCluster: tile coverage, labels, label masks, failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import duckdb
import numpy as np
import pytest

from wsidist import layout
from wsidist.demo.annotations import geojson_doc, stained_classes
from wsidist.demo.stained import StainedSpec, write_stained_slide
from wsidist.imaging.labels import decode_label_png
from wsidist.io.annotations import SlideAnnotations
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.driver import run_stage1
from wsidist.stage1.labels import label_tiles

SCALE = 16
SPEC = StainedSpec(width=2048, height=1536, seed=4)


@pytest.fixture(scope="module")
def labelled_run(tmp_path_factory, client):
    root = tmp_path_factory.mktemp("labelled")
    slides, notes = root / "slides", root / "annotations"
    slides.mkdir()
    notes.mkdir()
    truth = write_stained_slide(slides / "good.tiff", SPEC)
    write_stained_slide(slides / "plain.tiff", StainedSpec(width=1024, height=768, seed=5))
    write_stained_slide(slides / "broken.tiff", StainedSpec(width=1024, height=768, seed=6))
    doc = geojson_doc(stained_classes(SPEC), broken={"tumour": (10, 10, 50, 50)})
    (notes / "good.geojson").write_text(json.dumps(doc))
    (notes / "broken.annotations.json").write_text('{"type": "FeatureCollection", "feat')
    out = root / "out"
    config = Stage1Config(scale=SCALE, tile_size=128)
    table = run_stage1([str(slides)], str(out), config, client=client, annotations=str(notes))
    return out, truth, {r["slide_id"]: r for r in table.to_pylist()}


def _tiles(out, slide_id: str) -> list[dict]:
    glob = str(out / layout.TILE_GLOB)
    return duckdb.sql(
        f"SELECT * FROM read_parquet('{glob}', hive_partitioning = true, union_by_name = true) "
        f"WHERE slide_id = '{slide_id}'"
    ).df()


def test_tiles_carry_exact_coverage_and_the_majority_label(labelled_run):
    out, truth, rows = labelled_run
    assert rows["good"]["status"] == "ok", rows["good"]["error"]
    assert rows["good"]["annotation_classes"] == ["stroma", "tumour"]
    assert rows["good"]["annotation_repaired"] == 1
    tiles = _tiles(out, "good")
    area = (tiles["w"] * tiles["h"]).to_numpy()
    cx, cy, rx, ry = SPEC.dark
    dark_area = np.pi * rx * SPEC.width * ry * SPEC.height + 2 * 400  # + the repaired bow-tie
    assert (tiles["label_tumour"].to_numpy() * area).sum() == pytest.approx(dark_area, rel=0.01)
    # a tile wholly inside the dark ellipse, one on the glass
    centre = tiles[(tiles.x == 768) & (tiles.y == 640)].iloc[0]
    assert centre["label_tumour"] == 1.0 and centre["label"] == "tumour"
    corner = tiles[(tiles.x == 0) & (tiles.y == 1408)].iloc[0]
    assert corner["label"] == "none" and corner["label_stroma"] == 0
    expect = np.where(
        tiles["label_tumour"] >= np.maximum(tiles["label_stroma"], 1e-9), "tumour", "stroma"
    )
    uncovered = 1 - tiles["label_tumour"] - tiles["label_stroma"]
    top = np.maximum(tiles["label_tumour"], tiles["label_stroma"])
    expect = np.where((top > 0) & (top >= uncovered - 1e-6), expect, "none")
    assert (tiles["label"].to_numpy() == expect).mean() > 0.99  # float32 ties aside


def test_label_mask_agrees_with_the_generator(labelled_run):
    out, truth, _ = labelled_run
    labels, legend = decode_label_png((out / layout.labels_key("good")).read_bytes())
    assert legend == {0: "none", 1: "stroma", 2: "tumour"}
    dark = truth.dark_mask(SCALE)
    assert labels.shape == dark.shape
    iou = ((labels == 2) & dark).sum() / ((labels == 2) | dark).sum()
    assert iou >= 0.99


def test_slide_without_annotation_and_unreadable_annotation(labelled_run):
    out, _, rows = labelled_run
    plain = _tiles(out, "plain")
    assert set(plain["label"]) == {"none"} and plain["label_tumour"].isna().all()
    assert rows["plain"]["annotation_url"] is None
    assert not (out / layout.labels_key("plain")).exists()
    bad = rows["broken"]
    assert bad["status"] == "failed"
    assert "broken.annotations.json" in bad["error"] and "not JSON" in bad["error"]
    assert not (out / layout.tiles_key("broken")).exists()


def test_rerun_skips_unless_the_annotation_changed(labelled_run, client):
    out, _, _ = labelled_run
    slides = out.parent / "slides"
    notes = out.parent / "annotations"
    config = Stage1Config(scale=SCALE, tile_size=128)
    again = run_stage1([str(slides / "good.tiff")], str(out), config, client=client,
                       annotations=str(notes))  # fmt: skip
    assert {r["slide_id"]: r for r in again.to_pylist()}["good"]["skipped"]
    doc = geojson_doc({"tumour": stained_classes(SPEC)["tumour"]})
    (notes / "good.geojson").write_text(json.dumps(doc))
    changed = run_stage1([str(slides / "good.tiff")], str(out), config, client=client,
                         annotations=str(notes))  # fmt: skip
    row = {r["slide_id"]: r for r in changed.to_pylist()}["good"]
    assert not row["skipped"] and row["annotation_classes"] == ["tumour"]


def test_unannotated_tiles_get_label_none():
    import pyarrow as pa

    tiles = pa.table({"x": [0], "y": [0], "w": [10], "h": [10]})
    assert label_tiles(tiles, None).column("label").to_pylist() == ["none"]
    empty = label_tiles(tiles, SlideAnnotations({}, 0, "x"))
    assert empty.column_names == ["x", "y", "w", "h", "label"]


def _check_cmu(out, annotation) -> None:
    counts = dict(
        duckdb.sql(
            f"SELECT label, count(*) FROM read_parquet('{out / layout.TILE_GLOB}') GROUP BY 1"
        ).fetchall()
    )
    # 821 px squares at 512 and 1512 on a 256 px grid: 3 × 3 tiles each are mostly inside
    assert counts["tumor"] == 9 and counts["other"] == 9 and counts["none"] > 0
    row = duckdb.sql(f"SELECT * FROM '{out / layout.SLIDES_TABLE}'").df().iloc[0]
    assert list(row["annotation_classes"]) == ["other", "tumor"]
    assert row["annotation_url"] == str(annotation)


def _cmu_manifest(real_slides_dir, tmp_path):
    annotation = real_slides_dir / "annotations" / "123.annotation.geojson"
    if not annotation.is_file():
        pytest.skip(f"{annotation} missing")
    manifest = tmp_path / "m.csv"
    cmu = real_slides_dir / "CMU-1-Small-Region.svs"
    manifest.write_text(f"url,annotations\n{cmu},{annotation}\n")
    return manifest, annotation


def test_real_annotation_through_a_manifest(client, real_slides_dir, tmp_path):
    """The shared sample annotation of CMU-1-Small-Region (its source calls the slide
    123.svs, so neither id nor stem matches: the manifest names it)."""
    manifest, annotation = _cmu_manifest(real_slides_dir, tmp_path)
    out = tmp_path / "out"
    config = Stage1Config(tile_size=256)
    table = run_stage1([], str(out), config, client=client, manifest=str(manifest))
    assert table.column("status").to_pylist() == ["ok"]
    _check_cmu(out, annotation)


@pytest.mark.long
def test_score_cli_with_the_real_annotation(real_slides_dir, tmp_path):
    """The same through `wsidist score --manifest` on the CLI's own LocalCluster."""
    manifest, annotation = _cmu_manifest(real_slides_dir, tmp_path)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "wsidist.cli", "score", "--manifest", str(manifest),
           "--out", str(out), "--tile-size", "256", "--workers", "1"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "labels/<id>.png" in done.stdout + done.stderr
    _check_cmu(out, annotation)

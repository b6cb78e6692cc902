"""mask-from-tiles and metrics on a generated slide with a known truth, and on a real slide.

One LocalCluster runs stage 1 for the module (a generated slide; CMU-1-Small-Region when the
real slides are there); everything after reads only what stage 1 wrote.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
from PIL import Image
from shapely.geometry.polygon import orient
from typer.testing import CliRunner

from tests.helpers.paths import SLIDES
from wsidist.cli.app import app
from wsidist.demo.annotations import geojson_doc
from wsidist.demo.spec import SynthSpec
from wsidist.demo.synth import (
    DEMO_TRUTH_SCALE,
    TISSUE_LABELS,
    demo_specs,
    generate_demo_slides,
    synth_truth,
    write_synthetic_slide,
    write_truth_mask,
)
from wsidist.errors import ConfigError
from wsidist.evaluate.metrics import MetricsOptions, compare
from wsidist.evaluate.tilemask import TileMaskOptions, masks_from_tiles
from wsidist.imaging.contours import mask_polygons
from wsidist.imaging.labels import encode_label_png, rasterise_labels
from wsidist.imaging.masks import decode_mask
from wsidist.query.select import select, write_selection
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.driver import run_stage1

SID = "gen"
SCALE = 16
WIDTH, HEIGHT = 2600, 1900


@pytest.fixture(scope="module")
def generated(tmp_path_factory, client):
    """Stage 1 of one generated slide, its truth, and a selection of top tiles plus off-grid,
    overlapping boxes (not on the stage-1 grid) next to its slides.parquet."""
    folder = tmp_path_factory.mktemp("evaluate")
    spec = SynthSpec(width=WIDTH, height=HEIGHT, seed=21, n_blobs=2, pens=())
    truth = write_synthetic_slide(folder / f"{SID}.svs", spec)
    out = folder / "out"
    config = Stage1Config(scale=SCALE, tile_size=256)
    table = run_stage1([str(folder / f"{SID}.svs")], str(out), config, client=client)
    assert table["status"].to_pylist() == ["ok"]
    top = select(str(out), top=12)
    rng = np.random.default_rng(4)
    n = 10
    extra = {
        "slide_id": [SID] * n,
        "x": rng.integers(0, WIDTH - 300, n).tolist(),
        "y": rng.integers(0, HEIGHT - 300, n).tolist(),
        "w": rng.integers(200, 400, n).tolist(),
        "h": rng.integers(200, 400, n).tolist(),
    }
    boxes = pa.concat_tables([top.select(["slide_id", "x", "y", "w", "h"]),
                              pa.table(extra).cast(top.select(["slide_id", "x", "y", "w", "h"]).schema)])  # fmt: skip
    write_selection(boxes, str(out / "selection.parquet"))
    return out, truth, boxes


def _union(boxes: pa.Table) -> tuple[np.ndarray, shapely.Geometry]:
    x, y, w, h = (np.asarray(boxes[c].to_pylist()) for c in "xywh")
    naive = np.zeros((HEIGHT, WIDTH), bool)
    for bx, by, bw, bh in zip(x, y, w, h):
        naive[by : by + bh, bx : bx + bw] = True
    clip = shapely.box(0, 0, WIDTH, HEIGHT)
    return naive, shapely.union_all(shapely.box(x, y, x + w, y + h)).intersection(clip)


def _convex_corners(geom) -> int:
    n = 0
    for poly in getattr(geom, "geoms", [geom]):
        poly = orient(poly, 1.0)
        for ring in (poly.exterior, *poly.interiors):
            pts = np.asarray(ring.coords)[:-1]
            into, out = pts - np.roll(pts, 1, axis=0), np.roll(pts, -1, axis=0) - pts
            turn = into[:, 0] * out[:, 1] - into[:, 1] * out[:, 0]
            n += int(np.count_nonzero(turn > 0))  # a left turn: convex (the region is left)
    return n


def test_union_of_boxes_exact_at_scale_1(generated, tmp_path):
    out, _, boxes = generated
    table, url = masks_from_tiles(str(out / "selection.parquet"), str(tmp_path),
                                  TileMaskOptions(scale=1))  # fmt: skip
    row = table.to_pylist()[0]
    assert row["status"] == "ok" and row["n_boxes"] == len(boxes) == 22
    mask, grid = decode_mask((tmp_path / f"{SID}.png").read_bytes())
    naive, union = _union(boxes)
    assert np.array_equal(mask, naive)  # exactly the union
    assert mask.sum() == union.area
    assert grid == {"downsample": 1.0, "width0": WIDTH, "height0": HEIGHT, "slide_id": SID}
    assert url.endswith("tile-masks.parquet") and pq.read_table(url).num_rows == 1


def test_default_grid_is_the_stage1_mask_scale(generated):
    out, _, boxes = generated
    table, _ = masks_from_tiles(str(out / "selection.parquet"))  # default: OUT/tile-masks/
    assert table["downsample"].to_pylist() == [SCALE]
    mask, _ = decode_mask((out / "tile-masks" / f"{SID}.png").read_bytes())
    stage1 = np.asarray(Image.open(out / "masks" / f"{SID}.png"))
    assert mask.shape == stage1.shape
    cx = (np.arange(mask.shape[1]) + 0.5) * SCALE  # pixel centres, level-0 px
    cy = (np.arange(mask.shape[0]) + 0.5) * SCALE
    centres = np.zeros(mask.shape, bool)
    for bx, by, bw, bh in zip(*(boxes[c].to_pylist() for c in "xywh")):  # [x, x+w) half-open
        centres |= ((cy >= by) & (cy < by + bh))[:, None] & ((cx >= bx) & (cx < bx + bw))[None]
    assert np.array_equal(mask, centres)


def test_smoothing_stays_within_the_stated_tolerance(generated, tmp_path):
    out, _, _ = generated
    diameter, scale = 64, 2  # level-0 px
    sel = str(out / "selection.parquet")
    masks_from_tiles(sel, str(tmp_path / "raw"), TileMaskOptions(scale=scale))
    table, _ = masks_from_tiles(sel, str(tmp_path / "smooth"),
                                TileMaskOptions(scale=scale, smooth_px0=diameter))  # fmt: skip
    assert table["warning"].to_pylist() == [None]
    raw, _ = decode_mask((tmp_path / "raw" / f"{SID}.png").read_bytes())
    mask, _ = decode_mask((tmp_path / "smooth" / f"{SID}.png").read_bytes())
    assert not (mask & ~raw).any()  # nothing added
    removed = int((raw & ~mask).sum())
    r = diameter / scale / 2  # mask px
    corners = sum(_convex_corners(p) for p in mask_polygons(raw))
    bound = corners * ((1 - math.pi / 4) * r * r + 2 * r)  # docs/metrics.md
    print(f"smoothing removed {removed} px at {corners} convex corners (bound {bound:.0f})")
    assert 0 < removed <= bound
    assert mask.sum() / raw.sum() > 0.99


def test_bad_input_fails_clearly_and_the_rest_completes(generated, tmp_path):
    out, _, boxes = generated
    stranger = pa.table({"slide_id": ["nobody"], "x": [0], "y": [0], "w": [10], "h": [10]})
    sel = tmp_path / "sel.parquet"
    pq.write_table(pa.concat_tables([boxes, stranger.cast(boxes.schema)]), sel)
    table, _ = masks_from_tiles(str(sel), str(tmp_path / "m"), slides=str(out))
    rows = {r["slide_id"]: r for r in table.to_pylist()}
    assert rows[SID]["status"] == "ok"
    assert rows["nobody"]["status"] == "failed" and "slides.parquet" in rows["nobody"]["error"]
    with pytest.raises(ConfigError, match="--scale or --mpp"):
        TileMaskOptions(scale=2, mpp=1)
    table, _ = masks_from_tiles(str(out / "selection.parquet"), str(tmp_path / "mpp"),
                                TileMaskOptions(mpp=4.0))  # fmt: skip
    assert table["downsample"].to_pylist() == [4.0 / 0.5]  # µm per px over the slide's mpp
    table, _ = masks_from_tiles(str(out / "selection.parquet"), str(tmp_path / "big"),
                                TileMaskOptions(scale=1, memory_budget_mb=1))  # fmt: skip
    (row,) = table.to_pylist()
    assert row["status"] == "failed" and "memory budget" in row["error"]
    assert not (tmp_path / "big" / f"{SID}.png").exists()
    with pytest.raises(ConfigError, match="no slides.parquet"):
        masks_from_tiles(str(sel), str(tmp_path / "m"))  # none next to it
    pq.write_table(pa.table({"slide_id": [SID]}), tmp_path / "bad.parquet")
    with pytest.raises(ConfigError, match="lacks the columns"):
        masks_from_tiles(str(tmp_path / "bad.parquet"), slides=str(out))


def test_tiles_against_annotations_of_the_same_boxes_agree_exactly(generated, tmp_path):
    out, _, boxes = generated
    masks_from_tiles(str(out / "selection.parquet"), str(tmp_path / "pred"),
                     TileMaskOptions(scale=8))  # fmt: skip
    _, union = _union(boxes)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / f"{SID}.geojson").write_text(json.dumps(geojson_doc({"tumour": union})))
    table = compare(str(tmp_path / "pred"), str(notes))
    row = table.to_pylist()[0]
    assert row["status"] == "ok" and row["dice"] > 0.998
    # they differ only where a pixel centre lies exactly on an edge (two rasterisers' ties)
    pred, _ = decode_mask((tmp_path / "pred" / f"{SID}.png").read_bytes())
    gt = rasterise_labels({"t": union}, pred.shape, 8) > 0
    ys, xs = np.nonzero(pred != gt)
    assert len(ys) == row["fp"] + row["fn"]
    assert shapely.intersects_xy(union.boundary, (xs + 0.5) * 8, (ys + 0.5) * 8).all()
    assert row["grid_px0_x"] == 8 and row["pred_resampled"] == "native"
    assert row["gt_resampled"].startswith("rasterised")
    # a second class makes the choice explicit
    two = geojson_doc({"tumour": union, "stroma": shapely.box(0, 0, 100, 100)})
    (notes / f"{SID}.geojson").write_text(json.dumps(two))
    row = compare(str(tmp_path / "pred"), str(notes)).to_pylist()[0]
    assert row["status"] == "failed" and "--class" in row["error"]
    again = compare(str(tmp_path / "pred"), str(notes), MetricsOptions(class_name="Tumour"))
    assert again.to_pylist()[0]["dice"] == table.to_pylist()[0]["dice"]


def test_stage1_against_truth_at_another_scale(generated, tmp_path):
    out, truth, _ = generated
    gt = tmp_path / "gt"
    gt.mkdir()
    np.save(gt / f"{SID}.npy", truth.tissue_mask(4))  # 4× finer than the stage-1 mask
    np.save(gt / "elsewhere.npy", np.zeros((5, 5), bool))  # no prediction for it
    table = compare(str(out), str(gt))
    rows = {(r["scope"], r["slide_id"]): r for r in table.to_pylist()}
    row = rows[("slide", SID)]
    assert row["grid"].startswith("the pred mask's grid") and row["grid_px0_x"] == SCALE
    stage1 = np.asarray(Image.open(out / "masks" / f"{SID}.png")) > 0
    # the truth reduced to the stage-1 grid by area (≥ half), computed from the generator
    on_grid = truth.tissue_mask(SCALE) | (truth.fraction(SCALE, TISSUE_LABELS) == 0.5)
    tp = int((stage1 & on_grid).sum())
    assert row["tp"] == tp and row["fp"] == int((stage1 & ~on_grid).sum())
    assert row["dice"] > 0.9 and row["recall"] > 0.9
    assert rows[("slide", "elsewhere")]["status"] == "gt_only"
    assert rows[("pooled", None)]["n_slides"] == 1
    assert rows[("pooled", None)]["dice"] == pytest.approx(row["dice"])
    # read back with DuckDB, as users will
    path = tmp_path / "m.parquet"
    pq.write_table(table, path)
    got = duckdb.sql(f"SELECT scope, dice FROM '{path}' WHERE scope = 'mean'").fetchall()
    assert got == [("mean", pytest.approx(row["dice"]))]


def test_stage1_masks_folder_and_label_pngs(generated, tmp_path):
    out, truth, _ = generated
    gt = tmp_path / "gt"
    gt.mkdir()
    tumour = truth.tissue_mask(SCALE)
    np.save(gt / f"{SID}.npy", tumour)
    whole = compare(str(out), str(gt)).to_pylist()[0]
    direct = compare(str(out / "masks"), str(gt)).to_pylist()[0]  # OUT/masks: the same
    assert direct["grid_px0_x"] == SCALE and direct["dice"] == whole["dice"]
    labels = tmp_path / "labels"
    labels.mkdir()
    index = np.where(tumour, 2, 0).astype(np.uint8)
    index[:3, :3] = 1  # a little "stroma" (class 1, sorted first)
    (labels / f"{SID}.png").write_bytes(encode_label_png(index, ["stroma", "tumour"]))
    row = compare(str(labels), str(gt), MetricsOptions(slides=str(out))).to_pylist()[0]
    assert row["status"] == "failed" and "--class" in row["error"]
    options = MetricsOptions(slides=str(out), class_name="tumour")
    row = compare(str(labels), str(gt), options).to_pylist()[0]
    assert row["dice"] == 1.0 and row["grid_px0_x"] == pytest.approx(WIDTH / tumour.shape[1])


def test_metrics_command_prints_table_grid_and_unmatched(generated, tmp_path):
    out, truth, _ = generated
    gt = tmp_path / "gt"
    gt.mkdir()
    np.save(gt / f"{SID.upper()}.npy", truth.tissue_mask(SCALE))  # ids match ignoring case
    np.save(gt / "other_mask.npy", np.zeros((5, 5), bool))
    dest = tmp_path / "metrics.parquet"
    res = CliRunner().invoke(app, ["metrics", str(out), str(gt), "--to", str(dest)],
                             env={"COLUMNS": "120"})  # fmt: skip
    assert res.exit_code == 0, res.output
    assert SID in res.output and "(pooled, 1)" in res.output and "(mean, 1)" in res.output
    assert "the gt mask's grid (both of one size), 16 level-0 px per px" in res.output
    assert "PRED native, GT native" in res.output
    assert "other [gt_only]" in res.output
    assert pq.read_table(dest).num_rows == 4  # two slides, pooled, mean
    res = CliRunner().invoke(app, ["metrics", str(out), str(gt), "--grid", "nearest"])
    assert res.exit_code == 2 and "--grid 'nearest'" in res.output


@pytest.mark.skipif(
    not (SLIDES / "masks" / "histolab" / "tissue-mask-cmu-1-small-region.npy").exists()
    or not (SLIDES / "CMU-1-Small-Region.svs").exists(),
    reason="the real slide or histolab's reference mask is missing",
)
def test_real_stage1_mask_against_histolab_reference(client, tmp_path):
    out = tmp_path / "out"
    table = run_stage1([str(SLIDES / "CMU-1-Small-Region.svs")], str(out),
                       Stage1Config(scale=10), client=client)  # fmt: skip
    assert table["status"].to_pylist() == ["ok"]
    gt = tmp_path / "gt"
    gt.mkdir()
    ref = SLIDES / "masks" / "histolab" / "tissue-mask-cmu-1-small-region.npy"
    shutil.copy(ref, gt / "CMU-1-Small-Region.npy")
    row = compare(str(out), str(gt)).to_pylist()[0]
    print(f"CMU vs histolab: Jaccard {row['jaccard']:.3f}, Dice {row['dice']:.3f}")
    # tests/stage1/test_stage1.py holds the default preset at IoU ≥ 0.65 at scale 10
    assert row["status"] == "ok" and row["jaccard"] >= 0.65
    assert row["grid_width"] * row["grid_height"] <= 221 * 296  # the coarser grid


def test_mask_from_tiles_command(generated, tmp_path):
    out, _, boxes = generated
    dest = tmp_path / "masks"
    args = ["mask-from-tiles", str(out / "selection.parquet"), "--out", str(dest),
            "--scale", "4", "--smooth", "400"]  # fmt: skip
    res = CliRunner().invoke(app, args, env={"COLUMNS": "120"})
    assert res.exit_code == 0, res.output
    assert f"1 mask(s) from {len(boxes)} boxes" in res.output and SID in res.output
    assert "features of one tile may vanish" in res.output  # 400 px ≥ half a 256-px tile
    assert "wsidist metrics" in res.output and (dest / f"{SID}.png").exists()
    res = CliRunner().invoke(app, ["mask-from-tiles", str(out / "selection.parquet"),
                                   "--scale", "2", "--mpp", "1"])  # fmt: skip
    assert res.exit_code == 2 and "--scale or --mpp" in res.output
    assert "Traceback" not in res.output


def test_on_s3_as_locally(generated, s3, s3_bucket, tmp_path):
    out, _, _ = generated
    fs = s3.filesystem()
    bucket = s3_bucket.removeprefix("s3://")
    for name in ("slides.parquet", "selection.parquet", "masks"):
        fs.put(str(out / name), f"{bucket}/run/{name}", recursive=name == "masks")
    so = s3.storage_options
    table, url = masks_from_tiles(f"{s3_bucket}/run/selection.parquet", storage_options=so)
    assert url == f"{s3_bucket}/run/tile-masks/tile-masks.parquet"
    assert table["status"].to_pylist() == ["ok"]
    remote = compare(f"{s3_bucket}/run/tile-masks", f"{s3_bucket}/run", storage_options=so)
    local_masks, _ = masks_from_tiles(str(out / "selection.parquet"), str(tmp_path))
    local = compare(str(tmp_path), str(out))
    keep = ["scope", "slide_id", "status", "dice", "tp", "fp", "fn", "tn", "grid"]
    assert remote.select(keep).equals(local.select(keep))
    assert remote.to_pylist()[0]["status"] == "ok"
    assert not [p for p in fs.find(f"{bucket}/run") if "_tmp-" in p]


def test_sources_refuse_what_they_cannot_read(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "a.geojson").write_text("{}")
    with pytest.raises(ConfigError, match="both masks and annotations"):
        compare(str(tmp_path), str(tmp_path))
    with pytest.raises(ConfigError, match="does not exist"):
        compare(str(tmp_path / "nope"), str(tmp_path))
    Path(tmp_path / "a.geojson").unlink()
    row = compare(str(tmp_path), str(tmp_path)).to_pylist()[0]
    assert row["status"] == "failed" and "cannot read the mask" in row["error"]


def test_true_masks_carry_their_grid_and_metrics_reads_them(tmp_path):
    spec = SynthSpec(width=1500, height=1100, seed=5, n_blobs=2, pens=())
    truth = synth_truth(spec)
    write_truth_mask(truth, tmp_path / "truth" / "a.png", 8)
    mask, grid = decode_mask((tmp_path / "truth" / "a.png").read_bytes())
    assert grid["downsample"] == 8 and grid["width0"] == 1500
    assert np.array_equal(mask, truth.tissue_mask(8))
    write_truth_mask(truth, tmp_path / "coarse" / "a.png", 20)
    row = compare(str(tmp_path / "coarse"), str(tmp_path / "truth")).to_pylist()[0]
    assert row["grid_px0_x"] == 20 and row["dice"] > 0.97  # the same truth at two scales


@pytest.mark.long  # writes three demo-sized slides (about 30 s)
def test_demo_slides_come_with_their_truth(tmp_path):
    (path,) = generate_demo_slides(tmp_path / "slides", n=1, truth_dir=tmp_path / "truth")
    mask, grid = decode_mask((tmp_path / "truth" / f"{path.stem}.png").read_bytes())
    spec = demo_specs(1, 0)[0]
    assert grid["downsample"] == DEMO_TRUTH_SCALE and grid["width0"] == spec.width
    assert np.array_equal(mask, synth_truth(spec).tissue_mask(DEMO_TRUTH_SCALE))

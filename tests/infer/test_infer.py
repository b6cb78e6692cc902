"""Inference on generated slides with a known dark region, on a real LocalCluster.

The models are real: an ONNX graph built in the test (a fixed convolution and a pool giving the
patch's mean darkness as a probability) and Python callables. The slides are stained with known
H&E vectors and have a dark ellipse whose exact mask is the truth.
"""

from __future__ import annotations

import io

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from skimage.measure import label, regionprops

from wsidist import layout
from wsidist.infer.config import InferConfig
from wsidist.infer.driver import run_infer
from wsidist.io.slide import open_slide


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def arrays(out, slide_id):
    return np.load(out / layout.heatmap_arrays_key(slide_id))


@pytest.fixture(scope="module")
def onnx_run(dark_slides, darkness_onnx, client, tmp_path_factory):
    out = tmp_path_factory.mktemp("infer_onnx")
    config = InferConfig(models=(str(darkness_onnx),), patch_px=256, overlap=0.5,
                         tta=("flip", "rot90"))  # fmt: skip
    table = run_infer([str(s.path) for s in dark_slides], str(out), config, client=client)
    return out, table


def test_onnx_heatmap_matches_the_dark_region(onnx_run, dark_slides):
    out, table = onnx_run
    assert table.column("status").to_pylist() == ["ok", "ok"]
    for slide, row in zip(dark_slides, table.to_pylist()):
        maps = arrays(out, row["slide_id"])
        mean = maps["mean"].astype(np.float32)
        assert mean.shape == (2, *slide.truth.dark_mask(32).shape)
        truth = slide.truth.dark_mask(32)
        assert dice(mean[1] >= 0.5, truth) >= 0.9
        np.testing.assert_allclose(mean.sum(0)[maps["weight"] > 0], 1.0, atol=2e-3)  # 2 classes
        assert row["n_patches"] > 100 and row["augmentations"] == 6
        assert row["stride_px0"] == 128 and row["patch_px0"] == 256


def test_tta_of_a_rotation_invariant_model_has_zero_uncertainty(onnx_run):
    out, table = onnx_run
    for slide_id in table.column("slide_id").to_pylist():
        assert float(np.abs(arrays(out, slide_id)["tta_std"]).max()) < 1e-3
        assert "ensemble_std" not in arrays(out, slide_id)


def test_region_features_match_skimage_on_the_thresholded_map(onnx_run, dark_slides):
    out, table = onnx_run
    regions = pq.read_table(out / layout.REGIONS_TABLE).to_pylist()
    features = {
        r["slide_id"]: r for r in pq.read_table(out / layout.REGION_FEATURES_TABLE).to_pylist()
    }
    for slide, slide_id in zip(dark_slides, table.column("slide_id").to_pylist()):
        prob = arrays(out, slide_id)["mean"][1]
        for t in (0.5, 0.9):
            mine = sorted((r for r in regions if r["slide_id"] == slide_id and r["threshold"] == t),
                          key=lambda r: r["region"])  # fmt: skip
            props = regionprops(label(prob >= t, connectivity=2), intensity_image=prob)
            assert len(mine) == len(props) >= 1
            for r, p in zip(mine, props):
                assert r["area"] == p.area and r["class"] == 1
                for name in ("perimeter", "eccentricity", "extent", "solidity"):
                    assert r[name] == pytest.approx(getattr(p, name))
                assert r["mean_confidence"] == pytest.approx(p.intensity_mean, rel=1e-6)
            areas = np.array([p.area for p in props], float)
            f = features[slide_id]
            assert f[f"p{int(t * 100)}_n_regions"] == len(props)
            assert f[f"p{int(t * 100)}_area_max"] == pytest.approx(areas.max())
            assert f[f"p{int(t * 100)}_nonzero_px"] == int((prob >= t).sum())
        # the biggest region at 0.5 is the dark ellipse: its area in µm² within 10 %
        spec = slide.truth.spec
        truth_um2 = slide.truth.dark_mask(32).sum() * (32 * spec.mpp) ** 2
        biggest = max((r for r in regions if r["slide_id"] == slide_id and r["threshold"] == 0.5),
                      key=lambda r: r["area"])  # fmt: skip
        assert biggest["area_um2"] == pytest.approx(truth_um2, rel=0.1)
        ratio = features[slide_id]["p50_tissue_ratio"]
        expected = slide.truth.dark_mask(32).sum() / slide.truth.tissue_mask(32).sum()
        assert ratio == pytest.approx(expected, rel=0.15)


def test_heatmap_images_are_readable_slides_with_mpp(onnx_run, dark_slides):
    out, table = onnx_run
    slide_id = table.column("slide_id")[0].as_py()
    mean = arrays(out, slide_id)["mean"].astype(np.float32)
    with open_slide(str(out / layout.heatmap_image_key(slide_id, "mean", 1, "tiff"))) as hm:
        assert hm.dimensions == (mean.shape[2], mean.shape[1])
        assert hm.mpp_x == pytest.approx(dark_slides[0].truth.spec.mpp * 32)
        pixels = hm.read_region(0, 0, 0, hm.dimensions)[..., 0]
    expected = np.rint(np.clip(mean[1], 0, 1) * 255)  # from the float16 arrays: ±1 level
    assert np.abs(pixels.astype(float) - expected).max() <= 1
    png = Image.open(
        io.BytesIO((out / layout.heatmap_image_key(slide_id, "mean", 1, "png")).read_bytes())
    )
    assert max(png.size) >= 1024  # readable size, legend beside the map


def test_predictions_are_one_row_per_patch_hive_partitioned(onnx_run):
    out, table = onnx_run
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT slide_id, count(*) AS n, min(prob_1), max(prob_1), max(tta_std_1) FROM "
        f"read_parquet('{out}/{layout.PREDICTION_GLOB}', hive_partitioning = true) "
        "GROUP BY slide_id ORDER BY slide_id"
    ).fetchall()
    by_id = {r["slide_id"]: r for r in table.to_pylist()}
    assert [r[0] for r in rows] == sorted(by_id)
    for sid, n, lo, hi, std in rows:
        assert n == by_id[sid]["n_patches"] and lo < 0.1 and hi > 0.9 and std < 1e-3


def test_rerun_skips_done_slides(onnx_run, dark_slides, darkness_onnx, client):
    out, table = onnx_run
    config = InferConfig(models=(str(darkness_onnx),), patch_px=256, overlap=0.5,
                         tta=("flip", "rot90"))  # fmt: skip
    again = run_infer([str(s.path) for s in dark_slides], str(out), config, client=client)
    assert again.column("skipped").to_pylist() == [True, True]
    assert again.column("config_hash").to_pylist() == table.column("config_hash").to_pylist()
    assert pq.read_table(out / layout.REGIONS_TABLE).num_rows > 0  # regions kept on a skip


def test_constant_model_gives_a_constant_map_without_seams(dark_slides, client, tmp_path):
    config = InferConfig(
        models=("tests.infer.models:constant",), patch_um=100, overlap=0.5, heatmap_scale=24
    )  # fmt: skip  (200-px patches, 100-px stride, 24-px pixels)
    table = run_infer([str(dark_slides[0].path)], str(tmp_path), config, client=client)
    maps = arrays(tmp_path, table.column("slide_id")[0].as_py())
    covered = maps["weight"] > 0
    assert covered.mean() > 0.4
    np.testing.assert_allclose(maps["mean"][0][covered].astype(np.float32), 0.3, atol=1e-3)
    assert (maps["mean"][0][~covered] == 0).all()


def test_non_invariant_model_and_ensemble_have_uncertainty(dark_slides, client, tmp_path):
    config = InferConfig(
        models=("tests.infer.models:left_half", "tests.infer.models:darkness_dark_only"),
        patch_px=256, overlap=0.5, tta=("flip",),
    )  # fmt: skip
    table = run_infer([str(dark_slides[0].path)], str(tmp_path), config, client=client)
    assert table.column("status").to_pylist() == ["ok"], table.column("error").to_pylist()
    maps = arrays(tmp_path, table.column("slide_id")[0].as_py())
    assert float(maps["tta_std"].max()) > 0.05  # flips change what the left half sees
    assert float(maps["ensemble_std"].max()) > 0.05  # the two models disagree on the border


def test_segmentation_callable_matches_the_dark_region(dark_slides, client, tmp_path):
    config = InferConfig(models=("tests.infer.models:darkness_map",), patch_px=256, overlap=0.5,
                         heatmap_scale=16)  # fmt: skip
    table = run_infer([str(s.path) for s in dark_slides], str(tmp_path), config, client=client)
    for slide, slide_id in zip(dark_slides, table.column("slide_id").to_pylist()):
        mean = arrays(tmp_path, slide_id)["mean"][0].astype(np.float32)
        assert dice(mean >= 0.5, slide.truth.dark_mask(16)) >= 0.9


def test_a_broken_slide_is_a_failed_row_while_the_rest_complete(dark_slides, client, tmp_path):
    bad = tmp_path / "broken.tiff"
    bad.write_bytes(dark_slides[0].path.read_bytes()[:5000])
    config = InferConfig(models=("tests.infer.models:darkness",), patch_px=256, overlap=0)
    table = run_infer([str(bad), str(dark_slides[1].path)], str(tmp_path / "out"), config,
                      client=client)  # fmt: skip
    rows = {r["slide_id"]: r for r in table.to_pylist()}
    assert rows["broken"]["status"] == "failed" and rows["broken"]["error"]
    assert rows["dark_b"]["status"] == "ok"
    assert not (tmp_path / "out" / layout.predictions_partition("broken")).exists()


def test_predictions_join_the_stage1_tiles_in_duckdb(dark_slides, darkness_onnx, client, tmp_path):
    from wsidist.query.select import select, write_selection
    from wsidist.stage1.config import Stage1Config
    from wsidist.stage1.driver import run_stage1

    out = tmp_path / "run"
    run_stage1([str(dark_slides[0].path)], str(out), Stage1Config(tile_size=256), client=client)
    selection = write_selection(select(str(out), top=40), str(out / layout.SELECTION_TABLE))
    config = InferConfig(models=(str(darkness_onnx),), patch_px=256, overlap=0.5)
    table = run_infer([selection], str(out), config, client=client)  # next to the tiles
    assert table.column("n_patches").to_pylist() == [40]
    joined = (
        duckdb.connect()
        .execute(
            f"SELECT t.slide_id, t.x, t.y, t.tissue_frac, p.prob_1 "
            f"FROM read_parquet('{out}/{layout.TILE_GLOB}', hive_partitioning = true) t "
            f"JOIN read_parquet('{out}/{layout.PREDICTION_GLOB}', hive_partitioning = true) p "
            "USING (slide_id, x, y, w, h)"
        )
        .fetchall()
    )
    assert len(joined) == 40
    assert all(0 <= r[4] <= 1 for r in joined)

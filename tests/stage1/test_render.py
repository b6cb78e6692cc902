"""Batch-mode pictures and contours, written by a real stage-1 run: readable size, legend and
colour bar beside the image, tiles coloured where they are, contours that give the mask back."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from wsidist.imaging.contours import geojson_polygons, rasterise
from wsidist.imaging.figures import CLASS_COLORS, PANEL_PX, heat_colors
from wsidist.imaging.slide_pictures import MIN_LONG_PX, class_picture, score_picture
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.driver import run_stage1


def two_tiles() -> tuple[np.ndarray, np.ndarray]:
    """A gray 200×400 image at downsample 1 with two 200×200 tiles."""
    return np.full((200, 400, 3), 128, np.uint8), np.array([[0, 0, 200, 200], [200, 0, 200, 200]])


def test_class_picture_tints_tiles_and_keeps_the_legend_beside_the_image():
    rgb, xywh = two_tiles()
    out = class_picture(rgb, xywh, ["high", "none"], 1.0, title="t")
    assert out.shape[1] >= 400 + PANEL_PX  # the panel is beside the image, not on it
    inside_high, inside_none = out[16 + 100, 16 + 100], out[16 + 100, 16 + 300]
    assert inside_high[1] > inside_high[0] and inside_none[0] > inside_none[1]  # green / red
    assert tuple(out[16, 16 + 50]) == CLASS_COLORS["high"]  # the outline
    panel = out[:, 16 + 400 + 16 :]
    swatch = np.all(panel == CLASS_COLORS["medium"], axis=-1)
    assert swatch.sum() > 100  # the legend's swatch for a class with no tile


def test_score_picture_colours_by_value_with_a_colour_bar():
    rgb, xywh = two_tiles()
    out = score_picture(rgb, xywh, np.array([0.8, 0.2]), 1.0, title="t", lo=0.0, hi=0.8)
    best, worst = out[116, 116].astype(int), out[116, 316].astype(int)
    assert np.abs(best - np.rint(0.4 * 128 + 0.6 * heat_colors(np.array(1.0)))).max() <= 1
    assert best[1] > worst[1]  # yellow-green (high) over dark blue (low)
    bar_top = heat_colors(np.array(1.0)).astype(int)
    near_top = np.abs(out[:, 400 + 32 :].astype(int) - bar_top).max(axis=-1) <= 4
    assert near_top.sum() >= 20  # the colour bar's top end, in the panel


def test_heat_colors_span_the_map_and_clip():
    ends = heat_colors(np.array([0.0, 1.0, -3.0, 7.0, np.nan]))
    assert ends[0].tolist() == [68, 1, 84] and ends[1].tolist() == [253, 231, 37]
    assert ends[2].tolist() == ends[0].tolist() and ends[3].tolist() == ends[1].tolist()
    assert ends[4].tolist() == ends[0].tolist()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.mark.slow
def test_batch_pictures_are_readable_and_contours_round_trip(
    client, real_slides_dir, synthetic_slides, tmp_path
):
    slides = [
        str(real_slides_dir / "CMU-1-Small-Region.svs"),
        str(real_slides_dir / "tcga-cr-7395-01a-01-ts1.svs"),
    ]
    slides += [str(s.path) for s in synthetic_slides]
    out = tmp_path / "out"
    table = run_stage1(slides, str(out), Stage1Config(batch=True), client=client)
    assert set(table.column("status").to_pylist()) == {"ok"}
    for sid in table.column("slide_id").to_pylist():
        for name in ("tile_summary.png", "score_heatmap.png"):
            with Image.open(out / "batch" / sid / name) as im:
                assert max(im.size) >= MIN_LONG_PX + PANEL_PX, (sid, name, im.size)
        mask = np.asarray(Image.open(out / "masks" / f"{sid}.png")).astype(bool)
        doc = json.loads((out / "contours" / f"{sid}.geojson").read_text())
        assert doc["type"] == "FeatureCollection" and doc["features"]
        assert {f["properties"]["classification"]["name"] for f in doc["features"]} == {"Tissue"}
        back = rasterise(geojson_polygons(doc), mask.shape, 32.0)
        assert _iou(back, mask) >= 0.98, sid
        holes = sum(len(f["geometry"]["coordinates"]) - 1 for f in doc["features"])
        assert holes >= 0
    # a synthetic slide's pictures show its tiles where the tissue is (not a blank image)
    heat = np.asarray(
        Image.open(io.BytesIO((out / "batch" / "typical" / "score_heatmap.png").read_bytes()))
    )
    assert heat.std() > 20

"""Stage 1 for one slide (the worker's job), in-process, on real and generated slides."""

import io
import json
import math
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from scipy import ndimage

from wsidist.demo.synth import SynthSpec, write_synthetic_slide
from wsidist.io.storage import Store
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.worker import SlideTask, process_slide

REAL = {
    "cmu": ("CMU-1-Small-Region.svs", "aperio"),
    "tcga": ("tcga-cr-7395-01a-01-ts1.svs", "aperio"),
    "ndpi": ("test3-DAPI-2-(387).ndpi", "hamamatsu"),
    "dicom": ("dicom/cmu-1-small-region", "dicom"),
    "kidney": ("kidney-48-5.tif", "tiff"),
}


def _run(url, out, slide_id="s", **config):
    store = Store(str(out))
    row = process_slide(SlideTask(str(url), slide_id), Stage1Config(**config), store)
    return row, store


def _mask(store, slide_id):
    return np.asarray(Image.open(io.BytesIO(store.read_bytes(f"masks/{slide_id}.png")))) > 0


@pytest.mark.parametrize("name", sorted(REAL))
def test_every_real_slide_gives_an_ok_row_and_its_outputs(real_slides_dir, tmp_path, name):
    rel, vendor = REAL[name]
    row, store = _run(real_slides_dir / rel, tmp_path, name, scale=16)
    assert row["status"] == "ok", row["error"]
    assert row["vendor"] == vendor
    w, h = row["width"], row["height"]
    assert _mask(store, name).shape == (math.ceil(h / 16), math.ceil(w / 16))
    tiles = pq.read_table(store.path(f"tiles/slide_id={name}/part-0.parquet"))
    assert tiles.num_rows == row["n_tiles"] > 0
    # the id lives in the partition path (and the file's metadata), not in a column
    assert "slide_id" not in tiles.column_names
    assert tiles.schema.metadata[b"wsidist.slide_id"].decode() == name
    # tiles cover the slide exactly (edge=keep), in level-0 px
    assert int((tiles.column("w").to_numpy() * tiles.column("h").to_numpy()).sum()) == w * h
    meta = tiles.schema.metadata
    assert meta[b"wsidist.config_hash"].decode() == row["config_hash"]
    assert meta[b"wsidist.schema_version"] == b"1"
    assert sorted(tiles.column("rank").to_pylist()) == list(range(1, tiles.num_rows + 1))
    status = json.loads(store.read_bytes(f"status/{name}.json"))
    assert status["status"] == "ok" and status["n_tiles"] == row["n_tiles"]


def test_slide_facts_reach_the_row(real_slides_dir, tmp_path):
    row, _ = _run(real_slides_dir / REAL["tcga"][0], tmp_path, "tcga")
    assert row["mpp_x"] is None and row["mpp_source"] is None
    row, _ = _run(real_slides_dir / REAL["cmu"][0], tmp_path, "cmu")
    assert row["mpp_x"] == pytest.approx(0.499) and row["mpp_source"] == "slide"
    assert row["n_tissue_tiles"] > 0 and 0.2 < row["tissue_frac"] < 0.8
    row, _ = _run(real_slides_dir / REAL["ndpi"][0], tmp_path, "ndpi")
    assert "fluorescence" in row["warning"]


def test_tile_um_without_mpp_is_a_clear_failure_and_mpp_override_fixes_it(
    real_slides_dir, tmp_path
):
    url = real_slides_dir / REAL["tcga"][0]
    row, store = _run(url, tmp_path, "tcga", tile_um=256)
    assert row["status"] == "failed"
    assert "--mpp" in row["error"] and "µm" in row["error"]
    assert not store.exists("tiles/slide_id=tcga/part-0.parquet")
    row, _ = _run(url, tmp_path, "tcga", tile_um=256, mpp=0.25)
    assert row["status"] == "ok" and row["tile_px0"] == 1024 and row["mpp_source"] == "config"


@pytest.mark.parametrize(
    ("slide", "ref"),
    [
        ("CMU-1-Small-Region.svs", "tissue-mask-cmu-1-small-region.npy"),
        ("tcga-cr-7395-01a-01-ts1.svs", "tissue-mask-tcga-cr-7395.npy"),
    ],
)
@pytest.mark.parametrize(
    ("preset", "floor"), [("default", 0.65), ("seed000", 0.65), ("otsu", 0.85)]
)
def test_stage1_masks_agree_with_histolab(real_slides_dir, tmp_path, slide, ref, preset, floor):
    reference = np.load(real_slides_dir / "masks" / "histolab" / ref)
    row, store = _run(real_slides_dir / slide, tmp_path, "s", scale=10, tissue=preset)
    mask = _mask(store, "s")
    resized = np.asarray(
        Image.fromarray(mask).resize(reference.shape[::-1], Image.Resampling.NEAREST)
    )
    iou = (resized & reference).sum() / (resized | reference).sum()
    print(f"{slide} {preset}: IoU vs histolab {iou:.3f}")
    assert iou >= floor


def _pen_slide(folder, seed):
    """A slide of realistic proportions with pens over tissue, and its truth."""
    path = folder / f"pens{seed}.svs"
    spec = SynthSpec(width=9000, height=7000, seed=seed, strokes_per_pen=2)
    return path, write_synthetic_slide(path, spec)


@pytest.fixture(scope="module")
def pen_slide(tmp_path_factory):
    """The first of `pen_slides` (the default run's test needs only it)."""
    return _pen_slide(tmp_path_factory.mktemp("pen-slides"), 11)


@pytest.fixture(scope="module")
def pen_slides(pen_slide, tmp_path_factory):
    """Slides of realistic proportions with pens over tissue and known masks."""
    return [pen_slide, _pen_slide(tmp_path_factory.mktemp("pen-slides"), 12)]


@pytest.mark.long  # the failure classes cover pens over tissue at 0.98
def test_default_preset_dice_on_generated_slides_with_pens(pen_slides, tmp_path):
    for path, truth in pen_slides:
        row, store = _run(path, tmp_path, path.stem)
        assert row["status"] == "ok"
        mask, true = _mask(store, path.stem), truth.tissue_mask(32)
        dice = 2 * (mask & true).sum() / (mask.sum() + true.sum())
        pen = truth.pen_mask(32)
        ink_core = ndimage.binary_erosion(pen)  # pixels not blended with tissue or glass
        pen_share = (mask & pen).sum() / mask.sum()
        core_kept = (mask & ink_core).sum() / ink_core.sum()
        print(
            f"{path.name}: Dice {dice:.3f}, ink share of mask {pen_share:.4f}, core kept {core_kept:.3f}"
        )
        assert dice >= 0.95
        assert pen_share <= 0.02
        assert core_kept <= 0.06
        assert row["pen_frac"] > 0.005


def test_batch_mode_writes_every_step(pen_slide, tmp_path):
    path, _ = pen_slide
    row, store = _run(path, tmp_path / "auto", "a", batch=True)
    steps = store.list("batch/a/steps")
    assert any("ink" in s for s in steps) and any("coverage" in s for s in steps)
    row, store = _run(path, tmp_path, "b", batch=True, tissue="seed000")
    names = store.list("batch/b")
    assert {"batch/b/00-rgb.png", "batch/b/tile_summary.png", "batch/b/score_heatmap.png"} <= set(
        names
    )
    steps = store.list("batch/b/steps")
    assert len(steps) >= 7 and any("red_pen" in s for s in steps)
    summary = np.asarray(Image.open(store.path("batch/b/tile_summary.png")).convert("RGB"))
    # drawn from the slide at a readable size, not at the filter scale of the mask
    assert max(summary.shape[:2]) >= 1024 > max(_mask(store, "b").shape)
    # borders of high-tissue tiles are drawn in green
    assert ((summary == (0, 200, 0)).all(-1)).sum() > 0


def test_tissue_free_slide_is_ok_with_a_flag(tmp_path):
    path = tmp_path / "glass.svs"
    write_synthetic_slide(path, SynthSpec(width=3000, height=2000, n_blobs=0, pens=(), n_debris=5))
    row, _ = _run(path, tmp_path / "out", "glass")
    assert row["status"] == "ok" and row["n_tissue_tiles"] == 0
    assert "no tissue" in row["warning"]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing", "empty"])
def test_bad_slide_is_a_failed_row_with_a_reason(real_slides_dir, tmp_path, damage):
    path = tmp_path / f"{damage}.svs"
    source = (real_slides_dir / REAL["cmu"][0]).read_bytes()
    if damage == "truncated":
        path.write_bytes(source[:200_000])
    elif damage == "garbage":
        path.write_text("this is not a slide\n" * 100)
    elif damage == "empty":
        path.write_bytes(b"")
    row, store = _run(path, tmp_path / "out", damage)
    assert row["status"] == "failed"
    assert damage in row["error"] or path.name in row["error"]
    assert len(row["error"]) > 20
    assert not store.exists(f"masks/{damage}.png")


def test_rerun_skips_done_slide_unless_config_or_overwrite_changes(real_slides_dir, tmp_path):
    url = tmp_path / "cmu.svs"
    shutil.copy(real_slides_dir / REAL["cmu"][0], url)
    first, store = _run(url, tmp_path / "out", "cmu")
    again, _ = _run(url, tmp_path / "out", "cmu")
    assert again["skipped"] and again["finished_at"] == first["finished_at"]
    other, _ = _run(url, tmp_path / "out", "cmu", scale=16)
    assert not other["skipped"] and other["config_hash"] != first["config_hash"]
    forced = process_slide(
        SlideTask(str(url), "cmu"), Stage1Config(scale=16), store, overwrite=True
    )
    assert not forced["skipped"]

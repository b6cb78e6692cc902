"""wsidist.stage1.dynamic: top tiles in memory, matching stage 1, writing nothing (or only the tiles)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from wsidist.errors import WsidistError
from wsidist.io.slide import open_slide
from wsidist.io.storage import Store
from wsidist.layout import tiles_key
from wsidist.stage1.analysis import analyse_slide
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.dynamic import top_tiles, write_top_tiles
from wsidist.stage1.scoring import tissue_fraction_score
from wsidist.stage1.worker import SlideTask, process_slide

CMU_CONFIG = Stage1Config(scale=16, tile_size=256)
SYNTH_CONFIG = Stage1Config(scale=16, tile_size=300)


def files_under(*folders: Path) -> set[str]:
    return {os.path.join(d, f) for folder in folders for d, _, fs in os.walk(folder) for f in fs}


def stage1_top(url: str, config: Stage1Config, tmp_path: Path, n: int, scorer=None) -> list[dict]:
    """The n best tiles stage 1 writes for ``url`` (via process_slide into tmp_path) with
    tissue_frac ≥ min_tissue_frac: top-tiles never returns the others."""
    store = Store(str(tmp_path / "stage1"))
    summary = process_slide(SlideTask(url, "s"), config, store, scorer=scorer)
    assert summary["status"] == "ok", summary
    table = pq.read_table(tmp_path / "stage1" / tiles_key("s"))
    tiles = [t for t in table.sort_by("rank").to_pylist()]
    return [t for t in tiles if t["tissue_frac"] >= config.min_tissue_frac][:n]


@pytest.fixture
def cmu(real_slides_dir) -> str:
    return str(real_slides_dir / "CMU-1-Small-Region.svs")


@pytest.fixture
def synth(synthetic_slides) -> str:
    return str(synthetic_slides[0].path)  # typical.svs: 3000 × 2000, pyramid 1, 4


@pytest.mark.parametrize(("which", "config"), [("cmu", CMU_CONFIG), ("synth", SYNTH_CONFIG)])
def test_records_match_stage1(which, config, request, tmp_path):
    url = request.getfixturevalue(which)
    n = 8
    expected = stage1_top(url, config, tmp_path, n)
    got = list(top_tiles(url, n, config=config))
    assert len(got) == len(expected) > 0
    records = [r for r, _ in got]
    assert [(r["x"], r["y"], r["score"]) for r in records] == [
        (e["x"], e["y"], e["score"]) for e in expected
    ]
    for r, e in zip(records, expected):
        for key in ("row", "col", "w", "h", "rank", "tissue_frac", "entropy", "tissue_class"):
            assert r[key] == e[key], key
        assert r["url"] == url and r["level"] == 0
    assert [r["rank"] for r in records] == [e["rank"] for e in expected]
    scores = [r["score"] for r in records]
    assert scores == sorted(scores, reverse=True)


def test_custom_scorer_matches_stage1(synth, tmp_path):
    expected = stage1_top(synth, SYNTH_CONFIG, tmp_path, 5, scorer=tissue_fraction_score)
    got = [r for r, _ in top_tiles(synth, 5, config=SYNTH_CONFIG, scorer=tissue_fraction_score)]
    assert [(r["x"], r["y"], r["score"]) for r in got] == [
        (e["x"], e["y"], e["score"]) for e in expected
    ]


def test_pixels_equal_read_region(cmu, synth):
    for url, config in ((cmu, CMU_CONFIG), (synth, SYNTH_CONFIG)):
        with open_slide(url) as slide:
            for record, rgb in top_tiles(url, 3, config=config):
                box = slide.read_region(record["x"], record["y"], 0, (record["w"], record["h"]))
                assert rgb.dtype == np.uint8 and rgb.shape == (record["h"], record["w"], 3)
                np.testing.assert_array_equal(rgb, box)


def test_level_one_reads_downsampled_box(synth):
    with open_slide(synth) as slide:
        assert slide.level_count > 1
        ds = slide.level_downsamples[1]
        for record, rgb in top_tiles(synth, 2, config=SYNTH_CONFIG, level=1):
            size = (int(record["w"] // ds), int(record["h"] // ds))
            assert record["level"] == 1
            assert rgb.shape == (size[1], size[0], 3)
            np.testing.assert_array_equal(rgb, slide.read_region(record["x"], record["y"], 1, size))


def test_size_resizes(cmu):
    for _, rgb in top_tiles(cmu, 2, config=CMU_CONFIG, size=64):
        assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    for _, rgb in top_tiles(cmu, 1, config=CMU_CONFIG, size=300):  # upscaling works too
        assert rgb.shape == (300, 300, 3)


def test_n_larger_than_tiles_and_bad_args(synth):
    analysis_tiles = None
    with open_slide(synth) as slide:
        fracs = analyse_slide(slide, SYNTH_CONFIG).tiles["tissue_frac"].to_pylist()
        analysis_tiles = sum(f >= SYNTH_CONFIG.min_tissue_frac for f in fracs)
    got = [r for r, _ in top_tiles(synth, 10_000, config=SYNTH_CONFIG)]
    assert len(got) == analysis_tiles > 0  # every tile reaching min_tissue_frac, no other
    assert min(r["tissue_frac"] for r in got) >= SYNTH_CONFIG.min_tissue_frac
    with pytest.raises(WsidistError, match="level 9"):
        next(top_tiles(synth, 1, config=SYNTH_CONFIG, level=9))
    with pytest.raises(WsidistError):
        next(top_tiles(synth, -1))
    with pytest.raises(WsidistError):
        next(top_tiles(synth, 1, size=0))


def test_writes_nothing(cmu, synth, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    slide_dirs = [Path(synth).parent]
    before = files_under(tmp_path, *slide_dirs)
    for url, config in ((cmu, CMU_CONFIG), (synth, SYNTH_CONFIG)):
        assert len(list(top_tiles(url, 5, config=config, size=32))) == 5
    assert files_under(tmp_path, *slide_dirs) == before
    assert not any(cwd.iterdir())


def test_write_top_tiles_only_the_tiles(cmu, tmp_path):
    out = tmp_path / "tiles"
    paths = write_top_tiles(cmu, str(out), 4, 128, config=CMU_CONFIG)
    records = [r for r, _ in top_tiles(cmu, 4, config=CMU_CONFIG)]
    names = [f"CMU-1-Small-Region_r{r['rank']}_x{r['x']}_y{r['y']}.png" for r in records]
    assert [Path(p).name for p in paths] == names
    assert sorted(p.name for p in out.iterdir()) == sorted(names)  # nothing else, no _tmp-
    image = np.asarray(Image.open(paths[0]))
    assert image.shape == (128, 128, 3)
    _, first = next(top_tiles(cmu, 1, config=CMU_CONFIG, size=128))
    np.testing.assert_array_equal(image, first)  # PNG is lossless


def test_write_top_tiles_jpeg_and_bad_format(cmu, tmp_path):
    paths = write_top_tiles(cmu, str(tmp_path / "j"), 1, 64, fmt="jpg", config=CMU_CONFIG)
    assert paths[0].endswith(".jpg") and Image.open(paths[0]).format == "JPEG"
    with pytest.raises(WsidistError, match="format"):
        write_top_tiles(cmu, str(tmp_path / "x"), 1, 64, fmt="gif", config=CMU_CONFIG)
    assert not (tmp_path / "x").exists()

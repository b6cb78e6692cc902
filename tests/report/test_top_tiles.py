"""The slide page's top tiles are tissue tiles, also on a slide with fewer of them than asked."""

from __future__ import annotations

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from wsidist.demo.synth import SynthSpec, write_synthetic_slide
from wsidist.io.slide import open_slide
from wsidist.io.storage import Store
from wsidist.report.config import ReportConfig
from wsidist.report.worker import _top_tiles, is_tissue_tile
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.driver import run_stage1


@pytest.fixture(scope="module")
def small_slide(tmp_path_factory, client):
    """Stage 1 of a small slide with one small blob: few tissue tiles, many edge tiles."""
    folder = tmp_path_factory.mktemp("top_tiles")
    path = folder / "small.svs"
    write_synthetic_slide(path, SynthSpec(width=1800, height=1400, seed=31, n_blobs=1,
                                          blob_size=0.6, pens=()))  # fmt: skip
    out = folder / "out"
    run_stage1([str(path)], str(out), Stage1Config(scale=16, tile_size=128), client=client)
    tiles = ds.dataset(out / "tiles", format="parquet", partitioning="hive").to_table()
    return path, tiles


def test_top_tiles_are_tissue_tiles_when_the_slide_has_few(small_slide, tmp_path):
    path, tiles = small_slide
    n_tissue = int(pc.sum(tiles["tissue_tile"]).as_py())
    edge = tiles.filter(pc.and_(pc.greater(tiles["tissue_frac"], 0),
                                pc.invert(tiles["tissue_tile"])))  # fmt: skip
    assert 0 < n_tissue < 200 and edge.num_rows > 0  # the case: more asked than there are
    config = ReportConfig(top_n=200)
    with open_slide(str(path)) as slide:
        top = _top_tiles(slide, tiles, Store(str(tmp_path)), "small", config)
    assert len(top) == n_tissue  # every tissue tile, and nothing else
    assert all(t["tissue_tile"] and t["tissue_frac"] >= 0.5 for t in top)
    ranks = [t["rank"] for t in top]
    assert ranks == sorted(ranks)  # best first
    assert len(list((tmp_path / "slides" / "small" / "top").glob("*.jpg"))) == n_tissue


def test_without_the_column_the_threshold_decides():
    config = ReportConfig(min_tissue_frac=0.4)
    assert is_tissue_tile({"tissue_frac": 0.4}, config)
    assert not is_tissue_tile({"tissue_frac": 0.39}, config)
    assert not is_tissue_tile({"tissue_frac": 0.9, "tissue_tile": False}, config)

"""top-tiles on a slide with little tissue: never a tile below min_tissue_frac, and it says so."""

from __future__ import annotations

import re

import pytest
from PIL import Image
from typer.testing import CliRunner

from wsidist.cli.app import app
from wsidist.demo.spec import SynthSpec
from wsidist.demo.synth import write_synthetic_slide
from wsidist.io.slide import open_slide
from wsidist.stage1.analysis import analyse_slide
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.dynamic import top_tiles


@pytest.fixture(scope="module")
def sparse(tmp_path_factory) -> str:
    """1536 × 1024 px of mostly glass with one small piece of tissue."""
    path = tmp_path_factory.mktemp("sparse") / "little_tissue.svs"
    spec = SynthSpec(width=1536, height=1024, seed=11, n_blobs=1, blob_size=2.0, pens=(),
                     n_debris=0, texture="atlas")  # fmt: skip
    write_synthetic_slide(path, spec)
    return str(path)


def test_never_below_min_tissue_frac_and_fewer_than_asked(sparse):
    config = Stage1Config(tile_size=256)
    with open_slide(sparse) as slide:
        fracs = analyse_slide(slide, config).tiles["tissue_frac"].to_pylist()
    reaching = sum(f >= config.min_tissue_frac for f in fracs)
    assert 0 < reaching < 20 < len(fracs)  # the slide's 24 tiles are mostly glass
    got = list(top_tiles(sparse, 20, config=config))
    assert len(got) == reaching
    assert all(r["tissue_frac"] >= config.min_tissue_frac for r, _ in got)
    strict = Stage1Config(tile_size=256, min_tissue_frac=0.99)
    assert all(r["tissue_frac"] >= 0.99 for r, _ in top_tiles(sparse, 20, config=strict))


def test_cli_says_how_many_it_found_with_256_px_tiles(sparse, tmp_path):
    res = CliRunner().invoke(app, ["top-tiles", sparse, "--out", str(tmp_path / "best")],
                             env={"COLUMNS": "100"})  # fmt: skip
    assert res.exit_code == 0, res.output
    found = re.search(r"found (\d+) of the 20 tiles asked with tissue ≥ min_tissue_frac 0\.5",
                      res.output)  # fmt: skip
    assert found, res.output
    files = sorted((tmp_path / "best").iterdir())
    assert len(files) == int(found.group(1)) > 0
    assert all(Image.open(f).size == (256, 256) for f in files)  # the default tile: 256 px

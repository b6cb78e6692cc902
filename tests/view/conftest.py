"""A stage-1 output with a JPEG-XL rewrite and a selection, and the viewer serving it."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsidist.demo.synth import SynthSpec, write_synthetic_slide

SCRIPT_NAME = "<script>alert(1)</script>.svs"


@pytest.fixture(scope="session")
def view_out(tmp_path_factory, client) -> Path:
    """OUT of stage 1 + rewrite (JPEG-XL) + select over two synthetic slides, one named like a
    script; levels at downsamples 1, 4, 16."""
    from wsidist.query.select import select, write_selection
    from wsidist.stage1.config import Stage1Config
    from wsidist.stage1.driver import run_stage1
    from wsidist.stage2.config import RewriteConfig
    from wsidist.stage2.driver import run_rewrite

    root = tmp_path_factory.mktemp("view") / "slides"
    tricky = root / SCRIPT_NAME
    tricky.parent.mkdir(parents=True)
    write_synthetic_slide(tricky, SynthSpec(width=5000, height=3600, seed=21, n_blobs=3))
    write_synthetic_slide(root / "plain.tiff", SynthSpec(width=3000, height=2600, seed=22,
                                                         n_blobs=2, vendor_style="generic"))  # fmt: skip
    out = root.parent / "out"
    run_stage1([str(root)], str(out), Stage1Config(tile_size=512), client=client)
    run_rewrite([str(root)], str(out), RewriteConfig(), client=client)
    write_selection(select(str(out), top=5), str(out / "selection.parquet"))
    return out


@pytest.fixture(scope="session")
def served(view_out):
    """(viewer, base URL) of ``wsidist view OUT`` on a free port of 127.0.0.1."""
    from wsidist.view.app import make_viewer, running

    viewer, app = make_viewer([str(view_out)], cache_mb=64)
    with running(app) as base:
        yield viewer, base
    viewer.slides.close()

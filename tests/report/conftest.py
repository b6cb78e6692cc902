"""A small dataset with the cases a report must get right: a slide named like a script, a
vendor property holding markup, a slide in a sub-folder, a broken slide; stage 1 (batch mode)
and a rewrite run on it, then the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsidist.demo.synth import SynthSpec, write_synthetic_slide

SCRIPT_NAME = "<script>alert(1)</script>.svs"
MARKUP = '<img src=x onerror="alert(2)"> <b>bold</b> & more'


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report_slides") / "slides"
    tricky = root / SCRIPT_NAME  # a folder "<script>alert(1)<" holding "script>.svs"
    tricky.parent.mkdir(parents=True)
    write_synthetic_slide(
        tricky,
        SynthSpec(width=3000, height=2000, seed=7, n_blobs=2, properties=(("Title", MARKUP),)),
    )
    (root / "case 2").mkdir()
    write_synthetic_slide(
        root / "case 2" / "pens.tiff",
        SynthSpec(
            width=2600, height=2400, seed=8, n_blobs=2, strokes_per_pen=2, vendor_style="generic"
        ),
    )
    write_synthetic_slide(
        root / "sparse.svs", SynthSpec(width=2400, height=3200, seed=9, n_blobs=1, mpp=0.25)
    )
    (root / "broken.svs").write_bytes((root / "sparse.svs").read_bytes()[:20_000])
    return root


@pytest.fixture(scope="session")
def report_out(dataset, tmp_path_factory, client):
    """(stage-1 OUT, report summary) for the dataset: stage 1 in batch mode, one rewrite."""
    from wsidist.report.config import ReportConfig
    from wsidist.report.driver import build_report
    from wsidist.stage1.config import Stage1Config
    from wsidist.stage1.driver import run_stage1
    from wsidist.stage2.config import RewriteConfig
    from wsidist.stage2.driver import run_rewrite

    out = tmp_path_factory.mktemp("report_out") / "out"
    run_stage1([str(dataset)], str(out), Stage1Config(batch=True, tile_size=512), client=client)
    run_rewrite([str(dataset / "sparse.svs")], str(out), RewriteConfig(), client=client)
    summary = build_report(str(out), config=ReportConfig(top_n=6), client=client)
    return out, summary

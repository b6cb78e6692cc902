"""End to end on a LocalCluster with the shared real annotation: stage 1 labels CMU-1-Small-
Region's tiles, a balanced sample over its label mask is extracted with the per-class counts
asked for, each patch the slide's own pixels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from wsidist.io.slide import open_slide
from wsidist.query.extract import extract
from wsidist.query.sample import SampleConfig, sample
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.driver import run_stage1


def test_balanced_sample_of_the_annotated_slide_extracts_per_class(
    client, real_slides_dir, tmp_path
):
    annotation = real_slides_dir / "annotations" / "123.annotation.geojson"
    if not annotation.is_file():
        pytest.skip(f"{annotation} missing")
    cmu = real_slides_dir / "CMU-1-Small-Region.svs"
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"url,annotations\n{cmu},{annotation}\n")
    out = tmp_path / "out"
    table = run_stage1([], str(out), Stage1Config(tile_size=256), client=client,
                       manifest=str(manifest))  # fmt: skip
    assert table.column("status").to_pylist() == ["ok"]
    config = SampleConfig(size="64um", stride="32um", jitter="16", per_class=6, labels=True,
                          classes=("tumor", "other", "none"), seed=11)  # fmt: skip
    result = sample(out, config)
    assert {r["class"]: r["selected"] for r in result.counts} == {"tumor": 6, "other": 6, "none": 6}
    index = extract(result.table, str(tmp_path / "patches"), client=client).to_pylist()
    written = {(r["x"], r["y"]): r for r in index if r["kind"] == "patch"}
    assert {r["status"] for r in written.values()} == {"written"}
    per_class: dict[str, int] = {}
    with open_slide(str(cmu)) as slide:
        for row in result.table.to_pylist():
            per_class[row["class"]] = per_class.get(row["class"], 0) + 1
            key = written[(row["x"], row["y"])]["key"]
            got = np.asarray(Image.open(tmp_path / "patches" / key).convert("RGB"))
            want = slide.read_region(row["x"], row["y"], 0, (row["w"], row["h"]))
            assert np.array_equal(got, want)
    assert per_class == {"tumor": 6, "other": 6, "none": 6} and len(written) == 18

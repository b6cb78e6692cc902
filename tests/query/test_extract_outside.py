"""Boxes wholly outside the slide are ``failed`` index rows with the reason, not white pictures.
A real slide, a real LocalCluster."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from tests.helpers.paths import CMU
from wsidist.query.extract import extract

W, H = 2220, 2967  # CMU-1-Small-Region.svs


def test_boxes_outside_the_slide_are_failed_rows(client, real_slides_dir, tmp_path):
    boxes = [
        (10_000_000, 100, 256, 256),  # far right
        (-500, 100, 256, 256),  # left of the slide
        (100, H, 256, 256),  # just below
        (-100, -100, 256, 256),  # overhangs the corner: partly inside, written
        (500, 500, 256, 256),  # inside
        (0, 0, 40_000, 40_000),  # 4.5 GB of pixels at level 0: over the memory budget
    ]
    n = len(boxes)
    selection = pa.table({
        "slide_id": ["cmu"] * n, "url": [str(CMU)] * n,
        "x": [b[0] for b in boxes], "y": [b[1] for b in boxes],
        "w": [b[2] for b in boxes], "h": [b[3] for b in boxes],
    })  # fmt: skip
    dest = tmp_path / "patches"
    index = extract(selection, str(dest), client=client)
    rows = {(r["x"], r["y"]): r for r in index.to_pylist() if r["kind"] == "patch"}
    for x, y, _, _ in boxes[:3]:
        row = rows[(x, y)]
        assert row["status"] == "failed", row
        assert "wholly outside the slide" in row["error"] and f"{W}×{H}" in row["error"]
        assert row["key"] is None
    assert rows[(-100, -100)]["status"] == "written"
    assert rows[(500, 500)]["status"] == "written"
    huge = rows[(0, 0)]
    assert huge["status"] == "failed" and "memory budget" in huge["error"]
    assert "40000×40000 px" in huge["error"]
    written = sorted(p.name for p in (dest / "cmu").iterdir())
    assert written == ["cmu_x-100_y-100_l0.png", "cmu_x500_y500_l0.png"]
    stored = pq.read_table(dest / "index.parquet")
    assert stored.column("status").to_pylist().count("failed") == 4
    # the overhanging patch is white only outside the slide
    corner = np.asarray(Image.open(dest / "cmu" / "cmu_x-100_y-100_l0.png").convert("RGB"))
    assert (corner[:100, :100] == 255).all() and not (corner[100:, 100:] == 255).all()

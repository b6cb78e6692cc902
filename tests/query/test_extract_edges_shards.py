"""extract: shard samples carry their metadata as .json members; edge boxes padded or dropped."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from PIL import Image

from wsidist.data import TarShardDataset
from wsidist.io.slide import open_slide
from wsidist.query.extract import extract

INDEX_FIELDS = ("slide_id", "x", "y", "w", "h", "level", "mpp", "out_w", "out_h", "edge")


@pytest.fixture(scope="module")
def cmu(real_slides_dir) -> str:
    return str(real_slides_dir / "CMU-1-Small-Region.svs")  # 2220 × 2967 px, 0.499 µm/px


@pytest.fixture(scope="module")
def selection(cmu) -> pa.Table:
    """Whole boxes, a tile clipped by the bottom edge, one overhanging the right edge, with a
    label and an extra column as a user's selection would have."""
    boxes = [(0, 0, 512, 512), (512, 1024, 512, 512), (1024, 2967 - 200, 512, 200),
             (2220 - 256, 0, 512, 512)]  # fmt: skip
    n = len(boxes)
    return pa.table({
        "slide_id": ["cmu"] * n, "url": [cmu] * n,
        "x": [b[0] for b in boxes], "y": [b[1] for b in boxes],
        "w": [b[2] for b in boxes], "h": [b[3] for b in boxes],
        "level": [0] * n, "mpp": [0.499] * n, "score": [0.9, 0.8, 0.7, 0.6],
        "rank": [1, 2, 3, 4], "label": ["tumour", "stroma", "tumour", "fat"],
        "tissue_frac": [1.0, 0.95, 0.5, 0.25],
    })  # fmt: skip


def test_shard_samples_have_json_matching_index_selection_and_reader(selection, client, tmp_path):
    dest = tmp_path / "wds"
    index = extract(selection, str(dest), size=256, shard_bytes=150_000, client=client)
    patches = index.filter(pc.equal(index["kind"], "patch")).to_pylist()
    shards = index.filter(pc.equal(index["kind"], "shard")).to_pylist()
    assert len(patches) == 4 and len(shards) >= 2  # the samples span more than one shard
    sel = {(r["x"], r["y"]): r for r in selection.to_pylist()}
    metas = {}
    for shard in shards:
        with tarfile.open(dest / shard["key"]) as tar:
            names = tar.getnames()
            assert len(names) % 2 == 0
            for image, meta_name in zip(names[0::2], names[1::2]):
                key = image.rpartition(".")[0]
                assert image.endswith(".png") and meta_name == f"{key}.json"  # adjacent, one key
                meta = json.loads(tar.extractfile(meta_name).read())
                (row,) = [p for p in patches if p["member"] == image and p["key"] == shard["key"]]
                assert {k: meta[k] for k in INDEX_FIELDS} == {k: row[k] for k in INDEX_FIELDS}
                s = sel[(row["x"], row["y"])]
                for col in ("url", "score", "rank", "label", "tissue_frac"):
                    assert meta[col] == s[col], col
                assert (meta["selection_level"], meta["selection_mpp"]) == (0, 0.499)
                picture = Image.open(io.BytesIO(tar.extractfile(image).read()))
                assert picture.size == (meta["out_w"], meta["out_h"]) == (256, 256)
                metas[key] = (meta, shard["key"])
    assert len(metas) == 4

    items = list(TarShardDataset.from_index(str(dest)))
    assert len(items) == 4
    for patch, record in items:
        meta, shard_key = metas[record["key"]]
        assert record == {**meta, "key": record["key"], "shard": str(dest / shard_key)}
        assert patch.shape == (256, 256, 3)


@pytest.mark.parametrize("edge", ["pad", "drop"])
def test_edge_boxes_padded_white_or_dropped(selection, cmu, client, tmp_path, edge):
    dest = tmp_path / edge
    index = extract(selection, str(dest), size=256, edge=edge, client=client).to_pylist()
    by_xy = {(r["x"], r["y"]): r for r in index}
    whole = [by_xy[(0, 0)], by_xy[(512, 1024)]]
    clipped, over = by_xy[(1024, 2767)], by_xy[(1964, 0)]
    assert [r["edge"] for r in whole] == ["whole", "whole"]
    assert all(r["status"] == "written" for r in whole)
    if edge == "drop":
        assert [clipped["edge"], over["edge"]] == ["dropped", "dropped"]
        assert [clipped["status"], over["status"]] == ["dropped", "dropped"]
        assert clipped["key"] is None and len(list(dest.rglob("*.png"))) == 2
        return
    assert [clipped["edge"], over["edge"]] == ["padded", "padded"]
    got = np.asarray(Image.open(dest / clipped["key"]).convert("RGB"))
    assert got.shape == (256, 256, 3)  # 512 × 200 → 256 × 100 of slide, not stretched
    assert (got[100:] == 255).all() and (got[:100] != 255).any()
    with open_slide(cmu) as slide:
        box = Image.fromarray(slide.read_region(1024, 2767, 0, (512, 200)))
    ref = np.asarray(box.resize((256, 100), Image.Resampling.LANCZOS), np.float64)
    assert np.abs(got[:100].astype(np.float64) - ref).mean() < 2
    got = np.asarray(Image.open(dest / over["key"]).convert("RGB"))
    assert got.shape == (256, 256, 3) and (got[:, 128:] == 255).all()  # white beyond the slide

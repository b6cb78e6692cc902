"""The tar shard reader on WebDataset-style shards with and without JSON members."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wsidist.data import TarShardDataset
from wsidist.errors import ConfigError
from wsidist.imaging import encode_image
from wsidist.query.patches import tar_bytes


def test_json_members_are_merged_into_the_record(tmp_path):
    rng = np.random.default_rng(0)
    patches = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    members = []
    for i, patch in enumerate(patches):
        key = f"slide-a_x{i * 32}_y0_l0"
        members.append((f"{key}.png", encode_image(patch, "png")))
        if i != 1:  # sample 1 has no JSON: its record comes from the key
            meta = {"slide_id": "slide-a", "x": i * 32, "y": 0, "label": f"L{i}", "score": 0.5}
            members.append((f"{key}.json", json.dumps(meta).encode()))
    (tmp_path / "s-000000.tar").write_bytes(tar_bytes(members))
    items = list(TarShardDataset([str(tmp_path / "s-000000.tar")]))
    assert len(items) == 3
    for (patch, _), expected in zip(items, patches):
        np.testing.assert_array_equal(patch, expected)
    assert items[0][1]["label"] == "L0" and items[2][1]["score"] == 0.5
    assert items[1][1] == {"key": "slide-a_x32_y0_l0", "shard": str(tmp_path / "s-000000.tar"),
                           "slide_id": "slide-a", "x": 32, "y": 0, "level": 0}  # fmt: skip
    raw = list(TarShardDataset([str(tmp_path / "s-000000.tar")], decode=False))
    assert raw[0][0][:4] == b"\x89PNG"


def test_a_sample_without_an_image_or_no_shards_is_an_error(tmp_path):
    (tmp_path / "bad.tar").write_bytes(tar_bytes([("k.json", b"{}")]))
    with pytest.raises(ConfigError, match="no image member"):
        list(TarShardDataset([str(tmp_path / "bad.tar")]))
    with pytest.raises(ConfigError, match="no tar shards"):
        TarShardDataset([])
    with pytest.raises(ConfigError, match="no index.parquet"):
        TarShardDataset.from_index(str(tmp_path))

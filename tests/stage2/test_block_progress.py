"""Per-block progress of the rewrite: write_pyramid reports every block, and on a cluster the
driver hears them as the slide runs."""

from __future__ import annotations

import time

import numpy as np
import pytest

from wsidist.demo.synth import SynthSpec, write_synthetic_slide
from wsidist.io.slide import open_slide
from wsidist.runtime.cluster import subscribe_progress
from wsidist.stage2.config import RewriteConfig
from wsidist.stage2.driver import run_rewrite
from wsidist.stage2.pyramid import PyramidOptions, write_pyramid


@pytest.fixture(scope="module")
def long_slide(tmp_path_factory):
    """A slide of 3 × 2 blocks (blocks of 8 × 8 tiles of 256 px)."""
    path = tmp_path_factory.mktemp("long") / "long.svs"
    write_synthetic_slide(path, SynthSpec(width=4200, height=2200, seed=8, n_blobs=3))
    return path


def test_write_pyramid_reports_every_block(long_slide, tmp_path):
    path = long_slide
    calls: list[tuple[int, int]] = []
    with open_slide(str(path)) as slide:
        mask = np.ones((69, 132), bool)  # everything is tissue: every block is encoded
        write_pyramid(slide, mask, 32, tmp_path / "p.tiff", PyramidOptions(), workers=2,
                      on_block=lambda done, total: calls.append((done, total)))  # fmt: skip
    blocks = 3 * 2  # ceil(4200 / 2048) × ceil(2200 / 2048)
    assert calls == [(i, blocks) for i in range(1, blocks + 1)]


def test_rewrite_on_a_cluster_sends_block_progress(long_slide, client, tmp_path):
    path = long_slide
    messages: list[dict] = []
    subscribe_progress(client, messages.append)
    table = run_rewrite([str(path)], str(tmp_path / "out"), RewriteConfig(), client=client)
    assert table.column("status").to_pylist() == ["ok"]
    deadline = time.monotonic() + 10
    while not any(m["done"] == m["total"] for m in messages) and time.monotonic() < deadline:
        time.sleep(0.05)
    mine = [m for m in messages if m["slide_id"] == "long"]
    assert mine and mine[-1]["done"] == mine[-1]["total"] >= 2
    assert [m["done"] for m in mine] == sorted(m["done"] for m in mine)

"""Sampling classes the candidates of all slides with one DuckDB query, and the sample is the
one that one query per slide gives (a slide's sample never depends on the other slides)."""

from __future__ import annotations

import pytest

from wsidist.errors import WsidistError
from wsidist.query import sample as sampling
from wsidist.query.sample import SampleConfig, sample
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.driver import run_stage1

CONFIGS = [
    SampleConfig(size="128", stride="64", jitter="16", seed=3, per_class=10,
                 class_by="CASE WHEN tissue_frac > 0.8 THEN 'high' ELSE 'low' END"),
    SampleConfig(size="100", where="score > 0.1", min_tissue=0.3),
    SampleConfig(size="150", within_contours=True, pad="10", class_by="slide_id"),
]  # fmt: skip


@pytest.fixture(scope="module")
def out(synthetic_slides, client, tmp_path_factory):
    root = tmp_path_factory.mktemp("sample-batch") / "out"
    table = run_stage1([str(s.path) for s in synthetic_slides], str(root),
                       Stage1Config(scale=16, tile_size=256), client=client)  # fmt: skip
    assert table["status"].to_pylist() == ["ok"] * len(synthetic_slides)
    return root


def _queries(monkeypatch) -> list[int]:
    """Counts the tile queries (the real ones run)."""
    calls, real = [], sampling._tile_query
    monkeypatch.setattr(
        sampling,
        "_tile_query",
        lambda con, probe, *a: calls.append(probe.num_rows) or real(con, probe, *a),
    )
    return calls


@pytest.mark.parametrize("config", CONFIGS, ids=["per_class", "where", "contours"])
def test_one_query_and_the_per_slide_sample(out, config, monkeypatch):
    calls = _queries(monkeypatch)
    together = sample(out, config)
    assert len(calls) == 1 and together.table.num_rows > 0
    assert len(set(together.table["slide_id"].to_pylist())) == 3
    monkeypatch.setattr(sampling, "MAX_PROBE_BOXES", 1)  # one slide per query, as before
    alone = sample(out, config)
    assert len(calls) == 4  # one more per slide
    assert alone.table.equals(together.table) and alone.counts == together.counts
    assert alone.table.schema.metadata == together.table.schema.metadata


def test_a_failing_expression_names_its_slide(out):
    with pytest.raises(WsidistError, match=r"^pens: sampling query failed"):
        sample(out, SampleConfig(size="128", where="CAST(slide_id AS INTEGER) > 0"))

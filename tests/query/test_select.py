"""wsidist.query.select: DuckDB selections over a real stage-1 output (local and on S3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from wsidist.errors import WsidistError
from wsidist.io.storage import Store
from wsidist.query.select import _connect, select, selection_counts, write_selection
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.driver import run_stage1

BASE_COLUMNS = ["slide_id", "url", "x", "y", "w", "h", "level", "mpp", "score", "rank"]


@pytest.fixture(scope="module")
def stage1_out(real_slides_dir, tmp_path_factory, client) -> Path:
    """Stage 1 (scale 16) on two real slides and one garbage .svs, run once for the module."""
    folder = tmp_path_factory.mktemp("select")
    bad = folder / "garbage.svs"
    bad.write_bytes(b"II*\x00 this is not a slide" * 10)
    out = folder / "out"
    inputs = [
        str(real_slides_dir / "CMU-1-Small-Region.svs"),
        str(real_slides_dir / "kidney-48-5.tif"),
        str(bad),
    ]
    table = run_stage1(inputs, str(out), Stage1Config(scale=16), client=client)
    status = dict(zip(table["slide_id"].to_pylist(), table["status"].to_pylist()))
    assert status == {"CMU-1-Small-Region": "ok", "kidney-48-5": "ok", "garbage": "failed"}
    return out


def all_tiles(out: Path) -> pa.Table:
    """Every tile of the output, read with pyarrow alone (no DuckDB): the hive dataset."""
    import pyarrow.dataset as ds

    return ds.dataset(out / "tiles", format="parquet", partitioning="hive").to_table()


def expected_top(tiles: pa.Table, n: int) -> dict[str, list[tuple[int, int, float]]]:
    """Per slide, (x, y, score) of the n best tiles: score desc, then rank, row, col."""
    out: dict[str, list[tuple[int, int, float]]] = {}
    for sid in sorted(set(tiles["slide_id"].to_pylist())):
        part = tiles.filter(pc.equal(tiles["slide_id"], sid))
        part = part.sort_by([("score", "descending"), ("rank", "ascending"), ("row", "ascending"),
                             ("col", "ascending")])  # fmt: skip
        out[sid] = list(
            zip(part["x"].to_pylist()[:n], part["y"].to_pylist()[:n], part["score"].to_pylist()[:n])
        )
    return out


def as_groups(table: pa.Table) -> dict[str, list[tuple[int, int, float]]]:
    out: dict[str, list[tuple[int, int, float]]] = {}
    for r in table.to_pylist():
        out.setdefault(r["slide_id"], []).append((r["x"], r["y"], r["score"]))
    return out


def test_top_n_per_slide_matches_pyarrow(stage1_out):
    table = select(str(stage1_out), top=5)
    assert table.column_names == [*BASE_COLUMNS, "tissue_frac", "level_count"]
    assert as_groups(table) == expected_top(all_tiles(stage1_out), 5)
    slides = pq.read_table(stage1_out / "slides.parquet").to_pylist()
    by_id = {s["slide_id"]: s for s in slides}
    for r in table.to_pylist():
        assert r["level"] == 0
        assert r["url"] == by_id[r["slide_id"]]["url"]
        assert r["mpp"] == by_id[r["slide_id"]]["mpp_x"]
    assert table["slide_id"].to_pylist() == sorted(table["slide_id"].to_pylist())


def test_no_options_returns_every_tile_of_ok_slides_sorted(stage1_out):
    table = select(str(stage1_out))
    tiles = all_tiles(stage1_out)
    assert table.num_rows == tiles.num_rows
    for sid, rows in as_groups(table).items():
        scores = [s for _, _, s in rows]
        assert scores == sorted(scores, reverse=True), sid


def test_failed_slides_excluded_even_with_stale_tiles(stage1_out, tmp_path):
    assert "garbage" not in set(select(str(stage1_out))["slide_id"].to_pylist())
    # a failed slide whose old tile table is still there is excluded too
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(stage1_out, copy)
    stale = copy / "tiles" / "slide_id=garbage"
    stale.mkdir()
    src = copy / "tiles" / "slide_id=kidney-48-5" / "part-0.parquet"
    pq.write_table(pq.read_table(src), stale / "part-0.parquet")  # the folder names the slide
    assert "garbage" not in set(select(str(copy))["slide_id"].to_pylist())


def test_where_filters_before_ranking(stage1_out):
    where = "tissue_frac >= 0.5 AND entropy > 3"
    table = select(str(stage1_out), where=where, top=3)
    tiles = all_tiles(stage1_out)
    mask = pc.and_(pc.greater_equal(tiles["tissue_frac"], 0.5), pc.greater(tiles["entropy"], 3))
    expected = expected_top(tiles.filter(mask), 3)
    assert as_groups(table) == expected
    assert table.num_rows > 0
    assert min(table["tissue_frac"].to_pylist()) >= 0.5


def test_where_on_slide_columns(stage1_out):
    slides = pq.read_table(stage1_out / "slides.parquet")
    vendor = dict(zip(slides["slide_id"].to_pylist(), slides["vendor"].to_pylist()))
    cmu_vendor = vendor["CMU-1-Small-Region"]
    table = select(str(stage1_out), where=f"vendor = '{cmu_vendor}' AND mpp_x < 1", top=2)
    ids = set(table["slide_id"].to_pylist())
    assert "CMU-1-Small-Region" in ids
    assert all(vendor[i] == cmu_vendor for i in ids)


def test_strata_respect_limits(stage1_out):
    strata = [(0.8, 10), (0.1, 5)]
    table = select(str(stage1_out), strata=strata)
    assert table.column_names == [*BASE_COLUMNS, "tissue_frac", "level_count", "stratum"]
    tiles = all_tiles(stage1_out)
    rows = table.to_pylist()
    for r in rows:
        if r["stratum"] == 0.8:
            assert r["tissue_frac"] >= 0.8
        else:
            assert r["stratum"] == 0.1 and 0.1 <= r["tissue_frac"] < 0.8
    for sid in set(tiles["slide_id"].to_pylist()):
        frac = np.asarray(tiles.filter(pc.equal(tiles["slide_id"], sid))["tissue_frac"])
        for lo, hi, limit in ((0.8, 1.01, 10), (0.1, 0.8, 5)):
            got = [r for r in rows if r["slide_id"] == sid and r["stratum"] == lo]
            available = int(((frac >= lo) & (frac < hi)).sum())
            assert len(got) == min(limit, available), (sid, lo)
            # the best of the stratum: nothing left out scores higher than what was kept
            part = tiles.filter(pc.equal(tiles["slide_id"], sid))
            in_stratum = part.filter(
                pc.and_(pc.greater_equal(part["tissue_frac"], lo), pc.less(part["tissue_frac"], hi))
            )
            best = sorted(in_stratum["score"].to_pylist(), reverse=True)[:limit]
            assert sorted((r["score"] for r in got), reverse=True) == best
    counts = selection_counts(table).to_pylist()
    assert sum(c["n_tiles"] for c in counts) == table.num_rows
    assert [c["slide_id"] for c in counts] == sorted(c["slide_id"] for c in counts)


def test_strata_and_top_combined(stage1_out):
    table = select(str(stage1_out), strata=[(0.8, 10), (0.1, 5)], top=4)
    for c in selection_counts(table).to_pylist():
        assert c["n_tiles"] <= 4


@pytest.mark.parametrize("strata", [[], [(1.5, 3)], [(0.5, -1)], [(0.5, 2), (0.5, 3)], [(0.5,)]])
def test_bad_strata(stage1_out, strata):
    with pytest.raises(WsidistError):
        select(str(stage1_out), strata=strata)


def test_bad_expression_names_duckdb_error_and_columns(stage1_out):
    with pytest.raises(WsidistError) as info:
        select(str(stage1_out), where="tissue_fracc > 1")
    message = str(info.value)
    assert "tissue_fracc" in message
    assert "Binder Error" in message or "not found" in message  # DuckDB's own words
    assert "available columns:" in message
    for column in ("tissue_frac", "entropy", "score", "mpp_x", "vendor", "url"):
        assert column in message.split("available columns:")[1]


def test_syntax_error_is_wsidist_error(stage1_out):
    with pytest.raises(WsidistError, match="available columns"):
        select(str(stage1_out), where="tissue_frac >>= (")


def test_missing_output_and_no_tiles(tmp_path):
    with pytest.raises(WsidistError, match="slides.parquet"):
        select(str(tmp_path / "nowhere"))
    empty = tmp_path / "empty"
    empty.mkdir()
    pq.write_table(pa.table({"slide_id": ["a"], "status": ["ok"], "url": ["a.svs"]}),
                   empty / "slides.parquet")  # fmt: skip
    with pytest.raises(WsidistError, match="no tile tables"):
        select(str(empty))


def test_write_selection_roundtrip(stage1_out, tmp_path):
    table = select(str(stage1_out), top=3)
    path = write_selection(table, str(tmp_path / "sel" / "top3.parquet"))
    assert Path(path) == tmp_path / "sel" / "top3.parquet"
    assert pq.read_table(path).equals(table)
    assert sorted(p.name for p in (tmp_path / "sel").iterdir()) == ["top3.parquet"]


@pytest.mark.slow
def test_select_on_s3_matches_local(stage1_out, s3, s3_bucket):
    fs = s3.filesystem()
    bucket = s3_bucket.removeprefix("s3://")
    fs.put(str(stage1_out), f"{bucket}/run1", recursive=True)
    assert fs.exists(f"{bucket}/run1/slides.parquet")
    kwargs = {"top": 4, "where": "tissue_frac > 0.2", "strata": [(0.8, 3), (0.1, 2)]}
    remote = select(f"{s3_bucket}/run1", storage_options=s3.storage_options, **kwargs)
    local = select(str(stage1_out), **kwargs)
    assert remote.num_rows > 0
    assert remote.equals(local)
    url = write_selection(remote, f"{s3_bucket}/sel/top.parquet", s3.storage_options)
    assert url == f"{s3_bucket}/sel/top.parquet"
    with fs.open(f"{bucket}/sel/top.parquet", "rb") as fh:
        assert pq.read_table(fh).equals(remote)
    assert not [p for p in fs.find(f"{bucket}/sel") if "_tmp-" in p]

    # the connection select() uses reads s3:// through fsspec: httpfs is neither loaded nor
    # auto-installed/auto-loaded
    con = _connect(Store(f"{s3_bucket}/run1", s3.storage_options))
    n = con.sql(f"SELECT count(*) FROM read_parquet('{s3_bucket}/run1/tiles/**/*.parquet')")
    assert n.fetchall()[0][0] == all_tiles(stage1_out).num_rows
    settings = dict(
        con.sql(
            "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('autoinstall_known_extensions', 'autoload_known_extensions')"
        ).fetchall()
    )
    assert settings == {
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
    }
    httpfs = con.sql(
        "SELECT loaded FROM duckdb_extensions() WHERE extension_name = 'httpfs'"
    ).fetchall()
    assert httpfs in ([], [(False,)])

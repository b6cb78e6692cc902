"""Slide ids stable across runs, nothing lost or duplicated: on a real LocalCluster.

Each case of "silent loss, duplication and staleness" that concerns ids and inputs: a second
run never replaces another slide's rows, a run never stores one slide twice, DICOM series are
one row each, and a job's output inside its input folder is not read back as slides.
"""

from __future__ import annotations

import shutil

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from wsidist.demo.dicom import pyramid, write_dicom_series
from wsidist.demo.synth import SynthSpec, write_synthetic_slide
from wsidist.errors import ConfigError
from wsidist.io.slide import open_slide
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.driver import run_stage1
from wsidist.stage2.config import RewriteConfig
from wsidist.stage2.driver import run_rewrite

FAST = Stage1Config(scale=32)


def tile_counts(out) -> dict[str, int]:
    sql = f"SELECT slide_id, count(*) FROM read_parquet('{out}/tiles/**/*.parquet', hive_partitioning = true) GROUP BY 1"
    return dict(duckdb.sql(sql).fetchall())


def rows(out) -> dict[str, dict]:
    return {r["slide_id"]: r for r in pq.read_table(f"{out}/slides.parquet").to_pylist()}


@pytest.fixture()
def same_named(real_slides_dir, tmp_path):
    """Two different slides with one file name, in folders a/ and b/."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copy(real_slides_dir / "CMU-1-Small-Region.svs", tmp_path / "a" / "same.svs")
    shutil.copy(real_slides_dir / "tcga-cr-7395-01a-01-ts1.svs", tmp_path / "b" / "same.svs")
    return tmp_path / "a" / "same.svs", tmp_path / "b" / "same.svs"


def test_a_second_run_never_replaces_another_slides_row(client, same_named, tmp_path):
    a, b = same_named
    out = tmp_path / "out"
    first = run_stage1([str(a)], str(out), FAST, client=client).to_pylist()
    assert [r["slide_id"] for r in first] == ["same"]
    before = tile_counts(out)
    with pytest.raises(ConfigError) as err:
        run_stage1([str(b)], str(out), FAST, client=client)
    assert str(a) in str(err.value) and str(b) in str(err.value)
    assert rows(out)["same"]["url"] == str(a) and tile_counts(out) == before
    # both in one run: refused before any work, naming both (no same + same-<hash>)
    with pytest.raises(ConfigError, match="same"):
        run_stage1([str(a), str(b)], str(out / "two"), FAST, client=client)
    assert not (out / "two").exists()
    # the same URL again: its own id, reused
    again = run_stage1([str(a)], str(out), FAST, client=client).to_pylist()
    assert again[0]["slide_id"] == "same" and again[0]["skipped"]


def test_refused_from_status_files_alone(client, same_named, tmp_path):
    """A run that died before writing slides.parquet still claims its ids."""
    a, b = same_named
    out = tmp_path / "out"
    run_stage1([str(a)], str(out), FAST, client=client)
    (out / "slides.parquet").unlink()
    with pytest.raises(ConfigError, match="already holds"):
        run_stage1([str(b)], str(out), FAST, client=client)
    # and an id that differs only in case
    upper = tmp_path / "c" / "SAME.svs"
    upper.parent.mkdir()
    shutil.copy(b, upper)
    with pytest.raises(ConfigError, match="case-insensitively"):
        run_stage1([str(upper)], str(out), FAST, client=client)


def test_svs_and_its_dicom_conversion_keep_their_ids(client, real_slides_dir, tmp_path):
    """CMU-1-Small-Region.svs and the DICOM folder cmu-1-small-region name one id
    (case-insensitively): refused together, and a manifest gives each its own id."""
    svs = real_slides_dir / "CMU-1-Small-Region.svs"
    dicom = real_slides_dir / "dicom" / "cmu-1-small-region"
    out = tmp_path / "out"
    alone = run_stage1([str(svs)], str(out), FAST, client=client).to_pylist()
    assert alone[0]["slide_id"] == "CMU-1-Small-Region"
    with pytest.raises(ConfigError) as err:
        run_stage1([str(svs), str(dicom)], str(tmp_path / "both"), FAST, client=client)
    assert str(svs) in str(err.value) and str(dicom) in str(err.value)
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"url,slide_id\n{dicom},cmu-dicom\n")
    both = run_stage1([str(svs)], str(out), FAST, client=client, manifest=str(manifest))
    got = {r["slide_id"]: r for r in both.to_pylist()}
    assert set(got) == {"CMU-1-Small-Region", "cmu-dicom"}
    assert got["CMU-1-Small-Region"]["skipped"]  # same id as in the first run
    dcm = got["cmu-dicom"]
    assert dcm["status"] == "ok" and dcm["backend"] == "dicom"
    assert "JFIF" in dcm["warning"]  # the mis-tagged colour space is flagged in the row
    assert abs(dcm["tissue_frac"] - got["CMU-1-Small-Region"]["tissue_frac"]) < 0.05


def test_each_dicom_series_in_one_folder_is_one_row(client, tmp_path):
    rgb = np.full((700, 900, 3), 236, np.uint8)
    rgb[200:500, 200:700] = (170, 80, 150)  # a block of "tissue"
    folder = tmp_path / "mixed"
    a = write_dicom_series(folder, pyramid(rgb, 2), prefix="first")
    b = write_dicom_series(folder, [np.ascontiguousarray(rgb[:400, :300])], prefix="second")
    out = tmp_path / "out"
    table = run_stage1([str(a[1]), str(b[0])], str(out), FAST, client=client).to_pylist()
    got = {r["url"]: r for r in table}
    assert set(got) == {str(a[0]), str(b[0])}
    assert (got[str(a[0])]["width"], got[str(b[0])]["width"]) == (900, 300)
    assert all(r["status"] == "ok" for r in table)
    assert len({r["slide_id"] for r in table}) == 2
    # the folder lists the same two series, under the same ids; a damaged file is its own row
    (folder / "damaged.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 64)
    again = {
        r["slide_id"]: r
        for r in run_stage1([str(folder)], str(out), FAST, client=client).to_pylist()
    }
    assert set(again) == {r["slide_id"] for r in table} | {"damaged"}
    assert all(again[r["slide_id"]]["skipped"] for r in table)
    assert again["damaged"]["status"] == "failed" and "damaged.dcm" in again["damaged"]["error"]


def test_output_inside_the_input_folder_is_not_read_back(client, tmp_path):
    """score in --out in/out, then rewrite, then score again: still one slide."""
    src = tmp_path / "in"
    src.mkdir()
    write_synthetic_slide(src / "s.svs", SynthSpec(width=1500, height=1100, seed=4, n_blobs=2))
    out = src / "out"
    run_stage1([str(src)], str(out), FAST, client=client)
    rewritten = run_rewrite([str(src)], str(out), RewriteConfig(effort=1), client=client)
    assert rewritten.column("status").to_pylist() == ["ok"]
    assert (out / "pyramids" / "s.tiff").exists()
    table = run_stage1([str(src)], str(out), FAST, client=client).to_pylist()
    assert [r["slide_id"] for r in table] == ["s"] and table[0]["skipped"]
    assert list(rows(out)) == ["s"]
    with open_slide(str(src / "s.svs")) as s:
        n_tiles = rows(out)["s"]["n_tiles"]
        assert n_tiles == -(-s.dimensions[0] // 1024) * -(-s.dimensions[1] // 1024)
    assert tile_counts(out) == {"s": n_tiles}

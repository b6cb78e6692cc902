"""End to end on a real LocalCluster with 2 worker processes, read back with DuckDB."""

import json
import os
import shutil
import subprocess
import sys

import duckdb
import pyarrow.parquet as pq
import pytest

from tests.helpers.cli import run_in_process
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.driver import run_stage1


@pytest.fixture()
def slide_folder(real_slides_dir, tmp_path):
    folder = tmp_path / "slides"
    folder.mkdir()
    shutil.copy(real_slides_dir / "CMU-1-Small-Region.svs", folder / "cmu.svs")
    shutil.copy(real_slides_dir / "CMU-1-Small-Region.svs", folder / "cmu copy (2) #1.svs")
    shutil.copy(real_slides_dir / "tcga-cr-7395-01a-01-ts1.svs", folder / "tcga.svs")
    shutil.copy(real_slides_dir / "kidney-48-5.tif", folder / "kidney.tif")
    (folder / "broken.svs").write_bytes(
        (real_slides_dir / "CMU-1-Small-Region.svs").read_bytes()[:150_000]
    )
    return folder


def _tiles_sql(out):
    return f"read_parquet('{out}/tiles/**/*.parquet', hive_partitioning = true)"


@pytest.mark.slow
def test_stage1_on_two_workers_read_back_with_duckdb(client, slide_folder, tmp_path):
    out = tmp_path / "out"
    seen = []
    table = run_stage1(
        [str(slide_folder)], str(out), Stage1Config(scale=16), client=client, on_result=seen.append
    )
    rows = {r["slide_id"]: r for r in table.to_pylist()}
    assert len(seen) == 5
    assert set(rows) == {"cmu", "cmu_copy_2_1", "tcga", "kidney", "broken"}
    assert rows["broken"]["status"] == "failed" and "broken.svs" in rows["broken"]["error"]
    assert all(rows[s]["status"] == "ok" for s in rows if s != "broken")
    # every output stays inside OUT, under the sanitised id
    assert all(p.resolve().is_relative_to(out.resolve()) for p in out.rglob("*"))
    assert (out / "masks" / "cmu_copy_2_1.png").exists()

    slides = pq.read_table(out / "slides.parquet")
    assert (
        slides.schema.metadata[b"wsidist.config_hash"]
        == Stage1Config(scale=16).config_hash().encode()
    )
    con = duckdb.connect()
    counts = dict(
        con.sql(f"SELECT slide_id, count(*) FROM {_tiles_sql(out)} GROUP BY 1").fetchall()
    )
    assert counts == {s: r["n_tiles"] for s, r in rows.items() if r["status"] == "ok"}
    top = con.sql(
        f"""SELECT slide_id, x, y, w, h, score, rank FROM {_tiles_sql(out)}
            QUALIFY row_number() OVER (PARTITION BY slide_id ORDER BY score DESC) <= 3"""
    ).fetchall()
    assert len(top) == sum(min(3, c) for c in counts.values())
    assert all(r[6] <= 3 for r in top)
    joined = con.sql(
        f"""SELECT count(*) FROM {_tiles_sql(out)} t
            JOIN read_parquet('{out}/slides.parquet') s USING (slide_id)
            WHERE s.status = 'ok' AND t.tissue_frac >= 0.8"""
    ).fetchall()[0][0]
    assert joined > 0

    # a rerun skips what is done with this config, and retries what failed
    again = {
        r["slide_id"]: r
        for r in run_stage1(
            [str(slide_folder)], str(out), Stage1Config(scale=16), client=client
        ).to_pylist()
    }
    assert all(again[s]["skipped"] for s in again if s != "broken")
    assert not again["broken"]["skipped"]


@pytest.mark.slow
def test_user_scorer_travels_to_workers_and_slides_table_accumulates(
    client, real_slides_dir, tmp_path
):
    out = tmp_path / "out"
    run_stage1([str(real_slides_dir / "kidney-48-5.tif")], str(out), client=client)

    def by_row(tile):
        return float(tile.row)

    table = run_stage1(
        [str(real_slides_dir / "CMU-1-Small-Region.svs")], str(out), client=client, scorer=by_row
    )
    assert set(table.column("slide_id").to_pylist()) == {"kidney-48-5", "CMU-1-Small-Region"}
    tiles = pq.read_table(
        out / "tiles" / "slide_id=CMU-1-Small-Region" / "part-0.parquet"
    ).to_pylist()
    best = min(tiles, key=lambda t: t["rank"])
    assert best["row"] == max(t["row"] for t in tiles)


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "wsidist.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_cli_exit_code_and_summary_name_failed_slides(client, real_slides_dir, tmp_path):
    """On the session cluster (``--scheduler``): a LocalCluster of the command's own is
    test_summary's run (``--workers 1 --dashboard``)."""
    bad = tmp_path / "bad.svs"
    bad.write_text("not a slide")
    res = _cli(
        "score",
        str(real_slides_dir / "kidney-48-5.tif"),
        str(bad),
        "--out",
        "out",
        "--scheduler",
        client.scheduler.address,
        cwd=tmp_path,
    )
    assert res.returncode == 1, res.stderr
    assert "bad" in res.stderr and "failed" in res.stderr
    assert (tmp_path / "out" / "slides.parquet").exists()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--scale", "-2"], "scale"),
        (["--tissue", "green_channel & gray_filter"], "gray_filter"),
        (["--edge", "pad"], "edge"),
        (["--tile-size", "512", "--tile-um", "256"], "not both"),
    ],
)
def test_cli_bad_arguments_fail_before_any_work(
    real_slides_dir, tmp_path, monkeypatch, args, named
):
    """In process (they fail before a cluster starts); the next test runs the command."""
    from typer.testing import CliRunner

    from wsidist.cli.app import app

    monkeypatch.chdir(tmp_path)
    slide = str(real_slides_dir / "kidney-48-5.tif")
    res = CliRunner().invoke(app, ["score", slide, "--out", "out", *args], env={"COLUMNS": "80"})
    assert res.exit_code == 2 and res.exception.__class__ is SystemExit, res.output
    assert named in " ".join(res.stderr.split())
    assert not (tmp_path / "out").exists()


def test_cli_missing_input_is_named(tmp_path):
    """In process (it fails before any work): the other commands here run as subprocesses."""
    res = run_in_process("score", "nowhere/*.svs", "--out", "out", cwd=tmp_path)
    assert res.returncode == 2 and "nowhere" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "out").exists()


def test_cli_info_json(real_slides_dir, tmp_path):
    res = _cli("info", "--json", str(real_slides_dir / "tcga-cr-7395-01a-01-ts1.svs"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    (info,) = json.loads(res.stdout)
    assert info["vendor"] == "aperio" and info["mpp_x"] is None and info["level_count"] == 2


@pytest.mark.slow
def test_a_killed_worker_is_retried(own_client, real_slides_dir, tmp_path):
    marker = tmp_path / "died-once"

    def dies_once(tile):
        if not marker.exists():
            marker.touch()
            os._exit(1)  # the worker process dies mid-slide, as on a segfault or OOM kill
        return tile.features["tissue_frac"]

    table = run_stage1(
        [str(real_slides_dir / "kidney-48-5.tif")],
        str(tmp_path / "out"),
        client=own_client,
        scorer=dies_once,
    )
    (row,) = table.to_pylist()
    assert marker.exists()
    assert row["status"] == "ok", row["error"]


def test_cli_filters_lists_presets_and_filters(tmp_path):
    res = _cli("filters", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    for name in (
        "default",
        "hysteresis",
        "green_channel",
        "red_pen",
        "remove_small_objects",
        "kmeans_segmentation",
    ):
        assert name in res.stdout


@pytest.mark.slow
def test_existing_scheduler_by_address(client, real_slides_dir, tmp_path):
    address = client.scheduler.address
    table = run_stage1(
        [str(real_slides_dir / "kidney-48-5.tif")], str(tmp_path / "out"), scheduler=address
    )
    (row,) = table.to_pylist()
    assert row["status"] == "ok"
    # the slide ran on one of that cluster's worker processes
    pids = {str(pid) for pid in client.run(os.getpid).values()}
    assert row["worker"].rsplit(":", 1)[1] in pids


def test_cli_select_and_top_tiles(client, real_slides_dir, tmp_path):
    """extract runs on the session cluster (``--scheduler``); its own LocalCluster is
    tests/cli/test_output.py's run (``--workers 1``)."""
    from wsidist.io.storage import Store
    from wsidist.stage1.worker import SlideTask, process_slide

    out = tmp_path / "out"
    url = str(real_slides_dir / "CMU-1-Small-Region.svs")
    row = process_slide(
        SlideTask(url, "cmu"), Stage1Config(scale=16, tile_size=512), Store(str(out))
    )
    run_stage1_rows = [row]
    # the slides table the driver would write, so select can join on it
    import pyarrow as pa

    from wsidist.stage1.driver import SLIDES_SCHEMA

    pq.write_table(
        pa.Table.from_pylist(
            [{k: r.get(k) for k in SLIDES_SCHEMA.names} for r in run_stage1_rows],
            schema=SLIDES_SCHEMA,
        ),
        out / "slides.parquet",
    )
    res = _cli("select", str(out), "--top", "5", "--stratum", "0.8:3", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    selection = pq.read_table(out / "selection.parquet")
    assert selection.num_rows == 3 and min(selection.column("tissue_frac").to_pylist()) >= 0.8
    res = _cli(
        "extract", str(out / "selection.parquet"), "--to", "patches",
        "--scheduler", client.scheduler.address, cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "3 written" in res.stderr
    index = pq.read_table(tmp_path / "patches" / "index.parquet")
    assert index.num_rows == 3 and set(index.column("status").to_pylist()) == {"written"}
    again = _cli(
        "extract", str(out / "selection.parquet"), "--to", "patches",
        "--scheduler", client.scheduler.address, cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0 and "0 written, 3 unchanged" in again.stderr
    bad = run_in_process("select", str(out), "--stratum", "lots", cwd=tmp_path)
    assert bad.returncode == 2 and "lots" in bad.stderr

    res = _cli(
        "top-tiles",
        url,
        "--out",
        "tiles",
        "--n",
        "4",
        "--size",
        "128",
        "--tile-size",
        "512",
        "--scale",
        "16",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    written = sorted((tmp_path / "tiles").iterdir())
    assert len(written) == 4 and all(p.suffix == ".png" for p in written)
    best = max(
        (r for r in pq.read_table(out / "tiles" / "slide_id=cmu" / "part-0.parquet").to_pylist()),
        key=lambda r: r["score"],
    )
    assert any(f"_r1_x{best['x']}_y{best['y']}" in p.name for p in written)

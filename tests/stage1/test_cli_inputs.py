"""Bad inputs through the command line: rows or an early error, never a traceback.

Jobs run on the test LocalCluster (``--scheduler``); every command runs as a user runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from wsidist.demo.dicom import pyramid, write_dicom_series


def cli(*args, cwd, timeout=300):
    res = subprocess.run(
        [sys.executable, "-m", "wsidist.cli", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert "Traceback" not in res.stderr + res.stdout, res.stderr
    return res


def cli_in_process(*args, cwd, monkeypatch):
    """``cli`` in this process, for commands that fail before any work starts (a subprocess
    of each command runs elsewhere in this module): the exit code, stdout and stderr."""
    from typer.testing import CliRunner

    from wsidist.cli.app import app

    monkeypatch.chdir(cwd)
    res = CliRunner().invoke(app, [*map(str, args)], env={"COLUMNS": "80"})
    assert res.exception is None or res.exception.__class__ is SystemExit, res.exception
    assert "Traceback" not in res.stderr + res.stdout, res.stderr
    return subprocess.CompletedProcess(args, res.exit_code, res.stdout, res.stderr)


@pytest.fixture()
def cmu(real_slides_dir):
    return real_slides_dir / "CMU-1-Small-Region.svs"


def test_broken_links_and_odd_names_in_a_folder_are_rows(client, cmu, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(cmu, folder / "..double.svs")
    os.symlink("/nonexistent/x.svs", folder / "dangling.svs")
    os.symlink("loop.svs", folder / "loop.svs")
    os.symlink("..", folder / "cycle")  # a folder cycle: no duplicates
    (folder / "notes.txt").write_text("x")
    (folder / "._double.svs").write_bytes(b"\0\x05\x16\x07")
    res = cli("score", folder, "--out", "out", "--scheduler", client.scheduler.address,
              cwd=tmp_path)  # fmt: skip
    assert res.returncode == 1, res.stderr
    got = {r["slide_id"]: r for r in pq.read_table(tmp_path / "out/slides.parquet").to_pylist()}
    assert set(got) == {"double", "dangling", "loop"}
    assert got["double"]["status"] == "ok"
    assert "dangling symbolic link" in got["dangling"]["error"]
    assert "symbolic link loop" in got["loop"]["error"]
    assert "skipped 1 file: unknown extension (.txt ×1)" in res.stderr
    assert "macOS resource fork" in res.stderr


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--tile-size", "99999999999999999999"], "tile_size"),
        (["--workers", "99999999999999999999"], "workers"),
    ],
)
def test_out_of_range_numbers_fail_before_any_work(cmu, tmp_path, monkeypatch, args, named):
    res = cli_in_process("score", cmu, "--out", "out", *args, cwd=tmp_path, monkeypatch=monkeypatch)
    assert res.returncode == 2 and named in res.stderr
    assert not (tmp_path / "out").exists()


def test_out_pointing_at_a_file_fails_naming_it(cmu, tmp_path, monkeypatch):
    (tmp_path / "taken").write_text("x")
    for out, run in (("taken", cli), ("taken/sub", None)):  # the second in process
        if run is None:
            res = cli_in_process("score", cmu, "--out", out, cwd=tmp_path, monkeypatch=monkeypatch)
        else:
            res = run("score", cmu, "--out", out, cwd=tmp_path)
        assert res.returncode == 2 and "existing file" in res.stderr and "taken" in res.stderr
    assert (tmp_path / "taken").read_text() == "x"


def test_job_file_whose_config_is_not_a_mapping(cmu, tmp_path, monkeypatch):
    (tmp_path / "job.yaml").write_text(f"inputs: [{cmu}]\nout: out\nconfig: 5\n")
    res = cli_in_process("score", "--config", "job.yaml", cwd=tmp_path, monkeypatch=monkeypatch)
    assert res.returncode == 2 and "config must be a mapping" in res.stderr


def test_top_tiles_in_um_without_mpp_is_a_clear_error(real_slides_dir, tmp_path, monkeypatch):
    tcga = real_slides_dir / "tcga-cr-7395-01a-01-ts1.svs"
    res = cli_in_process(
        "top-tiles", tcga, "--out", "best", "--tile-um", "100", cwd=tmp_path,
        monkeypatch=monkeypatch,
    )  # fmt: skip
    assert res.returncode == 2 and "microns per pixel" in res.stderr


def test_markup_like_paths_print_as_text(client, cmu, tmp_path, monkeypatch):
    """A path containing "[/]" in every rich output: info, summaries, select, top-tiles, demo.
    score and demo run as subprocesses; info, select and top-tiles in this process (the same
    typer app and consoles; tests/stage1/test_job.py runs each of them as a subprocess)."""
    odd = tmp_path / "a[" / "]b"
    odd.mkdir(parents=True)
    shutil.copy(cmu, odd / "s[x].svs")
    (odd / "bad[y].svs").write_text("not a slide [/]")

    def run(*args):
        return cli_in_process(*args, cwd=tmp_path, monkeypatch=monkeypatch)

    res = run("info", odd / "s[x].svs", odd / "bad[y].svs")
    assert res.returncode == 1 and "s[x].svs" in res.stdout and "bad[y].svs" in res.stderr
    res = cli("score", odd, "--out", "o[/]", "--scheduler", client.scheduler.address,
              cwd=tmp_path)  # fmt: skip
    assert (
        res.returncode == 1
        and "bad[y].svs" in res.stderr
        and "1 of 2 slide(s) failed" in res.stderr
    )
    shutil.copytree(tmp_path / "o[" / "]", tmp_path / "plain")
    res = run("select", "plain", "--top", "2", "--to", "sel[/]x/s.parquet")
    assert res.returncode == 0 and "sel[/]x" in res.stderr, res.stderr  # "outputs in …"
    res = run("top-tiles", odd / "s[x].svs", "--out", "t[/]", "--n", "1")
    assert res.returncode == 0 and "t[/]" in res.stderr
    res = cli("demo", "--out", "d[/]", "--n", "1", "--workers", "1", "--no-batch", cwd=tmp_path)
    assert res.returncode == 0 and "d[/]" in res.stderr


def test_info_on_one_file_of_a_two_series_folder(tmp_path, monkeypatch):
    rgb = np.full((500, 700, 3), 230, np.uint8)
    write_dicom_series(tmp_path / "m", pyramid(rgb, 2), prefix="big")
    other = write_dicom_series(tmp_path / "m", [np.full((300, 200, 3), 90, np.uint8)], prefix="s")
    res = cli("info", "--json", other[0], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    (info,) = json.loads(res.stdout)
    assert (info["width"], info["height"], info["level_count"]) == (200, 300, 1)
    res = cli_in_process("info", "--json", tmp_path / "m", cwd=tmp_path, monkeypatch=monkeypatch)
    assert sorted((i["width"], i["level_count"]) for i in json.loads(res.stdout)) == [
        (200, 1),
        (700, 2),
    ]


def test_cli_manifest_and_rewrite_note(client, real_slides_dir, tmp_path):
    """--manifest on score and rewrite; the rewrite summary shows the no-mpp note."""
    tcga = real_slides_dir / "tcga-cr-7395-01a-01-ts1.svs"
    (tmp_path / "m.csv").write_text(f"url,slide_id,site\n{tcga},tcga-hn,head\n")
    address = client.scheduler.address
    res = cli("score", "--manifest", "m.csv", "--out", "out", "--scheduler", address,
              cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    (row,) = pq.read_table(tmp_path / "out" / "slides.parquet").to_pylist()
    assert (row["slide_id"], row["site"]) == ("tcga-hn", "head")
    (tmp_path / "job.yaml").write_text("kind: rewrite\nmanifest: m.csv\nout: out\neffort: 1\n")
    res = cli("rewrite", "--config", "job.yaml", "--scheduler", address, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "no mpp" in res.stdout + res.stderr  # the notes under the table

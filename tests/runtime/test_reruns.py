"""Reruns skip only what is still current: the source file, the config and, for the rewrite, the
stage-1 mask and its config; a failed slide leaves no output that looks current. On a real
LocalCluster, with real and generated slides copied into temporary folders."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np
import pytest
import tifffile

from tests.helpers.paths import CMU, TCGA
from wsidist.demo.synth import SynthSpec, write_synthetic_slide
from wsidist.io.slide import open_slide
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.driver import run_stage1
from wsidist.stage2.config import RewriteConfig
from wsidist.stage2.driver import run_rewrite


def _row(table, slide_id="same"):
    (row,) = [r for r in table.to_pylist() if r["slide_id"] == slide_id]
    return row


def _replace(src, dst, mtime_ns: int | None = None) -> None:
    """Put another file at ``dst`` the way users do (a copy moved over it)."""
    tmp = dst.with_name(dst.name + ".new")
    shutil.copyfile(src, tmp)
    if mtime_ns is not None:
        os.utime(tmp, ns=(mtime_ns, mtime_ns))
    os.replace(tmp, dst)


@pytest.fixture(scope="module")
def glassy(tmp_path_factory):
    """A generated multi-level slide with tissue and glass, and a second, different one."""
    folder = tmp_path_factory.mktemp("generated")
    a, b = folder / "gen-a.svs", folder / "gen-b.svs"
    write_synthetic_slide(a, SynthSpec(width=2400, height=1800, seed=31, n_blobs=2))
    write_synthetic_slide(b, SynthSpec(width=2000, height=1600, seed=32, n_blobs=1))
    return a, b


def test_score_reruns_a_slide_replaced_at_the_same_path(client, real_slides_dir, tmp_path):
    slide = tmp_path / "a" / "same.svs"
    slide.parent.mkdir()
    shutil.copyfile(CMU, slide)
    out = str(tmp_path / "out")
    first = _row(run_stage1([str(slide)], out, Stage1Config(scale=32), client=client))
    assert first["status"] == "ok" and (first["width"], first["height"]) == (2220, 2967)
    again = _row(run_stage1([str(slide)], out, Stage1Config(scale=32), client=client))
    assert again["skipped"]  # nothing changed: skipped

    _replace(TCGA, slide)
    third = _row(run_stage1([str(slide)], out, Stage1Config(scale=32), client=client))
    assert not third["skipped"] and third["status"] == "ok"
    assert (third["width"], third["height"]) == (4443, 3567)  # the new file's size, not the old
    assert third["source_version"] != first["source_version"]
    assert f"size={TCGA.stat().st_size}" in third["source_version"]
    status = json.loads((tmp_path / "out" / "status" / "same.json").read_text())
    assert status["width"] == 4443

    # the same size and an older mtime is still another file
    size_twin = tmp_path / "twin.svs"
    shutil.copyfile(slide, size_twin)
    with open(size_twin, "r+b") as fh:  # same size, other bytes
        fh.seek(-1, os.SEEK_END)
        fh.write(b"\x01")
    _replace(size_twin, slide, mtime_ns=slide.stat().st_mtime_ns - 10**9)
    fourth = _row(run_stage1([str(slide)], out, Stage1Config(scale=32), client=client))
    assert not fourth["skipped"]


def test_rewrite_reruns_when_the_stage1_mask_changes(client, glassy, tmp_path):
    slide, _ = glassy
    out = str(tmp_path / "out")
    s1 = run_stage1([str(slide)], out, Stage1Config(), client=client)
    first = _row(
        run_rewrite([str(slide)], out, RewriteConfig(codec="jpeg"), client=client), "gen-a"
    )
    assert first["status"] == "ok" and first["mask_source"] == "stage1"
    same = _row(run_rewrite([str(slide)], out, RewriteConfig(codec="jpeg"), client=client), "gen-a")
    assert same["skipped"]

    otsu = Stage1Config(tissue="otsu")
    s1b = _row(run_stage1([str(slide)], out, otsu, client=client), "gen-a")
    assert s1b["status"] == "ok" and not s1b["skipped"]
    mask_png = (tmp_path / "out" / "masks" / "gen-a.png").read_bytes()
    redo = _row(run_rewrite([str(slide)], out, RewriteConfig(codec="jpeg"), client=client), "gen-a")
    assert not redo["skipped"] and redo["status"] == "ok"
    assert first["mask_config_hash"] == _row(s1, "gen-a")["config_hash"]
    assert redo["mask_config_hash"] == otsu.config_hash() != first["mask_config_hash"]
    status = json.loads((tmp_path / "out" / "pyramids" / "gen-a.json").read_text())
    assert status["depends_on"]["mask_sha256"] == hashlib.sha256(mask_png).hexdigest()


def test_rewrite_ignores_a_stage1_mask_of_a_replaced_file(client, glassy, tmp_path):
    slide, other = glassy
    target = tmp_path / "in" / "s.svs"
    target.parent.mkdir()
    shutil.copyfile(slide, target)
    out = str(tmp_path / "out")
    run_stage1([str(target)], out, Stage1Config(), client=client)
    first = _row(run_rewrite([str(target)], out, RewriteConfig(codec="jpeg"), client=client), "s")
    assert first["mask_source"] == "stage1"
    _replace(other, target)
    redo = _row(run_rewrite([str(target)], out, RewriteConfig(codec="jpeg"), client=client), "s")
    assert not redo["skipped"] and redo["status"] == "ok"
    # the stage-1 mask belongs to the old file: the rewrite computes one for the new file
    assert redo["mask_source"] == "computed" and (redo["width"], redo["height"]) == (2000, 1600)
    with tifffile.TiffFile(tmp_path / "out" / "pyramids" / "s.tiff") as tif:
        assert tif.pages[0].shape[:2] == (1600, 2000)


def test_a_failed_slide_leaves_no_output_that_looks_current(client, glassy, tmp_path):
    slide, _ = glassy
    target = tmp_path / "in" / "s.svs"
    target.parent.mkdir()
    shutil.copyfile(slide, target)
    out = tmp_path / "out"
    assert _row(run_stage1([str(target)], str(out), client=client), "s")["status"] == "ok"
    ok = _row(run_rewrite([str(target)], str(out), RewriteConfig(codec="jpeg"), client=client), "s")
    assert ok["status"] == "ok" and (out / "pyramids" / "s.tiff").exists()

    corrupt = tmp_path / "corrupt.svs"
    corrupt.write_bytes(target.read_bytes()[:5000])  # a truncated copy
    _replace(corrupt, target)
    failed = _row(
        run_rewrite([str(target)], str(out), RewriteConfig(codec="jpeg"), client=client), "s"
    )
    assert failed["status"] == "failed" and failed["error"]
    assert not (out / "pyramids" / "s.tiff").exists()  # no earlier pyramid next to a failed row
    assert json.loads((out / "pyramids" / "s.json").read_text())["status"] == "failed"

    s1 = _row(run_stage1([str(target)], str(out), client=client), "s")
    assert s1["status"] == "failed"
    for key in ("masks/s.png", "thumbnails/s.jpg", "tiles/slide_id=s"):
        assert not (out / key).exists(), key


def _killer(tile):
    os._exit(1)  # the worker process dies on this slide every time (segfault, OOM kill)


@pytest.mark.slow
def test_a_lost_slide_is_a_failed_status_without_outputs(own_client, glassy, tmp_path):
    """A slide whose worker dies every time: its status file says failed (the tables are built
    from the status files) and its earlier mask and tiles are gone."""
    slide, _ = glassy
    out = tmp_path / "out"
    assert _row(run_stage1([str(slide)], str(out), client=own_client), "gen-a")["status"] == "ok"
    table = run_stage1([str(slide)], str(out), client=own_client, overwrite=True, scorer=_killer)
    row = _row(table, "gen-a")
    assert row["status"] == "failed" and "worker failed on the slide" in row["error"]
    assert json.loads((out / "status" / "gen-a.json").read_text())["status"] == "failed"
    for key in ("masks/gen-a.png", "thumbnails/gen-a.jpg", "tiles/slide_id=gen-a"):
        assert not (out / key).exists(), key


def test_pixels_of_the_rerun_pyramid_come_from_the_new_file(client, glassy, tmp_path):
    slide, other = glassy
    target = tmp_path / "in" / "p.svs"
    target.parent.mkdir()
    shutil.copyfile(slide, target)
    out = tmp_path / "out"
    run_rewrite([str(target)], str(out), RewriteConfig(codec="jpeg", glass="keep"), client=client)
    _replace(other, target)
    run_rewrite([str(target)], str(out), RewriteConfig(codec="jpeg", glass="keep"), client=client)
    with open_slide(str(out / "pyramids" / "p.tiff")) as pyr, open_slide(str(other)) as src:
        a, b = pyr.thumbnail(8).astype(int), src.thumbnail(8).astype(int)
    assert a.shape == b.shape and np.abs(a - b).mean() < 3

"""Reruns decide skips on the driver: a slide that is still current is never a Dask task.

Counts the tasks the real LocalCluster ran (its task stream) on generated slides: a rerun where
every slide is current runs none and returns the same rows; a slide whose file changed is the
only one submitted; a damaged status file is left to the worker, which reruns the slide.
"""

from __future__ import annotations

import os
import shutil

import pytest
from distributed import get_task_stream

from wsidist import layout
from wsidist.demo.synth import SynthSpec, write_synthetic_slide
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.driver import run_stage1

CONFIG = Stage1Config(scale=16)
KEPT = ("slide_id", "status", "n_tiles", "n_tissue_tiles", "source_version", "finished_at")


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """Three small generated slides: one written, two copies under other names (ids)."""
    folder = tmp_path_factory.mktemp("skips")
    first = folder / "s0.svs"
    write_synthetic_slide(first, SynthSpec(width=768, height=512, seed=5, n_blobs=1))
    for i in (1, 2):
        shutil.copyfile(first, folder / f"s{i}.svs")
    return folder


def _row(table, slide_id):
    return next(r for r in table.to_pylist() if r["slide_id"] == slide_id)


def _rows(table):
    return sorted(({k: r[k] for k in KEPT} for r in table.to_pylist()), key=str)


def test_a_rerun_of_current_slides_submits_no_task(client, three, tmp_path):
    out = str(tmp_path / "out")
    first = run_stage1([str(three)], out, CONFIG, client=client)
    assert first.column("status").to_pylist() == ["ok"] * 3
    seen = []
    with get_task_stream(client) as stream:
        again = run_stage1([str(three)], out, CONFIG, client=client, on_result=seen.append)
    assert stream.data == []  # nothing ran on the cluster
    assert again.column("skipped").to_pylist() == [True] * 3
    assert _rows(again) == _rows(first) and len(seen) == 3


def test_only_changed_slides_are_submitted(client, three, tmp_path):
    folder = tmp_path / "in"
    shutil.copytree(three, folder)
    out = tmp_path / "out"
    run_stage1([str(folder)], str(out), CONFIG, client=client)
    os.utime(folder / "s1.svs", ns=(1, 1))  # another source identity: s1 reruns
    (out / layout.status_key("s2")).write_text("{not json")  # damaged: the worker decides
    with get_task_stream(client) as stream:
        table = run_stage1([str(folder)], str(out), CONFIG, client=client)
    by_id = {r["slide_id"]: r for r in table.to_pylist()}
    assert [by_id[s]["skipped"] for s in ("s0", "s1", "s2")] == [True, False, False]
    with get_task_stream(client) as stream_mpp:  # a manifest mpp is part of the config hash
        manifest = tmp_path / "m.csv"
        manifest.write_text(f"url,mpp\n{folder / 's0.svs'},0.25\n")
        table = run_stage1([], str(out), CONFIG, client=client, manifest=str(manifest))
    assert not _row(table, "s0")["skipped"] and len(stream_mpp.data) >= 1
    assert {by_id[s]["status"] for s in by_id} == {"ok"}
    ran = {str(t["key"]) for t in stream.data}
    assert 2 <= len(ran) <= 4  # two slides' partitions, nothing for s0

"""``wsidist stats`` and ``wsidist report`` as a user runs them (subprocesses)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from tests.helpers.paths import REPO


def wsidist(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "wsidist.cli", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=600)  # fmt: skip


def test_stats_on_real_slides_without_stage1(real_slides_dir, tmp_path):
    folder = tmp_path / "slides"
    folder.mkdir()
    for name in ("CMU-1-Small-Region.svs", "tcga-cr-7395-01a-01-ts1.svs", "kidney-48-5.tif"):
        os.symlink(real_slides_dir / name, folder / name)
    (folder / "broken.svs").write_bytes(b"II*\x00" + b"\x00" * 100)
    run = wsidist("stats", str(folder), "--json", "--charts", str(tmp_path / "charts"))
    assert run.returncode == 1, run.stderr  # one slide is broken
    doc = json.loads(run.stdout)
    info = {r["name"]: r for r in doc["slide_info"]}
    assert set(info) == {
        "CMU-1-Small-Region.svs",
        "tcga-cr-7395-01a-01-ts1.svs",
        "kidney-48-5.tif",
        "broken.svs",
    }
    assert info["broken.svs"]["status"] == "failed" and info["broken.svs"]["error"]
    assert (
        info["CMU-1-Small-Region.svs"]["width"] == 2220
        and info["CMU-1-Small-Region.svs"]["mpp_x"] == 0.499
    )
    stats = {s["attribute"]: s for s in doc["slide_stats"]}
    assert stats["max width"] == {
        "attribute": "max width",
        "pixels": 4443,
        "slide": "tcga-cr-7395-01a-01-ts1.svs",
    }
    assert (
        stats["min height"]["pixels"] == 901 and stats["min height"]["slide"] == "kidney-48-5.tif"
    )
    assert stats["mean width"]["pixels"] == round((2220 + 4443 + 1493) / 3)
    assert "broken.svs" in run.stderr
    for name in ("size", "dimensions", "vendor", "status"):
        with Image.open(tmp_path / "charts" / f"{name}.png") as im:
            assert im.size[0] >= 640
    rows = list(csv.DictReader((tmp_path / "charts" / "slide_info.csv").open()))
    assert len(rows) == 4

    run = wsidist("stats", str(folder / "CMU-1-Small-Region.svs"), "--csv")
    assert run.returncode == 0
    (row,) = csv.DictReader(io.StringIO(run.stdout))
    assert row["vendor"] == "aperio" and row["height"] == "2967"

    run = wsidist("stats", str(folder / "CMU-1-Small-Region.svs"))
    assert run.returncode == 0 and "slide_stats" in run.stdout and "2,967" in run.stdout


@pytest.mark.long  # the README test runs report; select --geojson has its own round trip
def test_report_and_select_geojson_commands(tmp_path):
    from wsidist.demo.synth import SynthSpec, write_synthetic_slide

    slides = tmp_path / "slides"
    slides.mkdir()
    write_synthetic_slide(slides / "a.svs", SynthSpec(width=2400, height=1800, seed=3, n_blobs=2))
    out = tmp_path / "out"
    assert (
        wsidist(
            "score", str(slides), "--out", str(out), "--workers", "1", "--tile-size", "512"
        ).returncode
        == 0
    )
    run = wsidist("select", str(out), "--top", "4", "--geojson", str(tmp_path / "geo"))
    assert run.returncode == 0, run.stderr
    doc = json.loads((tmp_path / "geo" / "a.geojson").read_text())
    assert len(doc["features"]) == 4
    assert {f["properties"]["objectType"] for f in doc["features"]} == {"tile"}
    xs = [f["geometry"]["coordinates"][0][0][0] for f in doc["features"]]
    assert all(x % 512 == 0 for x in xs)
    scores = [f["properties"]["measurements"]["score"] for f in doc["features"]]
    assert scores == sorted(scores, reverse=True)
    run = wsidist(
        "report", str(out), "--to", str(tmp_path / "site"), "--workers", "1", "--top", "3"
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "site" / "index.html").exists() and len(
        list((tmp_path / "site" / "slides" / "a" / "top").glob("*.jpg"))
    ) == 3
    bad = wsidist("report", str(tmp_path / "nothing-here"))
    assert (
        bad.returncode == 2
        and "not a stage-1 output" in bad.stderr
        and "Traceback" not in bad.stderr
    )
    bad = wsidist("report", str(out), "--picture-px", "100")
    assert bad.returncode == 2 and "picture_px" in bad.stderr

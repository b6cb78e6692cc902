"""wsidist export: a JPEG-XL pyramid as a generic tiled JPEG TIFF that OpenSlide opens."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import openslide
import pytest

from tests.helpers.paths import REPO
from wsidist.demo.synth import SynthSpec, write_synthetic_slide
from wsidist.errors import PyramidError
from wsidist.io.slide import open_slide
from wsidist.io.storage import Store
from wsidist.runtime.tasks import SlideTask
from wsidist.stage2.config import RewriteConfig
from wsidist.stage2.export import export_pyramid
from wsidist.stage2.worker import rewrite_slide


@pytest.fixture(scope="module")
def pyramid(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    src = folder / "src.svs"
    write_synthetic_slide(src, SynthSpec(width=3000, height=2200, seed=5, n_blobs=2))
    store = Store(str(folder / "out"))
    row = rewrite_slide(SlideTask(str(src), "src"), RewriteConfig(), store, store)
    assert row["status"] == "ok", row["error"]
    return folder / "out" / row["key"], row


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def test_openslide_opens_the_export_and_its_pixels_match(pyramid, tmp_path):
    path, row = pyramid
    with pytest.raises(openslide.OpenSlideError):  # the reason export exists
        openslide.OpenSlide(str(path)).read_region((0, 0), 0, (16, 16))
    out = tmp_path / "export.tiff"
    result = export_pyramid(path, out)
    assert result["mode"] == "reencoded" and result["psnr_db"] > 38
    osl = openslide.OpenSlide(str(out))
    assert osl.properties["openslide.vendor"] == "generic-tiff"
    with open_slide(str(path)) as ours:
        assert osl.dimensions == ours.dimensions
        assert osl.level_count == ours.level_count == row["level_count"]
        w, h = ours.dimensions
        for x, y in [(w // 2 - 256, h // 2 - 256), (0, 0), (w - 512, h - 512)]:
            theirs = np.asarray(osl.read_region((x, y), 0, (512, 512)).convert("RGB"))
            assert _psnr(theirs, ours.read_region(x, y, 0, (512, 512))) > 35, (x, y)
        top = osl.level_count - 1
        small = np.asarray(osl.read_region((0, 0), top, osl.level_dimensions[top]).convert("RGB"))
        ref = ours.read_region(0, 0, top, ours.level_dimensions[top])
        assert _psnr(small, ref) > 30


def test_export_refuses_other_files(tmp_path, pyramid):
    path, _ = pyramid
    with pytest.raises(PyramidError, match="not a readable TIFF"):
        export_pyramid(REPO / "pyproject.toml", tmp_path / "x.tiff")
    with pytest.raises(PyramidError, match="not a wsidist pyramid"):
        export_pyramid(path.parent.parent.parent / "src.svs", tmp_path / "x.tiff")
    with pytest.raises(PyramidError, match="codec"):
        export_pyramid(path, tmp_path / "x.tiff", codec="webp")
    with pytest.raises(PyramidError, match="overwrite"):
        export_pyramid(path, path)


def test_export_cli_says_where_and_what_next(pyramid, tmp_path):
    path, _ = pyramid
    out = tmp_path / "cli.tiff"
    res = subprocess.run(
        [sys.executable, "-m", "wsidist.cli", "export", str(path), "--codec", "jpeg", "--out",
         str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "reencoded" in res.stderr and "outputs in" in res.stderr and "next:" in res.stderr
    assert openslide.OpenSlide(str(out)).level_count > 1

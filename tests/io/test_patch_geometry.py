"""wsidist.io.patch: exact output sizes at any mpp, the exact box resampled, edges padded white."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from wsidist.demo.spec import SynthSpec
from wsidist.demo.synth import write_synthetic_slide
from wsidist.errors import SlideError
from wsidist.io.patch import PatchSpec, is_edge_box, patch_geometry, read_patch
from wsidist.io.slide import open_slide

BOXES = [(0, 0, 256, 256), (333, 217, 257, 257), (101, 503, 511, 300), (1000, 800, 200, 199),
         (7, 13, 255, 255), (640, 96, 1000, 1000)]  # fmt: skip
MPPS = [0.5, 0.6, 0.75, 1.0, 1.3, 2.0]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-12)))


def reference(slide, x: int, y: int, w: int, h: int, size: tuple[int, int]) -> np.ndarray:
    """The box read whole at level 0 and resampled in one step (no pyramid level involved)."""
    box = Image.fromarray(slide.read_region(x, y, 0, (w, h)))
    return np.asarray(box.resize(size, Image.Resampling.LANCZOS))


@pytest.fixture(scope="module")
def slides(real_slides_dir, tmp_path_factory):
    """CMU-1-Small-Region (0.499 µm/px, one level) and a generated 0.2631 µm/px pyramid."""
    path = tmp_path_factory.mktemp("geometry") / "odd_mpp.svs"
    spec = SynthSpec(width=1700, height=1300, mpp=0.2631, seed=7, n_blobs=2, n_debris=0,
                     texture="atlas", pens=())  # fmt: skip
    write_synthetic_slide(path, spec)
    cmu_url = str(real_slides_dir / "CMU-1-Small-Region.svs")
    with open_slide(cmu_url) as cmu, open_slide(str(path)) as synth:
        assert cmu.mpp_x == pytest.approx(0.499) and synth.level_count > 1
        yield {"cmu": cmu, "synth": synth}


@pytest.mark.parametrize("name", ["cmu", "synth"])
def test_sizes_exact_and_pixels_match_a_reference_resample(slides, name):
    slide = slides[name]
    levels = set()
    for mpp in MPPS:
        for x, y, w, h in BOXES:
            rgb, level, out_mpp = read_patch(slide, x, y, w, h, PatchSpec(mpp=mpp))
            want = (round(w * slide.mpp_x / mpp), round(h * slide.mpp_x / mpp))
            assert (rgb.shape[1], rgb.shape[0]) == want, (mpp, (x, y, w, h))
            assert out_mpp == pytest.approx(slide.mpp_x * w / want[0])  # the real µm/px
            levels.add(level)
            ref = reference(slide, x, y, w, h, want)
            assert psnr(rgb, ref) > (40 if level == 0 else 30), (mpp, (x, y, w, h), level)
    assert levels == ({0} if name == "cmu" else {0, 1})  # the synthetic pyramid's level 1 read


def test_half_micron_on_a_0499_slide(slides):
    cmu = slides["cmu"]
    for w, want in ((256, 255), (257, 256), (513, 512), (1026, 1024)):  # round(w · 0.499 / 0.5)
        rgb = read_patch(cmu, 300, 400, w, w, PatchSpec(mpp=0.5))[0]
        assert rgb.shape == (want, want, 3)
    rgb = read_patch(cmu, 300, 400, 256, 256, PatchSpec(mpp=0.5, size=256))[0]
    assert rgb.shape == (256, 256, 3)  # --size gives the requested size exactly


def test_sizes_at_a_level_and_with_size(slides):
    synth = slides["synth"]
    ds = synth.level_downsamples[1]
    for x, y, w, h in BOXES:
        rgb = read_patch(synth, x, y, w, h, PatchSpec(level=1))[0]
        assert rgb.shape == (round(h / ds), round(w / ds), 3)
        for size in (64, 224, 256, 300):
            rgb = read_patch(synth, x, y, w, h, PatchSpec(level=1, size=size))[0]
            assert rgb.shape == (size, size, 3)


def test_level_zero_box_is_read_as_is(slides):
    cmu = slides["cmu"]
    rgb = read_patch(cmu, 5, 9, 300, 200, PatchSpec())[0]
    np.testing.assert_array_equal(rgb, cmu.read_region(5, 9, 0, (300, 200)))
    rgb = read_patch(cmu, 5, 9, 256, 256, PatchSpec(size=256))[0]
    np.testing.assert_array_equal(rgb, cmu.read_region(5, 9, 0, (256, 256)))


def test_clipped_and_overhanging_boxes_are_padded_not_stretched(slides):
    cmu = slides["cmu"]
    width, height = cmu.dimensions
    x, y, w, h = 1024, height - 100, 512, 100  # a tile clipped by the bottom edge
    assert is_edge_box(cmu, x, y, w, h) and not is_edge_box(cmu, 0, 0, 512, 512)
    rgb = read_patch(cmu, x, y, w, h, PatchSpec(size=256))[0]
    assert rgb.shape == (256, 256, 3)
    assert (rgb[50:] == 255).all()  # 100 of 512 px → 50 of 256 rows of slide, the rest white
    assert psnr(rgb[:50], reference(cmu, x, y, w, h, (256, 50))) > 40
    assert patch_geometry(cmu, x, y, w, h, PatchSpec(size=256)).padded
    assert not patch_geometry(cmu, 0, 0, 512, 512, PatchSpec(size=256)).padded

    over = read_patch(cmu, width - 128, 0, 256, 256, PatchSpec(mpp=1.0))[0]  # half beyond
    assert over.shape == (128, 128, 3) and (over[:, 64:] == 255).all()
    assert patch_geometry(cmu, width - 128, 0, 256, 256, PatchSpec(mpp=1.0)).padded
    with pytest.raises(SlideError, match="wholly outside"):
        read_patch(cmu, width, 0, 256, 256, PatchSpec())

"""Tissue presets and Mask; real-slide masks compared with histolab's reference masks.

The histolab masks are another algorithm's output, NOT ground truth: the IoU floors below are
set a little under what the presets reach today, so a regression shows, not to claim accuracy.
histolab's masks are dilated and hole-filled, so an exact mask never reaches IoU 1 against
them; ``auto`` is held at or above what ``seed000`` (the former default) reached.
"""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers.paths import MISSING_SLIDES, SLIDES  # noqa: E402
from wsidist.errors import PipelineError
from wsidist.filters import FilterContext, parse_pipeline
from wsidist.filters.tissue import PRESETS, Mask, pen_mask, tissue_mask

REFS = SLIDES / "masks" / "histolab"

# (slide file, reference mask) -> {preset: IoU floor}; None = no IoU claim (see test)
CASES = {
    # seed000 reached 0.722 (CMU), 0.832 (TCGA) and 0.152 (kidney) when it was the default
    ("CMU-1-Small-Region.svs", "tissue-mask-cmu-1-small-region.npy"): {
        "seed000": 0.65, "otsu": 0.85, "hysteresis": 0.65, "hsv": 0.65, "auto": 0.74,
    },
    ("tcga-cr-7395-01a-01-ts1.svs", "tissue-mask-tcga-cr-7395.npy"): {
        "seed000": 0.75, "otsu": 0.9, "hysteresis": 0.75, "hsv": 0.85, "auto": 0.86,
    },
    # faint IHC with one tiny fragment (1.8 % of the image, dilated): otsu dilates alike
    ("kidney-48-5.tif", "tissue-mask-kidney-48-5.npy"): {
        "seed000": 0.1, "otsu": 0.7, "hysteresis": 0.1, "hsv": None, "auto": 0.15,
    },
}  # fmt: skip
BRIGHTFIELD = sorted(p for p in PRESETS if p not in ("default", "fluorescence"))  # default = auto


def read_thumbnail(path: Path, shape: tuple[int, int]) -> tuple[np.ndarray, float]:
    """rgb at the reference mask shape (rows, cols) and its downsample from level 0."""
    if path.suffix == ".tif":  # plain TIFF, not openable by OpenSlide
        tifffile = pytest.importorskip("tifffile")
        img = Image.fromarray(tifffile.imread(path)[..., :3])
        width0, height0 = img.size
    else:
        openslide = pytest.importorskip("openslide")
        with openslide.OpenSlide(str(path)) as slide:
            level = slide.level_count - 1
            img = slide.read_region((0, 0), level, slide.level_dimensions[level]).convert("RGB")
            width0, height0 = slide.dimensions
    h, w = shape
    img = img.resize((w, h), Image.Resampling.BOX)
    return np.asarray(img), (width0 / w + height0 / h) / 2


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def thumbnails():
    if not REFS.is_dir():
        pytest.skip(MISSING_SLIDES)
    out = {}
    for slide, ref in CASES:
        if not (SLIDES / slide).exists() or not (REFS / ref).exists():
            continue
        expected = np.load(REFS / ref)
        rgb, downsample = read_thumbnail(SLIDES / slide, expected.shape)
        out[slide] = (rgb, downsample, expected)
    return out


@pytest.mark.parametrize("preset", BRIGHTFIELD)
@pytest.mark.parametrize("case", list(CASES), ids=[s for s, _ in CASES])
def test_preset_against_histolab_reference(thumbnails, case, preset):
    slide, _ = case
    if slide not in thumbnails:
        pytest.skip(f"{slide} or its reference mask is missing under {SLIDES}")
    rgb, downsample, expected = thumbnails[slide]
    mask, steps = tissue_mask(rgb, preset, FilterContext(downsample=downsample, mpp=None))
    assert steps == []
    assert mask.array.shape == expected.shape and mask.downsample == downsample
    score = iou(mask.array, expected)
    print(
        f"IoU {slide} {preset}: {score:.3f} "
        f"(tissue {mask.fraction:.3f}, reference {expected.mean():.3f})"
    )
    floor = CASES[case][preset]
    if floor is None:
        # no IoU claim, but it must not invent tissue on a nearly empty slide
        assert mask.fraction < 0.05
    else:
        assert score >= floor


def test_refine_on_a_preset_changes_the_mask(thumbnails):
    slide = "CMU-1-Small-Region.svs"
    if slide not in thumbnails:
        pytest.skip(f"{slide} missing")
    rgb, downsample, _ = thumbnails[slide]
    ctx = FilterContext(downsample=downsample, mpp=0.499)
    for preset in ("seed000", "auto"):
        base, _ = tissue_mask(rgb, preset, ctx)
        grown, steps = tissue_mask(
            rgb, preset, ctx, refine="fill_holes |> dilation(radius_um=20)", keep_steps=True
        )
        assert steps[-2][0].endswith("-fill_holes") and steps[-1][0].endswith("-dilation")
        assert grown.fraction > base.fraction
        assert (grown.array | ~base.array).all()  # refined mask contains the base mask
        with pytest.raises(PipelineError, match="mpp"):
            tissue_mask(rgb, preset, FilterContext(downsample, None), refine="pad(margin_um=10)")


def test_mask_dataclass():
    m = Mask(np.array([[1, 0], [0, 0]]), downsample=32.0)
    assert m.array.dtype == bool and m.fraction == 0.25 and m.shape == (2, 2)
    with pytest.raises(AttributeError):
        m.downsample = 2.0
    with pytest.raises(ValueError):
        Mask(np.zeros((2, 2, 3), bool), 1.0)
    with pytest.raises(ValueError):
        Mask(np.zeros((2, 2), bool), 0.0)


def test_presets_are_immutable_and_valid():
    with pytest.raises(TypeError):
        PRESETS["mine"] = "otsu"
    for name, spec in PRESETS.items():
        p = parse_pipeline(spec)
        assert not p.requires_mpp, name  # presets must work on slides without mpp
        assert "pen" in p.spec, name  # every preset drops pen ink


def test_pen_mask_on_synthetic_strokes():
    img = np.full((20, 30, 3), 240, np.uint8)
    img[2:4] = (200, 30, 40)
    img[8:10] = (40, 140, 120)
    img[14:16] = (40, 60, 180)
    pen = pen_mask(img)
    assert pen[2:4].all() and pen[8:10].all() and pen[14:16].all()
    assert not pen[[0, 5, 11, 18]].any()


@pytest.mark.parametrize("preset", ["seed000", "default"])
def test_default_preset_removes_pen_stroke_over_tissue(preset):
    img = np.full((64, 64, 3), 245, np.uint8)
    img[8:56, 8:56] = (215, 130, 185)
    img[30:33, :] = (30, 60, 170)  # blue pen across the tissue
    mask, _ = tissue_mask(img, preset, FilterContext(downsample=8.0))
    assert mask.array[10:28, 10:54].all() and not mask.array[30:33].any()
    assert not mask.array[:6].any()


def test_a_sliver_between_crossing_strokes_goes_with_the_ink():
    """Where a broad blue stroke crosses a broad red one over tissue, the line of their blend
    (purple: neither ink's colour, nor tissue) has no tissue within 2 px: it is ink, the
    tissue beside the strokes stays. (Before, 20 of its 24 pixels were kept as tissue.)"""
    from wsidist.filters.auto import detect_tissue

    rng = np.random.default_rng(0)
    img = np.full((72, 72, 3), 240, np.uint8)
    noise = rng.normal(0, 6, (56, 56, 3))
    img[8:64, 8:64] = np.clip(np.array([215, 130, 185]) + noise, 0, 255).astype(np.uint8)
    img[4:68, 28:40] = (200, 30, 40)  # a broad red stroke
    img[30:42, 4:68] = (40, 60, 170)  # a broad blue stroke over it
    img[29, 28:40] = img[42, 28:40] = (110, 35, 90)  # their blend
    found = detect_tissue(img, min_px=1)  # every pixel judged (no object too small to keep)
    assert not found.mask[29, 28:40].any() and not found.mask[42, 28:40].any()
    assert found.mask[10:26, 10:24].all() and found.mask[46:62, 44:62].all()

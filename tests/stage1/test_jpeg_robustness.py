"""The ``auto`` mask under JPEG compression, on generated slides with known answers.

Every real slide is JPEG-compressed, at some quality, with 4:2:0 or 4:4:4 chroma, at every
level of its pyramid. The mask of a thumbnail re-encoded as JPEG must stay the mask of the
thumbnail (IoU), and must not move away from the truth (Dice). Slides are 8000 x 6000 level-0
px at 0.5 µm/px, measured at 1/32 like stage 1.

Bounds (measured, see the issue-9 report): at q95 with 4:4:4 chroma the target holds on
every class here (IoU >= 0.97, Dice down by at most 0.005). With 4:2:0 chroma, and at q90 and
q80, edge pixels and one-pixel glass spots inside the tissue flip (chroma blur spreads the
stain's colour over them), so those get a looser guard (IoU >= 0.93, Dice down by at most
0.03) and the target there is an expected failure until tissue is decided at a finer level.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from wsidist.filters import FilterContext, detect
from wsidist.io.slide import open_slide

CLASSES = ("typical", "fragments", "faint_ihc", "pens", "bubbles")
ENCODINGS = [(q, sub) for q in (95, 90, 80) for sub in ("4:4:4", "4:2:0")]
TARGET = (0.97, 0.005)  # (min IoU with the uncompressed mask, max Dice drop vs truth)
GUARD = (0.93, 0.03)


@pytest.fixture(scope="module")
def thumbnails(failure_slides):
    out = {}
    for name in CLASSES:
        path, truth = failure_slides[name]
        with open_slide(str(path)) as slide:
            rgb = slide.thumbnail(32)
            context = FilterContext(32.0, 0.5)
        out[name] = (rgb, context, truth.tissue_mask(32))
    return out


def _jpeg(rgb: np.ndarray, quality: int, subsampling: str) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality, subsampling=subsampling)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def _dice(mask: np.ndarray, truth: np.ndarray) -> float:
    return 2 * float((mask & truth).sum()) / max(int(mask.sum() + truth.sum()), 1)


def _measure(thumbnails, name):
    """(dice of the plain thumbnail, [(quality, subsampling, IoU, Dice drop)])."""
    rgb, context, truth = thumbnails[name]
    plain, _ = detect(rgb, "auto", context)
    dice = _dice(plain.mask, truth)
    rows = []
    for quality, subsampling in ENCODINGS:
        coded, _ = detect(_jpeg(rgb, quality, subsampling), "auto", context)
        iou = float((plain.mask & coded.mask).sum() / max((plain.mask | coded.mask).sum(), 1))
        drop = dice - _dice(coded.mask, truth)
        print(f"{name} q{quality} {subsampling}: IoU {iou:.3f}, Dice drop {drop:+.4f}")
        rows.append((quality, subsampling, round(iou, 3), round(drop, 4)))
    return dice, rows


def _misses(rows, bound):
    min_iou, max_drop = bound
    return [row for row in rows if row[2] < min_iou or row[3] > max_drop]


@pytest.mark.parametrize("name", CLASSES)
def test_auto_mask_survives_jpeg(thumbnails, name):
    dice, rows = _measure(thumbnails, name)
    assert dice >= 0.98
    assert not _misses([r for r in rows if r[:2] == (95, "4:4:4")], TARGET)
    assert not _misses(rows, GUARD)


@pytest.mark.xfail(
    strict=False,
    reason="4:2:0 chroma and q <= 90 flip edge pixels and one-pixel glass spots at 1/32: "
    "worst IoU 0.936 / Dice drop 0.026 (typical, q80 4:2:0); 4:4:4 q90 drops Dice 0.0052",
)
def test_auto_mask_meets_the_target_at_every_jpeg_setting(thumbnails):
    misses = {name: _misses(_measure(thumbnails, name)[1], TARGET) for name in CLASSES}
    assert not any(misses.values()), misses

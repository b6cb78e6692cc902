"""Where sample patches go on one slide: pure geometry over a mask, boxes in level-0 px.

- :func:`grid_candidates`: seed 003's sampling grid. Square boxes of ``size`` every ``stride``
  level-0 px from (0, 0), kept inside the slide; a box is a candidate when the mask is set at
  its centre and at least ``min_tissue`` of its mask pixels are set. Neighbours overlap by
  ``1 - stride / size`` of a side.
- :func:`jitter_boxes`: seeded perturbation of each origin by up to ±``jitter`` px on each axis,
  clamped so the box stays inside the slide (the offsets returned are the ones applied).
- :func:`contour_boxes`: seed 001's contour patching. Each connected region of the mask
  (8-connected), dilated by ``pad`` px, is covered by a sliding window over its bounding box;
  of a few grid phases the one needing the fewest windows (then holding the most tissue, i.e.
  the least glass) wins, and windows holding none of the region are dropped. Unless
  ``allow_straddle``, a window touching another region's pixels is removed and the region
  pixels it leaves uncovered are covered greedily by windows that touch no other region.

Mask pixel ``(i, j)`` spans level-0 ``[j·ds, (j+1)·ds) × [i·ds, (i+1)·ds)``. A window *covers*
a pixel whose centre lies inside it, and *touches* a pixel whose span it overlaps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from wsidist.imaging import box_sums, summed_area_table

__all__ = ["ContourPatches", "contour_boxes", "grid_candidates", "jitter_boxes", "touched"]

PHASES = 4  # grid phases tried per axis for a region (0, 1/4, 1/2, 3/4 of the stride)
RECOVERY_STEPS = 9  # window positions per axis tried around an uncovered pixel


def _origins(length: int, size: int, stride: int) -> np.ndarray:
    """Origins ``0, stride, …`` of boxes of ``size`` that fit in ``[0, length)``."""
    if length < size:
        return np.zeros(0, np.int64)
    return np.arange((length - size) // stride + 1, dtype=np.int64) * stride


def touched(lo, hi, ds: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mask pixel range ``[a, b)`` a level-0 span ``[lo, hi)`` overlaps, clipped to ``n``."""
    a = np.clip(np.floor(np.asarray(lo) / ds), 0, n).astype(np.int64)
    b = np.clip(np.ceil(np.asarray(hi) / ds), 0, n).astype(np.int64)
    return a, b


def _covered(lo, hi, ds: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mask pixel range ``[a, b)`` whose centres lie in the level-0 span ``[lo, hi)``."""
    a = np.clip(np.ceil(np.asarray(lo) / ds - 0.5), 0, n).astype(np.int64)
    b = np.clip(np.ceil(np.asarray(hi) / ds - 0.5), 0, n).astype(np.int64)
    return a, np.maximum(a, b)


def grid_candidates(
    mask: np.ndarray, ds: float, width: int, height: int, size: int, stride: int,
    min_tissue: float = 0.0,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Grid boxes whose centre is on the mask: arrays ``x, y, grid_row, grid_col,
    tissue_frac`` (share of the box's mask pixels that are set), row-major."""
    xs, ys = _origins(width, size, stride), _origins(height, size, stride)
    gy, gx = np.meshgrid(np.arange(ys.size), np.arange(xs.size), indexing="ij")
    gy, gx = gy.ravel(), gx.ravel()
    x, y = xs[gx], ys[gy]
    mh, mw = mask.shape
    ci = np.clip(((y + size / 2) // ds).astype(np.int64), 0, mh - 1)
    cj = np.clip(((x + size / 2) // ds).astype(np.int64), 0, mw - 1)
    frac = _tissue_frac(summed_area_table(mask.astype(np.uint8)), x, y, size, ds, mask.shape)
    keep = mask[ci, cj] & (frac >= min_tissue) if x.size else np.zeros(0, bool)
    return {"x": x[keep], "y": y[keep], "grid_row": gy[keep], "grid_col": gx[keep],
            "tissue_frac": frac[keep]}  # fmt: skip


def _tissue_frac(sat, x, y, size, ds, shape) -> np.ndarray:
    x0, x1 = touched(x, x + size, ds, shape[1])
    y0, y1 = touched(y, y + size, ds, shape[0])
    area = np.maximum((x1 - x0) * (y1 - y0), 1)
    return box_sums(sat, y0, x0, y1, x1) / area


def jitter_boxes(
    x: np.ndarray, y: np.ndarray, size: int, jitter: int, width: int, height: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Origins moved by uniform integer offsets in ``[-jitter, jitter]`` on each axis, clamped
    to keep the box inside the slide (a box already inside moves at most ``jitter``)."""
    if jitter <= 0 or not len(x):
        return np.asarray(x, np.int64), np.asarray(y, np.int64)
    dx = rng.integers(-jitter, jitter + 1, len(x))
    dy = rng.integers(-jitter, jitter + 1, len(y))
    return np.clip(x + dx, 0, width - size), np.clip(y + dy, 0, height - size)


@dataclass(frozen=True)
class ContourPatches:
    """Windows covering a slide's regions: arrays ``x, y, region`` (1-based, by first pixel
    in scan order), and per region its pixel count and the share of them covered."""

    x: np.ndarray
    y: np.ndarray
    region: np.ndarray
    region_px: np.ndarray  # mask pixels per region
    region_covered: np.ndarray  # share of each region's pixels (centres) inside some window
    n_regions: int


def contour_boxes(
    mask: np.ndarray, ds: float, width: int, height: int, size: int, stride: int,
    pad: int = 0, allow_straddle: bool = False,
) -> ContourPatches:  # fmt: skip
    """Windows of ``size`` covering each connected region of ``mask`` (see module doc). Each
    region is worked on in a crop of the mask around it (its box plus a window and the pad)."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    xs, ys, regions, covered = [], [], [], []
    pad_px = math.ceil(pad / ds) if pad > 0 else 0
    margin = math.ceil(size / ds) + pad_px + 2
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        r0, c0 = max(sl[0].start - margin, 0), max(sl[1].start - margin, 0)
        r1, c1 = min(sl[0].stop + margin, mask.shape[0]), min(sl[1].stop + margin, mask.shape[1])
        crop = _Crop(mask[r0:r1, c0:c1], labels[r0:r1, c0:c1] == k, c0 * ds, r0 * ds, ds,
                     width, height, size)  # fmt: skip
        target = crop.region
        if pad_px:
            grown = ndimage.binary_dilation(target, np.ones((3, 3), bool), iterations=pad_px)
            target = grown & (crop.region | ~crop.tissue)  # padding never enters another region
        wx, wy = _cover_region(crop, target, stride)
        if not allow_straddle:
            ok = ~crop.touches_others(wx, wy)
            wx, wy = _recover(crop, target, wx[ok], wy[ok])
        xs.append(wx)
        ys.append(wy)
        regions.append(np.full(wx.size, k, np.int64))
        painted = crop.paint(wx, wy)
        covered.append(float((painted & crop.region).sum() / max(int(crop.region.sum()), 1)))
    cat = (lambda a: np.concatenate(a).astype(np.int64)) if xs else (lambda a: np.zeros(0, int))
    px = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    return ContourPatches(cat(xs), cat(ys), cat(regions), px, np.asarray(covered), n)


@dataclass
class _Crop:
    """One region's crop of the mask; windows are absolute level-0 origins."""

    tissue: np.ndarray  # the mask, cropped
    region: np.ndarray  # this region's pixels in the crop
    offx: float  # level-0 position of the crop's top-left pixel
    offy: float
    ds: float
    width: int  # the slide's
    height: int
    size: int

    def __post_init__(self) -> None:
        self.others = self.tissue & ~self.region
        self.sat_tissue = summed_area_table(self.tissue.astype(np.uint8))
        self.sat_others = summed_area_table(self.others.astype(np.uint8))

    def ranges(self, x, y, rule) -> tuple[np.ndarray, ...]:
        """(y0, x0, y1, x1) crop pixel ranges of windows at level-0 origins ``x, y``."""
        h, w = self.tissue.shape
        x0, x1 = rule(np.asarray(x) - self.offx, np.asarray(x) + self.size - self.offx, self.ds, w)
        y0, y1 = rule(np.asarray(y) - self.offy, np.asarray(y) + self.size - self.offy, self.ds, h)
        return y0, x0, y1, x1

    def touches_others(self, x, y) -> np.ndarray:
        return box_sums(self.sat_others, *self.ranges(x, y, touched)) > 0

    def tissue_share(self, x, y) -> np.ndarray:
        y0, x0, y1, x1 = self.ranges(x, y, touched)
        area = np.maximum((x1 - x0) * (y1 - y0), 1)
        return box_sums(self.sat_tissue, y0, x0, y1, x1) / area

    def clamp_x(self, v):
        return np.clip(v, 0, max(self.width - self.size, 0))

    def clamp_y(self, v):
        return np.clip(v, 0, max(self.height - self.size, 0))

    def paint(self, x, y) -> np.ndarray:
        """Crop pixels whose centres lie inside any window."""
        out = np.zeros(self.tissue.shape, bool)
        for a, c, b, d in zip(*self.ranges(x, y, _covered)):
            out[a:b, c:d] = True
        return out


def _cover_region(crop: _Crop, target: np.ndarray, stride: int):
    """The grid over the target's bounding box with the fewest windows holding target pixels
    (then the most tissue, i.e. the least glass): of ``PHASES`` phases per axis."""
    rows, cols = np.nonzero(target)
    if not rows.size:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    ds, size = crop.ds, crop.size
    bx0, bx1 = crop.offx + cols.min() * ds, crop.offx + (cols.max() + 1) * ds
    by0, by1 = crop.offy + rows.min() * ds, crop.offy + (rows.max() + 1) * ds
    sat_t = summed_area_table(target.astype(np.uint8))
    best = None
    for px in range(PHASES):
        ox = np.unique(crop.clamp_x(_axis(bx0, min(bx1, crop.width), size, stride, px)))
        for py in range(PHASES):
            oy = np.unique(crop.clamp_y(_axis(by0, min(by1, crop.height), size, stride, py)))
            gx, gy = (a.ravel() for a in np.meshgrid(ox, oy))
            keep = box_sums(sat_t, *crop.ranges(gx, gy, _covered)) > 0
            score = (int(keep.sum()), -float(crop.tissue_share(gx[keep], gy[keep]).sum()))
            if best is None or score < best[0]:
                best = (score, gx[keep], gy[keep])
    return best[1], best[2]


def _axis(lo: float, hi: float, size: int, stride: int, phase: int) -> np.ndarray:
    """Origins from ``lo`` less a phase (``phase / PHASES`` of the stride) every ``stride``
    until ``hi`` is reached."""
    start = math.floor(lo) - round(phase * stride / PHASES)
    n = max(1, math.ceil((math.ceil(hi) - start - size) / stride) + 1)
    return start + np.arange(n, dtype=np.int64) * stride


def _recover(crop: _Crop, target: np.ndarray, x: np.ndarray, y: np.ndarray):
    """Greedily add windows touching no other region over the target pixels left uncovered;
    a pixel no such window can hold is left (and counted by the caller)."""
    todo = target & ~crop.paint(x, y)
    added_x, added_y = [int(v) for v in x], [int(v) for v in y]
    steps = np.linspace(0.0, 1.0, RECOVERY_STEPS)
    size, ds = crop.size, crop.ds
    while True:
        found = np.argwhere(todo)
        if not found.size:
            break
        i, j = found[0]
        cx, cy = crop.offx + (j + 0.5) * ds, crop.offy + (i + 0.5) * ds
        ox = crop.clamp_x(np.floor(cx - size + 1 + steps * (size - 1)))
        oy = crop.clamp_y(np.floor(cy - size + 1 + steps * (size - 1)))
        gx, gy = (a.ravel().astype(np.int64) for a in np.meshgrid(ox, oy))
        inside = (gx <= cx) & (cx < gx + size) & (gy <= cy) & (cy < gy + size)
        ok = inside & ~crop.touches_others(gx, gy)
        if not ok.any():
            todo[i, j] = False  # no window holds this pixel without another region
            continue
        ranges = crop.ranges(gx, gy, _covered)
        gain = np.where(ok, box_sums(summed_area_table(todo.astype(np.uint8)), *ranges), -1)
        best = int(np.argmax(gain))
        added_x.append(int(gx[best]))
        added_y.append(int(gy[best]))
        y0, x0, y1, x1 = (int(r[best]) for r in ranges)
        todo[y0:y1, x0:x1] = False
    return _prune(crop, target, np.asarray(added_x, np.int64), np.asarray(added_y, np.int64))


def _prune(crop: _Crop, target: np.ndarray, x: np.ndarray, y: np.ndarray):
    """Drop windows whose target pixels all lie in other windows too (last added first)."""
    ranges = list(zip(*crop.ranges(x, y, _covered)))
    count = np.zeros(target.shape, np.int32)
    for a, c, b, d in ranges:
        count[a:b, c:d] += 1
    keep = np.ones(x.size, bool)
    for i in range(x.size - 1, -1, -1):
        a, c, b, d = ranges[i]
        mine = target[a:b, c:d]
        if not mine.any() or (count[a:b, c:d][mine] >= 2).all():
            keep[i] = False
            count[a:b, c:d] -= 1
    return x[keep], y[keep]


def label_classes(
    labels: np.ndarray, legend: dict[int, str], ds: float, x, y, size: int, rule: str = "centre"
) -> np.ndarray:
    """The class name of each box from a label mask (0 = no class, ``legend[0]`` or
    ``"none"``): the label under the box centre (``rule="centre"``), or (``"any"``, seed 003's
    rule: a box holding one pixel of a class is of that class) the class with the most pixels
    the box touches, ``none`` only when it touches no class."""
    x, y = np.asarray(x), np.asarray(y)
    none = legend.get(0, "none")
    names = np.asarray([legend.get(k, f"class{k}") for k in range(256)], object)
    names[0] = none
    if rule == "centre":
        ci = np.clip(((y + size / 2) // ds).astype(np.int64), 0, labels.shape[0] - 1)
        cj = np.clip(((x + size / 2) // ds).astype(np.int64), 0, labels.shape[1] - 1)
        return names[labels[ci, cj]]
    x0, x1 = touched(x, x + size, ds, labels.shape[1])
    y0, y1 = touched(y, y + size, ds, labels.shape[0])
    best, most = np.zeros(x.size, np.int64), np.zeros(x.size, np.int64)
    for k in np.unique(labels):
        if k == 0:
            continue
        count = box_sums(summed_area_table((labels == k).astype(np.uint8)), y0, x0, y1, x1)
        better = count > most
        best[better], most[better] = k, count[better]
    return names[best]

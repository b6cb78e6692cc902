"""The slide's own background: its colour, its noise, and how far each pixel is from it.

Brightfield glass is the brightest large near-neutral mode of the histogram; its colour is the
median of the pixels in that mode, and its noise (an RMS) is measured on the side of the mode
no stain can reach (pixels at least as bright as the glass), so tissue never inflates it. A
dark background (fluorescence) is the darkest mode instead, its noise measured below it where
its channels leave room for that (a black clipped at 0 is measured on both sides, robustly:
the lowest 90 % of the deviations). Distances are optical densities relative to the
glass, looked up per channel in uint8 tables (no float copy of the image): tissue absorbs, so
it has a positive density; a neutral absorber (dust, bubble rims, scanner borders) adds the
same density to every channel, a stain does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from wsidist.imaging.color import red_green_codes

__all__ = [
    "DARK_BACKGROUND_LEVEL",
    "FILL_SCORE",
    "blank_fill",
    "flatten_glass",
    "OD_SCALE",
    "Background",
    "channel_luts",
    "estimate_background",
    "score_luts",
    "tissue_score",
]

DARK_BACKGROUND_LEVEL = 60  # median gray below this: a dark (fluorescence) slide
OD_SCALE = 1000  # optical densities are stored as int16 thousandths
_SAMPLE_PX = 150_000  # pixels looked at to find the background
_MIN_NOISE_OD = 0.004  # floor of the glass noise (a flat, compressed glass measures ~0)
_RMS_90 = 0.789  # RMS of the lowest 90 % of |x| for a normal x, in its sigma
_MIN_BLACK_ROOM = 4  # a dark background's noise below its black needs channels at >= this
_MIN_NOISE_DARK = 1.0  # floor of a dark background's noise, in summed channel levels
_PLAIN_GLASS = (242.0, 242.0, 242.0)  # glass assumed when an image shows none


@dataclass(frozen=True)
class Background:
    """The glass (brightfield) or the slide's black (``dark``), and its noise.

    ``noise`` is a robust standard deviation of :func:`tissue_score` on background pixels:
    optical density x 1000 (brightfield) or summed channel levels (dark). ``fraction`` is the
    share of pixels within 3 noise of it.
    """

    rgb: tuple[float, float, float]
    noise: float
    dark: bool
    fraction: float

    @property
    def gray(self) -> float:
        return float(np.mean(self.rgb))


def _sample(rgb: np.ndarray) -> np.ndarray:
    """Every step-th row and column of an (h, w, c) image, as (n, min(c, 3)) pixels."""
    step = max(1, int(math.sqrt(rgb.shape[0] * rgb.shape[1] / _SAMPLE_PX)))
    part = rgb[::step, ::step, :3]
    return part.reshape(-1, part.shape[-1])


def channel_luts(bg: Background) -> np.ndarray:
    """int16 (3, 256): per channel, the density (x 1000) of each level relative to the glass;
    on a dark background, the level above the background (x 1)."""
    levels = np.arange(256, dtype=np.float64)
    ref = np.asarray(bg.rgb, np.float64)[:, None]
    if bg.dark:
        return np.rint(levels[None, :] - ref).astype(np.int16)
    od = np.log10((ref + 1.0) / (levels[None, :] + 1.0)) * OD_SCALE
    return np.rint(od).astype(np.int16)


def score_luts(bg: Background) -> np.ndarray:
    """Same tables as :func:`channel_luts` (the score is their sum over the channels)."""
    return channel_luts(bg)


def tissue_score(rgb: np.ndarray, luts: np.ndarray, index: np.ndarray | None = None) -> np.ndarray:
    """int16 sum over channels of ``luts[c][rgb[..., c]]`` (all pixels, or the flat ``index``)."""
    px = rgb if index is None else np.take(rgb.reshape(-1, rgb.shape[-1]), index, axis=0)
    pairs = red_green_codes(px)
    if pairs is not None:  # red and green in one lookup (np.take: faster than indexing)
        out = np.take((luts[1][:, None] + luts[0][None, :]).reshape(-1), pairs)
    else:
        out = np.take(luts[0], px[..., 0])
        out += np.take(luts[1], px[..., 1])
    out += np.take(luts[2], px[..., 2])
    return out


def _peaks(hist: np.ndarray, min_share: float) -> list[int]:
    """Local maxima of the smoothed histogram holding at least ``min_share`` of it (+-9 bins)."""
    smooth = np.convolve(hist, np.ones(9), mode="same")
    mass = np.convolve(hist, np.ones(19), mode="same")
    total = max(float(hist.sum()), 1.0)
    left = np.r_[-1.0, smooth[:-1]]
    right = np.r_[smooth[1:], -1.0]
    peak = (smooth >= left) & (smooth > right) & (mass >= min_share * total)
    return [int(i) for i in np.flatnonzero(peak)]


def _neutral(colour: np.ndarray) -> bool:
    return float(colour.max() - colour.min()) <= 0.12 * float(colour.mean()) + 6


def estimate_background(
    rgb: np.ndarray, dark_level: float = DARK_BACKGROUND_LEVEL, exclude: np.ndarray | None = None
) -> Background:
    """The background of an rgb uint8 image (see the module docstring).

    Brightfield glass is the brightest histogram peak (at least 3 % of the pixels) whose colour
    is near neutral; an image without one (all tissue) is measured against plain white glass.
    ``exclude`` (bool, the image's shape) leaves pixels out, e.g. :func:`blank_fill`.
    """
    px = _sample(rgb)
    if exclude is not None:
        px = px[~_sample(exclude[..., None])[:, 0]]
    if px.size == 0:
        return Background(_PLAIN_GLASS, float(_MIN_NOISE_OD * OD_SCALE), False, 0.0)
    total = px[:, 0].astype(np.int16) + px[:, 1] + px[:, 2]  # column-wise: no short-axis pass
    white = total == 765  # outside the scanned area (readers fill it white)
    if white.any() and white.mean() < 0.5:
        px, total = px[~white], total[~white]
    dark = float(np.median(total)) / 3 < dark_level
    ref = _glass_colour(px, total, dark)
    if ref is None:
        return _measure(px, Background(_PLAIN_GLASS, 1.0, False, 0.0), dark, plain=True)
    return _measure(px, Background(ref, 1.0, dark, 0.0), dark)


def _glass_colour(px: np.ndarray, total: np.ndarray, dark: bool) -> tuple[float, ...] | None:
    """The colour of the brightest near-neutral histogram peak (the darkest peak when
    ``dark``), or None when no peak is near neutral."""
    hist = np.bincount(total, minlength=766)
    peaks = _peaks(hist, 0.03) or [int(np.argmax(hist))]
    for m in peaks if dark else peaks[::-1]:
        near = np.abs(total - m) <= 9
        m = float(np.median(total[near]))  # the centre of the peak, not its first bin
        near = np.abs(total - m) <= 9
        colour = _column_medians(px, near)
        if dark or _neutral(colour):
            return tuple(float(v) for v in colour)
    return None


_MIN_GLASS_LEVEL = 225  # every channel of real glass beside white fill is at least this
_FILL_LEVEL = 253  # every channel of white fill, also after a lossy codec
_FILL_RIM_PX = 2  # pixels beside the fill that blend it with the glass (area reduction)
GLASS_LEVEL_LIMIT = 48  # flatten_glass measures the local glass within this of the global one
FILL_SCORE = -(GLASS_LEVEL_LIMIT + 1)  # the score given to fill: below glass, outside the limit


def blank_fill(rgb: np.ndarray) -> np.ndarray | None:
    """Where an image is white fill rather than glass, with the rim that blends the two, or
    None: the glass a glass-removed pyramid left out (most of the image white, real glass only
    in a margin round the tissue). A slide whose glass itself is clipped to white has no bright
    glass of its own beside the white, and gets None."""
    px = _sample(rgb)
    if px.size == 0 or (_channel_min(px) >= _FILL_LEVEL).mean() < 0.5:
        return None
    fill = rgb[..., :3].min(axis=2) >= _FILL_LEVEL
    rim = ndimage.binary_dilation(fill, iterations=_FILL_RIM_PX)
    rest = px[~_sample(rim[..., None])[:, 0]]
    if rest.shape[0] < 500:
        return None
    total = rest[:, 0].astype(np.int16) + rest[:, 1] + rest[:, 2]
    if float(np.median(total)) / 3 < DARK_BACKGROUND_LEVEL:
        return None
    colour = _glass_colour(rest, total, False)
    return rim if colour is not None and min(colour) >= _MIN_GLASS_LEVEL else None


def _channel_min(px: np.ndarray) -> np.ndarray:
    """Per pixel minimum over the channels of (n, 3) pixels (column-wise: no short-axis pass)."""
    return np.minimum(np.minimum(px[:, 0], px[:, 1]), px[:, 2])


def _column_medians(px: np.ndarray, where: np.ndarray) -> np.ndarray:
    """``np.median(px[where], axis=0)`` of uint8 (n, 3) pixels, from one histogram a channel."""
    n = int(np.count_nonzero(where))
    if n == 0:
        return np.median(px[where], axis=0)
    lo, hi = (n - 1) // 2, n // 2  # the middle value(s), averaged like np.median
    out = []
    for c in range(px.shape[1]):
        ends = np.cumsum(np.bincount(px[:, c][where], minlength=256))
        a, b = np.searchsorted(ends, lo, side="right"), np.searchsorted(ends, hi, side="right")
        out.append((float(a) + float(b)) / 2)
    return np.asarray(out)


def _measure(px: np.ndarray, provisional: Background, dark: bool, plain: bool = False):
    score = tissue_score(px, channel_luts(provisional)).astype(np.float64)
    floor = _MIN_NOISE_DARK if dark else _MIN_NOISE_OD * OD_SCALE
    # RMS of the side no stain or emission reaches (quantised levels make a median of zero
    # common), without its most extreme half percent (dust, padding)
    below = np.abs(score[(score <= 0) & (score >= -30)] if dark else score[score <= 0])
    measured = _rms_lowest(below) if below.size > 10 else None
    # a dark background's black needs room below it for that (its channels two noise and
    # _MIN_BLACK_ROOM above 0): a side cut short at 0 measures too little
    room = measured is not None and min(provisional.rgb) >= max(
        _MIN_BLACK_ROOM, 2 * measured / 3**0.5
    )
    if dark and not room:  # both sides, faint glow among them: the RMS of the lowest 90 % of
        # |score|, scaled to a normal's sigma, so glow on a tenth of the near-black pixels
        # is not noise (JPEG ringing still is)
        both = np.abs(score[np.abs(score) <= 30])
        measured = _rms_lowest(both, share=0.9) / _RMS_90 if both.size > 10 else None
    noise = floor if measured is None or plain else max(measured, floor)
    fraction = float((score < 3 * noise).mean())
    return Background(provisional.rgb, noise, dark, fraction)


def _rms_noise(score: np.ndarray, floor: float) -> float:
    clean = np.abs(score[score <= 0]).astype(np.float64)
    if clean.size <= 10:
        return floor
    return max(_rms_lowest(clean), floor)


def _rms_lowest(clean: np.ndarray, share: float = 0.995) -> float:
    """RMS of the lowest ``share`` of integer-valued ``clean`` (a partition, not a sort: the
    squares are integers, so their sum is exact in any order)."""
    k = max(1, int(share * clean.size))
    top = float(clean.max()) if clean.size else 0.0
    whole = 0 <= top < 1 << 16 and clean.min() >= 0 and bool((clean == np.rint(clean)).all())
    if whole:  # one histogram instead of a partition
        counts = np.bincount(clean.astype(np.int64), minlength=1)
        taken = np.minimum(counts, np.maximum(k - (np.cumsum(counts) - counts), 0))
        values = np.arange(counts.size, dtype=np.int64)
        return float(np.sqrt(float(int((taken * values * values).sum())) / k))
    low = np.partition(clean, k - 1)[:k] if k < clean.size else clean
    return float(np.sqrt(np.mean(low * low)))


def flatten_glass(
    score: np.ndarray, bg: Background, *, block_px: int = 32, limit: int = GLASS_LEVEL_LIMIT
) -> tuple[np.ndarray, float]:
    """Score relative to the *local* glass, and the noise measured on it.

    Uneven illumination, tinted or drifting glass shift the glass level slowly across a
    slide. Per block of ``block_px`` pixels, the glass level is the mode of the block's scores
    within ``limit`` of the global glass, kept when at least a fifth of the block is there (a
    block full of tissue has no glass to measure); the levels are smoothed, interpolated and
    subtracted. Densities are additive, so this is the density relative to the local glass.
    """
    h, w = score.shape
    floor = _MIN_NOISE_DARK if bg.dark else _MIN_NOISE_OD * OD_SCALE
    step = max(1, int(math.sqrt(h * w / _SAMPLE_PX)))
    nby, nbx = -(-h // block_px), -(-w // block_px)
    if nby * nbx < 4:
        return score, _rms_noise(score[::step, ::step], floor)
    # block modes from a sample of the pixels (every ``step``-th row and column)
    sample = score[::step, ::step].astype(np.int32)
    by = (np.arange(0, h, step) // block_px)[:, None]
    bx = (np.arange(0, w, step) // block_px)[None, :]
    block = by * nbx + bx
    near = np.abs(sample) <= limit
    keys = (block * (2 * limit + 1) + (sample + limit))[near]
    hist = np.bincount(keys, minlength=nby * nbx * (2 * limit + 1)).reshape(nby * nbx, -1)
    hist = ndimage.uniform_filter1d(hist.astype(np.float32), 5, axis=1, mode="constant")
    level = (np.argmax(hist, axis=1) - limit).astype(np.float64).reshape(nby, nbx)
    counts = np.bincount(block[near], minlength=nby * nbx).reshape(nby, nbx)
    size = np.bincount(np.broadcast_to(block, sample.shape).reshape(-1), minlength=nby * nbx)
    level = np.where(counts >= 0.2 * size.reshape(nby, nbx), level, np.nan)
    if np.isnan(level).all():
        return score, _rms_noise(sample, floor)
    level = np.where(np.isnan(level), np.nanmedian(level), level)
    level = ndimage.median_filter(level, size=3, mode="nearest")
    if np.abs(level).max() < 1:  # level glass: nothing to take away
        return score, _rms_noise(sample, floor)
    # bilinear between block centres, separably: two taps per column of the block grid, then
    # two whole rows per image row (fast row copies). The levels are halves and the weights
    # multiples of 1 / (2 block_px), so every product and sum is exact, in any order.
    lo, hi, t = _interp_taps(w, nbx, block_px)
    level = level.astype(np.float32)
    cols = level[:, lo] * (1 - t) + level[:, hi] * t
    lo, hi, t = _interp_taps(h, nby, block_px)
    surface = np.take(cols, lo, axis=0)
    surface *= (1 - t)[:, None]
    below = np.take(cols, hi, axis=0)
    below *= t[:, None]
    surface += below
    np.rint(surface, out=surface)
    flat = surface.astype(np.int16)
    np.subtract(score, flat, out=flat, dtype=np.int16)
    return flat, _rms_noise(flat[::step, ::step], floor)


def _interp_taps(n: int, n_blocks: int, block_px: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lo, hi, float32 weight of hi) per pixel: linear interpolation from block centres."""
    pos = (np.arange(n) + 0.5) / block_px - 0.5
    lo = np.clip(np.floor(pos).astype(np.int64), 0, n_blocks - 1)
    hi = np.minimum(lo + 1, n_blocks - 1)
    return lo, hi, np.clip(pos - lo, 0, 1).astype(np.float32)

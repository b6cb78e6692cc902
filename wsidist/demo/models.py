"""Demo models for ``wsidist infer``: small, untrained, NumPy only.

They let the inference examples and tests run on the demo slides without a model file, with
answers that can be checked: each returns ``(N, 2)`` probabilities ``[not tissue, tissue]`` for
a batch ``uint8 (N, H, W, 3)``, the tissue probability being the share of the patch's pixels
that look stained by one cue. They are not classifiers of disease; pass your own ``.onnx``,
TorchScript file or ``module:function`` for that.

- :func:`stained` — optical density: a pixel is stained when its optical density reaches 0.15
  (the stain module's background level) in its most absorbed channel, so glass is not.
- :func:`coloured` — colour: a pixel is coloured when its HSV saturation is at least 0.15, so
  gray (glass, shadows, black ink) is not. Its answers differ from :func:`stained` where the
  cues disagree, which gives an ensemble of the two (``--model`` twice) a real spread.

Both are rotation- and flip-invariant (a share of pixels), so test-time augmentation leaves
them unchanged.
"""

from __future__ import annotations

import numpy as np

from wsidist.imaging.stain import BACKGROUND, BETA

__all__ = ["coloured", "stained"]

MIN_SATURATION = 0.15


def _two_classes(p_tissue: np.ndarray) -> np.ndarray:
    p = np.clip(p_tissue.astype(np.float32), 0.0, 1.0)
    return np.stack([1.0 - p, p], axis=1)


def _check(batch: np.ndarray) -> np.ndarray:
    batch = np.asarray(batch)
    if batch.ndim != 4 or batch.shape[-1] != 3:
        raise ValueError(f"expected a batch (N, H, W, 3), got shape {batch.shape}")
    return batch


def stained(batch: np.ndarray) -> np.ndarray:
    """(N, 2) ``[not tissue, tissue]``: the share of pixels whose largest channel optical density
    is ≥ 0.15."""
    batch = _check(batch)
    od = -np.log((batch.astype(np.float32) + 1.0) / BACKGROUND)
    is_stained = od.max(axis=-1) >= BETA
    return _two_classes(is_stained.reshape(len(batch), -1).mean(axis=1))


def coloured(batch: np.ndarray) -> np.ndarray:
    """(N, 2) ``[not tissue, tissue]``: the share of pixels with HSV saturation ≥ 0.15."""
    batch = _check(batch).astype(np.float32)
    high, low = batch.max(axis=-1), batch.min(axis=-1)
    saturation = np.where(high > 0, (high - low) / np.maximum(high, 1.0), 0.0)
    is_coloured = saturation >= MIN_SATURATION
    return _two_classes(is_coloured.reshape(len(batch), -1).mean(axis=1))

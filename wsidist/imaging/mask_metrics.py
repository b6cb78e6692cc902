"""Segmentation metrics of a predicted mask against a ground-truth mask (pure arrays).

From the pixel counts tp, fp, fn, tn (``pred & gt``, ``pred & ~gt``, ``~pred & gt``,
``~pred & ~gt``):

- Dice ``2tp / (2tp + fp + fn)``, Jaccard (IoU) ``tp / (tp + fp + fn)``,
- precision ``tp / (tp + fp)``, recall ``tp / (tp + fn)``, accuracy ``(tp + tn) / n``.

A ratio whose denominator is 0 is 1.0 when the two masks agree there (Dice and Jaccard of two
empty masks; precision of an empty prediction against an empty truth; recall of anything
against an empty truth with nothing predicted) and None (undefined) otherwise: precision of an
empty prediction when the truth has pixels, recall when the truth is empty but the prediction
is not. Accuracy of an empty grid is None.

Pooled metrics add the counts of all slides first (every pixel weighs the same);
:func:`mean_of` averages each metric over the slides where it is defined.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["METRICS", "Counts", "confusion", "mean_of", "scores"]

METRICS = ("dice", "jaccard", "precision", "recall", "accuracy")


@dataclass(frozen=True)
class Counts:
    """Pixel counts of a prediction against a truth."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn
        )

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn


def confusion(pred: np.ndarray, gt: np.ndarray) -> Counts:
    """The pixel counts of two bool masks of one shape."""
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape:
        raise ValueError(f"masks differ in shape: {pred.shape} vs {gt.shape}")
    tp = int(np.count_nonzero(pred & gt))
    n_pred, n_gt = int(np.count_nonzero(pred)), int(np.count_nonzero(gt))
    fp, fn = n_pred - tp, n_gt - tp
    return Counts(tp, fp, fn, int(pred.size) - tp - fp - fn)


def _ratio(num: int, den: int, agree: bool) -> float | None:
    if den:
        return num / den
    return 1.0 if agree else None


def scores(c: Counts) -> dict[str, float | None]:
    """Dice, Jaccard, precision, recall and accuracy of ``c`` (see the module for 0/0)."""
    union = c.tp + c.fp + c.fn
    return {
        "dice": _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn, union == 0),
        "jaccard": _ratio(c.tp, union, union == 0),
        "precision": _ratio(c.tp, c.tp + c.fp, c.fn == 0),
        "recall": _ratio(c.tp, c.tp + c.fn, c.fp == 0),
        "accuracy": _ratio(c.tp + c.tn, c.n, False),
    }


def mean_of(rows: Iterable[Mapping[str, float | None]]) -> dict[str, float | None]:
    """Each metric averaged over the rows where it is defined (None where it is nowhere)."""
    rows = list(rows)
    out: dict[str, float | None] = {}
    for name in METRICS:
        values = [r[name] for r in rows if r.get(name) is not None]
        out[name] = float(np.mean(values)) if values else None
    return out

"""Run the models over a batch with test-time augmentation, and collect per-patch predictions.

For each model, every augmentation of the batch is predicted and mapped back onto the patch;
the model's prediction is the mean over augmentations and its aleatoric uncertainty their
standard deviation (seed 003, eq. 4: the root of the mean over models of the TTA variance).
With several models, the heatmap is the mean of the models' means and the epistemic
uncertainty the standard deviation between them (eq. 5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from wsidist.errors import ConfigError
from wsidist.infer import tta

__all__ = ["BatchPrediction", "PredictionTable", "predict_batch"]


@dataclass(frozen=True)
class BatchPrediction:
    """Maps ``(N, C, h, w)`` (``h = w = 1`` for classifiers) of a batch."""

    mean: np.ndarray
    tta_std: np.ndarray | None
    ensemble_std: np.ndarray | None

    @property
    def names(self) -> tuple[str, ...]:
        present = (("tta_std", self.tta_std), ("ensemble_std", self.ensemble_std))
        return ("mean", *(name for name, a in present if a is not None))

    def channels(self, i: int) -> np.ndarray:
        """(K·C, h, w): patch ``i``'s mean, then its uncertainty maps when present."""
        parts = [self.mean[i]]
        parts += [a[i] for a in (self.tta_std, self.ensemble_std) if a is not None]
        return np.concatenate(parts)


def predict_batch(models: Sequence, augmentations: Sequence[str], batch: np.ndarray):
    """:class:`BatchPrediction` of ``models`` over ``augmentations`` of a uint8 NHWC batch."""
    means, variances = [], []
    for model in models:
        outs = []
        for name in augmentations:
            out = tta.inverse(name, model(tta.forward(name, batch)))
            outs.append(out[:, :, None, None] if out.ndim == 2 else out)
        shapes = {o.shape for o in outs}
        if len(shapes) > 1:
            raise ConfigError(f"model {model.spec}: output shapes differ by augmentation {shapes}")
        stack = np.stack(outs)  # (T, N, C, h, w)
        means.append(stack.mean(0))
        variances.append(stack.var(0))
    shapes = {m.shape for m in means}
    if len(shapes) > 1:
        raise ConfigError(f"the models' outputs differ in shape: {sorted(shapes)}")
    mean = np.mean(means, 0) if len(means) > 1 else means[0]
    tta_std = np.sqrt(np.mean(variances, 0)) if len(augmentations) > 1 else None
    ensemble_std = np.std(means, 0) if len(means) > 1 else None
    return BatchPrediction(mean.astype(np.float32), tta_std, ensemble_std)


@dataclass
class PredictionTable:
    """Per-patch rows of one slide, gathered batch by batch (the box, then per class: the
    patch's mean probability and mean uncertainties)."""

    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    tissue: list[float | None] = field(default_factory=list)
    values: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, boxes, tissue, pred: BatchPrediction) -> None:
        self.boxes += list(boxes)
        self.tissue += list(tissue)
        arrays = {"prob": pred.mean, "tta_std": pred.tta_std, "ensemble_std": pred.ensemble_std}
        for name, a in arrays.items():
            if a is not None:
                self.values.setdefault(name, []).append(a.mean(axis=(2, 3)))

    def table(self, *, level: int | None, mpp: float | None, input_px: int) -> pa.Table:
        n = len(self.boxes)
        box = np.asarray(self.boxes, np.int64).reshape(n, 4)
        cols: dict[str, pa.Array] = {k: pa.array(box[:, i]) for i, k in enumerate("xywh")}
        cols["level"] = pa.array([level] * n, pa.int32())
        cols["mpp"] = pa.array([mpp] * n, pa.float64())
        cols["input_px"] = pa.array([input_px] * n, pa.int32())
        cols["tissue_frac"] = pa.array(self.tissue, pa.float32())
        for name, parts in self.values.items():
            values = np.concatenate(parts)
            for c in range(values.shape[1]):
                cols[f"{name}_{c}"] = pa.array(values[:, c].astype(np.float32))
        return pa.table(cols)

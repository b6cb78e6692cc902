"""Region features of a probability heatmap (seed 003, Table 5), with scikit-image.

At each threshold ``t`` the map is binarised (``p ≥ t``), its 8-connected components labelled
and measured with ``skimage.measure.regionprops`` (area, perimeter, major axis, eccentricity,
extent, solidity, mean confidence), in heatmap pixels, plus level-0 boxes and µm units where
the slide has an mpp. Per slide, for each threshold: the number of regions, the count of
pixels over it, the ratio of those pixels to the tissue pixels, the largest region's area and
major axis, the mean of the regions' mean confidences, and max / mean / variance / skewness /
kurtosis of area, perimeter, eccentricity, extent and solidity over the regions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats
from skimage.measure import label, regionprops

__all__ = ["REGION_STATS", "region_rows", "slide_features"]

GEOMETRY = ("area", "perimeter", "axis_major_length", "eccentricity", "extent", "solidity")
REGION_STATS = ("area", "perimeter", "eccentricity", "extent", "solidity")
STATISTICS = ("max", "mean", "var", "skew", "kurt")


def prefix(threshold: float) -> str:
    """Column prefix of a threshold: ``p50`` for 0.5, ``p90`` for 0.9, ``p975`` for 0.975."""
    return "p" + f"{threshold * 100:g}".replace(".", "")


def region_rows(prob: np.ndarray, threshold: float, *, scale: float, mpp: float | None) -> list:
    """One dict per connected region of ``prob ≥ threshold`` (2-D probability map)."""
    labels = label(prob >= threshold, connectivity=2)
    rows = []
    for region in regionprops(labels, intensity_image=prob):
        r0, c0, r1, c1 = region.bbox
        row: dict[str, Any] = {
            "threshold": float(threshold),
            "region": int(region.label),
            **{name: float(getattr(region, name)) for name in GEOMETRY},
            "mean_confidence": float(region.intensity_mean),
            "max_confidence": float(region.intensity_max),
            "x": int(round(c0 * scale)), "y": int(round(r0 * scale)),
            "w": int(round((c1 - c0) * scale)), "h": int(round((r1 - r0) * scale)),
            "centroid_x": float((region.centroid[1] + 0.5) * scale),
            "centroid_y": float((region.centroid[0] + 0.5) * scale),
        }  # fmt: skip
        if mpp:
            um = scale * mpp  # µm per heatmap px
            row["area_um2"] = row["area"] * um * um
            row["perimeter_um"] = row["perimeter"] * um
            row["axis_major_um"] = row["axis_major_length"] * um
        rows.append(row)
    return rows


def _statistics(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        return dict.fromkeys(STATISTICS)
    out: dict[str, float | None] = {"max": float(values.max()), "mean": float(values.mean()),
                                    "var": float(values.var())}  # fmt: skip
    spread = values.size > 1 and values.std() > 0
    out["skew"] = float(stats.skew(values)) if spread else None
    out["kurt"] = float(stats.kurtosis(values)) if spread else None
    return out


def slide_features(
    prob: np.ndarray, tissue: np.ndarray | None, rows_by_threshold: dict[float, list[dict]]
) -> dict[str, float | int | None]:
    """Seed 003's per-slide features for each threshold, from its :func:`region_rows`."""
    out: dict[str, float | int | None] = {"max_probability": float(prob.max(initial=0.0))}
    tissue_px = int(tissue.sum()) if tissue is not None else 0
    for t, rows in rows_by_threshold.items():
        p = prefix(t)
        over = prob >= t
        largest = max(rows, key=lambda r: r["area"]) if rows else None
        out[f"{p}_n_regions"] = len(rows)
        out[f"{p}_nonzero_px"] = int(over.sum())
        out[f"{p}_tissue_ratio"] = float((over & tissue).sum() / tissue_px) if tissue_px else None
        out[f"{p}_largest_area"] = largest["area"] if largest else 0.0
        out[f"{p}_largest_major_axis"] = largest["axis_major_length"] if largest else 0.0
        out[f"{p}_mean_confidence"] = (
            float(np.mean([r["mean_confidence"] for r in rows])) if rows else None
        )
        for name in REGION_STATS:
            values = np.asarray([r[name] for r in rows], np.float64)
            for stat, value in _statistics(values).items():
                out[f"{p}_{name}_{stat}"] = value
    return out

"""Superpixel segmentations: rgb uint8 in, rgb uint8 out (each segment painted its mean colour)."""

from __future__ import annotations

import numpy as np
from skimage import graph, segmentation

__all__ = ["kmeans_segmentation", "mean_colour", "rag_threshold"]


def mean_colour(rgb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Paint every labelled region with its mean rgb colour."""
    _, inverse = np.unique(labels, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse).astype(np.float64)
    flat = rgb.reshape(-1, 3).astype(np.float64)
    means = np.stack([np.bincount(inverse, weights=flat[:, c]) / counts for c in range(3)], axis=-1)
    return np.rint(means[inverse]).astype(np.uint8).reshape(rgb.shape)


def _slic(rgb: np.ndarray, compactness: float, n_segments: int) -> np.ndarray:
    return segmentation.slic(
        rgb[..., :3], compactness=compactness, n_segments=n_segments, start_label=1
    )


def kmeans_segmentation(
    rgb: np.ndarray, compactness: float = 10, n_segments: int = 800
) -> np.ndarray:
    """SLIC (k-means) superpixels, each replaced by its mean colour."""
    return mean_colour(rgb, _slic(rgb, compactness, n_segments))


def rag_threshold(
    rgb: np.ndarray, compactness: float = 10, n_segments: int = 800, threshold: float = 9
) -> np.ndarray:
    """SLIC superpixels merged over a region adjacency graph where mean colours differ < threshold,
    each merged region replaced by its mean colour."""
    labels = _slic(rgb, compactness, n_segments)
    rag = graph.rag_mean_color(rgb[..., :3], labels)
    merged = graph.cut_threshold(labels, rag, threshold)
    return mean_colour(rgb, merged)

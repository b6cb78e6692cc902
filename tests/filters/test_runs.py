"""Components from runs give exactly ``scipy.ndimage.label``'s labels, sizes and order."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from wsidist.filters.runs import label_runs

EIGHT = np.ones((3, 3), bool)


def _masks():
    rng = np.random.default_rng(7)
    yield np.zeros((5, 7), bool)
    yield np.ones((5, 7), bool)
    yield np.ones((1, 9), bool)
    yield rng.random((9, 1)) < 0.5
    yield np.eye(6, dtype=bool)  # diagonal: one object with 8 neighbours, six with 4
    yield np.eye(6, dtype=bool)[::-1]
    for _ in range(60):
        h, w = rng.integers(1, 48, 2)
        blur = ndimage.uniform_filter(rng.random((h, w)), int(rng.integers(1, 4)))
        yield blur < rng.uniform(0.2, 0.8)


@pytest.mark.parametrize("connectivity", [1, 2])
def test_runs_match_ndimage_label(connectivity):
    rng = np.random.default_rng(connectivity)
    for mask in _masks():
        ref, n = ndimage.label(mask, None if connectivity == 1 else EIGHT)
        runs = label_runs(mask, connectivity)
        assert runs.n == n
        assert np.array_equal(runs.image(), ref)
        size = np.bincount(ref.ravel(), minlength=n + 1)
        size[0] = 0
        assert np.array_equal(runs.sizes(), size)
        border = np.zeros(n + 1, bool)
        for side in (ref[0], ref[-1], ref[:, 0], ref[:, -1]):
            border[side] = True
        border[0] = False
        assert np.array_equal(runs.border(), border)
        flat = ref.ravel()
        probe = rng.integers(0, flat.size, 40)
        assert np.array_equal(runs.at(probe), flat[probe])
        keep = rng.random(n + 1) < 0.5
        index, labels = runs.pixels(keep)
        expected = np.flatnonzero(keep[flat] & (flat > 0))
        assert np.array_equal(index, expected)
        assert np.array_equal(labels, flat[expected])

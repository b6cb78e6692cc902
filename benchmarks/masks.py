"""What mask-from-tiles and metrics cost per slide, side by side with the obvious other ways.

    python benchmarks/masks.py [--width 100000] [--height 80000] [--scale 32] [--tiles 6000]

For one slide of WIDTH × HEIGHT level-0 px and TILES overlapping, off-grid boxes of 1024 px:
the union as a mask at SCALE (box ranges computed at once, then filled) beside shapely's
union then rasterisation (pixel centres; the same rule, so no pixel differs); polygons (the
boxes' union) rasterised by the one rasteriser beside shapely's (prepared) centre test of every
pixel (timed on every 10th row);
the opening by a 256-px disk; metrics of two masks beside
the limit of decoding the two PNGs; the area resampling of a mask 3.2× finer. Best of 3.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import shapely

from wsidist.imaging.contours import rasterise
from wsidist.imaging.mask_metrics import confusion, scores
from wsidist.imaging.masks import (
    box_union_mask,
    decode_mask,
    encode_mask_png,
    grid_shape,
    resample_mask,
    smooth_mask,
)


def best(fn, n: int = 3) -> tuple[float, object]:
    times, out = [], None
    for _ in range(n):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=100_000)
    ap.add_argument("--height", type=int, default=80_000)
    ap.add_argument("--scale", type=float, default=32)
    ap.add_argument("--tiles", type=int, default=6000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n, d = args.tiles, args.scale
    x = rng.uniform(0, args.width - 1024, n)
    y = rng.uniform(0, args.height - 1024, n)
    w = h = np.full(n, 1024.0)
    shape = grid_shape(args.width, args.height, d)
    print(f"{args.width}×{args.height} px, {n} boxes of 1024 px, mask {shape[1]}×{shape[0]}")

    def per_box():
        m = np.zeros(shape, bool)
        j0, j1 = np.ceil(x / d - 0.5).astype(int), np.ceil((x + w) / d - 0.5).astype(int)
        i0, i1 = np.ceil(y / d - 0.5).astype(int), np.ceil((y + h) / d - 0.5).astype(int)
        for a, b, c, e in zip(i0, i1, j0, j1):
            m[a:b, c:e] = True
        return m

    def with_shapely():
        return rasterise([shapely.union_all(shapely.box(x, y, x + w, y + h))], shape, d)

    t_ours, ours = best(lambda: box_union_mask(x, y, w, h, shape, d))
    loop = per_box()  # the same rule written out: a cross-check
    t_shp, shp = best(with_shapely, 1)
    assert np.array_equal(ours, loop)
    print(f"union      box fill {t_ours * 1e3:8.1f} ms   shapely union + rasterise "
          f"{t_shp * 1e3:8.1f} ms ({t_shp / t_ours:.1f}×, {int((shp != ours).sum())} px differ"
          " on edge ties)")  # fmt: skip
    union = shapely.union_all(shapely.box(x, y, x + w, y + h))
    shapely.prepare(union)
    cx, cy = np.meshgrid((np.arange(shape[1]) + 0.5) * d, (np.arange(shape[0]) + 0.5) * d)
    t_poly, poly = best(lambda: rasterise([union], shape, d))
    band = slice(0, shape[0], 10)  # every 10th row, timed ×10 (the full test takes a minute)
    t_cxy, test = best(lambda: shapely.contains_xy(union, cx[band], cy[band]), 1)
    assert np.array_equal(test, poly[band])  # no centre of these boxes lies on an edge
    t_cxy *= 10
    print(f"polygons   rasterise {t_poly * 1e3:8.1f} ms   shapely centre test of every pixel "
          f"{t_cxy * 1e3:8.1f} ms ({t_cxy / t_poly:.1f}×)")  # fmt: skip
    t_smooth, smooth = best(lambda: smooth_mask(ours, 256 / d))
    print(f"smooth     opening by a 256-px disk {t_smooth * 1e3:8.1f} ms "
          f"({t_smooth / t_ours:.1f}× the union)")  # fmt: skip
    png_a, png_b = encode_mask_png(ours, {"downsample": d}), encode_mask_png(smooth, {})
    t_decode, _ = best(lambda: (decode_mask(png_a), decode_mask(png_b)))
    t_metrics, counts = best(lambda: scores(confusion(ours, smooth)))
    print(f"metrics    counts + scores {t_metrics * 1e3:8.1f} ms   decoding the two PNGs "
          f"{t_decode * 1e3:8.1f} ms (metrics = {t_metrics / t_decode:.2f}× the decode)")  # fmt: skip
    fine_d = d / 3.2
    fine = box_union_mask(x, y, w, h, grid_shape(args.width, args.height, fine_d), fine_d)
    t_res, _ = best(lambda: resample_mask(fine, (fine_d, fine_d), (d, d), shape))
    print(
        f"resample   {fine.shape[1]}×{fine.shape[0]} → {shape[1]}×{shape[0]} {t_res * 1e3:8.1f} ms"
    )


if __name__ == "__main__":
    main()

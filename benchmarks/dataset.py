"""Training-data speed: the DataLoader over the slides beside ``extract`` and a raw read loop.

    python benchmarks/dataset.py [--n 2000] [--patch 256]

The same selection (``--n`` random tissue boxes over two generated stained slides) is read
four ways, one run, side by side in patches/s:

* raw read     — ``read_patch`` in a loop, one process, slides already open (the floor);
* TileDataset  — ``torch.utils.data.DataLoader`` (batch 32) with 0 and 2 workers, or, without
  torch, a loop and a fork pool of 2 processes;
* SlideTileDataset — the iterable one, 2 workers, slide by slide;
* extract      — ``wsidist extract`` to PNG files on a LocalCluster of 1 and 2 workers (reads,
  encodes and writes: what training from files would need first).
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsidist.data import SlideTileDataset, TileDataset  # noqa: E402
from wsidist.demo.stained import StainedSpec, write_stained_slide  # noqa: E402
from wsidist.io.patch import PatchSpec, read_patch  # noqa: E402
from wsidist.io.slide import open_slide  # noqa: E402
from wsidist.query.extract import extract  # noqa: E402
from wsidist.runtime.cluster import dask_client  # noqa: E402

HAS_TORCH = importlib.util.find_spec("torch") is not None


def selection(paths: list[Path], n: int, patch: int, side: int) -> pa.Table:
    rng = np.random.default_rng(0)
    rows = []
    while len(rows) < n:
        x, y = (int(v) for v in rng.integers(0, side - patch, 2))
        cx, cy = (x + patch / 2) / side - 0.5, (y + patch / 2) / side - 0.5
        if cx * cx + cy * cy < 0.4**2:  # inside the tissue ellipse
            p = paths[len(rows) % len(paths)]
            rows.append({"slide_id": p.stem, "url": str(p), "x": x, "y": y, "w": patch,
                         "h": patch})  # fmt: skip
    return pa.Table.from_pylist(rows)


def rate(fn) -> float:
    start = time.perf_counter()
    n = fn()
    return n / (time.perf_counter() - start)


def raw(table: pa.Table) -> int:
    slides = {u: open_slide(u) for u in set(table.column("url").to_pylist())}
    spec = PatchSpec(level=0)
    for r in table.to_pylist():
        read_patch(slides[r["url"]], r["x"], r["y"], r["w"], r["h"], spec)
    return table.num_rows


def _count(dataset, indices) -> int:
    return sum(dataset[i][0].shape[0] > 0 for i in indices)


def tile_loader(table: pa.Table, workers: int) -> int:
    dataset = TileDataset(table, level=0)
    if HAS_TORCH:
        from torch.utils.data import DataLoader

        return sum(len(b[0]) for b in DataLoader(dataset, batch_size=32, num_workers=workers))
    if workers == 0:
        return _count(dataset, range(len(dataset)))
    with mp.get_context("fork").Pool(workers) as pool:
        n = len(dataset)
        return sum(pool.starmap(_count, [(dataset, range(k, n, workers)) for k in range(workers)]))


def iterable_loader(table: pa.Table, workers: int) -> int:
    if HAS_TORCH:
        from torch.utils.data import DataLoader

        dataset = SlideTileDataset(table, level=0)
        return sum(1 for _ in DataLoader(dataset, batch_size=None, num_workers=workers))
    return sum(1 for _ in SlideTileDataset(table, level=0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--patch", type=int, default=256)
    ap.add_argument("--side", type=int, default=8192)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="wsidist-bench-data-") as tmp:
        tmp = Path(tmp)
        paths = [tmp / f"slide{i}.tiff" for i in range(2)]
        for i, p in enumerate(paths):
            write_stained_slide(p, StainedSpec(width=args.side, height=args.side, seed=i))
        table = selection(paths, args.n, args.patch, args.side)
        loader = "torch DataLoader" if HAS_TORCH else "fork pool (no torch)"
        results = [("raw read_patch loop, 1 process", rate(lambda: raw(table)))]
        results.append((f"TileDataset, {loader}, 0 workers", rate(lambda: tile_loader(table, 0))))
        results.append((f"TileDataset, {loader}, 2 workers", rate(lambda: tile_loader(table, 2))))
        results.append(("SlideTileDataset, 2 workers", rate(lambda: iterable_loader(table, 2))))
        for workers in (1, 2):
            with dask_client(workers=workers) as client:
                dest = str(tmp / f"extract{workers}")
                run = lambda d=dest, c=client: extract(table, d, client=c).num_rows  # noqa: E731
                results.append((f"extract to PNG, {workers} worker(s)", rate(run)))
        base = results[0][1]
        print(f"{args.n} patches of {args.patch} px from 2 slides of {args.side}² px")
        print(f"{'reader':<44}{'patches/s':>10}{'× raw':>8}")
        for name, value in results:
            print(f"{name:<44}{value:>10.1f}{value / base:>8.2f}")


if __name__ == "__main__":
    main()

"""Inference speed and memory: the whole stage beside its two limits, read-only and model-only.

    python benchmarks/infer.py [--side 8192] [--patch 256] [--big 60000x50000]

On a generated stained slide (``--side`` px square, half tissue), with the ONNX darkness model
of the tests (a fixed 1×1 convolution, a global pool, a sigmoid: cheap, so reading and the
heatmap show) and 50 % overlap, one run prints side by side:

* read only   — the stage's patch reader (``read_patch``) in one process, no model;
* model only  — onnxruntime on an in-memory batch, one thread, no reading;
* infer       — ``run_infer`` on a LocalCluster of 1 and 2 workers: patches/s per worker, and
  the worker's split into read, model and heatmap seconds.

With ``--big WxH`` it also writes a slide of that size (3 gigapixels by default: several
minutes) and reports the peak resident memory of the worker that inferred it with 512-px
patches at 50 % overlap, the heatmap accumulator's peak, and the heatmap time per slide.
Timings on a shared machine are noisy: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.infer.models import build_darkness_onnx  # noqa: E402
from wsidist.demo.stained import StainedSpec, write_stained_slide  # noqa: E402
from wsidist.infer.config import InferConfig  # noqa: E402
from wsidist.infer.driver import run_infer  # noqa: E402
from wsidist.infer.models import load_model  # noqa: E402
from wsidist.infer.patches import grid_boxes, patch_geometry  # noqa: E402
from wsidist.io.patch import read_patch  # noqa: E402
from wsidist.io.slide import open_slide  # noqa: E402
from wsidist.runtime.cluster import dask_client  # noqa: E402


def read_only(path: str, config: InferConfig, limit: int) -> tuple[float, int]:
    with open_slide(path) as slide:
        geom = patch_geometry(slide, config)
        w, h = slide.dimensions
        boxes, _ = grid_boxes(w, h, geom.side_px0, geom.stride_px0)
        boxes = [b for b in boxes if _in_tissue(b, w, h)][:limit]
        start = time.perf_counter()
        for x, y, bw, bh in boxes:
            read_patch(slide, x, y, bw, bh, geom.spec)
        return len(boxes) / (time.perf_counter() - start), len(boxes)


def _in_tissue(box, w, h) -> bool:
    x, y, s, _ = box
    cx, cy = (x + s / 2) / w - 0.5, (y + s / 2) / h - 0.5
    return cx * cx + cy * cy < 0.3**2


def model_only(model_path: str, patch: int, batch: int = 32, repeats: int = 20) -> float:
    model = load_model(model_path, threads=1)
    data = np.random.default_rng(0).integers(0, 256, (batch, patch, patch, 3), dtype=np.uint8)
    model(data)
    start = time.perf_counter()
    for _ in range(repeats):
        model(data)
    return batch * repeats / (time.perf_counter() - start)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def infer_run(paths, out: str, config: InferConfig, workers: int) -> tuple[dict, list[float]]:
    with dask_client(workers=workers) as client:
        table = run_infer(paths, out, config, client=client, overwrite=True)
        rss = list(client.run(peak_rss_mb).values())
    rows = table.to_pylist()
    bad = [r["error"] for r in rows if r["status"] != "ok"]
    if bad:
        raise SystemExit(f"inference failed: {bad}")
    return rows, rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=8192)
    ap.add_argument("--patch", type=int, default=256)
    ap.add_argument("--big", default=None, help="WxH of a big slide for memory, e.g. 60000x50000")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="wsidist-bench-infer-") as tmp:
        tmp = Path(tmp)
        model = str(build_darkness_onnx(tmp / "darkness.onnx"))
        slides = []
        for i in range(2):  # two slides, so two workers both have one
            path = tmp / f"slide{i}.tiff"
            write_stained_slide(path, StainedSpec(width=args.side, height=args.side, seed=i,
                                                  tissue=(0.5, 0.5, 0.45, 0.45)))  # fmt: skip
            slides.append(str(path))
        config = InferConfig(models=(model,), patch_px=args.patch, overlap=0.5, batch_size=32)
        read_rate, n_read = read_only(slides[0], config, 1500)
        model_rate = model_only(model, args.patch)
        print(f"slides: 2 × {args.side}×{args.side} px, patches {args.patch} px, overlap 0.5")
        print(f"{'what':<26}{'patches/s/worker':>18}{'read s':>9}{'model s':>9}{'heatmap s':>11}")
        print(f"{'read only (1 process)':<26}{read_rate:>18.1f}")
        print(f"{'model only (1 thread)':<26}{model_rate:>18.1f}")
        for workers in (1, 2):
            start = time.perf_counter()
            rows, _ = infer_run(slides, str(tmp / f"out{workers}"), config, workers)
            wall = time.perf_counter() - start
            n = sum(r["n_patches"] for r in rows)
            per_worker = n / sum(r["seconds"] for r in rows)
            parts = [sum(r[k] for r in rows) for k in ("read_seconds", "model_seconds",
                                                         "heatmap_seconds")]  # fmt: skip
            print(f"{f'infer, {workers} worker(s)':<26}{per_worker:>18.1f}{parts[0]:>9.1f}"
                  f"{parts[1]:>9.1f}{parts[2]:>11.1f}   ({n} patches, {n / wall:.1f}/s wall "
                  f"with cluster start)")  # fmt: skip
        print(f"infer / read-only {per_worker / read_rate:.2f}, infer / model-only "
              f"{per_worker / model_rate:.2f} (2 workers, per worker)")  # fmt: skip
        if args.big:
            big(tmp, model, args.big)


def big(tmp: Path, model: str, size: str) -> None:
    w, h = (int(v) for v in size.lower().split("x"))
    path = tmp / "big.tiff"
    start = time.perf_counter()
    write_stained_slide(path, StainedSpec(width=w, height=h, seed=7))
    print(f"\nbig slide {w}×{h} ({w * h / 1e9:.2f} gigapixels) written in "
          f"{time.perf_counter() - start:.0f} s")  # fmt: skip
    config = InferConfig(models=(model,), patch_px=512, overlap=0.5)
    rows, rss = infer_run([str(path)], str(tmp / "out-big"), config, 1)
    r = rows[0]
    print(f"patches {r['n_patches']} (512 px, stride {r['stride_px0']}), heatmap "
          f"{r['heatmap_width']}×{r['heatmap_height']} at 1/{r['heatmap_scale']:g}")  # fmt: skip
    print(f"worker peak RSS {max(rss):.0f} MB; heatmap accumulator peak "
          f"{r['heatmap_bytes'] / 2**20:.1f} MB; a full-resolution float32 map would be "
          f"{w * h * 4 / 2**30:.1f} GiB per class")  # fmt: skip
    print(f"slide {r['seconds']:.0f} s: read {r['read_seconds']:.0f} s, model "
          f"{r['model_seconds']:.0f} s, heatmap {r['heatmap_seconds']:.1f} s; "
          f"{r['patches_per_s']:.1f} patches/s")  # fmt: skip


if __name__ == "__main__":
    main()

"""Stage-1 speed: per slide, stage 1 beside decoding only the pixels it reads; 1 vs 2 workers.

    python benchmarks/stage1.py [--slides DIR] [--big N] [--scale 32]

Per slide, "decode" reads exactly what the thumbnail reads (the level it picks, in the same
blocks) and throws it away; "stage 1" is the whole worker job (thumbnail, filters, tiles,
scores, writing outputs). The ratio says how much stage 1 adds over the I/O + decode floor.
Then the whole set runs as a job on a LocalCluster with 1 and with 2 worker processes.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

from wsidist.demo.synth import SynthSpec, write_synthetic_slide
from wsidist.io.slide import DEFAULT_BLOCK_PX, open_slide
from wsidist.io.storage import Store
from wsidist.runtime.cluster import dask_client
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.driver import run_stage1
from wsidist.stage1.worker import SlideTask, process_slide

REAL = [
    "CMU-1-Small-Region.svs",
    "tcga-cr-7395-01a-01-ts1.svs",
    "test3-DAPI-2-(387).ndpi",
    "kidney-48-5.tif",
]


def decode_only(url: str, scale: float) -> tuple[float, float]:
    """Seconds to decode the blocks the thumbnail reads, and their megapixels."""
    with open_slide(url) as slide:
        level = slide.best_level_for_downsample(scale)
        lw, lh = slide.level_dimensions[level]
        start = time.perf_counter()
        for y in range(0, lh, DEFAULT_BLOCK_PX):
            for x in range(0, lw, DEFAULT_BLOCK_PX):
                slide.read_level(
                    level, x, y, min(DEFAULT_BLOCK_PX, lw - x), min(DEFAULT_BLOCK_PX, lh - y)
                )
        return time.perf_counter() - start, lw * lh / 1e6


def make_big_slides(folder: Path, n: int) -> list[str]:
    specs = [
        SynthSpec(width=24000, height=18000, seed=101, strokes_per_pen=2),
        SynthSpec(width=12000, height=9000, seed=102, n_levels=1),  # level 0 only: streamed
        SynthSpec(width=30000, height=20000, seed=103, vendor_style="generic"),
    ]
    paths = []
    for i, spec in enumerate(specs[:n]):
        path = folder / f"big{i}.{'svs' if spec.vendor_style == 'aperio' else 'tiff'}"
        print(
            f"generating {path.name} ({spec.width}×{spec.height}, {spec.n_levels or 'auto'} levels)"
        )
        write_synthetic_slide(path, spec)
        paths.append(str(path))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_slides = Path(__file__).resolve().parents[2] / "shared" / "data" / "slides"
    parser.add_argument("--slides", type=Path, default=default_slides)
    parser.add_argument("--big", type=int, default=3, help="generated large slides (0–3)")
    parser.add_argument("--scale", type=float, default=32.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        urls = [str(args.slides / name) for name in REAL if (args.slides / name).exists()]
        urls += make_big_slides(tmp_path, args.big)
        config = Stage1Config(scale=args.scale)
        store = Store(str(tmp_path / "out-single"))

        print(f"\nper slide, one process, scale {args.scale:g}")
        header = f"{'slide':32} {'level0 MP':>10} {'read MP':>8} {'decode s':>9} {'stage1 s':>9} {'ratio':>6} {'tiles':>6}"
        print(header)
        print("-" * len(header))
        for i, url in enumerate(urls):
            decode_s, read_mp = decode_only(url, args.scale)
            start = time.perf_counter()
            row = process_slide(SlideTask(url, f"s{i}"), config, store, overwrite=True)
            stage1_s = time.perf_counter() - start
            if row["status"] != "ok":
                print(f"{Path(url).name:32} failed: {row['error']}")
                continue
            level0_mp = row["width"] * row["height"] / 1e6
            print(
                f"{Path(url).name[:32]:32} {level0_mp:10.1f} {read_mp:8.2f} {decode_s:9.3f}"
                f" {stage1_s:9.3f} {stage1_s / max(decode_s, 1e-9):6.2f} {row['n_tiles']:6d}"
            )

        print("\nwhole set as a job on a started LocalCluster of worker processes")
        times = {}
        for workers in (1, 2):
            with dask_client(None, workers) as client:
                client.wait_for_workers(workers)
                start = time.perf_counter()
                table = run_stage1(urls, str(tmp_path / f"out-{workers}"), config, client=client)
                times[workers] = time.perf_counter() - start
            ok = sum(s == "ok" for s in table.column("status").to_pylist())
            print(f"  {workers} worker(s): {times[workers]:7.2f} s  ({ok}/{len(urls)} ok)")
            for row in table.to_pylist():
                if row["status"] != "ok":
                    print(f"    {row['slide_id']} failed: {row['error']}")
        print(f"  speed-up 2 vs 1: {times[1] / times[2]:.2f}× (ideal 2.00× on 2 cores)")
        total_gp = sum(math.prod(open_slide(u).dimensions) for u in urls) / 1e9
        print(
            f"  throughput, 2 workers: {total_gp / times[2] * 3600:.1f} gigapixels of level 0 per hour"
        )


if __name__ == "__main__":
    main()

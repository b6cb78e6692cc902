"""Peak memory of one worker process per slide: stage 1 and the rewrite, real and big slides.

    python benchmarks/worker_memory.py [--slides DIR] [--big PATH ...]

Each (slide, stage) runs in a fresh process, as a Dask worker would run it (stage 1:
``process_slide``; rewrite: ``rewrite_slide``, blocks on a thread pool of 2, window 4), and
reports its peak resident set (VmHWM; ru_maxrss would carry the parent's peak across the
fork + exec) beside the same process's RSS after imports. These
numbers set the worker requests and limits in deploy/k8s/base (see deploy/README.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REAL = [
    "CMU-1-Small-Region.svs",
    "tcga-cr-7395-01a-01-ts1.svs",
    "test3-DAPI-2-(387).ndpi",
    "kidney-48-5.tif",
]


def _rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_one(stage: str, url: str, out: str) -> dict[str, float]:
    """Run one slide in this process; its baseline and peak RSS in MB, and seconds."""
    from wsidist.io.slide import open_slide
    from wsidist.io.storage import Store
    from wsidist.runtime.tasks import plan_tasks
    from wsidist.stage1.config import Stage1Config
    from wsidist.stage1.worker import process_slide
    from wsidist.stage2.config import RewriteConfig
    from wsidist.stage2.worker import rewrite_slide

    (task,) = plan_tasks([url])
    with open_slide(url) as slide:
        width, height = slide.dimensions
    baseline = _rss_mb()
    t0 = time.perf_counter()
    store = Store(out)
    if stage == "stage1":
        row = process_slide(task, Stage1Config(), store, overwrite=True)
    else:
        row = rewrite_slide(task, RewriteConfig(), store, store, overwrite=True)
    peak = _rss_mb("VmHWM")
    return {"baseline_mb": baseline, "peak_mb": peak, "seconds": time.perf_counter() - t0,
            "megapixels": width * height / 1e6, "status": row["status"]}  # fmt: skip


def measure(stage: str, url: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, __file__, "--one", stage, url, out]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slides", default=str(Path(__file__).parents[1] / "../shared/data/slides"))
    ap.add_argument("--big", nargs="*", default=[], help="extra (big) slides to measure")
    ap.add_argument("--one", nargs=3, metavar=("STAGE", "URL", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one)))
        return
    slides = [str(Path(args.slides) / n) for n in REAL if (Path(args.slides) / n).exists()]
    print(
        f"{'slide':32} {'MP':>7} | {'stage':7} {'base MB':>8} {'peak MB':>8} {'slide MB':>9} {'s':>6}"
    )
    for url in slides + args.big:
        for stage in ("stage1", "rewrite"):
            r = measure(stage, url)
            print(
                f"{Path(url).name[:32]:32} {r['megapixels']:7.0f} | {stage:7} {r['baseline_mb']:8.0f} "
                f"{r['peak_mb']:8.0f} {r['peak_mb'] - r['baseline_mb']:9.0f} {r['seconds']:6.1f}"
                + ("" if r["status"] == "ok" else f"  ({r['status']})")
            )


if __name__ == "__main__":
    main()

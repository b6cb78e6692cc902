"""Peak local disk and RSS of a rewrite and a transcode to s3://: this tree beside another.

    python benchmarks/remote_write.py [--before /path/to/other/checkout] [--size 8000x6000]
                                      [--runs 1] [--modes rewrite,transcode]

Starts a SeaweedFS S3 server, generates one slide, and writes its pyramid to ``s3://bench/``
in a child process per tree and mode (``PYTHONPATH`` set to the tree), with ``TMPDIR`` a fresh
folder: ``rewrite`` (JPEG q90, glass kept, so the pyramid is large) and ``transcode`` (its JPEG
tiles losslessly to JPEG-XL, glass dropped). The parent samples that folder's size every 10 ms
(peak local scratch); the child reports its peak RSS (``ru_maxrss``), the seconds and the bytes
written, and its CPU seconds (less noisy than wall time on a shared machine). Without
``--before`` only this tree is measured. Each mode's source slide is local,
so the scratch is the writer's alone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def _child(slide: str, out: str, mode: str) -> None:
    import resource

    from wsidist.io.storage import Store
    from wsidist.runtime.tasks import SlideTask
    from wsidist.stage2.config import RewriteConfig
    from wsidist.stage2.worker import rewrite_slide

    opts = json.loads(os.environ["BENCH_S3"])
    t0 = time.perf_counter()
    config = (
        RewriteConfig(transcode=True) if mode == "transcode"
        else RewriteConfig(codec="jpeg", glass="keep")
    )  # fmt: skip
    row = rewrite_slide(
        SlideTask(slide, "bench"), config,
        Store(out, opts), Store(tempfile.mkdtemp(), {}), overwrite=True,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    use = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"status": row["status"], "error": row.get("error"), "seconds": seconds,
                      "cpu": use.ru_utime + use.ru_stime, "rss": use.ru_maxrss * 1024,
                      "bytes": row.get("output_bytes")}))  # fmt: skip


def _dir_bytes(root: Path) -> int:
    total = 0
    for p in root.rglob("*"):
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile
            total += p.stat().st_size if p.is_file() else 0
    return total


def _measure(tree: Path, slide: str, out: str, mode: str, env: dict[str, str]) -> dict:
    scratch = Path(tempfile.mkdtemp(prefix="bench-scratch-"))
    child_env = {**env, "PYTHONPATH": str(tree), "TMPDIR": str(scratch)}
    peak, done = [0], threading.Event()

    def watch() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], _dir_bytes(scratch))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        res = subprocess.run(
            [sys.executable, __file__, "--child", slide, out, mode], env=child_env, cwd=tree,
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    finally:
        done.set()
        watcher.join()
    found = json.loads(res.stdout.strip().splitlines()[-1])
    return {**found, "scratch": peak[0]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=Path, help="another checkout to compare with")
    ap.add_argument("--size", default="8000x6000")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--modes", default="rewrite,transcode")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(*args.child)
        return
    sys.path.insert(0, str(HERE))
    from tests.helpers.s3server import start_s3_server
    from wsidist.demo.synth import SynthSpec, write_synthetic_slide

    work = Path(tempfile.mkdtemp(prefix="bench-remote-write-"))
    width, height = (int(v) for v in args.size.split("x"))
    slide = work / "slide.svs"
    write_synthetic_slide(slide, SynthSpec(width=width, height=height, seed=5))
    server = start_s3_server(work / "s3")
    try:
        bucket = server.make_bucket("bench")
        env = {**os.environ, **server.env, "BENCH_S3": json.dumps(server.storage_options)}
        trees = [("head last (this tree)", HERE)]
        if args.before:
            trees.insert(0, ("before", args.before.resolve()))
        modes = args.modes.split(",")
        rows = {(m, name): [] for m in modes for name, _ in trees}
        for _ in range(args.runs):
            for m in modes:
                for name, tree in trees:
                    out = f"{bucket}/{m}-{name.split()[0]}"
                    rows[m, name].append(_measure(tree, str(slide), out, m, env))
        print(f"slide {width}×{height}, {slide.stat().st_size / 1e6:.1f} MB; rewrite: JPEG q90 "
              "glass kept; transcode: JPEG → lossless JPEG-XL, glass dropped")  # fmt: skip
        print(f"{'mode':10} {'tree':22} {'output MB':>10} {'peak scratch MB':>16} "
              f"{'peak RSS MB':>12} {'s (best)':>9} {'CPU s (best)':>13}")  # fmt: skip
        for (m, name), runs in rows.items():
            best = min(runs, key=lambda r: r["seconds"])
            if best["status"] != "ok":
                print(f"{m:10} {name:22} failed: {best['error']}")
                continue
            print(f"{m:10} {name:22} {best['bytes'] / 1e6:10.1f} "
                  f"{max(r['scratch'] for r in runs) / 1e6:16.1f} "
                  f"{max(r['rss'] for r in runs) / 1e6:12.0f} {best['seconds']:9.1f} "
                  f"{min(r['cpu'] for r in runs):13.1f}")  # fmt: skip
    finally:
        server.stop()


if __name__ == "__main__":
    main()

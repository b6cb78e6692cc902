"""Remote slides: range reads versus whole-file staging, side by side in one run.

    python benchmarks/remote.py [--width 16384] [--height 12288] [--patches 100] [--repeat 3]
                                [--dicom-width 8192] [--dicom-height 6144]

On a throwaway SeaweedFS server (the tests' helper, loopback), a generated Aperio-style slide
(downsamples 1, 4, 16, …) is read from ``s3://`` two ways: ``range`` (the TIFF directory, then
only the tiles a read needs) and ``stage`` (downloaded whole into a fresh cache first, as
before). For stage 1 of the slide (thumbnail → mask → tiles → scores, the slide task in this
process, outputs to a local folder) and for reading ``--patches`` random 256-px boxes at level
0, it prints the best-of-``--repeat`` time, the bytes and requests moved from the server, the
bytes of the stored tiles the reads decode, and the ratio of the two. The machine is shared:
times are noisy, the byte counts are exact.

The DICOM rows do the same for a generated DICOM series (a ``--dicom-width`` slide, one instance
per level, 256-px JPEG frames, downsamples 1 … 32) written with a Basic Offset Table and without
one: ``range`` reads the headers, then the frames by their offsets (with a table) or the one
instance of the level read (without); ``stage`` downloads the whole series first.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.s3server import start_s3_server  # noqa: E402
from wsidist.demo.dicom import pyramid, write_dicom_series  # noqa: E402
from wsidist.demo.spec import SynthSpec  # noqa: E402
from wsidist.demo.synth import write_synthetic_slide  # noqa: E402
from wsidist.io.accounting import metering  # noqa: E402
from wsidist.io.backends.dicom_frames import read_instance  # noqa: E402
from wsidist.io.patch import PatchSpec, prefetch_patches, read_patch  # noqa: E402
from wsidist.io.slide import open_slide  # noqa: E402
from wsidist.io.storage import Store  # noqa: E402
from wsidist.query.extract import PREFETCH_BOXES  # noqa: E402
from wsidist.runtime.tasks import SlideTask  # noqa: E402
from wsidist.stage1.config import Stage1Config  # noqa: E402
from wsidist.stage1.worker import process_slide  # noqa: E402

PATCH = 256


def tile_table(path: Path) -> list[tuple[tuple[int, int], int, int, np.ndarray]]:
    """(shape, tile w, tile h, byte counts) of each tiled page."""
    with tifffile.TiffFile(path) as tif:
        return [
            (p.shape[:2], int(p.tilewidth), int(p.tilelength), np.asarray(p.databytecounts))
            for p in tif.pages
            if p.is_tiled
        ]


def decoded_bytes(pages, level_shape, boxes) -> int:
    """Bytes of the stored tiles of the level that the boxes (x, y, w, h, level px) touch."""
    (_, tw, th, counts), *_ = [p for p in pages if p[0] == level_shape]
    across = -(-level_shape[1] // tw)
    touched = set()
    for x, y, w, h in boxes:
        x1, y1 = min(x + w, level_shape[1]), min(y + h, level_shape[0])
        for r in range(y // th, (y1 - 1) // th + 1):
            for c in range(x // tw, (x1 - 1) // tw + 1):
                touched.add(r * across + c)
    return int(sum(int(counts[i]) for i in touched))


def stage1_once(url: str, mode: str, work: Path) -> tuple[float, int, int]:
    cache = tempfile.mkdtemp(dir=work, prefix="cache-")  # cold: staging downloads every time
    out = Store(tempfile.mkdtemp(dir=work, prefix="out-"))
    t0 = time.perf_counter()
    os.environ["WSIDIST_REMOTE_READ"] = mode  # what --remote-read sets
    with metering() as meter:
        row = process_slide(SlideTask(url, "bench"), Stage1Config(), out, cache_dir=cache)
    seconds = time.perf_counter() - t0
    assert row["status"] == "ok", row.get("error")
    return seconds, meter.bytes_read, meter.read_requests


def patches_once(url: str, mode: str, work: Path, boxes) -> tuple[float, int, int]:
    cache = tempfile.mkdtemp(dir=work, prefix="cache-")
    t0 = time.perf_counter()
    with metering() as meter, open_slide(url, cache_dir=cache, remote_read=mode) as slide:
        for i, (x, y, w, h) in enumerate(boxes):
            if i % PREFETCH_BOXES == 0:  # as extraction does
                prefetch_patches(slide, boxes[i : i + PREFETCH_BOXES], PatchSpec())
            read_patch(slide, x, y, w, h, PatchSpec())
    return time.perf_counter() - t0, meter.bytes_read, meter.read_requests


def frame_table(path: Path) -> tuple[int, int, int, np.ndarray]:
    """(width, frame w, frame h, bytes of each frame) of one DICOM instance."""
    inst = read_instance(str(path))
    idx = inst.index
    counts = np.diff(np.concatenate([[0], np.cumsum(idx.lengths)])[idx.starts])
    inst.close()
    return inst.width, inst.frame_w, inst.frame_h, counts


def frames_decoded(table, boxes) -> int:
    """Bytes of the frames of one instance that the boxes (x, y, w, h, level px) touch."""
    width, fw, fh, counts = table
    across = -(-width // fw)
    touched = {
        r * across + c
        for x, y, w, h in boxes
        for r in range(y // fh, (y + h - 1) // fh + 1)
        for c in range(x // fw, (x + w - 1) // fw + 1)
    }
    return int(sum(int(counts[i]) for i in touched if i < len(counts)))


def dicom_rows(args, server, bucket: str, work: Path, print_row) -> None:
    """Stage 1 and patches of a generated DICOM series, with and without an offset table."""
    src = work / "dicom-src.svs"
    write_synthetic_slide(
        src, SynthSpec(width=args.dicom_width, height=args.dicom_height, seed=4, texture="atlas")
    )
    with open_slide(str(src)) as s:
        levels = pyramid(s.read_region(0, 0, 0, s.dimensions), 6)
    rng = np.random.default_rng(1)
    w0, h0 = levels[0].shape[1], levels[0].shape[0]
    boxes = [
        (int(rng.integers(0, w0 - PATCH)), int(rng.integers(0, h0 - PATCH)), PATCH, PATCH)
        for _ in range(args.patches)
    ]
    for offsets in ("bot", "none"):
        paths = write_dicom_series(work / f"dicom-{offsets}", levels, frame=256, offsets=offsets)
        url = f"{bucket}/dicom-{offsets}"
        for p in paths:
            server.filesystem().put_file(str(p), f"{url}/{p.name}")
        with open_slide(str(paths[0])) as local:
            level = local.best_level_for_downsample(Stage1Config().scale)
            lw, lh = local.level_dimensions[level]
        series_mb = sum(p.stat().st_size for p in paths) / 1e6
        print(f"DICOM series, offset table {offsets}: {series_mb:.1f} MB in {len(paths)} files, "
              f"level 0 {paths[0].stat().st_size / 1e6:.1f} MB, stage 1 reads level {level} "
              f"({paths[level].stat().st_size / 1e6:.2f} MB)")  # fmt: skip
        tasks = {
            "stage 1": (lambda m, u=url: stage1_once(u, m, work),
                        frames_decoded(frame_table(paths[level]), [(0, 0, lw, lh)])),
            f"{args.patches} patches": (lambda m, u=url: patches_once(u, m, work, boxes),
                                        frames_decoded(frame_table(paths[0]), boxes)),
        }  # fmt: skip
        for name, (fn, decoded) in tasks.items():
            results = {m: best(lambda m=m, fn=fn: fn(m), args.repeat) for m in ("range", "stage")}
            print_row(f"dcm {offsets} {name}", results, decoded)


def best(fn, repeat: int) -> tuple[float, int, int]:
    runs = [fn() for _ in range(repeat)]
    return min(r[0] for r in runs), runs[-1][1], runs[-1][2]


def print_row(name: str, results: dict, decoded: int) -> None:
    for mode, (secs, moved, requests) in results.items():
        print(f"{name:<22} {mode:<6} {secs:7.2f} {moved / 1e6:9.2f} {requests:8d} "
              f"{decoded / 1e6:10.2f} {moved / decoded:13.2f}")  # fmt: skip
    (rs, rb, _), (ss, sb, _) = results["range"], results["stage"]
    print(f"{name:<22} range/stage: time {rs / ss:.2f}×, bytes {rb / sb:.4f}×", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, default=16384)
    ap.add_argument("--height", type=int, default=12288)
    ap.add_argument("--patches", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dicom-width", type=int, default=8192, help="0: no DICOM rows")
    ap.add_argument("--dicom-height", type=int, default=6144)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wsidist-bench-remote-"))
    slide = work / "bench.svs"
    print(f"generating a {args.width}×{args.height} slide …", flush=True)
    write_synthetic_slide(
        slide, SynthSpec(width=args.width, height=args.height, seed=3, texture="atlas")
    )
    size = slide.stat().st_size
    pages = tile_table(slide)
    server = start_s3_server(work / "seaweedfs")
    try:
        os.environ.update(server.env)
        bucket = server.make_bucket(f"bench-{secrets.token_hex(3)}")
        url = f"{bucket}/{slide.name}"
        server.filesystem().put_file(str(slide), url)
        with open_slide(str(slide)) as local:
            level = local.best_level_for_downsample(Stage1Config().scale)
            lw, lh = local.level_dimensions[level]
            w0, h0 = local.dimensions
        rng = np.random.default_rng(0)
        boxes = [
            (int(rng.integers(0, w0 - PATCH)), int(rng.integers(0, h0 - PATCH)), PATCH, PATCH)
            for _ in range(args.patches)
        ]
        tasks = {
            "stage 1": (lambda m: stage1_once(url, m, work),
                        decoded_bytes(pages, (lh, lw), [(0, 0, lw, lh)])),
            f"{args.patches} patches": (lambda m: patches_once(url, m, work, boxes),
                                        decoded_bytes(pages, (h0, w0), boxes)),
        }  # fmt: skip
        for mode in ("range", "stage"):  # warm-up: imports, first connections
            stage1_once(url, mode, work)
        print(f"slide {size / 1e6:.1f} MB on SeaweedFS (loopback); best of {args.repeat}; "
              "machine shared, times noisy")  # fmt: skip
        head = f"{'task':<22} {'mode':<6} {'s':>7} {'MB moved':>9} {'requests':>8} "
        print(head + f"{'MB decoded':>10} {'moved/decoded':>13}")
        for name, (fn, decoded) in tasks.items():
            results = {m: best(lambda m=m, fn=fn: fn(m), args.repeat) for m in ("range", "stage")}
            print_row(name, results, decoded)
        if args.dicom_width:
            dicom_rows(args, server, bucket, work, print_row)
    finally:
        server.stop()


if __name__ == "__main__":
    main()

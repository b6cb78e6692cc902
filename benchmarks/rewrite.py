"""Stage-2 rewrite speed and size: write_pyramid / transcode_pyramid beside the raw codec limit.

    python benchmarks/rewrite.py [--slides DIR] [--big 20000x15000] [--efforts 1,3,5]
                                 [--workers 2] [--out TMPDIR]

Per slide (CMU-1-Small-Region, the TCGA JPEG 2000 slide, a generated large glassy JPEG slide),
the default tissue mask is computed once (not timed); then, per mode:

* ``jxl eN``    — ``write_pyramid`` (JPEG-XL distance 1, effort N, glass empty) on a thread
  pool of ``--workers`` (quality sampling off); PSNR/SSIM come from one separate untimed
  effort-3 run;
* ``transcode`` — ``transcode_pyramid`` (lossless JPEG → JPEG-XL; JPEG sources only);
* ``dask e3``   — the big slide's effort-3 rewrite through a ``distributed.LocalCluster`` of
  ``--workers`` single-threaded processes, first ("cold") and second ("warm") run on the same
  cluster (cluster start-up not timed);
* ``dask e3 … mtune`` — the same with the workers' glibc malloc trim/mmap thresholds raised as
  wsidist's LocalCluster sets them (Dask's default ``MALLOC_TRIM_THRESHOLD_=65536`` makes
  workers page-fault on every big buffer);
* ``jpeg q90``  — the big slide as a JPEG q90 pyramid with glass kept (the size baseline).

"limit" is the raw single-thread ``imagecodecs`` time of exactly the level-0 tissue tiles the
mode encodes (pixels or source JPEG streams already in memory), divided by ``--workers``: the
ideal parallel time of level 0 alone; "N-thr" is the same raw work measured on a pool of
``--workers`` threads (what the machine really gives). The rewrite also encodes the reduced
levels (about 1/3 more tiles), reads/decodes the source and area-averages the levels, so a
ratio of about 1.5 is the expected floor.
"""

from __future__ import annotations

import argparse
import functools
import math
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import imagecodecs
import numpy as np
import tifffile

from wsidist.demo.synth import SynthSpec, write_synthetic_slide
from wsidist.io.slide import Slide, open_slide
from wsidist.io.tiff_format import merge_jpeg_tables
from wsidist.runtime.cluster import worker_environ
from wsidist.stage2.blocks import padded_tile
from wsidist.stage2.config import RewriteConfig
from wsidist.stage2.pyramid import PyramidOptions, PyramidReport, tissue_tiles, write_pyramid
from wsidist.stage2.transcode import source_levels, transcode_pyramid
from wsidist.stage2.worker import computed_mask

SLIDES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "slides"
REAL = ["CMU-1-Small-Region.svs", "tcga-cr-7395-01a-01-ts1.svs"]
TILE = 256
# Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also pins glibc's mmap
# threshold: every large buffer (blocks, libjxl) is mmap-ed and page-faulted afresh. The
# "mtune" Dask rows start the workers as wsidist's own LocalCluster does (worker_environ).
MALLOC_TUNED = {k: str(v) for k, v in worker_environ().items() if k.startswith("MALLOC_")}


@dataclass
class Row:
    """One (slide, mode) line of the table."""

    slide: str
    mode: str
    gigapixels: float
    seconds: float | None = None
    limit: float | None = None
    threads: float | None = None  # raw codec measured on a pool of N threads
    report: PyramidReport | None = None
    psnr: str = ""
    ssim: str = ""
    note: str = ""


def margin_px0(slide: Slide) -> float:
    """The writer's default margin: 50 µm at the slide's mpp, else 64 px."""
    return PyramidOptions().margin_for(slide.mpp_x)


def level0_tissue_pixels(slide: Slide, mask: np.ndarray, ds: float) -> list[np.ndarray]:
    """The level-0 tissue tiles ``write_pyramid`` encodes, as padded 256² RGB arrays."""
    width, height = slide.dimensions
    keep = tissue_tiles(mask, ds, width, height, TILE, margin_px0(slide))
    tiles = []
    for r, c in np.argwhere(keep):
        x, y = int(c) * TILE, int(r) * TILE
        px = slide.read_level(0, x, y, min(TILE, width - x), min(TILE, height - y))
        tiles.append(padded_tile(px, 0, 0, TILE))
    return tiles


def level0_tissue_jpegs(path: str, mask: np.ndarray, ds: float, margin: float) -> list[bytes]:
    """The level-0 source JPEG tiles ``transcode_pyramid`` encodes, tables merged in."""
    with tifffile.TiffFile(path) as tif:
        page = source_levels(tif, path)[0]
        keep = tissue_tiles(
            mask, ds, int(page.imagewidth), int(page.imagelength), int(page.tilewidth), margin
        ).ravel()
        offsets, counts, tables = page.dataoffsets, page.databytecounts, page.jpegtables
        out = []
        with open(path, "rb") as fh:
            for i in np.flatnonzero(keep):
                if counts[i]:
                    fh.seek(int(offsets[i]))
                    out.append(merge_jpeg_tables(fh.read(int(counts[i])), tables))
    return out


def codec_limit(encode, items: list, workers: int) -> float:
    """Single-thread seconds to encode ``items`` with ``encode``, divided by ``workers``."""
    start = time.perf_counter()
    for item in items:
        encode(item)
    return (time.perf_counter() - start) / workers


def codec_threads(encode, items: list, workers: int) -> float:
    """Wall seconds to encode ``items`` on a pool of ``workers`` threads (measured scaling)."""
    with ThreadPoolExecutor(workers) as pool:
        start = time.perf_counter()
        for _ in pool.map(encode, items, chunksize=8):
            pass
        return time.perf_counter() - start


def bench_slide(path: Path, efforts: list[int], workers: int, out: Path, big: bool) -> list[Row]:
    """All modes of one slide."""
    rows: list[Row] = []
    with open_slide(str(path)) as slide:
        width, height = slide.dimensions
        gp = width * height / 1e9
        mask = computed_mask(slide, RewriteConfig())
        ds = width / mask.shape[1]
        pixels = level0_tissue_pixels(slide, mask, ds)
        dst = out / f"{path.stem}.tiff"
        opts = PyramidOptions(glass="empty", distance=1.0)

        # untimed, for PSNR/SSIM
        qrep = write_pyramid(slide, mask, ds, dst, replace(opts, effort=3), workers=workers)
        psnr = f"{qrep.psnr_db:.2f}" if qrep.psnr_db is not None else ""
        ssim = f"{qrep.ssim:.4f}" if qrep.ssim is not None else ""
        for effort in efforts:
            start = time.perf_counter()
            fast = replace(opts, effort=effort, quality_samples=0)
            rep = write_pyramid(slide, mask, ds, dst, fast, workers=workers)
            secs = time.perf_counter() - start
            enc = functools.partial(
                imagecodecs.jpegxl_encode, distance=1.0, effort=effort, numthreads=1
            )
            limit = codec_limit(enc, pixels, workers)
            par = codec_threads(enc, pixels, workers)
            row = Row(path.name, f"jxl e{effort}", gp, secs, limit, par, rep)
            if effort == 3:
                row.psnr, row.ssim = psnr, ssim
            rows.append(row)
            print(f"  {path.name} {row.mode}: {secs:.2f} s (limit {limit:.2f} s)", flush=True)

        try:
            jpegs = level0_tissue_jpegs(str(path), mask, ds, margin_px0(slide))
        except Exception as exc:  # noqa: BLE001 — PyramidError: not a tiled JPEG TIFF
            rows.append(Row(path.name, "transcode", gp, note=f"n/a ({reason(exc)})"))
        else:
            with ThreadPoolExecutor(workers) as pool:
                start = time.perf_counter()
                rep = transcode_pyramid(
                    str(path), mask, ds, out / f"{path.stem}.jxl.tiff",
                    margin_px0=margin_px0(slide), submit=pool.submit, max_in_flight=2 * workers,
                )  # fmt: skip
                secs = time.perf_counter() - start
            enc = functools.partial(imagecodecs.jpegxl_encode_jpeg, numthreads=1)
            limit = codec_limit(enc, jpegs, workers)
            par = codec_threads(enc, jpegs, workers)
            rows.append(Row(path.name, "transcode", gp, secs, limit, par, rep, "∞", "1"))
            print(f"  {path.name} transcode: {secs:.2f} s (limit {limit:.2f} s)", flush=True)

        if big:
            e3 = next((r for r in rows if r.mode == "jxl e3"), Row("", "", gp))
            for tag, environ in (("", None), (" mtune", MALLOC_TUNED)):
                for warm, secs, rep in bench_dask(slide, mask, ds, dst, workers, environ):
                    mode = f"dask e3 {warm}{tag}"
                    rows.append(Row(path.name, mode, gp, secs, e3.limit, e3.threads, rep))
                    print(f"  {path.name} {mode}: {secs:.2f} s", flush=True)
            start = time.perf_counter()
            jpeg = PyramidOptions(codec="jpeg", jpeg_quality=90, glass="keep", quality_samples=0)
            rep = write_pyramid(
                slide, mask, ds, out / f"{path.stem}.jpeg.tiff", jpeg, workers=workers
            )
            secs = time.perf_counter() - start
            rows.append(Row(path.name, "jpeg q90 keep", gp, secs, report=rep))
            print(f"  {path.name} jpeg q90 keep: {secs:.2f} s", flush=True)
    return rows


def reason(exc: BaseException) -> str:
    """A short reason for a slide that cannot be transcoded."""
    text = str(exc)
    return "JPEG 2000" if "JP2000" in text or "JPEG2000" in text else text.split(":")[-1].strip()


def bench_dask(
    slide: Slide,
    mask: np.ndarray,
    ds: float,
    dst: Path,
    workers: int,
    environ: dict[str, str] | None = None,
) -> list[tuple[str, float, PyramidReport]]:
    """The effort-3 rewrite with blocks on a LocalCluster of ``workers`` single-thread processes.

    Run twice on the same cluster: "cold" (first tasks import wsidist/imagecodecs in the worker
    processes) and "warm". ``environ`` overrides the nanny's pre-spawn environment of the
    workers. Cluster start-up is not timed.
    """
    import dask
    from distributed import Client, LocalCluster

    out = []
    spawn = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in (environ or {}).items()}
    with (
        dask.config.set(spawn),
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        submit = functools.partial(client.submit, pure=False)
        for warm in ("cold", "warm"):
            start = time.perf_counter()
            opts = PyramidOptions(effort=3, distance=1.0, glass="empty", quality_samples=0)
            rep = write_pyramid(slide, mask, ds, dst, opts, submit=submit, workers=workers)
            out.append((warm, time.perf_counter() - start, rep))
    return out


def per_gp(seconds: float | None, gigapixels: float) -> float | None:
    """Seconds per gigapixel of level-0 area."""
    return seconds / gigapixels if seconds is not None else None


def fmt(v: float | None, spec: str) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def print_table(rows: list[Row], workers: int) -> None:
    head = (
        f"{'slide':<28} {'mode':<18} {'GP':>6} {'tissue':>11} {'glass%':>6} │ "
        f"{'rewrite s':>9} {'limit s':>8} {'ratio':>6} {'N-thr s':>8} {'ratio':>6} │ "
        f"{'s/GP':>8} {'lim s/GP':>8} │ "
        f"{'out MB':>8} {'src MB':>8} {'red.%':>6} │ {'PSNR':>6} {'SSIM':>6}"
    )
    print(
        f"\n{workers} worker(s); limit = single-thread level-0 codec time / {workers}; "
        f"N-thr = the same raw codec work measured on {workers} threads\n"
    )
    print(head)
    print("─" * len(head))
    for row in rows:
        rep = row.report
        if rep is None:
            print(f"{row.slide:<28} {row.mode:<18} {row.gigapixels:>6.3f} {row.note}")
            continue
        ratio = row.seconds / row.limit if row.seconds and row.limit else None
        ratio_t = row.seconds / row.threads if row.seconds and row.threads else None
        s_gp, lim_gp = per_gp(row.seconds, row.gigapixels), per_gp(row.limit, row.gigapixels)
        print(
            f"{row.slide:<28} {row.mode:<18} {row.gigapixels:>6.3f} "
            f"{f'{rep.n_tissue_tiles}/{rep.n_tiles}':>11} {100 * rep.glass_fraction:>6.1f} │ "
            f"{fmt(row.seconds, '.2f'):>9} {fmt(row.limit, '.2f'):>8} "
            f"{fmt(ratio, '.2f') + ('×' if ratio else ''):>6} {fmt(row.threads, '.2f'):>8} "
            f"{fmt(ratio_t, '.2f') + ('×' if ratio_t else ''):>6} │ "
            f"{fmt(s_gp, '.1f'):>8} {fmt(lim_gp, '.1f'):>8} │ "
            f"{rep.output_bytes / 1e6:>8.2f} {rep.source_bytes / 1e6:>8.2f} "
            f"{fmt(rep.reduction_pct, '.1f'):>6} │ {row.psnr:>6} {row.ssim:>6}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slides", type=Path, default=SLIDES)
    ap.add_argument("--big", default="20000x15000", help="generated JPEG slide, WxH")
    ap.add_argument("--efforts", default="1,3,5", help="JPEG-XL efforts, comma-separated")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="scratch dir (default: a temp dir)")
    args = ap.parse_args()
    efforts = [int(e) for e in args.efforts.split(",") if e]

    t0 = time.perf_counter()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        out = Path(tmp)
        paths = [args.slides / name for name in REAL if (args.slides / name).exists()]
        bw, bh = (int(v) for v in args.big.lower().split("x"))
        big = out / f"synth-{bw}x{bh}.svs"
        print(f"generating {big.name} …", flush=True)
        write_synthetic_slide(big, SynthSpec(width=bw, height=bh, seed=7, n_blobs=3, blob_size=1.9))
        paths.append(big)
        rows = []
        for path in paths:
            print(f"{path.name}", flush=True)
            rows += bench_slide(path, efforts, args.workers, out, big=path == big)
    print_table(rows, args.workers)
    print(f"\nwhole benchmark: {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()

"""Report speed: building the report of N small generated slides, and opening it in Chromium.

    python benchmarks/report.py [--n 1000] [--workers 2] [--rows 10000]

N slide files (copies of 8 generated slides, so generating them is not what is timed) go
through stage 1 and then ``wsidist report`` on a LocalCluster. Printed side by side: stage 1
per slide, the report per slide, and the floor of the report's pixel work (reading each
slide's picture with ``Slide.thumbnail``, nothing drawn or written). Then the dataset page's
load time in headless Chromium (Debian's package), for the N-slide report and for a generated
table of ``--rows`` slides (no pixels). Timings are noisy on a shared machine: run it twice.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.browser import Browser, chromium_available  # noqa: E402
from wsidist.demo.synth import SynthSpec, write_synthetic_slide  # noqa: E402
from wsidist.imaging.figures import display_scale  # noqa: E402
from wsidist.io.slide import open_slide  # noqa: E402
from wsidist.io.storage import Store  # noqa: E402
from wsidist.report.config import ReportConfig  # noqa: E402
from wsidist.report.driver import build_report, write_site  # noqa: E402
from wsidist.report.tables import dataset_rows  # noqa: E402
from wsidist.runtime.cluster import dask_client  # noqa: E402
from wsidist.stage1.config import Stage1Config  # noqa: E402
from wsidist.stage1.driver import run_stage1  # noqa: E402

READY = (
    "document.querySelector('#slides') && document.querySelector('#slides').dataset.ready === '1'"
)


def make_slides(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    bases = []
    for i in range(8):
        spec = SynthSpec(width=1600 + 100 * i, height=1200, seed=500 + i, n_blobs=2, n_debris=5,
                         vendor_style="aperio" if i % 2 else "generic")  # fmt: skip
        path = folder / f"base{i}.{'svs' if i % 2 else 'tiff'}"
        write_synthetic_slide(path, spec)
        bases.append(path)
    paths = []
    for k in range(n):
        src = bases[k % len(bases)]
        dst = folder / f"case{k // 100:02d}" / f"slide{k:05d}{src.suffix}"
        dst.parent.mkdir(exist_ok=True)
        shutil.copyfile(src, dst)
        paths.append(dst)
    for b in bases:
        b.unlink()
    return paths


def picture_floor(paths: list[Path], long_px: int) -> float:
    started = time.perf_counter()
    for p in paths:
        with open_slide(str(p)) as slide:
            slide.thumbnail(display_scale(*slide.dimensions, long_px))
    return time.perf_counter() - started


def page_load(url: str, repeats: int = 5) -> float:
    times = []
    with Browser(1600, 1000) as b:
        for _ in range(repeats):
            b.send("Page.navigate", url="about:blank")
            times.append(b.goto(url, READY))
        assert not b.errors(), b.errors()
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rows", type=int, default=10_000)
    args = ap.parse_args()
    config = ReportConfig()
    with tempfile.TemporaryDirectory(prefix="wsidist-bench-report-") as tmp:
        root = Path(tmp)
        print(f"generating {args.n} slides …", flush=True)
        paths = make_slides(root / "slides", args.n)
        out = root / "out"
        with dask_client(workers=args.workers) as client:
            t = time.perf_counter()
            run_stage1([str(root / "slides")], str(out), Stage1Config(tile_size=512), client=client)
            stage1_s = time.perf_counter() - t
            t = time.perf_counter()
            summary = build_report(str(out), config=config, client=client)
            report_s = time.perf_counter() - t
        sample = paths[: min(50, len(paths))]
        floor_s = picture_floor(sample, config.picture_px) / len(sample) * len(paths) / args.workers
        rows = dataset_rows(Store(str(out)))
        t = time.perf_counter()
        write_site(Store(str(root / "site-only")), rows, config, source_label="bench")
        driver_s = time.perf_counter() - t
        n = summary.n_slides
        print(
            f"\nreport of {n} slides on {args.workers} workers (failed pages: {summary.n_pages_failed})"
        )
        print(f"{'':32}{'total s':>10}{'ms/slide':>10}{'× floor':>10}")
        for name, secs in (("stage 1", stage1_s), ("report (pages + site)", report_s),
                           ("  driver only (charts, index)", driver_s),
                           ("floor: read each picture", floor_s)):  # fmt: skip
            print(f"{name:32}{secs:10.1f}{1000 * secs / n:10.1f}{secs / floor_s:10.2f}")
        if not chromium_available():
            print("chromium not installed: page load not measured")
            return
        print("\npage load in headless Chromium (median of 5, until the table is drawn)")
        print(
            f"  {n:>6} slides (this report):   {page_load((out / 'report' / 'index.html').as_uri()):.3f} s"
        )
        from tests.report.test_scale import generated_output

        big = generated_output(root / "big-out", args.rows)
        t = time.perf_counter()
        write_site(Store(str(root / "big-site")), dataset_rows(big), config, source_label="big")
        big_build = time.perf_counter() - t
        print(f"  {args.rows:>6} slides (generated table): {page_load((root / 'big-site' / 'index.html').as_uri()):.3f} s"
              f"  (site built in {big_build:.1f} s)")  # fmt: skip


if __name__ == "__main__":
    main()

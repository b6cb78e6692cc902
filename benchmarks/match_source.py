"""--match-source side by side: size and quality of the rewrite with and without it.

    python benchmarks/match_source.py [--slides DIR] [--workers 2] [--out TMPDIR]

Per slide (the real SVS/NDPI slides, a generated JPEG q85 slide and a q40 one): the rewrite
at JPEG-XL distance 1 (``--no-match-source``), the rewrite with ``--match-source``, and a JPEG
q90 rewrite, each through ``rewrite_slide`` in this process (blocks on a thread pool). Columns:
source and output MB, saved %, the distance used, the source's measured PSNR and the output's
PSNR/SSIM against the source pixels (64 tissue tiles), seconds.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from wsidist.demo.synth import SynthSpec, write_synthetic_slide
from wsidist.io.inputs import slide_id_for
from wsidist.io.storage import Store
from wsidist.runtime.tasks import SlideTask
from wsidist.stage2.config import RewriteConfig
from wsidist.stage2.worker import rewrite_slide

MODES = {
    "jxl d=1": RewriteConfig(match_source=False),
    "jxl match": RewriteConfig(match_source=True),
    "jpeg q90": RewriteConfig(codec="jpeg"),
}


def _fmt(v, f: str) -> str:
    return "-" if v is None else format(v, f)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--slides", default=str(Path(__file__).resolve().parents[2] / "shared/data/slides")
    )
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    tmp = Path(args.out or tempfile.mkdtemp(prefix="wsidist-match-"))
    slides = {}
    folder = Path(args.slides)
    for name in (
        "CMU-1-Small-Region.svs",
        "tcga-cr-7395-01a-01-ts1.svs",
        "test3-DAPI-2-(387).ndpi",
    ):
        if (folder / name).exists():
            slides[name] = folder / name
    for q in (85, 40):
        path = tmp / f"synth_q{q}.svs"
        write_synthetic_slide(
            path, SynthSpec(width=6000, height=4000, seed=3, n_blobs=3, jpeg_quality=q)
        )
        slides[path.name] = path
    head = f"{'slide':30} {'mode':10} {'src MB':>7} {'out MB':>7} {'saved%':>7} {'d':>5} {'srcPSNR':>7} {'PSNR':>5} {'SSIM':>6} {'s':>5}"
    print(head)
    for name, path in slides.items():
        for mode, config in MODES.items():
            store = Store(str(tmp / mode.replace(" ", "_").replace("=", "")))
            t0 = time.perf_counter()
            row = rewrite_slide(
                SlideTask(str(path), slide_id_for(str(path))), config, store, store, overwrite=True
            )
            dt = time.perf_counter() - t0
            if row["status"] != "ok":
                print(f"{name:30} {mode:10} failed: {row['error']}")
                continue
            print(
                f"{name[:30]:30} {mode:10} {row['source_bytes'] / 1e6:7.2f} {row['output_bytes'] / 1e6:7.2f} "
                f"{row['reduction_pct']:7.1f} {_fmt(row.get('distance'), '5.2f')} "
                f"{_fmt(row.get('source_psnr_db'), '7.1f')} {_fmt(row['psnr_db'], '5.1f')} "
                f"{_fmt(row['ssim'], '6.3f')} {dt:5.1f}"
            )
    print(f"(outputs in {tmp}; {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()

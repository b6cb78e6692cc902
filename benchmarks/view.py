"""Viewer tile latency: DZI tiles of a JPEG-XL pyramid beside the source SVS, over HTTP.

    python benchmarks/view.py [--slide PATH] [--tiles 300]

The source slide (default: the shared CMU-1-Small-Region.svs) is rewritten to a JPEG-XL
pyramid; ``wsidist view`` then serves both, and the same random DZI tiles (the three finest
levels) are fetched from each over real HTTP with the tile cache off (every request decodes)
and on (second pass). Side by side: p50/p95 ms per tile for the source through OpenSlide
(wsidist's Slide), for the JPEG-XL pyramid (tifffile + imagecodecs), and, as the anchor,
OpenSlide's own DeepZoomGenerator on the source in-process (no HTTP). Noisy on a shared
machine: run it twice.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.paths import CMU  # noqa: E402
from wsidist.stage2.config import RewriteConfig  # noqa: E402
from wsidist.stage2.driver import run_rewrite  # noqa: E402
from wsidist.view.app import make_viewer, running  # noqa: E402
from wsidist.view.dzi import DeepZoom  # noqa: E402


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def fetch_all(base: str, key: str, tiles: list[tuple[int, int, int]]) -> list[float]:
    times = []
    for level, col, row in tiles:
        t = time.perf_counter()
        with urllib.request.urlopen(
            f"{base}/dzi/{key}_files/{level}/{col}_{row}.jpeg", timeout=60
        ) as r:
            r.read()
        times.append(1000 * (time.perf_counter() - t))
    return times


def openslide_anchor(path: str, tiles: list[tuple[int, int, int]]) -> list[float]:
    import io

    import openslide
    from openslide.deepzoom import DeepZoomGenerator

    with openslide.OpenSlide(path) as slide:
        dz = DeepZoomGenerator(slide, tile_size=254, overlap=1, limit_bounds=False)
        times = []
        for level, col, row in tiles:
            t = time.perf_counter()
            image = dz.get_tile(level, (col, row))
            image.convert("RGB").save(io.BytesIO(), "JPEG", quality=85)
            times.append(1000 * (time.perf_counter() - t))
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slide", default=str(CMU))
    ap.add_argument("--tiles", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="wsidist-bench-view-") as tmp:
        slides = Path(tmp) / "slides"
        slides.mkdir()
        source = slides / Path(args.slide).name
        shutil.copyfile(args.slide, source)  # a copy: links out of a root are not served
        out = Path(tmp) / "out"
        table = run_rewrite([str(source)], str(out), RewriteConfig(), workers=2)
        row = table.to_pylist()[0]
        assert row["status"] == "ok", row["error"]
        print(f"{source.name}: {row['width']}×{row['height']}, pyramid {row['output_bytes'] / 1e6:.2f} MB "
              f"(source {row['source_bytes'] / 1e6:.2f} MB)")  # fmt: skip
        results = {}
        for cache_mb, label in ((0, "cold (no cache)"), (256, "cached (2nd pass)")):
            viewer, app = make_viewer([str(slides), str(out / "pyramids")], cache_mb=cache_mb)
            src_key = next(
                e.key for e in viewer.catalog.entries.values() if e.url.endswith(source.name)
            )
            pyr_key = next(k for k in viewer.catalog.entries if k != src_key)
            dz = DeepZoom(row["width"], row["height"])
            rng = random.Random(0)
            tiles = []
            for _ in range(args.tiles):
                level = dz.max_level - rng.choice((0, 0, 1, 2))
                cols, rows = dz.tile_count(level)
                tiles.append((level, rng.randrange(cols), rng.randrange(rows)))
            with running(app) as base:
                for key in (src_key, pyr_key):  # open each slide once before timing
                    fetch_all(base, key, tiles[:1])
                for name, key in (
                    ("source SVS via OpenSlide", src_key),
                    ("JPEG-XL pyramid", pyr_key),
                ):
                    if cache_mb:
                        fetch_all(base, key, tiles)
                    results[(label, name)] = fetch_all(base, key, tiles)
            viewer.slides.close()
        results[("in-process, no HTTP", "OpenSlide DeepZoomGenerator")] = openslide_anchor(
            str(source), tiles
        )
        base_p50 = statistics.median(results[("cold (no cache)", "source SVS via OpenSlide")])
        print(f"\n{len(tiles)} tiles (254 px + 1 overlap, JPEG q85), three finest DZI levels")
        print(f"{'':22}{'':30}{'p50 ms':>9}{'p95 ms':>9}{'p50 × SVS cold':>16}")
        for (label, name), times in results.items():
            p50 = statistics.median(times)
            print(f"{label:22}{name:30}{p50:9.2f}{pct(times, 95):9.2f}{p50 / base_p50:16.2f}")


if __name__ == "__main__":
    main()

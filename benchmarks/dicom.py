"""DICOM reading speed: wsidist's frame reader vs OpenSlide vs decoding the frames only.

    python benchmarks/dicom.py [--slides DIR] [--n 200] [--patch 512] [--size 8000x6000]

Series: the shared ``dicom/cmu-1-small-region`` and a generated one (``--size``, JPEG frames of
256 px, conformant tags so OpenSlide's colours are right too). Per series, one process, the
same fixed random level-0 patch positions for every method:

* wsidist   — ``open_slide(...).read_region`` (the DICOM reader: pydicom headers, pread,
  imagecodecs; a fresh slide, its tile cache cold);
* openslide — ``OpenSlide.read_region`` composited onto white;
* decode    — imagecodecs decode of exactly the distinct frames those patches touch, each
  once, bytes already in memory, no assembly (the floor for a reader that caches frames).

Also the time to open each (headers and frame index) and a whole-slide thumbnail at 1/32.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import imagecodecs
import numpy as np
import openslide

from wsidist.demo.dicom import pyramid, write_dicom_series
from wsidist.demo.synth import SynthSpec, write_synthetic_slide
from wsidist.io.backends.dicom_frames import read_instance
from wsidist.io.slide import open_slide

SLIDES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "slides"


def positions(width: int, height: int, patch: int, n: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(0)
    xs = rng.integers(0, max(1, width - patch + 1), n)
    ys = rng.integers(0, max(1, height - patch + 1), n)
    return [(int(x), int(y)) for x, y in zip(xs, ys, strict=True)]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(name: str, level0: Path, pos, patch: int) -> None:
    def ours() -> None:
        with open_slide(str(level0)) as s:
            for x, y in pos:
                s.read_region(x, y, 0, (patch, patch))

    def theirs() -> None:
        with openslide.OpenSlide(str(level0)) as o:
            for x, y in pos:
                np.asarray(o.read_region((x, y), 0, (patch, patch)))

    inst = read_instance(str(level0))
    across = math.ceil(inst.width / inst.frame_w)
    frames = sorted(
        {
            (y // inst.frame_h + dy) * across + x // inst.frame_w + dx
            for x, y in pos
            for dy in range(math.ceil(patch / inst.frame_h) + 1)
            for dx in range(math.ceil(patch / inst.frame_w) + 1)
            if (x // inst.frame_w + dx) < across
            and (y // inst.frame_h + dy) * inst.frame_h < inst.height
        }
    )
    data = [inst.frame_bytes(i) for i in frames]
    inst.close()
    t_open = timed(lambda: open_slide(str(level0)).close())
    t_os_open = timed(lambda: openslide.OpenSlide(str(level0)).close())
    t_ours, t_theirs = timed(ours), timed(theirs)
    t_decode = timed(lambda: [imagecodecs.jpeg8_decode(d) for d in data])

    def thumb() -> None:
        with open_slide(str(level0)) as s:
            s.thumbnail(32)

    t_thumb = timed(thumb)
    print(
        f"{name:28s} open {t_open * 1e3:6.0f} ms (openslide {t_os_open * 1e3:5.0f})  "
        f"{len(pos)} patches: wsidist {t_ours:5.2f} s  openslide {t_theirs:5.2f} s  "
        f"decode-only {t_decode:5.2f} s ({len(frames)} frames)  "
        f"ratio openslide/wsidist {t_theirs / t_ours:4.2f}  wsidist/decode {t_ours / t_decode:4.2f}"
        f"  thumbnail 1/32 {t_thumb:5.2f} s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slides", type=Path, default=SLIDES)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--patch", type=int, default=512)
    ap.add_argument("--size", default="8000x6000")
    args = ap.parse_args()
    shared = args.slides / "dicom" / "cmu-1-small-region"
    if shared.is_dir():
        level0 = sorted(shared.glob("level-0-*.dcm"))[0]
        run("cmu-1-small-region (shared)", level0, positions(2220, 2967, args.patch, args.n),
            args.patch)  # fmt: skip
    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src.svs"
        write_synthetic_slide(src, SynthSpec(width=w, height=h, seed=3))
        with open_slide(str(src)) as s:
            rgb = s.read_region(0, 0, 0, s.dimensions)
        paths = write_dicom_series(Path(tmp) / "dcm", pyramid(rgb, 4), frame=256)
        del rgb
        run(f"generated {w}x{h}", paths[0], positions(w, h, args.patch, args.n), args.patch)


if __name__ == "__main__":
    main()

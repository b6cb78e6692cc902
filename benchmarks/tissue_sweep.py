"""Tissue detection on generated slides the detector was not tuned on: variants x seeds.

    python benchmarks/tissue_sweep.py [--cache DIR] [--seeds 0 1] [--only NAME ...]
    python benchmarks/tissue_sweep.py --random 110 [--first 0]

Each variant changes the ``typical`` class of :mod:`wsidist.demo.classes` (dark or faint
stain, tinted glass, low JPEG quality, huge tissue, dense blue IHC, fat, pens of every
colour and width, no mpp, scanner borders) and is drawn at several seeds; the ``pens``
class is drawn at other seeds than the one it was tuned on. Per slide: ``auto``'s Dice,
precision and recall against the exact truth at 1/32, and the share of each pen colour kept
as tissue. Summary: the worst value per metric and how many slides meet the targets (Dice
>= 0.98, pens <= 1 % per colour; the slides are written once and kept in ``--cache``).
``--random N`` draws N slides of random combinations of every class's parameters instead
(:func:`random_spec`): a search for what no variant thought of. Slides without tissue are
listed apart, with what was called tissue on them.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tissue import SCALE, cached_slide, scores  # noqa: E402

from wsidist.demo.classes import failure_specs  # noqa: E402
from wsidist.demo.synth import SynthSpec, synth_truth  # noqa: E402
from wsidist.io.slide import open_slide  # noqa: E402
from wsidist.stage1.analysis import analyse_slide  # noqa: E402
from wsidist.stage1.config import Stage1Config  # noqa: E402

ALL_PENS = ("red", "green", "blue", "black", "navy")
DICE_TARGET, PEN_TARGET = 0.98, 0.01


def variants(seed: int) -> dict[str, SynthSpec]:
    """The generated variants of one seed (seed 0: the slides the sweep first ran on)."""
    s = 100 * seed
    base = failure_specs(6000, 4500, seed=11)["typical"]
    v = {
        "dark_he_pens": replace(base, faint=2.0, pens=ALL_PENS, seed=21 + s),
        "dark_he_inkpens": replace(base, faint=1.8, pens=ALL_PENS, pen_style="ink", seed=22 + s),
        "tinted_glass": replace(base, glass=(226, 232, 212), seed=23 + s),
        "bluish_glass": replace(base, glass=(228, 236, 246), faint=0.6, seed=24 + s),
        "low_q_jpeg": replace(base, jpeg_quality=35, pens=ALL_PENS, seed=25 + s),
        "huge_blob": replace(base, n_blobs=2, blob_size=3.0, pens=("black",), seed=26 + s),
        "ihc_strong": replace(base, stain="ihc", faint=1.8, pens=("navy", "black"), seed=27 + s),
        "ihc_faint_frag": replace(
            base, stain="ihc", faint=0.4, n_blobs=0, n_fragments=25, pens=(), seed=28 + s
        ),
        "fatty_pens": replace(
            base, fat=0.6, faint=0.7, pens=ALL_PENS, pen_style="ink", seed=29 + s
        ),
        "fat_broad_pens": replace(
            base,
            fat=0.6,
            faint=0.7,
            pens=ALL_PENS,
            pen_style="ink",
            pen_width_um=160.0,
            seed=33 + s,
        ),
        "nompp_frag": replace(base, mpp=None, n_blobs=1, n_fragments=20, seed=30 + s),
        "fluo_faint": replace(base, stain="fluorescence", faint=0.4, pens=(), seed=31 + s),
        "borders_pens": replace(
            base, dark_borders=("left", "top", "right"), pens=ALL_PENS, seed=32 + s
        ),
    }
    big = failure_specs(8000, 6000, seed=seed)["typical"]
    broad = dict(n_blobs=3, pen_style="ink", pen_width_um=160.0)
    v["dense_ihc"] = replace(
        big, stain="ihc", faint=1.8, pens=("navy", "blue", "black"), seed=s + 50, **broad
    )
    v["dense_he"] = replace(big, faint=2.0, pens=("red", "navy", "black"), seed=s + 51, **broad)
    v["pens"] = failure_specs(8000, 6000, seed=seed + 1)["pens"]  # seed 0 is the tuned one
    return {f"{name}_s{seed}": spec for name, spec in v.items()}


def random_spec(i: int) -> SynthSpec:
    """Slide ``i`` of the random draw: every failure class's parameters, combined at random
    (stain, pallor, fat, fragments, pens of any colour, style and width, tinted glass, JPEG
    quality, borders, bubbles, blur, vendor layout, mpp); the same ``i`` draws the same slide."""
    r = random.Random(i)
    stain = r.choice(["he"] * 5 + ["ihc"] * 3 + ["fluorescence"])
    dark = stain == "fluorescence"
    glass = [(242, 240, 236), (230, 232, 236), (226, 232, 212), (250, 250, 250), (236, 228, 232)]
    return SynthSpec(
        width=r.choice([4000, 5000, 6000]), height=r.choice([3000, 4000]), seed=1000 + i,
        mpp=r.choice([0.25, 0.5, 0.5, None]),
        n_blobs=r.choice([0, 1, 2, 3, 4, 6]), blob_size=r.choice([0.5, 1.0, 1.5, 2.5]),
        pens=() if dark else tuple(r.sample(ALL_PENS, r.choice([0, 0, 1, 2, 3, 5]))),
        pen_style=r.choice(["opaque", "ink"]), pen_width_um=r.choice([None, 60.0, 160.0, 300.0]),
        n_debris=0 if dark else r.choice([0, 40, 200]),
        glass=r.choice([(4, 4, 7), (12, 10, 14), (20, 20, 24)] if dark else glass),
        jpeg_quality=r.choice([50, 70, 85, 95]), vendor_style=r.choice(["aperio", "generic"]),
        stain=stain, faint=r.choice([0.3, 0.5, 0.8, 1.0, 1.5, 2.0]),
        fat=r.choice([0, 0, 0.3, 0.7]), n_fragments=r.choice([0, 0, 10, 30]),
        n_bubbles=r.choice([0, 0, 2]),
        dark_borders=tuple(r.sample(["left", "right", "top", "bottom"], r.choice([0, 0, 1, 2]))),
        n_blur=r.choice([0, 0, 1]), texture=r.choice(["noise", "atlas"]),
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "wsidist-sweep")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--only", nargs="*", default=None, help="variant names (without _sN)")
    ap.add_argument(
        "--random",
        type=int,
        default=0,
        metavar="N",
        help="N slides of random failure-class combinations instead of the variants",
    )
    ap.add_argument("--first", type=int, default=0, help="the first random slide's number")
    args = ap.parse_args()  # fmt: skip
    args.cache.mkdir(parents=True, exist_ok=True)
    specs = {}
    for seed in args.seeds if not args.random else ():
        specs |= {
            k: v for k, v in variants(seed).items()
            if args.only is None or k.rsplit("_s", 1)[0] in args.only
        }  # fmt: skip
    for i in range(args.first, args.first + args.random):
        specs[f"random_{i}"] = random_spec(i)
    print(f"{'slide':20} {'dice':>6} {'prec':>6} {'rec':>6}  pen kept as tissue per colour (%)")
    rows = {}
    t0 = time.perf_counter()
    for name, spec in specs.items():
        path = cached_slide(args.cache, name, spec)
        truth = synth_truth(spec)
        with open_slide(str(path)) as slide:
            mask = analyse_slide(slide, Stage1Config(tissue="auto")).tissue
        dice, prec, rec, _ = scores(mask, truth)
        pens = {}
        for colour in spec.pens:
            ink = truth.pen_mask(SCALE, (colour,))
            pens[colour] = float((mask & ink).sum() / max(ink.sum(), 1))
        if not truth.tissue_mask(SCALE).any():
            # nothing to find: Dice is undefined; report what was called tissue
            print(f"{name:20} no tissue; {int(mask.sum())} px called tissue", flush=True)
            continue
        rows[name] = (dice, prec, rec, pens)
        pen_text = " ".join(f"{c}={100 * p:.2f}" for c, p in pens.items())
        print(f"{name:20} {dice:6.3f} {prec:6.3f} {rec:6.3f}  {pen_text}", flush=True)
    print(f"\nsummary over {len(rows)} slides ({time.perf_counter() - t0:.0f} s)")
    for i, metric in enumerate(("dice", "precision", "recall")):
        worst = min(rows, key=lambda k: rows[k][i])
        print(f"  worst {metric:9} {rows[worst][i]:.3f} ({worst})")
    pen_rows = [(k, c, p) for k, r in rows.items() for c, p in r[3].items()]
    if pen_rows:
        k, c, p = max(pen_rows, key=lambda t: t[2])
        print(f"  worst pen       {100 * p:.2f} % ({k}, {c})")
    ok_dice = sum(r[0] >= DICE_TARGET for r in rows.values())
    ok_pen = sum(all(p <= PEN_TARGET for p in r[3].values()) for r in rows.values())
    ok_all = sum(
        r[0] >= DICE_TARGET and all(p <= PEN_TARGET for p in r[3].values()) for r in rows.values()
    )
    n_pen = sum(bool(r[3]) for r in rows.values())
    print(
        f"  Dice >= {DICE_TARGET}: {ok_dice}/{len(rows)}; pens <= 1 % per colour: "
        f"{ok_pen - (len(rows) - n_pen)}/{n_pen} slides with pens; both: {ok_all}/{len(rows)}"
    )
    print(f"  mean Dice {np.mean([r[0] for r in rows.values()]):.3f}")


if __name__ == "__main__":
    main()

"""Failure classes of tissue detection as synthetic slides with known answers.

Each entry is a :class:`~wsidist.demo.synth.SynthSpec` that reproduces one way tissue
detectors fail on real slides: many small fragments (blended rims), faint bluish IHC on tinted
glass, pale fatty tissue (three cell sizes and pallors), translucent pen ink of five colours (red, green, blue, navy, black)
across tissue, dark scanner borders and label shadows, air bubbles and dust, a dark-background
fluorescence slide, out-of-focus regions, and an empty slide. Tests and
``benchmarks/tissue.py`` run every detector on all of them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from wsidist.demo.synth import SynthSpec, SynthTruth, write_synthetic_slide

__all__ = ["failure_specs", "write_failure_slides"]

ALL_PENS = ("red", "green", "blue", "navy", "black")


def failure_specs(width: int = 6000, height: int = 4500, seed: int = 0) -> dict[str, SynthSpec]:
    """Name -> spec of every failure class, ``width`` x ``height`` level-0 px at 0.5 µm/px."""
    base = SynthSpec(width=width, height=height, seed=seed, n_levels=3)
    classes = {
        "typical": replace(base, n_blobs=3),
        "fragments": replace(base, n_blobs=0, n_fragments=36, pens=(), n_debris=60),
        "faint_ihc": replace(
            base, stain="ihc", faint=0.35, glass=(236, 239, 246), n_blobs=0, n_fragments=5,
            fragment_um=(300.0, 900.0), pens=(), n_debris=30,
        ),
        "fatty": replace(base, n_blobs=3, fat=0.55, faint=0.8, pens=()),
        "pens": replace(
            base, n_blobs=3, blob_size=1.3, pens=ALL_PENS, pen_style="ink",
            pen_width_um=160.0, strokes_per_pen=1,
        ),
        "borders": replace(base, n_blobs=3, dark_borders=("left", "bottom"), pens=()),
        "bubbles": replace(base, n_blobs=2, n_bubbles=8, n_debris=200, pens=()),
        "fluorescence": replace(
            base, stain="fluorescence", glass=(4, 4, 7), n_blobs=3, pens=(), n_debris=0,
        ),
        "blurry": replace(base, n_blobs=3, n_blur=3, pens=()),
        "empty": replace(base, n_blobs=0, pens=(), n_debris=30),
        # pale fatty tissue, wider (last, so the seeds above stay): small pale adipocytes,
        # and large ones over most of the tissue
        "fatty_small": replace(base, n_blobs=3, fat=0.55, fat_um=50.0, faint=0.6, pens=()),
        "fatty_large": replace(base, n_blobs=2, fat=0.8, fat_um=120.0, faint=1.0, pens=()),
    }  # fmt: skip
    return {
        name: replace(spec, seed=seed * 100 + i) for i, (name, spec) in enumerate(classes.items())
    }


def write_failure_slides(
    folder: str | Path, names: tuple[str, ...] | None = None, **kwargs
) -> dict[str, tuple[Path, SynthTruth]]:
    """Write the failure-class slides (``names``, default all) as ``<name>.svs`` in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    specs = failure_specs(**kwargs)
    out = {}
    for name in names or tuple(specs):
        path = folder / f"{name}.svs"
        out[name] = (path, write_synthetic_slide(path, specs[name]))
    return out

"""Fixtures of the inference tests: generated stained slides with a known dark region, models."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest

from tests.infer.models import build_darkness_onnx
from wsidist.demo.stained import StainedSpec, StainedTruth, write_stained_slide

# Two slides: the dark region off-centre on a 0.5-mpp slide, and a second shape and place on a
# 0.25-mpp slide (a different seed, so a different texture).
DARK_SPECS = {
    "dark_a.tiff": StainedSpec(width=4096, height=3072, seed=11),
    "dark_b.tiff": StainedSpec(
        width=3584, height=3584, seed=12, mpp=0.25, tissue=(0.5, 0.5, 0.42, 0.36),
        dark=(0.62, 0.55, 0.2, 0.12),
    ),
}  # fmt: skip


class DarkSlide(NamedTuple):
    path: Path
    truth: StainedTruth


@pytest.fixture(scope="session")
def dark_slides(tmp_path_factory) -> list[DarkSlide]:
    folder = tmp_path_factory.mktemp("dark_slides")
    return [
        DarkSlide(folder / name, write_stained_slide(folder / name, spec))
        for name, spec in DARK_SPECS.items()
    ]


@pytest.fixture(scope="session")
def darkness_onnx(tmp_path_factory) -> Path:
    return build_darkness_onnx(tmp_path_factory.mktemp("models") / "darkness.onnx")

"""Synthetic slides with known answers: the demo's input and the tests' ground truth."""

from .synth import (
    SynthSpec,
    SynthTruth,
    demo_specs,
    generate_demo_slides,
    synth_truth,
    write_synthetic_slide,
)

__all__ = [
    "SynthSpec",
    "SynthTruth",
    "demo_specs",
    "generate_demo_slides",
    "synth_truth",
    "write_synthetic_slide",
]

"""Synthetic slides with known answers: the demo's input and the tests' ground truth."""

from . import synth
from .synth import *  # noqa: F403 — the generator's public names

__all__ = synth.__all__

"""Datasets for training: patches straight from the slides, tar shards, stain normalisation.

``TileDataset`` (map-style) and ``SlideTileDataset`` (iterable, slide by slide) read a
selection's boxes from the slides; ``TarShardDataset`` reads extraction's tar shards. With
torch installed they are torch datasets (``pip install wsidist[torch]``).
"""

from .datasets import SlideCache, SlideTileDataset, TileDataset, load_selection
from .shards import TarShardDataset
from .stain import fit_normalizer, reference_pixels

__all__ = [
    "SlideCache",
    "SlideTileDataset",
    "TarShardDataset",
    "TileDataset",
    "fit_normalizer",
    "load_selection",
    "reference_pixels",
]

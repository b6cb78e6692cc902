"""The labels of a synthetic slide's label map (one byte per CELL x CELL level-0 pixels)."""

from __future__ import annotations

__all__ = [
    "BORDER", "BUBBLE", "CELL", "DEBRIS", "FAT", "GLASS", "PEN_BLACK", "PEN_BLUE", "PEN_GREEN",
    "PEN_LABELS", "PEN_NAVY", "PEN_RED", "TISSUE", "TISSUE_LABELS",
]  # fmt: skip

CELL = 4  # label-map cell size in level-0 px
GLASS, TISSUE, PEN_RED, PEN_GREEN, PEN_BLUE, DEBRIS, PEN_BLACK, BORDER, BUBBLE, FAT = range(10)
PEN_NAVY = 10  # dark-blue pen
PEN_LABELS = {
    "red": PEN_RED, "green": PEN_GREEN, "blue": PEN_BLUE, "black": PEN_BLACK, "navy": PEN_NAVY,
}  # fmt: skip
TISSUE_LABELS = (TISSUE, FAT)  # fatty tissue is tissue

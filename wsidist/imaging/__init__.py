"""Image math shared by every stage: area reduction, summed-area tables, gray, encoders.

Arrays in, arrays (or bytes) out; no slide, no storage, no configuration.
"""

from .color import rgb_to_gray
from .encode import TileCodec, encode_image, to_uint8_image
from .resample import any_reduce, area_reduce, area_resample, box_sums, summed_area_table

__all__ = [
    "TileCodec",
    "any_reduce",
    "area_reduce",
    "area_resample",
    "box_sums",
    "encode_image",
    "rgb_to_gray",
    "summed_area_table",
    "to_uint8_image",
]

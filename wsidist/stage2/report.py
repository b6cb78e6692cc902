"""What writing one pyramid produced (sizes, glass, levels, quality), and the table of them.

:data:`PYRAMIDS_SCHEMA` is the schema of ``pyramids.parquet``, one row per slide.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa

PYRAMIDS_SCHEMA = pa.schema(
    [
        ("url", pa.string()),
        ("slide_id", pa.string()),
        ("status", pa.string()),  # ok | failed
        ("error", pa.string()),
        ("warning", pa.string()),  # what the reader or rewrite noticed (no mpp, larger output, …)
        ("key", pa.string()),  # pyramids/<id>.tiff under the output root
        ("codec", pa.string()),
        ("glass", pa.string()),
        ("transcode", pa.bool_()),
        ("lossless", pa.bool_()),
        ("distance", pa.float64()),  # the JPEG-XL distance used (lossy JPEG-XL only)
        ("source_quality", pa.string()),  # what match_source measured, e.g. "JPEG q30"
        ("source_psnr_db", pa.float64()),  # the source codec's own PSNR on the sample
        ("mask_source", pa.string()),  # stage1 | computed
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("level_count", pa.int32()),
        ("levels_from", pa.string()),  # level0 (area averages) | source (copied exactly)
        ("source_bytes", pa.int64()),
        ("output_bytes", pa.int64()),
        ("reduction_pct", pa.float64()),
        ("n_tiles", pa.int64()),
        ("n_tissue_tiles", pa.int64()),
        ("glass_fraction", pa.float64()),
        ("psnr_db", pa.float64()),
        ("psnr_min_db", pa.float64()),
        ("ssim", pa.float64()),
        ("ssim_min", pa.float64()),
        ("quality_tiles", pa.int32()),
        ("megapixels", pa.float64()),  # level-0 megapixels of the slide
        ("seconds", pa.float64()),
        ("workers", pa.int32()),  # worker threads the slide's blocks could use
        ("mp_per_s_per_worker", pa.float64()),  # megapixels / seconds / workers
        ("bytes_read", pa.int64()),  # bytes moved from the slide's source, blocks included
        ("read_requests", pa.int64()),  # requests sent to the slide's source
        ("skipped", pa.bool_()),
        ("config_hash", pa.string()),
        ("source_version", pa.string()),  # size and mtime (or ETag) of the slide file read
        ("mask_config_hash", pa.string()),  # config hash of the stage-1 run that made the mask
        ("worker", pa.string()),
        ("started_at", pa.string()),  # ISO 8601 UTC, ms
        ("finished_at", pa.string()),
    ]
)


@dataclass(frozen=True)
class PyramidReport:
    """The outcome of :func:`~wsidist.stage2.pyramid.write_pyramid` or a transcode."""

    path: str
    codec: str
    glass: str
    source_bytes: int
    output_bytes: int
    reduction_pct: float  # 100 * (1 - output / source)
    n_tiles: int  # level-0 tiles
    n_tissue_tiles: int
    glass_fraction: float  # fraction of level-0 tiles classified as glass
    level_dimensions: tuple[tuple[int, int], ...]
    psnr_db: float | None  # over sampled tissue tiles (pooled MSE); None when not measured
    psnr_min_db: float | None  # worst sampled tile
    ssim: float | None  # mean SSIM over the same sampled tiles (skimage, RGB)
    ssim_min: float | None
    quality_tiles: int  # tiles sampled for PSNR/SSIM
    seconds: float
    lossless: bool = False  # True when no pixel was changed (lossless JPEG-XL, transcode)
    levels_from: str = "level0"  # "level0": reduced levels area-averaged; "source": copied
    worker_seconds: float = 0.0  # summed time of the block tasks (read + encode)
    bytes_read: int = 0  # what the block tasks moved from the slide's source
    read_requests: int = 0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["level_dimensions"] = [list(wh) for wh in self.level_dimensions]
        return d

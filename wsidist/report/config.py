"""What a report shows: how many top tiles, how large its pictures and thumbnails are."""

from __future__ import annotations

from pydantic import Field

from wsidist.runtime.jobconfig import StageConfig


class ReportConfig(StageConfig):
    """Report settings; bad values raise ConfigError through :meth:`build`."""

    top_n: int = Field(12, ge=0, le=200, description="top tiles per slide page")
    min_tissue_frac: float = Field(
        0.5, ge=0, le=1, description="top tiles without stage 1's tissue_tile: tissue ≥ this"
    )
    top_px: int = Field(384, ge=32, le=2048, description="long side of a stored top tile, px")
    picture_px: int = Field(1280, ge=1024, le=4096, description="long side of slide pictures")
    thumb_px: int = Field(160, ge=32, le=512, description="long side of table thumbnails")
    page_size: int = Field(50, ge=5, le=1000, description="rows per page of the slide table")
    jpeg_quality: int = Field(88, ge=30, le=100, description="quality of report JPEGs")

    @classmethod
    def build(cls, **values: object) -> ReportConfig:
        """A config from keyword values (``None`` means the default)."""
        from pydantic import ValidationError

        from wsidist.errors import ConfigError

        given = {k: v for k, v in values.items() if v is not None}
        try:
            return cls(**given)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise ConfigError(
                f"bad report setting {field}={given.get(field)!r}: {err['msg']}"
            ) from None

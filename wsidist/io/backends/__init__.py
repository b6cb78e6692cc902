"""Slide backends behind one contract, chosen through an immutable registry.

A backend object (see :class:`Backend`) exposes the slide's geometry and metadata and reads
pixels as ``uint8 (h, w, 3)`` RGB with everything outside the slide filled white. The
:data:`BACKENDS` registry maps a name to a :class:`BackendSpec`: whether the backend is usable
in this environment, whether it can open a given local file, and how to open it. ``"auto"``
tries the backends in registry order: the DICOM reader first for DICOM files (it decodes frames
in the colour space their JPEG stream declares, and reads series OpenSlide refuses), then
OpenSlide (every vendor format it knows; also the DICOM fallback), then tifffile.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np


class Backend(Protocol):
    """What :class:`wsidist.io.slide.Slide` needs from a backend (all coordinates are ints)."""

    name: str
    vendor: str
    level_dimensions: tuple[tuple[int, int], ...]
    level_downsamples: tuple[float, ...]
    mpp_x: float | None
    mpp_y: float | None
    objective_power: float | None
    associated_images: tuple[str, ...]
    properties: Mapping[str, str]
    tile_size: tuple[int, int] | None
    compression: str | None
    # optional: ``warnings: tuple[str, ...]``, what a reader noticed about the file (a row flag)

    def read_region(self, x: int, y: int, level: int, size: tuple[int, int]) -> np.ndarray:
        """(x, y) in level-0 px, size (w, h) in level px."""

    def read_level(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """(x, y, w, h) all in the pixels of ``level``."""

    def associated_image(self, name: str) -> np.ndarray: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class BackendSpec:
    """One registry entry. ``can_open`` must be cheap and must not raise."""

    name: str
    available: Callable[[], bool]
    can_open: Callable[[str], bool]
    open: Callable[[str], Any]


def _dicom_available() -> bool:
    try:
        import pydicom  # noqa: F401
    except ImportError:
        return False
    return True


def _dicom_can_open(path: str) -> bool:
    from wsidist.io.backends.dicom_backend import can_open

    return can_open(path)


def _dicom_open(path: str) -> Any:
    from wsidist.io.backends.dicom_backend import DicomBackend

    return DicomBackend(path)


def _openslide_available() -> bool:
    try:
        import openslide  # noqa: F401
    except Exception:  # noqa: BLE001 — a missing shared library raises OSError, not ImportError
        return False
    return True


def _tifffile_available() -> bool:
    try:
        import imagecodecs  # noqa: F401
        import tifffile  # noqa: F401
    except ImportError:
        return False
    return True


def _openslide_can_open(path: str) -> bool:
    from wsidist.io.backends.openslide_backend import can_open

    return can_open(path)


def _openslide_open(path: str) -> Any:
    # OpenSlide, with the direct tile-decode fast path where it is pixel-identical
    from wsidist.io.backends.direct import DirectOpenSlideBackend

    return DirectOpenSlideBackend(path)


def _tifffile_can_open(path: str) -> bool:
    from wsidist.io.backends.tifffile_backend import can_open

    return can_open(path)


def _tifffile_open(path: str) -> Any:
    from wsidist.io.backends.tifffile_backend import TiffBackend

    return TiffBackend(path)


BACKENDS: Mapping[str, BackendSpec] = MappingProxyType(
    {
        "dicom": BackendSpec("dicom", _dicom_available, _dicom_can_open, _dicom_open),
        "openslide": BackendSpec(
            "openslide", _openslide_available, _openslide_can_open, _openslide_open
        ),
        "tifffile": BackendSpec(
            "tifffile", _tifffile_available, _tifffile_can_open, _tifffile_open
        ),
    }
)


def available_backends() -> tuple[str, ...]:
    """Names of the registered backends whose libraries import in this environment."""
    return tuple(name for name, spec in BACKENDS.items() if spec.available())

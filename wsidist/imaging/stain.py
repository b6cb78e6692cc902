"""H&E stain normalisation: Macenko, Reinhard and Vahadane, fitted on a reference, saved as JSON.

- **macenko** and **reinhard** are torchstain's NumPy normalisers (no torch needed): Macenko
  finds the two stain vectors as the extreme angles of the optical densities in the plane of
  their two main eigenvectors (Macenko et al., ISBI 2009); Reinhard matches the mean and
  standard deviation of each Lab channel (Reinhard et al., 2001).
- **vahadane** (Vahadane et al., IEEE TMI 2016) is written here: torchstain has none, and the
  usual implementation (staintools) needs SPAMS, a C++ build that is no longer maintained. The
  stain matrix is a sparse non-negative factorisation of the optical densities, ``OD ≈ W H``
  with unit stain vectors ``W ≥ 0``, concentrations ``H ≥ 0`` and an L1 penalty ``λ`` on ``H``,
  solved by multiplicative updates from the Macenko estimate.

Macenko and Vahadane normalise a patch the same way: its own stain matrix and concentrations
are estimated, the concentrations are scaled so their 99th percentiles match the reference's,
and the image is rebuilt with the reference's stain vectors. A patch with too little stained
tissue to estimate anything (glass) is returned unchanged. Stain vectors are unit optical-
density vectors (R, G, B), hematoxylin first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wsidist.errors import ConfigError

__all__ = ["METHODS", "StainNormalizer", "normalize_stain", "optical_density", "stain_vectors"]

METHODS = ("macenko", "reinhard", "vahadane")
BACKGROUND = 240.0  # transmitted light intensity Io (torchstain's default)
BETA = 0.15  # optical density below which a pixel is background
MIN_PIXELS = 64  # stained pixels needed to estimate stain vectors


def optical_density(rgb: np.ndarray, background: float = BACKGROUND) -> np.ndarray:
    """float (n, 3) optical densities ``-log((I + 1) / Io)`` of the pixels of an RGB array."""
    return -np.log((np.asarray(rgb).reshape(-1, 3).astype(np.float64) + 1) / background)


def _stained(od: np.ndarray, beta: float = BETA) -> np.ndarray:
    return od[np.all(od >= beta, axis=1)]


def _order_he(matrix: np.ndarray) -> np.ndarray:
    """(2, 3) unit rows, hematoxylin (the larger red optical density) first."""
    matrix = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix if matrix[0, 0] >= matrix[1, 0] else matrix[::-1]


def _macenko(rgb: np.ndarray, background: float) -> np.ndarray:
    """(2, 3) stain matrix by torchstain's Macenko fit."""
    from torchstain.numpy.normalizers import NumpyMacenkoNormalizer

    fitter = NumpyMacenkoNormalizer()
    fitter.fit(np.asarray(rgb).reshape(-1, 1, 3), Io=background, beta=BETA)
    return _order_he(np.asarray(fitter.HERef, np.float64).T)


def _vahadane(
    rgb: np.ndarray, background: float, lam: float = 0.02, iterations: int = 150, seed: int = 0
) -> np.ndarray:
    """(2, 3) stain matrix by sparse non-negative factorisation of the stained pixels' ODs."""
    od = _stained(optical_density(rgb, background))
    rng = np.random.default_rng(seed)
    if len(od) > 50_000:
        od = od[rng.choice(len(od), 50_000, replace=False)]
    v = od.T  # (3, n)
    w = _macenko(rgb, background).T.copy()  # (3, 2) start
    h = np.maximum(np.linalg.lstsq(w, v, rcond=None)[0], 1e-6)
    eps = 1e-12
    for _ in range(iterations):
        h *= (w.T @ v) / (w.T @ w @ h + lam + eps)
        w *= (v @ h.T) / (w @ (h @ h.T) + eps)
        norms = np.linalg.norm(w, axis=0, keepdims=True) + eps
        w /= norms
        h *= norms.T
    return _order_he(w.T)


def _concentrations(od: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(2, n) least-squares stain concentrations of ODs (n, 3) for a (2, 3) stain matrix."""
    return np.linalg.lstsq(matrix.T, od.T, rcond=None)[0]


def _max_concentrations(rgb: np.ndarray, matrix: np.ndarray, background: float) -> np.ndarray:
    c = _concentrations(optical_density(rgb, background), matrix)
    return np.percentile(c, 99, axis=1)


def stain_vectors(
    rgb: np.ndarray, method: str = "macenko", *, background: float = BACKGROUND
) -> np.ndarray:
    """The (2, 3) unit stain vectors (hematoxylin, eosin) of an RGB image or pixel list."""
    _check_method(method, ("macenko", "vahadane"))
    rgb = np.asarray(rgb, np.uint8).reshape(-1, 3)
    if len(_stained(optical_density(rgb, background))) < MIN_PIXELS:
        raise ValueError(f"too few stained pixels to estimate stain vectors (< {MIN_PIXELS})")
    return _macenko(rgb, background) if method == "macenko" else _vahadane(rgb, background)


def _check_method(method: str, allowed: tuple[str, ...] = METHODS) -> None:
    if method not in allowed:
        raise ConfigError(f"unknown stain method {method!r} (choose {', '.join(allowed)})")


@dataclass(frozen=True)
class StainNormalizer:
    """A fitted normaliser: ``method`` and the reference's parameters (JSON-able lists).

    macenko/vahadane: ``stain_matrix`` (2 × 3, H then E) and ``max_concentrations`` (2);
    reinhard: ``lab_mean`` and ``lab_std`` (3 each, torchstain's OpenCV-scaled Lab).
    """

    method: str
    params: dict[str, Any] = field(default_factory=dict)
    background: float = BACKGROUND

    def __post_init__(self) -> None:
        _check_method(self.method)
        need = ("lab_mean", "lab_std") if self.method == "reinhard" else (
            "stain_matrix", "max_concentrations")  # fmt: skip
        missing = [k for k in need if k not in self.params]
        if missing:
            raise ConfigError(f"{self.method} normaliser lacks {', '.join(missing)}")

    # -- fit, save, load ---------------------------------------------------------------------
    @classmethod
    def fit(
        cls, rgb: np.ndarray, method: str = "macenko", *, background: float = BACKGROUND
    ) -> StainNormalizer:
        """Fit on a reference RGB image (or (n, 3) pixels, e.g. tissue pixels of a slide)."""
        _check_method(method)
        pixels = np.asarray(rgb, np.uint8).reshape(-1, 3)
        if method == "reinhard":
            from torchstain.numpy.normalizers import NumpyReinhardNormalizer

            fitter = NumpyReinhardNormalizer()
            fitter.fit(pixels.reshape(-1, 1, 3))
            params = {"lab_mean": _floats(fitter.target_means),
                      "lab_std": _floats(fitter.target_stds)}  # fmt: skip
            return cls(method, params, background)
        matrix = stain_vectors(pixels, method, background=background)
        max_c = _max_concentrations(pixels, matrix, background)
        params = {"stain_matrix": [_floats(row) for row in matrix],
                  "max_concentrations": _floats(max_c)}  # fmt: skip
        return cls(method, params, background)

    @property
    def stain_matrix(self) -> np.ndarray:
        """(2, 3) reference stain vectors (macenko/vahadane)."""
        return np.asarray(self.params["stain_matrix"], np.float64)

    def to_json(self) -> str:
        return json.dumps(
            {"wsidist": "stain", "method": self.method, "background": self.background,
             **self.params}, indent=1)  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> StainNormalizer:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"stain normaliser JSON is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("wsidist") != "stain":
            raise ConfigError('not a wsidist stain normaliser JSON (no "wsidist": "stain")')
        method = data.get("method")
        params = {k: v for k, v in data.items() if k not in ("wsidist", "method", "background")}
        return cls(method, params, float(data.get("background", BACKGROUND)))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> StainNormalizer:
        try:
            return cls.from_json(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read stain normaliser {path}: {exc}") from None

    # -- apply --------------------------------------------------------------------------------
    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return self.normalize(rgb)

    def normalize(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 (h, w, 3): ``rgb`` with the reference's stain; glass-only patches unchanged."""
        rgb = np.asarray(rgb, np.uint8)
        if self.method == "reinhard":
            from torchstain.numpy.normalizers import NumpyReinhardNormalizer

            norm = NumpyReinhardNormalizer()
            norm.target_means = np.asarray(self.params["lab_mean"], np.float32)
            norm.target_stds = np.asarray(self.params["lab_std"], np.float32)
            return norm.normalize(rgb)
        od = optical_density(rgb, self.background)
        if len(_stained(od)) < MIN_PIXELS:
            return rgb.copy()
        src = _macenko(rgb, self.background) if self.method == "macenko" else _vahadane(
            rgb, self.background)  # fmt: skip
        c = _concentrations(od, src)
        scale = np.percentile(c, 99, axis=1) / np.asarray(self.params["max_concentrations"])
        c /= np.where(scale > 0, scale, 1.0)[:, None]
        out = self.background * np.exp(-(self.stain_matrix.T @ c))
        return np.clip(np.rint(out.T), 0, 255).astype(np.uint8).reshape(rgb.shape)


def normalize_stain(rgb: np.ndarray, normalizer: StainNormalizer | str | Path) -> np.ndarray:
    """``rgb`` normalised with a normaliser or the path of its JSON (for extraction)."""
    if not isinstance(normalizer, StainNormalizer):
        normalizer = StainNormalizer.load(normalizer)
    return normalizer.normalize(rgb)


def _floats(values) -> list[float]:
    return [float(v) for v in np.asarray(values).ravel()]

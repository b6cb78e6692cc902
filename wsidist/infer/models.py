"""Models for inference: an ONNX file, a TorchScript file or a Python ``module:function``.

Every model is a callable on a batch ``uint8 (N, H, W, 3)`` returning float probabilities
``(N, C)`` (one value per patch and class) or ``(N, C, h, w)`` (a map per patch). How each kind
is fed:

- **ONNX** (onnxruntime, CPU): an input of type uint8 gets the batch as it is (NHWC); a float
  input gets values in [0, 1], NHWC when its last dimension is 3 and NCHW otherwise.
- **TorchScript** (``.pt``, ``.pth``, ``.ts``, ``.torchscript``; needs torch): float NCHW in
  [0, 1], run under ``torch.inference_mode``.
- **Python** ``package.module:function`` (importable on the workers): called with the batch.

Outputs are checked: the right rank and batch size, finite, within [0, 1] (a model must end
with its softmax or sigmoid), else a :class:`~wsidist.errors.ConfigError` naming the model.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from wsidist.errors import ConfigError

__all__ = ["Model", "check_model_spec", "load_model", "model_digest"]

TORCHSCRIPT_EXT = (".pt", ".pth", ".ts", ".torchscript")


def _kind(spec: str) -> str:
    lower = spec.lower()
    if lower.endswith(".onnx"):
        return "onnx"
    if lower.endswith(TORCHSCRIPT_EXT):
        return "torchscript"
    module, sep, func = spec.partition(":")
    if sep and module and func and "/" not in module and not os.path.exists(spec):
        return "python"
    raise ConfigError(
        f"model {spec!r}: not an .onnx file, a TorchScript file ({', '.join(TORCHSCRIPT_EXT)}) "
        "or module:function"
    )


def check_model_spec(spec: str) -> str:
    """The model's kind (onnx, torchscript, python); ConfigError for a missing file or module."""
    kind = _kind(spec)
    if kind != "python":
        if not os.path.isfile(spec):
            raise ConfigError(f"model file not found: {spec}")
        if kind == "torchscript" and importlib.util.find_spec("torch") is None:
            raise ConfigError(f"model {spec}: TorchScript needs torch (pip install wsidist[torch])")
        if kind == "onnx" and importlib.util.find_spec("onnxruntime") is None:
            raise ConfigError(f"model {spec}: ONNX needs onnxruntime (pip install onnxruntime)")
    else:
        _python_callable(spec)
    return kind


def model_digest(spec: str) -> str:
    """What identifies the model for the rerun check: a file's sha256, or the callable's name."""
    if _kind(spec) == "python":
        return spec
    digest = hashlib.sha256()
    with open(spec, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return f"{os.path.basename(spec)}:{digest.hexdigest()[:16]}"


@dataclass
class Model:
    """A loaded model: ``model(batch) -> float32 (N, C) or (N, C, h, w)`` probabilities."""

    spec: str
    run: Callable[[np.ndarray], np.ndarray]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = np.asarray(self.run(batch), dtype=np.float32)
        n = batch.shape[0]
        if out.ndim not in (2, 4) or out.shape[0] != n:
            raise ConfigError(
                f"model {self.spec}: output shape {out.shape} for a batch of {n}; expected "
                "(N, C) or (N, C, h, w)"
            )
        if not np.isfinite(out).all() or out.min() < -1e-4 or out.max() > 1 + 1e-4:
            raise ConfigError(
                f"model {self.spec}: outputs must be probabilities in [0, 1] (got "
                f"{float(np.nanmin(out)):.4g}..{float(np.nanmax(out)):.4g}); end it with a "
                "softmax or sigmoid"
            )
        return np.clip(out, 0.0, 1.0)


def load_model(spec: str, *, threads: int = 1) -> Model:
    """Load a model once (per slide task); ``threads`` bounds its intra-op threads."""
    kind = check_model_spec(spec)
    if kind == "onnx":
        return Model(spec, _onnx_runner(spec, threads))
    if kind == "torchscript":
        return Model(spec, _torchscript_runner(spec, threads))
    return Model(spec, _python_callable(spec))


def _python_callable(spec: str) -> Callable[[np.ndarray], np.ndarray]:
    module_name, _, func_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"model {spec!r}: cannot import {module_name}: {exc}") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ConfigError(f"model {spec!r}: {module_name} has no callable {func_name!r}")
    return func


def _onnx_runner(path: str, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 — onnxruntime raises its own types for a bad file
        raise ConfigError(f"model {path}: onnxruntime cannot load it: {exc}") from None
    inp = session.get_inputs()[0]
    as_uint8 = inp.type == "tensor(uint8)"
    if not as_uint8 and inp.type not in ("tensor(float)", "tensor(float16)"):
        raise ConfigError(f"model {path}: input type {inp.type} (expected uint8 or float)")
    dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
    nhwc = as_uint8 or (len(inp.shape) == 4 and inp.shape[-1] == 3)
    output = session.get_outputs()[0].name

    def run(batch: np.ndarray) -> np.ndarray:
        x = batch if nhwc else batch.transpose(0, 3, 1, 2)
        x = np.ascontiguousarray(x) if as_uint8 else np.ascontiguousarray(x, dtype) / dtype(255)
        return session.run([output], {inp.name: x})[0]

    return run


def _torchscript_runner(path: str, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    torch.set_num_threads(threads)
    try:
        with warnings.catch_warnings():  # torch ≥ 2.10 marks TorchScript as deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(path, map_location="cpu").eval()
    except Exception as exc:  # noqa: BLE001 — torch raises RuntimeError and friends
        raise ConfigError(f"model {path}: not a TorchScript file torch can load: {exc}") from None

    def run(batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))
        with torch.inference_mode():
            return module(x.float().div_(255)).numpy()

    return run

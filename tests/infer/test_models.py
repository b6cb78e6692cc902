"""Loading models: an ONNX file built here, Python callables, TorchScript; checks of outputs."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from tests.infer.models import build_darkness_onnx, darkness
from wsidist.errors import ConfigError
from wsidist.infer.models import check_model_spec, load_model, model_digest

HAS_TORCH = importlib.util.find_spec("torch") is not None


def _batch(n=5, side=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, side, side, 3), dtype=np.uint8)


@pytest.mark.parametrize("nhwc", [False, True])
def test_onnx_model_matches_the_callable(tmp_path, nhwc):
    path = build_darkness_onnx(tmp_path / "d.onnx", nhwc=nhwc)
    assert check_model_spec(str(path)) == "onnx"
    model = load_model(str(path))
    batch = _batch()
    np.testing.assert_allclose(model(batch), darkness(batch), atol=2e-6)


def test_python_callable_and_digest():
    spec = "tests.infer.models:darkness"
    assert check_model_spec(spec) == "python"
    assert model_digest(spec) == spec
    out = load_model(spec)(_batch(3))
    assert out.shape == (3, 2) and out.dtype == np.float32


def test_file_digest_changes_with_the_file(tmp_path):
    path = build_darkness_onnx(tmp_path / "d.onnx")
    before = model_digest(str(path))
    path.write_bytes(path.read_bytes() + b"\0")
    assert model_digest(str(path)) != before


@pytest.mark.parametrize(
    "spec, message",
    [
        ("missing.onnx", "model file not found"),
        ("no_such_module_xyz:f", "cannot import"),
        ("tests.infer.models:nothing", "no callable"),
        ("weights.bin", "not an .onnx file"),
    ],
)
def test_bad_model_specs_fail_before_any_work(spec, message):
    with pytest.raises(ConfigError, match=message):
        check_model_spec(spec)


def test_outputs_are_checked(monkeypatch):
    import tests.infer.models as models

    monkeypatch.setattr(models, "bad_range", lambda b: np.full((len(b), 1), 3.0), raising=False)
    monkeypatch.setattr(models, "bad_shape", lambda b: np.zeros((len(b) + 1, 1)), raising=False)
    with pytest.raises(ConfigError, match=r"probabilities in \[0, 1\]"):
        load_model("tests.infer.models:bad_range")(_batch(2))
    with pytest.raises(ConfigError, match="output shape"):
        load_model("tests.infer.models:bad_shape")(_batch(2))


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed (pip install wsidist[torch])")
def test_torchscript_model_matches_the_callable(tmp_path):
    import torch

    class Darkness(torch.nn.Module):
        def forward(self, x):  # x: N, 3, H, W in [0, 1]
            d = 1 - x.mean(dim=(1, 2, 3))
            p = torch.sigmoid(20 * (d - 0.4))
            return torch.stack([1 - p, p], 1)

    path = tmp_path / "d.pt"
    torch.jit.script(Darkness()).save(str(path))
    assert check_model_spec(str(path)) == "torchscript"
    batch = _batch()
    np.testing.assert_allclose(load_model(str(path))(batch), darkness(batch), atol=1e-5)

"""Models with known answers for the inference tests: Python callables and an ONNX builder.

"Darkness" is ``1 - mean(RGB) / 255``; the generated stained slides have glass at about 0.06,
tissue at about 0.29 and the dark region at about 0.52, so ``sigmoid(20 (d - 0.4))`` is a
probability of "dark" that is 0.5 on the region's border.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MIDPOINT, GAIN = 0.4, 20.0


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def darkness(batch: np.ndarray) -> np.ndarray:
    """(N, 2): [not dark, dark] from the patch's mean darkness (rotation-invariant)."""
    d = 1.0 - batch.reshape(len(batch), -1).mean(1) / 255.0
    p = _sigmoid(GAIN * (d - MIDPOINT))
    return np.stack([1 - p, p], 1).astype(np.float32)


def darkness_map(batch: np.ndarray) -> np.ndarray:
    """(N, 1, 4, 4): dark probability of each quarter-side cell (a segmentation model)."""
    n, h, w, _ = batch.shape
    d = 1.0 - batch.astype(np.float32).mean(3) / 255.0
    cells = d.reshape(n, 4, h // 4, 4, w // 4).mean((2, 4))
    return _sigmoid(GAIN * (cells - MIDPOINT))[:, None].astype(np.float32)


def constant(batch: np.ndarray) -> np.ndarray:
    """(N, 1) of 0.3 whatever the patch."""
    return np.full((len(batch), 1), 0.3, np.float32)


def left_half(batch: np.ndarray) -> np.ndarray:
    """(N, 1): darkness of the left half only (changes under flips and rotations)."""
    w = batch.shape[2]
    d = 1.0 - batch[:, :, : w // 2].reshape(len(batch), -1).mean(1) / 255.0
    return _sigmoid(GAIN * (d - MIDPOINT))[:, None].astype(np.float32)


def build_darkness_onnx(path: Path, *, nhwc: bool = False) -> Path:
    """An ONNX model of :func:`darkness`: a fixed 1×1 convolution gives each pixel's darkness
    (``1 - (R + G + B) / 3`` of the [0, 1] input), a global average pool the patch's, then
    ``sigmoid(20 (d - 0.4))`` and ``[1 - p, p]``. Input float32 NCHW (or NHWC)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [
        numpy_helper.from_array(np.full((1, 3, 1, 1), -1 / 3, np.float32), "w"),
        numpy_helper.from_array(np.ones(1, np.float32), "b"),
        numpy_helper.from_array(np.array(MIDPOINT, np.float32), "mid"),
        numpy_helper.from_array(np.array(GAIN, np.float32), "gain"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
    ]
    nodes = []
    source = "x"
    if nhwc:
        nodes.append(helper.make_node("Transpose", ["x"], ["x_nchw"], perm=[0, 3, 1, 2]))
        source = "x_nchw"
    nodes += [
        helper.make_node("Conv", [source, "w", "b"], ["dark_px"]),
        helper.make_node("GlobalAveragePool", ["dark_px"], ["dark"]),
        helper.make_node("Flatten", ["dark"], ["d"]),
        helper.make_node("Sub", ["d", "mid"], ["centred"]),
        helper.make_node("Mul", ["centred", "gain"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p"]),
        helper.make_node("Sub", ["one", "p"], ["q"]),
        helper.make_node("Concat", ["q", "p"], ["probs"], axis=1),
    ]
    shape = ["N", "H", "W", 3] if nhwc else ["N", 3, "H", "W"]
    graph = helper.make_graph(
        nodes,
        "darkness",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 2])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def darkness_dark_only(batch: np.ndarray) -> np.ndarray:
    """(N, 1): a sharper darkness model (gain 60), to disagree with others near the border."""
    d = 1.0 - batch.reshape(len(batch), -1).mean(1) / 255.0
    return _sigmoid(3 * GAIN * (d - MIDPOINT - 0.03))[:, None].astype(np.float32)

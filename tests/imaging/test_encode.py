"""Encoders: pictures decode back to what was encoded; pyramid tile codecs round-trip."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from wsidist.imaging import TileCodec, encode_image, rgb_to_gray, to_uint8_image


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def smooth(h: int = 64, w: int = 96) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 2, yy * 3, (xx + yy) % 256], -1).astype(np.uint8)


def test_png_is_exact_and_bool_is_one_bit():
    rgb = smooth()
    assert np.array_equal(decode(encode_image(rgb, "png")), rgb)
    mask = rgb[..., 0] > 60
    img = Image.open(io.BytesIO(encode_image(mask, "png")))
    assert img.mode == "1" and np.array_equal(np.asarray(img), mask)


@pytest.mark.parametrize("fmt", ["jpeg", "jpg", "webp"])
def test_lossy_formats_are_close_and_quality_matters(fmt):
    rgb = smooth()
    good, poor = encode_image(rgb, fmt, quality=95), encode_image(rgb, fmt, quality=10)
    assert np.abs(decode(good).astype(int) - rgb).mean() < 3
    assert len(poor) < len(good)


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="bmp"):
        encode_image(smooth(), "bmp")


def test_to_uint8_image_scales_floats_and_keeps_uint8():
    assert to_uint8_image(np.array([[0.0, 0.5, 1.0]])).tolist() == [[0, 128, 255]]
    u8 = smooth()
    assert to_uint8_image(u8) is u8
    assert to_uint8_image(np.array([[True, False]])).tolist() == [[255, 0]]


def test_rgb_to_gray_rounds_luminance():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], np.uint8)
    expected = np.rint(rgb.astype(float) @ [0.2125, 0.7154, 0.0721]).astype(np.uint8)
    assert np.array_equal(rgb_to_gray(rgb), expected)
    assert rgb_to_gray(rgb).tolist() == [[54, 182, 18, 19]]  # 18.596 rounds up, not down


@pytest.mark.parametrize(
    ("codec", "max_err"),
    [(TileCodec("jpegxl", lossless=True), 0), (TileCodec("jpegxl"), 12), (TileCodec("jpeg"), 12)],
)
def test_tile_codecs_round_trip(codec, max_err):
    tile = smooth(256, 256)
    out = codec.decode(codec.encode(tile))
    assert out.shape == tile.shape
    assert np.abs(out.astype(int) - tile).mean() <= max(max_err / 4, 0)
    assert codec.write_kw["compression"] == codec.name


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (5, 8), (9, 9), (64, 65), (31, 200)])
def test_mask_png_is_a_one_bit_png_of_the_mask(shape):
    """The 1-bit writer (packed rows, filter none) decodes to the mask in any PNG reader, at
    widths that do and do not fill their last byte."""
    mask = np.random.default_rng(shape[1]).random(shape) < 0.4
    data = encode_image(mask, "png")
    img = Image.open(io.BytesIO(data))
    img.load()  # checks the chunks' CRCs and the zlib stream
    assert img.mode == "1" and img.size == (shape[1], shape[0])
    assert np.array_equal(np.asarray(img), mask)


def test_mask_png_refuses_an_empty_or_flat_mask():
    with pytest.raises(ValueError, match="2-D"):
        encode_image(np.zeros((0, 4), bool), "png")
    with pytest.raises(ValueError, match="2-D"):
        encode_image(np.zeros(5, bool), "png")


@pytest.mark.parametrize("quality", [20, 90])
def test_jpeg_is_the_imaging_library_jpeg(quality):
    """JPEGs are encoded by libjpeg-turbo directly, with the imaging library's defaults (4:2:0
    at these qualities): the same pictures, for RGB, gray and strided input."""
    for image in (smooth(61, 83), smooth(40, 50)[..., 1], smooth(64, 96)[::2, ::3]):
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image)).save(buf, format="JPEG", quality=quality)
        ours = decode(encode_image(image, "jpeg", quality=quality))
        theirs = decode(buf.getvalue())
        assert ours.shape == theirs.shape
        assert np.abs(ours.astype(int) - theirs).max() <= 1

"""What a JPEG stream says about its own colour space (JFIF / Adobe markers, component ids).

A container's tag (DICOM PhotometricInterpretation, TIFF Photometric) can disagree with the
JPEG data it wraps. libjpeg decides from the stream: a JFIF APP0 marker means YCbCr, an Adobe
APP14 marker carries a transform flag (0: RGB, 1: YCbCr), and components named ``R``, ``G``,
``B`` mean RGB. :func:`jpeg_stream_colorspace` reads those markers (up to the first scan) and
says what the data is, or None when the stream does not say.
"""

from __future__ import annotations

from dataclasses import dataclass

_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE})
_SOS = 0xDA
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


@dataclass(frozen=True)
class JpegColor:
    """The stream's own colour space (``"YCbCr"``, ``"RGB"`` or None) and the evidence."""

    colorspace: str | None
    evidence: str
    components: int = 0


def jpeg_stream_colorspace(data: bytes) -> JpegColor:
    """The colour space a JPEG stream declares for itself, from its markers before the scan."""
    if data[:2] != b"\xff\xd8":
        return JpegColor(None, "not a JPEG stream")
    jfif = False
    adobe: int | None = None
    ids: tuple[int, ...] = ()
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        body = data[pos + 4 : pos + 2 + length]
        if marker == 0xE0 and body.startswith(b"JFIF\x00"):
            jfif = True
        elif marker == 0xEE and body.startswith(b"Adobe") and len(body) >= 12:
            adobe = body[11]
        elif marker in _SOF_MARKERS and len(body) >= 6:
            n = body[5]
            ids = tuple(body[6 + 3 * i] for i in range(n) if 6 + 3 * i < len(body))
        if marker == _SOS:
            break
        pos += 2 + length
    n = len(ids)
    if n != 3:
        return JpegColor(None, f"{n} component(s)", n)
    if adobe is not None:
        if adobe == 0:
            return JpegColor("RGB", "Adobe marker, transform 0 (RGB)", n)
        if adobe == 1:
            return JpegColor("YCbCr", "Adobe marker, transform 1 (YCbCr)", n)
    if jfif:
        return JpegColor("YCbCr", "JFIF marker (YCbCr)", n)
    if ids == (ord("R"), ord("G"), ord("B")):
        return JpegColor("RGB", "components named R, G, B", n)
    return JpegColor(None, "no JFIF or Adobe marker", n)

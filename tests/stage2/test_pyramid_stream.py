"""Pyramids stream to s3:// as one multipart upload: the same bytes as the local file, no local
copy of the output (only the spool of encoded tiles), and nothing left behind on a failure."""

from __future__ import annotations

import contextlib
import io
import secrets
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
import tifffile

from wsidist.demo.synth import SynthSpec, write_synthetic_slide
from wsidist.errors import PyramidError
from wsidist.io.slide import open_slide
from wsidist.io.storage import Store
from wsidist.stage2 import tiff_stream
from wsidist.stage2.pyramid import PyramidOptions, write_pyramid
from wsidist.stage2.tiff_stream import SparseFile

DS = 16


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "src.svs"
    write_synthetic_slide(path, SynthSpec(width=2600, height=1800, seed=41, n_blobs=2))
    with open_slide(path) as slide:
        w, h = slide.dimensions
    mask = np.zeros((-(-h // DS), -(-w // DS)), bool)
    mask[10:90, 20:130] = True
    return path, mask


def _dir_bytes(root: Path) -> int:
    total = 0
    for p in root.rglob("*"):
        with contextlib.suppress(FileNotFoundError):
            total += p.stat().st_size if p.is_file() else 0
    return total


def test_sparse_file_keeps_only_non_zero_pages():
    f = SparseFile()
    f.write(b"II*\x00")
    f.write(bytes(10 * 2**20))  # a placeholder tile: no memory
    f.seek(2)
    f.write(b"\x01\x02")
    assert f.size == 4 + 10 * 2**20 and len(f._pages) == 1
    assert f.read_at(0, 6) == b"II\x01\x02\x00\x00"


def test_rewrite_to_s3_is_the_local_pyramid_with_bounded_scratch(s3, source, tmp_path, monkeypatch):
    path, mask = source
    opts = PyramidOptions(codec="jpeg", glass="white", block_levels=1)
    local = tmp_path / "local.tiff"
    store = Store(s3.make_bucket(f"pyr-{secrets.token_hex(4)}"), s3.storage_options)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where a remote output spools
    seen, done = [0], threading.Event()

    def watch() -> None:
        while not done.wait(0.01):
            seen.append(_dir_bytes(scratch))

    with open_slide(path) as slide:
        write_pyramid(slide, mask, DS, local, opts, workers=2)
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            report = write_pyramid(
                slide, mask, DS, store.full_url("p.tiff"), opts, workers=2,
                output=lambda: store.open_write("p.tiff", block_size=5 * 2**20),
            )  # fmt: skip
        finally:
            done.set()
            watcher.join()
    remote = store.read_bytes("p.tiff")
    assert remote == local.read_bytes() and report.output_bytes == len(remote)
    assert report.path == store.full_url("p.tiff")
    with tifffile.TiffFile(io.BytesIO(remote)) as tif:
        assert len(tif.pages) == len(report.level_dimensions)
    # the scratch held the spool of tiles, never a copy of the file: less than the output
    assert 0 < max(seen) < len(remote)
    assert not list(scratch.iterdir())


def test_open_write_is_one_multipart_upload_aborted_on_error(s3):
    store = Store(s3.make_bucket(f"mpu-{secrets.token_hex(4)}"), s3.storage_options)
    data = np.random.default_rng(0).integers(0, 256, 12 * 2**20, np.uint8).tobytes()
    with store.open_write("big.bin", block_size=5 * 2**20) as fh:
        for i in range(0, len(data), 2**20):
            fh.write(data[i : i + 2**20])
        assert not store.exists("big.bin")  # parts uploaded, no object yet
    assert store.read_bytes("big.bin") == data
    with pytest.raises(RuntimeError), store.open_write("bad.bin", block_size=5 * 2**20) as fh:
        fh.write(data)  # two parts sent
        raise RuntimeError("the writer failed")
    assert not store.exists("bad.bin")
    bucket = store.url.removeprefix("s3://")
    assert store.fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", []) == []


def test_a_failed_stream_leaves_no_object(s3, source, monkeypatch):
    path, mask = source
    store = Store(s3.make_bucket(f"pyr-{secrets.token_hex(4)}"), s3.storage_options)
    calls = []
    real = tiff_stream.Spool.tile

    def failing(self, level, index, glass_bytes):
        calls.append(1)
        if len(calls) > 3:
            raise PyramidError("encoder died")
        return real(self, level, index, glass_bytes)

    monkeypatch.setattr(tiff_stream.Spool, "tile", failing)
    with open_slide(path) as slide, pytest.raises(PyramidError, match="encoder died"):
        write_pyramid(
            slide, mask, DS, store.full_url("p.tiff"), PyramidOptions(codec="jpeg"),
            workers=1, output=lambda: store.open_write("p.tiff"),
        )  # fmt: skip
    assert not store.exists("p.tiff") and store.find() == []

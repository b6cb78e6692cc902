"""Pyramids (rewritten and transcoded) stream to s3:// head last as one multipart upload: the
same bytes as the local file, no local scratch at all, and nothing left behind on a failure."""

from __future__ import annotations

import contextlib
import functools
import io
import secrets
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
import tifffile

from wsidist.demo.synth import SynthSpec, write_synthetic_slide
from wsidist.errors import OutputError, PyramidError
from wsidist.io.slide import open_slide
from wsidist.io.storage import Store
from wsidist.io.upload import open_head_last
from wsidist.stage2 import tiff_stream
from wsidist.stage2.pyramid import PyramidOptions, write_pyramid
from wsidist.stage2.tiff_stream import SparseFile
from wsidist.stage2.transcode import transcode_pyramid

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


@contextlib.contextmanager
def _watched(folder: Path):
    """The sizes of ``folder``'s files, sampled every 10 ms while the block runs."""
    seen, done = [0], threading.Event()

    def watch() -> None:
        while not done.wait(0.01):
            seen.append(_dir_bytes(folder))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield seen
    finally:
        done.set()
        watcher.join()


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))  # where a remote output would spool
    return folder


@pytest.mark.parametrize("glass", ["white", "empty"])
def test_rewrite_to_s3_is_the_local_pyramid_with_no_scratch(s3, source, tmp_path, scratch, glass):
    path, mask = source
    opts = PyramidOptions(codec="jpeg", glass=glass, block_levels=1)
    local = tmp_path / "local.tiff"
    store = Store(s3.make_bucket(f"pyr-{secrets.token_hex(4)}"), s3.storage_options)
    with open_slide(path) as slide:
        write_pyramid(slide, mask, DS, local, opts, workers=2)
        with _watched(scratch) as seen:
            report = write_pyramid(
                slide, mask, DS, store.full_url("p.tiff"), opts, workers=2,
                output=functools.partial(open_head_last, store, "p.tiff"),
            )  # fmt: skip
        with open_slide(local) as mine:
            level0 = mine.read_region(0, 0, 0, mine.dimensions)
    remote = store.read_bytes("p.tiff")
    assert remote == local.read_bytes() and report.output_bytes == len(remote)
    assert report.path == store.full_url("p.tiff")
    with tifffile.TiffFile(io.BytesIO(remote)) as tif:
        assert len(tif.pages) == len(report.level_dimensions)
        assert max(tif.pages[0].dataoffsets) > 0
    # read back by range requests: the same pixels (glass tiles share one white tile)
    with open_slide(store.full_url("p.tiff")) as back:
        assert np.array_equal(back.read_region(0, 0, 0, back.dimensions), level0)
    assert max(seen) == 0 and not [p for p in scratch.rglob("*") if p.is_file()]


def test_transcode_to_s3_is_the_local_transcode_with_no_scratch(s3, source, tmp_path, scratch):
    path, mask = source
    local = tmp_path / "local.tiff"
    transcode_pyramid(str(path), mask, DS, local, margin_px0=64)
    store = Store(s3.make_bucket(f"trc-{secrets.token_hex(4)}"), s3.storage_options)
    with _watched(scratch) as seen:
        report = transcode_pyramid(
            str(path), mask, DS, store.full_url("t.tiff"), margin_px0=64,
            output=functools.partial(open_head_last, store, "t.tiff"),
        )  # fmt: skip
    remote = store.read_bytes("t.tiff")
    assert remote == local.read_bytes() and report.output_bytes == len(remote)
    assert report.path == store.full_url("t.tiff")
    assert max(seen) == 0


def test_head_last_upload_sends_the_head_as_part_one_last(s3):
    store = Store(s3.make_bucket(f"mpu-{secrets.token_hex(4)}"), s3.storage_options)
    rng = np.random.default_rng(0)
    body = rng.integers(0, 256, 13 * 2**20, np.uint8).tobytes()
    head = rng.integers(0, 256, 3000, np.uint8).tobytes()
    bucket = store.url.removeprefix("s3://")
    with open_head_last(store, "big.bin", len(head), part_bytes=5 * 2**20) as out:
        for i in range(0, len(body), 2**20):
            out.write(body[i : i + 2**20])
        assert not store.exists("big.bin")  # parts 2.. uploaded, no object yet
        out.finish(head)
    assert store.read_bytes("big.bin") == head + body
    # a small output is one PUT; an output left unfinished or failing leaves nothing
    with open_head_last(store, "small.bin", 4) as out:
        out.write(b"body")
        out.finish(b"head")
    assert store.read_bytes("small.bin") == b"headbody"
    with pytest.raises(RuntimeError), open_head_last(store, "bad.bin", 10, 5 * 2**20) as out:
        out.write(body)  # two parts sent
        raise RuntimeError("the writer failed")
    with pytest.raises(OutputError, match="before its head"), open_head_last(store, "x", 1) as out:
        out.write(body)
    assert not store.exists("bad.bin") and not store.exists("x")
    assert store.fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", []) == []


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
    real = tiff_stream.TileStream.add

    def failing(self, level, index, data):
        calls.append(1)
        if len(calls) > 3:
            raise PyramidError("encoder died")
        return real(self, level, index, data)

    monkeypatch.setattr(tiff_stream.TileStream, "add", failing)
    with open_slide(path) as slide, pytest.raises(PyramidError, match="encoder died"):
        write_pyramid(
            slide, mask, DS, store.full_url("p.tiff"), PyramidOptions(codec="jpeg"),
            workers=1, output=functools.partial(open_head_last, store, "p.tiff"),
        )  # fmt: skip
    assert not store.exists("p.tiff") and store.find() == []


def test_head_last_locally_and_on_other_stores(tmp_path):
    """Locally a temporary file (head written into the gap); other fsspec stores spool the
    body. Either way the head comes first and nothing appears before ``finish``."""
    for store in (Store(str(tmp_path / "out")), Store(f"memory://hl-{secrets.token_hex(4)}")):
        with open_head_last(store, "a/b.bin", 4) as out:
            out.write(b"body" * 3)
            assert not store.exists("a/b.bin")
            out.finish(b"HEAD")
        assert store.read_bytes("a/b.bin") == b"HEAD" + b"body" * 3
        with pytest.raises(OutputError, match="reserved"), open_head_last(store, "c", 4) as out:
            out.finish(b"toolong")
        assert not store.exists("c")

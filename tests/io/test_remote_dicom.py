"""DICOM series read by ranges from a real S3 server (SeaweedFS, s3fs), without a download.

Pixels and metadata equal the local path's on every level of the shared series and of generated
series with a Basic, an Extended or no offset table; opening reads headers only; stage 1 from
s3:// equals the local run and moves about the bytes of the level it decodes (never the level-0
instance); extraction with an offset table fetches only the frames of its boxes.
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.helpers.paths import DICOM, MISSING_SLIDES
from wsidist import layout
from wsidist.demo.dicom import pyramid, write_dicom_series
from wsidist.demo.synth import SynthSpec, write_synthetic_slide
from wsidist.io.backends.dicom_frames import read_instance
from wsidist.io.remote_dicom import HEADER_BLOCK_BYTES
from wsidist.io.slide import open_slide
from wsidist.query.extract import extract
from wsidist.stage1.driver import run_stage1

VOLATILE = {"url", "worker", "started_at", "finished_at", "seconds", "source_version",
            "bytes_read", "read_requests"}  # fmt: skip
OFFSETS = ("bot", "eot", "none")
KINDS = (*OFFSETS, "native")


@pytest.fixture(scope="module")
def bucket(s3) -> str:
    import secrets

    return s3.make_bucket(f"dicom-{secrets.token_hex(4)}")


@pytest.fixture(scope="module")
def tissue_rgb(tmp_path_factory) -> np.ndarray:
    """Level 0 of a generated H&E slide, 2304 × 1792 (the pixels the series carry)."""
    path = tmp_path_factory.mktemp("rdsrc") / "src.svs"
    write_synthetic_slide(path, SynthSpec(width=2304, height=1792, seed=5, texture="atlas"))
    with open_slide(str(path)) as s:
        return s.read_region(0, 0, 0, s.dimensions)


@pytest.fixture(scope="module")
def series(tmp_path_factory, tissue_rgb) -> dict:
    """One series per offset-table kind: 4 levels (1, 2, 4, 8), 128-px frames."""
    root = tmp_path_factory.mktemp("rdseries")
    levels = pyramid(tissue_rgb, 4)
    found = {k: write_dicom_series(root / k, levels, frame=128, offsets=k) for k in OFFSETS}
    found["native"] = write_dicom_series(root / "native", levels[1:], frame=128, codec="native")
    return found


def put_folder(s3, paths, url: str) -> str:
    fs = s3.filesystem()
    for p in paths:
        fs.put_file(str(p), f"{url}/{p.name}")
    return url


def frame_bytes(path) -> int:
    """The bytes of all frames of one instance (what decoding its level reads)."""
    inst = read_instance(str(path))
    try:
        if inst.index is None:  # native pixels
            return inst.n_frames * inst.frame_w * inst.frame_h * inst.samples
        return int(inst.index.lengths.sum())
    finally:
        inst.close()


def header_allowance(paths) -> int:
    """What opening may read: one header block per file (the whole file when smaller), and
    the first frame of the smallest level (its JPEG stream tells the colour space)."""
    smallest = min(p.stat().st_size for p in paths)
    return sum(min(p.stat().st_size, HEADER_BLOCK_BYTES) for p in paths) + smallest


def assert_same_slide(remote, local) -> None:
    assert remote.remote_read == "range" and remote.backend == local.backend == "dicom"
    for name in ("level_dimensions", "level_downsamples", "mpp_x", "mpp_y",
                 "objective_power", "associated_images", "tile_size"):  # fmt: skip
        assert getattr(remote.info(), name, None) == getattr(local.info(), name, None), name
    for level, (w, h) in enumerate(local.level_dimensions):
        assert np.array_equal(remote.read_level(level, 0, 0, w, h),
                              local.read_level(level, 0, 0, w, h)), level  # fmt: skip
        x, y = w // 3, h // 2
        assert np.array_equal(remote.read_region(x, y, level, (301, 203)),
                              local.read_region(x, y, level, (301, 203))), level  # fmt: skip
    assert set(remote.warnings) == set(local.warnings)
    assert dict(remote.properties) == dict(local.properties)


@pytest.mark.skipif(not DICOM.is_dir(), reason=MISSING_SLIDES)
def test_shared_series_every_level_identical_to_local(s3, bucket):
    paths = sorted(DICOM.glob("*.dcm"))
    url = put_folder(s3, paths, f"{bucket}/shared/cmu")
    level0 = next(p for p in paths if p.name.startswith("level-0-"))
    for target in (url, f"{url}/{paths[3].name}"):  # the folder, or one file of it
        with open_slide(target) as remote, open_slide(str(DICOM)) as local:
            opened = remote.meter.bytes_read
            assert 0 < opened <= header_allowance(paths) < level0.stat().st_size
            assert remote.file_bytes == sum(p.stat().st_size for p in paths)
            assert "says RGB" in " ".join(remote.warnings)  # the mis-tag seen at open too
            assert_same_slide(remote, local)


@pytest.mark.parametrize("kind", KINDS)
def test_generated_series_identical_to_local_and_reads_one_level(s3, bucket, series, kind):
    paths = series[kind]
    url = put_folder(s3, paths, f"{bucket}/gen/{kind}")
    with open_slide(url) as remote, open_slide(str(paths[0])) as local:
        opened = remote.meter.bytes_read
        assert opened <= header_allowance(paths)
        w, h = remote.level_dimensions[2]
        assert np.array_equal(remote.read_level(2, 0, 0, w, h), local.read_level(2, 0, 0, w, h))
        # with a table: that level's frames; without one: that level's instance, once; the
        # header reads of the open may already hold some of them
        want = frame_bytes(paths[2]) if kind != "none" else paths[2].stat().st_size
        moved = remote.meter.bytes_read
        assert want <= moved <= want + header_allowance(paths), (moved, want)
        assert_same_slide(remote, local)


def test_large_instance_without_a_table_is_staged_alone(s3, bucket, series, tmp_path, monkeypatch):
    from wsidist.io import remote_dicom

    monkeypatch.setattr(remote_dicom, "WHOLE_INSTANCE_BYTES", 64 * 2**10)
    paths = series["none"]
    url = put_folder(s3, paths, f"{bucket}/staged-one")
    with open_slide(url, cache_dir=str(tmp_path)) as remote, open_slide(str(paths[0])) as local:
        assert paths[0].stat().st_size > 64 * 2**10
        opened = remote.meter.bytes_read
        x, y, size = 700, 500, (300, 200)
        assert np.array_equal(remote.read_region(x, y, 0, size), local.read_region(x, y, 0, size))
        assert remote.meter.bytes_read - opened == paths[0].stat().st_size
        staged = [p for p in tmp_path.rglob("*.dcm")]
        assert [p.name for p in staged] == [paths[0].name]  # that instance, not the series


def test_stage1_from_s3_equals_local_and_reads_the_level_it_decodes(
    s3, s3_client, bucket, series, tmp_path
):
    urls = [put_folder(s3, series[kind], f"{bucket}/stage1/{kind}") for kind in OFFSETS]
    local_out, remote_out = tmp_path / "local", f"{bucket}/out-stage1"
    local = run_stage1(
        [str(series[k][0].parent) for k in OFFSETS], str(local_out), client=s3_client
    )
    remote = run_stage1(urls, remote_out, client=s3_client)
    lrows = {r["slide_id"]: r for r in local.to_pylist()}
    rrows = {r["slide_id"]: r for r in remote.to_pylist()}
    assert len(rrows) == len(lrows) == len(OFFSETS)
    fs = s3.filesystem()
    for kind in OFFSETS:
        paths = series[kind]
        (sid,) = [s for s, r in rrows.items() if r["url"].endswith(f"/{kind}")]
        lrow, rrow = lrows[sid], rrows[sid]
        assert rrow["status"] == "ok", rrow["error"]
        assert {k: v for k, v in rrow.items() if k not in VOLATILE} == {
            k: v for k, v in lrow.items() if k not in VOLATILE
        }
        mask = fs.cat(f"{remote_out}/{layout.mask_key(sid)}")
        assert mask == (local_out / layout.mask_key(sid)).read_bytes()
        ltiles = pq.read_table(local_out / layout.tiles_key(sid))
        rtiles = pq.read_table(io.BytesIO(fs.cat(f"{remote_out}/{layout.tiles_key(sid)}")))
        assert rtiles.num_rows > 0 and rtiles.equals(ltiles)
        with open_slide(str(paths[0])) as s:
            level = s.best_level_for_downsample(32)
        # the level decoded: its frames (with a table) or its instance (without), 2× at most
        decoded = frame_bytes(paths[level]) if kind != "none" else paths[level].stat().st_size
        assert 0 < rrow["bytes_read"] <= 2 * decoded + header_allowance(paths), kind
        assert rrow["bytes_read"] < paths[0].stat().st_size / 4, kind  # never level 0


@pytest.mark.parametrize("kind", ("bot", "eot"))
def test_extract_with_an_offset_table_reads_only_the_frames_of_its_boxes(
    s3, s3_client, bucket, series, kind
):
    from tests.query.test_extract import selection_table

    paths = series[kind]
    url = put_folder(s3, paths, f"{bucket}/extract/{kind}")
    inst = read_instance(str(paths[0]))
    across, lengths = -(-inst.width // inst.frame_w), inst.index.lengths
    inst.close()
    cells = [(1, 1), (3, 7), (5, 2), (8, 12), (10, 4), (2, 15), (12, 9), (6, 6), (0, 17), (13, 0)]
    rows = [("s", url, c * 128, r * 128, 128, 128) for r, c in cells]
    index = extract(selection_table(rows), f"{bucket}/patches-{kind}", client=s3_client)
    index = index.to_pylist()
    assert [r["status"] for r in index] == ["written"] * 10
    moved = sum(r["bytes_read"] for r in index)
    frames = sum(int(lengths[r * across + c]) for r, c in cells)
    assert frames <= moved <= frames + 8 * len(cells) + header_allowance(paths), (moved, frames)
    assert moved < paths[0].stat().st_size / 4


def test_two_series_in_a_folder_and_a_deleted_instance_are_clear_errors(
    s3, bucket, series, tissue_rgb, tmp_path
):
    from wsidist.errors import SlideError

    paths = series["bot"]
    other = write_dicom_series(tmp_path / "o", [tissue_rgb[:300, :400]], prefix="other")
    url = put_folder(s3, [*paths, *other], f"{bucket}/two")
    with pytest.raises(SlideError, match="holds 2 DICOM series"):
        open_slide(url)
    with open_slide(f"{url}/{other[0].name}") as s:  # one file names its series
        assert s.dimensions == (400, 300) and s.remote_read == "range"
    with open_slide(f"{url}/{paths[1].name}") as s:
        assert s.dimensions == (2304, 1792) and s.level_count == 4
        s3.filesystem().rm(f"{url}/{paths[0].name}")
        with pytest.raises(SlideError, match="deleted while it was being read"):
            s.read_level(0, 0, 0, 512, 512)


@pytest.mark.parametrize("offsets", ("bot", "none"))
def test_series_without_number_of_frames_reads_like_local(
    s3, bucket, tissue_rgb, tmp_path, offsets
):
    small = np.ascontiguousarray(tissue_rgb[:600, :800])
    paths = write_dicom_series(
        tmp_path / "s", pyramid(small, 2), frame=128, offsets=offsets, drop=["NumberOfFrames"]
    )
    url = put_folder(s3, paths, f"{bucket}/no-frames-{offsets}")
    with open_slide(url) as remote, open_slide(str(paths[0])) as local:
        assert remote.level_count == local.level_count == 2
        assert_same_slide(remote, local)


def test_series_file_reader_is_pinned_and_follows_the_range_settings(s3, bucket, series):
    """The raw reader of a remote series' main file (``Slide.source_file``) is built as every
    other remote reader: its GETs carry If-Match with the ETag taken at open (a same-size
    replacement is a clear error, not other bytes) and the job's range settings cap them."""
    from wsidist.errors import SlideError
    from wsidist.io.ranged import RangeSpec
    from wsidist.io.staging_cache import CacheSpec

    paths = series["bot"]
    url = put_folder(s3, paths, f"{bucket}/pinned-reader")
    cap = 64 * 2**10
    spec = CacheSpec(range_reads=RangeSpec(max_concurrency=2, max_request_bytes=cap,
                                           cache_bytes=16 * cap))  # fmt: skip
    with open_slide(url, cache_dir=spec) as remote:
        with remote.source_file() as fh:
            main = next(p for p in paths if fh.url.endswith("/" + p.name))
            assert fh.size == main.stat().st_size > 6 * cap
            fh.prefetch([(o, 8192) for o in range(0, 6 * cap, 8192)])  # adjacent: coalesced
            assert len(fh.fetched) >= 6 and max(e - s for s, e in fh.fetched) <= cap
            assert fh.read(4096) == main.read_bytes()[:4096]
        changed = bytearray(main.read_bytes())
        changed[100:200] = bytes(100)  # same size, other bytes: only the ETag tells
        s3.filesystem().pipe_file(fh.url, bytes(changed))
        with remote.source_file() as fh, pytest.raises(SlideError, match="changed while"):
            fh.read(4096)


def test_series_source_version_is_stable_and_follows_every_instance(s3, bucket, series):
    """A series read by ranges has a version: the same on every open, another once any one
    instance (not only the main one) is rewritten; a ref taken before then refuses to open."""
    from wsidist.errors import SlideError
    from wsidist.io.remote import source_version

    paths = series["bot"]
    url = put_folder(s3, paths, f"{bucket}/versioned")
    with open_slide(url) as first, open_slide(url) as second:
        assert first.remote_read == second.remote_read == "range"
        version = first.source_version()
        assert version is not None and version == second.source_version()
        assert version == source_version(url)  # the folder holds only the series
        ref = first.ref
        assert ref.version == version
    smallest = min(paths, key=lambda p: p.stat().st_size)  # a lower level, not the main file
    changed = bytearray(smallest.read_bytes())
    changed[-100:] = bytes(100)  # same size, other bytes: only the ETag tells
    s3.filesystem().pipe_file(f"{url}/{smallest.name}", bytes(changed))
    with open_slide(url) as again:
        assert again.source_version() not in (None, version)
        assert again.source_version() == source_version(url)
    with pytest.raises(SlideError, match="changed while"):
        ref.open()

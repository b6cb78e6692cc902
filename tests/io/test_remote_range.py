"""Range reads of remote TIFF-family slides from a real S3 server (SeaweedFS, s3fs).

Pixels and metadata equal the local path's on every level of the shared slides; stage 1 from
s3:// equals the local run and moves little more than the tiles it decodes; extraction reads
the tiles of its boxes and the directory; a replaced object is read afresh, a deleted one is a
failed row; ``remote_read="stage"`` still downloads whole, and counts it.
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
import tifffile

from tests.helpers.paths import CMU, KIDNEY, MISSING_SLIDES, SLIDES, TCGA
from wsidist import layout
from wsidist.demo.spec import SynthSpec
from wsidist.demo.synth import write_synthetic_slide
from wsidist.errors import SlideError
from wsidist.io.ranged import DEFAULT_BLOCK_BYTES, coalesce
from wsidist.io.slide import open_slide
from wsidist.query.extract import extract
from wsidist.runtime.tasks import plan_tasks
from wsidist.stage1.driver import run_stage1

SHARED = [p for p in (CMU, TCGA, KIDNEY) if p.is_file()]
VOLATILE = {"url", "worker", "started_at", "finished_at", "seconds", "source_version",
            "bytes_read", "read_requests"}  # fmt: skip


@pytest.fixture(scope="module")
def bucket(s3) -> str:
    import secrets

    return s3.make_bucket(f"range-{secrets.token_hex(4)}")


@pytest.fixture(scope="module")
def slide_file(tmp_path_factory):
    """A generated 3-level Aperio-style slide (downsamples 1, 4, 16)."""
    path = tmp_path_factory.mktemp("range") / "multi.svs"
    write_synthetic_slide(path, SynthSpec(width=6000, height=4000, seed=7, texture="atlas"))
    return path


def upload(s3, path, url: str) -> str:
    s3.filesystem().put_file(str(path), url)
    return url


def structure_allowance(path) -> int:
    """What a directory read may cost: every byte that is not image data, plus one read-ahead
    block per page (an IFD read fetches ``DEFAULT_BLOCK_BYTES`` from the IFD on)."""
    with tifffile.TiffFile(path) as tif:
        data = sum(int(np.sum(p.databytecounts)) for p in tif.pages)
        pages = len(tif.pages)
    return path.stat().st_size - data + (pages + 1) * DEFAULT_BLOCK_BYTES


def level_tile_bytes(path, shape: tuple[int, int]) -> int:
    with tifffile.TiffFile(path) as tif:
        (page,) = [p for p in tif.pages if p.is_tiled and p.shape[:2] == shape]
        return int(np.sum(page.databytecounts))


def test_coalesce_merges_adjacent_and_caps_requests():
    assert coalesce([(0, 10), (10, 20), (25, 30)]) == [(0, 20), (25, 30)]
    assert coalesce([(25, 30), (0, 10), (10, 20)], gap_bytes=5) == [(0, 30)]
    assert coalesce([(0, 10), (10, 20), (20, 30)], max_bytes=20) == [(0, 20), (20, 30)]
    assert coalesce([(0, 100)], max_bytes=10) == [(0, 100)]


def test_range_reader_serves_reads_across_adjacent_spans_from_cache():
    import uuid

    import fsspec

    from wsidist.io.accounting import ReadMeter
    from wsidist.io.ranged import RangeReader

    fs = fsspec.filesystem("memory")
    path = f"/range-{uuid.uuid4().hex}/blob"
    data = bytes(range(256)) * 400
    fs.pipe(path, data)
    meter = ReadMeter()
    reader = RangeReader(fs, path, len(data), url=f"memory://{path}", meter=meter)
    reader.prefetch([(100, 900), (1000, 1000), (5000, 10)])  # two requests: 100–2000, 5000–5010
    assert (meter.read_requests, meter.bytes_read) == (2, 1910)
    reader.prefetch([(2000, 500)])
    assert reader.pread(2350, 150) == data[150:2500]  # three spans joined, nothing fetched
    assert meter.read_requests == 3
    reader.seek(99_000)
    assert reader.read(5000) == data[99_000:]  # a directory-style read: to the end at most
    assert meter.read_requests == 4


@pytest.mark.skipif(not SHARED, reason=MISSING_SLIDES)
@pytest.mark.parametrize("path", SHARED, ids=lambda p: p.name)
def test_shared_slide_every_level_identical_to_local(s3, bucket, path):
    url = upload(s3, path, f"{bucket}/shared/{path.name}")
    with open_slide(str(path)) as local, open_slide(url) as remote:
        assert remote.remote_read == "range" and remote.path == url
        assert remote.file_bytes == path.stat().st_size
        assert (remote.backend, remote.vendor) == (local.backend, local.vendor)
        for name in ("level_dimensions", "level_downsamples", "mpp_x", "mpp_y",
                     "objective_power", "associated_images"):  # fmt: skip
            assert getattr(remote, name) == getattr(local, name), name
        dropped = {k: v for k, v in local.properties.items() if k != "openslide.quickhash-1"}
        assert dict(remote.properties) == dropped
        opened = remote.meter.bytes_read
        assert opened < path.stat().st_size / 4  # the directory, not the file
        for level, (w, h) in enumerate(local.level_dimensions):
            assert np.array_equal(remote.read_level(level, 0, 0, w, h),
                                  local.read_level(level, 0, 0, w, h)), level  # fmt: skip
            # sub-pixel origins (OpenSlide paints those) and a box over the edge
            for x, y in ((7, 13), (w * 2 // 3, h // 2)):
                assert np.array_equal(remote.read_region(x, y, level, (301, 203)),
                                      local.read_region(x, y, level, (301, 203))), (level, x)  # fmt: skip
        for name in local.associated_images:
            assert np.array_equal(remote.associated_image(name), local.associated_image(name))
        assert np.array_equal(remote.thumbnail(8), local.thumbnail(8))


def test_whole_level_read_is_coalesced_into_few_requests(s3, bucket, slide_file):
    url = upload(s3, slide_file, f"{bucket}/coalesce/{slide_file.name}")
    with open_slide(url) as s, open_slide(str(slide_file)) as local:
        before = s.meter.read_requests, s.meter.bytes_read
        w, h = s.level_dimensions[0]
        assert np.array_equal(s.read_level(0, 0, 0, w, h), local.read_level(0, 0, 0, w, h))
        requests = s.meter.read_requests - before[0]
        moved = s.meter.bytes_read - before[1]
    tiles = level_tile_bytes(slide_file, (h, w))
    assert requests <= 2, requests  # 384 adjacent tiles: one or two ranged GETs, not 384
    assert tiles <= moved <= tiles + DEFAULT_BLOCK_BYTES


def test_stage1_from_s3_equals_local_and_reads_the_level_it_decodes(
    s3, s3_client, bucket, slide_file, tmp_path
):
    url = upload(s3, slide_file, f"{bucket}/stage1/{slide_file.name}")
    local = run_stage1([str(slide_file)], str(tmp_path / "local"), client=s3_client)
    remote = run_stage1([url], f"{bucket}/out-stage1", client=s3_client)
    lrow, rrow = local.to_pylist()[0], remote.to_pylist()[0]
    assert rrow["status"] == "ok", rrow["error"]
    assert {k: v for k, v in rrow.items() if k not in VOLATILE} == {
        k: v for k, v in lrow.items() if k not in VOLATILE
    }
    assert (lrow["bytes_read"], lrow["read_requests"]) == (0, 0)  # a local file moves nothing
    fs, sid = s3.filesystem(), rrow["slide_id"]
    remote_out = f"{bucket}/out-stage1"
    assert (
        fs.cat(f"{remote_out}/{layout.mask_key(sid)}")
        == (tmp_path / "local" / layout.mask_key(sid)).read_bytes()
    )
    ltiles = pq.read_table(tmp_path / "local" / layout.tiles_key(sid))
    rtiles = pq.read_table(io.BytesIO(fs.cat(f"{remote_out}/{layout.tiles_key(sid)}")))
    assert rtiles.num_rows > 0 and rtiles.equals(ltiles)
    with open_slide(str(slide_file)) as s:
        level = s.best_level_for_downsample(32)
        w, h = s.level_dimensions[level]
    decoded = level_tile_bytes(slide_file, (h, w))
    assert 0 < rrow["bytes_read"] <= 2 * decoded + structure_allowance(slide_file)
    assert rrow["bytes_read"] < slide_file.stat().st_size / 20


@pytest.fixture(scope="module")
def small_slides(tmp_path_factory):
    """Two small generated slides of different sizes (quick jobs)."""
    folder = tmp_path_factory.mktemp("range-small")
    paths = [folder / "a.svs", folder / "b.svs"]
    write_synthetic_slide(paths[0], SynthSpec(width=2400, height=1600, seed=9, texture="atlas"))
    write_synthetic_slide(paths[1], SynthSpec(width=2000, height=1200, seed=10, texture="atlas"))
    return paths


@pytest.fixture(scope="module")
def large_slide(tmp_path_factory):
    path = tmp_path_factory.mktemp("range-large") / "large.svs"
    write_synthetic_slide(path, SynthSpec(width=9000, height=7000, seed=8, texture="atlas"))
    return path


def test_extract_reads_only_the_tiles_of_its_boxes(s3, s3_client, bucket, large_slide):
    from tests.query.test_extract import selection_table

    url = upload(s3, large_slide, f"{bucket}/large/{large_slide.name}")
    with tifffile.TiffFile(large_slide) as tif:
        page = tif.pages.first
        across, counts, tile = -(-page.imagewidth // 256), page.databytecounts, 256
    cells = [(3, 5), (10, 2), (20, 30), (7, 7), (23, 1), (15, 33), (25, 9), (1, 34), (26, 30),
             (12, 18)]  # fmt: skip
    rows = [("large", url, c * tile, r * tile, tile, tile) for r, c in cells]
    index = extract(selection_table(rows), f"{bucket}/patches", client=s3_client).to_pylist()
    assert [r["status"] for r in index] == ["written"] * 10
    moved = sum(r["bytes_read"] for r in index)
    tiles = sum(int(counts[r * across + c]) for r, c in cells)
    assert tiles <= moved <= tiles + structure_allowance(large_slide)
    assert moved < large_slide.stat().st_size / 50
    with open_slide(url) as s:
        opening = s.meter.read_requests
    # the ten tiles in one concurrent batch: at most one ranged GET each, after the directory
    assert sum(r["read_requests"] for r in index) <= opening + len(cells)


def test_changed_object_is_read_afresh(s3, s3_client, bucket, small_slides):
    url = upload(s3, small_slides[0], f"{bucket}/changing/slide.svs")
    out = f"{bucket}/out-changing"
    first = run_stage1([url], out, client=s3_client).to_pylist()[0]
    with open_slide(url) as s:
        assert s.dimensions == (2400, 1600)
    upload(s3, small_slides[1], url)  # same key, another object (a new ETag)
    with open_slide(url) as s:
        assert s.dimensions == (2000, 1200)
    second = run_stage1([url], out, client=s3_client).to_pylist()[0]
    assert (first["width"], second["width"]) == (2400, 2000)
    assert not second["skipped"] and second["source_version"] != first["source_version"]
    assert second["bytes_read"] > 0


def test_deleted_object_is_a_failed_row(s3, s3_client, bucket, small_slides):
    keep = upload(s3, small_slides[0], f"{bucket}/deleting/keep.svs")
    gone = upload(s3, small_slides[1], f"{bucket}/deleting/gone.svs")
    tasks = plan_tasks([f"{bucket}/deleting/"])  # listed while both exist
    s3.filesystem().rm(gone)
    rows = {
        r["url"]: r for r in run_stage1(tasks, f"{bucket}/out-del", client=s3_client).to_pylist()
    }
    assert rows[keep]["status"] == "ok"
    assert rows[gone]["status"] == "failed" and "not found" in rows[gone]["error"]
    assert gone in rows[gone]["error"]


def test_object_deleted_while_open_is_a_clear_error(s3, bucket, slide_file):
    url = upload(s3, slide_file, f"{bucket}/open-del/{slide_file.name}")
    with open_slide(url) as s:
        s3.filesystem().rm(url)
        with pytest.raises(SlideError, match="deleted while it was being read"):
            s.read_level(0, 0, 0, 1024, 1024)


def test_stage_mode_downloads_whole_and_counts_it(s3, bucket, slide_file, tmp_path):
    url = upload(s3, slide_file, f"{bucket}/staged/{slide_file.name}")
    size = slide_file.stat().st_size
    with open_slide(url, cache_dir=str(tmp_path), remote_read="stage") as s:
        assert s.remote_read == "stage" and s.path.startswith(str(tmp_path))
        assert s.meter.bytes_read == size
    with open_slide(url, cache_dir=str(tmp_path), remote_read="stage") as s:
        assert s.meter.bytes_read == 0  # a cache hit moves nothing


@pytest.mark.skipif(not SLIDES.is_dir(), reason=MISSING_SLIDES)
def test_openslide_only_format_is_staged(s3, bucket, tmp_path):
    from tests.helpers.paths import NDPI

    if not NDPI.is_file():
        pytest.skip(MISSING_SLIDES)
    url = upload(s3, NDPI, f"{bucket}/ndpi/{NDPI.name}")
    with open_slide(url, cache_dir=str(tmp_path)) as s, open_slide(str(NDPI)) as local:
        assert s.remote_read == "stage" and s.meter.bytes_read == NDPI.stat().st_size
        assert np.array_equal(s.thumbnail(16), local.thumbnail(16))

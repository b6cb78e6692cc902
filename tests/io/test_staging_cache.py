"""The bounded staging cache on a real S3 server: LRU by bytes, shared by processes, never
evicting a slide some process has open, cleaning dead downloads, keyed by the object's ETag."""

from __future__ import annotations

import multiprocessing as mp
import os
import secrets
from pathlib import Path

import pytest

from wsidist.errors import SlideError, StagingError
from wsidist.io.remote import CacheSpec, lease, stage
from wsidist.io.slide import open_slide
from wsidist.io.staging_cache import acquire

SIZE = 200_000  # bytes of each test object


def _cache_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and p.parent != root)


@pytest.fixture(scope="module")
def objects(s3):
    """Five distinct objects of SIZE bytes in a bucket of this module: their URLs."""
    bucket = s3.make_bucket(f"cache-{secrets.token_hex(4)}")
    s3.filesystem().pipe({f"{bucket[5:]}/o{i}.bin": bytes([i + 1]) * SIZE for i in range(5)})
    return [f"{bucket}/o{i}.bin" for i in range(5)]


def test_lru_by_bytes_within_the_bound(objects, tmp_path):
    cache = CacheSpec(str(tmp_path), max_gb=2.5 * SIZE / 1e9, wait_s=1)
    for i, url in enumerate(objects[:3]):
        with lease(url, cache) as held:
            assert held.bytes_downloaded == SIZE
            assert Path(held.path).read_bytes() == bytes([i + 1]) * SIZE
            assert _cache_bytes(tmp_path) <= cache.max_bytes
    entries = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(entries) == 2  # the first object was evicted for the third
    with lease(objects[2], cache) as held:  # a hit: nothing fetched, one look-up
        assert held.bytes_downloaded == 0 and Path(held.path).read_bytes() == bytes([3]) * SIZE
        assert (held.requests, held.files_downloaded) == (1, 0)
    with lease(objects[1], cache) as held:
        assert held.bytes_downloaded == 0
    with lease(objects[3], cache) as held:  # evicts the least recently used: objects[2]
        assert held.bytes_downloaded == SIZE and (held.requests, held.files_downloaded) == (2, 1)
    with lease(objects[1], cache) as held:
        assert held.bytes_downloaded == 0
    with lease(objects[2], cache) as held:
        assert held.bytes_downloaded == SIZE
    assert _cache_bytes(tmp_path) <= cache.max_bytes
    assert isinstance(stage(objects[2], cache), str)  # the plain path API stays


def _hold(url: str, cache: CacheSpec, ready, release) -> None:
    with lease(url, cache) as held:
        ready.put(held.path)
        release.wait(60)


def test_a_file_open_in_another_process_is_never_evicted(objects, tmp_path):
    cache = CacheSpec(str(tmp_path), max_gb=1.5 * SIZE / 1e9, wait_s=0.5)
    ctx = mp.get_context("spawn")
    ready, release = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_hold, args=(objects[0], cache, ready, release))
    proc.start()
    try:
        held_path = ready.get(timeout=60)
        with pytest.raises(StagingError, match="cache-max-gb"):
            lease(objects[1], cache)  # no room: the only entry is open in the other process
        assert Path(held_path).read_bytes() == bytes([1]) * SIZE
        release.set()
        proc.join(30)
        with lease(objects[1], cache) as held:  # closed now: evicted for the new one
            assert held.bytes_downloaded == SIZE
        assert not Path(held_path).exists()
    finally:
        release.set()
        proc.join(30)


def _die_mid_download(cache: CacheSpec) -> None:
    def fetch(entry: Path):
        (entry / "partial.bin").write_bytes(b"x" * SIZE)
        os._exit(1)  # the process dies mid-download: its lock ends with it

    acquire(cache, "dead" * 8, SIZE, "partial.bin", fetch)


def test_orphaned_downloads_are_cleaned_and_a_live_one_is_kept(objects, tmp_path):
    cache = CacheSpec(str(tmp_path), max_gb=2.5 * SIZE / 1e9, wait_s=0.5)
    ctx = mp.get_context("spawn")
    proc = ctx.Process(target=_die_mid_download, args=(cache,))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 1 and (tmp_path / ("dead" * 8) / "partial.bin").exists()
    with lease(objects[0], cache) as held:
        assert held.bytes_downloaded == SIZE
    assert not (tmp_path / ("dead" * 8)).exists()
    assert _cache_bytes(tmp_path) <= cache.max_bytes


def test_a_changed_object_is_fetched_fresh(s3, s3_bucket, tmp_path):
    fs = s3.filesystem()
    key = f"{s3_bucket.removeprefix('s3://')}/changing.bin"
    url = f"s3://{key}"
    cache = CacheSpec(str(tmp_path))
    fs.pipe_file(key, b"a" * SIZE)
    with lease(url, cache) as first:
        assert first.bytes_downloaded == SIZE
    fs.pipe_file(key, b"b" * SIZE)  # same size, another ETag
    with lease(url, cache) as second:
        assert second.bytes_downloaded == SIZE and second.path != first.path
        assert Path(second.path).read_bytes() == b"b" * SIZE


def _stage_count(url: str, cache: CacheSpec, out) -> None:
    with lease(url, cache) as held:
        out.put(held.bytes_downloaded)


def test_processes_staging_one_object_download_it_once(objects, tmp_path):
    cache = CacheSpec(str(tmp_path))
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_stage_count, args=(objects[4], cache, out)) for _ in range(2)]
    for p in procs:
        p.start()
    fetched = sorted(out.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(30)
    assert fetched == [0, SIZE]


def test_a_slide_larger_than_the_cache_is_a_clear_error(objects, tmp_path):
    cache = CacheSpec(str(tmp_path), max_gb=SIZE / 2 / 1e9)
    with pytest.raises(SlideError, match=r"larger than the whole staging cache.*--cache-max-gb"):
        open_slide(objects[0], cache_dir=cache)
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]


def test_a_process_keeps_one_idle_staged_slide_open(s3, tmp_path):
    from wsidist.demo.synth import SynthSpec, write_synthetic_slide
    from wsidist.io.slide import SlideRef
    from wsidist.io.slide_cache import SlideCache

    bucket = s3.make_bucket(f"idle-{secrets.token_hex(4)}")
    refs = []
    cache = CacheSpec(str(tmp_path / "cache"))
    for i in range(3):
        path = tmp_path / f"s{i}.svs"
        write_synthetic_slide(path, SynthSpec(width=600, height=400, seed=i, n_blobs=1))
        s3.filesystem().put_file(str(path), f"{bucket[5:]}/s{i}.svs")
        refs.append(
            SlideRef(f"{bucket}/s{i}.svs", cache, remote_read="stage")
        )  # staged, not ranged
    slides = SlideCache(max_open=4)
    for ref in refs:
        with slides.lease(ref) as slide:
            assert slide.staged.pinned
    assert len(slides) == 1  # idle staged slides pin cache entries: only the latest stays
    slides.close()


def test_other_files_in_the_cache_folder_are_left_alone(objects, tmp_path):
    (tmp_path / "my-slides").mkdir()
    (tmp_path / "my-slides" / "a.svs").write_bytes(b"x" * 10)
    (tmp_path / "notes.txt").write_text("mine")
    with lease(objects[0], CacheSpec(str(tmp_path), wait_s=0.5)) as held:
        assert held.bytes_downloaded == SIZE
    assert (tmp_path / "my-slides" / "a.svs").exists() and (tmp_path / "notes.txt").exists()


def test_two_series_of_one_folder_share_an_entry_each_with_its_own_path(s3, tmp_path):
    bucket = s3.make_bucket(f"dcm-{secrets.token_hex(4)}")
    s3.filesystem().pipe({f"{bucket[5:]}/series/a-0.dcm": b"a" * 100,
                          f"{bucket[5:]}/series/b-0.dcm": b"b" * 100})  # fmt: skip
    cache = CacheSpec(str(tmp_path))
    with (
        lease(f"{bucket}/series/a-0.dcm", cache) as a,
        lease(f"{bucket}/series/b-0.dcm", cache) as b,
    ):
        assert (a.bytes_downloaded, b.bytes_downloaded) == (200, 0)  # one folder, staged once
        assert Path(a.path).read_bytes() == b"a" * 100 and Path(b.path).read_bytes() == b"b" * 100


def test_uses_closer_than_the_file_systems_clock_tick_keep_their_order(tmp_path):
    # a file system stamps times with its clock tick (a few ms): two uses within one tick tied
    # and the least recently used was then chosen by key (a hit evicted, fetched again)
    from wsidist.io.staging_cache import _hit

    entries = []
    for name in ("b", "a"):  # "a" sorts first: a tie would put it first
        (tmp_path / name).mkdir()
        (tmp_path / name / ".entry.json").write_text("{}")
        entries.append(tmp_path / name)
    for _ in range(50):
        assert _hit(entries[0]) and _hit(entries[1])
        stamps = [(e / ".entry.json").stat().st_mtime_ns for e in entries]
        assert stamps[0] < stamps[1]

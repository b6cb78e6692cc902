"""Range reads are pinned to the ETag taken at open (If-Match on every GET, which SeaweedFS
honours), a slide task sends one HEAD for its slide (version check and open share it), and the
job's range settings bound the requests."""

from __future__ import annotations

import secrets

import pytest
import s3fs

from wsidist.demo.spec import SynthSpec
from wsidist.demo.synth import write_synthetic_slide
from wsidist.io.ranged import RangeSpec
from wsidist.io.slide import open_slide
from wsidist.io.staging_cache import CacheSpec
from wsidist.io.storage import Store
from wsidist.runtime.tasks import SlideTask, run_slide_task
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.worker import process_slide


@pytest.fixture(scope="module")
def slide_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("pinned") / "s.svs"
    write_synthetic_slide(path, SynthSpec(width=3000, height=2000, seed=12, texture="atlas"))
    return path.read_bytes()


@pytest.fixture
def url(s3, slide_bytes) -> str:
    url = f"{s3.make_bucket(f'pin-{secrets.token_hex(4)}')}/s.svs"
    s3.filesystem().pipe_file(url, slide_bytes)
    return url


def test_same_size_replacement_mid_read_is_a_failed_row(s3, url, slide_bytes, tmp_path):
    changed = bytearray(slide_bytes)
    changed[-6000:-5000] = bytes(1000)  # same size, other bytes: only the ETag tells

    def work() -> dict:
        with open_slide(url) as slide:
            assert slide.remote_read == "range"
            slide.read_region(0, 0, 0, (256, 256))
            s3.filesystem().pipe_file(url, bytes(changed))
            slide.read_region(2048, 1536, 0, (512, 464))
        return {}

    row = run_slide_task(
        SlideTask(url, "s"), work, store=Store(str(tmp_path)), config_hash="h", status_key=None
    )
    assert row["status"] == "failed"
    assert "changed while it was being read" in row["error"] and url in row["error"]


def test_a_slide_task_sends_one_head(s3, url, tmp_path, monkeypatch):
    calls: list[str] = []
    real = s3fs.S3FileSystem._call_s3

    async def counted(self, method, *args, **kwargs):
        calls.append(method if isinstance(method, str) else method.__name__)
        return await real(self, method, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", counted)
    row = process_slide(SlideTask(url, "s"), Stage1Config(), Store(str(tmp_path)))
    assert row["status"] == "ok", row.get("error")
    heads = [c for c in calls if c in ("head_object", "list_objects_v2", "list_objects")]
    assert heads == ["head_object"], calls
    assert "get_object" in calls


def test_range_settings_bound_the_requests(s3, url):
    """A smaller request cap (the job's ``--range-request-mb``) means more, smaller GETs."""
    counts = {}
    for cap in (8 * 2**20, 2**16):
        spec = CacheSpec(range_reads=RangeSpec(2, cap, 4 * 2**20 if cap < 2**20 else 32 * 2**20))
        with open_slide(url, cache_dir=spec) as slide:
            before = slide.meter.read_requests
            w, h = slide.level_dimensions[0]
            slide.read_region(0, 0, 0, (w, h // 2))
            counts[cap] = slide.meter.read_requests - before
    assert counts[2**16] > 4 * counts[8 * 2**20]

"""Remote staging: fsspec URLs are fetched once into the cache, refetched when changed."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import fsspec
import pytest

from tests.helpers.paths import CMU, DICOM, KIDNEY, MISSING_SLIDES, SLIDES
from wsidist.errors import SlideError
from wsidist.io.slide import open_slide

needs_slides = pytest.mark.skipif(not SLIDES.is_dir(), reason=MISSING_SLIDES)


# -- staging, pickling, table -----------------------------------------------------------------------


@needs_slides
def test_memory_url_is_staged_once_and_refetched_when_changed(tmp_path, monkeypatch):
    fs = fsspec.filesystem("memory")
    key = f"/wsidist-test-{uuid.uuid4().hex}/CMU-1-Small-Region.svs"
    fs.pipe(key, CMU.read_bytes())
    url = f"memory://{key}"
    calls = []
    original = type(fs).get_file

    def counting_get_file(self, rpath, lpath, **kw):
        calls.append(rpath)
        return original(self, rpath, lpath, **kw)

    monkeypatch.setattr(type(fs), "get_file", counting_get_file)
    with open_slide(url, cache_dir=str(tmp_path), remote_read="stage") as s:
        first = s.path
        assert s.url == url and s.dimensions == (2220, 2967) and s.vendor == "aperio"
    assert Path(first).is_relative_to(tmp_path) and Path(first).name == "CMU-1-Small-Region.svs"
    with open_slide(url, cache_dir=str(tmp_path), remote_read="stage") as s:
        assert s.path == first
    assert len(calls) == 1
    assert not any(p.name.startswith(".tmp") for p in Path(first).parent.iterdir())
    fs.pipe(key, KIDNEY.read_bytes())  # the object changed: a new cache entry
    with open_slide(url, cache_dir=str(tmp_path), remote_read="stage") as s:
        assert s.path != first and s.backend == "tifffile"
    assert len(calls) == 2
    fs.rm(key)


@needs_slides
def test_memory_dicom_directory_is_staged(tmp_path):
    fs = fsspec.filesystem("memory")
    root = f"/wsidist-test-{uuid.uuid4().hex}/cmu-dicom"
    for f in DICOM.glob("*.dcm"):
        fs.pipe(f"{root}/{f.name}", f.read_bytes())
    with open_slide(f"memory://{root}", cache_dir=str(tmp_path), remote_read="stage") as s:
        assert s.vendor == "dicom" and s.level_count == 12 and s.remote_read == "stage"
    with open_slide(f"memory://{root}", cache_dir=str(tmp_path)) as s:  # or read by ranges
        assert s.vendor == "dicom" and s.level_count == 12 and s.remote_read == "range"
    fs.rm(root, recursive=True)


def test_missing_remote_object(tmp_path):
    with pytest.raises(SlideError, match="not found: memory://"):
        open_slide(f"memory:///wsidist-test-{uuid.uuid4().hex}/x.svs", cache_dir=str(tmp_path))


@needs_slides
def test_file_url_is_not_copied(tmp_path):
    local = tmp_path / "kidney.tif"
    shutil.copyfile(KIDNEY, local)
    with open_slide(local.as_uri(), cache_dir=str(tmp_path / "cache")) as s:
        assert s.path == str(local) and s.dimensions == (1493, 901)
    assert not (tmp_path / "cache").exists()

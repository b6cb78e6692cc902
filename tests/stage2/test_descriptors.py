"""The rewrite keeps open descriptors flat over many slides, on the workers and the scheduler
(a real LocalCluster; descriptors counted with psutil). Blocks carry a SlideRef and borrow
their process's open slide; a collected slide or direct reader closes its files."""

from __future__ import annotations

import gc
import os
import shutil

import psutil
import pytest

from tests.helpers.paths import CMU
from wsidist.demo.synth import SynthSpec, write_synthetic_slide
from wsidist.io.backends.direct import DirectTiffReader
from wsidist.io.slide import open_slide
from wsidist.io.slide_cache import SlideCache
from wsidist.stage2.config import RewriteConfig
from wsidist.stage2.driver import run_rewrite


def _fds(client) -> tuple[list[int], int]:
    """Open descriptors of each worker process and of this process (the scheduler's)."""
    workers = client.run(lambda: psutil.Process().num_fds())
    return sorted(workers.values()), psutil.Process().num_fds()


@pytest.fixture(scope="module")
def many_slides(tmp_path_factory):
    """Thirteen slides of 4 blocks each (copies of one generated slide, each its own URL)."""
    folder = tmp_path_factory.mktemp("fd_slides")
    first = folder / "s00.svs"
    write_synthetic_slide(first, SynthSpec(width=2300, height=2100, seed=41, n_blobs=3))
    paths = [first]
    for i in range(1, 13):
        paths.append(folder / f"s{i:02d}.svs")
        shutil.copyfile(first, paths[-1])
    return [str(p) for p in paths]


@pytest.mark.slow
def test_descriptors_stay_flat_over_many_slides(client, many_slides, tmp_path):
    config = RewriteConfig(codec="jpeg")
    warm = run_rewrite(many_slides[:5], str(tmp_path / "warm"), config, client=client)
    assert set(warm.column("status").to_pylist()) == {"ok"}
    before_workers, before_scheduler = _fds(client)
    table = run_rewrite(many_slides[5:], str(tmp_path / "out"), config, client=client)
    assert set(table.column("status").to_pylist()) == {"ok"}
    assert min(table.column("n_tissue_tiles").to_pylist()) > 0
    after_workers, after_scheduler = _fds(client)
    print(f"descriptors: workers {before_workers} -> {after_workers}, "
          f"scheduler {before_scheduler} -> {after_scheduler} over 8 slides")  # fmt: skip
    for before, after in zip(before_workers, after_workers, strict=True):
        assert after <= before + 5, (before_workers, after_workers)  # main: +9 to +11
    assert after_scheduler <= before_scheduler + 8, (before_scheduler, after_scheduler)  # main: +17


def _open_on(path) -> int:
    """Descriptors of this process open on ``path`` (the session's cluster opens and closes
    sockets of its own in the background, so the process total is not a stable count)."""
    target = os.path.realpath(path)
    return sum(os.path.realpath(f.path) == target for f in psutil.Process().open_files())


def test_a_collected_slide_or_reader_closes_its_descriptors(real_slides_dir):
    assert _open_on(CMU) == 0
    for _ in range(20):
        open_slide(str(CMU)).read_region(0, 0, 0, (64, 64))  # never closed by the caller
        DirectTiffReader(str(CMU)).read_level(0, 0, 0, 64, 64)
        assert _open_on(CMU) <= 2  # the two just opened, at most
    gc.collect()
    assert _open_on(CMU) == 0


def test_slide_cache_bounds_open_slides_and_never_closes_a_leased_one(tmp_path, real_slides_dir):
    paths = []
    for i in range(6):
        paths.append(tmp_path / f"c{i}.svs")
        shutil.copyfile(CMU, paths[-1])
    cache = SlideCache(max_open=2)
    refs = []
    for p in paths:
        with open_slide(str(p)) as s:
            refs.append(s.ref)
    with cache.lease(refs[0]) as held:
        for ref in refs[1:]:
            with cache.lease(ref) as slide:
                assert slide.read_region(0, 0, 0, (32, 32)).shape == (32, 32, 3)
        assert len(cache) <= 3  # two idle at most, plus the leased one
        assert held.read_region(0, 0, 0, (16, 16)).shape == (16, 16, 3)  # still open
    with cache.lease(refs[-1]) as again, cache.lease(refs[-1]) as same:
        assert again is same  # one open slide per reference
    assert len(cache) == 2
    cache.close()
    assert len(cache) == 0 and sum(_open_on(p) for p in paths) == 0
    # a reference to a file replaced since refuses to read the other file
    os.replace(paths[1], paths[0])
    os.utime(paths[0], ns=(10**18, 10**18))
    with pytest.raises(Exception, match="changed"), cache.lease(refs[0]):
        pass

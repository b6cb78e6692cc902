"""Memory is bounded by configuration, not by what a file claims: slides whose needs exceed the
per-slide budget are refused before any work with a reason naming the size, while worker RSS
(psutil) stays flat. Crafted JPEG TIFFs that declare 200000² and 400000² px in a few MB, a real
LocalCluster, and the estimates checked against measured peaks."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time

import psutil
import pytest
from distributed import Client, LocalCluster

from tests.helpers.paths import REPO
from wsidist.demo.crafted import write_sparse_giant
from wsidist.io.storage import Store
from wsidist.runtime.tasks import SlideTask
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.driver import run_stage1
from wsidist.stage1.memory import stage1_needs
from wsidist.stage1.worker import process_slide
from wsidist.stage2.config import RewriteConfig
from wsidist.stage2.driver import run_rewrite
from wsidist.stage2.worker import MASK_BYTES_PER_PX, MASK_READ_BYTES

MB = 2**20


@pytest.fixture(scope="module")
def giants(tmp_path_factory):
    folder = tmp_path_factory.mktemp("giants")
    return {
        n: write_sparse_giant(folder / f"giant-{n // 1000}k.tiff", n, n) for n in (200_000, 400_000)
    }


class RssSampler:
    """Peak resident memory of some processes, sampled every 20 ms in a thread."""

    def __init__(self, pids: list[int]) -> None:
        self.procs = [psutil.Process(p) for p in pids]
        self.base = {p.pid: p.memory_info().rss for p in self.procs}
        self.peak = dict(self.base)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for p in self.procs:
                with contextlib.suppress(psutil.Error):
                    self.peak[p.pid] = max(self.peak[p.pid], p.memory_info().rss)
            time.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def growth_mb(self) -> list[float]:
        return [(self.peak[p] - self.base[p]) / MB for p in self.base]


@pytest.mark.slow
def test_giants_are_refused_before_any_work_and_worker_rss_stays_flat(giants, tmp_path):
    urls = [str(p) for p in giants.values()]
    for p in giants.values():
        assert p.stat().st_size < 30 * MB  # tiny files claiming terabytes
    # a memory limit on the workers keeps this machine safe whatever the code under test does
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
            memory_limit="3GiB", silence_logs=40,
        ) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        pids = list(client.run(os.getpid).values())
        t0 = time.perf_counter()
        with RssSampler(pids) as rss:
            table = run_stage1(urls, str(tmp_path / "out"), client=client)
            rewrite = run_rewrite(urls, str(tmp_path / "out"), RewriteConfig(), client=client)
        seconds = time.perf_counter() - t0
    growth = rss.growth_mb()
    print(f"worker RSS growth {[round(g) for g in growth]} MB, {seconds:.1f} s for 2 giants × 2")
    for rows in (table.to_pylist(), rewrite.to_pylist()):
        by_id = {r["slide_id"]: r for r in rows}
        for n in (200_000, 400_000):
            row = by_id[f"giant-{n // 1000}k"]
            assert row["status"] == "failed", row
            assert "memory budget of 1.00 GB" in row["error"], row["error"]
            assert f"({n}×{n} px)" in row["error"] and "GB" in row["error"]
    assert (
        "6250×6250 px image at scale 32"
        in {r["slide_id"]: r for r in table.to_pylist()}["giant-200k"]["error"]
    )
    assert max(growth) < 400, growth  # refused before any pixel: no decode, no thumbnail


def test_the_budget_is_configurable(tmp_path):
    slide = write_sparse_giant(tmp_path / "g32k.tiff", 32_000, 32_000)
    task = SlideTask(str(slide), "g32k")
    ok = process_slide(task, Stage1Config(scale=32), Store(str(tmp_path / "a")))
    assert ok["status"] == "ok", ok["error"]
    small = process_slide(
        task, Stage1Config(scale=32, memory_budget_mb=200), Store(str(tmp_path / "b"))
    )
    assert small["status"] == "failed"
    assert "over the per-slide memory budget of 200 MB" in small["error"]
    assert "1000×1000 px image at scale 32" in small["error"]
    assert not (tmp_path / "b" / "masks").exists()  # refused before any output
    assert Stage1Config(memory_budget_mb=200).config_hash() == Stage1Config().config_hash()


_MEASURE = """
import json, sys, threading, time
import psutil
from wsidist.io.slide import open_slide
from wsidist.stage1.analysis import analyse_slide
from wsidist.stage1.config import Stage1Config
from wsidist.stage2.config import RewriteConfig
from wsidist.stage2.worker import computed_mask
me = psutil.Process()
with open_slide(sys.argv[1]) as slide:
    base = peak = me.memory_info().rss
    done = threading.Event()
    def sample():
        global peak
        while not done.is_set():
            peak = max(peak, me.memory_info().rss)
            time.sleep(0.005)
    watcher = threading.Thread(target=sample)
    watcher.start()
    scale = float(sys.argv[3])
    if sys.argv[2] == "stage1":
        analyse_slide(slide, Stage1Config(scale=scale, memory_budget_mb=10**6))
    else:
        computed_mask(slide, RewriteConfig(scale=scale))
    done.set()
    watcher.join()
print(json.dumps(peak - base))
"""


@pytest.fixture(scope="module")
def dense_slide(tmp_path_factory):
    """8000 × 8000 px, more than half of it tissue: 2000 × 2000 px at scale 4."""
    from wsidist.demo.spec import SynthSpec
    from wsidist.demo.synth import write_synthetic_slide

    path = tmp_path_factory.mktemp("dense") / "dense.svs"
    write_synthetic_slide(
        path, SynthSpec(width=8000, height=8000, seed=3, n_blobs=6, blob_size=2.0)
    )
    return path


@pytest.mark.parametrize("kind", ["sparse", pytest.param("dense", marks=pytest.mark.long)])
@pytest.mark.parametrize("work", ["stage1", "mask"])
def test_the_estimates_bound_the_measured_peak(tmp_path, request, work, kind):
    """The budget's constants are upper bounds of the real peak on a glass-only giant and on a
    tissue-dense slide (the detector's work grows with the tissue), and not wildly above the
    peak of the dense one."""
    if kind == "sparse":
        n, scale = 64_000, 32  # the image at scale 32 is 2000 × 2000 px
        slide = write_sparse_giant(tmp_path / "g64k.tiff", n, n)
    else:
        n, scale = 8000, 4
        slide = request.getfixturevalue("dense_slide")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(slide), work, str(scale)],
        capture_output=True, text=True, env=env, timeout=600, check=True,
    )  # fmt: skip
    measured = json.loads(res.stdout.strip().splitlines()[-1])
    if work == "stage1":
        estimate = sum(stage1_needs(n, n, scale).values())
    else:
        estimate = 2000 * 2000 * MASK_BYTES_PER_PX + MASK_READ_BYTES
    print(f"{work} {kind}: measured peak {measured / MB:.0f} MB, estimate {estimate / MB:.0f} MB")
    assert measured <= estimate
    if kind == "dense":
        assert estimate <= 3 * measured

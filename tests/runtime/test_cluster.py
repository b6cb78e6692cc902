"""The cluster side: the dashboard link, progress events from a worker to the driver, and the
job's cluster options."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

import pytest

from wsidist.errors import ConfigError
from wsidist.runtime.cluster import dask_client, progress_reporter, subscribe_progress


def test_dashboard_link_is_served():
    with dask_client(workers=1, dashboard=True) as client:
        link = client.dashboard_link
        assert link.startswith("http://127.0.0.1:") and link.endswith("/status")
        health = link.rsplit("/", 1)[0] + "/health"
        with urllib.request.urlopen(health, timeout=10) as response:
            assert response.read() == b"ok"


def test_progress_reaches_the_driver(client):
    messages: list[dict] = []
    subscribe_progress(client, messages.append)

    def slide_task(n: int) -> int:
        report = progress_reporter("slide-a", min_interval_s=0.0)
        for done in range(1, n + 1):
            report(done, n)
        return n

    assert client.submit(slide_task, 5, pure=False).result() == 5
    deadline = time.monotonic() + 10
    while len(messages) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [m["done"] for m in messages] == [1, 2, 3, 4, 5]
    assert {(m["slide_id"], m["total"]) for m in messages} == {("slide-a", 5)}


def test_progress_is_throttled_but_ends_with_the_last(client):
    messages: list[dict] = []
    subscribe_progress(client, messages.append)

    def slide_task() -> None:
        report = progress_reporter("slide-b", min_interval_s=60)
        for done in range(1, 101):
            report(done, 100)

    client.submit(slide_task, pure=False).result()
    deadline = time.monotonic() + 10
    while not any(m["done"] == 100 for m in messages) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [m["done"] for m in messages if m["slide_id"] == "slide-b"] == [1, 100]


def test_no_reporter_outside_a_worker():
    assert progress_reporter("x") is None


def test_job_cluster_options(tmp_path):
    from wsidist.stage1.config import build_job

    job = build_job(None, inputs=["a.svs"], out="o", cluster="slurm", workers=4, dashboard=True)
    options = job.client_options()
    assert options["cluster"] == "slurm" and options["workers"] == 4 and options["dashboard"]
    assert options["security"] is None
    with pytest.raises(ConfigError, match="cluster"):
        build_job(None, cluster="kubernetes")


def test_cli_prints_the_dashboard_link(synthetic_slides, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "wsidist.cli", "score", str(synthetic_slides[0].path), "--out",
         str(tmp_path / "o"), "--workers", "1", "--dashboard"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Dask dashboard: http://127.0.0.1:" in done.stderr

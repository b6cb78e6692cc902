"""The cluster side: the dashboard link, progress events from a worker to the driver, the job's
cluster options, the main-guard check before workers start, Dask's warnings kept quiet."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
import urllib.request
import warnings

import pytest

from tests.helpers.paths import REPO
from wsidist.errors import ConfigError
from wsidist.runtime.cluster import (
    TransientHeartbeatFilter,
    dask_client,
    progress_reporter,
    quiet_dask_warnings,
    subscribe_progress,
    worker_environ,
)
from wsidist.runtime.mainguard import _guarded


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


@pytest.mark.long  # tests/stage1/test_summary.py's score run asserts the same link
def test_cli_prints_the_dashboard_link(synthetic_slides, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "wsidist.cli", "score", str(synthetic_slides[0].path), "--out",
         str(tmp_path / "o"), "--workers", "1", "--dashboard"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Dask dashboard: http://127.0.0.1:" in done.stderr


SCRIPT_CALL = """
import wsidist

slides = wsidist.run_stage1([{slide!r}], {out!r}, wsidist.Stage1Config(scale=16), workers=1)
print("rows", slides.num_rows, sorted(set(slides.column("status").to_pylist())))
"""


def _run_script(tmp_path, body: str) -> subprocess.CompletedProcess:
    script = tmp_path / "job.py"
    script.write_text(body)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=240,
        cwd=tmp_path,
    )  # fmt: skip


def test_a_script_without_the_guard_gets_one_clear_message(synthetic_slides, tmp_path):
    body = SCRIPT_CALL.format(slide=str(synthetic_slides[0].path), out=str(tmp_path / "out"))
    t0 = time.perf_counter()
    res = _run_script(tmp_path, body)
    assert res.returncode != 0
    assert time.perf_counter() - t0 < 60  # fails before any worker starts (no Nanny timeout)
    assert 'if __name__ == "__main__":' in res.stderr
    assert f"{tmp_path / 'job.py'}:4" in res.stderr  # names the unguarded call
    assert "bootstrapping phase" not in res.stderr and "Nanny failed" not in res.stderr
    assert not (tmp_path / "out").exists()


def test_the_same_script_under_the_guard_runs(synthetic_slides, tmp_path):
    call = SCRIPT_CALL.format(slide=str(synthetic_slides[0].path), out=str(tmp_path / "out"))
    lines = call.strip().splitlines()
    body = "\n".join(lines[:1]) + '\n\nif __name__ == "__main__":\n'
    body += textwrap.indent("\n".join(lines[1:]), "    ") + "\n"
    res = _run_script(tmp_path, body)
    assert res.returncode == 0, res.stderr
    assert "rows 1 ['ok']" in res.stdout


@pytest.mark.parametrize(
    ("source", "line", "guarded"),
    [
        ('x = 1\nif __name__ == "__main__":\n    run()\n', 3, True),
        ('run()\nif __name__ == "__main__":\n    pass\n', 1, False),
        (
            'if "__main__" == __name__:\n    try:\n        run()\n    finally:\n        pass\n',
            3,
            True,
        ),
        ('if __name__ != "__main__":\n    run()\n', 2, False),
        ("def main():\n    run()\n\nmain()\n", 4, False),
    ],
)
def test_guard_detection_reads_the_script(tmp_path, source, line, guarded):
    path = tmp_path / "s.py"
    path.write_text(source)
    assert _guarded(str(path), line) is guarded


def test_dask_warnings_stay_quiet_and_ours_do_not(tmp_path):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet_dask_warnings():
            warnings.warn_explicit(
                "Port 8787 is already in use.", UserWarning, "node.py", 1, module="distributed.node"
            )
            warnings.warn_explicit(
                "Creating scratch directories is taking a surprisingly long time.",
                UserWarning, "contextlib.py", 1, module="contextlib",
            )  # fmt: skip
            warnings.warn_explicit("a wsidist note", UserWarning, "x.py", 1, module="wsidist.x")
    assert [str(w.message) for w in seen] == ["a wsidist note"]


def _worker_warns() -> int:
    with warnings.catch_warnings(record=True) as seen:
        warnings.warn_explicit(
            "Port 8787 is already in use.", UserWarning, "node.py", 1, module="distributed.node"
        )
        warnings.warn_explicit(
            "Creating scratch directories is taking a surprisingly long time.",
            UserWarning, "contextlib.py", 1, module="contextlib",
        )  # fmt: skip
        warnings.warn_explicit("kept", UserWarning, "y.py", 1, module="wsidist.y")
    return [str(w.message) for w in seen]


def test_worker_processes_filter_dask_warnings():
    assert "distributed.node" in worker_environ()["PYTHONWARNINGS"]
    with dask_client(workers=1) as client:
        (seen,) = client.run(_worker_warns).values()
    assert seen == ["kept"]


def _worker_heartbeat_fails() -> str:
    """On a worker: log a heartbeat failure as distributed does, return what a handler got."""
    import io
    import logging

    log = logging.getLogger("distributed.worker")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log.addHandler(handler)
    try:
        try:
            raise OSError("Timed out during handshake")
        except OSError:
            log.exception("Failed to communicate with scheduler during heartbeat.")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("Unexpected exception during heartbeat. Closing worker.")
    finally:
        log.removeHandler(handler)
    return out.getvalue()


def test_retried_heartbeats_reach_the_terminal_as_one_line():
    with dask_client(workers=1) as client:
        (text,) = client.run(_worker_heartbeat_fails).values()
    first, rest = text.split("\n", 1)
    assert first.startswith("WARNING Failed to communicate with scheduler during heartbeat")
    assert "OSError: Timed out during handshake" in first and "retrying" in first
    # the retried one has no traceback; any other error keeps its traceback and level
    assert rest.startswith("ERROR Unexpected exception during heartbeat")
    assert rest.count("Traceback") == 1 and "ValueError: boom" in rest


def test_heartbeat_filter_passes_other_records():
    record = logging.LogRecord(
        "distributed.worker", logging.ERROR, "w.py", 1, "other %s", ("x",), None
    )
    assert TransientHeartbeatFilter().filter(record) and record.getMessage() == "other x"
    assert record.levelno == logging.ERROR

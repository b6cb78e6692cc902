"""The LocalCluster side: the main-guard check before workers start, Dask's warnings kept quiet."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import warnings

import pytest

from tests.helpers.paths import REPO
from wsidist.runtime.cluster import dask_client, quiet_dask_warnings, worker_environ
from wsidist.runtime.mainguard import _guarded

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

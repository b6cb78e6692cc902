"""The one slide-task template: rerun skip, failure rows, status JSON, lost tasks, planning."""

from __future__ import annotations

import json

import pytest

from wsidist.errors import ConfigError, SlideError
from wsidist.io.storage import Store
from wsidist.runtime.tasks import SlideTask, lost_task_row, plan_tasks, run_slide_task

TASK = SlideTask(__file__, "a")  # a file that exists: its identity is part of the skip key


def run(store: Store, work, **kw):
    return run_slide_task(
        TASK, work, store=store, config_hash="h1", status_key="status/a.json", **kw
    )


def test_ok_row_and_status_then_skip(tmp_path):
    store = Store(str(tmp_path))
    calls = []
    row = run(store, lambda: calls.append(1) or {"n": 3}, columns={"scale": 32.0})
    assert row["status"] == "ok" and row["n"] == 3 and row["scale"] == 32.0
    assert row["url"] == TASK.url and row["slide_id"] == "a" and not row["skipped"]
    assert row["started_at"] <= row["finished_at"] and row["seconds"] >= 0
    assert ":" in row["worker"]
    assert json.loads((tmp_path / "status" / "a.json").read_text()) == row
    again = run(store, lambda: calls.append(1) or {"n": 4})
    assert again["skipped"] and again["n"] == 3 and calls == [1]
    # another config hash, another URL, overwrite or a stale output: run again
    assert not run_slide_task(TASK, lambda: {}, store=store, config_hash="h2",
                              status_key="status/a.json")["skipped"]  # fmt: skip


def test_skip_only_while_still_current(tmp_path):
    store = Store(str(tmp_path))
    run(store, lambda: {"n": 1})
    assert run(store, lambda: {"n": 2}, still_current=lambda prev: True)["skipped"]
    redone = run(store, lambda: {"n": 2}, still_current=lambda prev: False)
    assert not redone["skipped"] and redone["n"] == 2
    assert not run(store, lambda: {"n": 3}, overwrite=True)["skipped"]


def test_failure_is_a_row_with_a_reason_and_cleans_up(tmp_path):
    store = Store(str(tmp_path))
    cleaned = []

    def work():
        raise SlideError("a.svs: corrupt tile 7")

    row = run(store, work, on_failure=lambda: cleaned.append(True))
    assert row["status"] == "failed" and row["error"] == "a.svs: corrupt tile 7"
    assert cleaned == [True]
    assert not run(store, lambda: {"n": 1})["skipped"]  # a failed slide is never skipped


def test_unexpected_exception_names_type_and_place(tmp_path):
    row = run(Store(str(tmp_path)), lambda: {}["missing"])
    assert row["status"] == "failed"
    assert row["error"].startswith("KeyError: 'missing' (at test_tasks.py:")


def test_finish_sees_the_timed_row(tmp_path):
    row = run(Store(str(tmp_path)), lambda: {"mp": 10.0}, finish=lambda r: {"rate": r["mp"] / 2})
    assert row["rate"] == 5.0


def test_no_status_key_writes_nothing(tmp_path):
    row = run_slide_task(TASK, lambda: {"n": 1}, store=Store(str(tmp_path)), config_hash="h",
                         status_key=None)  # fmt: skip
    assert row["status"] == "ok" and not any(tmp_path.iterdir())


def test_lost_task_row():
    row = lost_task_row(TASK, RuntimeError("killed"), "h1", scale=16.0)
    assert row["status"] == "failed" and "RuntimeError: killed" in row["error"]
    assert row["scale"] == 16.0 and row["config_hash"] == "h1" and not row["skipped"]


def test_plan_tasks_expands_once_and_passes_tasks_through(tmp_path):
    for name in ("b.svs", "a.svs"):
        (tmp_path / name).write_bytes(b"x")
    tasks = plan_tasks([str(tmp_path)])
    assert [t.slide_id for t in tasks] == ["a", "b"]
    assert plan_tasks(tasks) == tasks
    with pytest.raises(ConfigError):
        plan_tasks([])

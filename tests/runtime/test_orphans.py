"""The orphan sweep before a job: one listing of a few folders, never a walk of the output.

Every store write goes through ``.wsidist-tmp/``; a crashed run's files there (and a pyramid's
``.part`` file or spool folder in ``pyramids/``) are removed once older than the grace period,
a write in progress is left alone, and nothing lists the output recursively.
"""

from __future__ import annotations

import os
import time

from wsidist import layout
from wsidist.io.storage import Store
from wsidist.runtime.results import prepare_output


def test_the_sweep_lists_three_folders_and_removes_only_old_orphans(tmp_path, monkeypatch):
    out = tmp_path / "out"
    store = Store(str(out))
    for i in range(50):  # a stage-1 output's per-slide folders: none of them is listed
        store.write_bytes(layout.tiles_key(f"s{i:03d}"), b"tiles")
        store.write_json(layout.status_key(f"s{i:03d}"), {"status": "ok"})
    assert not (out / layout.TEMP_DIR).exists()  # every write moved out, the folder removed
    old = time.time() - 3600
    orphans = [
        out / layout.TEMP_DIR / "_tmp-0123abcd-part-0.parquet",
        out / "pyramids" / "x.tiff.part",
        out / "pyramids" / ".pyramid-k3j2" / "tiles.spool",
        out / "_tmp-probe-dead",
    ]
    for path in orphans:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
        os.utime(path, (old, old))
    os.utime(out / "pyramids" / ".pyramid-k3j2", (old, old))
    live = out / layout.TEMP_DIR / "_tmp-fffffff-live.png"
    live.write_bytes(b"being written")

    walked, listed = [], []
    real_find, real_entries = Store.find, Store.entries
    monkeypatch.setattr(
        Store, "find", lambda s, p="", hidden=False: walked.append(p) or real_find(s, p, hidden)
    )
    monkeypatch.setattr(Store, "entries", lambda s, p="": listed.append(p) or real_entries(s, p))
    removed = prepare_output(store)

    assert not any(p.exists() for p in orphans) and live.exists()
    assert sorted(removed) == sorted(
        [f"{layout.TEMP_DIR}/_tmp-0123abcd-part-0.parquet", "pyramids/x.tiff.part",
         "pyramids/.pyramid-k3j2", "_tmp-probe-dead"]
    )  # fmt: skip
    assert sorted(listed) == sorted(["", layout.TEMP_DIR, layout.PYRAMIDS_DIR])
    assert walked == ["pyramids/.pyramid-k3j2"]  # only inside an orphan folder, for its age
    assert (out / layout.tiles_key("s007")).read_bytes() == b"tiles"

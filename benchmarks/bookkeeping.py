"""What the rerun and concurrency bookkeeping costs per job, side by side with the old way.

    python benchmarks/bookkeeping.py [--slides 2000] [--s3]

For an output holding N slides' status files (rows like stage 1's): building slides.parquet
from the status files (the first time, reading all; again, reading only changed ones) beside
the old merge over the stored table; the pre-run probe and orphan sweep; and the source
identity each slide task now takes (a stat locally, a HEAD on S3). ``--s3`` repeats it on a
throwaway SeaweedFS server (from the tests' helper).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from wsidist import layout
from wsidist.io.remote import source_version
from wsidist.io.storage import Store, merge_by_slide_id, rows_to_table
from wsidist.runtime.results import prepare_output, write_job_table
from wsidist.stage1.driver import SLIDES_SCHEMA


def fake_rows(n: int) -> list[dict]:
    return [
        {
            "url": f"/data/s{i:06d}.svs", "slide_id": f"s{i:06d}", "status": "ok",
            "width": 100_000, "height": 80_000, "n_tiles": 7000, "tissue_frac": 0.3,
            "config_hash": "abc", "finished_at": "2026-01-01T00:00:00.000+00:00",
            "skipped": False, "source_version": "size=1|mtime_ns=2",
        }
        for i in range(n)
    ]  # fmt: skip


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(store: Store, n: int, slide_url: str) -> None:
    rows = fake_rows(n)
    for row in rows:
        store.write_bytes(layout.status_key(row["slide_id"]), json.dumps(row).encode())
    this_run = rows[:20]
    old = timed(
        lambda: store.write_parquet(
            "old.parquet",
            merge_by_slide_id(store, "old.parquet", rows_to_table(this_run, SLIDES_SCHEMA)),
        )
    )
    status_dir = layout.STATUS_DIR
    first = timed(
        lambda: write_job_table(
            store, layout.SLIDES_TABLE, this_run, SLIDES_SCHEMA, status_dir=status_dir
        )
    )
    for row in this_run:  # a rerun of 20 slides rewrote their statuses
        store.write_bytes(layout.status_key(row["slide_id"]), json.dumps(row).encode())
    again = timed(
        lambda: write_job_table(
            store, layout.SLIDES_TABLE, this_run, SLIDES_SCHEMA, status_dir=status_dir
        )
    )
    sweep = timed(lambda: prepare_output(store))
    ident = timed(lambda: [source_version(slide_url) for _ in range(20)]) / 20
    print(
        f"{store.url}: {n} slides | old merge {old * 1e3:.0f} ms | from status files: first "
        f"{first * 1e3:.0f} ms, rerun of 20 {again * 1e3:.0f} ms | probe + orphan sweep "
        f"{sweep * 1e3:.0f} ms | source identity {ident * 1e3:.2f} ms per slide"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slides", type=int, default=2000)
    parser.add_argument("--s3", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        slide = Path(tmp) / "slide.svs"
        slide.write_bytes(b"x" * 1000)
        run(Store(str(Path(tmp) / "out")), args.slides, str(slide))
        if args.s3:
            from tests.helpers.s3server import start_s3_server

            server = start_s3_server(Path(tmp) / "s3")
            try:
                bucket = server.make_bucket("bench")
                server.filesystem().pipe_file("bench/slide.svs", b"x" * 1000)
                store = Store(f"{bucket}/out", server.storage_options)
                import fsspec.config

                fsspec.config.conf["s3"] = dict(server.storage_options)
                run(store, args.slides, f"{bucket}/slide.svs")
            finally:
                server.stop()


if __name__ == "__main__":
    main()

"""Stage 1 at many slides: per-slide overhead, full-skip reruns, memory, select, the table.

Generates one tiny slide (2048² px by default, 2 levels) and hard-links it under N names (ids come from the
URL), then runs stage 1 on a LocalCluster of 2 workers, with the output local or on a real
SeaweedFS S3 server (inputs uploaded there too). Prints, per backend:

- core-ms per slide of the first run against the slide work itself (the rows' ``seconds``):
  the difference is the per-slide overhead (scheduling, status files, the table);
- wall ms per slide of a rerun in which every slide is skipped;
- driver peak RSS and scheduler RSS;
- ``select --top 20`` over the N tile partitions;
- building ``slides.parquet`` from the N status files (cold) and with its version cache (warm).

With ``--real K`` only K slides are processed; the others get copies of slide 0's status file and
tile table under their own ids (so 10,000 slides fit in minutes: the rerun, select and the
table then work on N slides).

    python benchmarks/scale.py --n 1000 --backend local s3 [--size-px 1024] [--json out.json]
    python benchmarks/scale.py --n 10000 --compact --real 20 --size-px 1024 --backend local s3

``--compact`` measures only ``select --top 20`` and one slide's tiles (best of ``--repeats``)
on the partitioned layout, then ``wsidist compact``, then the same on the compacted layout.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from wsidist import layout
from wsidist.demo.spec import SynthSpec
from wsidist.demo.synth import write_synthetic_slide
from wsidist.io.remote import local_path, source_version
from wsidist.io.storage import Store
from wsidist.query.select import select
from wsidist.runtime.cluster import dask_client
from wsidist.runtime.results import write_job_table
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.driver import SLIDES_SCHEMA, run_stage1

CONFIG = Stage1Config(scale=16)


def make_slides(folder: Path, n: int, size_px: int) -> list[str]:
    """N distinct names for one generated slide (hard links: same bytes, other ids)."""
    folder.mkdir(parents=True, exist_ok=True)
    first = folder / "slide-000000.svs"
    write_synthetic_slide(first, SynthSpec(width=size_px, height=size_px, n_levels=2, seed=3))
    paths = [str(first)]
    for i in range(1, n):
        path = folder / f"slide-{i:06d}.svs"
        os.link(first, path)
        paths.append(str(path))
    return paths


def scheduler_rss(client) -> int:
    return client.run_on_scheduler(lambda: psutil.Process().memory_info().rss)


def clone_outputs(store: Store, inputs: list[str], done: int) -> None:
    """Give slides ``done:`` the status file and tile table of slide 0 (the same bytes under
    another id), as if stage 1 had run on them: what a rerun, select and the table then read."""
    status = json.loads(store.read_bytes(layout.status_key("slide-000000")))
    tiles = store.read_bytes(layout.tiles_key("slide-000000"))

    def clone(url: str) -> None:
        slide_id = Path(url).stem
        # each uploaded copy has its own time on S3 (hard links share theirs locally)
        version = source_version(url) if local_path(url) is None else status["source_version"]
        row = {**status, "url": url, "slide_id": slide_id, "source_version": version}
        store.write_json(layout.status_key(slide_id), row)
        store.write_bytes(layout.tiles_key(slide_id), tiles)

    with ThreadPoolExecutor(1 if store.is_local else 16) as pool:
        list(pool.map(clone, inputs[done:]))


def measure(
    inputs: list[str], out: str, storage_options: dict, workers: int, real: int | None = None
) -> dict:
    n = len(inputs)
    real = min(real or n, n)
    result: dict = {"n": n, "processed": real}
    with dask_client(workers=workers) as client:
        start = time.perf_counter()
        table = run_stage1(
            inputs[:real], out, CONFIG, client=client, storage_options=storage_options
        )
        wall = time.perf_counter() - start
        rows = table.to_pylist()
        n = real
        ok = sum(r["status"] == "ok" for r in rows)
        work_ms = 1000 * sum(r["seconds"] or 0 for r in rows) / n
        result.update(
            first_wall_s=round(wall, 2),
            ok=ok,
            core_ms_per_slide=round(1000 * wall * workers / n, 1),
            work_ms_per_slide=round(work_ms, 1),
            overhead_core_ms_per_slide=round(1000 * wall * workers / n - work_ms, 1),
        )
        n = len(inputs)
        if real < n:
            start = time.perf_counter()
            clone_store = Store(out.rstrip("/"), storage_options)
            clone_outputs(clone_store, inputs, real)
            write_job_table(
                clone_store, layout.SLIDES_TABLE, [], SLIDES_SCHEMA, CONFIG,
                status_dir=layout.STATUS_DIR,
            )  # fmt: skip  # as a run over all N would have left it: the rerun's steady state
            result["clone_s"] = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        again = run_stage1(inputs, out, CONFIG, client=client, storage_options=storage_options)
        rerun = time.perf_counter() - start
        skipped = sum(bool(s) for s in again.column("skipped").to_pylist())
        result.update(
            rerun_wall_s=round(rerun, 2),
            rerun_skipped=skipped,
            rerun_ms_per_slide=round(1000 * rerun / n, 3),
            scheduler_rss_mb=round(scheduler_rss(client) / 2**20),
        )
    result["driver_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    start = time.perf_counter()
    picked = select(out, top=20, storage_options=storage_options)
    result["select_top20_s"] = round(time.perf_counter() - start, 2)
    result["select_rows"] = picked.num_rows
    store = Store(out.rstrip("/"), storage_options)
    store.remove(layout.SLIDES_TABLE)
    for label in ("cold", "warm"):
        start = time.perf_counter()
        write_job_table(
            store, layout.SLIDES_TABLE, [], SLIDES_SCHEMA, CONFIG, status_dir=layout.STATUS_DIR
        )
        result[f"slides_table_{label}_s"] = round(time.perf_counter() - start, 2)
    return result


def best_of(repeats: int, fn) -> tuple[float, object]:
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return min(times), value


def measure_compaction(
    inputs: list[str], out: str, storage_options: dict, workers: int, *, real: int, repeats: int
) -> dict:
    """``select --top 20`` and one slide's tiles on the partitioned layout, then
    ``compact_tiles``, then the same on the compacted layout (the answers must be equal)."""
    from wsidist.runtime.compact import compact_tiles
    from wsidist.runtime.tiletable import read_slide_tiles

    n = len(inputs)
    with dask_client(workers=workers) as client:
        run_stage1(inputs[:real], out, CONFIG, client=client, storage_options=storage_options)
    store = Store(out.rstrip("/"), storage_options)
    start = time.perf_counter()
    clone_outputs(store, inputs, real)
    write_job_table(
        store, layout.SLIDES_TABLE, [], SLIDES_SCHEMA, CONFIG, status_dir=layout.STATUS_DIR
    )  # the cloned slides' rows: select keeps the ok slides of slides.parquet
    result: dict = {"n": n, "processed": real, "clone_s": round(time.perf_counter() - start, 1)}
    probe = [Path(u).stem for u in inputs[:: max(1, n // 20)]]

    def one_slide() -> None:
        for sid in probe:
            assert read_slide_tiles(store, sid) is not None

    before, want = best_of(repeats, lambda: select(out, top=20, storage_options=storage_options))
    result["select_top20_partitioned_s"] = round(before, 3)
    per_slide, _ = best_of(repeats, one_slide)
    result["one_slide_partitioned_ms"] = round(1000 * per_slide / len(probe), 2)
    start = time.perf_counter()
    done = compact_tiles(store)
    result["compact_s"] = round(time.perf_counter() - start, 2)
    result["buckets"] = done.n_buckets
    after, got = best_of(repeats, lambda: select(out, top=20, storage_options=storage_options))
    assert got.equals(want), "select differs between the layouts"
    result["select_top20_compacted_s"] = round(after, 3)
    result["select_speedup"] = round(before / after, 1)
    per_slide, _ = best_of(repeats, one_slide)
    result["one_slide_compacted_ms"] = round(1000 * per_slide / len(probe), 2)
    result["select_rows"] = got.num_rows
    return result


def on_s3(paths: list[str], work: Path, workers: int, run) -> dict:
    sys.path.append(str(Path(__file__).resolve().parents[1]))  # after PYTHONPATH
    from tests.helpers.s3server import start_s3_server

    server = start_s3_server(work / "seaweedfs")
    saved = dict(os.environ)
    try:
        os.environ.update(server.env)
        bucket = server.make_bucket("scale")
        fs = server.filesystem()
        start = time.perf_counter()
        fs.put(paths, f"{bucket}/in/")
        upload = time.perf_counter() - start
        inputs = [f"{bucket}/in/{Path(p).name}" for p in paths]
        result = run(inputs, f"{bucket}/out", server.storage_options, workers)
        result["upload_s"] = round(upload, 1)
        return result
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size-px", type=int, default=2048, help="the slide's side, level 0")
    parser.add_argument("--backend", nargs="+", default=["local"], choices=["local", "s3"])
    parser.add_argument(
        "--real", type=int, help="process only this many slides; clone their outputs to N"
    )
    parser.add_argument(
        "--compact", action="store_true", help="only select before and after `wsidist compact`"
    )
    parser.add_argument("--repeats", type=int, default=3, help="best of this many (--compact)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wsidist-scale-") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        paths = make_slides(work / "slides", args.n, args.size_px)
        print(f"generated {args.n} slides in {time.perf_counter() - start:.1f} s", flush=True)
        results = {}
        for backend in args.backend:
            real = args.real or (20 if args.compact else None)
            if args.compact:
                run = functools.partial(measure_compaction, real=real, repeats=args.repeats)
            else:
                run = functools.partial(measure, real=real)
            if backend == "local":
                results[backend] = run(paths, str(work / "out"), {}, args.workers)
            else:
                results[backend] = on_s3(paths, work, args.workers, run)
            print(backend, json.dumps(results[backend]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

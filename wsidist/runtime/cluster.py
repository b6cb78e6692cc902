"""The Dask side: a client of a given scheduler or a LocalCluster, and the worker environment."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from typing import Any

import dask
from distributed import Client, LocalCluster


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Client]:
    """A client of an existing scheduler, or of a LocalCluster of worker processes (one per core)."""
    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    n_workers = workers or os.cpu_count() or 1
    with (
        dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environ()}),
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=40,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def worker_environ() -> dict[str, Any]:
    """Environment of worker processes: Dask's defaults with a glibc heap that keeps big buffers.

    Dask sets ``MALLOC_TRIM_THRESHOLD_=65536``, so every multi-megabyte image buffer is mapped
    afresh and page-faulted in; with blocks of 12 MB that made the stage-2 rewrite 2.8× slower
    than the same work on threads. Large buffers stay on the heap here (up to 1 GiB kept free
    per worker before trimming; buffers over 64 MiB still use their own mapping).
    """
    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    env.update(MALLOC_TRIM_THRESHOLD_=2**30, MALLOC_MMAP_THRESHOLD_=2**26)
    return env


def cluster_threads(client: Client) -> int:
    """Worker threads of the cluster behind ``client`` (at least 1)."""
    return max(1, sum(client.nthreads().values()))


@contextlib.contextmanager
def cluster_submitter() -> Iterator[tuple[Callable[..., Any] | None, int]]:
    """``(submit, threads)`` for sub-tasks of a running task.

    Inside a Dask worker: ``submit`` sends work to the whole cluster (the task secedes while it
    waits) and ``threads`` counts the cluster's worker threads. Elsewhere: ``(None, cores)``,
    and the caller uses a local thread pool.
    """
    try:
        from distributed import get_worker, worker_client

        get_worker()
    except (ImportError, ValueError):
        yield None, os.cpu_count() or 1
        return
    with worker_client() as client:
        yield functools.partial(client.submit, pure=False), cluster_threads(client)

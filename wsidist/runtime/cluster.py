"""The Dask side: a client of a given scheduler or a LocalCluster, and the worker environment.

Before a LocalCluster starts its worker processes, :func:`check_main_guard` makes sure they
will not re-run the caller's script (see :mod:`wsidist.runtime.mainguard`); Dask's own
UserWarnings (ports, scratch directories, graph sizes) are kept out of the user's terminal.
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import dask
from distributed import Client, LocalCluster

from wsidist.runtime.mainguard import check_main_guard

__all__ = ["check_main_guard", "cluster_submitter", "cluster_threads", "dask_client"]

# Dask warnings raised in wsidist's own processes that tell a user nothing they can act on
_DRIVER_FILTERS = (
    ("", r"(dask|distributed)(\.|$)"),  # (message, module) regexes
    ("Creating scratch directories", ""),  # raised through contextlib
)
# the same in worker processes, as PYTHONWARNINGS (literal module names)
_WORKER_FILTERS = (
    "ignore:Creating scratch directories",
    "ignore::UserWarning:distributed.node",
    "ignore::UserWarning:distributed.worker",
    "ignore::UserWarning:distributed.utils",
    "ignore::UserWarning:distributed.client",
)


@contextlib.contextmanager
def quiet_dask_warnings() -> Iterator[None]:
    """Within: Dask's UserWarnings in this process are not shown (wsidist's own still are)."""
    with warnings.catch_warnings():
        for message, module in _DRIVER_FILTERS:
            warnings.filterwarnings("ignore", message=message, category=UserWarning, module=module)
        yield


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Client]:
    """A client of an existing scheduler, or of a LocalCluster of worker processes (one per core).

    Raises :class:`~wsidist.errors.ConfigError` before starting a LocalCluster from a script
    whose wsidist call is not under ``if __name__ == "__main__":``.
    """
    if scheduler:
        with quiet_dask_warnings(), Client(scheduler) as client:
            yield client
        return
    check_main_guard(dask.config.get("distributed.worker.multiprocessing-method", "spawn"))
    n_workers = workers or os.cpu_count() or 1
    with (
        quiet_dask_warnings(),
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
    """Environment of worker processes: Dask's defaults with a glibc heap that keeps big buffers,
    and Dask's own UserWarnings filtered (``PYTHONWARNINGS``, added to any given).

    Dask sets ``MALLOC_TRIM_THRESHOLD_=65536``, so every multi-megabyte image buffer is mapped
    afresh and page-faulted in; with blocks of 12 MB that made the stage-2 rewrite 2.8× slower
    than the same work on threads. Large buffers stay on the heap here (up to 1 GiB kept free
    per worker before trimming; buffers over 64 MiB still use their own mapping).
    """
    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    env.update(MALLOC_TRIM_THRESHOLD_=2**30, MALLOC_MMAP_THRESHOLD_=2**26)
    given = [w for w in str(env.get("PYTHONWARNINGS") or "").split(",") if w]
    env["PYTHONWARNINGS"] = ",".join(dict.fromkeys([*given, *_WORKER_FILTERS]))
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

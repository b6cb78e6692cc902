"""The Dask side: a client of a given scheduler, a LocalCluster or an HPC batch cluster; TLS;
the worker environment; per-slide progress events from workers to the driver.

Before a LocalCluster starts its worker processes, :func:`check_main_guard` makes sure they
will not re-run the caller's script (see :mod:`wsidist.runtime.mainguard`); Dask's own
UserWarnings (ports, scratch directories, graph sizes) are kept out of the user's terminal,
and a LocalCluster worker's retried heartbeat is one warning line, not an error traceback.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any, Literal

import dask
from distributed import Client, LocalCluster, Security
from distributed.diagnostics.plugin import WorkerPlugin

from wsidist.runtime.mainguard import check_main_guard

ClusterKind = Literal["local", "slurm", "pbs", "lsf"]
PROGRESS_TOPIC = "wsidist-progress"  # Dask event topic of per-slide progress messages

__all__ = [
    "check_main_guard", "cluster_submitter", "cluster_threads", "dask_client",
    "guard_local_cluster",
    "progress_reporter", "quiet_dask_warnings", "quiet_worker_logs", "subscribe_progress",
    "tls_security", "worker_environ",
]  # fmt: skip

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


_RETRIED_HEARTBEAT = "Failed to communicate with scheduler during heartbeat"


class TransientHeartbeatFilter(logging.Filter):
    """A heartbeat the worker retries (the scheduler was slow to answer, e.g. on a loaded
    machine) is logged as one warning line with its reason, not as an error with a traceback;
    every other record passes unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.msg).startswith(_RETRIED_HEARTBEAT):
            reason = record.exc_info[1]
            record.msg = f"{_RETRIED_HEARTBEAT} ({type(reason).__name__}: {reason}); retrying"
            record.args = ()
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class QuietWorkerLogs(WorkerPlugin):
    """Installs :class:`TransientHeartbeatFilter` on a worker's ``distributed.worker`` log."""

    name = "wsidist-quiet-worker-logs"

    def setup(self, worker: Any) -> None:
        log = logging.getLogger("distributed.worker")
        if not any(isinstance(f, TransientHeartbeatFilter) for f in log.filters):
            log.addFilter(TransientHeartbeatFilter())


def quiet_worker_logs(client: Client) -> None:
    """Keep retried heartbeats of ``client``'s workers (also ones started later) out of the
    user's terminal as tracebacks."""
    client.register_plugin(QuietWorkerLogs())


@contextlib.contextmanager
def dask_client(
    scheduler: str | None = None,
    workers: int | None = None,
    *,
    cluster: ClusterKind = "local",
    security: Security | None = None,
    dashboard: bool = False,
) -> Iterator[Client]:
    """A client of an existing scheduler, of an HPC batch cluster (``cluster`` slurm, pbs or
    lsf, from Dask's jobqueue config), or of a LocalCluster of worker processes (one per core).

    ``security`` (see :func:`tls_security`) makes every connection TLS; without it, Dask's
    ``distributed.comm.tls`` config still applies to a given ``scheduler``. ``dashboard``
    serves the LocalCluster's dashboard on a free port (``client.dashboard_link``).
    Raises :class:`~wsidist.errors.ConfigError` before starting a LocalCluster from a script
    whose wsidist call is not under ``if __name__ == "__main__":``.
    """
    if scheduler:
        with quiet_dask_warnings(), Client(scheduler, security=security) as client:
            yield client
        return
    if cluster != "local":
        from wsidist.runtime.hpc import jobqueue_cluster

        with (
            jobqueue_cluster(cluster, workers, environ=worker_environ(), security=security) as hpc,
            Client(hpc, security=security) as client,
        ):
            yield client
        return
    guard_local_cluster()
    n_workers = workers or os.cpu_count() or 1
    tls = {"protocol": "tls://", "security": security} if security is not None else {}
    with (
        quiet_dask_warnings(),
        dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environ()}),
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0" if dashboard else None,
            silence_logs=40,
            **tls,
        ) as local,
        Client(local, security=security) as client,
    ):
        quiet_worker_logs(client)
        yield client


def guard_local_cluster() -> None:
    """:class:`~wsidist.errors.ConfigError` when starting a LocalCluster now would re-run the
    caller's script in every worker (see :mod:`wsidist.runtime.mainguard`)."""
    check_main_guard(dask.config.get("distributed.worker.multiprocessing-method", "spawn"))


def tls_security(ca_file: str, cert_file: str, key_file: str) -> Security:
    """Mutual TLS for every role (client, scheduler, worker) from one CA and one key pair;
    a peer whose certificate the CA did not sign is refused."""
    pair = {"cert": cert_file, "key": key_file}
    roles = {
        f"tls_{role}_{part}": path
        for role in ("client", "scheduler", "worker")
        for part, path in pair.items()
    }
    return Security(tls_ca_file=ca_file, require_encryption=True, **roles)


def progress_reporter(
    slide_id: str, *, min_interval_s: float = 0.5
) -> Callable[[int, int], None] | None:
    """``report(done, total)`` that sends ``slide_id``'s progress to the driver as a Dask event
    (at most every ``min_interval_s``, and always the last); None outside a Dask worker."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < min_interval_s:
            return
        last[0] = now
        worker.log_event(PROGRESS_TOPIC, {"slide_id": slide_id, "done": done, "total": total})

    return report


def subscribe_progress(client: Client, handler: Callable[[dict[str, Any]], None]) -> None:
    """Call ``handler(message)`` on the driver for every progress message a worker sends."""
    client.subscribe_topic(PROGRESS_TOPIC, lambda event: handler(event[1]))


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
    if os.environ.get("WSIDIST_REMOTE_READ"):  # --remote-read reaches every worker
        env["WSIDIST_REMOTE_READ"] = os.environ["WSIDIST_REMOTE_READ"]
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

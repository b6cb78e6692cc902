"""HPC batch schedulers (SLURM, PBS, LSF) as Dask clusters, through dask-jobqueue.

Every site setting (cores and memory per job, queue, account, walltime, interface, extra
directives) comes from Dask's standard ``jobqueue.<kind>`` config (``~/.config/dask/*.yaml``,
``DASK_CONFIG`` or ``DASK_JOBQUEUE__SLURM__*`` variables), as dask-jobqueue reads it; wsidist
only adds its worker environment (:func:`~wsidist.runtime.cluster.worker_environ`) to the job
script's prologue (``environ``, given by :func:`wsidist.runtime.cluster.dask_client`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import dask

from wsidist.errors import ConfigError

JOBQUEUE_KINDS = ("slurm", "pbs", "lsf")


def jobqueue_cluster_class(kind: str) -> type:
    """The dask-jobqueue cluster class of ``kind`` (ConfigError when unknown or not installed)."""
    if kind not in JOBQUEUE_KINDS:
        raise ConfigError(f"cluster {kind!r} is not one of local, {', '.join(JOBQUEUE_KINDS)}")
    try:
        import dask_jobqueue
    except ImportError:
        raise ConfigError(
            f"--cluster {kind} needs dask-jobqueue: pip install 'wsidist[hpc]'"
        ) from None
    return {
        "slurm": dask_jobqueue.SLURMCluster,
        "pbs": dask_jobqueue.PBSCluster,
        "lsf": dask_jobqueue.LSFCluster,
    }[kind]


def jobqueue_options(kind: str, environ: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments wsidist adds to ``jobqueue.<kind>``: ``environ`` exported in the job
    script, after the configured prologue."""
    prologue = list(dask.config.get(f"jobqueue.{kind}.job-script-prologue", None) or [])
    exports = [f"export {name}={value}" for name, value in sorted(environ.items())]
    return {"job_script_prologue": prologue + exports}


def make_jobqueue_cluster(
    kind: str, *, environ: dict[str, Any] | None = None, security: Any = None, **kwargs: Any
) -> Any:
    """A dask-jobqueue cluster of ``kind`` from Dask's config; ConfigError naming what is missing."""
    cls = jobqueue_cluster_class(kind)
    options = {**jobqueue_options(kind, environ or {}), **kwargs}
    if security is not None:
        options.update(security=security, protocol="tls://")
    try:
        return cls(**options)
    except ValueError as exc:  # e.g. no cores/memory in jobqueue.<kind>
        raise ConfigError(
            f"cluster {kind}: {exc} (set jobqueue.{kind}.cores and .memory in Dask's config, "
            "e.g. deploy/hpc/jobqueue.yaml)"
        ) from None


@contextlib.contextmanager
def jobqueue_cluster(
    kind: str,
    workers: int | None = None,
    *,
    environ: dict[str, Any] | None = None,
    security: Any = None,
) -> Iterator[Any]:
    """A started dask-jobqueue cluster scaled to ``workers`` worker processes (default: one job)."""
    with make_jobqueue_cluster(kind, environ=environ, security=security) as cluster:
        if workers:
            cluster.scale(n=workers)
        else:
            cluster.scale(jobs=1)
        yield cluster

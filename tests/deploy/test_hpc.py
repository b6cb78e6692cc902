"""HPC clusters through dask-jobqueue: the job scripts wsidist makes from Dask's jobqueue config
(always), and a real one-node SLURM cluster on 127.0.0.1 (opt-in: WSIDIST_SLURM=1, with
Debian's slurm-wlm and munge installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dask
import pyarrow.parquet as pq
import pytest
import yaml

from tests.helpers.s3server import free_ports
from wsidist.errors import ConfigError
from wsidist.runtime.cluster import worker_environ
from wsidist.runtime.hpc import make_jobqueue_cluster

pytest.importorskip("dask_jobqueue")  # loads jobqueue's defaults before any config.set

REPO = Path(__file__).resolve().parents[2]
SHIPPED = yaml.safe_load((REPO / "deploy/hpc/jobqueue.yaml").read_text())


@pytest.mark.parametrize(
    ("kind", "directive"), [("slurm", "#SBATCH"), ("pbs", "#PBS"), ("lsf", "#BSUB")]
)
def test_job_script_from_the_shipped_jobqueue_config(kind, directive):
    site = {**SHIPPED["jobqueue"][kind], "queue": "short", "walltime": "01:00:00" if kind != "lsf" else "01:00",
            "job-script-prologue": ["source /opt/wsidist/bin/activate"]}  # fmt: skip
    with (
        dask.config.set({f"jobqueue.{kind}.{key}": value for key, value in site.items()}),
        dask.config.set({f"jobqueue.{kind}.scheduler-options": {"host": "127.0.0.1"}}),
        make_jobqueue_cluster(kind, environ=worker_environ()) as cluster,
    ):
        script = cluster.job_script()
    lines = script.splitlines()
    assert any(line.startswith(directive) and "short" in line for line in lines)
    assert "source /opt/wsidist/bin/activate" in lines
    for name, value in worker_environ().items():  # the worker env, after the site prologue
        assert f"export {name}={value}" in lines
        assert lines.index(f"export {name}={value}") > lines.index(
            "source /opt/wsidist/bin/activate"
        )
    worker = next(line for line in lines if "distributed.cli.dask_worker" in line)
    assert (
        "tcp://127.0.0.1:" in worker
        and "--nthreads 1" in worker
        and "--memory-limit 2.00GiB" in worker
    )


def test_missing_jobqueue_settings_fail_before_work():
    with (
        dask.config.set({"jobqueue.slurm.cores": None, "jobqueue.slurm.memory": None}),
        pytest.raises(ConfigError, match=r"jobqueue\.slurm\.cores"),
    ):
        make_jobqueue_cluster("slurm")
    with pytest.raises(ConfigError, match="not one of local"):
        make_jobqueue_cluster("sge")


def test_cli_cluster_errors(synthetic_slides, tmp_path):
    slide = str(synthetic_slides[0].path)
    cli = [sys.executable, "-m", "wsidist.cli", "score", slide, "--out", str(tmp_path / "o")]
    env = {**os.environ, "DASK_CONFIG": str(tmp_path / "no-config")}
    both = subprocess.run(
        [*cli, "--cluster", "slurm", "--scheduler", "tcp://h:1"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert both.returncode == 2 and "not both" in both.stderr
    unknown = subprocess.run([*cli, "--cluster", "sge"], capture_output=True, text=True, env=env)
    assert unknown.returncode == 2 and "cluster" in unknown.stderr
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ a real SLURM cluster
SLURM_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch")
needs_slurm = pytest.mark.skipif(
    os.environ.get("WSIDIST_SLURM") != "1" or not all(shutil.which(b) for b in SLURM_BINARIES),
    reason="opt-in: WSIDIST_SLURM=1 with Debian's slurm-wlm and munge installed",
)

SLURM_CONF = """\
ClusterName=wsidisttest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={dir}/munge.socket
CredType=cred/munge
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=8000 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """munged, slurmctld and slurmd on 127.0.0.1, all state in a temporary folder."""
    folder = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (folder / sub).mkdir()
    ctld_port, d_port = free_ports(2)
    host = subprocess.run(
        ["hostname", "-s"], capture_output=True, text=True, check=True
    ).stdout.strip()
    conf = folder / "slurm.conf"
    conf.write_text(
        SLURM_CONF.format(
            host=host, ctld_port=ctld_port, d_port=d_port, dir=folder, cpus=os.cpu_count()
        )
    )
    subprocess.run(["mungekey", "-c", "-f", "-k", str(folder / "munge.key")], check=True)
    subprocess.run(["munged", f"--socket={folder}/munge.socket", f"--key-file={folder}/munge.key",
                    f"--pid-file={folder}/munged.pid", f"--log-file={folder}/munged.log",
                    f"--seed-file={folder}/munge.seed", "-f"], check=True)  # fmt: skip
    env = {**os.environ, "SLURM_CONF": str(conf)}
    try:
        subprocess.run(["slurmctld", "-f", str(conf)], check=True, env=env)
        subprocess.run(["slurmd", "-f", str(conf)], check=True, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = subprocess.run(
                ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env
            ).stdout
            if "idle" in state:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the SLURM node never became idle: {state!r}")
        yield env
    finally:
        for pid_file in ("slurmd.pid", "slurmctld.pid", "munged.pid"):
            path = folder / pid_file
            if path.exists():
                subprocess.run(["kill", path.read_text().strip()], check=False)


@needs_slurm
@pytest.mark.slurm
def test_stage1_on_a_real_slurm_cluster(slurm, synthetic_slides, tmp_path):
    config = tmp_path / "dask"
    config.mkdir()
    site = {**SHIPPED["jobqueue"]["slurm"], "queue": "debug", "walltime": "00:10:00",
            "log-directory": str(tmp_path / "logs"), "scheduler-options": {"host": "127.0.0.1"}}  # fmt: skip
    (config / "jobqueue.yaml").write_text(yaml.safe_dump({"jobqueue": {"slurm": site}}))
    out = tmp_path / "out"
    job = tmp_path / "slurm.yaml"
    shipped = yaml.safe_load((REPO / "jobs/slurm.yaml").read_text())
    job.write_text(yaml.safe_dump({**shipped, "inputs": [str(s.path) for s in synthetic_slides],
                                   "out": str(out), "workers": 2, "dashboard": False}))  # fmt: skip
    env = {**slurm, "DASK_CONFIG": str(config)}
    done = subprocess.run([sys.executable, "-m", "wsidist.cli", "score", "--config", str(job)],
                          capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    table = pq.read_table(out / "slides.parquet")
    assert sorted(table.column("slide_id").to_pylist()) == sorted(
        s.path.stem for s in synthetic_slides
    )
    assert set(table.column("status").to_pylist()) == {"ok"}
    job_logs = list((tmp_path / "logs").glob("*.out")) + list((tmp_path / "logs").glob("*.err"))
    assert job_logs, "no SLURM job output: the workers did not run as SLURM jobs"
    worker_log = "\n".join(p.read_text(errors="replace") for p in job_logs)
    assert "Registered to:" in worker_log

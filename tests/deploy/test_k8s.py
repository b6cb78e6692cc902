"""The kustomizations render, every object is valid Kubernetes, the Dask objects fit the
operator's CRDs (strictly: an unknown field fails), and the manifests keep wsidist's rules."""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.k8s import KUBECTL, KUSTOMIZATIONS, operator_pods, render
from wsidist.runtime.cluster import worker_environ

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl (kustomize) not installed")

DASK_KINDS = {"DaskJob", "DaskCluster", "DaskAutoscaler"}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {k: render(k) for k in KUSTOMIZATIONS}


@functools.lru_cache
def crd_validator(kind: str) -> Any:
    import jsonschema

    return jsonschema.Draft7Validator(crd_schema(kind))


def crd_schema(kind: str) -> dict[str, Any]:
    """The operator's CRD schema of ``kind``, made strict: objects without
    ``x-kubernetes-preserve-unknown-fields`` accept no other fields (what the API server
    reports as unknown fields)."""
    import dask_kubernetes

    # the CRDs as the operator's chart installs them (references to the pod schema resolved)
    crds = (
        Path(dask_kubernetes.__file__).parent
        / "operator/deployment/helm/dask-kubernetes-operator/crds"
    )
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load((crds / f"{kind.lower()}.yaml").read_text(), Loader=loader)
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])

    def tighten(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                tighten(value)
        elif isinstance(node, list):
            for value in node:
                tighten(value)

    tighten(schema)
    schema["properties"].update(
        apiVersion={"const": "kubernetes.dask.org/v1"}, kind={"const": kind},
        metadata={"type": "object"},
    )  # fmt: skip
    return schema


def crd_errors(obj: dict[str, Any]) -> list[str]:
    errors = crd_validator(obj["kind"]).iter_errors(obj)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


def pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec", {})
    if obj["kind"] == "DaskJob":
        return [spec["job"]["spec"], spec["cluster"]["spec"]["worker"]["spec"],
                spec["cluster"]["spec"]["scheduler"]["spec"]]  # fmt: skip
    if obj["kind"] == "DaskCluster":
        return [spec["worker"]["spec"], spec["scheduler"]["spec"]]
    return []


def cluster_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["cluster"]["spec"] if obj["kind"] == "DaskJob" else obj["spec"]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_renders(rendered, kustomization):
    kinds = sorted(o["kind"] for o in rendered[kustomization])
    expected = {
        "base": ["ConfigMap", "DaskJob"], "overlays/rewrite": ["ConfigMap", "DaskJob"],
        "overlays/extract": ["ConfigMap", "DaskJob"], "interactive": ["DaskAutoscaler", "DaskCluster"],
    }[kustomization]  # fmt: skip
    assert kinds == expected


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_object_is_valid_kubernetes(rendered, kustomization):
    """Standard objects against the Kubernetes schemas (kubernetes-validate, strict); the
    pods and the Service inside the Dask objects as the Pods and Service the operator makes."""
    import kubernetes_validate

    version = kubernetes_validate.latest_version()
    checked = 0
    for obj in rendered[kustomization]:
        if obj["kind"] not in DASK_KINDS:
            kubernetes_validate.validate(obj, version, strict=True)
            checked += 1
        for spec in pod_specs(obj):
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}
            kubernetes_validate.validate(pod, version, strict=True)
            checked += 1
        if obj["kind"] in {"DaskJob", "DaskCluster"}:
            service = cluster_spec(obj)["scheduler"]["service"]
            svc = {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "s"},
                "spec": service,
            }
            kubernetes_validate.validate(svc, version, strict=True)
            checked += 1
    assert checked >= 3


def test_kubernetes_validate_rejects_a_bad_pod():
    import kubernetes_validate

    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "i", "resources": {"limit": {}}}]}}  # fmt: skip
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_dask_objects_fit_the_operator_crds(rendered, kustomization):
    dask_objects = [o for o in rendered[kustomization] if o["kind"] in DASK_KINDS]
    assert dask_objects
    for obj in dask_objects:
        assert crd_errors(obj) == [], obj["kind"]


def test_crd_check_is_strict(rendered):
    job = copy.deepcopy(next(o for o in rendered["base"] if o["kind"] == "DaskJob"))
    job["spec"]["cluster"]["spec"]["worker"]["replica"] = 3  # typo of replicas
    del job["spec"]["job"]["spec"]["containers"]
    errors = crd_errors(job)
    assert any("replica" in e for e in errors) and any("containers" in e for e in errors)


def _containers(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for spec in pod_specs(obj) for c in spec["containers"]}


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_manifests_keep_the_rules(rendered, kustomization):
    objects = rendered[kustomization]
    configmaps = {o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"}
    for obj in (o for o in objects if o["kind"] in {"DaskJob", "DaskCluster"}):
        name = obj["metadata"]["name"]
        spec = cluster_spec(obj)
        # the Service selects this cluster's scheduler (an overlay that renames must follow)
        assert spec["scheduler"]["service"]["selector"]["dask.org/cluster-name"] == name
        for pod in pod_specs(obj):
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["runAsUser"] != 0
            for volume in pod.get("volumes", []):
                assert volume["configMap"]["name"] in configmaps  # the hashed, generated name
        containers = _containers(obj)
        for c in containers.values():
            assert re.fullmatch(r"wsidist:\d+\.\d+\.\d+", c["image"]), c["image"]
            assert "latest" not in c["image"]
            for item in c.get("env", []):  # credentials only ever come from the Secret
                if re.search(r"KEY|SECRET|TOKEN|PASSWORD", item["name"]):
                    assert item["valueFrom"]["secretKeyRef"]["name"] == "wsidist-s3"
        if "scheduler" in containers and "worker" in containers:
            worker = containers["worker"]
            env = {e["name"]: e.get("value") for e in worker["env"]}
            for k, v in worker_environ().items():
                if k.startswith("MALLOC_"):
                    assert env[k] == str(v), k  # the worker environment of deploy/README.md
            args = worker["args"]
            assert args[args.index("--nthreads") + 1] == "1"
            assert args[args.index("--memory-limit") + 1] == worker["resources"]["limits"]["memory"]
            assert worker["resources"]["requests"]["memory"]
        if "job" in containers:
            runner = " ".join(containers["job"]["args"])
            assert "$(DASK_SCHEDULER_ADDRESS)" in runner or '"$DASK_SCHEDULER_ADDRESS"' in runner


@pytest.mark.parametrize("kustomization", ["base", "overlays/rewrite"])
def test_job_files_in_the_configmap_are_valid_jobs(rendered, kustomization, tmp_path):
    """The runner's --config file exists in the mounted ConfigMap and is a valid job of its
    kind, reading from and writing to s3://."""
    from wsidist.stage1.config import build_job
    from wsidist.stage2.config import build_rewrite_job

    objects = rendered[kustomization]
    job = next(o for o in objects if o["kind"] == "DaskJob")
    args = job["spec"]["job"]["spec"]["containers"][0]["args"]
    mount = job["spec"]["job"]["spec"]["containers"][0]["volumeMounts"][0]["mountPath"]
    config_path = args[args.index("--config") + 1]
    assert config_path.startswith(mount + "/")
    (cm,) = [o for o in objects if o["kind"] == "ConfigMap"]
    text = cm["data"][config_path.removeprefix(mount + "/")]
    kind = yaml.safe_load(text)["kind"]
    assert args[1] == {"stage1": "score", "rewrite": "rewrite"}[kind]
    tmp = tmp_path / "job.yaml"
    tmp.write_text(text)
    built = (build_job if kind == "stage1" else build_rewrite_job)(tmp)
    assert all(u.startswith("s3://") for u in built.inputs) and built.out.startswith("s3://")


def test_overlays_share_the_base_cluster(rendered):
    """Rewrite and extract run on the same scheduler and worker commands as stage 1 (so the
    local run below covers them with one cluster)."""

    def commands(kustomization: str) -> list[Any]:
        job = next(o for o in rendered[kustomization] if o["kind"] == "DaskJob")
        pods = operator_pods(job)
        return [pods[r]["containers"][0]["args"] for r in ("scheduler", "worker")]

    assert commands("overlays/rewrite") == commands("base") == commands("overlays/extract")

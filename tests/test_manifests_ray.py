"""The KubeRay manifests in ``deploy/ray/``, checked offline.

The folder renders with ``kubectl kustomize`` (skipped without kubectl; the raw files are still checked); the core
objects validate against the Kubernetes schemas like the controller's (``tests/test_manifests.py``); the RayJob,
whose CRD ships no schema there, gets its structure checked by hand: an ``rlscale compare --executor ray``
entrypoint, a head and a CPU worker group with the same image, the MLflow tracking URI on both, the cluster deleted
after the job, and the results volume on the head where ``--out`` writes.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_manifests import KUBECTL, NO_KUBECTL, _documents, ident, one, render, schema_problems

ROOT = Path(__file__).resolve().parents[1]
RAY = ROOT / "deploy" / "ray"
RAW_FILES = sorted(p for p in RAY.glob("*.yaml") if p.name != "kustomization.yaml")
RAY_API = "ray.io/v1"
MLFLOW_ENV = "MLFLOW_TRACKING_URI"
RESULTS = "/results"


def _raw() -> list[dict[str, Any]]:
    return [doc for path in RAW_FILES for doc in _documents(path.read_text())]


def _objects() -> list[dict[str, Any]]:
    """Rendered when kubectl is there, else the raw files (the same objects without the kustomization's edits)."""
    return render(RAY) if KUBECTL else _raw()


def _pods(rayjob: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Pod specs by group: ``head`` and each worker group's name."""
    cluster = rayjob["spec"]["rayClusterSpec"]
    pods = {"head": cluster["headGroupSpec"]["template"]["spec"]}
    pods |= {g["groupName"]: g["template"]["spec"] for g in cluster["workerGroupSpecs"]}
    return pods


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in container.get("env", [])}


def test_kustomization_references_exist() -> None:
    k = yaml.safe_load((RAY / "kustomization.yaml").read_text())
    assert k["apiVersion"].startswith("kustomize.config.k8s.io/") and k["kind"] == "Kustomization"
    missing = [r for r in k["resources"] if not (RAY / r).exists()]
    assert not missing, f"{RAY}: missing {missing}"
    assert sorted(k["resources"]) == sorted(p.name for p in RAW_FILES), "every manifest file is applied"


def test_renders() -> None:
    if KUBECTL is None:
        pytest.skip(NO_KUBECTL)
    objs = render(RAY)
    keys = [ident(o) for o in objs]
    assert len(keys) == len(set(keys)), f"duplicate objects: {keys}"
    assert {o["kind"] for o in objs} == {"Namespace", "ConfigMap", "PersistentVolumeClaim", "RayJob"}
    assert all(o["metadata"].get("namespace") == "rlscale-experiments" for o in objs if o["kind"] != "Namespace")


def test_core_objects_validate() -> None:
    problems = [p for obj in _objects() if obj["apiVersion"] != RAY_API for p in schema_problems(obj)]
    assert not problems, "\n".join(problems)


def test_rayjob_structure() -> None:
    objs = _objects()
    job = one(objs, "RayJob")
    assert job["apiVersion"] == RAY_API
    spec = job["spec"]
    words = shlex.split(spec["entrypoint"])
    assert words[words.index("rlscale") + 1] == "compare", spec["entrypoint"]
    assert (ROOT / words[words.index("compare") + 1]).is_file(), "the experiment file is in the repo (and image)"
    assert words[words.index("--executor") + 1] == "ray"
    out = words[words.index("--out") + 1]
    assert out.startswith(f"{RESULTS}/"), out
    assert spec["shutdownAfterJobFinishes"] is True
    assert isinstance(spec["ttlSecondsAfterFinished"], int) and spec["ttlSecondsAfterFinished"] >= 0

    cluster = spec["rayClusterSpec"]
    workers = cluster["workerGroupSpecs"]
    assert workers, "at least one worker group"
    for group in workers:
        assert group["groupName"] and isinstance(group["rayStartParams"], dict)
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], group["groupName"]
    head_params = cluster["headGroupSpec"]["rayStartParams"]
    assert all(isinstance(v, str) for v in head_params.values()), "rayStartParams values are strings"

    config_map = one(objs, "ConfigMap", "rlscale-mlflow")
    images = set()
    for group, pod in _pods(job).items():
        containers = pod["containers"]
        assert containers and all(c.get("image") for c in containers), group
        images |= {c["image"] for c in containers}
        ray = containers[0]  # KubeRay runs Ray in the first container
        cpu = ray["resources"]["requests"]["cpu"]
        assert ray["resources"]["limits"]["memory"] == ray["resources"]["requests"]["memory"], group
        assert cpu, group
        ref = _env(ray).get(MLFLOW_ENV, {})
        if "valueFrom" in ref:
            key = ref["valueFrom"]["configMapKeyRef"]
            assert key["name"] == config_map["metadata"]["name"] and key["key"] in config_map["data"], group
        else:
            assert ref.get("value"), f"{group}: {MLFLOW_ENV} is not set"
    assert len(images) == 1, f"one image across the head and workers: {sorted(images)}"

    head = _pods(job)["head"]
    mounts = {m["mountPath"]: m["name"] for m in head["containers"][0].get("volumeMounts", [])}
    assert RESULTS in mounts, f"the head (where the driver runs) mounts {RESULTS}"
    volume = next(v for v in head["volumes"] if v["name"] == mounts[RESULTS])
    one(objs, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])


def test_ray_version_matches_image() -> None:
    """rayVersion is the Ray the Dockerfile builds on."""
    job = one(_raw(), "RayJob")
    text = (RAY / "Dockerfile").read_text()
    assert f"ARG RAY_VERSION={job['spec']['rayClusterSpec']['rayVersion']}" in text
    assert 'pip install ".[ray]"' in text

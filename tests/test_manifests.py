"""The shipping manifests in ``deploy/``, checked offline.

Every kustomization renders with ``kubectl kustomize``; every rendered object validates against the Kubernetes
schemas (``kubernetes-validate``, strict: an unknown field is an error); GMP ``PodMonitoring`` objects, whose CRD
ships no schema there, get their required fields checked by hand. The Role grants exactly what the controller
calls, and the RBAC check is shown to catch over-grants. The pieces agree with each other: the ConfigMap is a
valid controller config, the Role's names, the probes' port and the monitored labels follow it, the Dockerfile's
user and entrypoint match the Deployment. Without ``kubectl`` only rendering is skipped: the raw YAML files are
still validated.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.skips import NO_KUBECTL

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
KUBECTL = shutil.which("kubectl")
K8S_VERSION = "1.35.0"  # a version kubernetes-validate ships; GKE's regular channel is at or near it
API_VERSIONS = {
    "v1",
    "apps/v1",
    "rbac.authorization.k8s.io/v1",
    "coordination.k8s.io/v1",
    "monitoring.googleapis.com/v1",
}
CONTROLLER = "rlscale-controller"  # Deployment, ServiceAccount, Role and its label value
CONFIG_MAP = "rlscale-controller-config"  # generated, with a content-hash suffix
CONFIG_KEY = "controller.yaml"  # the settings file, its ConfigMap key and the file name the entrypoint reads
CONFIG_DIR = "/etc/rlscale"
IMAGE_AGENTS = "/opt/rlscale/agents"  # the Dockerfile copies agents/ there (fallback_hpa files)
HPA_BOUNDS = DEPLOY / "controller" / "components" / "manage-hpa-bounds"
HPA_PATCH = {("autoscaling", "horizontalpodautoscalers", "patch")}  # the contract: only with manage-bounds
WILDCARD = "*"
Triple = tuple[str, str, str]  # (apiGroup, resource, verb)


def _documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


RAY = DEPLOY / "ray"  # KubeRay's RayJob (ray.io/v1, no schema here): tests/test_manifests_ray.py checks it


def _ours(paths) -> list[Path]:
    return sorted(p for p in paths if RAY not in p.parents)


def _kustomizations(kind: str) -> list[Path]:
    return [
        p.parent for p in _ours(DEPLOY.rglob("kustomization.yaml")) if yaml.safe_load(p.read_text())["kind"] == kind
    ]


KUSTOMIZATIONS = _kustomizations("Kustomization")
COMPONENTS = _kustomizations("Component")
CONFIG_FILES = _ours(DEPLOY.rglob(CONFIG_KEY))
RAW_FILES = _ours(p for p in DEPLOY.rglob("*.yaml") if p.name not in ("kustomization.yaml", CONFIG_KEY))


def _id(path: Path) -> str:
    return str(path.relative_to(DEPLOY))


@functools.cache
def _render(folder: Path) -> tuple[dict[str, Any], ...]:
    if KUBECTL is None:
        pytest.skip(NO_KUBECTL)
    run = subprocess.run([KUBECTL, "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"kubectl kustomize {folder} failed:\n{run.stderr}"
    return tuple(_documents(run.stdout))


def render(folder: Path) -> list[dict[str, Any]]:
    """The rendered objects (a fresh copy: tests may mutate them)."""
    return copy.deepcopy(list(_render(folder)))


def ident(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return f"{obj.get('kind')}/{meta.get('namespace', '')}/{meta.get('name')}"


def find(objs: Iterable[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objs: Iterable[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = find(objs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[ident(o) for o in found]}"
    return found[0]


# --- schemas -------------------------------------------------------------------------------------------------------

_DURATION = re.compile(r"^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$")  # Prometheus duration
# PodMonitoring (monitoring.googleapis.com/v1), from the CRD in GoogleCloudPlatform/prometheus-engine
# (charts/operator/crds/monitoring.googleapis.com_podmonitorings.yaml): field names and what it requires.
_PM_SPEC = {"endpoints", "selector", "targetLabels", "filterRunning", "limits"}
_PM_ENDPOINT = {
    "port", "interval", "path", "scheme", "params", "timeout", "metricRelabeling",
    "authorization", "basicAuth", "oauth2", "proxyUrl", "tls",
}  # fmt: skip
_PM_TARGET_LABELS = {"metadata", "fromPod"}
_PM_METADATA = {"container", "node", "pod", "top_level_controller_name", "top_level_controller_type"}
_SELECTOR = {"matchLabels", "matchExpressions"}


def podmonitoring_problems(obj: dict[str, Any]) -> list[str]:
    """What the PodMonitoring CRD's schema would reject: spec.endpoints (1-10, each with port and a Prometheus
    duration interval) and spec.selector are required; unknown fields are pruned by the API server, so here they
    are errors, as typos."""
    where, spec = ident(obj), obj.get("spec")
    if not isinstance(spec, dict):
        return [f"{where}: spec is required"]
    problems = [f"{where}: spec.{k}: unknown field" for k in sorted(set(spec) - _PM_SPEC)]
    problems += [f"{where}: spec.{k} is required" for k in ("endpoints", "selector") if k not in spec]
    selector = spec.get("selector", {})
    problems += [f"{where}: spec.selector.{k}: unknown field" for k in sorted(set(selector) - _SELECTOR)]
    endpoints = spec.get("endpoints", [])
    if not 1 <= len(endpoints) <= 10:
        problems.append(f"{where}: spec.endpoints: 1 to 10 items, not {len(endpoints)}")
    for i, ep in enumerate(endpoints):
        at = f"{where}: spec.endpoints[{i}]"
        problems += [f"{at}.{k}: unknown field" for k in sorted(set(ep) - _PM_ENDPOINT)]
        problems += [f"{at}.{k} is required" for k in ("port", "interval") if k not in ep]
        if ep.get("port") in (0, ""):
            problems.append(f"{at}.port: empty")
        for key in ("interval", "timeout"):
            if key in ep and not (isinstance(ep[key], str) and ep[key] and _DURATION.match(ep[key])):
                problems.append(f"{at}.{key}: {ep[key]!r} is not a Prometheus duration")
        if "path" in ep and not str(ep["path"]).startswith("/"):
            problems.append(f"{at}.path: {ep['path']!r} must start with /")
        if ep.get("scheme", "http") not in ("http", "https"):
            problems.append(f"{at}.scheme: {ep['scheme']!r} is not http or https")
    labels = spec.get("targetLabels", {})
    problems += [f"{where}: spec.targetLabels.{k}: unknown field" for k in sorted(set(labels) - _PM_TARGET_LABELS)]
    problems += [f"{where}: spec.targetLabels.metadata: {m!r} not allowed" for m in labels.get("metadata", [])
                 if m not in _PM_METADATA]  # fmt: skip
    problems += [f"{where}: spec.targetLabels.fromPod: `from` is required" for m in labels.get("fromPod", [])
                 if "from" not in m]  # fmt: skip
    return problems


def schema_problems(obj: dict[str, Any]) -> list[str]:
    """Offline schema check of one object; [] when it passes. A kind the schemas do not know (a removed or misspelt
    apiVersion) is a problem, not a skip."""
    if obj.get("apiVersion") not in API_VERSIONS:
        return [f"{ident(obj)}: apiVersion {obj.get('apiVersion')!r} is not one of the pinned {sorted(API_VERSIONS)}"]
    if obj["apiVersion"] == "monitoring.googleapis.com/v1":  # a CRD: no schema in kubernetes-validate
        if obj["kind"] != "PodMonitoring":
            return [f"{ident(obj)}: no offline check for {obj['kind']}"]
        return podmonitoring_problems(obj)
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{ident(obj)}: {'.'.join(map(str, exc.path))}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"{ident(obj)}: {exc.message}"]
    return []


# --- RBAC ----------------------------------------------------------------------------------------------------------


def triples(rules: Iterable[dict[str, Any]]) -> set[Triple]:
    """Role rules (or REQUIRED_RULES) as the set of (apiGroup, resource, verb) they grant."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


def _name_scopes(spec: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """Which object names the controller touches, for rules narrowed with resourceNames."""
    return {
        ("apps", "deployments/scale"): {spec["deployment"]},
        ("coordination.k8s.io", "leases"): {spec["leader_election"]["lease_name"]},
    }


def rbac_problems(objs: list[dict[str, Any]], spec: dict[str, Any], expected: set[Triple]) -> list[str]:
    """Everything in a render's RBAC beyond what the controller uses: cluster-wide objects, wildcards, grants
    outside ``expected``, names other than the configured ones, bindings to other accounts or roles."""
    problems = [f"{ident(o)}: cluster-wide" for o in objs if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    roles = {o["metadata"]["name"]: o for o in find(objs, "Role")}
    accounts = {(o["metadata"].get("namespace"), o["metadata"]["name"]) for o in find(objs, "ServiceAccount")}
    scopes = _name_scopes(spec)
    granted: set[Triple] = set()
    for role in roles.values():
        for rule in role.get("rules", []):
            fields = ("apiGroups", "resources", "verbs", "resourceNames")
            if any(WILDCARD in rule.get(f, []) for f in fields):
                problems.append(f"{ident(role)}: wildcard in {rule}")
            if "nonResourceURLs" in rule:
                problems.append(f"{ident(role)}: nonResourceURLs in a Role: {rule}")
            if "resourceNames" in rule:
                for group in rule.get("apiGroups", []):
                    for resource in rule.get("resources", []):
                        allowed = scopes.get((group, resource))
                        if allowed is None or set(rule["resourceNames"]) != allowed:
                            problems.append(f"{ident(role)}: {group}/{resource} names {rule['resourceNames']}, "
                                            f"the config uses {sorted(allowed or [])}")  # fmt: skip
        granted |= triples(role.get("rules", []))
    problems += [f"grants {t} beyond what the controller calls" for t in sorted(granted - expected)]
    for binding in find(objs, "RoleBinding"):
        ref, namespace = binding["roleRef"], binding["metadata"].get("namespace")
        if ref.get("kind") != "Role" or ref.get("name") not in roles:
            problems.append(f"{ident(binding)}: binds {ref}, not a Role of this render")
        for subject in binding.get("subjects", []):
            account = (subject.get("namespace"), subject.get("name"))
            if subject.get("kind") != "ServiceAccount" or account not in accounts or account[0] != namespace:
                problems.append(f"{ident(binding)}: subject {subject} is not this render's ServiceAccount")
    return problems


# --- the controller's configuration -------------------------------------------------------------------------------


def settings_file(folder: Path) -> Path | None:
    """The controller.yaml a kustomization's ConfigMap comes from: its own generator's, else its bases'."""
    k = yaml.safe_load((folder / "kustomization.yaml").read_text())
    for generator in k.get("configMapGenerator", []):
        if generator["name"] == CONFIG_MAP:
            return folder / generator["files"][0].split("=")[-1]
    bases = [folder / r for r in k.get("resources", []) if (folder / r).is_dir()]
    return next((found for base in bases if (found := settings_file(base)) is not None), None)


def config_text(objs: list[dict[str, Any]]) -> str:
    config_maps = [o for o in find(objs, "ConfigMap") if o["metadata"]["name"].startswith(CONFIG_MAP)]
    assert len(config_maps) == 1, [ident(o) for o in config_maps]
    return config_maps[0]["data"][CONFIG_KEY]


def config_spec(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return yaml.safe_load(config_text(objs))["spec"]


def controller_container(objs: list[dict[str, Any]]) -> dict[str, Any]:
    pod = one(objs, "Deployment", CONTROLLER)["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == "controller")


def _flags(args: Iterable[str]) -> set[str]:
    return {a.split("=", 1)[0] for a in args if a.startswith("--")}


# --- tests: raw files (no kubectl needed) -------------------------------------------------------------------------


@pytest.mark.parametrize("path", RAW_FILES, ids=_id)
def test_raw_manifest_validates(path: Path) -> None:
    """Each manifest file on its own is a set of complete, schema-valid objects (kustomize only adds names)."""
    docs = _documents(path.read_text())
    assert docs, f"{path}: empty"
    problems = [p for doc in docs for p in schema_problems(doc)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("folder", KUSTOMIZATIONS + COMPONENTS, ids=_id)
def test_kustomization_references_exist(folder: Path) -> None:
    """What a kustomization names is there, so a missing file fails here even where kubectl is not."""
    k = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert k["apiVersion"].startswith("kustomize.config.k8s.io/")
    named = list(k.get("resources", [])) + list(k.get("components", []))
    named += [f for gen in k.get("configMapGenerator", []) for f in gen.get("files", [])]
    named += [p["path"] for p in k.get("patches", []) if "path" in p]
    missing = [n for n in named if not (folder / n.split("=", 1)[-1]).exists()]
    assert not missing, f"{folder}: missing {missing}"


@pytest.mark.parametrize("path", CONFIG_FILES, ids=_id)
def test_controller_settings_validate(path: Path) -> None:
    """Each ConfigMap source loads with the controller's own validator; a fallback HPA it names is baked into the
    image (agents/ copied to /opt/rlscale/agents) and is an HPA manifest the controller accepts."""
    config = pytest.importorskip("rlscale.deploy.config", reason="rlscale.deploy.config is not there yet")
    spec = config.load_controller_config(path).spec
    if spec.fallback_hpa is not None:
        assert spec.fallback_hpa.startswith(f"{IMAGE_AGENTS}/"), "a path inside the image"
        local = ROOT / "agents" / Path(spec.fallback_hpa).relative_to(IMAGE_AGENTS)
        controller = pytest.importorskip("rlscale.deploy.controller", reason="rlscale.deploy.controller is not there")
        assert controller.load_fallback(str(local)) is not None


def test_dockerfile_essentials() -> None:
    """Not built here (no registry in CI): parsed for what the Deployment and the project rely on."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    stages = [i for i, line in enumerate(lines) if line.upper().startswith("FROM ")]
    assert len(stages) >= 2, "multi-stage: a build stage and a slim runtime stage"
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.MULTILINE))
    bases = [re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], m[0]), lines[i].split()[1]) for i in stages]
    assert all(re.fullmatch(r"python:3\.11-slim\S*", b) for b in bases), bases
    final = lines[stages[-1] :]
    users = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    assert users, "the runtime stage sets USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) > 0, f"USER {users[-1]}: a numeric non-root uid (runAsNonRoot can check it)"
    entrypoints = [json.loads(line.split(None, 1)[1]) for line in final if line.upper().startswith("ENTRYPOINT ")]
    assert entrypoints[-1] == ["rlscale", "controller", "--config", f"{CONFIG_DIR}/{CONFIG_KEY}"]
    assert f"COPY agents {IMAGE_AGENTS}" in final
    pin = re.search(r"pip install torch==(\S+) --index-url https://download\.pytorch\.org/whl/cpu", text)
    assert pin, "torch is installed from PyTorch's CPU index"
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"torch=={pin[1]}" in [d.replace(" ", "") for d in deps], "the image's torch pin is pyproject's"
    assert re.search(r"pip install .*google-auth", text), "Google Managed Prometheus (overlays/gke) needs google-auth"
    pod = yaml.safe_load((DEPLOY / "controller" / "deployment.yaml").read_text())["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid)


def test_dockerignore_keeps_local_state_out() -> None:
    entries = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".venv", "runs", "mlruns", "mlflow.db", ".git"} <= entries


# --- tests: rendered (kubectl kustomize) ---------------------------------------------------------------------------


@pytest.mark.parametrize("folder", KUSTOMIZATIONS, ids=_id)
def test_renders_and_validates(folder: Path) -> None:
    objs = render(folder)
    keys = [ident(o) for o in objs]
    assert len(keys) == len(set(keys)), f"duplicate objects: {keys}"
    problems = [p for obj in objs for p in schema_problems(obj)]
    assert not problems, "\n".join(problems)


def test_role_grants_exactly_what_the_controller_calls() -> None:
    kube = pytest.importorskip("rlscale.deploy.kube", reason="rlscale.deploy.kube is not there yet")
    required = getattr(kube, "REQUIRED_RULES", None)
    if required is None:
        pytest.skip("rlscale.deploy.kube has no REQUIRED_RULES yet")
    role = one(render(DEPLOY / "controller"), "Role", CONTROLLER)
    assert triples(role["rules"]) == triples(required)


@pytest.mark.parametrize("folder", KUSTOMIZATIONS, ids=_id)
def test_rbac_is_least_privilege(folder: Path) -> None:
    objs = render(folder)
    if not find(objs, "Role"):
        assert not find(objs, "RoleBinding") and not find(objs, "ClusterRole")
        return
    expected = triples(one(render(DEPLOY / "controller"), "Role", CONTROLLER)["rules"])  # = REQUIRED_RULES, above
    assert rbac_problems(objs, config_spec(objs), expected) == []


def _mutations() -> dict[str, Any]:
    def rule(objs: list[dict[str, Any]], resource: str) -> dict[str, Any]:
        role = one(objs, "Role", CONTROLLER)
        return next(r for r in role["rules"] if resource in r["resources"])

    def account(objs: list[dict[str, Any]]) -> dict[str, Any]:
        return one(objs, "RoleBinding", CONTROLLER)["subjects"][0]

    return {
        "extra verb": lambda o: rule(o, "pods")["verbs"].append("delete"),
        "wildcard verb": lambda o: rule(o, "pods").update(verbs=[WILDCARD]),
        "wildcard resource": lambda o: rule(o, "events").update(resources=[WILDCARD]),
        "wildcard name": lambda o: rule(o, "deployments/scale").update(resourceNames=[WILDCARD]),
        "other deployment": lambda o: rule(o, "deployments/scale").update(resourceNames=["other"]),
        "extra resource": lambda o: one(o, "Role", CONTROLLER)["rules"].append(
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
        ),
        "deployment itself": lambda o: rule(o, "deployments/scale").update(resources=["deployments"]),
        "hpa patch without the component": lambda o: rule(o, "horizontalpodautoscalers")["verbs"].append("patch"),
        "cluster role": lambda o: one(o, "Role", CONTROLLER).update(kind="ClusterRole"),
        "default account": lambda o: account(o).update(name="default"),
        "account elsewhere": lambda o: account(o).update(namespace="kube-system"),
    }


@pytest.mark.parametrize("mutation", list(_mutations()))
def test_rbac_check_catches_overgrants(mutation: str) -> None:
    """Bad input: each way of granting more than the controller uses is reported."""
    objs = render(DEPLOY / "overlays" / "gke")
    spec = config_spec(objs)
    expected = triples(one(objs, "Role", CONTROLLER)["rules"])
    assert rbac_problems(objs, spec, expected) == []
    _mutations()[mutation](objs)
    assert rbac_problems(objs, spec, expected), f"{mutation}: not caught"


def test_manage_hpa_bounds_component_adds_only_hpa_patch(tmp_path: Path) -> None:
    """The optional component (existing_hpa: manage-bounds) adds HPA patch, bound to the controller, nothing else."""
    base = os.path.relpath(DEPLOY / "controller", tmp_path)  # kustomize refuses absolute paths
    component = os.path.relpath(HPA_BOUNDS, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: test\n"
        f"resources: [{base}]\ncomponents: [{component}]\n"
    )
    objs = render(tmp_path)
    problems = [p for obj in objs for p in schema_problems(obj)]
    assert not problems, "\n".join(problems)
    try:
        from rlscale.deploy.kube import MANAGE_BOUNDS_RULES

        hpa_patch = triples(MANAGE_BOUNDS_RULES)
    except ImportError:  # the controller's constant not there: the contract's table
        hpa_patch = HPA_PATCH
    base_rules = triples(one(render(DEPLOY / "controller"), "Role", CONTROLLER)["rules"])
    extra = [r for r in find(objs, "Role") if r["metadata"]["name"] != CONTROLLER]
    assert len(extra) == 1 and triples(extra[0]["rules"]) == hpa_patch
    assert rbac_problems(objs, config_spec(objs), base_rules | hpa_patch) == []


@pytest.mark.parametrize("folder", [k for k in KUSTOMIZATIONS if k.name != "jetstream"], ids=_id)
def test_config_map_is_the_settings_file(folder: Path) -> None:
    """The generated ConfigMap carries a controller.yaml unchanged (validated above), mounted where the image's
    entrypoint reads it."""
    objs = render(folder)
    source = settings_file(folder)
    assert source is not None and config_text(objs) == source.read_text()
    config_map = next(o for o in find(objs, "ConfigMap") if o["metadata"]["name"].startswith(CONFIG_MAP))
    pod = one(objs, "Deployment", CONTROLLER)["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v.get("configMap", {}).get("name") == config_map["metadata"]["name"])
    mounts = {m["name"]: m for m in controller_container(objs)["volumeMounts"]}
    assert mounts[volume["name"]]["mountPath"] == CONFIG_DIR and mounts[volume["name"]]["readOnly"]


@pytest.mark.parametrize("folder", [k for k in KUSTOMIZATIONS if k.name != "jetstream"], ids=_id)
def test_controller_deployment_is_hardened_and_follows_config(folder: Path) -> None:
    objs = render(folder)
    spec = config_spec(objs)
    deployment = one(objs, "Deployment", CONTROLLER)
    replicas = deployment["spec"]["replicas"]
    assert 1 <= replicas <= 2 and (replicas == 1 or spec["leader_election"]["enabled"])
    pod = deployment["spec"]["template"]["spec"]
    container = controller_container(objs)
    assert pod["serviceAccountName"] == CONTROLLER and pod["securityContext"]["runAsNonRoot"] is True
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"] and "add" not in security["capabilities"]
    assert {"requests", "limits"} <= set(container["resources"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz" and ports.get(get["port"], get["port"]) == spec["listen_port"], probe
    env = {e["name"]: e for e in container["env"]}
    assert "value" in env["MLFLOW_TRACKING_URI"]
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert "/tmp" in writable, "MLflow downloads the policy under a writable /tmp"


def test_controller_flags_exist_in_the_cli() -> None:
    """The flags the overlays add to the entrypoint are options of `rlscale controller`."""
    import typer

    from rlscale.cli import app

    command = typer.main.get_command(app)
    controller = getattr(command, "commands", {}).get("controller")
    if controller is None:
        pytest.skip("the `rlscale controller` command is not there yet")
    options = {opt for param in controller.params for opt in getattr(param, "opts", [])}
    used = {"--config"} | _flags(controller_container(render(DEPLOY / "overlays" / "shadow"))["args"])
    assert used <= options, f"not options of `rlscale controller`: {sorted(used - options)}"


def test_shadow_overlay_is_the_gke_setup_in_dry_run() -> None:
    live, shadow = render(DEPLOY / "overlays" / "gke"), render(DEPLOY / "overlays" / "shadow")
    live_args, shadow_args = controller_container(live)["args"], controller_container(shadow)["args"]
    assert "--dry-run" not in live_args and config_spec(live)["dry_run"] is False
    assert shadow_args == [*live_args, "--dry-run"]
    shadow_args.pop()
    assert shadow == live, "the shadow overlay changes nothing else"


def _pods(objs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, pod template) pairs."""
    for deployment in find(objs, "Deployment"):
        yield deployment, deployment["spec"]["template"]


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _ports(template: dict[str, Any]) -> set[str | int]:
    ports = [p for c in template["spec"]["containers"] for p in c.get("ports", [])]
    return {p.get("name") for p in ports} | {p["containerPort"] for p in ports}


@pytest.mark.parametrize("folder", KUSTOMIZATIONS, ids=_id)
def test_services_and_monitors_reach_pods(folder: Path) -> None:
    """Every Service and PodMonitoring selects a pod template of the render, on a port it declares; every
    Deployment's selector matches its own template."""
    objs = render(folder)
    for workload, template in _pods(objs):
        assert _selects(workload["spec"]["selector"]["matchLabels"], template["metadata"]["labels"]), ident(workload)
    targets = [(o, o["spec"]["selector"], [p["targetPort"] for p in o["spec"]["ports"]]) for o in find(objs, "Service")]
    targets += [
        (o, o["spec"]["selector"]["matchLabels"], [e["port"] for e in o["spec"]["endpoints"]])
        for o in find(objs, "PodMonitoring")
    ]
    for obj, selector, ports in targets:
        selected = [t for _, t in _pods(objs) if _selects(selector, t["metadata"]["labels"])]
        assert selected, f"{ident(obj)} selects no pods of this render"
        assert all(set(ports) <= _ports(t) for t in selected), f"{ident(obj)}: ports {ports} not all declared"


def test_jetstream_example_matches_controller_config() -> None:
    """The example server is what the controller's config names: the Deployment, in the controller's namespace,
    its pods selected by its selector and scraped on JetStream's metrics port, on a TPU v5e 2x4 host."""
    objs = render(DEPLOY / "overlays" / "gke")
    spec = config_spec(objs)
    deployment = one(objs, "Deployment", spec["deployment"])
    namespace = deployment["metadata"]["namespace"]
    assert one(objs, "Deployment", CONTROLLER)["metadata"]["namespace"] == namespace
    assert "--namespace=$(POD_NAMESPACE)" in controller_container(objs)["args"]
    assert "replicas" not in deployment["spec"], "the controller owns replicas; `kubectl apply` must not reset them"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _selects(deployment["spec"]["selector"]["matchLabels"], labels)
    monitors = [m for m in find(objs, "PodMonitoring") if _selects(m["spec"]["selector"]["matchLabels"], labels)]
    assert len(monitors) == 1 and monitors[0]["metadata"]["namespace"] == namespace
    pod = deployment["spec"]["template"]["spec"]
    server = next(c for c in pod["containers"] if c["name"] == "maxengine-server")
    metrics_port = next(
        p["containerPort"] for p in server["ports"] if p["name"] == monitors[0]["spec"]["endpoints"][0]["port"]
    )
    assert metrics_port == spec["metrics"]["scrape_port"] and f"prometheus_port={metrics_port}" in server["args"]
    assert 9000 in _ports(deployment["spec"]["template"])
    assert pod["nodeSelector"] == {
        "cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
        "cloud.google.com/gke-tpu-topology": "2x4",
    }
    assert server["resources"]["requests"]["google.com/tpu"] == server["resources"]["limits"]["google.com/tpu"] == "8"

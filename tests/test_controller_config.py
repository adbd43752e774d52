"""The controller's settings file: the shipped example loads, defaults are the contract's, errors name the field,
and command-line flags override the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rlscale.deploy.config import load_controller_config
from rlscale.specs.catalog import SpecError

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, spec: dict, **top) -> Path:
    path = tmp_path / "controller.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "rlscale/v1", "kind": "ControllerConfig", "spec": spec, **top}))
    return path


def test_defaults_are_the_contracts():
    spec = load_controller_config(None, policy="models:/p@champion").spec
    assert (spec.namespace, spec.deployment, spec.sync_period_s) == ("default", "jetstream", 15)
    assert (spec.min_replicas, spec.max_replicas, spec.max_change_per_step) == (1, 16, 2)
    assert spec.metrics.source == "prometheus" and spec.metrics.stale_after_s == 60
    assert spec.existing_hpa == "refuse" and spec.leader_election.enabled and not spec.dry_run


def test_the_shipped_settings_file_loads():
    path = ROOT / "deploy" / "controller" / "controller.yaml"
    if not path.exists():
        pytest.skip("deploy/controller/controller.yaml not there")
    assert load_controller_config(path).spec.policy.startswith("models:/")


def test_flags_override_the_file(tmp_path):
    path = write(tmp_path, {"policy": "agents/hpa-slots-used.yaml", "namespace": "serving", "dry_run": False})
    spec = load_controller_config(
        path, namespace="other", dry_run=True, prometheus_url="http://p:9090", metrics_source="scrape", policy=None
    ).spec
    assert (spec.namespace, spec.dry_run, spec.policy) == ("other", True, "agents/hpa-slots-used.yaml")
    assert (spec.metrics.prometheus_url, spec.metrics.source) == ("http://p:9090", "scrape")


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"policy": "p", "max_replicas": 0}, "spec.max_replicas"),
        ({"policy": "p", "min_replicas": 5, "max_replicas": 2}, "min_replicas (5) exceeds max_replicas (2)"),
        ({"policy": "p", "metrics": {"source": "graphite"}}, "spec.metrics.source"),
        ({"policy": "p", "metrics": {"prometheus_ulr": "x"}}, "spec.metrics.prometheus_ulr"),
        ({"policy": "p", "existing_hpa": "ignore"}, "spec.existing_hpa"),
        ({"policy": "p", "leader_election": {"renew_period_s": 20}}, "renew_period_s (20) must be shorter"),
        ({}, "spec.policy"),
    ],
)
def test_bad_settings_name_the_field(tmp_path, spec, field):
    path = write(tmp_path, spec)
    with pytest.raises(SpecError, match=str(path)) as err:
        load_controller_config(path)
    assert field in str(err.value)


def test_wrong_kind_and_unreadable_file(tmp_path):
    with pytest.raises(SpecError, match="kind"):
        load_controller_config(write(tmp_path, {"policy": "p"}, kind="HorizontalPodAutoscaler"))
    with pytest.raises(SpecError, match="cannot read"):
        load_controller_config(tmp_path / "missing.yaml")
    with pytest.raises(SpecError, match=r"command line.*spec\.policy"):
        load_controller_config(None)


def test_relative_fallback_hpa_resolves_beside_the_file(tmp_path):
    (tmp_path / "hpa.yaml").write_text((ROOT / "agents" / "hpa-slots-used.yaml").read_text())
    spec = load_controller_config(write(tmp_path, {"policy": "p", "fallback_hpa": "hpa.yaml"})).spec
    assert spec.fallback_hpa == str(tmp_path / "hpa.yaml")

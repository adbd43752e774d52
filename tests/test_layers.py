"""The package's shape as tests: one name per concept, layers that hold at run time, shipped files found by name.

A class name defined twice (``Decision`` in the HPA and in the control loop, ``SpecError`` in the HPA spec and in
the catalog) makes an import line ambiguous to read and a wrong import silently plausible. The import graph's layers
are checked by ``lint-imports`` (pyproject.toml); what these tests add is what the graph cannot see: that loading an
agent imports only the kind it needs, so the live controller never pulls in the simulator through the registry.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

import pytest

import rlscale
from rlscale.agents import load_agent
from rlscale.agents.loader import KINDS, resolve
from rlscale.data import agent_file, scenario_file
from rlscale.scenario import load_scenario
from rlscale.specs.catalog import SpecError

PACKAGE = Path(rlscale.__file__).parent
ROOT = PACKAGE.parent


def class_definitions() -> dict[str, list[str]]:
    """Every class name defined anywhere in the package (nested ones included), with where each is defined."""
    where: dict[str, list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                where[node.name].append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return where


def test_no_class_name_is_defined_twice():
    twice = {name: places for name, places in class_definitions().items() if len(places) > 1}
    assert not twice, f"one name per concept; defined more than once: {twice}"


# ---- layers at run time: what loading an agent imports -------------------------------------------------------------
def imported_after(code: str) -> set[str]:
    """The rlscale modules a fresh interpreter has imported after running ``code``."""
    probe = f"import sys\n{code}\nprint(' '.join(m for m in sys.modules if m.startswith('rlscale')))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    return set(out.stdout.split())


SIMULATOR = ("rlscale.simulation", "rlscale.cluster", "rlscale.planning", "rlscale.scenario", "rlscale.emulator")


def test_the_live_controller_loads_an_hpa_without_importing_the_simulator():
    code = (
        "from rlscale.deploy.controller import load_fallback, load_policy\n"
        "load_policy('agents/hpa-slots-used.yaml'); load_fallback('agents/hpa-prefill-backlog.yaml')"
    )
    loaded = imported_after(code)
    assert not [m for m in loaded if m.startswith(SIMULATOR)], sorted(loaded)
    assert "rlscale.agents.planned" not in loaded and "rlscale.agents.learned" not in loaded  # kinds load lazily


def test_a_planned_kind_without_a_scenario_is_refused_before_the_simulator_is_imported(tmp_path):
    (tmp_path / "oracle.yaml").write_text("kind: ClairvoyantOracle\nspec: {}\n")
    code = (
        f"from rlscale.agents import load_agent\ntry:\n    load_agent({str(tmp_path / 'oracle.yaml')!r})\n"
        "except ValueError as exc:\n    assert 'pass the scenario' in str(exc), exc"
    )
    assert not [m for m in imported_after(code) if m.startswith(SIMULATOR)]


def test_every_registered_kind_resolves_to_its_builder():
    for kind, target in KINDS.items():
        assert callable(resolve(target)), kind


# ---- the shipped files, found by name or path without the checkout's root ------------------------------------------
@pytest.mark.parametrize("ref", ["steady", "steady.yaml", "envs/steady.yaml"])
def test_a_shipped_scenario_by_name_or_path(ref, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nowhere near a checkout
    assert scenario_file(ref) == (ROOT / "envs" / "steady.yaml").resolve()
    assert load_scenario(ref).name == "steady"


@pytest.mark.parametrize("ref", ["hpa-slots-used", "agents/hpa-slots-used.yaml", "tuned/hpa-slots-used.diurnal"])
def test_a_shipped_agent_by_name_or_path(ref, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert agent_file(ref).is_relative_to((ROOT / "agents").resolve())
    assert load_agent(ref).sync_period_s == 15.0


def test_a_path_that_exists_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "steady").write_text((ROOT / "envs" / "single-pod.yaml").read_text())
    assert scenario_file("steady") == Path("steady")


def test_a_bad_name_lists_the_shipped_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError, match=r"stedy: cannot read .*shipped: .*single-pod, steady"):
        scenario_file("stedy")
    with pytest.raises(SpecError, match=r"hpa-slot: cannot read .*shipped: .*hpa-slots-used, .*tuned/"):
        agent_file("hpa-slot")


def test_every_shipped_file_is_package_data():
    """What a wheel carries: pyproject's package-data patterns for rlscale.data match every scenario and agent."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "rlscale.data"
    ]
    packaged = {p.resolve() for pattern in patterns for p in (PACKAGE / "data").glob(pattern)}
    shipped = {p.resolve() for folder in ("envs", "agents") for p in (ROOT / folder).rglob("*.yaml")}
    shipped |= {p.resolve() for p in (ROOT / "agents").rglob("*.json")}  # what an agent reads beside it
    shipped |= {p.resolve() for ext in ("zip", "pkl") for p in (ROOT / "agents").rglob(f"*.{ext}")}  # policy folders
    assert shipped and shipped == packaged

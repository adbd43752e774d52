"""The compiled simulator core runs the same program as its pure-Python sources: the same scenario and seed give the
same requests, event for event (every timestamp of every request, written exactly), and the same KPIs.

Each side runs in its own process: ``RLSCALE_PURE_PYTHON=1`` makes rlscale load the core from its sources
(rlscale/_core.py). Without a compiled build (no C compiler) there is nothing to compare and the tests skip — except
in CI, where the build must have happened.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import rlscale
from rlscale import _core

ROOT = Path(__file__).resolve().parents[1]
NOT_COMPILED = "the simulator core is not compiled here (no C compiler, or RLSCALE_NO_COMPILE); build: make setup"
OOM_SCENARIO = {  # one paged pod on a v5e-4 with ~20k tokens of KV room, fed long answers: OOM crashes and restarts
    "name": "paged-oom",
    "pod": {"hardware": "v5e-4", "kv_mode": "paged", "per_device_batch_size": 16, "hbm_workspace_fraction": 0.6},
    "workload": {"arrival": {"process": "poisson", "rate_per_s": 2.0},
                 "lengths": {"kind": "fixed", "prompt_tokens": 500, "output_tokens": 1500}},
    "duration_s": 900.0,
}  # fmt: skip


def compiled() -> bool:
    return rlscale.CORE == "compiled"


def simulate(tmp: Path, pure: bool, *args: str) -> tuple[dict, bytes]:
    out = tmp / ("pure" if pure else "compiled")
    env = {**os.environ, _core.PURE_ENV: "1" if pure else ""}
    done = subprocess.run(
        [sys.executable, "-m", "rlscale", "simulate", *args, "--requests", "--json", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    kpis = json.loads(done.stdout.splitlines()[-1])
    for varying in ("wall_s", "out", "planning_s", "total_s"):
        kpis.pop(varying, None)
    return kpis, (out / "requests.csv").read_bytes()


@pytest.mark.slow
@pytest.mark.skipif(not compiled(), reason=NOT_COMPILED)
@pytest.mark.parametrize(
    "args",
    [
        ("--scenario", "envs/steady.yaml", "--duration", "600"),
        ("--scenario", "envs/flash-crowd.yaml", "--duration", "900", "--agent", "agents/hpa-slots-used.yaml"),
        ("--scenario", "envs/azure-trace.yaml", "--duration", "300"),
        ("--scenario", "PAGED_OOM"),
    ],
    ids=["steady", "flash-crowd+hpa", "trace-replay", "paged-kv-oom"],
)
def test_compiled_and_pure_runs_are_identical(tmp_path, args):
    if args == ("--scenario", "PAGED_OOM"):
        path = tmp_path / "paged-oom.yaml"
        path.write_text(yaml.safe_dump(OOM_SCENARIO))
        args = ("--scenario", str(path))
    compiled_kpis, compiled_requests = simulate(tmp_path, False, *args)
    pure_kpis, pure_requests = simulate(tmp_path, True, *args)
    assert compiled_kpis["arrived"] > 500
    if "paged-oom" in args[-1]:
        assert compiled_kpis["ooms"] > 0  # the crash path is exercised
    assert compiled_kpis == pure_kpis
    assert compiled_requests == pure_requests  # every request's every timestamp, to the last bit


def test_ci_runs_the_compiled_core():
    """CI's `make test` builds the core (pip install -e compiles it): a silent fall-back to pure would leave the
    compiled path untested and CI slower."""
    if not os.environ.get("CI"):
        pytest.skip("a CI-only check (that CI built the compiled core); outside CI either build is fine")
    assert rlscale.CORE == "compiled", f"rlscale.CORE is {rlscale.CORE!r} in CI"


def test_a_source_changed_since_the_build_is_never_run_from_its_binary(tmp_path, monkeypatch):
    """A core module edited after the build would run old code from its binary: the whole core runs from source."""
    record = {module: _core.source_hash(module) for module in _core.CORE_MODULES}
    record["rlscale.serving.pod"] = "0" * 64  # as if pod.py had been edited after the build
    fake = tmp_path / "_core_build.json"
    fake.write_text(json.dumps(record))
    monkeypatch.setattr(_core, "RECORD", fake)
    monkeypatch.setattr(_core, "_built", lambda module: True)
    monkeypatch.delenv(_core.PURE_ENV, raising=False)
    assert _core.decide() == ("stale", ["rlscale.serving.pod"])
    record["rlscale.serving.pod"] = _core.source_hash("rlscale.serving.pod")
    fake.write_text(json.dumps(record))
    assert _core.decide() == ("compiled", [])
    monkeypatch.setenv(_core.PURE_ENV, "1")
    assert _core.decide() == ("pure", [])


def test_the_pure_switch_loads_every_core_module_from_source(tmp_path):
    code = "import rlscale, importlib; " + "; ".join(
        f"print(importlib.import_module({m!r}).__file__)" for m in _core.CORE_MODULES
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, _core.PURE_ENV: "1"}, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert all(line.endswith(".py") for line in out.stdout.split()), out.stdout

"""Fit the step-time model's efficiencies to measured or published step times.

The data ship with the package (``rlscale/specs/calibration``): the measured
H100/H200 profile from ``shared/data/gpu_profile`` and the published
JetStream v5e-8 figures. Which parameters each fit may move is data too
(``sets.yaml``), and so is how each set's prefills were launched (eager or
compiled), which goes into the fitted entry and the report: the per-layer
prefill overhead means a different thing under each. The step model is the
one the data ran, not a deployment's: points are priced as fitted, with no
launch adjustment (:meth:`RooflineStepModel.for_deployment` makes that).
Published MaxText decode points are priced at batch = all slots, as the pod
prices a preallocated step. Fits minimise squared log error, so every point
weighs by its relative error whatever its size.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import yaml
from scipy.optimize import least_squares

from rlscale.serving.step_time import RooflineStepModel
from rlscale.specs.catalog import hardware_catalog, load_model, validate
from rlscale.specs.hardware import HardwareSpec, PrefillLaunch, StepModelParams

_DATA = resources.files("rlscale.specs").joinpath("calibration")
_BOUNDS = {"overhead": (0.0, 5.0), "efficiency": (0.01, 1.5)}


@dataclass(frozen=True)
class StepPoint:
    """One measured step: decode (batch, kv_tokens) or prefill (prompt_tokens)."""

    model: str
    phase: str
    ms: float
    batch: int = 1
    kv_tokens: int = 0
    prompt_tokens: int = 0
    label: str = ""

    def predict(self, step_model: RooflineStepModel) -> float:
        if self.phase == "decode":
            return step_model.decode_ms(self.batch, self.kv_tokens)
        return step_model.prefill_ms(self.prompt_tokens)


@dataclass(frozen=True)
class PointFit:
    point: StepPoint
    predicted_ms: float

    @property
    def error(self) -> float:
        """Relative error, predicted / measured − 1."""
        return self.predicted_ms / self.point.ms - 1.0


@dataclass(frozen=True)
class CalibrationResult:
    name: str
    hardware: str
    params: StepModelParams
    fits: list[PointFit]

    def errors(self, phase: str | None = None) -> np.ndarray:
        return np.array([abs(f.error) for f in self.fits if phase in (None, f.point.phase)])


@cache
def calibration_sets() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(_DATA.joinpath("sets.yaml").read_text())


@cache
def published_v5e() -> dict[str, Any]:
    return yaml.safe_load(_DATA.joinpath("v5e_jetstream_published.yaml").read_text())


def gpu_profile_points(device: str) -> list[StepPoint]:
    """Rows of the measured GPU profile for one device (h100 | h200)."""
    rows = csv.DictReader(_DATA.joinpath("gpu_profile_llama2_7b.csv").read_text().splitlines())
    points = []
    for row in rows:
        if row["device"] != device:
            continue
        batch, ctx, prompt = int(row["batch"]), int(row["ctx_len"]), int(row["prompt_len"])
        label = f"b={batch} ctx={ctx}" if row["phase"] == "decode" else f"prompt={prompt}"
        points.append(StepPoint(row["model"], row["phase"], float(row["ms_median"]), batch, batch * ctx, prompt, label))
    return points


def published_points(doc: dict[str, Any]) -> list[StepPoint]:
    """The published prefill and decode step times of a YAML calibration document."""
    model = doc["model"]
    points = [
        StepPoint(model, "prefill", float(ms), prompt_tokens=int(n), label=f"prompt={n}")
        for n, ms in doc["prefill_ms"].items()
    ]
    for d in doc["decode"]:
        kv = d["slots"] * d["max_target_length"]
        label = f"b={d['batch']} slots={d['slots']}x{d['max_target_length']}"
        # a preallocated MaxText step computes (and reads) every slot whatever the active batch
        points.append(StepPoint(model, "decode", float(d["ms"]), d["slots"], kv, label=label))
    return points


def set_points(spec: dict[str, Any]) -> list[StepPoint]:
    if "gpu_profile_device" in spec:
        return gpu_profile_points(spec["gpu_profile_device"])
    return published_points(yaml.safe_load(_DATA.joinpath(spec["published"]).read_text()))


def hardware_with(host: str, params: StepModelParams) -> HardwareSpec:
    """A catalog host with the given step-model parameters (no fitted.yaml needed)."""
    entry = hardware_catalog()["hosts"][host]
    chip = dict(hardware_catalog()["chips"][entry["chip"]])
    chip.update(name=host, accelerator=entry["chip"], chips_per_host=entry["chips_per_host"])
    chip["step_model"] = params
    return validate(HardwareSpec, chip, f"hardware {host!r}")


def _bounds(name: str) -> tuple[float, float]:
    return _BOUNDS["overhead" if "overhead" in name else "efficiency"]


def fit_set(name: str) -> CalibrationResult:
    """Fit one calibration set of sets.yaml and report every point's error."""
    spec = calibration_sets()[name]
    points = set_points(spec)
    free: list[str] = spec["fit"]
    start = {
        "mem_efficiency": 0.8,
        "decode_matmul_efficiency": 0.6,
        "prefill_matmul_efficiency": 0.6,
        "attention_efficiency": 0.3,
        "decode_overhead_ms_per_layer": 0.05,
        "prefill_overhead_ms_per_layer": 0.1,
    }
    base = {**start, **spec["fixed"]}
    models = {p.model: load_model(p.model) for p in points}
    source = f"rlscale calibrate: {name} on {len(points)} points"

    def params_of(x: np.ndarray) -> StepModelParams:
        fitted = dict(zip(free, x.tolist(), strict=True))
        return StepModelParams(**{**base, **fitted}, prefill_launch=spec["prefill_launch"], calibrated_on=source)

    def residuals(x: np.ndarray) -> np.ndarray:
        hw = hardware_with(spec["hardware"], params_of(x))
        return np.array([np.log(p.predict(RooflineStepModel(models[p.model], hw)) / p.ms) for p in points])

    lo, hi = zip(*(_bounds(f) for f in free), strict=True)
    x0 = np.clip([base[f] for f in free], lo, hi)
    solution = least_squares(residuals, x0, bounds=(lo, hi), x_scale="jac")
    params = params_of(np.round(solution.x, 5))
    hw = hardware_with(spec["hardware"], params)
    fits = [PointFit(p, p.predict(RooflineStepModel(models[p.model], hw))) for p in points]
    return CalibrationResult(name, spec["hardware"], params, fits)


@dataclass(frozen=True)
class ThroughputCheck:
    model: str
    batch: int
    published_tokens_per_s: float
    predicted_tokens_per_s: float

    @property
    def error(self) -> float:
        return self.predicted_tokens_per_s / self.published_tokens_per_s - 1.0


def throughput_checks(hardware: HardwareSpec) -> list[ThroughputCheck]:
    """Price jetstream-pytorch's ShareGPT throughputs: a full batch of prefills plus its decode steps."""
    doc = published_v5e()["throughput_checks"]
    a = doc["assumptions"]
    checks = []
    for p in doc["points"]:
        sm = RooflineStepModel(load_model(p["model"]), hardware)
        batch = p["batch"]
        busy_ms = batch * sm.prefill_ms(a["prompt_tokens"]) + a["output_tokens"] * sm.decode_ms(
            batch, batch * a["cache_length"]
        )
        predicted = batch * a["output_tokens"] / (busy_ms / 1e3)
        checks.append(ThroughputCheck(p["model"], batch, p["output_tokens_per_s"], predicted))
    return checks


def fitted_yaml(results: list[CalibrationResult]) -> str:
    """The text of catalog/fitted.yaml for these fits."""
    header = "# Written by `rlscale calibrate --write`; edit the data, not this file.\n"
    body = {r.name: r.params.model_dump(mode="json") for r in results}
    return header + yaml.safe_dump(body, sort_keys=False)


def report_lines(result: CalibrationResult) -> list[str]:
    """A per-point fit-error table for one calibration set."""
    launch = result.params.prefill_launch
    deployed = (
        "a compiled deployment (pod.prefill_launch, the default) pays decode_overhead_ms_per_layer instead"
        if launch is PrefillLaunch.EAGER
        else "as a compiled deployment (pod.prefill_launch, the default) pays it"
    )
    lines = [
        f"## {result.name} (host {result.hardware})",
        f"prefill points measured under {launch} launch: prefill_overhead_ms_per_layer is the {launch} one; "
        + deployed,
        "phase    point                        measured_ms  predicted_ms  error",
    ]
    for f in result.fits:
        p = f.point
        lines.append(
            f"{p.phase:<8} {p.model + ' ' + p.label:<28} {p.ms:>11.2f}  {f.predicted_ms:>12.2f}  {f.error:+6.1%}"
        )
    for phase in ("decode", "prefill"):
        e = result.errors(phase)
        lines.append(f"{phase}: mean |error| {e.mean():.1%}, max {e.max():.1%} over {e.size} points")
    return lines

"""Resolve ``--model`` / ``--hardware`` arguments: a catalog name or a YAML/JSON file.

Model files are Hugging Face ``config.json`` documents. Hardware files are a
flat :class:`HardwareSpec`; a file may instead name a catalog ``chip`` and
override any of its fields (e.g. ``{chip: tpu-v5e, chips_per_host: 16}``).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from rlscale.specs.hardware import HardwareSpec, StepModelParams
from rlscale.specs.model import ModelSpec

T = TypeVar("T", bound=BaseModel)


class SpecError(ValueError):
    """A spec that cannot be loaded; the message names the file and field."""


def _catalog_file(name: str) -> dict[str, Any]:
    text = resources.files("rlscale.specs").joinpath("catalog", name).read_text()
    return yaml.safe_load(text)


@cache
def model_catalog() -> dict[str, dict[str, Any]]:
    return _catalog_file("models.yaml")


@cache
def hardware_catalog() -> dict[str, Any]:
    return _catalog_file("hardware.yaml")


@cache
def fitted_step_models() -> dict[str, dict[str, Any]]:
    return _catalog_file("fitted.yaml")


def read_document(path: Path) -> dict[str, Any]:
    """Read a YAML or JSON mapping, with errors that name the file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping of fields, got {type(data).__name__}")
    return data


def validate(cls: type[T], data: dict[str, Any], where: str) -> T:
    """Build ``cls`` from ``data``; on failure name each offending field."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise SpecError(f"{where}: {problems}") from exc


def _looks_like_path(ref: str) -> bool:
    return ref.endswith((".yaml", ".yml", ".json")) or "/" in ref or Path(ref).exists()


def load_model(ref: str | ModelSpec) -> ModelSpec:
    """A model by catalog name (``llama2-7b``) or path to a config.json / YAML file."""
    if isinstance(ref, ModelSpec):
        return ref
    if ref in model_catalog():
        return validate(ModelSpec, {"name": ref, **model_catalog()[ref]}, f"model catalog entry {ref!r}")
    if _looks_like_path(ref):
        path = Path(ref)
        data = read_document(path)
        data.setdefault("name", path.stem)
        return validate(ModelSpec, data, str(path))
    raise SpecError(f"unknown model {ref!r}: not a file and not one of {sorted(model_catalog())}")


def _step_model(ref: Any, where: str) -> StepModelParams | dict[str, Any]:
    if isinstance(ref, str):
        fitted = fitted_step_models()
        if ref not in fitted:
            raise SpecError(f"{where}: step_model: no fitted entry {ref!r} (have {sorted(fitted)})")
        return validate(StepModelParams, fitted[ref], f"fitted step model {ref!r}")
    return ref


def _from_chip(name: str, data: dict[str, Any], where: str) -> HardwareSpec:
    fields = dict(data)
    chip = fields.pop("chip", None)
    if chip is not None:
        chips = hardware_catalog()["chips"]
        if chip not in chips:
            raise SpecError(f"{where}: chip: unknown chip {chip!r} (have {sorted(chips)})")
        fields = {**chips[chip], "accelerator": chip, **fields}
    fields.setdefault("name", name)
    if "step_model" in fields:
        fields["step_model"] = _step_model(fields["step_model"], where)
    return validate(HardwareSpec, fields, where)


def load_hardware(ref: str | HardwareSpec) -> HardwareSpec:
    """A host by catalog name (``v5e-8``, ``h100``) or path to a YAML/JSON spec."""
    if isinstance(ref, HardwareSpec):
        return ref
    hosts = hardware_catalog()["hosts"]
    if ref in hosts:
        return _from_chip(ref, hosts[ref], f"hardware catalog entry {ref!r}")
    if _looks_like_path(ref):
        path = Path(ref)
        return _from_chip(path.stem, read_document(path), str(path))
    raise SpecError(f"unknown hardware {ref!r}: not a file and not one of {sorted(hosts)}")

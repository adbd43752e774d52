"""The base of every configuration model: strict (an unknown key is an error naming it) and immutable."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` over ``base``, mappings merged key by key (how overrides apply to a configuration's data)."""
    merged = dict(base)
    for key, value in update.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = merge(merged[key], value) if both else value
    return merged


def nested(path: str, value: Any) -> dict[str, Any]:
    """``hyperparams.learning_rate``, 1e-4 -> ``{"hyperparams": {"learning_rate": 1e-4}}``."""
    *parents, leaf = path.split(".")
    doc: dict[str, Any] = {leaf: value}
    for key in reversed(parents):
        doc = {key: doc}
    return doc

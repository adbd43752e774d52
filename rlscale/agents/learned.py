"""``kind: LearnedPolicy`` agent files, and a trained policy loaded with what it needs beyond its files: a residual
policy's baseline agent (``residual_agent``, an agent file), which only this layer can load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from rlscale.agents.loader import AgentContext, AgentFile, Scenario, load_agent
from rlscale.config import StrictModel
from rlscale.data import project_root
from rlscale.policies.learned import LearnedPolicy
from rlscale.specs.catalog import SpecError, validate
from rlscale.tracking.store import MLFLOW_SCHEMES


class LearnedPolicyConfig(StrictModel):
    """``kind: LearnedPolicy`` agent files: a trained policy run as an autoscaler."""

    model: str = Field(
        description="models:/<name>@<alias>, models:/<name>/<version>, runs:/<run_id>/model, or a policy folder or "
        ".zip (relative to this file, its project root or the working directory)."
    )
    tracking_uri: str | None = Field(
        None, description="Where models:/ and runs:/ resolve (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)."
    )
    deterministic: bool = Field(True, description="The most likely action, not a sample.")
    sync_period_s: float = Field(15.0, gt=0, description="s between decisions: the environment's step.")
    env_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of the trained environment arguments (e.g. max_replicas)."
    )


class LearnedFile(AgentFile):
    spec: dict[str, Any]  # LearnedPolicyConfig, validated with its own path in messages


def load_learned(
    model: str | Path, *, tracking_uri: str | None = None, scenario: Scenario | None = None, **kwargs: Any
) -> LearnedPolicy:
    """A trained policy (``models:/``, ``runs:/``, a policy folder or ``.zip``) as an autoscaler, a residual one
    with its baseline agent loaded (for ``scenario``, should the baseline plan); ``kwargs``: ``LearnedPolicy``'s."""
    return LearnedPolicy(
        model, tracking_uri=tracking_uri, load_baseline=lambda ref: load_agent(ref, scenario), **kwargs
    )


def learned(doc: dict[str, Any], ctx: AgentContext) -> LearnedPolicy:
    spec = validate(LearnedPolicyConfig, validate(LearnedFile, doc, ctx.where).spec, f"{ctx.where}: spec")
    model = spec.model
    if not model.startswith(MLFLOW_SCHEMES):
        model = str(_find_local(model, ctx.path.resolve().parent))
    try:
        return load_learned(
            model, tracking_uri=spec.tracking_uri, scenario=ctx.scenario, deterministic=spec.deterministic,
            sync_period_s=spec.sync_period_s, **spec.env_kwargs,
        )  # fmt: skip
    except SpecError as exc:
        raise SpecError(f"{ctx.where}: spec.{exc}") from exc


def _find_local(ref: str, base: Path) -> Path:
    """A policy folder or file: absolute, or relative to ``base`` (the agent file's folder), its project root or
    the working directory (as :func:`rlscale.data.resolve` looks, folders included)."""
    path = Path(ref).expanduser()
    if path.is_absolute():
        return path
    for root in (base, project_root(base), Path.cwd()):
        if root is not None and (root / path).exists():
            return (root / path).resolve()
    return path  # PolicyFiles.find names it in its error

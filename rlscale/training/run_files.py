"""The files of a training run's folder, by name: what ``rlscale train`` writes and a sweep carries back."""

from __future__ import annotations

from rlscale.policies.learned import MODEL_FILE, POLICY_FILE, VECNORMALIZE_FILE

PROGRESS_CSV = "progress.csv"  # the SB3 logger's CSV writer
CURVE_PNG = "learning_curve.png"
CONFIG_JSON, AGENT_YAML, SCENARIO_YAML = "config.json", "agent.yaml", "scenario.yaml"
SCENARIOS_DIR = "scenarios"  # a mix's members, one file each

# A run folder without its checkpoints: the policy (what LearnedPolicy loads), its settings, its curves.
RUN_FILES = (
    MODEL_FILE, VECNORMALIZE_FILE, POLICY_FILE, CONFIG_JSON, AGENT_YAML, SCENARIO_YAML, PROGRESS_CSV, CURVE_PNG,
)  # fmt: skip

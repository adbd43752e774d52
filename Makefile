# `make run` sets everything up on a fresh machine and runs the main job;
# `make test` sets up and runs lint plus the test suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0  # first, so nothing pulls a multi-GB CUDA build
	$(BIN)/pip install -q -e '.[dev,ray]'  # ray: the optional executor, tested in CI
	touch $(STAMP)

# The simulator's compiled core (setup.py, rlscale/_core.py): rebuilt when a source changes, so `make` never runs a
# stale binary (rlscale would fall back to the pure-Python sources, with a warning, and run slower).
CORE := $(VENV)/.core
CORE_SRC := setup.py $(shell find rlscale -name '*.py' -o -name '*.pxd')

$(CORE): $(STAMP) $(CORE_SRC)
	$(BIN)/python setup.py -q build_ext --inplace
	touch $(CORE)

.PHONY: setup run test lint bench calibrate train train-wide train-smooth learned-vs-tuned production-tune production
setup: $(CORE)

run: $(CORE)
	$(BIN)/rlscale simulate --scenario envs/single-pod.yaml

lint: $(CORE)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports  # the layers and forbidden imports of pyproject.toml's [tool.importlinter]

test: lint
	$(BIN)/pytest

bench: $(CORE)
	$(BIN)/python benchmarks/sim_speed.py

calibrate: $(CORE)
	$(BIN)/rlscale calibrate --report calibration.md --plot calibration.png

# The best learned autoscaler, reproducibly: PPO on the training mix (every evaluation scenario held out), seed 0,
# registered as models:/rlscale-ppo-train-mix@champion in ./mlflow.db.
train: $(CORE)
	$(BIN)/rlscale train --agent agents/ppo.yaml --scenario envs/train-mix.yaml --seed 0 --model-name rlscale-ppo-train-mix

# The same agent on a wider training mix (rates x 0.5-2.5): the ablation of experiments/README.md.
train-wide: $(CORE)
	$(BIN)/rlscale train --agent agents/ppo.yaml --scenario envs/train-wide.yaml --seed 0 --model-name rlscale-ppo-train-wide

# The same agent on a mix: the training bursts plus slow traffic with quiet phases (envs/train-smooth.yaml).
train-smooth: $(CORE)
	$(BIN)/rlscale train --agent agents/ppo.yaml --scenario envs/train-mix.yaml --scenario envs/train-smooth.yaml --seed 0

# The headline comparison (experiments/README.md): both learned policies (make train, make train-wide) against the
# tuned HPAs, saturation, static and the oracle on held-out scenarios and seeds.
learned-vs-tuned: $(CORE)
	$(BIN)/rlscale compare experiments/learned-vs-tuned.yaml

# Production traffic (experiments/README.md), step 1, on the training day only: the cheapest static count searched
# on envs/production-day.yaml (seeds 0-2), the forecaster's history of days 9-10 (envs/production-history.yaml),
# and the guide's HPAs tuned on its evening (envs/production-day-tune.yaml,
# 10 trials of 2 settings x seeds 0, 1 at a time), into runs/production/; ~65 min on 2 cores. The committed
# agents/tuned/*.production.yaml were made from these (their headers say how). Interrupted? Run it again: --resume.
PRODUCTION_HPAS := hpa-slots-used hpa-prefill-backlog hpa-combined hpa-hbm
production-tune: $(CORE)
	$(BIN)/rlscale simulate --scenario envs/production-day.yaml --agent agents/production/static.yaml \
		--out runs/production/static-search --json
	rm -f runs/production/predictive-history.json  # the forecaster's history of days 9-10, learnt afresh
	$(BIN)/rlscale simulate --scenario envs/production-history.yaml --agent agents/production/predictive-learn.yaml \
		--out runs/production/history --json
	cp runs/production/predictive-history.json agents/production/predictive-history.json
	for agent in $(PRODUCTION_HPAS); do \
		$(BIN)/rlscale tune --agent agents/production/$$agent.yaml --scenario envs/production-day-tune.yaml \
			--seeds 0,1 --trials 10 --batch 2 --out runs/production/tune-$$agent --resume || exit 1; \
	done

# Step 2: every policy on the held-out day 11, seeds 10-14 (experiments/production.yaml; 45 day-long runs, ~3.5 h on 2 cores).
# Interrupted? Run it again: finished runs are kept in runs/production/compare/cells and not run twice.
production: $(CORE)
	$(BIN)/rlscale compare experiments/production.yaml --out runs/production/compare --resume

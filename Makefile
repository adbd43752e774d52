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

.PHONY: setup run test lint bench calibrate train train-wide train-smooth learned-vs-tuned production-tune production \
	production-history-train train-production train-production-seeds production-robustness production-days
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

# Step 3, the learned production autoscaler (agents/ppo-production.yaml): PPO correcting the forecaster, trained on
# training day 10 (envs/production-train.yaml), seed 0, ~45 min on 2 cores; registered as
# models:/rlscale-ppo-production@champion in ./mlflow.db and copied to agents/production/ppo-residual/, the policy
# agents/production/learned.yaml runs (committed, so `make production` needs no training first). Its forecaster
# starts each training day with days 8-9 behind it: production-history-train made that history
# (agents/production/predictive-history-train.json, committed) and need not be run again.
production-history-train: $(CORE)
	rm -f runs/production/predictive-history-train.json
	$(BIN)/rlscale simulate --scenario envs/production-history-train.yaml \
		--agent agents/production/predictive-learn-train.yaml --out runs/production/history-train --json
	cp runs/production/predictive-history-train.json agents/production/predictive-history-train.json

train-production: $(CORE)
	rm -rf runs/production/train/seed0
	$(BIN)/rlscale train --agent agents/ppo-production.yaml --scenario envs/production-train.yaml --seed 0 \
		--model-name rlscale-ppo-production --out runs/production/train/seed0
	mkdir -p agents/production/ppo-residual
	cp runs/production/train/seed0/model.zip runs/production/train/seed0/vecnormalize.pkl \
		runs/production/train/seed0/policy.json agents/production/ppo-residual/

# Training seeds 1 and 2 of the same recipe (~49 min each on 2 cores), for the spread across training seeds: registered
# as versions of rlscale-ppo-production with aliases seed1 and seed2 (the champion stays seed 0) and copied to
# agents/production/ppo-residual-seed1/ and -seed2/, which agents/production/learned-seed1.yaml and -seed2.yaml run
# (committed; experiments/production.yaml evaluates all three).
train-production-seeds: $(CORE)
	for seed in 1 2; do \
		rm -rf runs/production/train/seed$$seed && \
		$(BIN)/rlscale train --agent agents/ppo-production.yaml --scenario envs/production-train.yaml --seed $$seed \
			--model-name rlscale-ppo-production --alias seed$$seed --out runs/production/train/seed$$seed && \
		mkdir -p agents/production/ppo-residual-seed$$seed && \
		cp runs/production/train/seed$$seed/model.zip runs/production/train/seed$$seed/vecnormalize.pkl \
			runs/production/train/seed$$seed/policy.json agents/production/ppo-residual-seed$$seed/ || exit 1; \
	done

# The learned production policy, unchanged, under perturbations it never trained on, beside the forecasters
# (experiments/production-robustness.yaml: step times +-10%, cold starts x0.5 and x2, a 5-minute metrics outage, an
# unseen service; held-out day 11, seed 10; 18 day-long runs).
production-robustness: $(CORE)
	$(BIN)/rlscale compare experiments/production-robustness.yaml --out runs/production/robustness --resume

# The learned production policy and the forecaster it corrects through all four held-out days in one run each
# (experiments/production-days.yaml; seeds 10-14, 10 runs of four days, ~1 h on 2 cores).
production-days: $(CORE)
	$(BIN)/rlscale compare experiments/production-days.yaml --out runs/production/days --resume

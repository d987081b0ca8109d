# chatnb developer commands. Every target sets up what it needs first.
#   make run        the main job: the quickstart against the embedded emulator (installs only `.[run]`)
#   make test       the whole test suite (what CI runs: bash .ci/run also runs it on Python 3.10 and 3.13)
#   make test-long  the long variants (load, crash, fuzz at full size)
#   make lint       the generated sync shells are current + ruff + mypy (chatnb/ and tests/) + the import contract
#   make lab        JupyterLab on the notebooks (as root too: it adds --allow-root; LAB_ARGS for more)
#   make bench      every benchmark in bench/
#   make docs       the documentation site into docs/_build/html (warnings are errors), then its link check

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
LAB_STAMP := $(VENV)/.installed-lab
DOCS_STAMP := $(VENV)/.installed-docs
LAB_ARGS ?=
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: setup run test test-long lint lab bench docs clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[test,sdk,e2e,docs,dev]'
	touch $(STAMP) $(RUN_STAMP) $(LAB_STAMP) $(DOCS_STAMP)

$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[run]'
	touch $(RUN_STAMP)

$(LAB_STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[run,lab]'
	touch $(LAB_STAMP) $(RUN_STAMP)

$(DOCS_STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[docs]'
	touch $(DOCS_STAMP)

setup: $(STAMP)
	bash .ci/setup-extras

run: $(RUN_STAMP)
	$(PY) scripts/run_quickstart.py

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-long: setup
	CHATNB_LONG=1 $(PY) -m pytest -q -m slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) scripts/unasync.py --check
	$(VENV)/bin/ruff check chatnb tests bench docs/conf.py docs/_ext scripts/check_links.py
	$(VENV)/bin/ruff format --check chatnb tests bench docs/conf.py docs/_ext scripts/check_links.py
	$(VENV)/bin/mypy  # chatnb/ strict, tests/ with check_untyped_defs (pyproject.toml)
	$(PY) -m pytest -q -p no:cacheprovider tests/test_import_contract.py tests/test_emulator_layout.py

lab: $(LAB_STAMP)
	$(PY) -m jupyter lab notebooks $(ALLOW_ROOT) $(LAB_ARGS)

bench: setup
	$(PY) -m pip install -q -e '.[bench]'  # Panel, the peer bench/bench_widgets.py measures
	command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; } || echo "wrk unavailable: bench_emulator falls back to Python senders"
	for b in bench/bench_*.py; do $(PY) $$b || exit 1; done

# -W --keep-going -n: every warning fails the build (all of them reported), and every reference to a chatnb
# name must resolve. A fresh output folder each time, so that no warning hides in an incremental build.
docs: $(DOCS_STAMP)
	rm -rf docs/_build/html docs/api/generated
	$(PY) -m sphinx -b html -W --keep-going -n -q docs docs/_build/html
	$(PY) scripts/check_links.py docs/_build/html

clean:
	rm -rf $(VENV) .venv-py3.* docs/_build docs/api/generated tests/js/node_modules tests/axe/node_modules tests/azurite/node_modules .pytest_cache

# `make run` and `make test` each set up what they need on a fresh machine (a venv in .venv).
PYTHON ?= python3
VENV := .venv

$(VENV)/installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

.PHONY: run test bench lint
run: $(VENV)/installed
	$(VENV)/bin/hsgate run

test: $(VENV)/installed
	$(VENV)/bin/python -m pytest -q

bench: $(VENV)/installed
	$(VENV)/bin/python bench/benchmark.py

lint: $(VENV)/installed
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	$(VENV)/bin/ruff check app workers tests bench
	$(VENV)/bin/ruff format --check app workers tests bench
	$(VENV)/bin/mypy app workers

# Everything runs in a project-local virtual environment, created on first use.
VENV ?= .venv
PYTHON := $(VENV)/bin/python

.PHONY: install test test-reliability quickstart lint format clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.py
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --upgrade pip
	$(PYTHON) -m pip install -e ".[dev]"
	touch $@

test: install
	$(PYTHON) -m pytest -q tests

# The cases of RELIABILITY.md alone (a subset of `make test`).
test-reliability: install
	$(PYTHON) -m pytest -q -m reliability tests

quickstart: install
	$(PYTHON) tools/quickstart.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) output

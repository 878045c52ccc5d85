# Shipyard: `make demo` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test check lint format bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,postgres,redis,demo]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m shipyard.demo

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

check: lint test

bench: $(STAMP)
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/tracking.py
	$(PY) benchmarks/remote_tracking.py
	$(PY) benchmarks/training.py
	$(PY) benchmarks/serving/bench.py
	$(PY) benchmarks/drift/bench.py

clean:
	rm -rf $(VENV) .shipyard demo-output bench-output .pytest_cache .mypy_cache .ruff_cache

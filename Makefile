# One command each: `make demo`, `make test`, `make bench`, `make fuzz`. Each creates .venv when
# missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench fuzz clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/switchback demo

lint: $(STAMP)
	$(BIN)/ruff check proxy tests loadtest
	$(BIN)/ruff format --check proxy tests loadtest

typecheck: $(STAMP)
	$(BIN)/mypy --strict proxy

test: lint typecheck
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python loadtest/bench.py

# The config fuzzer at length: at least 10,000 examples of each property (make test runs a few).
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests/unit/test_config_fuzz.py \
		--hypothesis-show-statistics

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis

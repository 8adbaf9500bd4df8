# One command each: `make demo`, `make test`, `make bench`, `make soak`, `make fuzz`. Each
# creates .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint imports typecheck unit bench bench-fleet soak fuzz clean

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

# The import contracts of pyproject.toml (ARCHITECTURE.md says why each holds).
imports: $(STAMP)
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy --strict proxy

test: lint imports typecheck
	$(BIN)/python -m pytest

# make bench BENCH_ARGS=--quick: a few minutes instead of about 13 (loadtest/README.md).
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python loadtest/bench.py $(BENCH_ARGS)

# Three replicas and a real Redis: rollback propagation, leader failover, Redis restarts
# (loadtest/README.md, "A fleet"). Needs redis-server.
FLEET_ARGS ?=
bench-fleet: $(STAMP)
	$(BIN)/python loadtest/fleet.py $(FLEET_ARGS)

# The soak test for a minute (make test runs it for 10 s); figures in loadtest/results/.
soak: $(STAMP)
	SOAK_SECONDS=60 SOAK_RESULTS=loadtest/results/soak-$$(date +%Y%m%d-%H%M%S).json \
		$(BIN)/python -m pytest tests/soak/test_soak.py -s

# The config fuzzer at length: at least 10,000 examples of each property (make test runs a few).
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests/unit/test_config_fuzz.py \
		--hypothesis-show-statistics

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis

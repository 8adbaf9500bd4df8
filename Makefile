# One command each: `make demo`, `make test`, `make bench`, `make soak`, `make fuzz`. Each
# creates .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

NATIVE := build/native.stamp
SOURCES := $(shell find proxy -name '*.py')

.PHONY: demo test lint imports typecheck unit native bench bench-fleet soak fuzz clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The data plane compiled with mypyc where the machine has a C compiler (proxy/http/native.py);
# built again whenever a source of the package changed, since it is compiled against them all.
$(NATIVE): $(STAMP) $(SOURCES) tools/native.py
	$(BIN)/python tools/native.py build
	@mkdir -p build && touch $(NATIVE)

native: $(NATIVE)

demo: $(NATIVE)
	$(BIN)/switchback demo

lint: $(STAMP)
	$(BIN)/ruff check proxy tests loadtest tools
	$(BIN)/ruff format --check proxy tests loadtest tools

# The import contracts of pyproject.toml (ARCHITECTURE.md says why each holds).
imports: $(STAMP)
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy --strict proxy

# The whole suite on the build this machine makes, then the data plane's tests on the sources
# alone, as a machine without a C compiler runs them.
PURE_TESTS := tests/unit $(addprefix tests/integration/test_,$(addsuffix .py,forwarding \
	limits request_framing release_answers smuggling pipelining streaming timeouts websocket \
	failures steps_that_act deprecation_headers fields out_of_service))
test: lint imports typecheck $(NATIVE)
	$(BIN)/python -m pytest
	SWITCHBACK_PURE_PYTHON=1 $(BIN)/python -m pytest -q $(PURE_TESTS)

# make bench BENCH_ARGS=--quick: a few minutes instead of about 13 (loadtest/README.md).
BENCH_ARGS ?=
bench: $(NATIVE)
	$(BIN)/python loadtest/bench.py $(BENCH_ARGS)

# Three replicas and a real Redis: rollback propagation, leader failover, Redis restarts
# (loadtest/README.md, "A fleet"). Needs redis-server.
FLEET_ARGS ?=
bench-fleet: $(NATIVE)
	$(BIN)/python loadtest/fleet.py $(FLEET_ARGS)

# The soak test for a minute (make test runs it for 10 s); figures in loadtest/results/.
soak: $(NATIVE)
	SOAK_SECONDS=60 SOAK_RESULTS=loadtest/results/soak-$$(date +%Y%m%d-%H%M%S).json \
		$(BIN)/python -m pytest tests/soak/test_soak.py -s

# The config fuzzer at length: at least 10,000 examples of each property (make test runs a few).
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests/unit/test_config_fuzz.py \
		--hypothesis-show-statistics

clean:
	find proxy -name '*.so' -delete
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .import_linter_cache \
		.hypothesis

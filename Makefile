# The two commands a new user needs: `make demo` and `make test`.
# Both set up what they need (venv, system packages, Docker Engine) themselves.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Two workers (pytest-xdist), whole test files each so module fixtures are made once.
PYTEST_ARGS ?= -n auto --maxprocesses 4 --dist loadfile --no-loadscope-reorder --durations=60

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: help venv system demo test test-fast lint bench clean

help:
	@echo "make demo   - build the approved set from source, sign, attest, publish, serve"
	@echo "make test   - run the whole test suite (sets up venv, Docker, builder image)"
	@echo "make bench  - benchmarks side by side with the peers"
	@echo "make lint   - ruff and mypy"

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

system:
	scripts/setup-system.sh

# The demo builds native wheels for CPython 3.11 (the builder image's) and 3.13 (built from
# Debian's verified source once per machine and kept in the user's cache, like the builder
# image in Docker's store); FACTORY_BUILD_INTERPRETERS / FACTORY_INTERPRETERS_DIR win.
DEMO_INTERPRETERS ?= 3.11,3.13
INTERPRETERS_DIR  ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/factory/interpreters

demo: venv system
	FACTORY_BUILD_INTERPRETERS="$${FACTORY_BUILD_INTERPRETERS:-$(DEMO_INTERPRETERS)}" \
	FACTORY_INTERPRETERS_DIR="$${FACTORY_INTERPRETERS_DIR:-$(INTERPRETERS_DIR)}" \
	$(BIN)/python -m flows.demo

test: venv system
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: venv
	$(BIN)/python -m pytest -m "not docker and not network and not slow" $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check factory flows tests bench fuzz
	$(BIN)/mypy factory flows bench

BENCH_ARGS ?=
bench: venv system
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[bench]"
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .factory .pytest_cache .mypy_cache .ruff_cache

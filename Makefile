# Titans Finance: the two commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# uv from PATH, else the module pip installed (`python3 -m uv` works even where pip's bin dir is not on PATH).
UV ?= $(shell command -v uv 2>/dev/null || echo python3 -m uv)
export TITANS_HOME ?= $(CURDIR)/var

.PHONY: install run test lint fmt bench clean

install: $(VENV)/.installed ## create the venv from the lock (uv) and install the project

$(VENV)/.installed: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv>=0.5"
	@# Byte-compile at install: CI sets PYTHONDONTWRITEBYTECODE, so every step and server would compile from source.
	$(UV) sync --frozen --extra train --extra dev --extra dashboard --extra spark --reinstall-package titans-finance --compile-bytecode
	@touch $@

run: install ## the main job on embedded defaults: the training pipeline through kfp.local
	$(VENV)/bin/titans pipeline run --local

# Two workers, each folder on one of them (tests/conftest.py): one folder's waits overlap another's CPU work.
TEST_WORKERS ?= 2
test: install ## the whole test suite
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=25

lint: install
	$(VENV)/bin/ruff check .

fmt: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install ## speed and memory benchmarks; results in bench/results/
	$(MAKE) $(filter bench-%,$(BENCH_TARGETS))

clean: ## remove runtime data; var/features/README.md stays (the Feast CLI in feature_repo/ needs the folder)
	rm -rf build .pytest_cache
	[ ! -d var ] || find var -mindepth 1 -maxdepth 1 ! -name features -exec rm -rf {} +
	[ ! -d var/features ] || find var/features -mindepth 1 ! -name README.md -exec rm -rf {} +

# Area-specific targets (features, serving, bench, cluster, ...) live in mk/*.mk.
-include mk/*.mk
BENCH_TARGETS := $(sort $(filter bench-%,$(shell sed -n 's/^\(bench-[a-z-]*\):.*/\1/p' mk/*.mk 2>/dev/null)))

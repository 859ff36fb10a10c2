# Quality Compass + the qalita dbt package + the QALITA sidecar.
# `make help` lists the targets. Every dbt call uses the repo's profiles.yml.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DBT := $(BIN)/dbt
TARGET ?= dev
export DBT_PROFILES_DIR ?= $(CURDIR)
export DBT_SEND_ANONYMOUS_USAGE_STATS ?= false
DBT_FLAGS := --target $(TARGET)

.PHONY: help all install deps seed compass-data build freshness docs test test-unit test-compat lint ingest flush bench clean pg-db

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-14s %s\n", $$1, $$2}'

all: install deps seed compass-data build ## Fresh machine: venv, install, dbt deps, seed, load Compass, dbt build (DuckDB)

install: $(VENV)/.installed ## Create .venv: dbt, the sidecar, the Compass tools, the dev tools

# uv resolves and installs the same packages as pip about ten times faster (about 20 s instead of
# 100 s here); INSTALLER=pip installs with pip alone, e.g. where only pip's own settings reach an index.
# --compile-bytecode does what pip does by default: without it, where PYTHONDONTWRITEBYTECODE is set
# (CI containers often set it), every process compiles its imports again: a dbt process took 4.0 s
# instead of 2.9 s to print its version, a sidecar process 0.7 s instead of 0.3 s.
INSTALLER ?= uv
ifeq ($(INSTALLER),uv)
BOOTSTRAP = uv
PIP_INSTALL = $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python
else
BOOTSTRAP = --upgrade pip
PIP_INSTALL = $(BIN)/pip install --quiet
endif

$(VENV)/.installed: requirements-dev.txt sidecar/pyproject.toml compass_data/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(BOOTSTRAP)
	$(PIP_INSTALL) -r requirements-dev.txt
	@touch $@

# The integration tests also need the sidecar's optional extras (a real Soda scan, Dagster).
$(VENV)/.installed-extras: $(VENV)/.installed
	$(PIP_INSTALL) -r requirements-dev.txt -e "./sidecar[soda,dagster]"
	@touch $@

deps: install ## dbt deps (installs the local qalita package)
	$(DBT) deps

seed: deps ## dbt seed
	$(DBT) seed $(DBT_FLAGS)

# The small deterministic Quality Compass run `make all` loads (data/runs/ is git-ignored).
COMPASS_ENTITIES ?= 2000
COMPASS_SEED ?= 42
COMPASS_RUN_ID ?= 20260101004200

compass-data: install $(if $(filter prod,$(TARGET)),pg-db) ## Generate a small insight-graph run and load it into the raw tables
	$(BIN)/python -m quality_compass generate --out data/runs --entities $(COMPASS_ENTITIES) --seed $(COMPASS_SEED) --run-id $(COMPASS_RUN_ID)
	$(BIN)/python -m quality_compass load data/runs/$(COMPASS_RUN_ID) --target $(TARGET) --profiles-dir $(DBT_PROFILES_DIR) --project-dir $(CURDIR)

build: deps ## dbt build (TARGET=prod for PostgreSQL)
	$(DBT) build $(DBT_FLAGS)

freshness: deps ## dbt source freshness
	$(DBT) source freshness $(DBT_FLAGS)

docs: deps ## dbt docs generate
	$(DBT) docs generate $(DBT_FLAGS)

# Two workers (these machines have two cores); a module stays on one worker, so the dbt builds its
# module-scoped fixtures share run once. Modules are handed out in collection order (the longest
# first, see pyproject.toml), not xdist's default of the most tests first, which put the many quick
# unit modules first and left the long dbt modules to the end.
PYTEST_WORKERS ?= 2
test: $(VENV)/.installed-extras ## Every suite: unit, sidecar integration, package, Compass, host project (DuckDB and PostgreSQL)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadscope --no-loadscope-reorder --durations=15

# Venvs cached in ~/.cache/qalita-compat (QALITA_COMPAT_CACHE), keyed by their requirement set.
test-compat: install ## dbt 1.8 .. 1.12 on both adapters, the sidecar beside dbt 1.9 (cached venvs; ~3 min warm)
	$(BIN)/pytest testing/compat -m compat

test-unit: install ## The pure tests: no dbt, no database, HTTP on loopback only (under a minute)
	$(BIN)/pytest sidecar/tests/unit compass_data/tests/test_generator.py -q

# check-jsonschema needs a ruamel.yaml that soda-core's pin refuses: it gets a venv of its own.
TOOLS_VENV ?= .venv-tools
$(TOOLS_VENV)/.installed:
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --quiet --upgrade pip
	$(TOOLS_VENV)/bin/pip install --quiet "check-jsonschema>=0.33"
	@touch $@

lint: deps $(TOOLS_VENV)/.installed ## ruff, mypy, sqlfluff (dbt templater), the CI examples against their schemas
	$(BIN)/ruff check sidecar compass_data testing dbt_qalita bench examples
	$(BIN)/mypy sidecar/qalita_sidecar
	$(BIN)/sqlfluff lint models
	$(TOOLS_VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows examples/ci/github-actions.yml
	$(TOOLS_VENV)/bin/check-jsonschema --builtin-schema vendor.gitlab-ci examples/ci/gitlab-ci.yml

ingest: install ## Ship the latest dbt builds to QALITA (or to the outbox without QALITA settings)
	@# 75 = queued in the outbox (QALITA not configured or unreachable): said above, not a failure here
	@$(BIN)/qalita-sidecar ingest dbt --project-dir . --profiles-dir $(DBT_PROFILES_DIR) --target $(TARGET) \
	  || { rc=$$?; [ $$rc -eq 75 ] || exit $$rc; }

flush: install ## Send what waits in the outbox
	@$(BIN)/qalita-sidecar flush --project-dir . --profiles-dir $(DBT_PROFILES_DIR) --target $(TARGET)

pg-db: ## Create the PostgreSQL database of the prod target if it is missing
	@db=$${DBT_POSTGRES_DATABASE:-quality_compass}; \
	psql -h $${DBT_POSTGRES_HOST:-127.0.0.1} -p $${DBT_POSTGRES_PORT:-5432} -U $${DBT_POSTGRES_USER:-postgres} -d postgres -Atc "select 1 from pg_database where datname = '$$db'" | grep -q 1 \
	  || createdb -h $${DBT_POSTGRES_HOST:-127.0.0.1} -p $${DBT_POSTGRES_PORT:-5432} -U $${DBT_POSTGRES_USER:-postgres} "$$db"

bench: deps ## Benchmarks: every bench/*/bench_*.py (print figures; never assert timings)
	@for script in bench/*/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean: ## Remove build outputs, the DuckDB file and the venv
	rm -rf target dbt_packages logs quality_compass.duckdb quality_compass.duckdb.wal $(VENV) $(TOOLS_VENV) .pytest_cache .ruff_cache

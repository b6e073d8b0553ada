# The two commands that matter: `make run` and `make test`. Everything installs itself on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.DEFAULT_GOAL := help
.PHONY: help run test test-sqlite test-postgres lint security format migration migrations-check bench-core bench-import bench-export bench-sensitive bench-api lock ci clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 20

$(BIN)/.runtime: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

$(BIN)/.dev: $(BIN)/.runtime requirements-dev.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.lock
	@touch $@

run: $(BIN)/.runtime ## API on HOST:PORT (127.0.0.1:8000), a worker and beat (Procfile); SQLite in ./data unless DATABASE_URL
	$(BIN)/honcho start -f Procfile

serve-prod: $(BIN)/.runtime ## the API as in production: gunicorn, uvicorn workers (deploy/gunicorn.conf.py)
	$(BIN)/annotation-platform serve --prod

# Most tests wait on a database, a worker or a subprocess, so three processes keep two cores busy.
TEST_PROCESSES ?= 3

test: $(BIN)/.dev ## the whole suite, on SQLite and (when reachable) PostgreSQL, in TEST_PROCESSES processes (3)
	$(BIN)/pytest -n $(TEST_PROCESSES)

test-sqlite: $(BIN)/.dev ## the suite on SQLite only
	$(BIN)/pytest -n $(TEST_PROCESSES) --backend sqlite

test-postgres: $(BIN)/.dev ## the suite on PostgreSQL only
	$(BIN)/pytest -n $(TEST_PROCESSES) --backend postgresql

lint: $(BIN)/.dev ## ruff (lint and format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

security: $(BIN)/.dev ## bandit on the code; pip-audit of the lock files (PIP_AUDIT_REQUIRED=1: unreachable service fails)
	$(BIN)/bandit -q -r src workers
	$(BIN)/python .ci/audit_dependencies.py

format: $(BIN)/.dev ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migration: $(BIN)/.dev ## new migration from the models: make migration m="what it does"
	$(BIN)/alembic revision --autogenerate -m "$(m)"

migrations-check: $(BIN)/.dev ## one head, up/down/up round trip, models match migrations
	$(BIN)/pytest tests/migrations -q

bench-core: $(BIN)/.dev ## bulk inserts and item pages on PostgreSQL (BENCH_DATABASE_URL, BENCH_ITEMS); prints figures
	$(BIN)/python benchmarks/core_api.py

bench-import: $(BIN)/.dev ## a chat CSV through the API and a worker vs psql \copy (BENCH_IMPORT_ROWS=1000000, BENCH_DATABASE_URL, BENCH_REDIS_URL)
	$(BIN)/python benchmarks/imports.py

bench-export: $(BIN)/.dev ## JSONL and CSV exports through the API and a worker vs raw COPY TO (BENCH_EXPORT_ROWS=1000000)
	$(BIN)/python benchmarks/exports.py

bench-sensitive: $(BIN)/.dev ## import and export of a plain vs a sensitive (encrypted) project (BENCH_SENSITIVE_ROWS=20000)
	$(BIN)/python benchmarks/sensitive.py

bench-api: $(BIN)/.dev ## item pages vs a raw asyncpg baseline, deep pages, cache and 304s, writes, rate limits (BENCH_API_ITEMS=1000000; needs wrk, PostgreSQL, Redis)
	$(BIN)/python benchmarks/api.py

lock: ## re-pin requirements*.lock from pyproject.toml
	$(PYTHON) -m venv /tmp/annotation-platform-lock && /tmp/annotation-platform-lock/bin/pip install --quiet pip-tools
	/tmp/annotation-platform-lock/bin/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml
	/tmp/annotation-platform-lock/bin/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links --extra dev -c requirements.lock -o requirements-dev.lock pyproject.toml

.PHONY: serve-prod docs deploy-tools deploy-check openapi browser-tools
docs: $(BIN)/.runtime ## regenerate the settings reference table in docs/deployment.md from the Settings class
	$(BIN)/python -m annotation_platform.core.settings_reference

openapi: $(BIN)/.runtime ## write the live OpenAPI document to openapi.json (refuses undeclared breaking changes)
	$(BIN)/python -m annotation_platform.core.openapi_changes

browser-tools: ## Debian's chromium, for the test that renders /docs and /redoc; as root or with sudo
	@if ! command -v chromium >/dev/null && ! command -v google-chrome >/dev/null; then \
		sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq \
			--no-install-recommends chromium; \
	fi

deploy-tools: ## Debian's docker-compose and promtool (package prometheus), for deploy-check; as root or with sudo
	@if ! command -v promtool >/dev/null || ! command -v docker-compose >/dev/null; then \
		sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq \
			--no-install-recommends docker-compose prometheus; \
	fi

deploy-check: $(BIN)/.dev deploy-tools ## Dockerfile (hadolint), compose files, alert rules (promtool), Kubernetes manifests
	BIN=$(BIN) deploy/check.sh

ci: lint security browser-tools test deploy-check ## what CI runs (everything that needs no Docker engine)

clean: ## remove the virtualenv and caches (keeps ./data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

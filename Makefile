# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
REDIS_PORT ?= 6379

.PHONY: run test lint install dev-install ensure-redis clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

## run: API + worker + scheduler on the embedded default (SQLite file and broker under ./var)
run: install
	@mkdir -p var
	$(BIN)/orchestrator migrate
	$(BIN)/orchestrator demo --if-empty
	$(BIN)/orchestrator up

## test: the whole suite against real Redis and PostgreSQL
test: install ensure-redis
	$(BIN)/python -m pytest $(PYTEST_ARGS)

ensure-redis:
	@$(BIN)/python scripts/ensure_services.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf var .pytest_cache .ruff_cache

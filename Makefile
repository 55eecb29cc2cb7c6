# The two commands of the README: `make run` and `make test`. Everything else is a helper.
# Needs only Python 3.11+ (with its venv module) and make; PYTHON=/path/to/python3.x to choose one.
SHELL := /bin/bash
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell for p in python3.13 python3.12 python3.11 python3; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; \
	then echo $$p; break; fi; done)
endif
VENV := .venv
BIN := $(VENV)/bin
# Dependencies come pinned (with hashes) from the lock files; `make lock` regenerates them from pyproject.toml.
LOCK := requirements/lock.txt
DEV_LOCK := requirements/dev-lock.txt
# Installs are redone when pyproject.toml or a lock file changes: the stamps carry their checksum.
SUM := $(shell cat pyproject.toml $(LOCK) $(DEV_LOCK) | cksum | cut -d' ' -f1)
RUN_STAMP := $(VENV)/.installed-run-$(SUM)
DEV_STAMP := $(VENV)/.installed-dev-$(SUM)

.PHONY: run test check install dev-install ensure-services lint lock readme clean distclean

$(BIN)/python:
	@if [ -z "$(PYTHON)" ]; then \
		echo "error: Python 3.11 or newer is needed (none found as python3.1x/python3); set PYTHON=/path/to/python" >&2; \
		exit 2; fi
	@echo "creating $(VENV) with $$($(PYTHON) --version)"
	@$(PYTHON) -m venv $(VENV) || { echo "error: '$(PYTHON) -m venv' failed; on Debian/Ubuntu install python3-venv" >&2; exit 2; }
	@$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): $(BIN)/python pyproject.toml $(LOCK)
	@echo "installing the orchestrator into $(VENV) (the first time takes a minute or two)"
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@rm -f $(VENV)/.installed-run-*
	@touch $(RUN_STAMP)

$(DEV_STAMP): $(BIN)/python pyproject.toml $(DEV_LOCK)
	@echo "installing the orchestrator with its dev extras into $(VENV)"
	$(BIN)/python -m pip install --quiet -r $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@rm -f $(VENV)/.installed-run-* $(VENV)/.installed-dev-*
	@touch $(RUN_STAMP) $(DEV_STAMP)

install: $(RUN_STAMP)

dev-install: $(DEV_STAMP)

## run: API + worker + scheduler on the embedded default (SQLite file and broker under ./var)
run: install
	@mkdir -p var
	$(BIN)/orchestrator migrate
	$(BIN)/orchestrator demo --if-empty
	$(BIN)/orchestrator up

## test: the whole suite against real Redis and PostgreSQL (PYTEST_ARGS="-k name" to narrow it)
# Two pytest-xdist workers, a module's tests kept together (each worker has its own PostgreSQL
# database and Redis db); TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 2
# pytest exits 5 when it collected nothing: say so plainly rather than leave a bare "Error 5".
test: dev-install ensure-services
	@status=0; $(BIN)/python -m pytest $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile) $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then \
		echo "make test: pytest collected no tests (exit 5); check PYTEST_ARGS='$(PYTEST_ARGS)' and tests/" >&2; \
	fi; \
	exit $$status

ensure-services: $(BIN)/python
	@$(BIN)/python scripts/ensure_services.py

## check: lint, format, types and the import contracts of pyproject.toml (what CI runs before the tests)
check: dev-install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

lint: check

## lock: re-pin requirements/*.txt from pyproject.toml (keeps current pins where they still fit; UPGRADE=1 to refresh)
LOCK_FLAGS := --universal --python-version 3.11 --generate-hashes --quiet $(if $(UPGRADE),--upgrade)
lock: $(BIN)/python
	@[ -x $(BIN)/uv ] || $(BIN)/python -m pip install --quiet 'uv>=0.5'
	$(BIN)/uv pip compile pyproject.toml $(LOCK_FLAGS) -o $(LOCK)
	$(BIN)/uv pip compile pyproject.toml --extra dev $(LOCK_FLAGS) -o $(DEV_LOCK)

## readme: regenerate the README's configuration table from orchestrator/config.py
readme: install
	$(BIN)/python scripts/config_table.py --write README.md

clean:
	rm -rf var .pytest_cache .ruff_cache

distclean: clean
	rm -rf $(VENV) build *.egg-info

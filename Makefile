# Two commands set everything up on a fresh machine (Python 3.11+):
#   make run    the main job: sandbox CRM + Salesforce and HubSpot syncs into SQLite, no account needed
#   make test   the whole test suite (ruff, mypy, pytest on SQLite and PostgreSQL)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/okrsync: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/okrsync

.PHONY: install run test lint bench
install: $(BIN)/okrsync

run: install
	$(BIN)/okrsync sync salesforce --sandbox
	$(BIN)/okrsync sync salesforce --sandbox
	$(BIN)/okrsync sync hubspot --sandbox

lint: install
	$(BIN)/ruff check connectors mappings service tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

bench: install
	$(BIN)/python -m bench

